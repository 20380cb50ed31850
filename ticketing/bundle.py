"""The signed validation bundle offline gates download (SPEC §6, §13 "Validation bundle").

JWS compact serialisation, ES256, signed by the dedicated bundle key. Payload:

    {version, issued_at, expires_at,
     keys: [{kid, jwk, not_before, not_after}], revocations: [{ticket_id, until[, device_key]}],
     next_since, products: [{id, kind, mode, routes, passback_seconds}],
     validators: [{id, mode, route, station, lat, lon}]}

A pure rule module: no Flask, no database, no clock. ``build_bundle_payload`` (server) and
``verify_bundle`` (gate) are the two ends of the same shape; docs/ describes it for gate vendors.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ticketing.credential import DEVICE_KEY_LENGTH, MAX_TICKET_ID, MAX_U8
from ticketing.validation import (
    DEFAULT_PASSBACK_SECONDS,
    IssuerKey,
    KeyRing,
    Mode,
    ProductKind,
    ProductRule,
    Revocation,
    RevocationList,
    ValidationRules,
    ValidatorInfo,
)

BUNDLE_ALGORITHM = "ES256"
_E = TypeVar("_E", Mode, ProductKind)
_T = TypeVar("_T")
_K = TypeVar("_K")
_P256_COORDINATE_BYTES = 32


class BundleError(Exception):
    """The bundle cannot be trusted or used: bad signature, wrong key, bad shape or expired."""


class BundleExpired(BundleError):
    """The bundle verified but its ``expires_at`` has passed; fetch a fresh one."""


# --- JWK ---------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BundleError("bad base64url in JWK") from exc


def public_key_to_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """Return the RFC 7517 JWK (``kty``, ``crv``, ``x``, ``y``) of a P-256 public key."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError("only P-256 keys are used for tickets and bundles")
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(_P256_COORDINATE_BYTES, "big")),
        "y": _b64url(numbers.y.to_bytes(_P256_COORDINATE_BYTES, "big")),
    }


def public_key_from_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """Load a P-256 public JWK; raises ``BundleError`` for another key or an off-curve point."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise BundleError("key must be an EC P-256 JWK")
    if jwk.get("alg", BUNDLE_ALGORITHM) != BUNDLE_ALGORITHM:
        raise BundleError("key is not for ES256")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise BundleError("JWK lacks x or y")
    x_bytes, y_bytes = _b64url_decode(x), _b64url_decode(y)
    if len(x_bytes) != _P256_COORDINATE_BYTES or len(y_bytes) != _P256_COORDINATE_BYTES:
        raise BundleError("JWK coordinates must be 32 bytes")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x_bytes, "big"), int.from_bytes(y_bytes, "big"), ec.SECP256R1()
    )
    try:
        return numbers.public_key()
    except ValueError as exc:
        raise BundleError("JWK point is not on P-256") from exc


# --- the payload -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleData:
    """A verified bundle, already converted into what ``validation`` consumes."""

    version: int
    issued_at: int
    expires_at: int
    keys: tuple[IssuerKey, ...]
    revocations: tuple[Revocation, ...]
    next_since: str | int | None
    products: Mapping[int, ProductRule]
    validators: Mapping[str, ValidatorInfo]
    payload: Mapping[str, Any] = field(repr=False, compare=False)

    def key_ring(self) -> KeyRing:
        """The issuer keys, loaded once."""
        return KeyRing(self.keys)

    def revocation_list(self) -> RevocationList:
        return RevocationList(self.revocations)

    def rules(self) -> ValidationRules:
        """Everything a decision needs except the validator and the state."""
        return ValidationRules(self.key_ring(), self.revocation_list(), self.products)


def _revocation_json(entry: Revocation) -> dict[str, Any]:
    obj: dict[str, Any] = {"ticket_id": entry.ticket_id, "until": entry.until}
    if entry.device_key is not None:
        obj["device_key"] = base64.b64encode(entry.device_key).decode("ascii")
    return obj


def build_bundle_payload(
    *,
    version: int,
    issued_at: int,
    expires_at: int,
    keys: Iterable[IssuerKey],
    revocations: Iterable[Revocation],
    products: Iterable[ProductRule],
    validators: Iterable[ValidatorInfo],
    next_since: str | int | None = None,
) -> dict[str, Any]:
    """Return the bundle payload in the exact shape ``verify_bundle`` reads (server side)."""
    return {
        "version": version,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "keys": [
            {
                "kid": key.kid,
                "jwk": public_key_to_jwk(key.public_key),
                "not_before": key.not_before,
                "not_after": key.not_after,
            }
            for key in keys
        ],
        "revocations": [_revocation_json(entry) for entry in revocations],
        "next_since": next_since,
        "products": [
            {
                "id": product.product_id,
                "kind": str(product.kind),
                "mode": str(product.mode),
                "routes": None if product.routes is None else sorted(product.routes),
                "passback_seconds": product.passback_seconds,
            }
            for product in products
        ],
        "validators": [
            {
                "id": validator.validator_id,
                "mode": str(validator.mode),
                "route": validator.route,
                "station": validator.station,
                "lat": validator.lat,
                "lon": validator.lon,
            }
            for validator in validators
        ],
    }


def _int(obj: Mapping[str, Any], name: str, high: int | None = None) -> int:
    value = obj.get(name)
    # bool is an int in Python; JSON true is never a valid id or time.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"{name} must be a non-negative integer")
    if high is not None and value > high:
        raise BundleError(f"{name} must be at most {high}")
    return value


def _optional_int(obj: Mapping[str, Any], name: str) -> int | None:
    return None if obj.get(name) is None else _int(obj, name)


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise BundleError(f"{name} must be a string or null")
    return value


def _optional_float(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BundleError(f"{name} must be a number or null")
    return float(value)


def _objects(payload: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = payload.get(name)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BundleError(f"{name} must be a list of objects")
    return items


def _enum_value(enum: type[_E], obj: Mapping[str, Any], name: str) -> _E:
    value = obj.get(name)
    if not isinstance(value, str):
        raise BundleError(f"{name} must be a string")
    try:
        return enum(value)
    except ValueError as exc:
        raise BundleError(f"unknown {name} {obj.get(name)!r}") from exc


def _parse_key(obj: Mapping[str, Any]) -> IssuerKey:
    jwk = obj.get("jwk")
    if not isinstance(jwk, dict):
        raise BundleError("keys[].jwk must be an object")
    return IssuerKey(
        kid=_int(obj, "kid", MAX_U8),
        public_key=public_key_from_jwk(jwk),
        not_before=_int(obj, "not_before"),
        not_after=_optional_int(obj, "not_after"),
    )


def _parse_revocation(obj: Mapping[str, Any]) -> Revocation:
    device_key: bytes | None = None
    encoded = _optional_str(obj, "device_key")
    if encoded is not None:
        try:
            device_key = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise BundleError("revocations[].device_key must be base64") from exc
        if len(device_key) != DEVICE_KEY_LENGTH:
            raise BundleError("revocations[].device_key must be 33 bytes")
    return Revocation(_int(obj, "ticket_id", MAX_TICKET_ID), _int(obj, "until"), device_key)


def _parse_product(obj: Mapping[str, Any]) -> ProductRule:
    routes = obj.get("routes")
    if routes is not None and (
        not isinstance(routes, list) or not all(isinstance(r, str) for r in routes)
    ):
        raise BundleError("products[].routes must be a list of strings or null")
    passback = obj.get("passback_seconds", DEFAULT_PASSBACK_SECONDS)
    return ProductRule(
        product_id=_int(obj, "id", 0xFFFF),
        kind=_enum_value(ProductKind, obj, "kind"),
        mode=_enum_value(Mode, obj, "mode"),
        routes=None if routes is None else frozenset(routes),
        passback_seconds=_int({"passback_seconds": passback}, "passback_seconds"),
    )


def _parse_validator(obj: Mapping[str, Any]) -> ValidatorInfo:
    raw_id = obj.get("id")
    # Ids are strings in the contract; integer ids from a database are accepted as their digits.
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise BundleError("validators[].id must be a non-empty string")
    return ValidatorInfo(
        validator_id=str(raw_id),
        mode=_enum_value(Mode, obj, "mode"),
        route=_optional_str(obj, "route"),
        station=_optional_str(obj, "station"),
        lat=_optional_float(obj, "lat"),
        lon=_optional_float(obj, "lon"),
    )


def _unique(items: list[_T], key_of: Callable[[_T], _K], what: str) -> dict[_K, _T]:
    by_key: dict[_K, _T] = {}
    for item in items:
        key = key_of(item)
        if key in by_key:
            raise BundleError(f"duplicate {what} {key!r}")
        by_key[key] = item
    return by_key


def parse_bundle_payload(payload: Mapping[str, Any]) -> BundleData:
    """Convert a payload (signature already checked) into typed rules; raises ``BundleError``."""
    issued_at, expires_at = _int(payload, "issued_at"), _int(payload, "expires_at")
    if expires_at < issued_at:
        raise BundleError("expires_at is before issued_at")
    keys = [_parse_key(obj) for obj in _objects(payload, "keys")]
    _unique(keys, lambda key: key.kid, "key id")
    products = [_parse_product(obj) for obj in _objects(payload, "products")]
    validators = [_parse_validator(obj) for obj in _objects(payload, "validators")]
    next_since = payload.get("next_since")
    if next_since is not None and (
        isinstance(next_since, bool) or not isinstance(next_since, str | int)
    ):
        raise BundleError("next_since must be a string, an integer or null")
    return BundleData(
        version=_int(payload, "version"),
        issued_at=issued_at,
        expires_at=expires_at,
        keys=tuple(keys),
        revocations=tuple(_parse_revocation(obj) for obj in _objects(payload, "revocations")),
        next_since=next_since,
        products=_unique(products, lambda product: product.product_id, "product id"),
        validators=_unique(validators, lambda validator: validator.validator_id, "validator id"),
        payload=payload,
    )


# --- signing and verifying ---------------------------------------------------------------------


def sign_bundle(
    payload: Mapping[str, Any], private_key: ec.EllipticCurvePrivateKey, kid: str
) -> str:
    """Return the payload as a JWS compact token, ES256, with ``kid`` in the protected header.

    The payload is serialised as compact, key-sorted JSON, so equal payloads sign equal bytes.
    """
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise ValueError("the bundle key must be P-256")
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    jws = jwt.api_jws.PyJWS(algorithms=[BUNDLE_ALGORITHM])
    return jws.encode(body, private_key, algorithm=BUNDLE_ALGORITHM, headers={"kid": kid})


def _verified_payload(token: str, public_jwk: Mapping[str, Any]) -> Mapping[str, Any]:
    key = public_key_from_jwk(public_jwk)
    # A registry holding only ES256: "none", HMAC or any header trick cannot pick another.
    jws = jwt.api_jws.PyJWS(algorithms=[BUNDLE_ALGORITHM])
    try:
        decoded = jws.decode_complete(token, key, algorithms=[BUNDLE_ALGORITHM])
    except jwt.PyJWTError as exc:
        raise BundleError(f"bundle signature does not verify: {exc}") from exc
    header, body = decoded["header"], decoded["payload"]
    expected_kid = public_jwk.get("kid")
    if expected_kid is not None and header.get("kid") != expected_kid:
        raise BundleError("bundle was signed under another key id")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError("bundle payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise BundleError("bundle payload is not a JSON object")
    return payload


def verify_bundle(token: str, public_jwk: Mapping[str, Any], now: int) -> BundleData:
    """Verify an ES256 bundle under the gate's bundle key and return its typed contents.

    Only ES256 is accepted, whatever the header says. Raises ``BundleError`` if the signature,
    key or shape is wrong and ``BundleExpired`` if ``now > expires_at``.
    """
    data = parse_bundle_payload(_verified_payload(token.strip(), public_jwk))
    if now > data.expires_at:
        raise BundleExpired(f"bundle expired at {data.expires_at}")
    return data
