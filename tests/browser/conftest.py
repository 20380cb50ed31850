"""Headless Chromium (Debian's package) driven by Playwright, one browser per session, against
a real `cashless serve` process on the embedded default with demo data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, need

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CASHLESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, instance: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance = instance
        env = {
            **os.environ,
            "CASHLESS_INSTANCE_PATH": str(instance),
            "CASHLESS_DEMO": "1",
            "CASHLESS_SANDBOX": "1",
            "CASHLESS_PUBLIC_URL": self.url,
            # Every browser test logs in; the real login limit is tested in the API tier.
            "CASHLESS_LOGIN_RATE_LIMIT": "1000 per minute",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        self.log = instance / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cashless.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        import urllib.request

        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log.read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    instance = tmp_path_factory.mktemp("live-instance")
    server = LiveServer(instance)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need(
        "Chromium",
        shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(),
        f"{CHROMIUM} is missing (apt-get install chromium)",
    )
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    yield page
    page.close()
    browser.clear_cookies()


def login_page(page: Any, base_url: str, username: str, password: str = "demo") -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-button")
    page.wait_for_load_state("networkidle")
