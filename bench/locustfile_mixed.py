"""The locust users of `bench/bench_load_mixed.py` (started by it; not a benchmark by itself).

One user class, `City`, plays the whole city at once: each task it picks (by the weights in the
bench's `MIX`) is what one real client does, with that client's credentials:

- `validate`: a metro gate (its own device API key) sends a scan of a monthly pass, freshly
  signed by the phone for the current 30 s step; a distinct (ticket, gate) pair every time, so
  anti-passback never answers for us. A success is `accept`.
- `sale`: the vendor creates a dynamic VietQR charge (`201`, pending), the bank posts the signed
  notification of the payer's transfer (`matched`), the vendor reads the charge (`succeeded`).
- `parking`: the attendant lets a motorbike in by plate (recorded as come in two hours ago, so
  that it pays), or lets the oldest one out; exits alternate cash and VietQR, and a VietQR exit
  is paid by a signed bank notification (`matched`).
- reads: the commuter's wallet balance and usable tickets, the fare list, the vendor's sales of
  the day, the lot's occupancy, an enforcement look-up of a plate.
- `healthz`: the trivial endpoint of the same app, as the reference.

Anything but the answer a real client expects (another status, another decision or outcome) is a
failure of that operation, with the reason. At exit it writes what it confirmed (counts, VND) to
`CASHLESS_LOAD_COUNTS` for the bench to check against the database.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from locust import FastHttpUser, constant, events

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_notifications import notification, signed  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from ticketing.credential import make_dynamic_qr, step_at  # noqa: E402

DATA: dict[str, Any] = json.loads(Path(os.environ["CASHLESS_LOAD_DATA"]).read_text())
TAG = os.environ.get("CASHLESS_LOAD_TAG", "run")
PAIR_OFFSET = int(os.environ.get("CASHLESS_LOAD_PAIR_OFFSET", "0"))
PHONE = serialization.load_pem_private_key(DATA["phone_pem"].encode(), None)
CREDENTIALS = [base64.b64decode(c) for c in DATA["credentials"]]
GATES: list[list[str]] = DATA["gates"]
TOKENS: dict[str, str] = DATA["tokens"]
MERCHANT, LOT = DATA["merchant_id"], DATA["lot_id"]
INSIDE_TARGET = 40  # vehicles kept inside the lot (capacity 300 motorbikes)

PAIRS = itertools.count(PAIR_OFFSET)
SERIAL = itertools.count()
INSIDE: collections.deque[tuple[int, str]] = collections.deque()
COUNTS: collections.Counter[str] = collections.Counter()


def _auth(role: str, idempotent: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {TOKENS[role]}"}
    if idempotent:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def _expect(response: Any, status: int, check: Any = None) -> dict[str, Any] | None:
    """Mark the response failed unless it has `status` and `check(body)` is None (else the
    reason); returns the body of a success."""
    if response.status_code != status:
        response.failure(f"HTTP {response.status_code}: {(response.text or '')[:160]}")
        return None
    body = response.json() if response.text else {}
    problem = check(body) if check else None
    if problem:
        response.failure(problem)
        return None
    response.success()
    return body


def _is(body: dict[str, Any], field: str, expected: Any) -> str | None:
    """None when `body[field]` is what a real client expects, else the reason (short)."""
    got = body.get(field)
    if got == expected:
        return None
    detail = body.get("reason") or body.get("code") or ""
    return f"{field} {got!r}, expected {expected!r} {detail}".strip()[:160]


def _bank_pays(user: City, reference: str, amount: int) -> bool:
    serial = f"{TAG}-{next(SERIAL)}"
    raw, headers = signed(notification(reference, amount, serial), DATA["bank_secret"])
    with user.client.post(
        "/api/v1/bank/notifications",
        data=raw,
        headers=headers,
        name="POST /bank/notifications",
        catch_response=True,
    ) as response:
        body = _expect(response, 200, lambda b: _is(b, "status", "matched"))
    if body is None:
        return False
    COUNTS["matched"] += 1
    COUNTS["matched_vnd"] += amount
    return True


# -- the tasks ----------------------------------------------------------------------------------
def validate(user: City) -> None:
    pair = next(PAIRS)
    if pair >= len(CREDENTIALS) * len(GATES):
        raise RuntimeError("every (ticket, gate) pair is used: raise --tickets or --validators")
    validator_id, api_key = GATES[(pair // len(CREDENTIALS)) % len(GATES)]
    body = {
        "qr_text": make_dynamic_qr(
            CREDENTIALS[pair % len(CREDENTIALS)],
            PHONE,  # type: ignore[arg-type]
            step_at(int(time.time())),
        ),
        "validator_id": validator_id,
        "validator_seq": pair,
        "mode": "metro",
    }
    COUNTS["pairs"] = max(COUNTS["pairs"], pair + 1 - PAIR_OFFSET)
    with user.client.post(
        "/api/v1/validations",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        name="POST /validations",
        catch_response=True,
    ) as response:
        answer = _expect(
            response,
            200,
            lambda b: _is(b, "decision", "accept"),
        )
    if answer is not None:
        COUNTS["accepted"] += 1


def sale(user: City) -> None:
    amount = random.randrange(5, 500) * 1000
    with user.client.post(
        f"/api/v1/merchants/{MERCHANT}/charges",
        json={"amount": amount, "description": "rau muống"},
        headers=_auth("vendor", idempotent=True),
        name="POST /merchants/{id}/charges",
        catch_response=True,
    ) as response:
        charge = _expect(
            response,
            201,
            lambda b: _is(b, "status", "pending") or _is(b, "amount", amount),
        )
    if charge is None or not _bank_pays(user, charge["reference"], amount):
        return
    with user.client.get(
        f"/api/v1/payments/{charge['id']}",
        headers=_auth("vendor"),
        name="GET /payments/{id}",
        catch_response=True,
    ) as response:
        _expect(response, 200, lambda b: _is(b, "status", "succeeded"))


def parking(user: City) -> None:
    if len(INSIDE) < INSIDE_TARGET:
        _enter(user)
    else:
        _exit(user, *INSIDE.popleft())


def _enter(user: City) -> None:
    plate = f"29B{TAG[-3:]}-{next(SERIAL):06d}"
    with user.client.post(
        f"/api/v1/parking/lots/{LOT}/sessions",
        json={
            "plate": plate,
            "vehicle_class": "motorbike",
            "device_id": "bench-gate-1",
            # Recorded as having come in two hours ago (the API allows ≤ 24 h), so that its
            # exit, a minute later, is past the tariff's grace period and pays a fee.
            "entered_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        },
        headers=_auth("attendant", idempotent=True),
        name="POST /parking/lots/{id}/sessions",
        catch_response=True,
    ) as response:
        session = _expect(response, 201, lambda b: _is(b, "status", "open"))
    if session is not None:
        COUNTS["entries"] += 1
        INSIDE.append((session["id"], plate))


def _exit(user: City, session_id: int, plate: str) -> None:
    method = "cash" if COUNTS["exits"] % 2 == 0 else "vietqr"
    with user.client.post(
        f"/api/v1/parking/sessions/{session_id}/exit",
        json={"method": method, "device_id": "bench-gate-1"},
        headers=_auth("attendant", idempotent=True),
        name="POST /parking/sessions/{id}/exit",
        catch_response=True,
    ) as response:
        result = _expect(response, 200, lambda b: _exit_problem(method, b))
    if result is None:
        return
    COUNTS["exits"] += 1
    if method == "vietqr":
        _bank_pays(user, result["payment"]["reference"], result["amount"])


def _exit_problem(method: str, body: dict[str, Any]) -> str | None:
    if not body.get("amount"):
        return f"no fee: amount {body.get('amount')!r}"
    if method == "cash" and body["session"]["status"] != "closed":
        return f"cash exit left the session {body['session']['status']}"
    if method == "vietqr" and (body.get("payment") or {}).get("status") != "pending":
        return f"no pending QR payment: {body.get('payment')!r}"[:160]
    return None


def _read(user: City, path: str, role: str, name: str) -> None:
    with user.client.get(path, headers=_auth(role), name=name, catch_response=True) as response:
        _expect(response, 200)


def wallet(user: City) -> None:
    _read(user, "/api/v1/wallets/me", "commuter", "GET /wallets/me")


def tickets(user: City) -> None:
    _read(user, "/api/v1/tickets?usable=true&limit=20", "commuter", "GET /tickets")


def fare_products(user: City) -> None:
    _read(user, "/api/v1/fare-products", "commuter", "GET /fare-products")


def sales(user: City) -> None:
    _read(user, f"/api/v1/merchants/{MERCHANT}/sales", "vendor", "GET /merchants/{id}/sales")


def occupancy(user: City) -> None:
    _read(user, f"/api/v1/parking/lots/{LOT}", "attendant", "GET /parking/lots/{id}")


def enforcement(user: City) -> None:
    plate = random.choice(INSIDE)[1] if INSIDE else "29B99999"
    path = "/api/v1/parking/enforcement/" + plate.replace("-", "")
    _read(user, path, "attendant", "GET /parking/enforcement/{plate}")


def healthz(user: City) -> None:
    with user.client.get("/healthz", name="GET /healthz", catch_response=True) as response:
        _expect(response, 200, lambda b: _is(b, "status", "ok"))


TASKS = {
    "validate": validate,
    "sale": sale,
    "parking": parking,
    "wallet": wallet,
    "tickets": tickets,
    "fare_products": fare_products,
    "sales": sales,
    "occupancy": occupancy,
    "enforcement": enforcement,
    "healthz": healthz,
}


class City(FastHttpUser):
    """Every client of the city in one closed loop: no think time, the next task at once."""

    wait_time = constant(0)
    tasks: ClassVar[dict[Any, int]] = {TASKS[name]: weight for name, weight in DATA["mix"].items()}


class HealthOnly(FastHttpUser):
    """The reference: only `GET /healthz`, as fast as the server answers."""

    wait_time = constant(0)
    tasks: ClassVar[list[Any]] = [healthz]


@events.quitting.add_listener
def _write_counts(**_: Any) -> None:
    Path(os.environ["CASHLESS_LOAD_COUNTS"]).write_text(json.dumps(dict(COUNTS)))
