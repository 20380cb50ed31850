"""Admin use cases of fees and waivers: the catalogue, fee versions and waiver rules.

Everything here is insert-only and audited (core.audit.record: who, when, before, after):
a fee or a waiver changes by a new version from its effective date, never by an edit (the
database refuses UPDATE and DELETE on both tables). Versions start today or later, so history
is never rewritten. Each function owns its transaction; none moves money.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from core import audit
from core.clock import Clock, business_date
from core.db import Database
from core.pagination import paginate
from payments.fees.errors import (
    BackdatedVersion,
    OnlineFeeAboveCounter,
    ServiceExists,
    WaiverRuleNotFound,
)
from payments.fees.models import FeeVersion, PublicService, WaiverRule
from payments.fees.service import fee_or_none, fee_terms, get_service, service_by_code


def _check_not_backdated(effective_from: date, clock: Clock) -> None:
    today = business_date(clock())
    if effective_from < today:
        raise BackdatedVersion(
            f"effective_from {effective_from.isoformat()} is before today ({today.isoformat()}): "
            "history is never rewritten; add a version from today or later"
        )


def _check_fees(counter_fee: int, online_fee: int) -> None:
    if online_fee > counter_fee:
        raise OnlineFeeAboveCounter(
            "the online fee may not exceed the counter fee (no convenience fee, ever)"
        )


def fee_version_dict(version: FeeVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "service_id": version.service_id,
        "counter_fee": version.counter_fee,
        "online_fee": version.online_fee,
        "effective_from": version.effective_from.isoformat(),
        "effective_to": version.effective_to.isoformat() if version.effective_to else None,
        "legal_basis": version.legal_basis,
    }


def waiver_rule_dict(rule: WaiverRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "scope": rule.scope,
        "service_id": rule.service_id,
        "channel": rule.channel,
        "beneficiary_category": rule.beneficiary_category,
        "basis_points": rule.basis_points,
        "reason_code": rule.reason_code,
        "legal_basis": rule.legal_basis,
        "effective_from": rule.effective_from.isoformat(),
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "supersedes_id": rule.supersedes_id,
    }


def add_service(db: Database, actor: str, data: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Add a catalogue entry with its first fee version. Audited; 409 for a taken code."""
    fee = data.pop("fee")
    _check_fees(fee["counter_fee"], fee["online_fee"])
    _check_not_backdated(fee["effective_from"], clock)
    with db.transaction() as session:
        if session.scalar(select(PublicService.id).where(PublicService.code == data["code"])):
            raise ServiceExists(f"public service {data['code']!r} exists")
        service = PublicService(**data, created_by=actor, created_at=clock())
        session.add(service)
        session.flush()
        version = FeeVersion(service_id=service.id, created_by=actor, created_at=clock(), **fee)
        session.add(version)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="public_service.add",
            entity_type="public_service",
            entity_id=service.code,
            after={**data, "fee_version": fee_version_dict(version)},
        )
        code = service.code
    return get_service(db, code, clock)


def add_fee_version(
    db: Database, actor: str, code: str, data: dict[str, Any], clock: Clock
) -> FeeVersion:
    """Add a fee version from `effective_from` (today or later). The version in effect on that
    day stays untouched; the audit record carries it as `before`."""
    _check_fees(data["counter_fee"], data["online_fee"])
    _check_not_backdated(data["effective_from"], clock)
    with db.transaction() as session:
        service = service_by_code(session, code)
        versions = session.scalars(
            select(FeeVersion).where(FeeVersion.service_id == service.id)
        ).all()
        current = fee_or_none([fee_terms(v) for v in versions], data["effective_from"])
        before = next(
            (fee_version_dict(v) for v in versions if current and v.id == current.id), None
        )
        version = FeeVersion(service_id=service.id, created_by=actor, created_at=clock(), **data)
        session.add(version)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="fee_version.add",
            entity_type="public_service",
            entity_id=service.code,
            before=before,
            after=fee_version_dict(version),
        )
        return version


def list_fee_versions(db: Database, code: str) -> dict[str, Any]:
    """Every fee version of a service, oldest first (the whole history, never edited)."""
    with db.reader() as session:
        service = service_by_code(session, code)
        stmt = select(FeeVersion).where(FeeVersion.service_id == service.id)
        return dict(paginate(session, stmt, FeeVersion.id, 1000))


def add_waiver_rule(db: Database, actor: str, data: dict[str, Any], clock: Clock) -> WaiverRule:
    """Add a waiver rule (or a version superseding one from its effective_from). Audited with
    the superseded rule as `before`."""
    _check_not_backdated(data["effective_from"], clock)
    code = data.pop("service_code", None)
    with db.transaction() as session:
        data["service_id"] = service_by_code(session, code).id if code else None
        before = None
        if data.get("supersedes_id") is not None:
            old = session.get(WaiverRule, data["supersedes_id"])
            if old is None:
                raise WaiverRuleNotFound("the rule to supersede does not exist")
            before = waiver_rule_dict(old)
        rule = WaiverRule(**data, created_by=actor, created_at=clock())
        session.add(rule)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="waiver_rule.add",
            entity_type="fee_waiver_rule",
            entity_id=rule.id,
            before=before,
            after=waiver_rule_dict(rule),
        )
        return rule


def list_waiver_rules(db: Database, limit: int, starting_after: int | None) -> dict[str, Any]:
    """Every waiver rule ever entered, oldest first."""
    with db.reader() as session:
        return dict(paginate(session, select(WaiverRule), WaiverRule.id, limit, starting_after))
