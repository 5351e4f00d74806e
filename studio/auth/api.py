"""Sign-in, sessions, the signed-in person's account and API tokens, and user administration."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from studio.apidocs import documented
from studio.auth.guard import allow_run_scope, current_identity, require_admin
from studio.auth.models import Role, TokenScope
from studio.auth.service import Identity
from studio.services import services
from studio.web import EmptyBody, UtcDatetime, parse_json

bp = Blueprint("auth", __name__, url_prefix="/api/auth")
users_bp = Blueprint("users", __name__, url_prefix="/api/users")


# Anyone may send these two: a name and a password fit in far less.
SIGN_IN_BYTES = 16 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Credentials(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class TokenRequest(Strict):
    name: str = Field(min_length=1, max_length=64)
    scope: TokenScope = TokenScope.FULL
    expires_at: UtcDatetime | None = Field(None, description="ISO 8601; without a time zone it is taken as UTC")

    @field_validator("expires_at")
    @classmethod
    def _bounded(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year > 9000:
            raise ValueError("must be before the year 9000")
        return value


class NewUser(Credentials):
    role: Role = Role.USER


class UserChange(Strict):
    role: Role | None = None
    disabled: bool | None = None


class PasswordReset(Strict):
    password: str = Field(max_length=1024)


def _me(identity: Identity) -> dict:
    return {
        "user": {"id": identity.user_id, "username": identity.username, "role": identity.role.value},
        "via": identity.via,
        "scope": identity.scope.value,
        "csrf_token": identity.csrf_token,
    }


def _signed_in(cookie: str, identity: Identity) -> Response:
    studio = services()
    response = jsonify(_me(identity))
    studio.guard.set_session_cookie(response, cookie, int(studio.auth.max_age.total_seconds()))
    return response


@bp.get("/state")
@documented("Whether Studio is set up and who is signed in", tags=["auth"])
def state() -> Response:
    from flask import g

    return jsonify({"setup_needed": services().users.setup_needed(), "authenticated": g.get("identity") is not None})


@bp.post("/setup")
@documented("Create the first admin account (only before setup)", body=Credentials, tags=["auth"])
def setup() -> Response:
    body = parse_json(Credentials, max_bytes=SIGN_IN_BYTES)
    studio = services()
    studio.users.setup_admin(body.username, body.password)
    cookie, identity = studio.auth.login(body.username, body.password, ip=studio.guard.client_ip(),
                                         user_agent=request.user_agent.string)
    return _signed_in(cookie, identity)


@bp.post("/login")
@documented("Sign in: sets the session cookie, answers the CSRF token", body=Credentials, tags=["auth"])
def login() -> Response:
    body = parse_json(Credentials, max_bytes=SIGN_IN_BYTES)
    studio = services()
    cookie, identity = studio.auth.login(body.username, body.password, ip=studio.guard.client_ip(),
                                         user_agent=request.user_agent.string)
    return _signed_in(cookie, identity)


@bp.post("/logout")
@documented("Sign out of this session", body=EmptyBody, tags=["auth"])
def logout() -> Response:
    parse_json(EmptyBody)
    studio = services()
    studio.auth.logout(current_identity())
    response = jsonify({"ok": True})
    studio.guard.clear_session_cookie(response)
    return response


@bp.get("/me")
@documented("The signed-in account", tags=["auth"])
@allow_run_scope
def me() -> Response:
    return jsonify(_me(current_identity()))


@bp.post("/password")
@documented("Change one's own password", body=PasswordChange, tags=["auth"])
def change_password() -> Response:
    body = parse_json(PasswordChange)
    services().users.change_password(current_identity(), body.current_password, body.new_password)
    return jsonify({"ok": True})


@bp.get("/tokens")
@documented("One's API tokens (never the secrets)", tags=["auth"])
def list_tokens() -> Response:
    return jsonify({"items": services().auth.list_tokens(current_identity().user_id)})


@bp.post("/tokens")
@documented("Create an API token; its secret is shown once", body=TokenRequest, answers={201: {}}, tags=["auth"])
def create_token() -> Response:
    body = parse_json(TokenRequest)
    plain, view = services().auth.create_token(current_identity(), name=body.name, scope=body.scope,
                                               expires_at=body.expires_at)
    response = jsonify({**view, "token": plain})
    response.status_code = 201
    return response


@bp.delete("/tokens/<int:token_id>")
@documented("Revoke an API token", tags=["auth"])
def revoke_token(token_id: int) -> Response:
    services().auth.revoke_token(current_identity(), token_id)
    return jsonify({"ok": True})


@users_bp.get("")
@documented("List accounts (admin)", tags=["users"])
def list_users() -> Response:
    require_admin()
    return jsonify({"items": services().users.list_users()})


@users_bp.post("")
@documented("Create an account (admin)", body=NewUser, answers={201: {}}, tags=["users"])
def create_user() -> Response:
    actor = require_admin()
    body = parse_json(NewUser)
    response = jsonify(services().users.create_user(body.username, body.password, body.role, actor=actor.username))
    response.status_code = 201
    return response


@users_bp.patch("/<int:user_id>")
@documented("Change an account's role or disable it (admin)", body=UserChange, tags=["users"])
def update_user(user_id: int) -> Response:
    actor = require_admin()
    body = parse_json(UserChange)
    return jsonify(services().users.update_user(user_id, role=body.role, disabled=body.disabled, actor=actor))


@users_bp.post("/<int:user_id>/password")
@documented("Set an account's password (admin)", body=PasswordReset, tags=["users"])
def reset_password(user_id: int) -> Response:
    actor = require_admin()
    body = parse_json(PasswordReset)
    services().users.reset_password(user_id, body.password, actor=actor)
    return jsonify({"ok": True})


@users_bp.post("/<int:user_id>/revoke-sessions")
@documented("Sign an account out everywhere (admin)", body=EmptyBody, tags=["users"])
def revoke_sessions(user_id: int) -> Response:
    actor = require_admin()
    parse_json(EmptyBody)
    services().users.revoke_sessions(user_id, actor=actor)
    return jsonify({"ok": True})


@users_bp.delete("/<int:user_id>")
@documented("Delete an account (admin)", tags=["users"])
def delete_user(user_id: int) -> Response:
    services().users.delete_user(user_id, actor=require_admin())
    return jsonify({"ok": True})
