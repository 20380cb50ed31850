"""The home page in headless Chromium: Vietnamese by default, English on request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login_page

pytestmark = pytest.mark.browser


def test_home_is_vietnamese_then_switches_to_english(page: Any, live_server: Any) -> None:
    page.goto(live_server.url + "/")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.inner_text("#headline") == "Thanh toán không dùng tiền mặt cho Hà Nội"
    assert page.inner_text("#sample-amount") == "15.000\u00a0₫"
    page.click("#lang-en")
    page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.inner_text("#headline") == "Cashless payments for Hanoi"
    assert page.inner_text("#sample-amount") == "15.000\u00a0₫"
    page.goto(live_server.url + "/")  # the choice is remembered in a cookie
    assert page.inner_text("#headline") == "Cashless payments for Hanoi"


def test_login_with_session_cookie(page: Any, live_server: Any) -> None:
    login_page(page, live_server.url + "/?lang=vi".replace("/?lang=vi", ""), "admin1")
    page.goto(live_server.url + "/")
    assert "admin1" in page.inner_text("header")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["cashless_session"]["httpOnly"] is True


def test_wrong_password_shows_error(page: Any, live_server: Any) -> None:
    login_page(page, live_server.url, "admin1", "wrong")
    assert page.locator("[role=alert]").count() == 1
