"""Users, roles and device API keys. Passwords are hashed with Argon2id (argon2-cffi)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import audit
from core.clock import utcnow
from core.db import Base, BigId, Database
from core.errors import Conflict, NotFound, Unauthorized, invalid


class Role(StrEnum):
    COMMUTER = "commuter"
    VENDOR = "vendor"
    ATTENDANT = "attendant"
    VALIDATOR = "validator"
    FINANCE = "finance"
    ADMIN = "admin"


USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_hasher = PasswordHasher()
# A valid hash of nothing in particular: verifying against it keeps the timing of an unknown
# username equal to that of a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(120), default="")
    roles: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class ApiKey(Base):
    """A device key: only a SHA-256 of the secret is stored; the prefix finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


def _check_roles(roles: list[str]) -> str:
    unknown = [r for r in roles if r not in Role.__members__.values()]
    if unknown or not roles:
        raise invalid("roles", f"unknown or missing roles: {', '.join(unknown) or 'none'}")
    return ",".join(sorted(set(roles)))


def _check_password(password: str) -> None:
    if not 4 <= len(password) <= 256:
        raise invalid("password", "password must be 4 to 256 characters")


def add_user(
    session: Session, username: str, password: str, roles: list[str], display_name: str = ""
) -> User:
    """Create a user in the caller's transaction; 409 when the username is taken."""
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise invalid("username", "3-64 lower-case letters, digits, '.', '_' or '-'")
    _check_password(password)
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        roles=_check_roles(roles),
        display_name=display_name or username,
    )
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("username already taken", code="username_taken") from exc
    return user


def register_commuter(db: Database, username: str, password: str, display_name: str = "") -> User:
    """Self-registration: always and only the commuter role."""
    with db.transaction() as session:
        user = add_user(session, username, password, [Role.COMMUTER], display_name)
        audit.record(
            session,
            actor=user.username,
            action="user.register",
            entity_type="user",
            entity_id=user.id,
            after={"roles": user.roles},
        )
        return user


def create_user(
    db: Database, actor: str, username: str, password: str, roles: list[str], display_name: str = ""
) -> User:
    """Admin: create a user with any roles, audited."""
    with db.transaction() as session:
        user = add_user(session, username, password, roles, display_name)
        audit.record(
            session,
            actor=actor,
            action="user.create",
            entity_type="user",
            entity_id=user.id,
            after={"username": user.username, "roles": user.roles},
        )
        return user


def update_user(
    db: Database,
    actor: str,
    user_id: int,
    *,
    roles: list[str] | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Admin: change roles, deactivate, or reset a password; audited (never the password)."""
    with db.transaction() as session:
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound("no such user")
        before = {"roles": user.roles, "active": user.active}
        if roles is not None:
            user.roles = _check_roles(roles)
        if active is not None:
            user.active = active
        if password is not None:
            _check_password(password)
            user.password_hash = _hasher.hash(password)
        audit.record(
            session,
            actor=actor,
            action="user.update",
            entity_type="user",
            entity_id=user.id,
            before=before,
            after={
                "roles": user.roles,
                "active": user.active,
                "password_reset": password is not None,
            },
        )
        return user


def authenticate(db: Database, username: str, password: str) -> User:
    """Check a username and password; 401 with one message for every failure."""
    with db.reader() as session:
        user = session.scalars(
            select(User).where(User.username == username.strip().lower())
        ).first()
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None or not user.active:
            raise Unauthorized("wrong username or password", code="invalid_credentials")
        session.expunge(user)
        return user


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def issue_api_key(
    session: Session,
    user_id: int,
    label: str = "",
    *,
    prefix: str | None = None,
    secret: str | None = None,
) -> str:
    """Create a device API key; returns the full secret (shown once, stored hashed).

    `prefix`/`secret` are only given by demo seeding, which derives them from the instance
    secret so the demo gate key can be printed at every start.
    """
    prefix = prefix or secrets.token_hex(6)
    secret = secret or secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            user_id=user_id,
            prefix=prefix,
            label=label,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        )
    )
    session.flush()
    return f"hck_{prefix}_{secret}"


def user_for_api_key(db: Database, presented: str) -> User | None:
    """The active user behind a presented API key, or None (constant-time comparison)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "hck":
        return None
    with db.reader() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.prefix == parts[1])).first()
        if key is None or key.revoked_at is not None:
            return None
        digest = hashlib.sha256(parts[2].encode()).hexdigest()
        if not hmac.compare_digest(digest, key.secret_hash):
            return None
        user = session.get(User, key.user_id)
        if user is None or not user.active:
            return None
        session.expunge(user)
        return user


def create_api_key(db: Database, actor: str, user_id: int, label: str = "") -> str:
    """Admin: issue a device API key for a user, audited (the secret is never stored)."""
    with db.transaction() as session:
        if session.get(User, user_id) is None:
            raise NotFound("no such user")
        secret = issue_api_key(session, user_id, label)
        audit.record(
            session,
            actor=actor,
            action="api_key.issue",
            entity_type="user",
            entity_id=user_id,
            after={"prefix": secret.split("_")[1], "label": label},
        )
        return secret


def list_users(db: Database, limit: int, starting_after: int | None = None) -> dict[str, object]:
    """Users by id, one page."""
    from core.pagination import paginate

    with db.reader() as session:
        page = paginate(session, select(User), User.id, limit, starting_after)
        for user in page["data"]:
            session.expunge(user)
        return dict(page)
