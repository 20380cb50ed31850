"""The acquiring bank's notification protocol (SPEC §4): signatures and reading references.

Pure: no Flask, no database. `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>." + raw body)>`; several `v1` values are allowed (secret rotation at the bank).
"""

from __future__ import annotations

import hashlib
import hmac

from payments.references import find_references, kind_of

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The notification is not provably from the bank (bad, missing or stale signature)."""


def sign(secret: str, raw_body: bytes, timestamp: int) -> str:
    """The `X-Signature` header value a bank (or our simulator) sends with `raw_body`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str | None, raw_body: bytes, now: int) -> None:
    """Raise SignatureError unless `header` signs `raw_body` within ±300 s of `now`.

    Checked before the body is parsed, so nothing unauthenticated reaches the JSON parser.
    """
    if not header:
        raise SignatureError("missing X-Signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed X-Signature")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("stale X-Signature timestamp")
    expected = sign(secret, raw_body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("X-Signature does not match")


def our_reference(description: str) -> tuple[str, str] | None:
    """The first valid reference in a transfer note as (kind, reference), or None.

    Payer banks mangle notes (spaces, case, punctuation); `find_references` normalises first.
    """
    for reference in find_references(description or ""):
        return kind_of(reference), reference
    return None
