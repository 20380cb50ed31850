"""The citizen's receipt page in headless Chromium against a real `cashless serve`: an online
application (fee waived, legal basis shown) and a counter fee paid by VietQR through the
sandbox bank, in Vietnamese by default and in English with ?lang=en."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest

from tests.browser.conftest import login_page

pytestmark = pytest.mark.browser
NBSP = "\u00a0"


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if method == "POST":
        headers["Idempotency-Key"] = uuid.uuid4().hex
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def token_for(base: str, username: str) -> str:
    body = {"username": username, "password": "demo"}
    return str(call(base, "POST", "/api/v1/auth/token", body)["access_token"])


def apply(base: str, token: str, code: str, channel: str, category: str | None = None) -> Any:
    body: dict[str, Any] = {"channel": channel}
    if category:
        body["beneficiary_category"] = category
    return call(base, "POST", f"/api/v1/public-services/{code}/applications", body, token)


def text(page: Any, selector: str) -> str:
    return str(page.inner_text(selector)).strip()


def test_online_receipt_shows_the_waiver_in_both_languages(page: Any, live_server: Any) -> None:
    base = live_server.url
    application = apply(base, token_for(base, "commuter1"), "construction-permit", "online")
    assert application["payable"] == 0 and application["receipt_no"]
    page.goto(base + application["receipt_url"] + "&lang=vi")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert text(page, "#receipt-title") == "Biên lai thu phí, lệ phí"
    assert text(page, "#receipt-no") == application["receipt_no"]
    assert text(page, "#service-name") == "Cấp giấy phép xây dựng nhà ở riêng lẻ"
    assert text(page, "#channel") == "Trực tuyến"
    assert text(page, "#gross-fee") == f"75.000{NBSP}₫"
    assert text(page, "#waived-amount") == f"75.000{NBSP}₫"
    assert text(page, "#payable") == f"0{NBSP}₫"
    assert text(page, "#status") == "Miễn phí, lệ phí"
    assert text(page, "#legal-basis") == application["legal_basis"]
    assert "Nghị quyết của HĐND thành phố Hà Nội" in text(page, "#legal-basis")
    day = application["completed_business_date"]  # YYYY-MM-DD
    assert text(page, "#receipt-date") == "/".join(reversed(day.split("-")))

    page.goto(base + application["receipt_url"] + "&lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert text(page, "#receipt-title") == "Receipt of fees and charges"
    assert text(page, "#service-name") == "Construction permit for a detached house"
    assert text(page, "#channel") == "Online"
    assert text(page, "#waived-amount") == f"75.000{NBSP}₫"
    assert text(page, "#payable") == f"0{NBSP}₫"
    assert text(page, "#status") == "Fee waived"
    assert text(page, "#receipt-date") == day
    assert "Legal basis" in page.inner_text("main")


def test_counter_fee_paid_by_vietqr_then_receipt_with_partial_waiver(
    page: Any, live_server: Any
) -> None:
    base = live_server.url
    token = token_for(base, "commuter1")
    application = apply(base, token, "judicial-record-certificate", "counter", "student")
    assert (application["waived_amount"], application["payable"]) == (100000, 100000)
    payload = application["payment"]["qr"]["payload"]
    call(base, "POST", "/api/v1/sandbox/bank/transfers", {"qr_payload": payload}, token)
    deadline = time.monotonic() + 15
    current = application
    while current["status"] != "paid" and time.monotonic() < deadline:
        time.sleep(0.1)
        current = call(base, "GET", f"/api/v1/fee-applications/{application['id']}", token=token)
    assert current["status"] == "paid" and current["receipt_no"], current

    login_page(page, base, "commuter1")  # the page session works without a URL token
    page.goto(f"{base}/receipts/{current['receipt_no']}?lang=vi")
    assert text(page, "#channel") == "Trực tiếp tại bộ phận một cửa"
    assert text(page, "#gross-fee") == f"200.000{NBSP}₫"
    assert text(page, "#waived-amount") == f"100.000{NBSP}₫"
    assert text(page, "#payable") == f"100.000{NBSP}₫"
    assert text(page, "#status") == "Đã thanh toán"
    assert text(page, "#payment-reference") == application["payment"]["reference"]
    assert "sinh viên" in text(page, "#legal-basis")
    page.goto(f"{base}/receipts/{current['receipt_no']}?lang=en")
    assert text(page, "#channel") == "At the one-stop counter"
    assert text(page, "#status") == "Paid"
    assert text(page, "#service-name") == "Judicial record certificate"


def test_receipts_of_others_are_hidden_and_anonymous_visitors_log_in(
    page: Any, live_server: Any
) -> None:
    base = live_server.url
    application = apply(base, token_for(base, "commuter1"), "civil-status-extract-copy", "online")
    page.goto(f"{base}/receipts/{application['receipt_no']}")
    assert "/login" in page.url and "next=" in page.url
    login_page(page, base, "vendor1")
    response = page.goto(f"{base}/receipts/{application['receipt_no']}")
    assert response is not None and response.status == 404
    assert page.locator("#gross-fee").count() == 0  # nothing of the receipt is shown
