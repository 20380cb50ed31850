"""Merchant webhooks on PostgreSQL: an event recorded with the bank's credit is delivered by a
real RQ worker process, and a failing endpoint is retried by RQ's scheduler after its delay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.queue import OutboxJob
from payments import webhooks
from payments.models import Payment, WebhookDelivery
from payments.notifications import IncomingCredit, receive
from payments.service import PaymentsConfig, create_vietqr_payment
from tests.api.test_webhooks import Receiver, hmac_signature
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
MERCHANT = 9001


@pytest.fixture(autouse=True)
def sandbox_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker process reads its settings from the environment: sandbox on, so that it may
    call the test's receiver on 127.0.0.1."""
    monkeypatch.setenv("CASHLESS_SANDBOX", "1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def pay_a_charge(app: Any, amount: int, txn: str) -> int:
    svc = app.extensions["cashless"]
    cfg = PaymentsConfig.from_settings(svc.settings)
    with svc.db.transaction() as session:
        payment = create_vietqr_payment(
            session,
            cfg,
            amount=amount,
            purpose="charge",
            owner_ref="pg",
            credit_account=f"merchant:{MERCHANT}:payable",
            merchant_id=MERCHANT,
        )
    credit = IncomingCredit(
        transaction_id=txn,
        account_number=cfg.account,
        amount=amount,
        credited_at=datetime.now(UTC),
        description=f"{payment.reference} thanh toan",
    )
    assert receive(svc.db, cfg, credit).status == "matched"
    return int(payment.id)


def delivery_of(app: Any) -> WebhookDelivery:
    with app.extensions["cashless"].db.reader() as session:
        return session.query(WebhookDelivery).order_by(WebhookDelivery.id).first()


def test_worker_delivers_a_signed_event_on_postgres(
    pg_redis_app: Any, worker: Any, receiver: Receiver
) -> None:
    db = pg_redis_app.extensions["cashless"].db
    endpoint = webhooks.register_endpoint(db, True, MERCHANT, receiver.url + "/pg")
    payment_id = pay_a_charge(pg_redis_app, 42000, "FT-PG-WH-1")
    wait_for(lambda: receiver.requests, timeout=20)
    got = receiver.requests[0]
    sent = {k.lower(): v for k, v in got["headers"].items()}
    assert sent["webhook-signature"] == hmac_signature(
        endpoint["secret"], sent["webhook-id"], sent["webhook-timestamp"], got["body"]
    )
    body = json.loads(got["body"])
    assert body["type"] == "payment.succeeded" and body["data"]["payment_id"] == payment_id
    wait_for(lambda: delivery_of(pg_redis_app).status == "delivered", timeout=10)
    events = webhooks.list_events(db, MERCHANT, limit=10)
    assert [e["id"] for e in events["data"]] == [sent["webhook-id"]]
    assert events["data"][0]["data"]["amount"] == 42000
    with db.reader() as session:
        assert session.get(Payment, payment_id).status == "succeeded"


def test_failing_endpoint_is_retried_by_rq_after_its_delay(pg_redis_app: Any, worker: Any) -> None:
    db = pg_redis_app.extensions["cashless"].db
    failing = Receiver(status=500)
    try:
        webhooks.register_endpoint(db, True, MERCHANT, failing.url)
        pay_a_charge(pg_redis_app, 7000, "FT-PG-WH-2")
        wait_for(lambda: len(failing.requests) == 1, timeout=20)
        wait_for(lambda: delivery_of(pg_redis_app).attempts == 1, timeout=10)
        delivery = delivery_of(pg_redis_app)
        first_try = time.monotonic()
        with db.reader() as session:
            job = session.get(OutboxJob, f"webhook:{delivery.id}:2")
            assert job is not None and job.not_before is not None
            assert abs((job.not_before - job.created_at).total_seconds() - 5) < 1
        # RQ's scheduler (in the worker) runs the second attempt about 5 s later.
        wait_for(lambda: len(failing.requests) == 2, timeout=30)
        assert time.monotonic() - first_try >= 3.5
        wait_for(lambda: delivery_of(pg_redis_app).attempts == 2, timeout=10)
        delivery = delivery_of(pg_redis_app)
        assert delivery.status == "pending" and delivery.last_status_code == 500
        with db.reader() as session:
            assert session.get(OutboxJob, f"webhook:{delivery.id}:3") is not None
    finally:
        failing.stop()
