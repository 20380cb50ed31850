"""The issuer: which ticket key signs, the issuer keys gates trust, credentials, tokens, bundles.

Keys come from the core key ring (purposes `ticket` and `bundle`). After `cashless keys rotate
--purpose ticket` the new key is published at once (bundles list every key that still verifies)
but signs nothing for `SIGNING_HANDOVER`: a gate that refreshed its bundle within that time knows
the new key before any phone shows a credential signed with it. Meanwhile the previous key keeps
signing; it verifies until its last credential (72 h) has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.keys import KeyRing as CoreKeyRing
from core.keys import KeyStatus, LoadedKey, Purpose
from ticketing import bundle as bundle_rules
from ticketing import credential as tv2
from ticketing.fares import CLOCK_SLACK_SECONDS, credential_window
from ticketing.validation import IssuerKey

SIGNING_HANDOVER = timedelta(hours=1)
CREDENTIAL_LIFETIME = timedelta(seconds=tv2.MAX_CREDENTIAL_LIFETIME)


@dataclass(frozen=True)
class IssuedCredential:
    raw: bytes  # the 125-byte TV2 credential
    kid: int
    not_before: int
    not_after: int


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


class Issuer:
    """Signs credentials, fallback tokens and bundles with the keys of the core key ring.

    The ticket keys are read when the issuer is made, which views do before a service opens its
    transaction: a key-ring read inside a write transaction would wait on SQLite's write lock.
    """

    def __init__(self, keyring: CoreKeyRing, holder_secret: bytes) -> None:
        self.keyring = keyring
        self.holder_secret = holder_secret
        self.ticket_keys = keyring.keys(Purpose.TICKET)

    # -- keys ---------------------------------------------------------------------------------
    def signing_key(self, now: datetime) -> LoadedKey:
        """The ticket key that signs at `now` (the newest current key after its handover)."""
        keys = self.ticket_keys
        current = next(k for k in keys if k.status == KeyStatus.CURRENT)
        if current.activated_at is None or now - current.activated_at >= SIGNING_HANDOVER:
            return current
        handing_over = [
            k
            for k in keys
            if k.status == KeyStatus.PREVIOUS
            and k.retired_at is not None
            and now - k.retired_at < SIGNING_HANDOVER
        ]
        return max(handing_over, key=lambda k: k.kid, default=current)

    def issuer_keys(self) -> list[IssuerKey]:
        """Every ticket key that still verifies, with the validity gates check (SPEC §6)."""
        out = []
        for key in self.ticket_keys:
            start = _epoch(key.activated_at) - CLOCK_SLACK_SECONDS if key.activated_at else 0
            end = None
            if key.status == KeyStatus.PREVIOUS and key.retired_at is not None:
                # It may have signed until the handover ended; its last credential lives 72 h.
                end = _epoch(key.retired_at + SIGNING_HANDOVER + CREDENTIAL_LIFETIME)
            out.append(IssuerKey(key.kid, key.public_key, max(0, start), end))
        return out

    # -- credentials and tokens ---------------------------------------------------------------
    def holder_ref(self, user_id: int) -> bytes:
        return tv2.holder_ref(self.holder_secret, user_id)

    def credential(
        self,
        *,
        ticket_id: int,
        fare_product: int,
        user_id: int,
        device_key: bytes,
        valid_from: datetime,
        valid_until: datetime,
        now: datetime,
    ) -> IssuedCredential:
        """A TV2 credential bound to `device_key`: ≤ 72 h, never past the ticket's validity.

        Raises `FareRuleError` (code `ticket_expired`) when the validity has ended.
        """
        not_before, not_after = credential_window(
            _epoch(now), _epoch(valid_from), _epoch(valid_until)
        )
        key = self.signing_key(now)
        fields = tv2.build_credential(
            key_id=key.kid,
            ticket_id=ticket_id,
            fare_product=fare_product,
            not_before=not_before,
            not_after=not_after,
            holder_ref=self.holder_ref(user_id),
            device_public_key=device_key,
        )
        return IssuedCredential(
            tv2.sign_credential(key.private_key, fields), key.kid, not_before, not_after
        )

    def fallback_tokens(
        self, *, ticket_id: int, fare_product: int, steps: range, now: datetime
    ) -> list[tuple[int, str]]:
        """One issuer-signed `TVF:` token per step (the caller bounds the steps)."""
        key = self.signing_key(now)
        return [
            (
                step,
                tv2.make_fallback_token(
                    key.private_key,
                    key_id=key.kid,
                    ticket_id=ticket_id,
                    fare_product=fare_product,
                    step=step,
                ),
            )
            for step in steps
        ]

    # -- bundles ------------------------------------------------------------------------------
    def sign_bundle(self, payload: dict[str, Any]) -> str:
        """The payload as a JWS (ES256) under the current bundle key, its kid in the header.

        Reads the key ring: call it outside a transaction."""
        key = self.keyring.current(Purpose.BUNDLE)
        return bundle_rules.sign_bundle(payload, key.private_key, str(key.kid))

    def bundle_public_jwk(self) -> dict[str, Any]:
        """The public JWK of the current bundle key, as gates receive it out of band."""
        key = self.keyring.current(Purpose.BUNDLE)
        return dict(key.public_jwk)
