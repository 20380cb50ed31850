"""The pure fee and waiver rules: dates (both bounds inclusive), overlaps (SPEC §13: largest
waiver, then latest effective_from, then lowest id), beneficiaries, channels, supersession,
and the promise that a citizen never pays more online than at the counter."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.fees.rules import (
    FULL_WAIVER_BP,
    Channel,
    DecidedBy,
    FeeTerms,
    NoFeeInEffect,
    Quote,
    Scope,
    ServiceFacts,
    WaiverTerms,
    choose_rule,
    fee_in_effect,
    quote,
    waived_amount,
)

COUNCIL = ServiceFacts(id=2, council_procedure=True)
CENTRAL = ServiceFacts(id=1, council_procedure=False)
FEE = FeeTerms(1, date(2023, 1, 1), None, counter_fee=200_000, online_fee=200_000)
COUNCIL_ONLINE = WaiverTerms(
    id=1,
    scope=Scope.COUNCIL_PROCEDURES,
    basis_points=FULL_WAIVER_BP,
    reason_code="online_council_procedures",
    legal_basis="council",
    effective_from=date(2024, 1, 1),
    effective_to=date(2025, 12, 31),
    channel=Channel.ONLINE,
)
ALL_ONLINE = WaiverTerms(
    id=2,
    scope=Scope.ALL_SERVICES,
    basis_points=FULL_WAIVER_BP,
    reason_code="online_all_services",
    legal_basis="all online",
    effective_from=date(2026, 1, 1),
    channel=Channel.ONLINE,
)
STUDENT = WaiverTerms(
    id=3,
    scope=Scope.SERVICE,
    service_id=1,
    basis_points=5_000,
    reason_code="beneficiary_student",
    legal_basis="students",
    effective_from=date(2024, 1, 1),
    beneficiary_category="student",
)
POOR = WaiverTerms(
    id=4,
    scope=Scope.ALL_SERVICES,
    basis_points=FULL_WAIVER_BP,
    reason_code="beneficiary_poor_household",
    legal_basis="poor households",
    effective_from=date(2024, 1, 1),
    beneficiary_category="poor_household",
)
DEMO = [COUNCIL_ONLINE, ALL_ONLINE, STUDENT, POOR]


def q(service: ServiceFacts, channel: Channel, day: date, category: str | None = None) -> Quote:
    return quote(service, [FEE], DEMO, channel, category, day)


@pytest.mark.parametrize(
    ("service", "day", "payable", "reason"),
    [
        (COUNCIL, date(2023, 12, 31), 200_000, None),  # the day before the council rule
        (COUNCIL, date(2024, 1, 1), 0, "online_council_procedures"),  # its first day
        (COUNCIL, date(2025, 12, 31), 0, "online_council_procedures"),  # its last day
        (COUNCIL, date(2026, 1, 1), 0, "online_all_services"),
        (CENTRAL, date(2025, 12, 31), 200_000, None),  # not a council procedure
        (CENTRAL, date(2026, 1, 1), 0, "online_all_services"),  # everything online from 2026
    ],
)
def test_online_quotes_either_side_of_each_rule_boundary(
    service: ServiceFacts, day: date, payable: int, reason: str | None
) -> None:
    result = quote(service, [FEE], DEMO, Channel.ONLINE, None, day)
    assert result.payable == payable
    assert result.gross_fee == 200_000
    assert result.waived_amount == 200_000 - payable
    assert (result.rule.reason_code if result.rule else None) == reason


@pytest.mark.parametrize("day", [date(2024, 6, 1), date(2025, 12, 31), date(2026, 1, 1)])
def test_a_counter_quote_is_never_waived_by_an_online_rule(day: date) -> None:
    for service in (COUNCIL, CENTRAL):
        result = quote(service, [FEE], DEMO, Channel.COUNTER, None, day)
        assert (result.gross_fee, result.waived_amount, result.payable) == (200_000, 0, 200_000)
        assert result.rule is None and result.candidate_ids == ()


def test_largest_waiver_wins_over_a_partial_one() -> None:
    result = quote(CENTRAL, [FEE], DEMO, Channel.ONLINE, "student", date(2026, 3, 1))
    assert result.rule == ALL_ONLINE
    assert result.decided_by == DecidedBy.LARGEST_WAIVER
    assert result.candidate_ids == (2, 3)


def test_equal_waivers_the_latest_effective_from_wins() -> None:
    result = quote(CENTRAL, [FEE], DEMO, Channel.ONLINE, "poor_household", date(2026, 3, 1))
    assert result.rule == ALL_ONLINE  # from 2026-01-01, later than POOR's 2024-01-01
    assert result.decided_by == DecidedBy.LATEST_EFFECTIVE_FROM


def test_equal_waivers_and_dates_the_lowest_id_wins() -> None:
    twin_a = WaiverTerms(9, Scope.ALL_SERVICES, 3_000, "a", "a", date(2026, 1, 1))
    twin_b = WaiverTerms(7, Scope.ALL_SERVICES, 3_000, "b", "b", date(2026, 1, 1))
    rule, decided_by, why = choose_rule([twin_a, twin_b], 100_000)
    assert rule == twin_b and decided_by == DecidedBy.LOWEST_ID
    assert "lowest id" in why


def test_beneficiary_exemptions_apply_only_to_their_category() -> None:
    day = date(2025, 6, 1)
    student = q(CENTRAL, Channel.COUNTER, day, "student")
    assert (student.waived_amount, student.payable) == (100_000, 100_000)
    poor = q(CENTRAL, Channel.COUNTER, day, "poor_household")
    assert poor.payable == 0 and poor.rule == POOR
    nobody = q(CENTRAL, Channel.COUNTER, day, "veteran")
    assert nobody.payable == 200_000 and nobody.rule is None
    other_service = q(COUNCIL, Channel.COUNTER, day, "student")  # STUDENT is for service 1 only
    assert other_service.payable == 200_000


def test_a_superseding_version_replaces_a_rule_from_its_start() -> None:
    smaller = WaiverTerms(
        id=10,
        scope=Scope.SERVICE,
        service_id=1,
        basis_points=2_500,
        reason_code="beneficiary_student",
        legal_basis="students, amended",
        effective_from=date(2027, 1, 1),
        beneficiary_category="student",
        supersedes_id=STUDENT.id,
    )
    rules_ = [*DEMO, smaller]
    before = quote(CENTRAL, [FEE], rules_, Channel.COUNTER, "student", date(2026, 12, 31))
    after = quote(CENTRAL, [FEE], rules_, Channel.COUNTER, "student", date(2027, 1, 1))
    assert (before.rule, before.payable) == (STUDENT, 100_000)
    assert (after.rule, after.payable) == (smaller, 150_000)
    ended = WaiverTerms(11, Scope.ALL_SERVICES, 0, "end", "end", date(2027, 1, 1), supersedes_id=4)
    gone = quote(
        CENTRAL, [FEE], [*DEMO, ended], Channel.COUNTER, "poor_household", date(2027, 1, 1)
    )
    assert gone.rule is None and gone.payable == 200_000


def test_fee_versions_latest_start_wins_and_gaps_are_errors() -> None:
    later = FeeTerms(5, date(2027, 1, 1), None, counter_fee=250_000, online_fee=250_000)
    assert fee_in_effect([FEE, later], date(2026, 12, 31)) == FEE
    assert fee_in_effect([FEE, later], date(2027, 1, 1)) == later
    with pytest.raises(NoFeeInEffect):
        fee_in_effect([FEE], date(2022, 12, 31))
    closed = FeeTerms(6, date(2023, 1, 1), date(2023, 6, 30), 1, 1)
    with pytest.raises(NoFeeInEffect):
        fee_in_effect([closed], date(2023, 7, 1))


def test_partial_waivers_floor_to_the_dong() -> None:
    assert waived_amount(8_001, 5_000) == 4_000
    assert waived_amount(8_001, FULL_WAIVER_BP) == 8_001
    assert waived_amount(0, 5_000) == 0


def test_no_convenience_fee_online_is_capped_at_the_counter_fee() -> None:
    dearer_online = FeeTerms(1, date(2023, 1, 1), None, counter_fee=50_000, online_fee=60_000)
    result = quote(CENTRAL, [dearer_online], [], Channel.ONLINE, None, date(2025, 1, 1))
    assert result.gross_fee == 50_000 and result.payable == 50_000


@st.composite
def rule_sets(draw: st.DrawFn) -> list[WaiverTerms]:
    count = draw(st.integers(0, 6))
    out = []
    for index in range(count):
        start = date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 400)))
        length = draw(st.one_of(st.none(), st.integers(0, 400)))
        out.append(
            WaiverTerms(
                id=index + 1,
                scope=draw(st.sampled_from(list(Scope))),
                service_id=draw(st.sampled_from([1, 2])),
                basis_points=draw(st.integers(0, FULL_WAIVER_BP)),
                reason_code=f"r{index}",
                legal_basis="x",
                effective_from=start,
                effective_to=None if length is None else start + timedelta(days=length),
                channel=draw(st.sampled_from([None, Channel.ONLINE, Channel.COUNTER])),
                beneficiary_category=draw(st.sampled_from([None, "student", "poor_household"])),
            )
        )
    return out


@settings(max_examples=50, deadline=None)
@given(
    rule_sets(),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.sampled_from([None, "student", "poor_household"]),
    st.integers(0, 800),
    st.booleans(),
)
def test_never_more_online_than_at_the_counter_and_nothing_added(
    rules_: list[WaiverTerms], a: int, b: int, category: str | None, offset: int, council: bool
) -> None:
    fee = FeeTerms(1, date(2024, 1, 1), None, counter_fee=max(a, b), online_fee=min(a, b))
    service = ServiceFacts(id=1, council_procedure=council)
    day = date(2025, 1, 1) + timedelta(days=offset)
    online = quote(service, [fee], rules_, Channel.ONLINE, category, day)
    counter = quote(service, [fee], rules_, Channel.COUNTER, category, day)
    for result in (online, counter):
        assert result.payable == result.gross_fee - result.waived_amount
        assert 0 <= result.waived_amount <= result.gross_fee
        if result.rule is not None:
            assert result.rule.id in result.candidate_ids
    assert online.payable <= counter.payable <= fee.counter_fee
    assert all(r.channel != Channel.ONLINE for r in rules_ if r.id in counter.candidate_ids), (
        "a counter quote never uses an online rule"
    )
