"""The parking attendant's page in headless Chromium against a real `cashless serve`: an entry
by plate, the exit priced with its breakdown and paid by VietQR (a sandbox bank transfer), and
a cash exit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import login_page
from tests.browser.test_vendor_page import api, eventually, token_for

pytestmark = pytest.mark.browser


def test_attendant_records_an_entry_and_an_exit(page: Any, live_server: Any) -> None:
    base = live_server.url
    login_page(page, base, "attendant1")
    page.goto(base + "/parking")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert "HK-01" in page.inner_text("#lot")
    eventually(page, "() => document.getElementById('capacity-motorbike').textContent !== '–'")
    occupied = int(page.inner_text("#occupied-motorbike"))

    page.fill("#plate", "29A-567.89")
    page.select_option("#vehicle-class", "motorbike")
    page.click("#enter")
    page.wait_for_selector("tr[data-plate='29A56789']")
    assert "29A56789" in page.inner_text("#entry-status")
    eventually(
        page,
        f"() => document.getElementById('occupied-motorbike').textContent === '{occupied + 1}'",
    )
    page.fill("#plate", "29a 567 89")
    page.click("#enter")
    eventually(page, "() => document.getElementById('entry-status').textContent.includes('đang ở')")

    # A car that came in 2 h 01 min ago (recorded by another gate) leaves and pays by VietQR.
    token = token_for(base, "attendant1")
    lot_id = int(page.eval_on_selector("#lot", "e => e.value"))
    entered = (datetime.now(UTC) - timedelta(hours=2, minutes=1)).isoformat()
    car = api(
        base,
        "POST",
        f"/parking/lots/{lot_id}/sessions",
        {
            "plate": "30G-246.80",
            "vehicle_class": "car_small",
            "entered_at": entered,
            "device_id": "gate-2",
        },
        token,
        key="browser-car-entry",
    )
    page.reload()
    page.click(f"tr[data-session-id='{car['id']}'] .exit-button")
    page.wait_for_selector("#exit-breakdown li")
    assert page.inner_text("#exit-amount") == "85.000\u00a0₫"
    assert "3 giờ" in page.inner_text("#exit-breakdown")
    page.click("#pay-vietqr")
    page.wait_for_selector("#exit-panel[data-payload]")
    eventually(page, "() => document.getElementById('exit-qr').naturalWidth > 0")
    assert page.inner_text("#exit-status") == "Đang chờ thanh toán"
    payload = page.get_attribute("#exit-panel", "data-payload")
    api(
        base,
        "POST",
        "/sandbox/bank/transfers",
        {"qr_payload": payload},
        token_for(base, "commuter1"),
    )
    page.wait_for_selector("#exit-panel.paid", timeout=10_000)
    assert page.inner_text("#exit-status") == "Đã thanh toán"
    page.wait_for_selector(f"tr[data-session-id='{car['id']}']", state="detached")

    # The motorbike leaves within the grace period: free, recorded, gone.
    page.click("#exit-close")
    page.click("tr[data-plate='29A56789'] .exit-button")
    page.wait_for_selector("#exit-breakdown li")
    page.click("#pay-cash")
    page.wait_for_selector("#exit-panel[data-status=closed]")
    assert page.inner_text("#exit-status") == "Miễn phí (trong thời gian miễn phí)"
    page.wait_for_selector("tr[data-plate='29A56789']", state="detached")
    trail = api(base, "GET", f"/parking/sessions/{car['id']}", token=token)
    assert trail["status"] == "closed" and trail["method"] == "vietqr"
    assert trail["closed_by"] == "attendant1" and trail["closed_device"].startswith("web-")
