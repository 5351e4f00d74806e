"""Closed by default: every request is identified, and refused unless its endpoint allows it.

Order of checks: setup state (until an admin exists only the setup page answers), identity (API
token in ``Authorization: Bearer`` or ``X-API-Key``, else the session cookie), then token scope,
CSRF for cookie-authenticated writes, and the Origin of WebSocket handshakes.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from flask import Flask, g, redirect, request
from werkzeug.wrappers import Response

from studio.auth.models import TokenScope
from studio.auth.service import AuthService, Identity
from studio.errors import Conflict, Forbidden, MisdirectedRequest, StudioError, Unauthorized

log = logging.getLogger(__name__)

SESSION_COOKIE = "studio_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Endpoints anyone may reach once Studio is set up.
PUBLIC = frozenset({"system.health", "auth.state", "auth.login", "pages.login", "pages.asset",
                    "telegram.one_time_file"})
# Before the first admin exists, these are all that answer.
SETUP = frozenset({"system.health", "auth.state", "auth.setup", "pages.setup", "pages.asset"})
# Unauthenticated writes: they must come as JSON from this origin (no login CSRF from a form).
ANONYMOUS_WRITES = frozenset({"auth.login", "auth.setup"})

F = TypeVar("F", bound=Callable[..., Any])
RUN_SCOPE_ENDPOINTS: set[str] = set()


def allow_run_scope(view: F) -> F:
    """Marks a view that ``run``-scoped tokens may call (run workflows and presets, read own jobs)."""
    RUN_SCOPE_ENDPOINTS.add(f"{view.__module__}.{view.__name__}")
    return view


def current_identity() -> Identity:
    identity: Identity | None = g.get("identity")
    if identity is None:
        raise Unauthorized("Sign in first.")
    return identity


def require_admin() -> Identity:
    identity = current_identity()
    if not identity.is_admin:
        raise Forbidden("Only an admin can do that.", code="admin_only")
    return identity


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


LOOPBACK_NAMES = ("localhost", "*.localhost", "localhost.localdomain")


def _host_name(host: str) -> str:
    """``Host`` without its port, lowercased; IPv6 brackets removed."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_allowed_hosts(spec: str) -> tuple[str, ...]:
    """``a.example, *.proxy.example`` → names; ``*`` alone allows every host (documented as unsafe)."""
    return tuple(part.strip().lower().rstrip(".") for part in spec.split(",") if part.strip())


class Guard:
    def __init__(self, trusted_proxies: str, allowed_hosts: str = "") -> None:
        self.trusted = _networks(trusted_proxies)
        self._warned_untrusted_proxy = False
        self.allowed_hosts = (*LOOPBACK_NAMES, socket.gethostname().lower(), *parse_allowed_hosts(allowed_hosts))

    def host_allowed(self, host: str) -> bool:
        """DNS rebinding defence: a name is served only when Studio was told it is its own.

        An IP address is always fine (a page reached by address cannot be an attacker's name
        rebound to ours), as are loopback names, this machine's host name and STUDIO_ALLOWED_HOSTS
        (``*.suffix`` matches sub-domains).
        """
        name = _host_name(host)
        if not name or any(ch in name for ch in "/\\@ "):
            return False
        if _is_ip_literal(name):
            return True
        for pattern in self.allowed_hosts:
            if pattern == "*" or name == pattern:
                return True
            if pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                return True
        return False

    def set_trusted_proxies(self, spec: str) -> None:
        self.trusted = _networks(spec)

    def _is_trusted(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def client_ip(self) -> str:
        remote = request.remote_addr or "unknown"
        if not self._is_trusted(remote):
            if not self._warned_untrusted_proxy and "X-Forwarded-For" in request.headers:
                self._warned_untrusted_proxy = True
                log.warning("requests come through a proxy at %s that TRUSTED_PROXIES does not list: everyone "
                            "shares its address, so one person's failed sign-ins slow everyone's. "
                            "Add the proxy to TRUSTED_PROXIES.", remote)
            return remote
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return remote

    def is_https(self) -> bool:
        if request.scheme == "https":
            return True
        return self._is_trusted(request.remote_addr) and request.headers.get("X-Forwarded-Proto") == "https"

    def public_host(self) -> str:
        forwarded = request.headers.get("X-Forwarded-Host")
        if forwarded and self._is_trusted(request.remote_addr):
            return forwarded.split(",")[0].strip()
        return request.host

    def own_origin(self) -> str:
        scheme = "https" if self.is_https() else "http"
        return _normal_origin(f"{scheme}://{self.public_host()}")

    def origin_ok(self) -> bool:
        """The Origin a browser sent names us: same scheme, host and port (``null`` never does)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser cross-site request: browsers always send Origin on those
        return _normal_origin(origin) == self.own_origin()

    def set_session_cookie(self, response: Response, value: str, max_age_s: int) -> None:
        response.set_cookie(SESSION_COOKIE, value, max_age=max_age_s, httponly=True, samesite="Lax",
                            secure=self.is_https(), path="/")

    def clear_session_cookie(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=self.is_https())


def _normal_origin(origin: str) -> str:
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return "invalid"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "invalid"
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path == "/ws"


def install_guard(app: Flask, guard: Guard) -> None:
    from studio.services import services

    @app.before_request
    def _guard() -> Response | None:
        if not guard.host_allowed(request.host) or not guard.host_allowed(guard.public_host()):
            raise MisdirectedRequest(
                f"Studio does not answer to the name {_host_name(guard.public_host())[:100]!r}. "
                "Add it to STUDIO_ALLOWED_HOSTS if this is really Studio's address.", code="host_not_allowed")
        endpoint = request.endpoint
        if endpoint is None:
            return None  # 404 / 405: answered by the error handlers, which reveal nothing
        studio = services()
        auth = studio.auth
        if studio.users.setup_needed():
            if endpoint in SETUP:
                _check_anonymous_write(guard, endpoint)
                return None
            if _is_api():
                raise Unauthorized("Studio is not set up yet: create the admin account first.", code="setup_required")
            return redirect("/setup")
        if endpoint == "auth.setup":
            raise Conflict("Studio is already set up. Sign in instead.", code="already_set_up")
        if endpoint == "pages.setup":
            return redirect("/login")
        identity = _identify(auth)
        g.identity = identity
        if endpoint in PUBLIC:
            _check_anonymous_write(guard, endpoint)
            return None
        if identity is None:
            if _is_api():
                raise Unauthorized("Sign in first.")
            return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=&')}")
        view = app.view_functions.get(endpoint)
        view_name = f"{view.__module__}.{view.__name__}" if view else ""
        if identity.scope is TokenScope.RUN and view_name not in RUN_SCOPE_ENDPOINTS:
            raise Forbidden("This API token may only run workflows and presets.", code="token_scope")
        if endpoint == "events.live" and not guard.origin_ok():
            raise Forbidden("WebSocket from a foreign origin.", code="bad_origin")
        if identity.via == "session" and request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not guard.origin_ok() or not identity.csrf_token or not hmac.compare_digest(sent, identity.csrf_token):
                raise Forbidden("Missing or wrong CSRF token: reload the page.", code="csrf_failed")
        return None

    @app.after_request
    def _resign(response: Response) -> Response:
        fresh = g.get("resigned_cookie")
        if fresh:
            guard.set_session_cookie(response, fresh, int(services().auth.max_age.total_seconds()))
        return response


def _check_anonymous_write(guard: Guard, endpoint: str) -> None:
    writing = endpoint in ANONYMOUS_WRITES and request.method not in SAFE_METHODS
    if writing and (not request.is_json or not guard.origin_ok()):
        raise Forbidden("Sign in from Studio's own page.", code="csrf_failed")


def _identify(auth: AuthService) -> Identity | None:
    token = _bearer()
    if token:
        identity = auth.resolve_token(token)
        if identity is None:
            raise Unauthorized("The API token is invalid, expired or revoked.", code="bad_token")
        return identity
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    identity = auth.resolve_cookie(cookie)
    if identity is not None:
        g.resigned_cookie = auth.cookie_needs_resign(cookie)
    return identity


__all__ = ["Guard", "install_guard", "allow_run_scope", "current_identity", "require_admin", "StudioError",
           "SESSION_COOKIE", "CSRF_HEADER"]
