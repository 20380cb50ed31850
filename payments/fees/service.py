"""Fees and waivers use cases: the catalogue, quotes, applications, receipts, revenue foregone
and the admin's versioned fee schedules and waiver rules.

Functions taking a `db` own their transaction; `on_payment_succeeded` runs inside the payment's
transaction (the handler registry). Every service takes an injected clock for "today" (the
business day in Asia/Ho_Chi_Minh). Money: the payable goes through payments (VietQR, or the
wallet via the existing wallet-payment endpoint); every waived amount is posted to the memo
accounts of the ledger (Dr fees_waived / Cr fee_waiver_memo) when its receipt is issued.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, extract, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload

from core.clock import Clock, business_date, utcnow
from core.db import Database
from core.pagination import paginate
from payments import ledger
from payments.fees import rules
from payments.fees.errors import (
    ApplicationNotFound,
    NoFeeInEffect,
    NothingToPay,
    ReceiptNotFound,
    ServiceNotFound,
)
from payments.fees.models import (
    ApplicationStatus,
    FeeApplication,
    FeeVersion,
    PublicService,
    ReceiptCounter,
    WaiverRule,
)
from payments.ledger import Leg
from payments.models import Payment
from payments.service import PaymentsConfig, create_vietqr_payment
from payments.states import PaymentStatus

log = logging.getLogger(__name__)
PURPOSE = "public_fee"
CREDIT_ACCOUNT = "fee_revenue"
STAFF_ROLES = frozenset({"finance", "admin"})


# -- conversions to the pure rule module ---------------------------------------------------------
def _facts(service: PublicService) -> rules.ServiceFacts:
    return rules.ServiceFacts(id=service.id, council_procedure=service.council_procedure)


def fee_terms(version: FeeVersion) -> rules.FeeTerms:
    return rules.FeeTerms(
        id=version.id,
        effective_from=version.effective_from,
        effective_to=version.effective_to,
        counter_fee=version.counter_fee,
        online_fee=version.online_fee,
        legal_basis=version.legal_basis,
    )


def _waiver_terms(rule: WaiverRule) -> rules.WaiverTerms:
    return rules.WaiverTerms(
        id=rule.id,
        scope=rules.Scope(rule.scope),
        basis_points=rule.basis_points,
        reason_code=rule.reason_code,
        legal_basis=rule.legal_basis,
        effective_from=rule.effective_from,
        effective_to=rule.effective_to,
        service_id=rule.service_id,
        channel=rules.Channel(rule.channel) if rule.channel else None,
        beneficiary_category=rule.beneficiary_category,
        supersedes_id=rule.supersedes_id,
    )


# -- reads ----------------------------------------------------------------------------------------
def service_by_code(session: Session, code: str) -> PublicService:
    service = session.scalars(select(PublicService).where(PublicService.code == code)).first()
    if service is None:
        raise ServiceNotFound(f"no public service {code!r}")
    return service


def _versions(session: Session, service_id: int) -> list[rules.FeeTerms]:
    stmt = select(FeeVersion).where(FeeVersion.service_id == service_id)
    return [fee_terms(v) for v in session.scalars(stmt)]


def _all_rules(session: Session) -> list[rules.WaiverTerms]:
    """Every waiver rule: the table is small (a few per legal act), and a version superseding
    a rule may be scoped differently from the rule it replaces."""
    return [_waiver_terms(r) for r in session.scalars(select(WaiverRule))]


def _quote(
    session: Session,
    service: PublicService,
    channel: rules.Channel,
    category: str | None,
    day: date,
) -> rules.Quote:
    try:
        return rules.quote(
            _facts(service),
            _versions(session, service.id),
            _all_rules(session),
            channel,
            category,
            day,
        )
    except rules.NoFeeInEffect as exc:
        raise NoFeeInEffect(f"{service.code}: {exc}") from exc


def quote_view(
    service: PublicService,
    quote: rules.Quote,
    channel: rules.Channel,
    category: str | None,
    day: date,
) -> dict[str, Any]:
    """A quote as the API shows it: amounts, the winning rule and why, the legal basis."""
    rule = quote.rule
    return {
        "service_code": service.code,
        "channel": channel,
        "beneficiary_category": category,
        "business_date": day,
        "gross_fee": quote.gross_fee,
        "waived_amount": quote.waived_amount,
        "payable": quote.payable,
        "rule": None
        if rule is None
        else {
            "id": rule.id,
            "reason_code": rule.reason_code,
            "basis_points": rule.basis_points,
            "scope": rule.scope,
            "channel": rule.channel,
            "beneficiary_category": rule.beneficiary_category,
            "effective_from": rule.effective_from,
            "effective_to": rule.effective_to,
            "decided_by": quote.decided_by,
            "why": quote.why,
            "candidates": list(quote.candidate_ids),
        },
        "legal_basis": rule.legal_basis if rule else quote.fee.legal_basis,
        "fee_version": {
            "id": quote.fee.id,
            "effective_from": quote.fee.effective_from,
            "effective_to": quote.fee.effective_to,
            "legal_basis": quote.fee.legal_basis,
        },
    }


def quote_fee(
    db: Database, code: str, channel: str, beneficiary_category: str | None, clock: Clock
) -> dict[str, Any]:
    """What a submission would cost today. Read-only; never adds a convenience fee."""
    day = business_date(clock())
    with db.reader() as session:
        service = service_by_code(session, code)
        channel_ = rules.Channel(channel)
        quote = _quote(session, service, channel_, beneficiary_category, day)
        return quote_view(service, quote, channel_, beneficiary_category, day)


def _service_view(service: PublicService, fee: rules.FeeTerms | None) -> dict[str, Any]:
    return {
        "code": service.code,
        "name_vi": service.name_vi,
        "name_en": service.name_en,
        "authority_vi": service.authority_vi,
        "authority_en": service.authority_en,
        "council_procedure": service.council_procedure,
        "fees": None
        if fee is None
        else {
            "counter": fee.amount(rules.Channel.COUNTER),
            "online": fee.amount(rules.Channel.ONLINE),
        },
        "fee_version_id": fee.id if fee else None,
        "id": service.id,
    }


def fee_or_none(versions: Iterable[rules.FeeTerms], day: date) -> rules.FeeTerms | None:
    try:
        return rules.fee_in_effect(versions, day)
    except rules.NoFeeInEffect:
        return None


def list_services(db: Database, clock: Clock, limit: int, starting_after: int | None) -> Any:
    """The catalogue in id order with today's fee by channel (before any waiver)."""
    day = business_date(clock())
    with db.reader() as session:
        page = paginate(session, select(PublicService), PublicService.id, limit, starting_after)
        page["data"] = [
            _service_view(s, fee_or_none(_versions(session, s.id), day)) for s in page["data"]
        ]
        return page


def get_service(db: Database, code: str, clock: Clock) -> dict[str, Any]:
    """One catalogue entry with today's fee by channel."""
    day = business_date(clock())
    with db.reader() as session:
        service = service_by_code(session, code)
        return _service_view(service, fee_or_none(_versions(session, service.id), day))


# -- applications and receipts --------------------------------------------------------------------
def _frozen(
    quote: rules.Quote,
    service_id: int,
    channel: rules.Channel,
    category: str | None,
    user_id: int,
    now: datetime,
) -> FeeApplication:
    """A new application with the quote it is filed under (never recomputed later)."""
    rule = quote.rule
    return FeeApplication(
        service_id=service_id,
        applicant_user_id=user_id,
        channel=channel,
        beneficiary_category=category,
        gross_fee=quote.gross_fee,
        waived_amount=quote.waived_amount,
        payable=quote.payable,
        fee_version_id=quote.fee.id,
        rule_id=rule.id if rule else None,
        rule_decided_by=quote.decided_by,
        rule_why=quote.why if rule else None,
        legal_basis=rule.legal_basis if rule else quote.fee.legal_basis,
        status=ApplicationStatus.AWAITING_PAYMENT,
        business_date=business_date(now),
        created_at=now,
    )


def file_application(
    db: Database,
    cfg: PaymentsConfig,
    *,
    code: str,
    channel: str,
    beneficiary_category: str | None,
    user_id: int,
    clock: Clock,
) -> FeeApplication:
    """File a submission under today's quote, frozen on the application.

    Payable 0: no payment; the receipt is issued and the waiver posted to the memo accounts at
    once. Payable > 0: a pending VietQR payment (purpose public_fee, credited to fee_revenue) that
    the citizen pays by bank transfer or from the wallet; `on_payment_succeeded` completes it.
    One transaction; the caller's Idempotency-Key makes a retry return the same application.
    """
    now = clock()
    day = business_date(now)
    channel_ = rules.Channel(channel)
    with db.transaction() as session:
        service = service_by_code(session, code)
        quote = _quote(session, service, channel_, beneficiary_category, day)
        application = _frozen(quote, service.id, channel_, beneficiary_category, user_id, now)
        session.add(application)
        session.flush()
        if quote.payable == 0:
            _complete(session, application, service.code, now)
        else:
            _attach_payment(session, cfg, application, service.code, now, attempt=1)
        application_id = application.id
    return _load(db, application_id)


def _attach_payment(
    session: Session,
    cfg: PaymentsConfig,
    application: FeeApplication,
    code: str,
    now: datetime,
    attempt: int,
) -> None:
    payment = create_vietqr_payment(
        session,
        cfg,
        amount=application.payable,
        purpose=PURPOSE,
        owner_ref=f"application:{application.id}",
        credit_account=CREDIT_ACCOUNT,
        payer_user_id=application.applicant_user_id,
        description=f"Phí, lệ phí {code} (hồ sơ {application.id})",
        external_key=f"fee-application:{application.id}:{attempt}",
        now=now,
    )
    application.payment_id = payment.id
    session.flush()


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def next_receipt_no(session: Session, year: int) -> str:
    """The next `BL-<year>-<6 digits>`: the year's counter row is locked by the UPDATE, so two
    transactions never take one number (the unique receipt_no backs it up)."""
    session.execute(
        _insert(session)(ReceiptCounter).values(year=year, last_value=0).on_conflict_do_nothing()
    )
    value = session.execute(
        update(ReceiptCounter)
        .where(ReceiptCounter.year == year)
        .values(last_value=ReceiptCounter.last_value + 1)
        .returning(ReceiptCounter.last_value)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return f"BL-{year}-{int(value):06d}"


def _complete(session: Session, application: FeeApplication, code: str, now: datetime) -> None:
    """Issue the receipt and post the waived amount to the memo accounts (flushes only)."""
    day = business_date(now)
    application.status = (
        ApplicationStatus.PAID if application.payable > 0 else ApplicationStatus.FEE_WAIVED
    )
    application.completed_at = now
    application.completed_business_date = day
    application.receipt_no = next_receipt_no(session, day.year)
    if application.waived_amount > 0:
        ledger.post(
            session,
            external_key=f"fee-waiver:{application.id}",
            kind="fee_waiver",
            business_date=day,
            memo=f"public_fee {code} application:{application.id} waived",
            legs=[
                Leg("fees_waived", application.waived_amount),
                Leg("fee_waiver_memo", -application.waived_amount),
            ],
        )
    session.flush()


def _application_id(owner_ref: object) -> int | None:
    prefix, _, raw = str(owner_ref or "").partition(":")
    return int(raw) if prefix == "application" and raw.isdigit() else None


def _lock_application(session: Session, application_id: int) -> FeeApplication | None:
    # No eager joins here: PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
    stmt = (
        select(FeeApplication)
        .options(lazyload("*"))
        .where(FeeApplication.id == application_id)
        .with_for_update()
    )
    return session.scalars(stmt).first()


def on_payment_succeeded(session: Session, payload: dict[str, Any]) -> None:
    """payment.succeeded handler (runs in the payment's transaction): mark the application
    paid, issue its receipt number and post its waiver memo. Idempotent: an application that
    is already complete is left as it is (a second payment is finance's to refund)."""
    if payload.get("purpose") != PURPOSE:
        return
    application_id = _application_id(payload.get("owner_ref"))
    application = _lock_application(session, application_id) if application_id else None
    if application is None:
        log.warning("public_fee payment %s for no application", payload.get("payment_id"))
        return
    if application.status != ApplicationStatus.AWAITING_PAYMENT:
        if application.payment_id != payload.get("payment_id"):
            log.warning("application %s paid twice (payment %s)", application.id, payload)
        return
    succeeded = payload.get("succeeded_at")
    now = datetime.fromisoformat(succeeded) if succeeded else utcnow()
    application.payment_id = int(payload["payment_id"])
    code = session.scalar(
        select(PublicService.code).where(PublicService.id == application.service_id)
    )
    _complete(session, application, str(code), now)


def renew_payment(
    db: Database, cfg: PaymentsConfig, application_id: int, user_id: int, clock: Clock
) -> FeeApplication:
    """A fresh VietQR payment for an application whose payment expired or was cancelled.

    Locks the application. A payment still pending is kept (returned as it is); a completed
    application is a 409. Only the applicant may ask.
    """
    now = clock()
    with db.transaction() as session:
        application = _lock_application(session, application_id)
        if application is None or application.applicant_user_id != user_id:
            raise ApplicationNotFound("no such application")
        if application.status != ApplicationStatus.AWAITING_PAYMENT:
            raise NothingToPay(f"the application is {application.status}")
        payment = application.payment
        if payment is None or payment.status != PaymentStatus.PENDING:
            attempts = session.scalar(
                select(func.count()).where(Payment.owner_ref == f"application:{application.id}")
            )
            code = session.scalar(
                select(PublicService.code).where(PublicService.id == application.service_id)
            )
            _attach_payment(session, cfg, application, str(code), now, int(attempts or 0) + 1)
    return _load(db, application_id)


def _load(db: Database, application_id: int) -> FeeApplication:
    with db.reader() as session:
        application = session.get(FeeApplication, application_id)
        if application is None:
            raise ApplicationNotFound("no such application")
        return application


def _may_see(application: FeeApplication, user_id: int, roles: frozenset[str]) -> bool:
    return application.applicant_user_id == user_id or bool(roles & STAFF_ROLES)


def application_for(
    db: Database, application_id: int, user_id: int, roles: frozenset[str]
) -> FeeApplication:
    """An application its applicant (or finance/admin) may see; 404 for anyone else."""
    application = _load(db, application_id)
    if not _may_see(application, user_id, roles):
        raise ApplicationNotFound("no such application")
    return application


def my_applications(
    db: Database, user_id: int, limit: int, starting_after: int | None
) -> dict[str, Any]:
    """The caller's applications, oldest first."""
    stmt = select(FeeApplication).where(FeeApplication.applicant_user_id == user_id)
    with db.reader() as session:
        return dict(paginate(session, stmt, FeeApplication.id, limit, starting_after))


def receipt_for(
    db: Database, receipt_no: str, user_id: int, roles: frozenset[str]
) -> FeeApplication:
    """The application behind a receipt number, for its applicant or finance/admin (else 404)."""
    with db.reader() as session:
        application = session.scalars(
            select(FeeApplication).where(FeeApplication.receipt_no == receipt_no)
        ).first()
    if application is None or not _may_see(application, user_id, roles):
        raise ReceiptNotFound(f"no receipt {receipt_no}")
    return application


# -- revenue foregone -----------------------------------------------------------------------------
REPORT_COLUMNS = (
    "period",
    "service_code",
    "service_name_vi",
    "service_name_en",
    "count",
    "gross_fee",
    "waived_amount",
    "payable",
)


def waived_fee_report(db: Database, start: date, end: date, group: str) -> dict[str, Any]:
    """Completed applications (receipt issued) per service and business day or month, between
    `start` and `end` inclusive: count, gross, waived, payable. Grouped in SQL."""
    done = FeeApplication.completed_business_date
    if group == "month":
        periods: list[Any] = [
            cast(extract("year", done), Integer).label("y"),
            cast(extract("month", done), Integer).label("m"),
        ]
    else:
        periods = [done.label("d")]
    stmt = (
        select(
            *periods,
            PublicService.code,
            PublicService.name_vi,
            PublicService.name_en,
            func.count(FeeApplication.id),
            cast(func.sum(FeeApplication.gross_fee), BigInteger),
            cast(func.sum(FeeApplication.waived_amount), BigInteger),
            cast(func.sum(FeeApplication.payable), BigInteger),
        )
        .join(PublicService, PublicService.id == FeeApplication.service_id)
        .where(FeeApplication.receipt_no.is_not(None), done >= start, done <= end)
        .group_by(*periods, PublicService.code, PublicService.name_vi, PublicService.name_en)
        .order_by(*periods, PublicService.code)
    )
    with db.reader() as session:
        rows = [_report_row(tuple(row), group) for row in session.execute(stmt)]
    totals = {
        k: sum(r[k] for r in rows) for k in ("count", "gross_fee", "waived_amount", "payable")
    }
    return {"data": rows, "has_more": False, "next_cursor": None, "totals": totals, "group": group}


def _report_row(row: tuple[Any, ...], group: str) -> dict[str, Any]:
    if group == "month":
        period = f"{int(row[0]):04d}-{int(row[1]):02d}"
        rest = row[2:]
    else:
        day = row[0]
        period = day.isoformat() if isinstance(day, date) else str(day)
        rest = row[1:]
    code, name_vi, name_en, count, gross, waived, payable = rest
    return {
        "period": period,
        "service_code": code,
        "service_name_vi": name_vi,
        "service_name_en": name_en,
        "count": int(count),
        "gross_fee": int(gross or 0),
        "waived_amount": int(waived or 0),
        "payable": int(payable or 0),
    }


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV: UTF-8, a header row, integer amounts, RFC 4180 quoting."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for row in report["data"]:
        writer.writerow([row[column] for column in REPORT_COLUMNS])
    return out.getvalue()
