"""Signing keys by purpose (token, ticket, bundle, report): ECDSA P-256, rotated without breaks.

A rotation adds a new `current` key and turns the old one into `previous`, which keeps
verifying until it is retired. Private keys are stored encrypted with the instance's key
encryption key. Key ids are small integers because the TV2 credential carries a one-byte kid.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import JSON, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import audit
from core.clock import utcnow
from core.db import Base, BigId, Database
from core.errors import Conflict, NotFound


class Purpose(StrEnum):
    TOKEN = "token"  # noqa: S105 - a key purpose, not a secret
    TICKET = "ticket"
    BUNDLE = "bundle"
    REPORT = "report"


class KeyStatus(StrEnum):
    NEXT = "next"
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"


# Tickets live up to 72 h: an issuer key must keep verifying that long after it stops signing.
MIN_PREVIOUS_LIFETIME = timedelta(hours=72)


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("purpose", "kid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(20))
    kid: Mapped[int]
    status: Mapped[str] = mapped_column(String(20))
    private_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


@dataclass(frozen=True)
class LoadedKey:
    kid: int
    status: str
    private_key: ec.EllipticCurvePrivateKey
    public_key: ec.EllipticCurvePublicKey
    public_jwk: dict[str, Any]
    activated_at: datetime | None
    retired_at: datetime | None


def public_jwk(public_key: ec.EllipticCurvePublicKey, kid: int) -> dict[str, Any]:
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    jwk.update({"kid": str(kid), "use": "sig", "alg": "ES256"})
    return jwk  # type: ignore[no-any-return]


class KeyRing:
    """Reads keys with a short cache so a rotation reaches every process within seconds."""

    def __init__(self, db: Database, encryption_key: str, ttl: float = 15.0) -> None:
        self.db = db
        self._password = encryption_key.encode()
        self._ttl = ttl
        self._cache: dict[str, tuple[float, list[LoadedKey]]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def keys(self, purpose: Purpose) -> list[LoadedKey]:
        """All non-retired keys of a purpose; creates the first key on first use."""
        with self._lock:
            hit = self._cache.get(purpose)
            if hit and time.monotonic() - hit[0] < self._ttl:
                return hit[1]
        loaded = self._load(purpose)
        if not any(k.status == KeyStatus.CURRENT for k in loaded):
            rotate(self.db, self, purpose, actor="system")
            loaded = self._load(purpose)
        with self._lock:
            self._cache[purpose] = (time.monotonic(), loaded)
        return loaded

    def _load(self, purpose: Purpose) -> list[LoadedKey]:
        with self.db.reader() as session:
            rows = session.scalars(
                select(SigningKey)
                .where(SigningKey.purpose == purpose, SigningKey.status != KeyStatus.RETIRED)
                .order_by(SigningKey.kid)
            ).all()
            return [self._decode(row) for row in rows]

    def _decode(self, row: SigningKey) -> LoadedKey:
        private = serialization.load_pem_private_key(row.private_pem.encode(), self._password)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return LoadedKey(
            row.kid,
            row.status,
            private,
            private.public_key(),
            row.public_jwk,
            row.activated_at,
            row.retired_at,
        )

    def current(self, purpose: Purpose) -> LoadedKey:
        """The key that signs now."""
        return next(k for k in self.keys(purpose) if k.status == KeyStatus.CURRENT)

    def verifying(self, purpose: Purpose, kid: int) -> LoadedKey | None:
        """A key that may still verify signatures (current, previous or next), or None."""
        return next((k for k in self.keys(purpose) if k.kid == kid), None)

    def encrypt(self, private_key: ec.EllipticCurvePrivateKey) -> str:
        return private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        ).decode()


def _next_kid(session: Session, purpose: str) -> int:
    highest = session.scalar(select(func.max(SigningKey.kid)).where(SigningKey.purpose == purpose))
    kid = (highest or 0) + 1
    if kid > 255:
        raise Conflict("key ids of this purpose are exhausted (one byte)", code="kid_exhausted")
    return kid


def rotate(db: Database, ring: KeyRing, purpose: Purpose, actor: str) -> int:
    """Add a new current key; the old current becomes `previous` and keeps verifying.

    Guarantees: one transaction; previous keys older than 72 h after their switch are retired.
    Returns the new kid.
    """
    now = utcnow()
    with db.transaction() as session:
        rows = session.scalars(
            select(SigningKey).where(SigningKey.purpose == purpose).with_for_update()
        ).all()
        for row in rows:
            if row.status == KeyStatus.CURRENT:
                row.status, row.retired_at = KeyStatus.PREVIOUS, now
            elif (
                row.status == KeyStatus.PREVIOUS
                and row.retired_at
                and (now - row.retired_at >= MIN_PREVIOUS_LIFETIME)
            ):
                row.status = KeyStatus.RETIRED
        private = ec.generate_private_key(ec.SECP256R1())
        kid = _next_kid(session, purpose)
        session.add(
            SigningKey(
                purpose=purpose,
                kid=kid,
                status=KeyStatus.CURRENT,
                private_pem=ring.encrypt(private),
                activated_at=now,
                public_jwk=public_jwk(private.public_key(), kid),
            )
        )
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="key.rotate",
            entity_type="signing_key",
            entity_id=f"{purpose}:{kid}",
            after={"kid": kid, "status": "current"},
        )
    ring.invalidate()
    return kid


def retire(db: Database, ring: KeyRing, purpose: Purpose, kid: int, actor: str) -> None:
    """Stop a previous key from verifying. The current key cannot be retired."""
    with db.transaction() as session:
        row = session.scalars(
            select(SigningKey).where(SigningKey.purpose == purpose, SigningKey.kid == kid)
        ).first()
        if row is None:
            raise NotFound("no such key")
        if row.status == KeyStatus.CURRENT:
            raise Conflict("rotate before retiring the current key", code="key_current")
        before = row.status
        row.status = KeyStatus.RETIRED
        row.retired_at = row.retired_at or utcnow()
        audit.record(
            session,
            actor=actor,
            action="key.retire",
            entity_type="signing_key",
            entity_id=f"{purpose}:{kid}",
            before={"status": before},
            after={"status": "retired"},
        )
    ring.invalidate()


def jwks(ring: KeyRing, purpose: Purpose) -> dict[str, Any]:
    """The public JWKS of a purpose (every key that still verifies)."""
    return {"keys": [k.public_jwk for k in ring.keys(purpose)]}
