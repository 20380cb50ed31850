"""The vendor's checkout page in headless Chromium against a real `cashless serve`: a sale's
QR turns green with "Đã thanh toán" after a sandbox bank transfer, the page says the amount in
Vietnamese, lists the sale, cancels a pending charge, prints the stall poster, fits a phone."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import login_page

pytestmark = pytest.mark.browser


def api(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    key: str | None = None,
) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        base + "/api/v1" + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers=headers,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def eventually(page: Any, script: str, timeout: float = 10.0) -> Any:
    """Poll `script` (a JS arrow function) until truthy; the page's CSP forbids the string
    evaluation that Playwright's own `wait_for_function` polling uses."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {script}")
        time.sleep(0.05)


def token_for(base: str, username: str) -> str:
    return str(
        api(base, "POST", "/auth/token", {"username": username, "password": "demo"})["access_token"]
    )


def test_vendor_sale_turns_paid_after_a_bank_transfer(page: Any, live_server: Any) -> None:
    base = live_server.url
    login_page(page, base, "vendor1")
    page.goto(base + "/vendor")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.inner_text("#sound-toggle") == "Bật âm thanh"
    page.click("#sound-toggle")
    assert page.get_attribute("#sound-toggle", "aria-pressed") == "true"
    page.fill("#amount", "15.000")
    page.click("#create-charge")
    page.wait_for_selector("#charge[data-payload]")
    assert page.inner_text("#charge-status") == "Đang chờ thanh toán"
    assert page.inner_text("#charge-amount") == "15.000\u00a0₫"
    eventually(page, "() => document.getElementById('charge-qr').naturalWidth > 0")
    payload = page.get_attribute("#charge", "data-payload")
    started = time.monotonic()
    transfer = api(
        base,
        "POST",
        "/sandbox/bank/transfers",
        {"qr_payload": payload},
        token_for(base, "commuter1"),
    )
    assert transfer["transaction_id"]
    page.wait_for_selector("#charge.paid", timeout=10_000)
    assert time.monotonic() - started < 5
    assert page.inner_text("#charge-status") == "Đã thanh toán"
    assert page.inner_text("#spoken-text") == "Đã nhận mười lăm nghìn đồng"
    color = page.eval_on_selector("#charge", "el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(18, 124, 58)"  # the green of "paid"
    eventually(page, "() => document.getElementById('sales-count').textContent !== '0'")
    assert "15.000\u00a0₫" in page.inner_text("#sales")


def test_vendor_cancels_a_pending_charge(page: Any, live_server: Any) -> None:
    login_page(page, live_server.url, "vendor1")
    page.goto(live_server.url + "/vendor")
    page.fill("#amount", "abc")
    page.click("#create-charge")
    assert page.is_visible("#form-error")
    page.fill("#amount", "20000")
    page.click("#create-charge")
    page.wait_for_selector("#charge[data-status=pending]")
    page.click("#cancel-charge")
    page.wait_for_selector("#charge[data-status=cancelled]")
    assert page.inner_text("#charge-status") == "Đã huỷ"
    assert page.is_visible("#new-charge") and not page.is_visible("#cancel-charge")


def test_vendor_page_fits_a_phone_and_prints_posters(page: Any, live_server: Any) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    login_page(page, live_server.url, "vendor1")
    page.goto(live_server.url + "/vendor")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.is_visible("#amount") and page.is_visible("#create-charge")
    page.click(".posters a >> nth=0")
    page.wait_for_selector("#poster")
    assert page.inner_text("#poster-scan") == "Quét mã để thanh toán"
    assert page.inner_text("#poster-amount") == ""
    eventually(page, "() => document.getElementById('poster-qr').naturalWidth > 0")
    assert page.inner_text("#poster-stall") in ("Sạp rau Bình", "Sạp hoa quả Bình")
