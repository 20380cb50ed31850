"""Ticketing on the real PostgreSQL: races between gates, idempotent uploads, impossible journeys.

`pg_committed` commits for real, so concurrent threads see each other's work exactly as two
gates talking to two app nodes would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.api.test_ticketing_api import (
    BUS_SINGLE,
    METRO_MONTHLY,
    Phone,
    bought_earlier,
    buy,
    fund,
    gate_headers,
    offline_tap,
    register,
)
from tests.conftest import login
from ticketing.models import RevenueFlag, Tap, Ticket

pytestmark = pytest.mark.integration


def _commuter(app: Any) -> tuple[Any, dict[str, str], Phone, int]:
    client = app.test_client()
    fund(app, "commuter1")
    headers = login(client, "commuter1")
    phone = Phone()
    return client, headers, phone, register(client, headers, phone)


def _add_validator(app: Any, validator_id: str, route: str = "09") -> None:
    client = app.test_client()
    response = client.post(
        "/api/v1/validators",
        json={"id": validator_id, "mode": "bus", "route": route},
        headers=login(client, "admin1"),
    )
    assert response.status_code == 201, response.json


def test_two_gates_race_for_one_single_ride(pg_committed: Any) -> None:
    """Eight gates scan the same single ride at the same instant: exactly one accepts."""
    app = pg_committed
    client, headers, phone, device = _commuter(app)
    ticket = buy(client, headers, device, product=BUS_SINGLE).json
    gates = [f"bus-09-race-{i}" for i in range(8)]
    for gate in gates:
        _add_validator(app, gate)
    qr = phone.qr(ticket["credential"])
    gate_auth = gate_headers(app)
    barrier = threading.Barrier(len(gates))
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def scan(validator_id: str) -> None:
        local = app.test_client()
        barrier.wait()
        response = local.post(
            "/api/v1/validations",
            json={"qr_text": qr, "validator_id": validator_id, "validator_seq": 1, "mode": "bus"},
            headers=gate_auth,
        )
        with lock:
            answers.append(response.json)

    threads = [threading.Thread(target=scan, args=(gate,)) for gate in gates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decisions = sorted((a["decision"], a["reason"]) for a in answers)
    assert decisions == [("accept", "ok")] + [("deny", "consumed")] * (len(gates) - 1)
    db = app.extensions["cashless"].db
    with db.reader() as session:
        assert session.get(Ticket, ticket["id"]).status == "consumed"
        accepted = session.scalar(
            select(func.count()).where(Tap.ticket_id == ticket["id"], Tap.decision == "accept")
        )
    assert accepted == 1


def test_one_gate_retrying_the_same_tap_concurrently_counts_once(pg_committed: Any) -> None:
    app = pg_committed
    client, headers, phone, device = _commuter(app)
    ticket = buy(client, headers, device, product=METRO_MONTHLY).json
    qr = phone.qr(ticket["credential"])
    gate_auth = gate_headers(app)
    barrier = threading.Barrier(6)
    answers: list[dict[str, Any]] = []

    def scan() -> None:
        local = app.test_client()
        barrier.wait()
        body = {"qr_text": qr, "validator_id": "metro-cat-linh", "validator_seq": 77}
        response = local.post(
            "/api/v1/validations", json={**body, "mode": "metro"}, headers=gate_auth
        )
        answers.append(response.json)

    threads = [threading.Thread(target=scan) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {(a["decision"], a["tap_id"]) for a in answers} == {("accept", answers[0]["tap_id"])}
    assert sum(1 for a in answers if not a["replayed"]) == 1


def test_offline_taps_uploaded_twice_count_once(pg_committed: Any) -> None:
    """A gate re-sends its whole batch (and two uploads race): each tap is stored once."""
    app = pg_committed
    client, _headers, phone, device = _commuter(app)
    ticket = bought_earlier(app, "commuter1", device, METRO_MONTHLY, 3600)
    t0 = int(time.time()) - 3000
    # Scans 20 minutes apart at one gate: anti-passback (15 min) lets each through.
    taps = [offline_tap(phone, ticket["credential"], seq, t0 + seq * 1200) for seq in (1, 2)]
    gate_auth = gate_headers(app)
    body = {"validator_id": "metro-cat-linh", "taps": taps}
    barrier = threading.Barrier(3)
    results: list[dict[str, Any]] = []

    def send() -> None:
        local = app.test_client()
        barrier.wait()
        response = local.post("/api/v1/validators/taps", json=body, headers=gate_auth)
        assert response.status_code == 200, response.json
        results.append(response.json)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    again = client.post("/api/v1/validators/taps", json=body, headers=gate_auth).json
    assert again["duplicates"] == 2 and again["recorded"] == 0
    assert sum(r["recorded"] for r in results) == 2
    db = app.extensions["cashless"].db
    with db.reader() as session:
        stored = session.scalars(
            select(Tap).where(Tap.ticket_id == ticket["id"]).order_by(Tap.validator_seq)
        ).all()
    assert [(t.validator_seq, t.decision) for t in stored] == [(1, "accept"), (2, "accept")]


def test_impossible_journey_is_flagged_and_revoked(pg_committed: Any) -> None:
    """Offline at Cát Linh a minute ago, online at Yên Nghĩa now (11 km): flagged, revoked."""
    app = pg_committed
    client, _headers, phone, device = _commuter(app)
    ticket = bought_earlier(app, "commuter1", device, METRO_MONTHLY, 600)
    gate_auth = gate_headers(app)
    t0 = int(time.time()) - 60
    at_cat_linh = client.post(
        "/api/v1/validators/taps",
        json={
            "validator_id": "metro-cat-linh",
            "taps": [offline_tap(phone, ticket["credential"], 9, t0)],
        },
        headers=gate_auth,
    ).json
    assert at_cat_linh["results"][0]["flagged"] is False
    at_yen_nghia = client.post(
        "/api/v1/validations",
        json={
            "qr_text": phone.qr(ticket["credential"]),
            "validator_id": "metro-yen-nghia",
            "validator_seq": 9,
            "mode": "metro",
        },
        headers=gate_auth,
    ).json
    assert (at_yen_nghia["decision"], at_yen_nghia["flagged"]) == ("accept", True)
    db = app.extensions["cashless"].db
    with db.reader() as session:
        assert session.get(Ticket, ticket["id"]).status == "revoked"
        flags = session.scalars(select(RevenueFlag).where(RevenueFlag.ticket_id == ticket["id"]))
        assert [(f.kind, f.tap_id) for f in flags] == [
            ("impossible_journey", at_yen_nghia["tap_id"])
        ]
    denied = client.post(
        "/api/v1/validations",
        json={
            "qr_text": phone.qr(ticket["credential"]),
            "validator_id": "metro-cat-linh",
            "validator_seq": 11,
            "mode": "metro",
        },
        headers=gate_auth,
    ).json
    assert (denied["decision"], denied["reason"]) == ("deny", "revoked")


def test_revocation_delta_never_misses_a_concurrent_change(pg_committed: Any) -> None:
    """Revocations committed while gates sync: every one shows up in some delta."""
    app = pg_committed
    client, headers, _phone, device = _commuter(app)
    fund(app, "commuter1", 2_000_000)
    tickets = [buy(client, headers, device, product=BUS_SINGLE).json["id"] for _ in range(12)]
    admin = login(client, "admin1")
    gate_auth = gate_headers(app)
    since = client.get("/api/v1/validators/bundle", headers=gate_auth).json["next_since"]
    seen: set[int] = set()
    stop = threading.Event()

    def revoke(ids: list[int]) -> None:
        local = app.test_client()
        for ticket_id in ids:
            local.post(f"/api/v1/tickets/{ticket_id}/revocation", json={"note": "t"}, headers=admin)

    def sync() -> None:
        nonlocal since
        from ticketing.bundle import verify_bundle

        local = app.test_client()
        jwk = local.get("/.well-known/bundle-key.json").json
        while True:
            done = stop.is_set()
            answer = local.get(
                "/api/v1/validators/bundle", query_string={"since": since}, headers=gate_auth
            ).json
            payload = verify_bundle(answer["bundle"], jwk, int(time.time())).payload
            seen.update(r["ticket_id"] for r in payload["revocations"])
            since = answer["next_since"]
            if done:
                return

    syncer = threading.Thread(target=sync)
    syncer.start()
    writers = [threading.Thread(target=revoke, args=(tickets[i::3],)) for i in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    syncer.join()
    assert seen == set(tickets)
