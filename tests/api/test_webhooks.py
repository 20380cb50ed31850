"""Outgoing merchant webhooks (SPEC §4): Standard Webhooks v1 signatures checked independently,
secret rotation, the SSRF guard, delivery after a sandbox-bank payment, retries through the
outbox, the catch-up events list and who may see it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core import access
from core.clock import utcnow
from core.queue import OutboxJob
from payments import webhooks
from payments.events import record_merchant_event
from payments.models import WebhookDelivery
from tests.api.test_foundation import assert_problem
from tests.conftest import login, wait_for

MERCHANT, OTHER = 9001, 9002


def svc(app: Flask) -> Any:
    return app.extensions["cashless"]


class Receiver:
    """A merchant's webhook endpoint: a tiny HTTP server on 127.0.0.1 that records requests."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                self.send_response(outer.status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def user_id(app: Flask, username: str) -> int:
    from sqlalchemy import select

    from core.users import User

    with svc(app).db.reader() as session:
        return int(session.scalar(select(User.id).where(User.username == username)))


@pytest.fixture
def staff(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """vendor1 staffs merchant 9001 (the merchants package answers this in production)."""
    vendor = user_id(app, "vendor1")
    monkeypatch.setitem(
        access._checks, "merchant_staff", lambda uid, mid: (uid, mid) == (vendor, MERCHANT)
    )


def hmac_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks v1, recomputed here without our code."""
    key = base64.b64decode(secret[len("whsec_") :])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def register(client: FlaskClient, headers: dict[str, str], url: str, merchant: int = MERCHANT):
    return client.post(
        f"/api/v1/merchants/{merchant}/webhook-endpoints", json={"url": url}, headers=headers
    )


def new_event(app: Flask, merchant: int = MERCHANT, type_: str = "payment.succeeded", **data):
    with svc(app).db.transaction() as session:
        event = record_merchant_event(session, merchant, type_, {"payment_id": 1, **data})
        return event.event_id


def deliveries(app: Flask) -> list[WebhookDelivery]:
    with svc(app).db.reader() as session:
        return list(session.query(WebhookDelivery).order_by(WebhookDelivery.id))


# -- signatures -----------------------------------------------------------------------------------
def test_secret_and_signature_match_an_independent_hmac() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    body = b'{"type":"payment.succeeded","timestamp":"2026-01-01T00:00:00+00:00","data":{}}'
    ours = webhooks.sign(secret, "msg_abc", 1767225600, body)
    assert ours == hmac_signature(secret, "msg_abc", "1767225600", body)
    assert ours != webhooks.sign(secret, "msg_abc", 1767225601, body)
    # A fixed vector, so docs/EVENTS.md's worked example stays true.
    fixed = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    assert webhooks.sign(fixed, "msg_2f1d0c9e8b7a6f5e4d3c2b1a", 1767225600, body) == (
        hmac_signature(fixed, "msg_2f1d0c9e8b7a6f5e4d3c2b1a", "1767225600", body)
    )


def test_standardwebhooks_package_verifies_our_signatures() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = webhooks.new_secret()
    now = int(utcnow().timestamp())
    body = json.dumps({"type": "payment.succeeded", "data": {"amount": 15000}}).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": webhooks.signature_header([secret], "msg_1", now, body),
    }
    parsed = standardwebhooks.Webhook(secret).verify(body, headers)
    assert parsed["data"]["amount"] == 15000
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(webhooks.new_secret()).verify(body, headers)


def test_rotation_keeps_the_old_secret_signing_for_24_hours() -> None:
    now = utcnow()
    entries = webhooks.rotated(["whsec_b2xk"], "whsec_bmV3", now)
    assert webhooks.signing_secrets(entries, now) == ["whsec_bmV3", "whsec_b2xk"]
    later = now + timedelta(hours=24, seconds=1)
    assert webhooks.signing_secrets(entries, later) == ["whsec_bmV3"]
    assert webhooks.retiring_until(entries, now) is not None
    third = webhooks.rotated(entries, "whsec_dGhpcmQ=", later)
    until = int((later + timedelta(hours=24)).timestamp())
    assert third == ["whsec_dGhpcmQ=", f"whsec_bmV3|{until}"]  # the expired one is dropped


# -- SSRF guard -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://127.1/hook", "loopback"),
        ("https://2130706433/hook", "loopback"),
        ("https://localhost:8443/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "address"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://100.64.0.1/hook", "public"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://0.0.0.0/hook", "address"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://93.184.216.34/hook", "https"),
        ("ftp://93.184.216.34/hook", "https"),
        ("file:///etc/passwd", "https"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("https://unresolvable.invalid/hook", "resolve"),
    ],
)
def test_ssrf_guard_outside_sandbox(url: str, why: str) -> None:
    with pytest.raises(webhooks.UnsafeURL, match=why):
        webhooks.vet_url(url, sandbox=False)


def test_api_refuses_unsafe_urls_outside_sandbox(
    client: FlaskClient, app: Flask, auth: Any, staff: None
) -> None:
    svc(app).settings = svc(app).settings.with_overrides(sandbox=False)
    for url in ("https://127.0.0.1/hook", "https://[::1]/", "https://10.0.0.1/", "http://x.org/"):
        body = assert_problem(register(client, auth("vendor1"), url), 422, "validation_failed")
        assert body["errors"][0]["field"] == "url" and body["errors"][0]["code"] == "unsafe_url"
    metadata = register(client, auth("vendor1"), "https://169.254.169.254/latest/meta-data/")
    assert "link-local" in assert_problem(metadata, 422)["detail"]


def test_every_resolved_address_is_checked(
    client: FlaskClient, app: Flask, auth: Any, staff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc(app).settings = svc(app).settings.with_overrides(sandbox=False)
    answers = {"shop.example": ["93.184.216.34"], "rebind.example": ["93.184.216.34", "10.0.0.7"]}
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: answers[host])
    refused = register(client, auth("vendor1"), "https://rebind.example/hook")
    assert "10.0.0.7" in assert_problem(refused, 422)["detail"]
    created = register(client, auth("vendor1"), "https://shop.example/hook")
    assert created.status_code == 201, created.json
    # At delivery time the name now points inside: the attempt is refused, never sent.
    answers["shop.example"] = ["169.254.169.254"]
    new_event(app)
    wait_for(lambda: deliveries(app)[0].attempts == 1)
    refused_attempt = deliveries(app)[0]
    assert refused_attempt.status == "pending" and refused_attempt.last_status_code is None
    assert refused_attempt.last_error.startswith("refused: shop.example: 169.254.169.254")


def test_sandbox_allows_loopback_only(
    client: FlaskClient, auth: Any, staff: None, receiver: Receiver
) -> None:
    assert register(client, auth("vendor1"), receiver.url + "/hook").status_code == 201
    assert_problem(register(client, auth("vendor1"), "http://10.0.0.1/hook"), 422)
    assert_problem(register(client, auth("vendor1"), "http://169.254.169.254/"), 422)


# -- endpoints and access -------------------------------------------------------------------------
def test_register_list_rotate_disable(
    client: FlaskClient, app: Flask, auth: Any, staff: None, receiver: Receiver
) -> None:
    headers = auth("vendor1")
    created = register(client, headers, receiver.url + "/hook")
    assert created.status_code == 201
    endpoint = created.json
    assert endpoint["secret"].startswith("whsec_") and endpoint["active"] is True
    assert endpoint["previous_secret_expires_at"] is None
    base = f"/api/v1/merchants/{MERCHANT}/webhook-endpoints"
    listed = client.get(base, headers=headers).json
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
    assert "secret" not in listed["data"][0] and listed["has_more"] is False
    rotated = client.post(f"{base}/{endpoint['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 200 and rotated.json["secret"] != endpoint["secret"]
    assert rotated.json["previous_secret_expires_at"] is not None
    disabled = client.post(f"{base}/{endpoint['id']}/disable", headers=headers)
    assert disabled.status_code == 200 and disabled.json["active"] is False
    assert_problem(
        client.post(f"{base}/{endpoint['id']}/rotate-secret", headers=headers),
        409,
        "webhook_endpoint_disabled",
    )
    new_event(app)
    assert deliveries(app) == []  # a disabled endpoint gets nothing


def test_access_is_for_the_merchants_staff_and_admins(
    client: FlaskClient, app: Flask, auth: Any, staff: None, receiver: Receiver
) -> None:
    theirs = register(client, auth("admin1"), receiver.url, merchant=OTHER)
    assert theirs.status_code == 201
    new_event(app, merchant=OTHER)
    wait_for(lambda: deliveries(app)[0].status == "delivered")
    vendor, commuter = auth("vendor1"), auth("commuter1")
    for path in ("events", "webhook-endpoints", "webhook-deliveries"):
        assert_problem(client.get(f"/api/v1/merchants/{OTHER}/{path}", headers=vendor), 404)
        commuters = client.get(f"/api/v1/merchants/{MERCHANT}/{path}", headers=commuter)
        assert_problem(commuters, 403, "forbidden_role")
        assert_problem(client.get(f"/api/v1/merchants/{MERCHANT}/{path}"), 401)
        assert client.get(f"/api/v1/merchants/{OTHER}/{path}", headers=auth("admin1")).json["data"]
    assert_problem(register(client, vendor, receiver.url, merchant=OTHER), 404)
    other_id = theirs.json["id"]
    for action in ("rotate-secret", "disable"):
        # Their endpoint id under our merchant: no such endpoint here.
        url = f"/api/v1/merchants/{MERCHANT}/webhook-endpoints/{other_id}/{action}"
        assert_problem(client.post(url, headers=vendor), 404, "webhook_endpoint_not_found")
        url = f"/api/v1/merchants/{OTHER}/webhook-endpoints/{other_id}/{action}"
        assert_problem(client.post(url, headers=vendor), 404)


# -- delivery ----------------------------------------------------------------------------------
def test_merchant_endpoint_receives_the_event_after_a_sandbox_payment(
    live_app: Flask, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    from payments.service import PaymentsConfig, create_vietqr_payment

    vendor = user_id(live_app, "vendor1")
    monkeypatch.setitem(
        access._checks, "merchant_staff", lambda uid, mid: (uid, mid) == (vendor, MERCHANT)
    )
    client = live_app.test_client()
    headers = login(client, "vendor1")
    endpoint = register(client, headers, receiver.url + "/hooks/cashless").json
    cfg = PaymentsConfig.from_settings(svc(live_app).settings)
    with svc(live_app).db.transaction() as session:
        payment = create_vietqr_payment(
            session,
            cfg,
            amount=15000,
            purpose="charge",
            owner_ref="sale-1",
            credit_account=f"merchant:{MERCHANT}:payable",
            merchant_id=MERCHANT,
        )
    transfer = client.post(
        "/api/v1/sandbox/bank/transfers", headers=headers, json={"qr_payload": payment.qr_payload}
    )
    assert transfer.status_code == 201, transfer.json
    wait_for(lambda: receiver.requests, timeout=10)
    got = receiver.requests[0]
    assert got["path"] == "/hooks/cashless"
    sent = {k.lower(): v for k, v in got["headers"].items()}
    assert sent["content-type"] == "application/json"
    expected = hmac_signature(
        endpoint["secret"], sent["webhook-id"], sent["webhook-timestamp"], got["body"]
    )
    assert sent["webhook-signature"] == expected
    assert abs(int(sent["webhook-timestamp"]) - utcnow().timestamp()) < 30
    body = json.loads(got["body"])
    assert set(body) == {"type", "timestamp", "data"} and body["type"] == "payment.succeeded"
    assert body["data"]["payment_id"] == payment.id and body["data"]["amount"] == 15000
    assert body["data"]["status"] == "succeeded" and body["data"]["merchant_id"] == MERCHANT
    events = client.get(f"/api/v1/merchants/{MERCHANT}/events", headers=headers).json
    assert [e["id"] for e in events["data"]] == [sent["webhook-id"]]

    def delivered() -> Any:
        listed = client.get(f"/api/v1/merchants/{MERCHANT}/webhook-deliveries", headers=headers)
        rows = listed.json["data"]
        return rows if rows and rows[0]["status"] == "delivered" else None

    rows = wait_for(delivered)
    assert rows[0]["attempts"] == 1 and rows[0]["last_status_code"] == 200
    assert rows[0]["event_id"] == sent["webhook-id"]
    # Idempotent: a delivered delivery is not sent again.
    assert webhooks.deliver(svc(live_app).db, True, rows[0]["id"]) == "delivered"
    assert len(receiver.requests) == 1


def test_rotation_sends_two_signatures_both_valid(
    client: FlaskClient, app: Flask, auth: Any, staff: None, receiver: Receiver
) -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    headers = auth("vendor1")
    first = register(client, headers, receiver.url).json
    base = f"/api/v1/merchants/{MERCHANT}/webhook-endpoints/{first['id']}"
    second = client.post(f"{base}/rotate-secret", headers=headers).json
    new_event(app)
    wait_for(lambda: receiver.requests)
    got = receiver.requests[0]
    sent = {k.lower(): v for k, v in got["headers"].items()}
    signatures = sent["webhook-signature"].split(" ")
    msg, stamp = sent["webhook-id"], sent["webhook-timestamp"]
    assert signatures == [
        hmac_signature(second["secret"], msg, stamp, got["body"]),
        hmac_signature(first["secret"], msg, stamp, got["body"]),
    ]
    for secret in (first["secret"], second["secret"]):
        assert standardwebhooks.Webhook(secret).verify(got["body"], sent)["type"]
    wait_for(lambda: deliveries(app)[0].status == "delivered")


def test_failing_endpoint_is_retried_on_schedule_then_failed(
    client: FlaskClient, app: Flask, auth: Any, staff: None
) -> None:
    failing = Receiver(status=500)
    try:
        register(client, auth("vendor1"), failing.url + "/down")
        new_event(app)
        wait_for(lambda: deliveries(app) and deliveries(app)[0].attempts == 1)
        delivery = deliveries(app)[0]
        assert (delivery.status, delivery.last_status_code) == ("pending", 500)
        assert delivery.last_error.startswith("HTTP 500")
        with svc(app).db.reader() as session:
            job = session.get(OutboxJob, f"webhook:{delivery.id}:2")
            assert job is not None and job.func == "payments.jobs.deliver_webhook_job"
            assert json.loads(job.args) == [delivery.id]
            assert abs((job.not_before - job.created_at).total_seconds() - 5) < 1
        # Run each later attempt at its due time, as the queue would.
        for attempt, delay in enumerate(webhooks.RETRY_DELAYS[1:], start=2):
            due = deliveries(app)[0].next_attempt_at
            assert webhooks.deliver(svc(app).db, True, delivery.id, now=due) == "retry_scheduled"
            with svc(app).db.reader() as session:
                job = session.get(OutboxJob, f"webhook:{delivery.id}:{attempt + 1}")
                assert abs((job.not_before - job.created_at) - delay) < timedelta(seconds=1)
        due = deliveries(app)[0].next_attempt_at
        assert webhooks.deliver(svc(app).db, True, delivery.id, now=due) == "failed"
        final = deliveries(app)[0]
        assert (final.status, final.attempts) == ("failed", webhooks.MAX_ATTEMPTS)
        total = sum(webhooks.RETRY_DELAYS, timedelta())
        assert timedelta(days=2, hours=20) < total < timedelta(days=3, hours=2)
        with svc(app).db.reader() as session:
            assert session.get(OutboxJob, f"webhook:{delivery.id}:12") is None
        assert len(failing.requests) == webhooks.MAX_ATTEMPTS
        # Every attempt carries the same webhook-id (header names are case-insensitive).
        ids = {
            v
            for r in failing.requests
            for k, v in r["headers"].items()
            if k.lower() == "webhook-id"
        }
        assert len(ids) == 1
    finally:
        failing.stop()


def test_a_job_firing_early_or_twice_sends_nothing(
    client: FlaskClient, app: Flask, auth: Any, staff: None
) -> None:
    failing = Receiver(status=503)
    try:
        register(client, auth("vendor1"), failing.url)
        new_event(app)
        wait_for(lambda: deliveries(app) and deliveries(app)[0].attempts == 1)
        delivery_id = deliveries(app)[0].id
        assert webhooks.deliver(svc(app).db, True, delivery_id) == "not_due"
        assert len(failing.requests) == 1 and deliveries(app)[0].attempts == 1
    finally:
        failing.stop()


def test_redirects_are_not_followed(
    client: FlaskClient, app: Flask, auth: Any, staff: None, receiver: Receiver
) -> None:
    redirecting = Receiver(status=302, location=receiver.url + "/elsewhere")
    try:
        register(client, auth("vendor1"), redirecting.url)
        new_event(app)
        wait_for(lambda: deliveries(app) and deliveries(app)[0].attempts == 1)
        assert deliveries(app)[0].last_status_code == 302
        assert deliveries(app)[0].status == "pending" and receiver.requests == []
    finally:
        redirecting.stop()


def test_disable_cancels_pending_deliveries(
    client: FlaskClient, app: Flask, auth: Any, staff: None
) -> None:
    failing = Receiver(status=500)
    try:
        endpoint = register(client, auth("vendor1"), failing.url).json
        new_event(app)
        wait_for(lambda: deliveries(app) and deliveries(app)[0].attempts == 1)
        base = f"/api/v1/merchants/{MERCHANT}/webhook-endpoints/{endpoint['id']}"
        client.post(f"{base}/disable", headers=auth("vendor1"))
        delivery = deliveries(app)[0]
        assert delivery.status == "cancelled"
        later = utcnow() + timedelta(hours=1)
        assert webhooks.deliver(svc(app).db, True, delivery.id, now=later) == "cancelled"
        assert len(failing.requests) == 1
    finally:
        failing.stop()


# -- catch-up list ----------------------------------------------------------------------------
def test_events_list_pages_in_order_and_filters(
    client: FlaskClient, app: Flask, auth: Any, staff: None
) -> None:
    ids = [new_event(app, payment_id=n) for n in range(5)]
    expired = new_event(app, type_="payment.expired")
    new_event(app, merchant=OTHER)
    headers = auth("vendor1")
    url = f"/api/v1/merchants/{MERCHANT}/events"
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        page = client.get(url, query_string=query, headers=headers).json
        seen += [event["id"] for event in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == [*ids, expired]
    first = client.get(url, query_string={"limit": 1}, headers=headers).json["data"][0]
    assert first["type"] == "payment.succeeded" and first["data"]["payment_id"] == 0
    assert first["timestamp"] and first["created_at"]
    caught_up = client.get(url, query_string={"starting_after": ids[2]}, headers=headers).json
    assert [e["id"] for e in caught_up["data"]] == [ids[3], ids[4], expired]
    only = client.get(url, query_string={"type": "payment.expired"}, headers=headers).json
    assert [e["id"] for e in only["data"]] == [expired]
    assert_problem(client.get(url, query_string={"type": "nope"}, headers=headers), 422)
    unknown = client.get(url, query_string={"starting_after": "msg_nope"}, headers=headers)
    assert_problem(unknown, 422)
    assert_problem(client.get(url, query_string={"limit": 0}, headers=headers), 422)


def test_deliveries_list_shows_attempts(
    client: FlaskClient, app: Flask, auth: Any, staff: None, receiver: Receiver
) -> None:
    headers = auth("vendor1")
    register(client, headers, receiver.url)
    for n in range(3):
        new_event(app, payment_id=n)
    wait_for(lambda: len(receiver.requests) == 3)
    url = f"/api/v1/merchants/{MERCHANT}/webhook-deliveries"

    def all_delivered() -> Any:
        page = client.get(url, query_string={"status": "delivered"}, headers=headers).json
        return page if len(page["data"]) == 3 else None

    wait_for(all_delivered)
    page = client.get(url, query_string={"limit": 2}, headers=headers).json
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = client.get(
        url, query_string={"starting_after": page["next_cursor"]}, headers=headers
    ).json
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    assert {d["event_type"] for d in page["data"] + rest["data"]} == {"payment.succeeded"}
