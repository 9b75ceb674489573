"""Console users, API keys and login throttling.

Passwords are Argon2id hashes. API keys are shown once (``shq_<prefix>_<secret>``) and
stored as the SHA-256 of the secret: keys are 256-bit random, so a slow hash adds nothing
but latency on every request (see docs/adr/0004-api-key-hashing.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shequ.core.clock import Clock, as_utc
from shequ.core.db import Base, UTCDateTime
from shequ.core.errors import Conflict, NotAuthenticated, NotFound, Throttled, ValidationFailed
from shequ.core.permissions import (
    PARTNER_ALLOWED,
    PERMISSIONS,
    ROLE_PERMISSIONS,
    Principal,
    Role,
)

_hasher = PasswordHasher()
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
KEY_PREFIX = "shq"


class User(Base):
    __tablename__ = "users"
    __audit_redact__ = ("password_hash",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    brand_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __audit_redact__ = ("key_hash",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    brand_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginThrottle(Base):
    """Failed logins per username, to lock out password guessing."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: Role
    brand_ids: tuple[int, ...]
    is_active: bool


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``secret`` is the only time the full key is visible."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    brand_ids: tuple[int, ...] | None
    secret: str


def _user_view(user: User) -> UserView:
    return UserView(user.id, user.username, user.display_name, Role(user.role),
                    tuple(user.brand_ids or ()), user.is_active)


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def _check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _validate_user_input(username: str, password: str, role: str, brand_ids: list[int]) -> Role:
    if not USERNAME_RE.match(username):
        raise ValidationFailed("invalid_username", "3-64 letters, digits or _.@-", "username")
    if len(password) < 8:
        raise ValidationFailed("password_too_short", "at least 8 characters", "password")
    try:
        parsed = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise ValidationFailed("unknown_role", f"one of {choices}", "role") from None
    if parsed is Role.PARTNER and not brand_ids:
        raise ValidationFailed("partner_needs_brands", "a partner needs a brand", "brand_ids")
    return parsed


def create_user(session: Session, clock: Clock, *, username: str, password: str, role: str,
                display_name: str | None = None, brand_ids: list[int] | None = None) -> UserView:
    """Create a console user; partners must be scoped to at least one brand."""
    brands = sorted(set(brand_ids or []))
    parsed = _validate_user_input(username, password, role, brands)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("username_taken", f"user {username!r} exists already", "username")
    user = User(username=username, display_name=display_name or username,
                password_hash=hash_password(password), role=parsed.value,
                brand_ids=brands, is_active=True, created_at=clock.now())
    session.add(user)
    session.flush()
    return _user_view(user)


def _throttle_row(session: Session, username: str, clock: Clock) -> LoginThrottle:
    row = session.get(LoginThrottle, username, with_for_update=True)
    if row is None:
        row = LoginThrottle(username=username, failures=0, first_failure_at=clock.now())
        session.add(row)
    return row


def _record_failure(row: LoginThrottle, clock: Clock) -> None:
    now = clock.now()
    if as_utc(row.first_failure_at) + LOCKOUT < now:
        row.failures, row.first_failure_at = 0, now
    row.failures += 1
    if row.failures >= MAX_FAILURES:
        row.locked_until = now + LOCKOUT


def authenticate(session: Session, clock: Clock, username: str, password: str) -> UserView:
    """Check a login; after 5 failures in 15 minutes the name is locked for 15 minutes."""
    row = _throttle_row(session, username[:64], clock)
    if row.locked_until is not None and as_utc(row.locked_until) > clock.now():
        raise Throttled("login_locked", "too many failed logins; try again in 15 minutes")
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active or not _check_password(user.password_hash, password):
        _record_failure(row, clock)
        # The failure must outlive the error we raise: commit it here, or the caller's
        # rollback would erase the count and the lockout would never trigger.
        session.commit()
        raise NotAuthenticated("bad_credentials", "wrong username or password")
    row.failures, row.locked_until = 0, None
    return _user_view(user)


def get_user(session: Session, user_id: int) -> UserView | None:
    """An active user by id, or None."""
    user = session.get(User, user_id)
    return _user_view(user) if user is not None and user.is_active else None


def list_users(session: Session) -> list[UserView]:
    """All users, oldest first."""
    return [_user_view(u) for u in session.scalars(select(User).order_by(User.id))]


def user_principal(user: UserView) -> Principal:
    """The permissions a console user acts with."""
    brands = frozenset(user.brand_ids) if user.role is Role.PARTNER else None
    return Principal(kind="user", id=user.id, name=user.username,
                     permissions=ROLE_PERMISSIONS[user.role], brand_ids=brands, role=user.role)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _validate_scopes(scopes: list[str], brand_ids: list[int] | None) -> tuple[str, ...]:
    if not scopes:
        raise ValidationFailed("no_scopes", "give at least one scope", "scopes")
    unknown = sorted(set(scopes) - PERMISSIONS)
    if unknown:
        raise ValidationFailed("unknown_scope", f"unknown scope(s): {', '.join(unknown)}",
                               "scopes")
    if brand_ids is not None and not set(scopes) <= PARTNER_ALLOWED:
        extra = ", ".join(sorted(set(scopes) - PARTNER_ALLOWED))
        raise ValidationFailed("scope_not_for_partner", f"partner keys cannot have {extra}",
                               "scopes")
    return tuple(sorted(set(scopes)))


def create_api_key(session: Session, clock: Clock, *, name: str, scopes: list[str],
                   brand_ids: list[int] | None = None,
                   created_by: int | None = None) -> IssuedKey:
    """Issue a key; ``brand_ids`` makes it a partner key limited to those brands."""
    if not name.strip() or len(name) > 128:
        raise ValidationFailed("invalid_name", "1-128 characters", "name")
    if brand_ids is not None and not brand_ids:
        raise ValidationFailed("partner_needs_brands", "give at least one brand", "brand_ids")
    clean = _validate_scopes(scopes, brand_ids)
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    row = ApiKey(name=name.strip(), prefix=prefix, key_hash=_digest(secret), scopes=list(clean),
                 brand_ids=sorted(set(brand_ids)) if brand_ids is not None else None,
                 created_by=created_by, created_at=clock.now())
    session.add(row)
    session.flush()
    brands = tuple(row.brand_ids) if row.brand_ids is not None else None
    return IssuedKey(row.id, row.name, prefix, clean, brands, f"{KEY_PREFIX}_{prefix}_{secret}")


# Keys verified in the last KEY_CACHE_SECONDS are not looked up again: a busy real-time
# path (moderation checks, event batches) would otherwise spend most of its time on the
# key's row. A revocation takes effect at once in the process that made it and within
# KEY_CACHE_SECONDS everywhere else. Keyed by prefix and digest, never by the secret.
KEY_CACHE_SECONDS = 1.0
_KEY_CACHE_MAX = 1_024
_key_cache: dict[str, tuple[float, Principal]] = {}
_key_cache_lock = threading.Lock()


def principal_for_key(session: Session, raw_key: str) -> Principal:
    """Resolve ``shq_<prefix>_<secret>`` to its principal, or refuse."""
    parts = raw_key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise NotAuthenticated("malformed_api_key", "API key is not of the form shq_<id>_<secret>")
    digest = _digest(parts[2])
    cache_key = f"{parts[1]}:{digest}"
    hit = _key_cache.get(cache_key)
    if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
        return hit[1]
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise NotAuthenticated("invalid_api_key", "unknown or wrong API key")
    if row.revoked_at is not None:
        raise NotAuthenticated("revoked_api_key", "this API key has been revoked")
    brands = frozenset(row.brand_ids) if row.brand_ids is not None else None
    principal = Principal(kind="apikey", id=row.id, name=row.name,
                          permissions=frozenset(row.scopes), brand_ids=brands,
                          role=Role.PARTNER if brands is not None else None)
    with _key_cache_lock:
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[cache_key] = (time.monotonic(), principal)
    return principal


def forget_verified_keys() -> None:
    """Drop every cached key verification (a key was revoked)."""
    with _key_cache_lock:
        _key_cache.clear()


def revoke_api_key(session: Session, clock: Clock, key_id: int) -> None:
    """Revoke a key for good; a revoked key is refused from the next request on."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("api_key_not_found", f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
    forget_verified_keys()


def list_api_keys(session: Session) -> list[dict[str, Any]]:
    """Keys without their secrets."""
    rows = session.scalars(select(ApiKey).order_by(ApiKey.id))
    return [{"id": r.id, "name": r.name, "prefix": r.prefix, "scopes": r.scopes,
             "brand_ids": r.brand_ids, "created_at": r.created_at, "revoked_at": r.revoked_at}
            for r in rows]


def ensure_user(session: Session, clock: Clock, *, username: str, password: str, role: str,
                display_name: str | None = None) -> UserView:
    """Create the user, or reset its password and role if it exists (used by the demo)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        return create_user(session, clock, username=username, password=password, role=role,
                           display_name=display_name)
    _validate_user_input(username, password, role, list(user.brand_ids or []))
    user.password_hash, user.role, user.is_active = hash_password(password), role, True
    session.flush()
    return _user_view(user)
