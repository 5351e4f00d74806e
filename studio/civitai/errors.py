"""What can go wrong when Studio asks CivitAI, each as a sentence a person can act on.

Each is a ``StudioError``, so a route that lets one through answers with the same JSON body as any
other failure; the code says which kind it was, so a page (or the download queue) can tell a model
that does not exist from one that needs a login, or from CivitAI being down for a while.
"""

from __future__ import annotations

from studio.errors import StudioError


class CivitaiError(StudioError):
    """CivitAI answered something Studio cannot use (a 400, HTML instead of JSON, a wrong shape)."""

    status = 502
    code = "civitai_bad_answer"


class CivitaiNotFound(CivitaiError):
    status = 404
    code = "civitai_not_found"


class CivitaiLoginRequired(CivitaiError):
    """401, or a 403 without a key: the resource's creator wants a signed-in account."""

    status = 403
    code = "civitai_login_required"


class CivitaiEarlyAccess(CivitaiError):
    """The version is in early access: only accounts that unlocked it may have it."""

    status = 403
    code = "civitai_early_access"


class CivitaiRateLimited(CivitaiError):
    """429 that did not clear within the waits the client allows itself."""

    status = 429
    code = "civitai_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(message, details={"retry_after_s": seconds}, headers={"Retry-After": str(seconds)})
        self.retry_after_s = float(retry_after_s)


class CivitaiUnavailable(CivitaiError):
    """No connection, a timeout, or 5xx after every retry: worth trying again later."""

    status = 503
    code = "civitai_unavailable"


LOGIN_WANTED = "CivitAI wants a login for this: set a CivitAI API key in Settings."
EARLY_ACCESS = ("This model is in early access on CivitAI: it needs the CivitAI API key of an account "
                "that has access.")
