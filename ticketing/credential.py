"""TV2 dynamic-QR transit credentials and TVF fallback tokens: the byte layout (SPEC §6, §13).

A pure rule module: no Flask, no database, no clock. Layout version 1, all integers big-endian:

    credential TBS (61 B) = version u8 | key id u8 | ticket id u64 | fare product u16
                            | not_before u32 | not_after u32 | holder ref 8 B | device key 33 B
    credential (125 B)    = TBS | issuer signature 64 B (ECDSA P-256 SHA-256, raw r‖s, over TBS)
    dynamic QR (193 B)    = credential | step u32 | device signature 64 B over b"TV2" ‖ cred ‖ step
    fallback (80 B)       = version u8 | key id u8 | ticket id u64 | fare product u16 | step u32
                            | issuer signature 64 B over the first 16 bytes

The QR text is ``TV2:`` (or ``TVF:``) followed by the Base45 (RFC 9285) encoding of those bytes.
docs/TICKET_FORMAT.md is the contract for gate vendors; change both together.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

import base45
import qrcode
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

LAYOUT_VERSION = 1
STEP_SECONDS = 30
MAX_CREDENTIAL_LIFETIME = 72 * 3600
DYNAMIC_PREFIX = "TV2:"
FALLBACK_PREFIX = "TVF:"
DEVICE_DOMAIN = b"TV2"

TBS_LENGTH = 61
SIGNATURE_LENGTH = 64
CREDENTIAL_LENGTH = TBS_LENGTH + SIGNATURE_LENGTH  # 125
STEP_LENGTH = 4
DYNAMIC_LENGTH = CREDENTIAL_LENGTH + STEP_LENGTH + SIGNATURE_LENGTH  # 193
FALLBACK_TBS_LENGTH = 16
FALLBACK_LENGTH = FALLBACK_TBS_LENGTH + SIGNATURE_LENGTH  # 80
HOLDER_REF_LENGTH = 8
DEVICE_KEY_LENGTH = 33

MAX_TICKET_ID = 2**63 - 1
MAX_FARE_PRODUCT = 0xFFFF
MAX_U32 = 0xFFFFFFFF
MAX_U8 = 0xFF

_TBS = struct.Struct(">BBQHII8s33s")
_FALLBACK_TBS = struct.Struct(">BBQHI")
_STEP = struct.Struct(">I")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_CURVE = ec.SECP256R1()


def _base45_length(byte_count: int) -> int:
    # RFC 9285: every 2 bytes become 3 characters, a trailing odd byte becomes 2.
    return (byte_count // 2) * 3 + (byte_count % 2) * 2


assert _TBS.size == TBS_LENGTH
assert _FALLBACK_TBS.size == FALLBACK_TBS_LENGTH


class MalformedQR(ValueError):
    """The scanned text is not a well-formed TV2 or TVF code of a known layout version."""


class InvalidCredentialFields(ValueError):
    """Fields given to build a credential or token are out of range."""


@dataclass(frozen=True, slots=True)
class CredentialFields:
    """The 61 signed bytes of a TV2 credential, as values."""

    key_id: int
    ticket_id: int
    fare_product: int
    not_before: int
    not_after: int
    holder_ref: bytes
    device_public_key: bytes
    version: int = LAYOUT_VERSION

    def to_bytes(self) -> bytes:
        """Return the 61-byte to-be-signed encoding (the issuer signs exactly these bytes)."""
        return _TBS.pack(
            self.version,
            self.key_id,
            self.ticket_id,
            self.fare_product,
            self.not_before,
            self.not_after,
            self.holder_ref,
            self.device_public_key,
        )


@dataclass(frozen=True, slots=True)
class Credential:
    """A parsed, issuer-signed credential; ``raw`` keeps the 125 bytes as scanned."""

    fields: CredentialFields
    issuer_signature: bytes
    raw: bytes

    @property
    def tbs(self) -> bytes:
        """The 61 bytes the issuer signature covers."""
        return self.raw[:TBS_LENGTH]


@dataclass(frozen=True, slots=True)
class DynamicQR:
    """A parsed ``TV2:`` code: the credential plus the phone's signature for one 30 s step."""

    credential: Credential
    step: int
    device_signature: bytes
    raw: bytes

    @property
    def device_message(self) -> bytes:
        """The bytes the device signature covers: ``b"TV2" ‖ credential ‖ step``."""
        return DEVICE_DOMAIN + self.raw[: CREDENTIAL_LENGTH + STEP_LENGTH]


@dataclass(frozen=True, slots=True)
class FallbackToken:
    """A parsed ``TVF:`` code: one issuer-signed token per 30 s step, no device key."""

    version: int
    key_id: int
    ticket_id: int
    fare_product: int
    step: int
    issuer_signature: bytes
    raw: bytes

    @property
    def tbs(self) -> bytes:
        """The 16 bytes the issuer signature covers."""
        return self.raw[:FALLBACK_TBS_LENGTH]


# --- keys and signatures -------------------------------------------------------------------------


def compress_public_key(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Return the 33-byte SEC1 compressed point of a P-256 public key."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise InvalidCredentialFields("device and issuer keys must be P-256")
    return public_key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def decompress_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """Load a 33-byte compressed P-256 point; raises ``ValueError`` if it is not on the curve."""
    if len(data) != DEVICE_KEY_LENGTH or data[0] not in (2, 3):
        raise ValueError("not a 33-byte compressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, data)


def sign_raw(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Sign with ECDSA P-256 SHA-256 and return the 64-byte raw r‖s form (randomised)."""
    r, s = decode_dss_signature(private_key.sign(message, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Return True iff ``signature`` (raw r‖s, 64 bytes) is valid for ``message``; never raises."""
    if len(signature) != SIGNATURE_LENGTH:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def holder_ref(secret: bytes, account_id: int) -> bytes:
    """Return the opaque 8-byte holder reference: HMAC-SHA256(secret, account id u64) truncated.

    Deterministic per (secret, account) and reveals nothing about the account without the secret.
    """
    if not 0 <= account_id <= 2**64 - 1:
        raise InvalidCredentialFields("account id must fit in u64")
    digest = hmac.new(secret, account_id.to_bytes(8, "big"), hashlib.sha256).digest()
    return digest[:HOLDER_REF_LENGTH]


def step_at(unix_seconds: int) -> int:
    """Return the rotation step ``floor(unix / 30)`` for a Unix time."""
    return unix_seconds // STEP_SECONDS


# --- building (issuer and phone side) ----------------------------------------------------------


def _check_range(name: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise InvalidCredentialFields(f"{name} must be in 0..{high}, got {value}")


def build_credential(
    *,
    key_id: int,
    ticket_id: int,
    fare_product: int,
    not_before: int,
    not_after: int,
    holder_ref: bytes,
    device_public_key: bytes,
) -> CredentialFields:
    """Validate and return credential fields for layout version 1.

    Guarantees every field fits its slot, ``not_before <= not_after`` and the credential lives at
    most 72 h; the caller still caps ``not_after`` at the product's validity.
    """
    _check_range("key_id", key_id, MAX_U8)
    _check_range("ticket_id", ticket_id, MAX_TICKET_ID)
    _check_range("fare_product", fare_product, MAX_FARE_PRODUCT)
    _check_range("not_before", not_before, MAX_U32)
    _check_range("not_after", not_after, MAX_U32)
    if not_after < not_before:
        raise InvalidCredentialFields("not_after is before not_before")
    if not_after - not_before > MAX_CREDENTIAL_LIFETIME:
        raise InvalidCredentialFields("a credential may live at most 72 h")
    if len(holder_ref) != HOLDER_REF_LENGTH:
        raise InvalidCredentialFields("holder_ref must be 8 bytes")
    try:
        decompress_public_key(device_public_key)
    except ValueError as exc:
        raise InvalidCredentialFields("device_public_key is not a compressed P-256 point") from exc
    return CredentialFields(
        key_id=key_id,
        ticket_id=ticket_id,
        fare_product=fare_product,
        not_before=not_before,
        not_after=not_after,
        holder_ref=bytes(holder_ref),
        device_public_key=bytes(device_public_key),
    )


def sign_credential(private_key: ec.EllipticCurvePrivateKey, fields: CredentialFields) -> bytes:
    """Return the 125-byte credential: the 61-byte TBS followed by the issuer's raw signature."""
    tbs = fields.to_bytes()
    return tbs + sign_raw(private_key, tbs)


def make_dynamic_qr(
    credential_bytes: bytes, device_private_key: ec.EllipticCurvePrivateKey, step: int
) -> str:
    """Return the ``TV2:`` text a phone shows for ``step`` (what the web app does in WebCrypto)."""
    if len(credential_bytes) != CREDENTIAL_LENGTH:
        raise InvalidCredentialFields("a credential is 125 bytes")
    _check_range("step", step, MAX_U32)
    signed = credential_bytes + _STEP.pack(step)
    signature = sign_raw(device_private_key, DEVICE_DOMAIN + signed)
    return DYNAMIC_PREFIX + base45.b45encode(signed + signature).decode("ascii")


def make_fallback_token(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    key_id: int,
    ticket_id: int,
    fare_product: int,
    step: int,
) -> str:
    """Return one issuer-signed ``TVF:`` token, valid only around ``step`` (same window as TV2)."""
    _check_range("key_id", key_id, MAX_U8)
    _check_range("ticket_id", ticket_id, MAX_TICKET_ID)
    _check_range("fare_product", fare_product, MAX_FARE_PRODUCT)
    _check_range("step", step, MAX_U32)
    tbs = _FALLBACK_TBS.pack(LAYOUT_VERSION, key_id, ticket_id, fare_product, step)
    token = tbs + sign_raw(private_key, tbs)
    return FALLBACK_PREFIX + base45.b45encode(token).decode("ascii")


# --- parsing (validator side) -------------------------------------------------------------------


def _decode_base45(payload: str, expected_bytes: int) -> bytes:
    """Decode exactly ``expected_bytes`` of canonical Base45, or raise ``MalformedQR``."""
    if len(payload) != _base45_length(expected_bytes):
        raise MalformedQR("payload has the wrong length")
    try:
        # Raises for characters outside the alphabet and for triples above 0xFFFF.
        data: bytes = base45.b45decode(payload)
    except ValueError as exc:
        raise MalformedQR("payload is not valid Base45") from exc
    # The base45 package forgives trailing newlines, which then shorten the output.
    if len(data) != expected_bytes:
        raise MalformedQR("payload is not canonical Base45")
    return data


def parse_credential(data: bytes) -> Credential:
    """Parse 125 credential bytes; raises ``MalformedQR`` on a bad length, version or key prefix.

    Signatures are not checked here; a validator checks them in the order of SPEC §13.
    """
    if len(data) != CREDENTIAL_LENGTH:
        raise MalformedQR("a credential is 125 bytes")
    version, kid, ticket, product, not_before, not_after, ref, device_key = _TBS.unpack_from(data)
    if version != LAYOUT_VERSION:
        raise MalformedQR(f"unknown layout version {version}")
    if ticket > MAX_TICKET_ID:
        raise MalformedQR("ticket id out of range")
    if device_key[0] not in (2, 3):
        raise MalformedQR("device key is not a compressed point")
    fields = CredentialFields(kid, ticket, product, not_before, not_after, ref, device_key, version)
    return Credential(fields=fields, issuer_signature=data[TBS_LENGTH:], raw=data)


def _parse_dynamic(payload: str) -> DynamicQR:
    data = _decode_base45(payload, DYNAMIC_LENGTH)
    credential = parse_credential(data[:CREDENTIAL_LENGTH])
    (step,) = _STEP.unpack_from(data, CREDENTIAL_LENGTH)
    signature = data[CREDENTIAL_LENGTH + STEP_LENGTH :]
    return DynamicQR(credential=credential, step=step, device_signature=signature, raw=data)


def _parse_fallback(payload: str) -> FallbackToken:
    data = _decode_base45(payload, FALLBACK_LENGTH)
    version, kid, ticket, product, step = _FALLBACK_TBS.unpack_from(data)
    if version != LAYOUT_VERSION:
        raise MalformedQR(f"unknown layout version {version}")
    if ticket > MAX_TICKET_ID:
        raise MalformedQR("ticket id out of range")
    return FallbackToken(
        version=version,
        key_id=kid,
        ticket_id=ticket,
        fare_product=product,
        step=step,
        issuer_signature=data[FALLBACK_TBS_LENGTH:],
        raw=data,
    )


def parse_qr(text: str) -> DynamicQR | FallbackToken:
    """Parse scanned text into a ``DynamicQR`` (``TV2:``) or ``FallbackToken`` (``TVF:``).

    Checks structure only (prefix, canonical Base45, length, layout version); raises
    ``MalformedQR`` for anything else and never any other exception for a ``str`` input.
    """
    if text.startswith(DYNAMIC_PREFIX):
        return _parse_dynamic(text[len(DYNAMIC_PREFIX) :])
    if text.startswith(FALLBACK_PREFIX):
        return _parse_fallback(text[len(FALLBACK_PREFIX) :])
    raise MalformedQR("unknown prefix")


def qr_version_at_level_m(text: str) -> int:
    """Return the smallest QR version (1–40) that holds ``text`` at error-correction level M."""
    code = qrcode.QRCode(version=None, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    version: int = code.version
    return version
