"""The people who may use Studio: the first admin, accounts, roles and passwords.

Anything that changes who someone is or what they may do also ends the sessions it should (a
disabled account, a reset password), so no change waits for a cookie to expire.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from studio.auth.models import ApiToken, AuthSession, Role, User
from studio.auth.passwords import hash_password, password_problem, verify_password
from studio.auth.service import Identity, user_view
from studio.db import write_with_retry
from studio.errors import BadRequest, Conflict, NotFound
from studio.events import EventBus

log = logging.getLogger(__name__)

USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def revoke_all_sessions(session: Session, user_id: int, keep: str | None = None) -> None:
    """Ends every live session of ``user_id`` (except ``keep``, the one making the request)."""
    statement = (
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if keep:
        statement = statement.where(col(AuthSession.id_hash) != keep)
    session.execute(statement)


def revoke_all_tokens(session: Session, user_id: int) -> None:
    """Ends every API token of ``user_id``: an admin's "sign out everywhere" means scripts too."""
    session.execute(update(ApiToken).where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
                    .values(revoked_at=datetime.now(UTC)))


class UserDirectory:
    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._set_up = False
        self._on_deleted: list[Callable[[int], object]] = []

    def on_deleted(self, listener: Callable[[int], object]) -> None:
        """``listener(user_id)`` runs after a user is deleted: their jobs and activity go with them."""
        self._on_deleted.append(listener)

    def setup_needed(self) -> bool:
        """True until the first admin exists; then cached, since the last admin cannot be removed."""
        if self._set_up:
            return False
        with Session(self.engine) as session:
            admins = session.exec(select(func.count()).select_from(User).where(User.role == Role.ADMIN)).one()
        self._set_up = admins > 0
        return not self._set_up

    def create_user(self, username: str, password: str, role: Role, *, actor: str | None = None) -> dict:
        username = username.strip()
        if not USERNAME.fullmatch(username):
            raise BadRequest("Use 1-64 letters, digits, '.', '-' or '_' for the user name.",
                             fields={"username": "invalid user name"})
        problem = password_problem(password, username)
        if problem:
            raise BadRequest(problem, fields={"password": problem})

        def work(session: Session) -> dict:
            exists = session.exec(select(User).where(func.lower(User.username) == username.lower())).first()
            if exists:
                raise Conflict(f"A user named {username!r} already exists.", code="user_exists")
            user = User(username=username, password_hash=hash_password(password), role=role)
            session.add(user)
            session.flush()
            return user_view(user)

        created = write_with_retry(self.engine, work)
        self.bus.publish("auth/user_changed", {"action": "created", "username": username, "role": role.value,
                                               "actor": actor})
        return created

    def setup_admin(self, username: str, password: str) -> dict:
        """Creates the first admin; refused once one exists (the setup page closes for good)."""
        if not self.setup_needed():
            raise Conflict("Studio is already set up. Sign in instead.", code="already_set_up")
        return self.create_user(username, password, Role.ADMIN, actor="setup")

    def list_users(self) -> list[dict]:
        with Session(self.engine) as session:
            return [user_view(u) for u in session.exec(select(User).order_by(col(User.id)))]

    def update_user(self, user_id: int, *, role: Role | None, disabled: bool | None, actor: Identity) -> dict:
        def work(session: Session) -> dict:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("No such user.")
            if user.id == actor.user_id and (disabled or (role and role is not Role.ADMIN)):
                raise Conflict("You cannot demote or disable yourself.", code="self_lockout")
            if role is not None:
                user.role = role
            if disabled is not None:
                user.disabled = disabled
            session.add(user)
            if disabled:
                revoke_all_sessions(session, user_id)
            return user_view(user)

        changed = write_with_retry(self.engine, work)
        self.bus.publish("auth/user_changed", {"action": "updated", "username": changed["username"],
                                               "role": changed["role"], "disabled": changed["disabled"],
                                               "actor": actor.username})
        return changed

    def delete_user(self, user_id: int, *, actor: Identity) -> None:
        if user_id == actor.user_id:
            raise Conflict("You cannot delete yourself.", code="self_lockout")

        def work(session: Session) -> str:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("No such user.")
            revoke_all_sessions(session, user_id)
            session.delete(user)
            return user.username

        username = write_with_retry(self.engine, work)
        for listener in self._on_deleted:
            try:
                listener(user_id)
            except Exception:  # noqa: BLE001 - logged; the user is gone either way
                log.exception("cleaning up after deleting user %s failed", user_id)
        self.bus.publish("auth/user_changed", {"action": "deleted", "username": username, "actor": actor.username})

    def change_password(self, identity: Identity, current: str, new: str) -> None:
        """Ends every other session and revokes nothing else: tokens are separate credentials."""
        problem = password_problem(new, identity.username)
        if problem:
            raise BadRequest(problem, fields={"new_password": problem})

        def work(session: Session) -> None:
            user = session.get(User, identity.user_id)
            if user is None or not verify_password(current, user.password_hash):
                raise BadRequest("The current password is wrong.", fields={"current_password": "wrong password"})
            user.password_hash = hash_password(new)
            user.password_changed_at = datetime.now(UTC)
            session.add(user)
            revoke_all_sessions(session, identity.user_id, keep=identity.session_id_hash)

        write_with_retry(self.engine, work)
        self.bus.publish("auth/user_changed", {"action": "password_changed", "username": identity.username,
                                               "actor": identity.username})

    def reset_password(self, user_id: int, new: str, *, actor: Identity) -> None:
        def work(session: Session) -> str:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("No such user.")
            problem = password_problem(new, user.username)
            if problem:
                raise BadRequest(problem, fields={"password": problem})
            user.password_hash = hash_password(new)
            user.password_changed_at = datetime.now(UTC)
            session.add(user)
            revoke_all_sessions(session, user_id)
            revoke_all_tokens(session, user_id)  # a reset means the account may be compromised
            return user.username

        username = write_with_retry(self.engine, work)
        self.bus.publish("auth/user_changed", {"action": "password_reset", "username": username,
                                               "actor": actor.username})

    def revoke_sessions(self, user_id: int, *, actor: Identity) -> None:
        def work(session: Session) -> None:
            revoke_all_sessions(session, user_id)
            revoke_all_tokens(session, user_id)

        write_with_retry(self.engine, work)
        self.bus.publish("auth/user_changed", {"action": "sessions_revoked", "user_id": user_id,
                                               "actor": actor.username})
