"""Generate the TV2/TVF test vectors of docs/TICKET_FORMAT.md into ticket_vectors.json.

    .venv/bin/python tests/unit/data/make_ticket_vectors.py             # write the JSON
    .venv/bin/python tests/unit/data/make_ticket_vectors.py --markdown  # print the doc block

Signatures use RFC 6979 deterministic ECDSA so the file is reproducible; they are ordinary ECDSA
signatures, and production signers may (and do) randomise. The bytes are assembled here by hand,
independently of ticketing.credential, and then checked against it: two implementations agree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path
from typing import Any

import base45
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ticketing.bundle import public_key_to_jwk
from ticketing.credential import DynamicQR, FallbackToken, parse_qr, qr_version_at_level_m

OUTPUT = Path(__file__).with_name("ticket_vectors.json")

# Fixed test keys: P-256 scalars derived from labels. NEVER use them outside tests.
ISSUER_SCALAR = int.from_bytes(hashlib.sha256(b"hanoi-cashless test issuer key").digest(), "big")
DEVICE_SCALAR = int.from_bytes(hashlib.sha256(b"hanoi-cashless test device key").digest(), "big")
HOLDER_SECRET = b"hanoi-cashless test holder secret"

KEY_ID = 1
TICKET_ID = 0x0123456789ABCDEF
FARE_PRODUCT = 1001
NOT_BEFORE = 1_764_547_200  # 2025-12-01T00:00:00Z
NOT_AFTER = NOT_BEFORE + 72 * 3600
ACCOUNT_ID = 42
STEP = (NOT_BEFORE + 12 * 3600) // 30  # 30·STEP = 2025-12-01T12:00:00Z


def _sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _compressed(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def _flip(text: str, prefix_len: int, byte_index: int) -> str:
    data = bytearray(base45.b45decode(text[prefix_len:]))
    data[byte_index] ^= 0x01
    return text[:prefix_len] + base45.b45encode(bytes(data)).decode("ascii")


def _window(step: int) -> list[dict[str, Any]]:
    base = 30 * step
    cases = [
        (base, "accept", "ok"),
        (base + 90, "accept", "ok"),
        (base + 91, "deny", "step_too_old"),
        (base - 30, "accept", "ok"),
        (base - 31, "deny", "step_in_future"),
    ]
    return [
        {"now": now, "step": step, "lead": base - now, "decision": decision, "reason": reason}
        for now, decision, reason in cases
    ]


def build_vectors() -> dict[str, Any]:
    """Return the vectors; deterministic, so equal on every run and every machine."""
    issuer = ec.derive_private_key(ISSUER_SCALAR, ec.SECP256R1())
    device = ec.derive_private_key(DEVICE_SCALAR, ec.SECP256R1())
    ref = hmac.new(HOLDER_SECRET, ACCOUNT_ID.to_bytes(8, "big"), hashlib.sha256).digest()[:8]
    tbs = struct.pack(
        ">BBQHII8s33s",
        1,
        KEY_ID,
        TICKET_ID,
        FARE_PRODUCT,
        NOT_BEFORE,
        NOT_AFTER,
        ref,
        _compressed(device),
    )
    credential = tbs + _sign(issuer, tbs)
    signed_part = credential + struct.pack(">I", STEP)
    device_signature = _sign(device, b"TV2" + signed_part)
    payload = signed_part + device_signature
    qr_text = "TV2:" + base45.b45encode(payload).decode("ascii")
    fallback_tbs = struct.pack(">BBQHI", 1, KEY_ID, TICKET_ID, FARE_PRODUCT, STEP)
    fallback = fallback_tbs + _sign(issuer, fallback_tbs)
    fallback_text = "TVF:" + base45.b45encode(fallback).decode("ascii")
    return {
        "layout_version": 1,
        "issuer": {
            "kid": KEY_ID,
            "private_scalar_hex": f"{ISSUER_SCALAR:064x}",
            "public_compressed_hex": _compressed(issuer).hex(),
            "jwk": public_key_to_jwk(issuer.public_key()),
        },
        "device": {
            "private_scalar_hex": f"{DEVICE_SCALAR:064x}",
            "public_compressed_hex": _compressed(device).hex(),
        },
        "holder_ref": {
            "secret_hex": HOLDER_SECRET.hex(),
            "account_id": ACCOUNT_ID,
            "value_hex": ref.hex(),
        },
        "credential": {
            "key_id": KEY_ID,
            "ticket_id": TICKET_ID,
            "fare_product": FARE_PRODUCT,
            "not_before": NOT_BEFORE,
            "not_after": NOT_AFTER,
            "tbs_hex": tbs.hex(),
            "issuer_signature_hex": credential[61:].hex(),
            "credential_hex": credential.hex(),
        },
        "dynamic": {
            "step": STEP,
            "device_message_hex": (b"TV2" + signed_part).hex(),
            "device_signature_hex": device_signature.hex(),
            "payload_hex": payload.hex(),
            "qr_text": qr_text,
            "qr_version_m": qr_version_at_level_m(qr_text),
        },
        "fallback": {
            "step": STEP,
            "tbs_hex": fallback_tbs.hex(),
            "issuer_signature_hex": fallback[16:].hex(),
            "token_hex": fallback.hex(),
            "qr_text": fallback_text,
            "qr_version_m": qr_version_at_level_m(fallback_text),
        },
        "window": _window(STEP),
        "negative": {
            "ticket_id_flipped": {
                "qr_text": _flip(qr_text, 4, 9),
                "reason": "bad_issuer_signature",
            },
            "step_flipped": {"qr_text": _flip(qr_text, 4, 128), "reason": "bad_device_signature"},
            "device_sig_flipped": {
                "qr_text": _flip(qr_text, 4, 192),
                "reason": "bad_device_signature",
            },
            "fallback_step_flipped": {
                "qr_text": _flip(fallback_text, 4, 15),
                "reason": "bad_issuer_signature",
            },
        },
    }


def _check(vectors: dict[str, Any]) -> None:
    """The library must parse what was assembled by hand into the same values."""
    scan = parse_qr(vectors["dynamic"]["qr_text"])
    assert isinstance(scan, DynamicQR)
    assert scan.credential.raw.hex() == vectors["credential"]["credential_hex"]
    assert scan.credential.fields.to_bytes().hex() == vectors["credential"]["tbs_hex"]
    assert scan.step == vectors["dynamic"]["step"]
    token = parse_qr(vectors["fallback"]["qr_text"])
    assert isinstance(token, FallbackToken)
    assert token.raw.hex() == vectors["fallback"]["token_hex"]


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts to ``a.b.c`` keys with string values (lists are left out)."""
    flat: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
    elif not isinstance(value, list):
        flat[prefix.rstrip(".")] = str(value)
    return flat


def markdown(vectors: dict[str, Any]) -> str:
    """The blocks pasted into docs/TICKET_FORMAT.md (the unit test compares them)."""
    lines = ["```"]
    lines += [f'{key} = "{value}"' for key, value in flatten(vectors).items()]
    lines += [
        "```",
        "",
        "| now | step | 30·step − now | decision | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {row['now']} | {row['step']} | {row['lead']} | {row['decision']} | {row['reason']} |"
        for row in vectors["window"]
    ]
    return "\n".join(lines)


def main() -> None:
    vectors = build_vectors()
    _check(vectors)
    if "--markdown" in sys.argv[1:]:
        print(markdown(vectors))
        return
    OUTPUT.write_text(json.dumps(vectors, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
