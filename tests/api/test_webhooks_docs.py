"""The worked examples in docs/EVENTS.md, docs/BANK_WEBHOOK.md and docs/VIETQR.md are true:
signatures recomputed by our code and by hand, payloads produced by payments.vietqr."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import timedelta
from pathlib import Path

from payments import bank, vietqr, webhooks
from payments.models import Payment
from payments.service import PaymentsConfig, dynamic_payload, event_payload
from payments.static_codes import static_payload

DOCS = Path(__file__).resolve().parents[2] / "docs"
MSG_ID, STAMP = "msg_2f1d0c9e8b7a6f5e4d3c2b1a", 1795313703
OLD = "whsec_" + base64.b64encode(bytes(range(24))).decode()
NEW = "whsec_" + base64.b64encode(bytes(range(24, 48))).decode()


def json_examples(text: str) -> list[str]:
    """The one-line JSON code blocks of a document."""
    return re.findall(r"```json\n(\{.*\})\n```", text)


def events_doc() -> str:
    return (DOCS / "EVENTS.md").read_text()


def example(type_: str) -> str:
    return next(raw for raw in json_examples(events_doc()) if f'"type":"{type_}"' in raw)


def test_events_worked_example_signature() -> None:
    doc = events_doc()
    body = example("payment.succeeded").encode()
    assert f"Secret: `{OLD}`" in doc
    ours = webhooks.sign(OLD, MSG_ID, STAMP, body)
    key = base64.b64decode(OLD.removeprefix("whsec_"))
    by_hand = hmac.new(key, f"{MSG_ID}.{STAMP}.".encode() + body, hashlib.sha256).digest()
    assert ours == "v1," + base64.b64encode(by_hand).decode()
    assert f"webhook-signature: {ours}\n" in doc
    rotating = webhooks.signature_header([NEW, OLD], MSG_ID, STAMP, body)
    assert f"webhook-signature: {rotating}\n" in doc and f"`{NEW}`" in doc


def test_events_examples_match_what_payments_sends() -> None:
    payment = Payment(
        id=1,
        status="succeeded",
        amount=1,
        currency="VND",
        purpose="charge",
        owner_ref=None,
        method="vietqr",
        reference=None,
        merchant_id=1,
        stall_id=None,
        refunded_amount=0,
        succeeded_at=None,
    )
    fields = set(event_payload(payment))
    for type_ in ("payment.succeeded", "payment.expired"):
        body = json.loads(example(type_))
        assert set(body) == {"type", "timestamp", "data"} and set(body["data"]) == fields
    refunded = json.loads(example("payment.refunded"))["data"]
    assert set(refunded) == fields | {"refund_id", "refund_amount"}
    payout = json.loads(example("payout.sent"))["data"]
    assert isinstance(payout["amount"], int) and payout["currency"] == "VND"


def test_events_doc_retry_table_matches_the_schedule() -> None:
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", events_doc(), flags=re.MULTILINE)
    assert [int(n) for n, _ in rows] == list(range(1, webhooks.MAX_ATTEMPTS + 1))
    units = {"seconds": 1, "minutes": 60, "hours": 3600}
    for (_, text), delay in zip(rows[1:], webhooks.RETRY_DELAYS, strict=True):
        amount, unit = text.split()
        assert timedelta(seconds=int(amount) * units[unit]) == delay


def test_bank_webhook_worked_example() -> None:
    doc = (DOCS / "BANK_WEBHOOK.md").read_text()
    body = next(raw for raw in json_examples(doc) if "FT26112200001" in raw).encode()
    header = bank.sign("sk_bank_demo_5f2c9a", body, 1795313702)
    assert f"X-Signature: {header}\n" in doc
    bank.verify("sk_bank_demo_5f2c9a", header, body, 1795313702 + 300)
    mac = hmac.new(b"sk_bank_demo_5f2c9a", b"1795313702." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1795313702,v1={mac}"


def test_vietqr_doc_examples_are_what_we_generate() -> None:
    doc = (DOCS / "VIETQR.md").read_text()
    cfg = PaymentsConfig(
        "970436", "0011001234567", "HANOI CASHLESS", "Hà Nội", timedelta(minutes=15), "", False
    )
    dynamic = dynamic_payload(cfg, 15000, "HC4K7Q2M9XG")
    static = static_payload(
        cfg, reference="HS00000003T", terminal_label="SAP-A12", merchant_name="Chợ Sấu Sạp Bình"
    )
    for payload in (dynamic, static):
        assert f"```\n{payload}\n```" in doc
        assert f"`6304` `{payload[-4:]}`" in doc or f"CRC `{payload[-4:]}`" in doc
    assert vietqr.decode(dynamic).amount == 15000 and vietqr.decode(static).amount is None
    assert vietqr.decode(static).terminal_label == "SAP-A12"
