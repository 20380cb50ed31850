"""Fees and waivers through the HTTP API on the embedded default, with an injected clock:
quotes either side of each rule's dates (business day in Asia/Ho_Chi_Minh), overlapping rules,
beneficiaries, applications with receipts and ledger memo postings, paying the counter fee
(wallet and bank transfer), the revenue-foregone report (JSON, CSV) and the audited admin API."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core import audit
from payments import ledger
from payments.fees import service as fees
from payments.fees.models import FeeApplication
from payments.models import JournalTransaction
from payments.service import PaymentsConfig, credit_wallet, pay_pending_with_wallet
from tests.api.test_foundation import assert_problem
from tests.api.test_payments_api import credit_body, idem, signed_post, user_id

JUDICIAL = "judicial-record-certificate"  # 200,000; not a People's Council procedure
HOUSEHOLD = "household-business-registration"  # 100,000; a People's Council procedure
PERMIT = "construction-permit"  # 75,000; a People's Council procedure
RECEIPT_RE = re.compile(r"^BL-(\d{4})-(\d{6})$")


def svc(app: Flask) -> Any:
    return app.extensions["cashless"]


def at(app: Flask, iso: str) -> datetime:
    """Set the app's injected clock to an instant (UTC)."""
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    svc(app).extra["clock"] = lambda: moment
    return moment


def quote(client: FlaskClient, code: str, channel: str, category: str | None = None) -> Any:
    body: dict[str, Any] = {"channel": channel}
    if category is not None:
        body["beneficiary_category"] = category
    response = client.post(f"/api/v1/public-services/{code}/quotes", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def apply(
    client: FlaskClient, headers: dict[str, str], code: str, channel: str, key: str, **extra: Any
) -> Any:
    response = client.post(
        f"/api/v1/public-services/{code}/applications",
        json={"channel": channel, **extra},
        headers=idem(headers, key),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def balances(app: Flask) -> dict[str, int]:
    with svc(app).db.reader() as session:
        return {code: ledger.balance(session, code) for code in ("fees_waived", "fee_waiver_memo")}


# -- catalogue and quotes -------------------------------------------------------------------------
def test_catalogue_lists_demo_services_with_fees_by_channel(
    client: FlaskClient, app: Flask
) -> None:
    at(app, "2026-03-01T03:00:00")
    body = client.get("/api/v1/public-services").json
    assert set(body) >= {"data", "has_more", "next_cursor"} and body["has_more"] is False
    by_code = {s["code"]: s for s in body["data"]}
    assert {JUDICIAL, HOUSEHOLD, PERMIT} <= set(by_code)
    assert by_code[JUDICIAL]["name_vi"] == "Cấp Phiếu lý lịch tư pháp"
    assert by_code[JUDICIAL]["fees"] == {"counter": 200000, "online": 200000}
    assert by_code[HOUSEHOLD]["council_procedure"] is True
    assert all(s["fees"]["counter"] > 0 for s in body["data"])
    page = client.get("/api/v1/public-services?limit=2").json
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = client.get(f"/api/v1/public-services?starting_after={page['next_cursor']}").json
    assert len(page["data"]) + len(rest["data"]) == len(body["data"])


@pytest.mark.parametrize(
    ("instant", "code", "payable", "reason"),
    [
        # The council rule starts on 1 January 2024 (Hanoi): 16:59:59 UTC is still 2023 there.
        ("2023-12-31T16:59:59", HOUSEHOLD, 100000, None),
        ("2023-12-31T17:00:00", HOUSEHOLD, 0, "online_council_procedures"),
        # ... and ends on 31 December 2025; from 1 January 2026 every online submission is free.
        ("2025-12-31T16:59:59", HOUSEHOLD, 0, "online_council_procedures"),
        ("2025-12-31T17:00:00", HOUSEHOLD, 0, "online_all_services"),
        # A service whose fee the council does not set pays online until the end of 2025 ...
        ("2025-12-31T16:59:59", JUDICIAL, 200000, None),
        # ... and 23:30 UTC on 31 December 2025 is already 1 January 2026 in Hanoi.
        ("2025-12-31T23:30:00", JUDICIAL, 0, "online_all_services"),
    ],
)
def test_online_quote_either_side_of_each_rule_boundary(
    client: FlaskClient, app: Flask, instant: str, code: str, payable: int, reason: str | None
) -> None:
    at(app, instant)
    body = quote(client, code, "online")
    assert body["payable"] == payable
    assert body["gross_fee"] - body["waived_amount"] == payable
    assert isinstance(body["gross_fee"], int) and body["currency"] == "VND"
    if reason is None:
        assert body["rule"] is None
        assert "dữ liệu minh hoạ" in body["legal_basis"]  # the fee's own basis
    else:
        assert body["rule"]["reason_code"] == reason
        assert body["rule"]["decided_by"] == "only_rule"
        assert body["legal_basis"].startswith("Nghị quyết của HĐND thành phố Hà Nội")


@pytest.mark.parametrize("instant", ["2025-06-01T03:00:00", "2026-06-01T03:00:00"])
def test_counter_quote_is_never_waived_by_the_online_rule(
    client: FlaskClient, app: Flask, instant: str
) -> None:
    at(app, instant)
    for code, fee in ((JUDICIAL, 200000), (HOUSEHOLD, 100000), (PERMIT, 75000)):
        body = quote(client, code, "counter")
        assert (body["gross_fee"], body["waived_amount"], body["payable"]) == (fee, 0, fee)
        assert body["rule"] is None


def test_overlapping_rules_resolve_and_say_why(client: FlaskClient, app: Flask) -> None:
    at(app, "2026-03-01T03:00:00")
    student_online = quote(client, JUDICIAL, "online", "student")
    assert student_online["payable"] == 0
    assert student_online["rule"]["reason_code"] == "online_all_services"
    assert student_online["rule"]["decided_by"] == "largest_waiver"
    assert len(student_online["rule"]["candidates"]) == 2
    poor_online = quote(client, JUDICIAL, "online", "poor_household")
    assert poor_online["rule"]["reason_code"] == "online_all_services"  # equal; newer rule
    assert poor_online["rule"]["decided_by"] == "latest_effective_from"


def test_beneficiary_exemptions(client: FlaskClient, app: Flask) -> None:
    at(app, "2025-06-01T03:00:00")
    student = quote(client, JUDICIAL, "counter", "student")
    assert (student["waived_amount"], student["payable"]) == (100000, 100000)
    assert student["rule"]["reason_code"] == "beneficiary_student"
    assert student["rule"]["basis_points"] == 5000
    poor = quote(client, PERMIT, "counter", "poor_household")
    assert (poor["waived_amount"], poor["payable"]) == (75000, 0)
    assert quote(client, PERMIT, "counter", "student")["payable"] == 75000  # judicial only


def test_no_convenience_fee_ever(client: FlaskClient, app: Flask) -> None:
    """Whatever the day, category or service: payable = gross − waived, never above the
    counter's payable, and nothing else is charged."""
    codes = [s["code"] for s in client.get("/api/v1/public-services").json["data"]]
    for instant in ("2023-06-01T03:00:00", "2025-06-01T03:00:00", "2026-06-01T03:00:00"):
        at(app, instant)
        for code in codes:
            for category in (None, "student", "poor_household"):
                online = quote(client, code, "online", category)
                counter = quote(client, code, "counter", category)
                for body in (online, counter):
                    assert body["payable"] == body["gross_fee"] - body["waived_amount"]
                    assert not {k for k in body if "convenience" in k or "surcharge" in k}
                assert online["payable"] <= counter["payable"] <= counter["gross_fee"]


def test_quote_errors(client: FlaskClient) -> None:
    assert_problem(
        client.post("/api/v1/public-services/nope/quotes", json={"channel": "online"}),
        404,
        "public_service_not_found",
    )
    for body in ({"channel": "fax"}, {}, {"channel": "online", "beneficiary_category": "A B"}):
        assert_problem(client.post(f"/api/v1/public-services/{JUDICIAL}/quotes", json=body), 422)


def test_no_fee_in_effect_is_a_409(client: FlaskClient, app: Flask) -> None:
    at(app, "2022-06-01T03:00:00")  # before the demo fee schedule starts
    response = client.post(f"/api/v1/public-services/{JUDICIAL}/quotes", json={"channel": "online"})
    assert_problem(response, 409, "no_fee_in_effect")


# -- applications, receipts, ledger memo ----------------------------------------------------------
def test_online_application_gets_a_receipt_and_a_memo_posting_at_once(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    at(app, "2026-02-10T02:00:00")
    headers = auth("commuter1")
    body = apply(client, headers, PERMIT, "online", "app-online-1")
    assert body["status"] == "fee_waived" and body["payment"] is None
    assert (body["gross_fee"], body["waived_amount"], body["payable"]) == (75000, 75000, 0)
    assert body["rule"]["reason_code"] == "online_all_services"
    assert "Nghị quyết" in body["legal_basis"]
    assert RECEIPT_RE.match(body["receipt_no"]).group(1) == "2026"  # type: ignore[union-attr]
    assert body["receipt_url"].startswith(f"/receipts/{body['receipt_no']}?token=")
    assert balances(app) == {"fees_waived": 75000, "fee_waiver_memo": -75000}
    with svc(app).db.reader() as session:
        txn = ledger.existing_transaction(session, f"fee-waiver:{body['id']}")
        assert txn is not None and txn.business_date == date(2026, 2, 10)
        from payments.models import Payment

        assert session.query(Payment).count() == 0  # no payment for a zero payable
    again = client.post(
        f"/api/v1/public-services/{PERMIT}/applications",
        json={"channel": "online"},
        headers=idem(headers, "app-online-1"),
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == body["id"]
    assert (
        client.get(f"/api/v1/fee-applications/{body['id']}", headers=headers).json["receipt_no"]
        == body["receipt_no"]
    )


def test_application_requires_login_and_idempotency_key(client: FlaskClient, auth: Any) -> None:
    url = f"/api/v1/public-services/{PERMIT}/applications"
    assert_problem(
        client.post(url, json={"channel": "online"}, headers={"Idempotency-Key": "k"}), 401
    )
    assert_problem(
        client.post(url, json={"channel": "online"}, headers=auth("vendor1")),
        400,
        "idempotency_key_missing",
    )
    bad = {**auth("vendor1"), "Idempotency-Key": "bad key!"}
    assert_problem(client.post(url, json={"channel": "online"}, headers=bad), 422)


def test_receipt_numbers_are_per_year_in_hanoi_time(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    headers = auth("vendor1")  # any logged-in user is a citizen
    at(app, "2025-12-31T16:59:59")
    first = apply(client, headers, HOUSEHOLD, "online", "year-1")
    at(app, "2025-12-31T17:00:00")
    second = apply(client, headers, HOUSEHOLD, "online", "year-2")
    third = apply(client, headers, JUDICIAL, "online", "year-3")
    assert first["receipt_no"] == "BL-2025-000001"
    assert (second["receipt_no"], third["receipt_no"]) == ("BL-2026-000001", "BL-2026-000002")
    assert first["completed_business_date"] == "2025-12-31"
    assert second["completed_business_date"] == "2026-01-01"


def test_counter_fee_paid_from_the_wallet(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-02-10T02:00:00")
    headers = auth("commuter1")
    body = apply(client, headers, JUDICIAL, "counter", "counter-wallet")
    assert body["status"] == "awaiting_payment" and body["receipt_no"] is None
    payment = body["payment"]
    assert payment["status"] == "pending" and payment["amount"] == 200000
    assert (
        payment["purpose"] == "public_fee" and payment["owner_ref"] == f"application:{body['id']}"
    )
    assert payment["qr"]["payload"]
    with svc(app).db.transaction() as session:
        credit_wallet(
            session, user_id=user_id(client, headers), amount=250000, external_key="fund-fees"
        )
    paid = client.post(
        f"/api/v1/payments/{payment['id']}/wallet-payment", headers=idem(headers, "pay-fee")
    )
    assert paid.status_code == 200, paid.json
    assert client.get("/api/v1/wallets/me", headers=headers).json["balance"] == 50000
    done = client.get(f"/api/v1/fee-applications/{body['id']}", headers=headers).json
    assert done["status"] == "paid" and RECEIPT_RE.match(done["receipt_no"])
    assert done["payment"]["status"] == "succeeded"
    with svc(app).db.reader() as session:
        assert ledger.balance(session, "fee_revenue") == -200000
    assert balances(app) == {"fees_waived": 0, "fee_waiver_memo": 0}  # nothing was waived


def test_partial_waiver_paid_by_bank_transfer_records_the_waived_half(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    at(app, "2026-02-10T02:00:00")
    headers = auth("commuter1")
    body = apply(client, headers, JUDICIAL, "counter", "student-1", beneficiary_category="student")
    assert (body["gross_fee"], body["waived_amount"], body["payable"]) == (200000, 100000, 100000)
    assert balances(app) == {"fees_waived": 0, "fee_waiver_memo": 0}  # not until it is paid
    credit = credit_body(app, 100000, f"LE PHI {body['payment']['reference']}", "FT-FEE-1")
    assert signed_post(client, app, credit).json["status"] == "matched"
    done = client.get(f"/api/v1/fee-applications/{body['id']}", headers=headers).json
    assert done["status"] == "paid" and done["receipt_no"]
    assert balances(app) == {"fees_waived": 100000, "fee_waiver_memo": -100000}
    assert signed_post(client, app, credit).json["status"] == "duplicate"
    assert balances(app) == {"fees_waived": 100000, "fee_waiver_memo": -100000}


def test_expired_payment_can_be_renewed(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-02-10T02:00:00")
    headers = auth("commuter1")
    body = apply(client, headers, PERMIT, "counter", "renew-1")
    url = f"/api/v1/fee-applications/{body['id']}/payments"
    same = client.post(url, headers=idem(headers, "renew-a"))
    assert same.status_code == 200 and same.json["payment"]["id"] == body["payment"]["id"]
    from payments.service import expire_due_payments

    assert expire_due_payments(svc(app).db, now=datetime(2026, 2, 10, 3, tzinfo=UTC)) == 1
    renewed = client.post(url, headers=idem(headers, "renew-b")).json
    assert renewed["payment"]["id"] != body["payment"]["id"]
    assert renewed["payment"]["status"] == "pending" and renewed["payment"]["amount"] == 75000
    other = auth("vendor1")
    assert_problem(client.post(url, headers=idem(other, "renew-c")), 404)
    assert_problem(client.get(f"/api/v1/fee-applications/{body['id']}", headers=other), 404)
    finance_view = client.get(f"/api/v1/fee-applications/{body['id']}", headers=auth("finance1"))
    assert finance_view.status_code == 200


# -- the revenue-foregone report ------------------------------------------------------------------
def test_waived_fee_report_json_and_csv(client: FlaskClient, app: Flask, auth: Any) -> None:
    headers = auth("commuter1")
    for instant, code, key in (
        ("2025-12-31T10:00:00", HOUSEHOLD, "r1"),
        ("2025-12-31T23:30:00", HOUSEHOLD, "r2"),  # 1 January 2026 in Hanoi
        ("2026-01-01T08:00:00", JUDICIAL, "r3"),
        ("2026-02-02T08:00:00", PERMIT, "r4"),
    ):
        at(app, instant)
        apply(client, headers, code, "online", key)
    apply(client, headers, PERMIT, "counter", "r5")  # unpaid: not in the report
    finance = auth("finance1")
    query = {"from": "2025-12-01", "to": "2026-02-28"}
    daily = client.get("/api/v1/reports/waived-fees", query_string=query, headers=finance).json
    rows = [(r["period"], r["service_code"], r["count"], r["waived_amount"]) for r in daily["data"]]
    assert rows == [
        ("2025-12-31", HOUSEHOLD, 1, 100000),
        ("2026-01-01", HOUSEHOLD, 1, 100000),
        ("2026-01-01", JUDICIAL, 1, 200000),
        ("2026-02-02", PERMIT, 1, 75000),
    ]
    assert daily["totals"] == {
        "count": 4,
        "gross_fee": 475000,
        "waived_amount": 475000,
        "payable": 0,
    }
    monthly = client.get(
        "/api/v1/reports/waived-fees", query_string={**query, "group": "month"}, headers=finance
    ).json
    assert [(r["period"], r["service_code"], r["waived_amount"]) for r in monthly["data"]] == [
        ("2025-12", HOUSEHOLD, 100000),
        ("2026-01", HOUSEHOLD, 100000),
        ("2026-01", JUDICIAL, 200000),
        ("2026-02", PERMIT, 75000),
    ]
    response = client.get(
        "/api/v1/reports/waived-fees", query_string={**query, "format": "csv"}, headers=finance
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = response.data.decode("utf-8")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].startswith("period,service_code,service_name_vi")
    assert [int(r["waived_amount"]) for r in parsed] == [100000, 100000, 200000, 75000]
    assert "Đăng ký thành lập hộ kinh doanh" in text and "." not in parsed[0]["gross_fee"]
    assert balances(app)["fees_waived"] == daily["totals"]["waived_amount"]


def test_waived_fee_report_access_and_validation(client: FlaskClient, auth: Any) -> None:
    url = "/api/v1/reports/waived-fees"
    query = {"from": "2026-01-01", "to": "2026-01-31"}
    assert_problem(client.get(url, query_string=query, headers=auth("commuter1")), 403)
    assert_problem(client.get(url, query_string=query), 401)
    finance = auth("finance1")
    assert_problem(client.get(url, query_string={"from": "2026-01-01"}, headers=finance), 422)
    bad = {"from": "2026-02-01", "to": "2026-01-01"}
    assert_problem(client.get(url, query_string=bad, headers=finance), 422)
    assert_problem(client.get(url, query_string={**query, "group": "week"}, headers=finance), 422)


SPECS = st.tuples(
    st.sampled_from([JUDICIAL, HOUSEHOLD, PERMIT, "copy-certification"]),
    st.sampled_from(["online", "counter"]),
    st.sampled_from([None, "student", "poor_household"]),
    st.integers(0, 70 * 24 * 60),  # minutes after 2025-12-01T00:00Z
    st.booleans(),  # pay the counter fee from the wallet
)


def test_report_equals_the_sum_of_the_applications_waived_amounts(app: Flask) -> None:
    """Property: per service and day (and per month), the report adds up to the applications'
    own waived amounts, and so does the memo account of the ledger."""
    db = svc(app).db
    cfg = PaymentsConfig.from_settings(svc(app).settings)
    with db.transaction() as session:
        credit_wallet(session, user_id=1, amount=10**11, external_key="property-funds")
    created: list[FeeApplication] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(SPECS, min_size=1, max_size=5))
    def run(specs: list[tuple[str, str, str | None, int, bool]]) -> None:
        for code, channel, category, minutes, pay in specs:
            moment = datetime(2025, 12, 1, tzinfo=UTC).timestamp() + minutes * 60
            now = datetime.fromtimestamp(moment, UTC)
            application = fees.file_application(
                db,
                cfg,
                code=code,
                channel=channel,
                beneficiary_category=category,
                user_id=1,
                clock=lambda now=now: now,
            )
            if application.payment_id and pay:
                pay_pending_with_wallet(db, application.payment_id, 1)
            created.append(fees._load(db, application.id))
        done = [a for a in created if a.receipt_no]
        days = [a.completed_business_date for a in done if a.completed_business_date]
        if not days:
            return
        start, end = min(days), max(days)
        for group in ("day", "month"):
            report = fees.waived_fee_report(db, start, end, group)
            expected: dict[tuple[str, str], int] = {}
            for a in done:
                day = a.completed_business_date
                assert day is not None
                period = day.isoformat() if group == "day" else day.isoformat()[:7]
                key = (period, a.service.code)
                expected[key] = expected.get(key, 0) + a.waived_amount
            got = {(r["period"], r["service_code"]): r["waived_amount"] for r in report["data"]}
            assert got == expected
            assert report["totals"]["waived_amount"] == sum(a.waived_amount for a in done)
            assert report["totals"]["count"] == len(done)
        assert balances(app)["fees_waived"] == sum(a.waived_amount for a in done)
        assert balances(app)["fee_waiver_memo"] == -sum(a.waived_amount for a in done)

    run()


# -- admin: fee versions and waiver rules ---------------------------------------------------------
def test_admin_adds_a_fee_version_audited_and_history_is_kept(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    at(app, "2026-11-01T03:00:00")
    admin = auth("admin1")
    url = f"/api/v1/public-services/{PERMIT}/fee-versions"
    body = {
        "counter_fee": 100000,
        "online_fee": 100000,
        "effective_from": "2027-01-01",
        "legal_basis": "Nghị quyết sửa đổi mức thu lệ phí (dữ liệu minh hoạ)",
    }
    assert_problem(client.post(url, json=body, headers=auth("finance1")), 403)
    created = client.post(url, json=body, headers=admin)
    assert created.status_code == 201, created.json
    assert created.json["created_by"] == "admin1"
    at(app, "2026-12-31T16:59:59")
    assert quote(client, PERMIT, "counter")["gross_fee"] == 75000
    at(app, "2026-12-31T17:00:00")
    assert quote(client, PERMIT, "counter")["gross_fee"] == 100000
    history = client.get(url).json["data"]
    assert [v["counter_fee"] for v in history] == [75000, 100000]
    with svc(app).db.reader() as session:
        (record,) = audit.history(session, "public_service", PERMIT)
    assert record.actor == "admin1" and record.action == "fee_version.add" and record.at
    assert record.before is not None and record.before["counter_fee"] == 75000
    assert record.after is not None and record.after["counter_fee"] == 100000


def test_admin_fee_version_validation(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-11-01T03:00:00")
    admin = auth("admin1")
    url = f"/api/v1/public-services/{PERMIT}/fee-versions"
    base = {
        "counter_fee": 50000,
        "online_fee": 50000,
        "effective_from": "2027-01-01",
        "legal_basis": "x",
    }
    dearer_online = {**base, "online_fee": 60000}
    assert_problem(
        client.post(url, json=dearer_online, headers=admin), 422, "online_fee_above_counter"
    )
    backdated = {**base, "effective_from": "2026-10-31"}
    assert_problem(client.post(url, json=backdated, headers=admin), 422, "effective_from_in_past")
    for bad in (
        {**base, "counter_fee": 500.5},
        {**base, "counter_fee": "50000"},
        {**base, "counter_fee": -1},
        {**base, "effective_to": "2026-12-01"},
    ):
        assert_problem(client.post(url, json=bad, headers=admin), 422)


def test_admin_adds_waiver_rules_audited_overlap_and_supersede(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    at(app, "2026-11-01T03:00:00")
    admin = auth("admin1")
    twin = {
        "scope": "service",
        "service_code": "copy-certification",
        "channel": "counter",
        "beneficiary_category": "elderly",
        "waiver": "percentage",
        "basis_points": 3000,
        "reason_code": "beneficiary_elderly",
        "legal_basis": "Quy định giảm phí cho người cao tuổi (dữ liệu minh hoạ)",
        "effective_from": "2027-01-01",
    }
    first = client.post("/api/v1/fee-waiver-rules", json=twin, headers=admin)
    second = client.post("/api/v1/fee-waiver-rules", json=twin, headers=admin)
    assert first.status_code == 201 and second.status_code == 201, first.json
    at(app, "2027-01-02T03:00:00")
    body = quote(client, "copy-certification", "counter", "elderly")
    assert body["rule"]["id"] == first.json["id"] and body["rule"]["decided_by"] == "lowest_id"
    assert (body["waived_amount"], body["payable"]) == (600, 1400)
    at(app, "2026-11-01T03:00:00")
    student_rule = next(
        r
        for r in client.get("/api/v1/fee-waiver-rules").json["data"]
        if r["reason_code"] == "beneficiary_student"
    )
    amended = {
        "scope": "service",
        "service_code": JUDICIAL,
        "beneficiary_category": "student",
        "waiver": "percentage",
        "basis_points": 2500,
        "reason_code": "beneficiary_student",
        "legal_basis": "Quy định sửa đổi (dữ liệu minh hoạ)",
        "effective_from": "2027-01-01",
        "supersedes_id": student_rule["id"],
    }
    created = client.post("/api/v1/fee-waiver-rules", json=amended, headers=admin)
    assert created.status_code == 201, created.json
    at(app, "2026-12-31T16:59:59")
    assert quote(client, JUDICIAL, "counter", "student")["payable"] == 100000
    at(app, "2026-12-31T17:00:00")
    assert quote(client, JUDICIAL, "counter", "student")["payable"] == 150000
    with svc(app).db.reader() as session:
        (record,) = audit.history(session, "fee_waiver_rule", created.json["id"])
    assert record.actor == "admin1" and record.before["basis_points"] == 5000  # type: ignore[index]
    assert record.after["basis_points"] == 2500  # type: ignore[index]


def test_admin_waiver_rule_validation(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-11-01T03:00:00")
    admin = auth("admin1")
    base = {
        "scope": "all_services",
        "waiver": "full",
        "reason_code": "x_rule",
        "legal_basis": "x",
        "effective_from": "2027-01-01",
    }
    for bad in (
        {**base, "scope": "service"},  # no service_code
        {**base, "service_code": PERMIT},  # service_code without scope service
        {**base, "waiver": "percentage"},  # no basis points
        {**base, "waiver": "full", "basis_points": 5000},
        {**base, "waiver": "percentage", "basis_points": 10001},
        {**base, "waiver": "percentage", "basis_points": 0},  # 0 only ends a superseded rule
        {**base, "channel": "fax"},
        {**base, "legal_basis": ""},
    ):
        assert_problem(client.post("/api/v1/fee-waiver-rules", json=bad, headers=admin), 422)
    assert_problem(
        client.post("/api/v1/fee-waiver-rules", json={**base, "supersedes_id": 999}, headers=admin),
        404,
        "waiver_rule_not_found",
    )
    backdated = {**base, "effective_from": "2026-01-01"}
    assert_problem(
        client.post("/api/v1/fee-waiver-rules", json=backdated, headers=admin),
        422,
        "effective_from_in_past",
    )
    assert_problem(
        client.post("/api/v1/fee-waiver-rules", json=base, headers=auth("commuter1")), 403
    )


def test_admin_adds_a_public_service(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-11-01T03:00:00")
    body = {
        "code": "marriage-status-certificate",
        "name_vi": "Cấp giấy xác nhận tình trạng hôn nhân",
        "name_en": "Certificate of marital status",
        "authority_vi": "Ủy ban nhân dân cấp xã (phường, xã)",
        "authority_en": "Commune-level People's Committee",
        "council_procedure": True,
        "fee": {
            "counter_fee": 15000,
            "online_fee": 15000,
            "effective_from": "2026-11-01",
            "legal_basis": "Nghị quyết của HĐND thành phố Hà Nội (dữ liệu minh hoạ)",
        },
    }
    created = client.post("/api/v1/public-services", json=body, headers=auth("admin1"))
    assert created.status_code == 201, created.json
    assert created.json["fees"] == {"counter": 15000, "online": 15000}
    assert quote(client, body["code"], "online")["payable"] == 0
    again = client.post("/api/v1/public-services", json=body, headers=auth("admin1"))
    assert_problem(again, 409, "public_service_exists")


def test_fee_versions_and_rules_are_append_only_in_the_database(app: Flask) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    for statement in (
        "UPDATE fee_versions SET counter_fee = 1",
        "DELETE FROM fee_versions",
        "UPDATE fee_waiver_rules SET basis_points = 1",
        "DELETE FROM fee_waiver_rules",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with svc(app).db.transaction() as session:
                session.execute(text(statement))


def test_memo_postings_carry_the_application(client: FlaskClient, app: Flask, auth: Any) -> None:
    at(app, "2026-02-10T02:00:00")
    body = apply(client, auth("commuter1"), HOUSEHOLD, "online", "memo-1")
    with svc(app).db.reader() as session:
        txn = session.scalars(
            select(JournalTransaction).where(JournalTransaction.kind == "fee_waiver")
        ).one()
    assert txn.external_key == f"fee-waiver:{body['id']}"
    assert HOUSEHOLD in txn.memo
