"""Reconciliation through the HTTP API on the embedded default (SQLite, in-process jobs):
statement import, runs, classification of a generated scenario, resolutions, the daily close,
signed reports, the sandbox statement and the camt.053 samples."""

from __future__ import annotations

import io
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.clock import business_date, utcnow
from payments import ledger
from payments.errors import DayClosed
from payments.ledger import Leg
from payments.service import PaymentsConfig
from reconciliation import closing
from reconciliation.service import ReconConfig
from tests.api.test_foundation import assert_problem
from tests.conftest import IN_CI, ROOT, login, wait_for
from tests.scenarios import Scenario, build_scenario

API = "/api/v1"


def svc(app: Flask) -> Any:
    return app.extensions["cashless"]


def account(app: Flask) -> str:
    return str(svc(app).settings.collection_account)


def a_past_day() -> date:
    return business_date(utcnow()) - timedelta(days=3)


def upload(
    client: FlaskClient, headers: dict[str, str], data: bytes, acct: str, fmt: str = "csv"
) -> dict[str, Any]:
    response = client.post(
        f"{API}/reconciliation/statements",
        headers=headers,
        data={
            "file": (io.BytesIO(data), f"statement.{fmt}"),
            "account_number": acct,
            "format": fmt,
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    statement_id = response.json["id"]

    def finished() -> dict[str, Any] | None:
        body = client.get(f"{API}/reconciliation/statements/{statement_id}", headers=headers).json
        return body if body["status"] != "pending" else None

    return wait_for(finished, timeout=20)  # type: ignore[no-any-return]


def run_day(client: FlaskClient, headers: dict[str, str], day: date, acct: str) -> dict[str, Any]:
    response = client.post(
        f"{API}/reconciliation/runs",
        headers=headers,
        json={"business_date": day.isoformat(), "account_number": acct},
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    run_id = response.json["id"]

    def finished() -> dict[str, Any] | None:
        body = client.get(f"{API}/reconciliation/runs/{run_id}", headers=headers).json
        return body if body["status"] in ("done", "failed") else None

    run = wait_for(finished, timeout=30)
    assert run["status"] == "done", run
    return run  # type: ignore[no-any-return]


def all_items(client: FlaskClient, headers: dict[str, str], run_id: int, **query: str) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        params = {"limit": "500", **query, **({"starting_after": str(cursor)} if cursor else {})}
        page = client.get(
            f"{API}/reconciliation/runs/{run_id}/items", headers=headers, query_string=params
        ).json
        items += page["data"]
        if not page["has_more"]:
            return items
        cursor = page["next_cursor"]


def scenario(app: Flask, day: date | None = None) -> Scenario:
    cfg = PaymentsConfig.from_settings(svc(app).settings)
    return build_scenario(svc(app).db, cfg, day or a_past_day())


def assert_classified(app: Flask, sc: Scenario, items: list[Any]) -> None:
    """Every generated line and ledger line got exactly the category it was made for."""
    by_line = {i["statement_line"]["bank_txn_id"]: i for i in items if i["statement_line"]}
    assert {txn: i["category"] for txn, i in by_line.items()} == sc.expected.lines
    keys = {
        i["ledger_line"]["external_key"]: i["category"]
        for i in items
        if i["statement_line"] is None
    }
    assert keys == sc.expected.postings
    assert {txn: by_line[txn]["fee"] for txn in sc.expected.fees} == sc.expected.fees


# -- the scenario ---------------------------------------------------------------------------
def test_scenario_is_classified_exactly(app: Flask, client: FlaskClient, auth: Any) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    statement = upload(client, headers, sc.csv_bytes, account(app))

    assert statement["status"] == "done"
    assert {
        e["line"]: e["message"] for e in statement["errors"]
    }.keys() == sc.expected.rejected.keys()
    for error in statement["errors"]:
        assert sc.expected.rejected[error["line"]] in error["message"]
    assert statement["lines_skipped"] == sc.expected.skipped
    assert (
        statement["lines_accepted"]
        == len(sc.csv_text.splitlines()) - 1 - len(sc.expected.rejected) - sc.expected.skipped
    )
    run = run_day(client, headers, sc.day, account(app))
    items = all_items(client, headers, run["id"])
    assert_classified(app, sc, items)
    assert set(run["counts"]) == {
        "matched",
        "matched_with_fee",
        "amount_mismatch",
        "missing_in_bank",
        "missing_in_ledger",
        "duplicate",
        "other_day",
    }
    assert all(run["counts"][c] > 0 for c in run["counts"])
    assert sum(run["counts"].values()) == len(items)
    assert run["progress"] == 100 and run["phase"] == "done"
    # The report's totals from the run's own read of the ledger day equal a second read.
    with svc(app).db.reader() as session:
        cfg = ReconConfig.from_settings(svc(app).settings)
        runs = [r for r in closing.latest_runs(session, cfg, sc.day).values() if r]
        assert closing._totals_of_a_run(session, sc.day, runs) is not None
        assert closing.day_totals(session, sc.day, runs) == closing.day_totals(session, sc.day)


def test_reimporting_a_file_adds_nothing(app: Flask, client: FlaskClient, auth: Any) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    first = upload(client, headers, sc.csv_bytes, account(app))
    again = upload(client, headers, sc.csv_bytes, account(app))

    assert again["lines_accepted"] == 0
    assert again["lines_skipped"] == first["lines_accepted"] + first["lines_skipped"]
    assert again["lines_rejected"] == first["lines_rejected"]


def test_statement_upload_is_validated(client: FlaskClient, auth: Any, app: Flask) -> None:
    headers = auth("finance1")
    no_file = client.post(
        f"{API}/reconciliation/statements",
        headers=headers,
        data={"account_number": account(app)},
        content_type="multipart/form-data",
    )
    assert_problem(no_file, 422)
    unknown = client.post(
        f"{API}/reconciliation/statements",
        headers=headers,
        data={"file": (io.BytesIO(b"x"), "a.csv"), "account_number": "999"},
        content_type="multipart/form-data",
    )
    assert_problem(unknown, 422, "unknown_account")
    vendor = client.post(
        f"{API}/reconciliation/statements",
        headers=auth("vendor1"),
        data={"file": (io.BytesIO(b"x"), "a.csv"), "account_number": account(app)},
        content_type="multipart/form-data",
    )
    assert_problem(vendor, 403)


def test_a_file_unusable_as_a_whole_fails_cleanly(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    bad_header = upload(client, headers, b"txn,when,amount\nA,1,2\n", account(app))
    assert bad_header["status"] == "failed"
    assert "header" in bad_header["message"] and bad_header["lines_accepted"] == 0
    broken_xml = upload(
        client, headers, b"<Document><BkToCstmrStmt><Stmt>", account(app), "camt053"
    )
    assert broken_xml["status"] == "failed" and "XML" in broken_xml["message"]


# -- runs -----------------------------------------------------------------------------------
def test_second_start_returns_the_unfinished_run(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    runner = svc(app).runner
    runner.dispatcher.send = lambda jobs: []  # the queue holds the job: the run stays queued
    body = {"business_date": a_past_day().isoformat(), "account_number": account(app)}
    first = client.post(f"{API}/reconciliation/runs", headers=headers, json=body)
    second = client.post(f"{API}/reconciliation/runs", headers=headers, json=body)

    assert first.status_code == 202 and first.json["status"] == "queued"
    assert second.status_code == 200 and second.json["id"] == first.json["id"]
    assert first.json["counts"]["matched"] == 0


def test_run_input_is_validated(app: Flask, client: FlaskClient, auth: Any) -> None:
    headers = auth("finance1")
    future = (business_date(utcnow()) + timedelta(days=2)).isoformat()
    assert_problem(
        client.post(
            f"{API}/reconciliation/runs",
            headers=headers,
            json={"business_date": future, "account_number": account(app)},
        ),
        422,
        "future_business_day",
    )
    assert_problem(
        client.post(
            f"{API}/reconciliation/runs",
            headers=headers,
            json={"business_date": "2026-13-01", "account_number": account(app)},
        ),
        422,
    )
    assert_problem(client.get(f"{API}/reconciliation/runs/999999", headers=headers), 404)
    assert_problem(client.get(f"{API}/reconciliation/runs", headers=auth("commuter1")), 403)


def test_rerun_gives_identical_results_and_keeps_resolutions(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    upload(client, headers, sc.csv_bytes, account(app))
    first = run_day(client, headers, sc.day, account(app))
    items = all_items(client, headers, first["id"], needs_resolution="true")
    accepted = items[0]
    response = client.post(
        f"{API}/reconciliation/items/{accepted['id']}/resolution",
        headers=headers,
        json={"action": "accept", "note": "seen"},
    )
    assert response.status_code == 201, response.json

    second = run_day(client, headers, sc.day, account(app))
    assert second["id"] != first["id"] and second["attempt"] == first["attempt"] + 1
    assert second["counts"] == first["counts"]

    def shape(run_id: int) -> set[tuple[Any, ...]]:
        return {
            (i["category"], i["statement_line_id"], i["posting_id"], i["fee"])
            for i in all_items(client, headers, run_id)
        }

    assert shape(second["id"]) == shape(first["id"])
    kept = [i for i in all_items(client, headers, second["id"]) if i["resolved"]]
    assert [(i["statement_line_id"], i["posting_id"], i["resolution"]["note"]) for i in kept] == [
        (accepted["statement_line_id"], accepted["posting_id"], "seen")
    ]


# -- resolutions ----------------------------------------------------------------------------
def test_resolutions_need_a_note_a_key_for_money_and_finance(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    upload(client, headers, sc.csv_bytes, account(app))
    run = run_day(client, headers, sc.day, account(app))
    items = all_items(client, headers, run["id"], category="missing_in_bank")
    item = items[0]
    url = f"{API}/reconciliation/items/{item['id']}/resolution"

    assert_problem(client.post(url, headers=headers, json={"action": "accept"}), 422)
    assert_problem(client.post(url, headers=headers, json={"action": "accept", "note": "  "}), 422)
    assert_problem(
        client.post(url, headers=headers, json={"action": "write_off", "note": "x"}),
        400,
        "idempotency_key_missing",
    )
    assert_problem(
        client.post(url, headers=auth("vendor1"), json={"action": "accept", "note": "x"}), 403
    )
    matched = all_items(client, headers, run["id"], category="matched")[0]
    assert_problem(
        client.post(
            f"{API}/reconciliation/items/{matched['id']}/resolution",
            headers=headers,
            json={"action": "accept", "note": "x"},
        ),
        409,
        "item_not_resolvable",
    )

    keyed = {**headers, "Idempotency-Key": "write-off-1"}
    done = client.post(url, headers=keyed, json={"action": "write_off", "note": "never arrived"})
    assert done.status_code == 201, done.json
    body = done.json
    assert body["action"] == "write_off" and body["amount"] == -item["ledger_amount"]
    assert body["audit"]["actor"] == "finance1" and body["audit"]["note"] == "never arrived"
    assert body["audit"]["before"]["resolution_id"] is None
    assert body["audit"]["after"]["resolution_id"] == body["id"]
    replay = client.post(url, headers=keyed, json={"action": "write_off", "note": "never arrived"})
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json == body
    assert_problem(
        client.post(
            url,
            headers={**headers, "Idempotency-Key": "other"},
            json={"action": "write_off", "note": "again"},
        ),
        409,
        "already_resolved",
    )
    with svc(app).db.reader() as session:
        posted = ledger.existing_transaction(session, body["journal_key"])
        assert posted is not None and posted.kind == "recon_write_off"
        assert posted.business_date == sc.day


def test_link_pairs_a_line_with_a_ledger_line_by_hand(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    upload(client, headers, sc.csv_bytes, account(app))
    run = run_day(client, headers, sc.day, account(app))
    lines = [
        i
        for i in all_items(client, headers, run["id"], category="missing_in_ledger")
        if i["reason"] and i["reason"].startswith("ambiguous")
    ]
    postings = [
        i
        for i in all_items(client, headers, run["id"], category="missing_in_bank")
        if i["reason"] and i["reason"].startswith("ambiguous")
    ]
    line, posting = lines[0], postings[0]
    response = client.post(
        f"{API}/reconciliation/items/{line['id']}/resolution",
        headers=headers,
        json={
            "action": "link",
            "note": "same sale, checked the till",
            "posting_id": posting["posting_id"],
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["linked_to"] == f"posting:{posting['posting_id']}"
    both = {i["id"]: i for i in all_items(client, headers, run["id"])}
    assert both[line["id"]]["resolved"] and both[posting["id"]]["resolved"]


# -- close ----------------------------------------------------------------------------------
def resolve_all(client: FlaskClient, headers: dict[str, str], run_id: int) -> None:
    for item in all_items(client, headers, run_id, needs_resolution="true"):
        if not item["resolved"]:
            response = client.post(
                f"{API}/reconciliation/items/{item['id']}/resolution",
                headers=headers,
                json={"action": "accept", "note": "ok"},
            )
            assert response.status_code in (201, 409), response.json


def test_close_waits_for_a_run_that_saw_everything(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    """A statement imported, or a clearing line posted, after the last run started keeps the
    day open until the day is run again; reconciliation's own postings do not."""
    headers = auth("finance1")
    sc = scenario(app)
    upload(client, headers, sc.csv_bytes, account(app))
    day = sc.day.isoformat()
    close_url = f"{API}/reconciliation/days/{day}/close"
    resolve_all(client, headers, run_day(client, headers, sc.day, account(app))["id"])

    late = (
        "bank_txn_id,booked_at,value_date,amount,direction,description,counterparty_account,"
        f"counterparty_name\nFT-LATE-1,{day}T10:00:00+07:00,{day},5000,CR,chuyen tien,,\n"
    )
    statement = upload(client, headers, late.encode(), account(app))
    refused = client.post(close_url, headers=headers)
    assert_problem(refused, 409, "day_not_reconciled")
    assert f"statement {statement['id']} " in refused.json["detail"]
    assert "imported after run" in refused.json["detail"]
    rerun = run_day(client, headers, sc.day, account(app))
    assert rerun["counts"]["missing_in_ledger"] >= 1
    resolve_all(client, headers, rerun["id"])

    with svc(app).db.transaction() as session:
        ledger.post(
            session,
            external_key="late-clearing-line",
            kind="test",
            business_date=sc.day,
            legs=[Leg("bank_clearing", 7000), Leg("suspense", -7000)],
        )
    refused = client.post(close_url, headers=headers)
    assert_problem(refused, 409, "day_not_reconciled")
    assert (
        "ledger line late-clearing-line of this day was posted after run"
        in (refused.json["detail"])
    )
    last = run_day(client, headers, sc.day, account(app))
    resolve_all(client, headers, last["id"])
    closed = client.post(close_url, headers=headers)
    assert closed.status_code == 201, closed.json


def test_daily_close_with_signed_reports(app: Flask, client: FlaskClient, auth: Any) -> None:
    headers = auth("finance1")
    sc = scenario(app)
    upload(client, headers, sc.csv_bytes, account(app))
    day = sc.day.isoformat()
    close_url = f"{API}/reconciliation/days/{day}/close"
    assert_problem(client.post(close_url, headers=headers), 409, "day_not_reconciled")
    run = run_day(client, headers, sc.day, account(app))
    refused = client.post(close_url, headers=headers)
    assert_problem(refused, 409, "day_not_reconciled")
    assert "unresolved" in refused.json["detail"]

    resolve_all(client, headers, run["id"])
    closed = client.post(close_url, headers=headers)
    assert closed.status_code == 201, closed.json
    assert closed.json["summary"]["match_rate"].endswith("%")
    assert client.post(close_url, headers=headers).json["closed_at"] == closed.json["closed_at"]

    for fmt in ("csv", "xlsx"):
        report = client.get(
            f"{API}/reports/daily",
            headers=headers,
            query_string={"business_date": day, "format": fmt},
        )
        assert report.status_code == 200
        signature = report.headers[closing.SIGNATURE_HEADER]
        assert closing.verify(svc(app).keyring, report.data, signature)
        assert not closing.verify(svc(app).keyring, report.data + b" ", signature)
        again = client.get(
            f"{API}/reports/daily",
            headers=headers,
            query_string={"business_date": day, "format": fmt},
        )
        assert again.data == report.data
    csv_text = client.get(
        f"{API}/reports/daily", headers=headers, query_string={"business_date": day}
    ).get_data(as_text=True)
    assert "# Channels" in csv_text and "vietqr:charge" in csv_text and "# Items" in csv_text
    sidecar = client.get(
        f"{API}/reports/daily/signature",
        headers=headers,
        query_string={"business_date": day, "format": "xlsx"},
    ).json
    assert sidecar["alg"] == "ES256" and sidecar["keys_url"] == "/api/v1/reports/keys"
    keys = client.get(f"{API}/reports/keys").json["keys"]
    assert str(sidecar["kid"]) in {k["kid"] for k in keys}

    with pytest.raises(DayClosed), svc(app).db.transaction() as session:
        ledger.post(
            session,
            external_key="late-into-closed",
            kind="test",
            business_date=sc.day,
            legs=[Leg("bank_clearing", 1000), Leg("suspense", -1000)],
        )
    assert_problem(
        client.post(
            f"{API}/reconciliation/runs",
            headers=headers,
            json={"business_date": day, "account_number": account(app)},
        ),
        409,
        "business_day_closed",
    )


# -- formats and sandbox ----------------------------------------------------------------------
def camt_samples() -> list[Path]:
    folder = Path(
        os.environ.get("CASHLESS_CAMT_SAMPLES", ROOT.parent / "shared" / "camt053-samples")
    )
    files = sorted(folder.glob("*.xml")) if folder.is_dir() else []
    if not files:
        if IN_CI:
            pytest.fail(f"CI=true and no camt.053 samples in {folder}", pytrace=False)
        pytest.skip(f"no camt.053 samples in {folder}")
    return files


def test_every_camt053_sample_is_refused_line_by_line(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    headers = auth("finance1")
    for sample in camt_samples():
        statement = upload(client, headers, sample.read_bytes(), account(app), "camt053")
        assert statement["status"] == "done", (sample.name, statement)
        assert statement["lines_accepted"] == 0, sample.name  # none is in VND: nothing partial
        assert statement["lines_rejected"] == statement["lines_total"] > 0, sample.name
        for error in statement["errors"]:
            assert isinstance(error["line"], int) and error["message"], (sample.name, error)
        assert any("currency" in e["message"] for e in statement["errors"]), sample.name


def test_a_vnd_camt053_statement_imports(app: Flask, client: FlaskClient, auth: Any) -> None:
    data = (ROOT / "tests" / "unit" / "data" / "camt053_vnd.xml").read_bytes()
    statement = upload(client, auth("finance1"), data, account(app), "camt053")
    assert statement["status"] == "done"
    assert statement["lines_accepted"] > 0 and statement["lines_rejected"] == 0


def test_sandbox_statement_reconciles_the_simulated_bank(live_app: Flask) -> None:
    client = live_app.test_client()
    commuter, finance = login(client, "commuter1"), login(client, "finance1")
    payment = client.post(
        f"{API}/wallets/me/topups",
        json={"amount": 50000},
        headers={**commuter, "Idempotency-Key": "recon-sandbox"},
    ).json
    client.post(
        f"{API}/sandbox/bank/transfers",
        headers=commuter,
        json={"qr_payload": payment["qr"]["payload"]},
    )
    wait_for(
        lambda: (
            client.get(f"{API}/payments/{payment['id']}", headers=commuter).json["status"]
            == "succeeded"
        )
    )
    today = business_date(utcnow())
    csv_text = client.get(
        f"{API}/reconciliation/sandbox/statement.csv",
        headers=finance,
        query_string={"business_date": today.isoformat()},
    ).get_data(as_text=True)
    assert payment["reference"] in csv_text
    response = client.post(
        f"{API}/reconciliation/sandbox/statements",
        headers=finance,
        json={"business_date": today.isoformat()},
    )
    assert response.status_code == 202
    statement_id = response.json["id"]
    wait_for(
        lambda: (
            client.get(f"{API}/reconciliation/statements/{statement_id}", headers=finance).json[
                "status"
            ]
            == "done"
        )
    )
    run = run_day(client, finance, today, account(live_app))
    assert run["counts"]["matched"] >= 1
    assert run["counts"]["missing_in_bank"] == 0 and run["counts"]["missing_in_ledger"] == 0


def test_sandbox_statements_are_sandbox_only(app: Flask, client: FlaskClient, auth: Any) -> None:
    from reconciliation.dashboard import sandbox_statement_csv
    from reconciliation.errors import SandboxOnly

    cfg = ReconConfig.from_settings(svc(app).settings.with_overrides(sandbox=False))
    with pytest.raises(SandboxOnly):
        sandbox_statement_csv(svc(app).db, cfg, a_past_day(), None)


# -- the page -------------------------------------------------------------------------------
def test_finance_page_is_vietnamese_with_charts(app: Flask, client: FlaskClient) -> None:
    assert client.get("/finance").status_code == 302
    client.post(
        "/login", data={"username": "vendor1", "password": "demo", "csrf_token": _csrf(client)}
    )
    assert client.get("/finance", headers={"Accept": "text/html"}).status_code == 403
    client.post("/logout", data={"csrf_token": _csrf(client)})
    client.post(
        "/login", data={"username": "finance1", "password": "demo", "csrf_token": _csrf(client)}
    )
    page = client.get("/finance").get_data(as_text=True)
    assert "Đối soát" in page and "Chốt sổ ngày" in page
    assert page.count("<svg") == 2 and "Tỷ lệ khớp" in page


def _csrf(client: FlaskClient) -> str:
    import re

    html = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match
    return match.group(1)


def test_clearing_lines_still_reads_as_before(app: Flask) -> None:
    """The columns reconciliation added to payments' selectable come on top of the old ones."""
    cl = ledger.clearing_lines().subquery()
    names = [c.name for c in cl.c]
    assert names[:6] == [
        "posting_id",
        "amount",
        "business_date",
        "external_key",
        "kind",
        "payment_id",
    ]
    with svc(app).db.reader() as session:
        session.execute(select(cl)).all()


def test_nightly_schedule_reconciles_the_previous_business_day_once(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    from datetime import UTC, datetime

    from cashless.schedules import all_schedules

    schedule = {s.name: s for s in all_schedules()}["reconcile-previous-day"]
    assert schedule.cron == "0 5 * * *" and schedule.per_business_day  # 05:00 Asia/Ho_Chi_Minh
    runner = svc(app).runner
    # 22:30 UTC on 24 Nov is 05:30 on 25 Nov in Hanoi: the previous business day is 24 Nov.
    fired_at = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    first = runner.fire_schedule("reconcile-previous-day", at=fired_at)
    again = runner.fire_schedule("reconcile-previous-day", at=fired_at)
    assert first == again == "reconcile-previous-day:2026-11-25"

    headers = auth("finance1")

    def runs() -> list[Any]:
        body = client.get(
            f"{API}/reconciliation/runs",
            headers=headers,
            query_string={"business_date": "2026-11-24"},
        ).json
        return [r for r in body["data"] if r["status"] == "done"]

    finished = wait_for(runs, timeout=20)
    assert len(finished) == 1 and finished[0]["created_by"] == "scheduler"
    assert finished[0]["account_number"] == account(app)
