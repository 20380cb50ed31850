"""Deciding one scan at a gate: the one code path of online and offline validation (SPEC §6, §13).

A pure rule module: no Flask, no database, no clock, no I/O. Everything that differs between the
server and an offline gate comes in as values (key ring, revocations, product rules, the validator)
or through the ``GateState`` port (replay, anti-passback and single-ride consumption).

Checks run in the order of SPEC §13 "Decisions"; the first failing check names the reason.
``validator_unknown`` is checked first, although listed last: mode, route and anti-passback cannot
be judged for a device nobody registered, and an unregistered device must learn nothing about the
ticket it scanned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from ticketing.credential import (
    STEP_SECONDS,
    DynamicQR,
    FallbackToken,
    MalformedQR,
    decompress_public_key,
    parse_qr,
    verify_raw,
)

STEP_WINDOW_PAST = 90  # seconds a step may lag the validator clock: a screenshot dies in 2 min
STEP_WINDOW_FUTURE = 30  # seconds a step may lead it (phone clock slightly ahead)
DEFAULT_PASSBACK_SECONDS = 900
STEP_MEMORY_SECONDS = 2 * 3600
# A single ride lives 24 h from purchase (SPEC §13), so no credential or fallback token of a
# ride consumed now can still be valid 24 h later, whatever the scanned credential's own expiry.
CONSUMED_MEMORY_SECONDS = 24 * 3600


class Reason(StrEnum):
    """Reason codes of a decision, in the order the checks run (SPEC §13)."""

    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_ISSUER_SIGNATURE = "bad_issuer_signature"
    BAD_DEVICE_SIGNATURE = "bad_device_signature"
    STEP_TOO_OLD = "step_too_old"
    STEP_IN_FUTURE = "step_in_future"
    CREDENTIAL_EXPIRED = "credential_expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    WRONG_MODE = "wrong_mode"
    WRONG_ROUTE = "wrong_route"
    CONSUMED = "consumed"
    REPLAYED = "replayed"
    PASSBACK = "passback"
    VALIDATOR_UNKNOWN = "validator_unknown"


class Outcome(StrEnum):
    ACCEPT = "accept"
    DENY = "deny"


class Mode(StrEnum):
    BUS = "bus"
    METRO = "metro"


class ProductKind(StrEnum):
    SINGLE_RIDE = "single_ride"
    # "pass" here is a fare product, not a password.
    DAY_PASS = "day_pass"  # noqa: S105
    MONTHLY_PASS = "monthly_pass"  # noqa: S105


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """A registered validator: a bus validator sits on a route, a metro gate at a station."""

    validator_id: str
    mode: Mode
    route: str | None = None
    station: str | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def place(self) -> str | None:
        """The route (bus) or station (metro) that product route lists are matched against."""
        return self.route if self.mode is Mode.BUS else self.station


@dataclass(frozen=True, slots=True)
class ProductRule:
    """What a gate needs to know about a fare product; validity dates come from the credential.

    ``routes`` lists the route codes (bus) or station codes (metro) where the product is valid;
    ``None`` means everywhere in its mode.
    """

    product_id: int
    kind: ProductKind
    mode: Mode
    routes: frozenset[str] | None = None
    passback_seconds: int = DEFAULT_PASSBACK_SECONDS


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """An issuer public key with its validity; ``not_after=None`` means not yet retired."""

    kid: int
    public_key: ec.EllipticCurvePublicKey
    not_before: int
    not_after: int | None = None

    def is_valid_at(self, now: int) -> bool:
        """True iff ``not_before <= now <= not_after`` (both inclusive)."""
        return self.not_before <= now and (self.not_after is None or now <= self.not_after)


class KeyRing:
    """Issuer keys by integer key id, loaded once so a scan never parses key material."""

    def __init__(self, keys: Iterable[IssuerKey]) -> None:
        self._keys: dict[int, IssuerKey] = {}
        for key in keys:
            if key.kid in self._keys:
                raise ValueError(f"duplicate issuer key id {key.kid}")
            self._keys[key.kid] = key

    def lookup(self, kid: int, now: int) -> IssuerKey | None:
        """Return the key for ``kid`` if it is known and valid at ``now``, else None."""
        key = self._keys.get(kid)
        if key is None or not key.is_valid_at(now):
            return None
        return key

    def kids(self) -> list[int]:
        """All key ids in the ring, valid or not, in ascending order."""
        return sorted(self._keys)


class RevocationLookup(Protocol):
    """Answers whether a ticket (or one device binding of it) is revoked at ``now``."""

    def is_revoked(self, ticket_id: int, device_key: bytes | None, now: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation entry, in force while ``now <= until``.

    Without ``device_key`` the whole ticket is revoked (dynamic and fallback codes); with it only
    credentials bound to that 33-byte device key are (a lost phone re-bound to a new one).
    """

    ticket_id: int
    until: int
    device_key: bytes | None = None


class RevocationList:
    """An in-memory ``RevocationLookup`` over a set of entries."""

    def __init__(self, entries: Iterable[Revocation] = ()) -> None:
        self._by_ticket: dict[int, list[Revocation]] = {}
        for entry in entries:
            self._by_ticket.setdefault(entry.ticket_id, []).append(entry)

    def is_revoked(self, ticket_id: int, device_key: bytes | None, now: int) -> bool:
        """True iff an entry for the ticket is in force and covers this device key."""
        for entry in self._by_ticket.get(ticket_id, ()):
            if now <= entry.until and (entry.device_key is None or entry.device_key == device_key):
                return True
        return False

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_ticket.values())


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """The trusted, read-only inputs of a decision: from the database online, a bundle offline."""

    keys: KeyRing
    revocations: RevocationLookup
    products: Mapping[int, ProductRule]


# --- the state port --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptRecord:
    """What an accepted scan leaves behind, with how long each fact must be remembered."""

    validator_id: str
    ticket_id: int
    step: int
    at: int
    consumes_ride: bool
    step_until: int
    passback_until: int
    consumed_until: int


class GateState(Protocol):
    """Replay, anti-passback and consumption memory of one validator (offline) or all (online)."""

    def step_accepted(self, validator_id: str, ticket_id: int, step: int) -> bool:
        """Has (ticket, step) already been accepted at this validator?"""
        ...

    def last_accept_at(self, validator_id: str, ticket_id: int) -> int | None:
        """Unix time of the ticket's last accepted scan at this validator, if remembered."""
        ...

    def ride_consumed(self, ticket_id: int) -> bool:
        """Has this single ride already been consumed by an accepted scan?"""
        ...

    def record_accept(self, record: AcceptRecord) -> bool:
        """Remember an accept; return False (recording nothing) if a conflicting accept of the
        same (validator, ticket, step), or of the same single ride, got there first."""
        ...


# --- the decision ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one scan.

    ``ticket_id``, ``fare_product``, ``step`` and ``skew`` (``now − 30·step``) are filled only once
    the signatures verified, so a forged code never names a real ticket.
    """

    decision: Outcome
    reason: Reason
    ticket_id: int | None = None
    step: int | None = None
    skew: int | None = None
    fare_product: int | None = None

    @property
    def accepted(self) -> bool:
        return self.decision is Outcome.ACCEPT

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as their string values)."""
        return {
            "decision": str(self.decision),
            "reason": str(self.reason),
            "ticket_id": self.ticket_id,
            "fare_product": self.fare_product,
            "step": self.step,
            "skew": self.skew,
        }


@dataclass(frozen=True, slots=True)
class _Authentic:
    """The facts of a scan whose signatures verified."""

    ticket_id: int
    fare_product: int
    step: int
    device_key: bytes | None
    not_before: int | None
    not_after: int | None


def _about(scan: _Authentic, reason: Reason, now: int) -> Decision:
    outcome = Outcome.ACCEPT if reason is Reason.OK else Outcome.DENY
    skew = now - STEP_SECONDS * scan.step
    return Decision(outcome, reason, scan.ticket_id, scan.step, skew, scan.fare_product)


def step_window_reason(now: int, step: int) -> Reason | None:
    """Return the window failure for ``step`` at ``now``, or None when
    ``-90 <= 30·step − now <= 30`` (both bounds inclusive)."""
    lead = STEP_SECONDS * step - now
    if lead < -STEP_WINDOW_PAST:
        return Reason.STEP_TOO_OLD
    if lead > STEP_WINDOW_FUTURE:
        return Reason.STEP_IN_FUTURE
    return None


def _authenticate_dynamic(scan: DynamicQR, now: int, keys: KeyRing) -> _Authentic | Reason:
    credential = scan.credential
    fields = credential.fields
    key = keys.lookup(fields.key_id, now)
    if key is None:
        return Reason.UNKNOWN_KEY
    if not verify_raw(key.public_key, credential.issuer_signature, credential.tbs):
        return Reason.BAD_ISSUER_SIGNATURE
    try:
        device_key = decompress_public_key(fields.device_public_key)
    except ValueError:
        # The issuer signed a point that is not on the curve: nothing can verify against it.
        return Reason.BAD_DEVICE_SIGNATURE
    if not verify_raw(device_key, scan.device_signature, scan.device_message):
        return Reason.BAD_DEVICE_SIGNATURE
    return _Authentic(
        ticket_id=fields.ticket_id,
        fare_product=fields.fare_product,
        step=scan.step,
        device_key=fields.device_public_key,
        not_before=fields.not_before,
        not_after=fields.not_after,
    )


def _authenticate_fallback(scan: FallbackToken, now: int, keys: KeyRing) -> _Authentic | Reason:
    key = keys.lookup(scan.key_id, now)
    if key is None:
        return Reason.UNKNOWN_KEY
    if not verify_raw(key.public_key, scan.issuer_signature, scan.tbs):
        return Reason.BAD_ISSUER_SIGNATURE
    # The issuer signs fallback tokens only for steps inside the ticket's validity, so the step
    # window is the whole validity check.
    return _Authentic(scan.ticket_id, scan.fare_product, scan.step, None, None, None)


def _authenticate(text: str, now: int, keys: KeyRing) -> _Authentic | Reason:
    try:
        scan = parse_qr(text)
    except MalformedQR:
        return Reason.MALFORMED
    if isinstance(scan, DynamicQR):
        return _authenticate_dynamic(scan, now, keys)
    return _authenticate_fallback(scan, now, keys)


def _validity_reason(scan: _Authentic, now: int) -> Reason | None:
    window = step_window_reason(now, scan.step)
    if window is not None:
        return window
    if scan.not_after is not None and now > scan.not_after:
        return Reason.CREDENTIAL_EXPIRED
    if scan.not_before is not None and now < scan.not_before:
        return Reason.NOT_YET_VALID
    return None


def _product_reason(product: ProductRule | None, validator: ValidatorInfo) -> Reason | None:
    # A product the rules do not know is not valid at this gate (for instance a bundle older than
    # the product); wrong_mode is the nearest honest answer.
    if product is None or product.mode is not validator.mode:
        return Reason.WRONG_MODE
    if product.routes is not None and validator.place not in product.routes:
        return Reason.WRONG_ROUTE
    return None


def _state_reason(
    scan: _Authentic, product: ProductRule, validator_id: str, now: int, state: GateState
) -> Reason | None:
    if product.kind is ProductKind.SINGLE_RIDE and state.ride_consumed(scan.ticket_id):
        return Reason.CONSUMED
    if state.step_accepted(validator_id, scan.ticket_id, scan.step):
        return Reason.REPLAYED
    last = state.last_accept_at(validator_id, scan.ticket_id)
    # A last accept "in the future" (a clock stepped back) also counts as within the interval.
    if last is not None and now - last < product.passback_seconds:
        return Reason.PASSBACK
    return None


def _accept_record(
    scan: _Authentic, product: ProductRule, validator_id: str, now: int
) -> AcceptRecord:
    step_time = STEP_SECONDS * scan.step
    consumed_until = max(scan.not_after or 0, now + CONSUMED_MEMORY_SECONDS)
    return AcceptRecord(
        validator_id=validator_id,
        ticket_id=scan.ticket_id,
        step=scan.step,
        at=now,
        consumes_ride=product.kind is ProductKind.SINGLE_RIDE,
        step_until=max(step_time, now) + STEP_MEMORY_SECONDS,
        passback_until=now + product.passback_seconds,
        consumed_until=consumed_until,
    )


def evaluate(
    qr_text: str,
    now: int,
    validator: ValidatorInfo | None,
    rules: ValidationRules,
    state: GateState,
) -> tuple[Decision, AcceptRecord | None]:
    """Decide a scan and, for an accept, say what must be recorded; reads ``state``, never writes.

    Deterministic for the same inputs and state; never raises for any ``str`` QR text.
    """
    if validator is None:
        return Decision(Outcome.DENY, Reason.VALIDATOR_UNKNOWN), None
    scan = _authenticate(qr_text, now, rules.keys)
    if isinstance(scan, Reason):
        return Decision(Outcome.DENY, scan), None
    reason = _validity_reason(scan, now)
    if reason is None and rules.revocations.is_revoked(scan.ticket_id, scan.device_key, now):
        reason = Reason.REVOKED
    product = rules.products.get(scan.fare_product)
    if reason is None:
        reason = _product_reason(product, validator)
    if reason is not None:
        return _about(scan, reason, now), None
    assert product is not None  # _product_reason denies a product the rules do not know
    reason = _state_reason(scan, product, validator.validator_id, now, state)
    if reason is not None:
        return _about(scan, reason, now), None
    return _about(scan, Reason.OK, now), _accept_record(scan, product, validator.validator_id, now)


def decide(
    qr_text: str,
    now: int,
    validator: ValidatorInfo | None,
    rules: ValidationRules,
    state: GateState,
) -> Decision:
    """Return the decision for a scan without recording anything (a dry run of the gate)."""
    return evaluate(qr_text, now, validator, rules, state)[0]


def validate_scan(
    qr_text: str,
    now: int,
    validator: ValidatorInfo | None,
    rules: ValidationRules,
    state: GateState,
) -> Decision:
    """Decide a scan and, only on accept, record it through ``state.record_accept``.

    If the state reports that a concurrent accept won (record_accept returned False), the scan is
    decided again against the new state, so a ride or step is accepted at most once.
    """
    decision, record = evaluate(qr_text, now, validator, rules, state)
    if record is None or state.record_accept(record):
        return decision
    decision, record = evaluate(qr_text, now, validator, rules, state)
    if record is None:
        return decision
    # The state refuses the record yet reports no conflict: fail closed.
    return Decision(
        Outcome.DENY,
        Reason.REPLAYED,
        ticket_id=decision.ticket_id,
        step=decision.step,
        skew=decision.skew,
        fare_product=decision.fare_product,
    )


# --- in-memory state ---------------------------------------------------------------------------


class MemoryGateState:
    """A thread-safe in-memory ``GateState``; entries are pruned once they can no longer matter."""

    PRUNE_EVERY_SECONDS = 60

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, int, int], int] = {}
        self._last: dict[tuple[str, int], tuple[int, int]] = {}
        self._consumed: dict[int, int] = {}
        self._pruned_at: int | None = None

    def step_accepted(self, validator_id: str, ticket_id: int, step: int) -> bool:
        return (validator_id, ticket_id, step) in self._steps

    def last_accept_at(self, validator_id: str, ticket_id: int) -> int | None:
        entry = self._last.get((validator_id, ticket_id))
        return None if entry is None else entry[0]

    def ride_consumed(self, ticket_id: int) -> bool:
        return ticket_id in self._consumed

    def record_accept(self, record: AcceptRecord) -> bool:
        """Remember the accept; False if the same step or single ride was already accepted."""
        step_key = (record.validator_id, record.ticket_id, record.step)
        with self._lock:
            if step_key in self._steps:
                return False
            if record.consumes_ride and record.ticket_id in self._consumed:
                return False
            self._steps[step_key] = record.step_until
            self._last[(record.validator_id, record.ticket_id)] = (
                record.at,
                record.passback_until,
            )
            if record.consumes_ride:
                self._consumed[record.ticket_id] = record.consumed_until
            self._maybe_prune(record.at)
        return True

    def _maybe_prune(self, now: int) -> None:
        if self._pruned_at is not None and now - self._pruned_at < self.PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        self._prune(now)

    def prune(self, now: int) -> None:
        """Forget every entry whose keep-until time has passed."""
        with self._lock:
            self._prune(now)

    def _prune(self, now: int) -> None:
        self._steps = {key: until for key, until in self._steps.items() if until >= now}
        self._last = {key: value for key, value in self._last.items() if value[1] >= now}
        self._consumed = {key: until for key, until in self._consumed.items() if until >= now}

    def entry_count(self) -> int:
        """How many facts are remembered (the size that pruning bounds)."""
        return len(self._steps) + len(self._last) + len(self._consumed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot (lists of arrays keep the file small)."""
        with self._lock:
            return {
                "version": 1,
                "steps": [[v, t, s, until] for (v, t, s), until in self._steps.items()],
                "last": [[v, t, at, until] for (v, t), (at, until) in self._last.items()],
                "consumed": [[t, until] for t, until in self._consumed.items()],
            }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the contents with a ``to_dict`` snapshot; raises ``ValueError`` (changing
        nothing) if the snapshot has a foreign shape."""
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise ValueError("unknown gate state version")
        try:
            steps = {(str(v), int(t), int(s)): int(u) for v, t, s, u in data.get("steps", [])}
            last = {(str(v), int(t)): (int(at), int(u)) for v, t, at, u in data.get("last", [])}
            consumed = {int(t): int(u) for t, u in data.get("consumed", [])}
        except (TypeError, ValueError) as exc:
            raise ValueError("corrupt gate state") from exc
        with self._lock:
            self._steps, self._last, self._consumed = steps, last, consumed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryGateState:
        """Build a state from ``to_dict`` output; raises ``ValueError`` on a foreign shape."""
        state = cls()
        state.restore(data)
        return state
