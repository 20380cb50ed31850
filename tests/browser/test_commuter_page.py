"""The commuter's ticket page in headless Chromium against a real `cashless serve`.

The page registers its WebCrypto key, buys tickets with the wallet and draws the live TV2 QR.
We decode the QR from a screenshot with zxing-cpp (independent of our encoder), validate it
online (accept), offline with the reference gate CLI (accept now, step_too_old 3 minutes
later), then cut the network and watch the code rotate at the next 30-second step.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.browser.conftest import login_page
from ticketing.credential import parse_qr, qr_version_at_level_m
from ticketing.gate_cli import gate_validate

pytestmark = pytest.mark.browser
PHONE = {"width": 412, "height": 915}


def call(server: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


def commuter_token(server: Any) -> dict[str, str]:
    body = {"username": "commuter1", "password": "demo"}
    token = call(server, "POST", "/api/v1/auth/token", {}, body)["access_token"]
    return {"Authorization": f"Bearer {token}"}


def gate_key(server: Any) -> dict[str, str]:
    match = re.search(r"gate1 API key: (hck_\S+)", server.log.read_text())
    assert match, "the demo gate key is printed at start-up"
    return {"Authorization": f"Bearer {match.group(1)}"}


def top_up(server: Any, amount: int) -> None:
    """Fund commuter1 the way a commuter does: a VietQR top-up paid through the bank sandbox."""
    headers = commuter_token(server)
    before = call(server, "GET", "/api/v1/wallets/me", headers)["balance"]
    payment = call(
        server,
        "POST",
        "/api/v1/wallets/me/topups",
        {**headers, "Idempotency-Key": uuid.uuid4().hex},
        {"amount": amount},
    )
    call(
        server,
        "POST",
        "/api/v1/sandbox/bank/transfers",
        headers,
        {"qr_payload": payment["qr"]["payload"]},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if call(server, "GET", "/api/v1/wallets/me", headers)["balance"] >= before + amount:
            return
        time.sleep(0.2)
    raise AssertionError("the top-up never reached the wallet")


def decode_screenshot(png: bytes) -> str:
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    codes = [code for code in found if code.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1, f"expected one QR code, found {len(codes)}"
    return str(codes[0].text)


def shown_qr(page: Any) -> tuple[str, int]:
    canvas = page.locator("#qr")
    return canvas.get_attribute("data-qr"), int(canvas.get_attribute("data-step"))


def buy_on_page(page: Any, product_id: int) -> None:
    before = page.locator("#qr").get_attribute("data-ticket-id")
    page.click(f'button.buy[data-product-id="{product_id}"]')
    page.wait_for_function(
        "(before) => { const c = document.querySelector('#qr');"
        " return c.dataset.qr && c.dataset.ticketId !== before; }",
        arg=before,
        timeout=20_000,
    )


def gate_cli(tmp_path: Path, server: Any, qr_text: str, now: int, validator: str) -> dict:
    bundle = call(server, "GET", "/api/v1/validators/bundle", gate_key(server))
    bundle_file, key_file = tmp_path / "bundle.jws", tmp_path / "bundle-key.json"
    bundle_file.write_text(bundle["bundle"])
    key_file.write_text(json.dumps(call(server, "GET", "/.well-known/bundle-key.json", {})))
    args = ["--bundle", str(bundle_file), "--key", str(key_file), "--now", str(now)]
    result = CliRunner().invoke(
        gate_validate, [*args, "--validator", validator, "-"], input=qr_text
    )
    assert result.exit_code in (0, 1), result.output
    decision = json.loads(result.output)
    assert result.exit_code == (0 if decision["decision"] == "accept" else 1)
    return decision


def test_commuter_buys_shows_and_rides(page: Any, live_server: Any, tmp_path: Path) -> None:
    top_up(live_server, 100_000)
    page.set_viewport_size(PHONE)
    login_page(page, live_server.url, "commuter1")
    page.goto(live_server.url + "/ticket")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert "Vé lượt xe buýt" in page.inner_text("#products")

    buy_on_page(page, 101)  # a bus single ride, valid on route 09
    assert page.locator("#qr-section").is_visible()
    page.screenshot(path=str(tmp_path / "ticket-page.png"), full_page=True)
    png = page.locator("#qr").screenshot()
    (tmp_path / "ticket-qr.png").write_bytes(png)
    text, step = shown_qr(page)
    decoded = decode_screenshot(png)
    assert decoded == text and decoded.startswith("TV2:")
    assert qr_version_at_level_m(decoded) <= 10
    scan = parse_qr(decoded)
    assert scan.step == step  # type: ignore[union-attr]

    # The gate accepts it online (the server's clock) and offline (the reference CLI, now).
    online = call(
        live_server,
        "POST",
        "/api/v1/validations",
        gate_key(live_server),
        {
            "qr_text": decoded,
            "validator_id": "bus-09-a",
            "validator_seq": int(time.time() * 1000),
            "mode": "bus",
        },
    )
    assert (online["decision"], online["reason"]) == ("accept", "ok")
    offline_now = gate_cli(tmp_path, live_server, decoded, int(time.time()), "bus-09-a")
    assert offline_now["decision"] == "accept"
    # The same screenshot three minutes later: the step is outside the -90..+30 s window.
    later = gate_cli(tmp_path, live_server, decoded, int(time.time()) + 180, "bus-09-a")
    assert (later["decision"], later["reason"]) == ("deny", "step_too_old")


def test_qr_keeps_rotating_offline(page: Any, live_server: Any, tmp_path: Path) -> None:
    top_up(live_server, 100_000)
    page.set_viewport_size(PHONE)
    login_page(page, live_server.url, "commuter1")
    page.goto(live_server.url + "/ticket?lang=en")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    buy_on_page(page, 310)  # a metro day pass
    ticket_id = page.locator("#qr").get_attribute("data-ticket-id")
    context = page.context
    context.set_offline(True)
    try:
        page.wait_for_function("() => !navigator.onLine", timeout=5_000)
        assert page.locator("#offline-note").is_visible()
        text, step = shown_qr(page)
        page.wait_for_function(
            "(step) => Number(document.querySelector('#qr').dataset.step) > step",
            arg=step,
            timeout=40_000,
        )
        rotated, next_step = shown_qr(page)
        assert next_step == step + 1 and rotated != text
        assert page.locator("#qr").get_attribute("data-ticket-id") == ticket_id
        decoded = decode_screenshot(page.locator("#qr").screenshot())
        assert decoded == rotated
        # The page opens again with no signal (service worker) and still shows the ticket.
        page.reload()
        page.wait_for_function("() => document.querySelector('#qr').dataset.qr", timeout=20_000)
        assert page.locator("#qr").get_attribute("data-ticket-id") == ticket_id
    finally:
        context.set_offline(False)
    # What the phone made offline is a valid ticket at a metro gate.
    decision = gate_cli(tmp_path, live_server, rotated, 30 * next_step + 5, "metro-cat-linh")
    assert decision["decision"] == "accept", decision
