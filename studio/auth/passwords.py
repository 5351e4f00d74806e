"""Password hashing with scrypt (standard library, memory-hard).

Stored as ``scrypt$n$r$p$salt$hash`` so the cost can be raised later: ``needs_rehash`` says when a
stored hash uses weaker parameters than today's, and the login path upgrades it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${N}${R}${P}$")


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why a new password is refused, in words; None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if username and password.lower() == username.lower():
        return "The password cannot be the user name."
    if password.lower() in {"changeme123", "password123", "1234567890", "qwertyuiop"}:
        return "That password is too common."
    return None


# A hash to verify against when the user does not exist, so timing does not reveal user names.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
