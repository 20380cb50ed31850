"""Gate use cases: online validation, offline tap upload, the signed bundle, revenue protection.

Every decision is made by `ticketing.validation`, the code the offline gate runs too; this
module hands it the database: `DbGateState` (replay, anti-passback, single-ride consumption,
backed by unique constraints) and `DbRevocations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.db import Database
from core.pagination import Page, paginate
from ticketing import catalogue, journeys
from ticketing.bundle import build_bundle_payload
from ticketing.errors import (
    FlagAlreadyResolved,
    FlagNotFound,
    TapSequenceReused,
    ValidatorNotYours,
)
from ticketing.gate_state import DbGateState, Scan, epoch, insert_tap
from ticketing.issuing import Issuer
from ticketing.models import FlagKind, FlagStatus, RevenueFlag, Tap, Ticket, TicketStatus, Validator
from ticketing.revocations import DbRevocations, lift, lock_ticket, revocation_changes, revoke
from ticketing.validation import (
    Decision,
    KeyRing,
    Mode,
    Outcome,
    Reason,
    ValidationRules,
    ValidatorInfo,
    decide,
    validate_scan,
)

BUNDLE_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Caller:
    user_id: int
    is_admin: bool = False


@dataclass
class TapResult:
    tap: Tap
    duplicate: bool
    flagged: bool
    server_time: datetime
    conflict: bool = False  # the sequence number was already used for another scan


@dataclass
class UploadResult:
    validator_id: str
    results: list[TapResult]
    server_time: datetime

    @property
    def conflicts(self) -> int:
        return sum(1 for r in self.results if r.conflict)

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.results if r.duplicate and not r.conflict)

    @property
    def recorded(self) -> int:
        return sum(1 for r in self.results if not r.duplicate)


# -- rules from the database -----------------------------------------------------------------
def _validator_info(row: Validator) -> ValidatorInfo:
    return ValidatorInfo(row.id, Mode(row.mode), row.route, row.station, row.lat, row.lon)


def _validator_for(
    session: Session, validator_id: str, mode: str | None, caller: Caller
) -> ValidatorInfo | None:
    """The registered, active validator, or None (`validator_unknown`); 403 if not the caller's."""
    row = session.get(Validator, validator_id)
    if row is None or not row.active:
        return None
    if row.user_id is not None and row.user_id != caller.user_id and not caller.is_admin:
        raise ValidatorNotYours("this validator is linked to another device account")
    if mode is not None and mode != row.mode:
        return None  # a gate configured for the wrong mode is not the validator we registered
    return _validator_info(row)


def _rules(session: Session, issuer: Issuer, *, as_of_scan: bool) -> ValidationRules:
    return ValidationRules(
        KeyRing(issuer.issuer_keys()),
        DbRevocations(session, as_of_scan=as_of_scan),
        catalogue.product_rules(session),
    )


def _existing(session: Session, scan: Scan, *, strict: bool = True) -> Tap | None:
    """The tap already stored under this (validator, seq); `strict`: 409 if another scan."""
    tap = session.scalars(
        select(Tap).where(
            Tap.validator_id == scan.validator_id, Tap.validator_seq == scan.validator_seq
        )
    ).first()
    if strict and tap is not None and tap.qr_sha256 != scan.digest:
        raise TapSequenceReused(
            f"validator_seq {scan.validator_seq} was already used for another scan"
        )
    return tap


def _after_race(db: Database, scan: Scan, now: datetime, *, strict: bool = True) -> TapResult:
    """A concurrent request with the same (validator, seq) won: answer as it was answered."""
    with db.reader() as session:
        tap = _existing(session, scan, strict=strict)
        if tap is None:
            raise RuntimeError("tap insert failed without a conflicting tap")
        return TapResult(tap, True, False, now, tap.qr_sha256 != scan.digest)


# -- online validation --------------------------------------------------------------------------
def validate_online(
    db: Database,
    issuer: Issuer,
    caller: Caller,
    scan: Scan,
    *,
    mode: str | None,
    now: datetime | None = None,
) -> TapResult:
    """Decide a scan with the server's clock, record the tap; idempotent per (validator, seq).

    One transaction. At most one accept per (validator, ticket, step) and per single ride, even
    between concurrent requests. An accepted tap is checked for an impossible journey.
    """
    now = now or utcnow()
    try:
        with db.transaction() as session:
            found = _existing(session, scan)
            if found is not None:
                return TapResult(found, True, False, now)
            validator = _validator_for(session, scan.validator_id, mode, caller)
            state = DbGateState(session, scan, now, now)
            rules = _rules(session, issuer, as_of_scan=False)
            decision = validate_scan(scan.qr_text, epoch(now), validator, rules, state)
            tap = state.accepted or insert_tap(session, scan, decision, now, now)
            flagged = decision.accepted and _check_journey(session, tap, now)
            return TapResult(tap, False, flagged, now)
    except IntegrityError:
        return _after_race(db, scan, now)


# -- offline taps -------------------------------------------------------------------------------
def upload_taps(
    db: Database,
    issuer: Issuer,
    caller: Caller,
    validator_id: str,
    taps: list[dict[str, Any]],
    *,
    now: datetime | None = None,
) -> UploadResult:
    """Record taps an offline validator made, re-verified with the same rules at scan time.

    Idempotent per (validator, seq): a tap uploaded twice is counted once. A single ride the
    gates accepted twice, or a ticket seen at two places too close in time, raises a revenue
    flag and revokes the ticket. One transaction per tap, so one bad tap costs no others.
    """
    now = now or utcnow()
    with db.reader() as session:
        _validator_for(session, validator_id, None, caller)  # 403 before anything is written
    scans = [Scan.offline(validator_id, tap) for tap in taps]
    return UploadResult(
        validator_id, [_upload_one(db, issuer, caller, scan, now) for scan in scans], now
    )


def _upload_one(
    db: Database, issuer: Issuer, caller: Caller, scan: Scan, now: datetime
) -> TapResult:
    try:
        with db.transaction() as session:
            found = _existing(session, scan, strict=False)
            if found is not None:
                return TapResult(found, True, False, now, found.qr_sha256 != scan.digest)
            validator = _validator_for(session, scan.validator_id, None, caller)
            # A gate's clock cannot claim the future: decide at the scan or at receipt.
            decided_at = min(scan.scanned_at, now)
            state = DbGateState(session, scan, decided_at, now)
            rules = _rules(session, issuer, as_of_scan=True)
            tap = _reverify(session, scan, validator, rules, state, decided_at, now)
            return TapResult(tap, False, _protect(session, tap, now), now)
    except IntegrityError:
        return _after_race(db, scan, now, strict=False)


def _reverify(
    session: Session,
    scan: Scan,
    validator: ValidatorInfo | None,
    rules: ValidationRules,
    state: DbGateState,
    decided_at: datetime,
    now: datetime,
) -> Tap:
    at = epoch(decided_at)
    if scan.device_decision == Outcome.ACCEPT:
        decision = validate_scan(scan.qr_text, at, validator, rules, state)
        return state.accepted or insert_tap(session, scan, decision, decided_at, now)
    # The gate refused the rider: nothing to record in the state; keep its reason.
    dry = decide(scan.qr_text, at, validator, rules, state)
    reason = Reason(scan.device_reason) if scan.device_reason else dry.reason
    refused = Decision(Outcome.DENY, reason, dry.ticket_id, dry.step, dry.skew, dry.fare_product)
    return insert_tap(session, scan, refused, decided_at, now)


def _protect(session: Session, tap: Tap, now: datetime) -> bool:
    """Flag what the gate let through but should not have: a reused ride, an impossible trip."""
    if not tap.passed or tap.ticket_id is None:
        return False
    flagged = False
    if tap.reason == Reason.CONSUMED:
        first = session.scalars(
            select(Tap.id)
            .where(Tap.ticket_id == tap.ticket_id, Tap.decision == Outcome.ACCEPT)
            .order_by(Tap.decided_at)
            .limit(1)
        ).first()
        evidence = {"reason": "single ride accepted again after it was consumed"}
        flagged = _raise_flag(session, FlagKind.RIDE_REUSED, tap, first, evidence, now)
    return _check_journey(session, tap, now) or flagged


# -- revenue protection -------------------------------------------------------------------------
def _sighting(tap: Tap, lat: float | None, lon: float | None) -> journeys.Sighting:
    located = tap.lat is not None and tap.lon is not None
    return journeys.Sighting(
        tap.id,
        tap.validator_id,
        epoch(tap.decided_at),
        tap.lat if located else lat,
        tap.lon if located else lon,
    )


def _check_journey(session: Session, tap: Tap, now: datetime) -> bool:
    """Flag and revoke when this passage and another of the ticket are an impossible trip."""
    if tap.ticket_id is None:
        return False
    window = timedelta(seconds=journeys.WINDOW_SECONDS)
    rows = session.execute(
        select(Tap, Validator.lat, Validator.lon)
        .outerjoin(Validator, Validator.id == Tap.validator_id)
        .where(
            Tap.ticket_id == tap.ticket_id,
            Tap.id != tap.id,
            Tap.validator_id != tap.validator_id,
            Tap.decided_at.between(tap.decided_at - window, tap.decided_at + window),
            or_(Tap.decision == Outcome.ACCEPT, Tap.device_decision == Outcome.ACCEPT),
        )
        .order_by(Tap.decided_at)
        .limit(100)
    ).all()
    if not rows:
        return False
    here = session.get(Validator, tap.validator_id)
    new = _sighting(tap, here.lat if here else None, here.lon if here else None)
    evidence = journeys.first_impossible(new, [_sighting(t, la, lo) for t, la, lo in rows])
    if evidence is None:
        return False
    other = evidence["taps"][0]
    return _raise_flag(session, FlagKind.IMPOSSIBLE_JOURNEY, tap, other, evidence, now)


def _raise_flag(
    session: Session,
    kind: FlagKind,
    tap: Tap,
    other_tap_id: int | None,
    evidence: dict[str, Any],
    now: datetime,
) -> bool:
    """Store the flag and revoke the ticket automatically; False when nothing new was raised.

    One open flag per ticket and kind: later passages of a ticket under review add no noise.
    """
    assert tap.ticket_id is not None
    ticket = session.get(Ticket, tap.ticket_id, with_for_update=True)
    if ticket is None or _open_flag(session, ticket.id, kind):
        return False
    flag = RevenueFlag(
        ticket_id=ticket.id,
        kind=kind,
        tap_id=tap.id,
        other_tap_id=other_tap_id,
        detail=evidence,
        status=FlagStatus.OPEN,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(flag)
            session.flush()
    except IntegrityError:
        return False
    revoke(session, ticket, reason="revenue_protection", actor="system", now=now, note=kind)
    return True


def _open_flag(session: Session, ticket_id: int, kind: FlagKind) -> bool:
    stmt = select(RevenueFlag.id).where(
        RevenueFlag.ticket_id == ticket_id,
        RevenueFlag.kind == kind,
        RevenueFlag.status == FlagStatus.OPEN,
    )
    return session.scalar(stmt.limit(1)) is not None


def list_flags(db: Database, *, status: str | None, limit: int, starting_after: int | None) -> Page:
    stmt = select(RevenueFlag)
    if status:
        stmt = stmt.where(RevenueFlag.status == status)
    with db.reader() as session:
        return paginate(session, stmt, RevenueFlag.id, limit, starting_after)


def resolve_flag(db: Database, actor: str, flag_id: int, action: str, note: str) -> RevenueFlag:
    """Staff decide a flag: `confirm` keeps the ticket revoked, `dismiss` un-revokes it (when
    no other flag of the ticket is still open). Audited; a decided flag cannot be decided again."""
    now = utcnow()
    with db.transaction() as session:
        flag = session.get(RevenueFlag, flag_id, with_for_update=True)
        if flag is None:
            raise FlagNotFound("no such revenue-protection flag")
        if flag.status != FlagStatus.OPEN:
            raise FlagAlreadyResolved("this flag was already decided")
        ticket = lock_ticket(session, flag.ticket_id)
        flag.status = FlagStatus.CONFIRMED if action == "confirm" else FlagStatus.DISMISSED
        flag.resolved_at, flag.resolved_by, flag.note = now, actor, note
        session.flush()
        if flag.status == FlagStatus.DISMISSED and not _other_open_flags(session, flag):
            if ticket.status == TicketStatus.REVOKED:
                lift(session, ticket, actor=actor, now=now, note=note)
        audit.record(
            session,
            actor=actor,
            action=f"revenue_flag.{action}",
            entity_type="revenue_flag",
            entity_id=flag.id,
            before={"status": FlagStatus.OPEN},
            after={"status": flag.status, "ticket_status": ticket.status},
            note=note,
        )
        return flag


def _other_open_flags(session: Session, flag: RevenueFlag) -> bool:
    stmt = select(RevenueFlag.id).where(
        RevenueFlag.ticket_id == flag.ticket_id,
        RevenueFlag.id != flag.id,
        RevenueFlag.status == FlagStatus.OPEN,
    )
    return session.scalar(stmt.limit(1)) is not None


# -- the bundle ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedBundle:
    jws: str
    version: int
    issued_at: datetime
    expires_at: datetime
    since: int | None
    next_since: int
    server_time: datetime


def build_bundle(
    db: Database, issuer: Issuer, *, since: int | None, now: datetime | None = None
) -> SignedBundle:
    """The signed validation bundle: keys, revocations (all, or the changes after `since`,
    removals included), products, validators; valid 24 h. Writes nothing."""
    now = (now or utcnow()).replace(microsecond=0)
    with db.reader() as session:
        changes = revocation_changes(session, since, now)
        products = list(catalogue.product_rules(session).values())
        validators = [
            _validator_info(v)
            for v in session.scalars(select(Validator).where(Validator.active.is_(True)))
        ]
    expires = now + BUNDLE_TTL
    payload = build_bundle_payload(
        version=changes.next_since,
        issued_at=epoch(now),
        expires_at=epoch(expires),
        keys=issuer.issuer_keys(),
        revocations=changes.entries,
        products=products,
        validators=validators,
        next_since=changes.next_since,
    )
    for entry, removed in zip(payload["revocations"], changes.removed, strict=True):
        if removed:
            entry["removed"] = True
    payload["since"] = changes.since
    jws = issuer.sign_bundle(payload)
    return SignedBundle(
        jws, changes.next_since, now, expires, changes.since, changes.next_since, now
    )
