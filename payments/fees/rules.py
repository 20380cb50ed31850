"""Which fee and which waiver rule apply, and why (SPEC §8, §13 "Fees"). Pure: no Flask, no DB.

A fee version is in effect on a business day when `effective_from <= day <= effective_to`
(an open `effective_to` runs forever); of several, the latest `effective_from` wins, then the
highest id (the newest entry), so an admin changes a fee by adding a version, never by editing.
A waiver rule applies when its scope, channel, beneficiary category and dates match and no later
version superseding it is in effect. Of several applicable rules the largest waiver wins, then
the latest `effective_from`, then the lowest id. A citizen never pays more online than at the
counter (the online fee is capped at the counter fee, and rules for the counter also cover online
submissions), and there is no convenience fee: payable = gross − waived, nothing is ever added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

FULL_WAIVER_BP = 10_000  # basis points: 10,000 = 100 %


class Channel(StrEnum):
    ONLINE = "online"
    COUNTER = "counter"


class Scope(StrEnum):
    ALL_SERVICES = "all_services"
    COUNCIL_PROCEDURES = "council_procedures"  # fees the People's Council sets
    SERVICE = "service"


class DecidedBy(StrEnum):
    ONLY_RULE = "only_rule"
    LARGEST_WAIVER = "largest_waiver"
    LATEST_EFFECTIVE_FROM = "latest_effective_from"
    LOWEST_ID = "lowest_id"


class NoFeeInEffect(LookupError):
    """The service has no fee version in effect on that day."""


@dataclass(frozen=True)
class ServiceFacts:
    id: int
    council_procedure: bool


@dataclass(frozen=True)
class FeeTerms:
    id: int
    effective_from: date
    effective_to: date | None
    counter_fee: int
    online_fee: int
    legal_basis: str = ""

    def amount(self, channel: Channel) -> int:
        # No convenience fee: online is never dearer than the counter, whatever was entered.
        if channel == Channel.ONLINE:
            return min(self.online_fee, self.counter_fee)
        return self.counter_fee


@dataclass(frozen=True)
class WaiverTerms:
    id: int
    scope: Scope
    basis_points: int
    reason_code: str
    legal_basis: str
    effective_from: date
    effective_to: date | None = None
    service_id: int | None = None
    channel: Channel | None = None  # None: every channel
    beneficiary_category: str | None = None  # None: everyone
    supersedes_id: int | None = None


@dataclass(frozen=True)
class Quote:
    gross_fee: int
    waived_amount: int
    payable: int
    fee: FeeTerms
    rule: WaiverTerms | None
    decided_by: DecidedBy | None
    why: str
    candidate_ids: tuple[int, ...]


def in_effect(effective_from: date, effective_to: date | None, day: date) -> bool:
    """Both bounds inclusive: a rule 'until 31 December 2025' still applies on that day."""
    return effective_from <= day and (effective_to is None or day <= effective_to)


def fee_in_effect(versions: Iterable[FeeTerms], day: date) -> FeeTerms:
    """The fee version of `day`: latest effective_from, then the newest id."""
    current = [v for v in versions if in_effect(v.effective_from, v.effective_to, day)]
    if not current:
        raise NoFeeInEffect(f"no fee in effect on {day.isoformat()}")
    return max(current, key=lambda v: (v.effective_from, v.id))


def _scope_matches(rule: WaiverTerms, service: ServiceFacts) -> bool:
    if rule.scope == Scope.ALL_SERVICES:
        return True
    if rule.scope == Scope.COUNCIL_PROCEDURES:
        return service.council_procedure
    return rule.service_id == service.id


def _channel_matches(rule: WaiverTerms, channel: Channel) -> bool:
    # An online submission also gets what the counter would waive: a citizen never pays more
    # online than at the counter. An online rule never touches a counter quote.
    if rule.channel is None or rule.channel == channel:
        return True
    return channel == Channel.ONLINE and rule.channel == Channel.COUNTER


def _superseded(rule: WaiverTerms, rules: Sequence[WaiverTerms], day: date) -> bool:
    return any(r.supersedes_id == rule.id and r.effective_from <= day for r in rules)


def applicable_rules(
    rules: Sequence[WaiverTerms],
    service: ServiceFacts,
    channel: Channel,
    beneficiary_category: str | None,
    day: date,
) -> list[WaiverTerms]:
    """Rules that waive something for this service, channel, category and business day."""
    return [
        rule
        for rule in rules
        if rule.basis_points > 0
        and _scope_matches(rule, service)
        and _channel_matches(rule, channel)
        and (rule.beneficiary_category is None or rule.beneficiary_category == beneficiary_category)
        and in_effect(rule.effective_from, rule.effective_to, day)
        and not _superseded(rule, rules, day)
    ]


def waived_amount(gross: int, basis_points: int) -> int:
    """The amount a rule waives, floored to the dong (a full waiver waives exactly `gross`)."""
    if basis_points >= FULL_WAIVER_BP:
        return gross
    return gross * basis_points // FULL_WAIVER_BP


def _sort_key(rule: WaiverTerms, gross: int) -> tuple[int, int, int]:
    return (-waived_amount(gross, rule.basis_points), -rule.effective_from.toordinal(), rule.id)


def choose_rule(
    candidates: Sequence[WaiverTerms], gross: int
) -> tuple[WaiverTerms | None, DecidedBy | None, str]:
    """SPEC §13: the largest waiver wins, then the latest effective_from, then the lowest id."""
    if not candidates:
        return None, None, "no waiver rule applies"
    ranked = sorted(candidates, key=lambda rule: _sort_key(rule, gross))
    winner = ranked[0]
    if len(ranked) == 1:
        return winner, DecidedBy.ONLY_RULE, "the only applicable rule"
    runner_up = ranked[1]
    others = len(ranked) - 1
    won, lost = _sort_key(winner, gross), _sort_key(runner_up, gross)
    if won[0] != lost[0]:
        return (
            winner,
            DecidedBy.LARGEST_WAIVER,
            f"largest waiver ({-won[0]} VND) of {others + 1} applicable rules",
        )
    if won[1] != lost[1]:
        return (
            winner,
            DecidedBy.LATEST_EFFECTIVE_FROM,
            f"equal waiver; latest effective_from ({winner.effective_from.isoformat()}) "
            f"of {others + 1} applicable rules",
        )
    return (
        winner,
        DecidedBy.LOWEST_ID,
        f"equal waiver and effective_from; lowest id of {others + 1} applicable rules",
    )


def quote(
    service: ServiceFacts,
    versions: Iterable[FeeTerms],
    rules: Sequence[WaiverTerms],
    channel: Channel,
    beneficiary_category: str | None,
    day: date,
) -> Quote:
    """Gross fee, waived amount and payable for one submission on business day `day`."""
    fee = fee_in_effect(versions, day)
    gross = fee.amount(channel)
    candidates = applicable_rules(rules, service, channel, beneficiary_category, day)
    rule, decided_by, why = choose_rule(candidates, gross)
    waived = waived_amount(gross, rule.basis_points) if rule else 0
    payable = gross - waived
    assert 0 <= payable <= fee.counter_fee, "never more than at the counter"
    return Quote(
        gross_fee=gross,
        waived_amount=waived,
        payable=payable,
        fee=fee,
        rule=rule,
        decided_by=decided_by,
        why=why,
        candidate_ids=tuple(sorted(r.id for r in candidates)),
    )
