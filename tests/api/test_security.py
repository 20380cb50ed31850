"""Security properties: CSRF on cookie sessions, security headers, secrets never logged."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import login


def _csrf(client: FlaskClient, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "every page carries its CSRF token"
    return match.group(1)


def test_login_form_without_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/login")
    refused = client.post("/login", data={"username": "admin1", "password": "demo"})
    assert refused.status_code == 403
    token = _csrf(client)
    accepted = client.post(
        "/login", data={"username": "admin1", "password": "demo", "csrf_token": token}
    )
    assert accepted.status_code == 302


def test_cookie_session_needs_csrf_header_for_state_changes(client: FlaskClient) -> None:
    token = _csrf(client)
    client.post("/login", data={"username": "commuter1", "password": "demo", "csrf_token": token})
    assert client.get("/api/v1/wallets/me").status_code == 200  # reads need no token
    body = {"amount": 10000}
    forged = client.post(
        "/api/v1/wallets/me/topups", json=body, headers={"Idempotency-Key": "csrf-1"}
    )
    assert forged.status_code == 403 and forged.json["code"] == "csrf_failed"
    token = _csrf(client, "/")
    allowed = client.post(
        "/api/v1/wallets/me/topups",
        json=body,
        headers={"Idempotency-Key": "csrf-2", "X-CSRF-Token": token},
    )
    assert allowed.status_code == 201


@pytest.mark.parametrize("path", ["/", "/login", "/ticket", "/vendor", "/parking", "/finance"])
def test_pages_carry_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if response.mimetype == "text/html":
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "cdn" not in csp.lower()
        assert "http://" not in response.get_data(as_text=True).split("<body", 1)[0]


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient) -> None:
    token = _csrf(client)
    response = client.post(
        "/login", data={"username": "admin1", "password": "demo", "csrf_token": token}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secrets_never_reach_the_logs(
    app: Flask, client: FlaskClient, auth: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A busy session: logins (good and bad), tokens, API keys, a webhook with a bad
    signature, errors. No secret value appears in any log record."""
    caplog.set_level(logging.DEBUG)
    secret_password = "S3cret-Pass-xyz"
    client.post("/api/v1/auth/register", json={"username": "logcheck", "password": secret_password})
    headers = login(client, "logcheck", secret_password)
    client.post("/api/v1/auth/token", json={"username": "logcheck", "password": "wrong-pw-77"})
    admin = auth("admin1")
    key = client.post("/api/v1/users/1/api-keys", headers=admin, json={"label": "x"}).json
    client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key['api_key']}"})
    client.get("/api/v1/auth/me", headers={"Authorization": "Bearer hck_nope_nope"})
    client.post("/api/v1/bank/notifications", data=b"{}", headers={"X-Signature": "t=1,v1=ab"})
    client.post(
        "/api/v1/wallets/me/topups",
        json={"amount": 1.5},
        headers={**headers, "Idempotency-Key": "k"},
    )
    settings = app.extensions["cashless"].settings
    secrets = [
        secret_password,
        "wrong-pw-77",
        headers["Authorization"].split()[1],
        key["api_key"],
        key["api_key"].split("_")[2],
        settings.secret_key,
        settings.bank_webhook_secret,
        settings.key_encryption_key,
        settings.holder_ref_secret,
    ]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records, "the session was logged"
    for value in secrets:
        assert value not in text
