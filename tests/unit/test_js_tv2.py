"""The phone side of the TV2 credential (ticketing/static/ticketing/tv2.js and base45.js).

Node's WebCrypto is the same API a browser has, so the driver makes a real device key and QR
text; this side checks them with independent code: the `base45` package and `cryptography`.
"""

import json
import os
import random
import shutil
import subprocess
from base64 import b64decode
from pathlib import Path

import base45
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "unit" / "js" / "tv2_driver.mjs"
CREDENTIAL_LENGTH = 125
PAYLOAD_LENGTH = 193  # credential 125 + step 4 + device signature 64
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def require_node() -> str:
    node = shutil.which("node")
    if node is None:
        message = "Node.js (`node`) is not installed; the page's JavaScript cannot be run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node


def run_driver(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_node(), str(DRIVER), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def driver_json(*args: str):
    return json.loads(run_driver(*args).stdout)


def make_qr(credential: bytes, step: int) -> tuple[ec.EllipticCurvePublicKey, bytes, dict]:
    """Run the phone side; return the device public key, the decoded payload and the raw reply."""
    reply = driver_json("qr", credential.hex(), str(step))
    compressed = b64decode(reply["public_key_b64"])
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), compressed)
    assert reply["qr_text"].startswith("TV2:")
    payload = base45.b45decode(reply["qr_text"].removeprefix("TV2:"))
    return public_key, payload, reply


def verify_device_signature(public_key, credential: bytes, step: int, raw_signature: bytes):
    # WebCrypto gives raw r‖s; cryptography wants DER, hence encode_dss_signature.
    r = int.from_bytes(raw_signature[:32], "big")
    s = int.from_bytes(raw_signature[32:], "big")
    message = b"TV2" + credential + step.to_bytes(4, "big")
    public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


@pytest.fixture
def credential() -> bytes:
    return random.Random(125).randbytes(CREDENTIAL_LENGTH)


@pytest.mark.parametrize("step", [0, 56_666_666, 2**32 - 1])
def test_qr_text_round_trips_credential_step_and_device_signature(credential, step):
    public_key, payload, reply = make_qr(credential, step)

    assert len(payload) == PAYLOAD_LENGTH
    assert payload[:CREDENTIAL_LENGTH] == credential
    assert int.from_bytes(payload[125:129], "big") == step
    verify_device_signature(public_key, credential, step, payload[129:])
    assert set(reply["qr_text"]) <= QR_ALPHANUMERIC


def test_signature_does_not_verify_for_another_step_or_credential(credential):
    public_key, payload, _ = make_qr(credential, 1000)
    with pytest.raises(InvalidSignature):
        verify_device_signature(public_key, credential, 1001, payload[129:])
    tampered = bytes([credential[0] ^ 1]) + credential[1:]
    with pytest.raises(InvalidSignature):
        verify_device_signature(public_key, tampered, 1000, payload[129:])


def test_public_key_is_33_byte_compressed_point_of_a_non_extractable_pair(credential):
    public_key, _, reply = make_qr(credential, 1)
    compressed = b64decode(reply["public_key_b64"])

    assert len(compressed) == 33 and compressed[0] in (0x02, 0x03)
    # Re-compressing the decompressed point gives the same bytes: parity byte and X are right.
    recompressed = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert recompressed == compressed
    assert reply["private_key_extractable"] is False


@pytest.mark.parametrize("length", [124, 126])
def test_wrong_credential_length_is_refused(length):
    completed = run_driver("qr", "00" * length, "1", check=False)
    assert completed.returncode != 0
    assert f"credential must be 125 bytes, got {length}" in completed.stderr


@pytest.mark.parametrize("step", ["-1", "4294967296", "1.5"])
def test_step_outside_u32_is_refused(credential, step):
    completed = run_driver("qr", credential.hex(), step, check=False)
    assert completed.returncode != 0
    assert "is not a u32" in completed.stderr


def test_base45_matches_the_python_package():
    rng = random.Random(45)
    inputs = [b"", b"\x00", b"\xff", b"\xff\xff", b"AB", b"ietf!", bytes(range(256))]
    inputs += [rng.randbytes(rng.randint(1, 300)) for _ in range(40)]
    encoded = driver_json("base45", *(data.hex() for data in inputs))
    assert encoded == [base45.b45encode(data).decode("ascii") for data in inputs]


def test_base45_rfc_9285_examples():
    assert driver_json("base45", b"AB".hex(), b"Hello!!".hex(), b"base-45".hex()) == [
        "BB8",
        "%69 VD92EX0",
        "UJCLQE7W581",
    ]


@pytest.mark.parametrize(
    ("offset_ms", "now_ms", "step"),
    [
        (0, 0, 0),
        (0, 29_999, 0),
        (0, 30_000, 1),
        (1, 29_999, 1),  # the server's clock is ahead: the phone moves to the next step early
        (-1, 30_000, 0),
        (0, 1_700_000_000_000, 56_666_666),
        (-90_000, 1_700_000_000_000, 56_666_663),
    ],
)
def test_current_step_uses_server_corrected_time(offset_ms, now_ms, step):
    assert driver_json("step", str(offset_ms), str(now_ms)) == step


def test_device_key_is_created_once_and_reused_from_indexeddb():
    # Two tabs racing on a fresh browser, then a later load, against an in-memory IndexedDB.
    reply = driver_json("idb")
    assert len(set(reply["public_keys"])) == 1
    assert reply["private_key_extractable"] is False
    # Both racing tabs tried to store a key; the loser re-read the winner's instead.
    assert reply["stored"] == {"cashless/keys": {"keys": ["device"], "add_calls": 2}}
