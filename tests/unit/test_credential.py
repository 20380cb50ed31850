"""TV2/TVF byte layout: test vectors, round trips, strict parsing and QR sizes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import base45
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing.credential import (
    CREDENTIAL_LENGTH,
    DYNAMIC_LENGTH,
    FALLBACK_LENGTH,
    MAX_TICKET_ID,
    DynamicQR,
    FallbackToken,
    InvalidCredentialFields,
    MalformedQR,
    build_credential,
    compress_public_key,
    decompress_public_key,
    holder_ref,
    make_dynamic_qr,
    make_fallback_token,
    parse_credential,
    parse_qr,
    qr_version_at_level_m,
    sign_credential,
    step_at,
    verify_raw,
)

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "ticket_vectors.json").read_text(encoding="utf-8"))
DOC = Path(__file__).parents[2] / "docs" / "TICKET_FORMAT.md"

ISSUER = ec.generate_private_key(ec.SECP256R1())
DEVICE = ec.generate_private_key(ec.SECP256R1())
DEVICE_KEY = compress_public_key(DEVICE.public_key())


def _load_vector_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_ticket_vectors", DATA / "make_ticket_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fields(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "key_id": 1,
        "ticket_id": 77,
        "fare_product": 3,
        "not_before": 1_764_547_200,
        "not_after": 1_764_547_200 + 3600,
        "holder_ref": b"\x00" * 8,
        "device_public_key": DEVICE_KEY,
    }
    values.update(overrides)
    return build_credential(**values)


def _private(hex_scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


# --- vectors -----------------------------------------------------------------------------------


def test_tbs_layout_matches_vector() -> None:
    cred = VECTORS["credential"]
    device = _private(VECTORS["device"]["private_scalar_hex"])
    fields = build_credential(
        key_id=cred["key_id"],
        ticket_id=cred["ticket_id"],
        fare_product=cred["fare_product"],
        not_before=cred["not_before"],
        not_after=cred["not_after"],
        holder_ref=bytes.fromhex(VECTORS["holder_ref"]["value_hex"]),
        device_public_key=compress_public_key(device.public_key()),
    )
    assert fields.to_bytes().hex() == cred["tbs_hex"]
    assert len(fields.to_bytes()) == 61


def test_holder_ref_matches_vector() -> None:
    vector = VECTORS["holder_ref"]
    ref = holder_ref(bytes.fromhex(vector["secret_hex"]), vector["account_id"])
    assert ref.hex() == vector["value_hex"]


def test_vector_keys_match_their_scalars() -> None:
    issuer = _private(VECTORS["issuer"]["private_scalar_hex"])
    device = _private(VECTORS["device"]["private_scalar_hex"])
    assert (
        compress_public_key(issuer.public_key()).hex() == VECTORS["issuer"]["public_compressed_hex"]
    )
    assert (
        compress_public_key(device.public_key()).hex() == VECTORS["device"]["public_compressed_hex"]
    )


def test_vector_signatures_verify_as_a_vendor_would() -> None:
    issuer_key = decompress_public_key(bytes.fromhex(VECTORS["issuer"]["public_compressed_hex"]))
    scan = parse_qr(VECTORS["dynamic"]["qr_text"])
    assert isinstance(scan, DynamicQR)
    assert scan.raw.hex() == VECTORS["dynamic"]["payload_hex"]
    assert verify_raw(issuer_key, scan.credential.issuer_signature, scan.credential.tbs)
    device_key = decompress_public_key(scan.credential.fields.device_public_key)
    assert scan.device_message.hex() == VECTORS["dynamic"]["device_message_hex"]
    assert verify_raw(device_key, scan.device_signature, scan.device_message)
    token = parse_qr(VECTORS["fallback"]["qr_text"])
    assert isinstance(token, FallbackToken)
    assert verify_raw(issuer_key, token.issuer_signature, token.tbs)


def test_vectors_are_reproducible_from_the_script() -> None:
    assert _load_vector_script().build_vectors() == VECTORS


def test_doc_quotes_every_vector_value() -> None:
    doc = DOC.read_text(encoding="utf-8")
    quoted = dict(re.findall(r'^([a-z_][a-z0-9_.]*) = "(.*)"$', doc, flags=re.MULTILINE))
    expected = _load_vector_script().flatten(VECTORS)
    assert quoted == expected


def test_doc_window_table_matches_vectors() -> None:
    doc = DOC.read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (\d+) \| (\d+) \| (-?\d+) \| (accept|deny) \| ([a-z_]+) \|$", doc, flags=re.MULTILINE
    )
    expected = [
        (str(r["now"]), str(r["step"]), str(r["lead"]), r["decision"], r["reason"])
        for r in VECTORS["window"]
    ]
    assert rows == expected


# --- round trips -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    key_id=st.integers(0, 255),
    ticket_id=st.integers(0, MAX_TICKET_ID),
    fare_product=st.integers(0, 0xFFFF),
    not_before=st.integers(0, 0xFFFFFFFF - 72 * 3600),
    lifetime=st.integers(0, 72 * 3600),
    ref=st.binary(min_size=8, max_size=8),
    step=st.integers(0, 0xFFFFFFFF),
)
def test_dynamic_qr_round_trips(
    key_id: int,
    ticket_id: int,
    fare_product: int,
    not_before: int,
    lifetime: int,
    ref: bytes,
    step: int,
) -> None:
    fields = _fields(
        key_id=key_id,
        ticket_id=ticket_id,
        fare_product=fare_product,
        not_before=not_before,
        not_after=not_before + lifetime,
        holder_ref=ref,
    )
    credential = sign_credential(ISSUER, fields)
    assert len(credential) == CREDENTIAL_LENGTH
    scan = parse_qr(make_dynamic_qr(credential, DEVICE, step))
    assert isinstance(scan, DynamicQR)
    assert scan.credential.fields == fields
    assert scan.step == step
    assert len(scan.raw) == DYNAMIC_LENGTH
    assert verify_raw(ISSUER.public_key(), scan.credential.issuer_signature, scan.credential.tbs)
    assert verify_raw(DEVICE.public_key(), scan.device_signature, scan.device_message)


@settings(max_examples=30, deadline=None)
@given(
    key_id=st.integers(0, 255),
    ticket_id=st.integers(0, MAX_TICKET_ID),
    fare_product=st.integers(0, 0xFFFF),
    step=st.integers(0, 0xFFFFFFFF),
)
def test_fallback_token_round_trips(
    key_id: int, ticket_id: int, fare_product: int, step: int
) -> None:
    text = make_fallback_token(
        ISSUER, key_id=key_id, ticket_id=ticket_id, fare_product=fare_product, step=step
    )
    token = parse_qr(text)
    assert isinstance(token, FallbackToken)
    assert (token.key_id, token.ticket_id, token.fare_product, token.step) == (
        key_id,
        ticket_id,
        fare_product,
        step,
    )
    assert len(token.raw) == FALLBACK_LENGTH
    assert verify_raw(ISSUER.public_key(), token.issuer_signature, token.tbs)


def test_public_key_compression_round_trips() -> None:
    restored = decompress_public_key(DEVICE_KEY)
    assert restored.public_numbers() == DEVICE.public_key().public_numbers()
    assert len(DEVICE_KEY) == 33 and DEVICE_KEY[0] in (2, 3)


@pytest.mark.parametrize(
    "data", [b"\x02" + b"\xff" * 32, b"\x04" + b"\x01" * 32, b"\x02" * 32, b""]
)
def test_decompress_rejects_bad_points(data: bytes) -> None:
    with pytest.raises(ValueError):
        decompress_public_key(data)


def test_holder_ref_is_keyed_and_8_bytes() -> None:
    assert len(holder_ref(b"k", 1)) == 8
    assert holder_ref(b"k", 1) != holder_ref(b"k", 2)
    assert holder_ref(b"k", 1) != holder_ref(b"other", 1)


def test_step_is_floor_of_unix_over_30() -> None:
    assert step_at(0) == 0
    assert step_at(29) == 0
    assert step_at(30) == 1
    assert step_at(1_764_590_400) == 58_819_680


# --- building rejects what does not fit ------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"key_id": 256},
        {"ticket_id": 2**63},
        {"ticket_id": -1},
        {"fare_product": 65_536},
        {"not_before": 10, "not_after": 9},
        {"not_before": 0, "not_after": 72 * 3600 + 1},
        {"not_after": 2**32},
        {"holder_ref": b"\x00" * 7},
        {"device_public_key": b"\x02" + b"\xff" * 32},
        {"device_public_key": b"\x04" + b"\x00" * 64},
    ],
)
def test_build_credential_rejects_out_of_range(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidCredentialFields):
        _fields(**overrides)


def test_make_dynamic_qr_rejects_wrong_credential_length() -> None:
    with pytest.raises(InvalidCredentialFields):
        make_dynamic_qr(b"\x01" * 124, DEVICE, 1)


# --- strict parsing --------------------------------------------------------------------------


def _good_text() -> str:
    return make_dynamic_qr(sign_credential(ISSUER, _fields()), DEVICE, 58_819_680)


def _with_payload(data: bytes, prefix: str = "TV2:") -> str:
    return prefix + base45.b45encode(data).decode("ascii")


def _payload(text: str) -> bytearray:
    return bytearray(base45.b45decode(text[4:]))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "TV3:" + t[4:], id="unknown-prefix"),
        pytest.param(lambda t: "tv2:" + t[4:], id="lower-case-prefix"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: t[:-2] + "\n\n", id="newlines-replacing-the-tail"),
        pytest.param(lambda t: t[:-1], id="truncated"),
        pytest.param(lambda t: t + "00", id="one-byte-too-long"),
        pytest.param(lambda t: t[:10] + "a" + t[11:], id="lower-case-base45"),
        pytest.param(lambda t: t[:4] + ":::" + t[7:], id="triple-above-ffff"),
        pytest.param(lambda t: "TVF:" + t[4:], id="dynamic-payload-as-fallback"),
    ],
)
def test_parse_rejects_malformed_text(mutate: Any) -> None:
    with pytest.raises(MalformedQR):
        parse_qr(mutate(_good_text()))


def test_parse_rejects_unknown_layout_version() -> None:
    data = _payload(_good_text())
    data[0] = 2
    with pytest.raises(MalformedQR, match="version"):
        parse_qr(_with_payload(bytes(data)))


def test_parse_rejects_ticket_id_with_top_bit() -> None:
    data = _payload(_good_text())
    data[2] |= 0x80
    with pytest.raises(MalformedQR):
        parse_qr(_with_payload(bytes(data)))


def test_parse_rejects_uncompressed_device_key_prefix() -> None:
    data = _payload(_good_text())
    data[28] = 0x04
    with pytest.raises(MalformedQR):
        parse_qr(_with_payload(bytes(data)))


def test_parse_credential_rejects_wrong_length() -> None:
    with pytest.raises(MalformedQR):
        parse_credential(b"\x01" * 124)


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=400))
def test_parse_raises_only_malformed_for_any_text(text: str) -> None:
    try:
        parse_qr(text)
    except MalformedQR:
        pass


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=193, max_size=193), prefix=st.sampled_from(["TV2:", "TVF:"]))
def test_parse_raises_only_malformed_for_any_payload(data: bytes, prefix: str) -> None:
    try:
        scan = parse_qr(_with_payload(data if prefix == "TV2:" else data[:80], prefix))
    except MalformedQR:
        return
    assert isinstance(scan, DynamicQR | FallbackToken)


# --- QR size -------------------------------------------------------------------------------------


def test_tv2_text_fits_qr_version_10_at_level_m() -> None:
    fields = _fields(
        ticket_id=MAX_TICKET_ID, fare_product=0xFFFF, not_before=2**32 - 3600, not_after=2**32 - 1
    )
    text = make_dynamic_qr(sign_credential(ISSUER, fields), DEVICE, 2**32 - 1)
    assert len(text) == 4 + 290
    assert qr_version_at_level_m(text) <= 10


def test_tvf_text_fits_qr_version_6_at_level_m() -> None:
    text = make_fallback_token(
        ISSUER, key_id=255, ticket_id=MAX_TICKET_ID, fare_product=0xFFFF, step=2**32 - 1
    )
    assert len(text) == 4 + 120
    assert qr_version_at_level_m(text) <= 6


def test_vector_texts_report_their_qr_versions() -> None:
    assert (
        qr_version_at_level_m(VECTORS["dynamic"]["qr_text"]) == VECTORS["dynamic"]["qr_version_m"]
    )
    assert VECTORS["dynamic"]["qr_version_m"] <= 10
    assert VECTORS["fallback"]["qr_version_m"] <= 6
