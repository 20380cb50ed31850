"""The finance dashboard in headless Chromium: upload a statement, run a reconciliation and
watch the progress bar reach 100 %, resolve an item (the note is mandatory), close the day,
download the signed report."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.clock import business_date, utcnow
from payments import bank
from reconciliation.statements import CSV_COLUMNS
from tests.browser.conftest import login_page

pytestmark = pytest.mark.browser
ICT = timezone(timedelta(hours=7))


def _call(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def credit_a_past_day(server: Any, day: Any) -> tuple[str, int, str]:
    """A commuter's top-up, credited by the (signed) bank on a past business day."""
    token = _call(
        server.url + "/api/v1/auth/token", {"username": "commuter1", "password": "demo"}, {}
    )["access_token"]
    payment = _call(
        server.url + "/api/v1/wallets/me/topups",
        {"amount": 30000},
        {"Authorization": f"Bearer {token}", "Idempotency-Key": "finance-page"},
    )
    secrets = json.loads((Path(server.instance) / "secrets.json").read_text())
    account = "0011001234567"
    credited = datetime.combine(day, time(9, 30), ICT)
    body = {
        "transaction_id": "FTBROWSER0001",
        "account_number": account,
        "amount": 30000,
        "credited_at": credited.isoformat(),
        "description": payment["reference"],
        "counterparty_name": "NGUYEN VAN A",
    }
    raw = json.dumps(body).encode()
    signature = bank.sign(secrets["bank_webhook_secret"], raw, int(utcnow().timestamp()))
    request = urllib.request.Request(
        server.url + "/api/v1/bank/notifications",
        data=raw,
        method="POST",
        headers={"Content-Type": "application/json", "X-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["status"] == "matched"
    return account, 30000, payment["reference"]


def test_finance_reconciles_and_closes_a_day(page: Any, live_server: Any, tmp_path: Path) -> None:
    day = business_date(utcnow()) - timedelta(days=5)
    account, amount, reference = credit_a_past_day(live_server, day)
    statement = tmp_path / "statement.csv"
    statement.write_text(
        ",".join(CSV_COLUMNS) + "\n"
        f"FTBROWSER0001,{day.isoformat()}T09:30:04+07:00,{day.isoformat()},{amount},CR,"
        f"{reference} nap tien,0123456789,NGUYEN VAN A\n"
        f"FTBROWSER0002,{day.isoformat()}T11:00:00+07:00,{day.isoformat()},45000,CR,"
        "chuyen tien,,TRAN THI B\n"
        "FTBROWSER0003,not-a-date,,1,CR,x,,\n",
        encoding="utf-8",
    )
    login_page(page, live_server.url, "finance1")
    page.goto(live_server.url + "/finance")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.inner_text("h1") == "Đối soát"
    assert page.locator("svg.chart").count() == 2

    page.set_input_files("#statement-file", str(statement))
    page.select_option("#statement-account", account)
    page.click("#upload-button")
    page.wait_for_selector("#upload-status[data-status=done]", timeout=20_000)
    assert "Dòng 4" in page.inner_text("#upload-errors")  # the malformed line, by number

    page.fill("#run-date", day.isoformat())
    page.click("#run-button")
    page.wait_for_selector("#run-phase[data-status=done]", timeout=30_000)
    assert page.inner_text("#run-percent") == "100 %"
    assert page.eval_on_selector("#run-progress", "el => el.value") == 100
    assert page.inner_text("#run-counts tr[data-category=matched] .count") == "1"
    assert page.inner_text("#run-counts tr[data-category=missing_in_ledger] .count") == "1"

    page.wait_for_selector("#items .resolve-button")
    page.click("#items .resolve-button")
    page.click("#resolve-submit")  # no note yet
    assert page.inner_text("#resolve-error") == "Bắt buộc nhập ghi chú."
    page.fill("#resolve-note", "Tiền chuyển nhầm, đã liên hệ người chuyển")
    page.click("#resolve-submit")
    page.wait_for_selector("#resolve-form", state="hidden")
    page.wait_for_function(
        "() => document.querySelector('#items tbody').innerText.includes('Đã xử lý')"
    )

    page.fill("#close-date", day.isoformat())
    page.click("#close-button")
    page.wait_for_selector("#close-status[data-status=closed]", timeout=20_000)
    assert "Đã chốt sổ ngày." in page.inner_text("#close-status")
    href = page.get_attribute("#report-xlsx", "href")
    assert day.isoformat() in href
    report = page.request.get(live_server.url + href)
    assert report.status == 200 and report.headers["x-report-signature"].count(".") == 2
