"""Every reason code of the scan decision, in SPEC §13 order, and the state it leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field

import base45
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing.credential import (
    build_credential,
    compress_public_key,
    make_dynamic_qr,
    make_fallback_token,
    sign_credential,
)
from ticketing.validation import (
    AcceptRecord,
    Decision,
    IssuerKey,
    KeyRing,
    MemoryGateState,
    Mode,
    Outcome,
    ProductKind,
    ProductRule,
    Reason,
    Revocation,
    RevocationList,
    ValidationRules,
    ValidatorInfo,
    decide,
    evaluate,
    step_window_reason,
    validate_scan,
)

NOW = 1_764_590_400  # 2025-12-01T12:00:00Z, a multiple of 30
STEP = NOW // 30
NOT_BEFORE = NOW - 3600
NOT_AFTER = NOW + 24 * 3600

SINGLE_BUS = 1
DAY_BUS = 2
MONTHLY_ROUTE_01 = 3
MONTHLY_METRO = 4
NO_PASSBACK_BUS = 5
UNKNOWN_PRODUCT = 999

BUS_01 = ValidatorInfo("bus-01-a", Mode.BUS, route="01", lat=21.03, lon=105.85)
BUS_01_B = ValidatorInfo("bus-01-b", Mode.BUS, route="01")
BUS_32 = ValidatorInfo("bus-32-a", Mode.BUS, route="32")
METRO_S1 = ValidatorInfo("metro-s1", Mode.METRO, station="S1")


@dataclass
class World:
    """Keys, rules and a device: everything a scan needs, built once per test."""

    issuer: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    retired: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    device: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    revocations: list[Revocation] = field(default_factory=list)

    def keys(self) -> list[IssuerKey]:
        return [
            IssuerKey(1, self.issuer.public_key(), not_before=NOW - 86_400),
            IssuerKey(
                2, self.retired.public_key(), not_before=NOW - 10 * 86_400, not_after=NOW - 1
            ),
        ]

    def products(self) -> dict[int, ProductRule]:
        rules = [
            ProductRule(SINGLE_BUS, ProductKind.SINGLE_RIDE, Mode.BUS),
            ProductRule(DAY_BUS, ProductKind.DAY_PASS, Mode.BUS),
            ProductRule(MONTHLY_ROUTE_01, ProductKind.MONTHLY_PASS, Mode.BUS, frozenset({"01"})),
            ProductRule(MONTHLY_METRO, ProductKind.MONTHLY_PASS, Mode.METRO),
            ProductRule(NO_PASSBACK_BUS, ProductKind.DAY_PASS, Mode.BUS, passback_seconds=0),
        ]
        return {rule.product_id: rule for rule in rules}

    def rules(self) -> ValidationRules:
        return ValidationRules(
            KeyRing(self.keys()), RevocationList(self.revocations), self.products()
        )

    def credential(
        self,
        *,
        ticket_id: int = 1001,
        product: int = DAY_BUS,
        kid: int = 1,
        signer: ec.EllipticCurvePrivateKey | None = None,
        not_before: int = NOT_BEFORE,
        not_after: int = NOT_AFTER,
    ) -> bytes:
        fields = build_credential(
            key_id=kid,
            ticket_id=ticket_id,
            fare_product=product,
            not_before=not_before,
            not_after=not_after,
            holder_ref=b"\x11" * 8,
            device_public_key=compress_public_key(self.device.public_key()),
        )
        return sign_credential(signer or self.issuer, fields)

    def qr(self, step: int = STEP, **kwargs: object) -> str:
        return make_dynamic_qr(self.credential(**kwargs), self.device, step)  # type: ignore[arg-type]

    def fallback(self, *, ticket_id: int = 1001, product: int = DAY_BUS, step: int = STEP) -> str:
        return make_fallback_token(
            self.issuer, key_id=1, ticket_id=ticket_id, fare_product=product, step=step
        )


WORLD = World()


@pytest.fixture(scope="module")
def world() -> World:
    return WORLD


def _scan(
    world: World,
    text: str,
    *,
    now: int = NOW,
    validator: ValidatorInfo | None = BUS_01,
    state: MemoryGateState | None = None,
) -> Decision:
    return validate_scan(text, now, validator, world.rules(), state or MemoryGateState())


def _reason(world: World, text: str, **kwargs: object) -> Reason:
    return _scan(world, text, **kwargs).reason  # type: ignore[arg-type]


def _tamper(text: str, index: int) -> str:
    data = bytearray(base45.b45decode(text[4:]))
    data[index] ^= 0x40
    return text[:4] + base45.b45encode(bytes(data)).decode("ascii")


# --- accept ------------------------------------------------------------------------------------


def test_valid_dynamic_qr_is_accepted_with_skew(world: World) -> None:
    decision = _scan(world, world.qr(), now=NOW + 7)
    assert decision == Decision(
        Outcome.ACCEPT, Reason.OK, ticket_id=1001, step=STEP, skew=7, fare_product=DAY_BUS
    )
    assert decision.accepted
    assert decision.as_dict() == {
        "decision": "accept",
        "reason": "ok",
        "ticket_id": 1001,
        "fare_product": DAY_BUS,
        "step": STEP,
        "skew": 7,
    }


def test_valid_fallback_token_is_accepted(world: World) -> None:
    decision = _scan(world, world.fallback(), now=NOW + 12)
    assert decision.reason is Reason.OK and decision.skew == 12


# --- one test per reason code, in check order ---------------------------------------------------


def test_unregistered_validator_is_denied_before_anything_else(world: World) -> None:
    decision = _scan(world, "garbage", validator=None)
    assert decision == Decision(Outcome.DENY, Reason.VALIDATOR_UNKNOWN)


@pytest.mark.parametrize("text", ["", "hello", "TV2:", "TV2:%%%", "TVF:0000"])
def test_malformed(world: World, text: str) -> None:
    assert _scan(world, text) == Decision(Outcome.DENY, Reason.MALFORMED)


def test_unknown_key_id(world: World) -> None:
    assert _reason(world, world.qr(kid=9)) is Reason.UNKNOWN_KEY


def test_retired_key_is_unknown(world: World) -> None:
    text = world.qr(kid=2, signer=world.retired)
    assert _reason(world, text) is Reason.UNKNOWN_KEY
    # The same key was fine while it was valid.
    earlier = make_dynamic_qr(world.credential(kid=2, signer=world.retired), world.device, STEP - 2)
    assert _reason(world, earlier, now=NOW - 31) is Reason.OK


def test_key_not_yet_valid_is_unknown(world: World) -> None:
    assert _reason(world, world.qr(step=(NOW - 2 * 86_400) // 30), now=NOW - 2 * 86_400) is (
        Reason.UNKNOWN_KEY
    )


def test_tampered_credential_byte_breaks_issuer_signature(world: World) -> None:
    text = _tamper(world.qr(), 9)  # last byte of the ticket id
    decision = _scan(world, text)
    assert decision == Decision(Outcome.DENY, Reason.BAD_ISSUER_SIGNATURE)


def test_credential_signed_by_another_key_under_our_kid(world: World) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    assert _reason(world, world.qr(signer=forger)) is Reason.BAD_ISSUER_SIGNATURE


def test_tampered_fallback_breaks_issuer_signature(world: World) -> None:
    assert _reason(world, _tamper(world.fallback(), 15)) is Reason.BAD_ISSUER_SIGNATURE


def test_wrong_device_key(world: World) -> None:
    other_phone = ec.generate_private_key(ec.SECP256R1())
    text = make_dynamic_qr(world.credential(), other_phone, STEP)
    decision = _scan(world, text)
    assert decision == Decision(Outcome.DENY, Reason.BAD_DEVICE_SIGNATURE)


def test_tampered_step_breaks_device_signature(world: World) -> None:
    assert _reason(world, _tamper(world.qr(), 128)) is Reason.BAD_DEVICE_SIGNATURE


@pytest.mark.parametrize(
    ("lead", "reason"),
    [
        (0, Reason.OK),
        (-90, Reason.OK),
        (-91, Reason.STEP_TOO_OLD),
        (30, Reason.OK),
        (31, Reason.STEP_IN_FUTURE),
    ],
)
def test_step_window_boundaries(world: World, lead: int, reason: Reason) -> None:
    # lead = 30·step − now
    decision = _scan(world, world.qr(), now=NOW - lead)
    assert decision.reason is reason
    assert decision.skew == lead * -1
    assert decision.ticket_id == 1001


@settings(max_examples=30, deadline=None)
@given(now_offset=st.integers(-200, 200))
def test_step_window_matches_the_inequality(now_offset: int) -> None:
    lead = 30 * STEP - (NOW + now_offset)
    expected = None
    if lead < -90:
        expected = Reason.STEP_TOO_OLD
    elif lead > 30:
        expected = Reason.STEP_IN_FUTURE
    assert step_window_reason(NOW + now_offset, STEP) is expected


def test_credential_expired(world: World) -> None:
    text = world.qr(not_before=NOW - 7200, not_after=NOW - 1)
    assert _reason(world, text) is Reason.CREDENTIAL_EXPIRED
    assert _reason(world, world.qr(not_before=NOW - 7200, not_after=NOW)) is Reason.OK


def test_not_yet_valid(world: World) -> None:
    assert _reason(world, world.qr(not_before=NOW + 1, not_after=NOW + 7200)) is (
        Reason.NOT_YET_VALID
    )
    assert _reason(world, world.qr(not_before=NOW, not_after=NOW + 7200)) is Reason.OK


def test_revoked_ticket(world: World) -> None:
    revoked = World(world.issuer, world.retired, world.device, [Revocation(1001, NOW + 60)])
    assert _reason(revoked, revoked.qr()) is Reason.REVOKED
    assert _reason(revoked, revoked.fallback()) is Reason.REVOKED
    assert _reason(revoked, revoked.qr(ticket_id=1002)) is Reason.OK


def test_revocation_lapses_after_until(world: World) -> None:
    lapsed = World(world.issuer, world.retired, world.device, [Revocation(1001, NOW - 1)])
    assert _reason(lapsed, lapsed.qr()) is Reason.OK


def test_device_revocation_hits_only_that_phone(world: World) -> None:
    old_phone = compress_public_key(world.device.public_key())
    rebound = World(
        world.issuer, world.retired, world.device, [Revocation(1001, NOW + 60, old_phone)]
    )
    assert _reason(rebound, rebound.qr()) is Reason.REVOKED
    new_phone = World(rebound.issuer, rebound.retired, revocations=rebound.revocations)
    assert _reason(new_phone, new_phone.qr()) is Reason.OK
    assert _reason(rebound, rebound.fallback()) is Reason.OK


def test_wrong_mode(world: World) -> None:
    assert _reason(world, world.qr(product=MONTHLY_METRO)) is Reason.WRONG_MODE
    assert _reason(world, world.qr(), validator=METRO_S1) is Reason.WRONG_MODE


def test_product_unknown_to_the_rules_is_wrong_mode(world: World) -> None:
    assert _reason(world, world.qr(product=UNKNOWN_PRODUCT)) is Reason.WRONG_MODE


def test_wrong_route(world: World) -> None:
    text = world.qr(product=MONTHLY_ROUTE_01)
    assert _reason(world, text, validator=BUS_32) is Reason.WRONG_ROUTE
    assert _reason(world, text, validator=BUS_01) is Reason.OK


def test_single_ride_is_consumed_by_its_first_accept(world: World) -> None:
    state = MemoryGateState()
    first = world.qr(ticket_id=5000, product=SINGLE_BUS)
    assert _reason(world, first, state=state) is Reason.OK
    later = world.qr(ticket_id=5000, product=SINGLE_BUS, step=STEP + 2)
    assert _reason(world, later, now=NOW + 60, validator=BUS_01_B, state=state) is Reason.CONSUMED


def test_consumption_outlives_the_scanned_credential(world: World) -> None:
    state = MemoryGateState()
    short = world.qr(ticket_id=5001, product=SINGLE_BUS, not_after=NOW + 100)
    assert _reason(world, short, state=state) is Reason.OK
    refreshed = world.qr(ticket_id=5001, product=SINGLE_BUS, step=STEP + 10, not_after=NOW + 7200)
    assert _reason(world, refreshed, now=NOW + 300, state=state) is Reason.CONSUMED


def test_replayed_step_at_the_same_validator(world: World) -> None:
    state = MemoryGateState()
    text = world.qr(product=NO_PASSBACK_BUS)
    assert _reason(world, text, state=state) is Reason.OK
    assert _reason(world, text, now=NOW + 5, state=state) is Reason.REPLAYED
    # Another validator has its own replay memory.
    assert _reason(world, text, now=NOW + 5, validator=BUS_01_B, state=state) is Reason.OK


def test_replay_is_reported_before_passback(world: World) -> None:
    state = MemoryGateState()
    text = world.qr()
    assert _reason(world, text, state=state) is Reason.OK
    assert _reason(world, text, now=NOW + 1, state=state) is Reason.REPLAYED


def test_anti_passback_per_validator(world: World) -> None:
    state = MemoryGateState()
    assert _reason(world, world.qr(), state=state) is Reason.OK
    again = world.qr(step=STEP + 2)
    assert _reason(world, again, now=NOW + 60, state=state) is Reason.PASSBACK
    assert _reason(world, again, now=NOW + 60, validator=BUS_01_B, state=state) is Reason.OK


def test_anti_passback_ends_after_the_interval(world: World) -> None:
    state = MemoryGateState()
    assert _reason(world, world.qr(), state=state) is Reason.OK
    assert _reason(world, world.qr(step=STEP + 29), now=NOW + 899, state=state) is Reason.PASSBACK
    assert _reason(world, world.qr(step=STEP + 30), now=NOW + 900, state=state) is Reason.OK


@settings(max_examples=30, deadline=None)
@given(body=st.binary(min_size=191, max_size=191), fallback=st.booleans())
def test_random_signed_looking_bytes_are_denied_cleanly(body: bytes, fallback: bool) -> None:
    # Version 1 and a known key id, so random signatures and device points reach the verifiers.
    data = b"\x01\x01" + body
    prefix = "TVF:" if fallback else "TV2:"
    text = prefix + base45.b45encode(data[:80] if fallback else data).decode("ascii")
    decision = _scan(WORLD, text)
    assert decision.reason in {Reason.MALFORMED, Reason.BAD_ISSUER_SIGNATURE}
    assert decision.ticket_id is None


def test_forged_scan_names_no_ticket(world: World) -> None:
    decision = _scan(world, world.qr(kid=9))
    assert (decision.ticket_id, decision.step, decision.skew) == (None, None, None)


# --- purity and recording ------------------------------------------------------------------------


def test_decide_is_deterministic_and_records_nothing(world: World) -> None:
    state = MemoryGateState()
    text = world.qr(product=SINGLE_BUS, ticket_id=6000)
    assert decide(text, NOW, BUS_01, world.rules(), state) == decide(
        text, NOW, BUS_01, world.rules(), state
    )
    assert state.entry_count() == 0


def test_deny_records_nothing(world: World) -> None:
    state = MemoryGateState()
    _scan(world, world.qr(), validator=METRO_S1, state=state)
    assert state.entry_count() == 0


def test_accept_record_says_how_long_to_remember(world: World) -> None:
    decision, record = evaluate(
        world.qr(product=SINGLE_BUS, ticket_id=7000), NOW, BUS_01, world.rules(), MemoryGateState()
    )
    assert decision.accepted
    assert record == AcceptRecord(
        validator_id="bus-01-a",
        ticket_id=7000,
        step=STEP,
        at=NOW,
        consumes_ride=True,
        step_until=NOW + 7200,
        passback_until=NOW + 900,
        consumed_until=NOW + 24 * 3600,
    )


class _RacingState(MemoryGateState):
    """A state in which another gate records the same accept just before us."""

    def __init__(self, honest: bool) -> None:
        super().__init__()
        self.honest = honest

    def record_accept(self, record: AcceptRecord) -> bool:
        if self.honest:
            super().record_accept(record)  # the concurrent winner's record
        return False


def test_lost_race_is_decided_again(world: World) -> None:
    text = world.qr(product=SINGLE_BUS, ticket_id=8000)
    assert _reason(world, text, state=_RacingState(honest=True)) is Reason.CONSUMED


def test_state_that_refuses_without_conflict_fails_closed(world: World) -> None:
    text = world.qr(product=SINGLE_BUS, ticket_id=8001)
    decision = _scan(world, text, state=_RacingState(honest=False))
    assert decision.reason is Reason.REPLAYED and decision.ticket_id == 8001


# --- memory state ------------------------------------------------------------------------------


def _record(ticket: int, at: int, *, consumes: bool = False) -> AcceptRecord:
    return AcceptRecord("v", ticket, at // 30, at, consumes, at + 7200, at + 900, at + 86_400)


def test_memory_state_refuses_duplicates() -> None:
    state = MemoryGateState()
    assert state.record_accept(_record(1, NOW, consumes=True))
    assert not state.record_accept(_record(1, NOW))
    assert not state.record_accept(_record(1, NOW + 60, consumes=True))
    assert state.step_accepted("v", 1, NOW // 30)
    assert state.last_accept_at("v", 1) == NOW
    assert state.ride_consumed(1)


def test_memory_state_prunes_what_no_longer_matters() -> None:
    state = MemoryGateState()
    state.record_accept(_record(1, NOW))
    state.record_accept(_record(2, NOW, consumes=True))
    state.prune(NOW + 901)
    assert state.last_accept_at("v", 1) is None and state.step_accepted("v", 1, NOW // 30)
    state.prune(NOW + 7201)
    assert not state.step_accepted("v", 2, NOW // 30) and state.ride_consumed(2)
    state.prune(NOW + 86_401)
    assert state.entry_count() == 0


def test_memory_state_stays_bounded_under_steady_traffic() -> None:
    state = MemoryGateState()
    for i in range(2000):
        state.record_accept(_record(i, NOW + 10 * i))
    # 10 s apart: 2 h of step memory is at most ~720 entries, plus 900 s of passback memory.
    assert state.entry_count() < 720 + 100 + 10


def test_memory_state_snapshot_round_trips() -> None:
    state = MemoryGateState()
    state.record_accept(_record(1, NOW, consumes=True))
    copy = MemoryGateState.from_dict(state.to_dict())
    assert copy.to_dict() == state.to_dict()


@pytest.mark.parametrize(
    "snapshot", [{}, {"version": 2}, {"version": 1, "steps": [[1, 2]]}, {"version": 1, "last": 5}]
)
def test_memory_state_rejects_foreign_snapshots(snapshot: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MemoryGateState.from_dict(snapshot)


def test_key_ring_rejects_duplicate_kids(world: World) -> None:
    key = IssuerKey(1, world.issuer.public_key(), 0)
    with pytest.raises(ValueError):
        KeyRing([key, key])
