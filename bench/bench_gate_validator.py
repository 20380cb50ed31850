"""Offline gate validator throughput against the floor of its own primitives, on one core.

    .venv/bin/python bench/bench_gate_validator.py [--scans 3000] [--rounds 5]

The floor is the irreducible work of one TV2 check with the same primitives: Base45 decode,
device-key decompression and two bare ECDSA P-256 verifies with `cryptography` (signatures already
in DER, so the floor does strictly less than the validator). The validator does everything else as
well: parsing, key ring, window, revocation, product and route rules, replay/passback/consumption
state and recording. Every scan is a distinct ticket on a distinct phone, so nothing is cached.
Goals: validator ≥ 0.8 × floor and ≥ 2,000 checks/s. Exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import base45
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ticketing.bundle import build_bundle_payload, public_key_to_jwk, sign_bundle
from ticketing.credential import (
    build_credential,
    compress_public_key,
    make_dynamic_qr,
    sign_credential,
)
from ticketing.gate import GateValidator
from ticketing.validation import (
    IssuerKey,
    MemoryGateState,
    Mode,
    ProductKind,
    ProductRule,
    Revocation,
    ValidatorInfo,
)

NOW = 1_764_590_400
STEP = NOW // 30
PRODUCT = 2
VALIDATOR = "bus-01-a"
GOAL_RATIO = 0.8
GOAL_CHECKS_PER_SECOND = 2000
_ECDSA = ec.ECDSA(hashes.SHA256())
_CURVE = ec.SECP256R1()


def _pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity)"


def _make_scans(issuer: ec.EllipticCurvePrivateKey, count: int) -> list[str]:
    scans = []
    for ticket_id in range(1, count + 1):
        device = ec.generate_private_key(_CURVE)
        fields = build_credential(
            key_id=1,
            ticket_id=ticket_id,
            fare_product=PRODUCT,
            not_before=NOW - 3600,
            not_after=NOW + 3600,
            holder_ref=ticket_id.to_bytes(8, "big"),
            device_public_key=compress_public_key(device.public_key()),
        )
        scans.append(make_dynamic_qr(sign_credential(issuer, fields), device, STEP))
    return scans


def _make_gate(issuer: ec.EllipticCurvePrivateKey) -> Callable[[], GateValidator]:
    bundle_key = ec.generate_private_key(_CURVE)
    retired = ec.generate_private_key(_CURVE).public_key()
    payload = build_bundle_payload(
        version=1,
        issued_at=NOW - 60,
        expires_at=NOW + 86_400,
        keys=[
            IssuerKey(0, retired, NOW - 10 * 86_400, NOW - 3 * 86_400),
            IssuerKey(1, issuer.public_key(), NOW - 86_400),
        ],
        # A realistic revocation list: a few thousand entries the scans do not hit.
        revocations=[Revocation(10**9 + i, NOW + 86_400) for i in range(5000)],
        products=[ProductRule(PRODUCT, ProductKind.DAY_PASS, Mode.BUS)],
        validators=[ValidatorInfo(VALIDATOR, Mode.BUS, route="01", lat=21.03, lon=105.85)],
    )
    token = sign_bundle(payload, bundle_key, "bundle-1")
    jwk = public_key_to_jwk(bundle_key.public_key())
    return lambda: GateValidator(token, jwk, MemoryGateState(), now=NOW)


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _floor_inputs(scans: list[str]) -> list[tuple[str, bytes, bytes]]:
    inputs = []
    for text in scans:
        data = base45.b45decode(text[4:])
        inputs.append((text[4:], _der(data[61:125]), _der(data[129:193])))
    return inputs


def _time_floor(
    issuer_public: ec.EllipticCurvePublicKey, inputs: list[tuple[str, bytes, bytes]]
) -> float:
    started = time.perf_counter()
    for payload, issuer_der, device_der in inputs:
        data = base45.b45decode(payload)
        device = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, data[28:61])
        issuer_public.verify(issuer_der, data[:61], _ECDSA)
        device.verify(device_der, b"TV2" + data[:129], _ECDSA)
    return time.perf_counter() - started


def _time_gate(
    new_gate: Callable[[], GateValidator], scans: list[str]
) -> tuple[float, list[float]]:
    gate = new_gate()  # a fresh state each round, so every scan is a first accept
    latencies = []
    started = time.perf_counter()
    for text in scans:
        t0 = time.perf_counter()
        decision = gate.validate(text, VALIDATOR, NOW)
        latencies.append(time.perf_counter() - t0)
        if not decision.accepted:
            raise SystemExit(f"benchmark scan denied: {decision}")
    return time.perf_counter() - started, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pinning = _pin_to_one_core()
    issuer = ec.generate_private_key(_CURVE)
    scans = _make_scans(issuer, args.scans)
    new_gate = _make_gate(issuer)
    inputs = _floor_inputs(scans)
    floor_times, gate_times, latencies = [], [], []
    for _ in range(args.rounds):  # interleaved, so both see the same machine conditions
        floor_times.append(_time_floor(issuer.public_key(), inputs))
        elapsed, round_latencies = _time_gate(new_gate, scans)
        gate_times.append(elapsed)
        latencies.extend(round_latencies)
    floor_rate = args.scans / min(floor_times)
    gate_rate = args.scans / min(gate_times)
    ratio = gate_rate / floor_rate
    p50 = statistics.median(latencies) * 1e3
    p99 = statistics.quantiles(latencies, n=100)[98] * 1e3
    ok = ratio >= GOAL_RATIO and gate_rate >= GOAL_CHECKS_PER_SECOND
    print(f"TV2 offline validation, {args.scans} distinct scans x {args.rounds} rounds, {pinning}")
    print(f"{'':34}{'checks/s':>10}{'us/check':>10}")
    print(
        f"{'floor (b45 + decompress + 2 verify)':34}{floor_rate:>10,.0f}{1e6 / floor_rate:>10.1f}"
    )
    print(f"{'GateValidator.validate':34}{gate_rate:>10,.0f}{1e6 / gate_rate:>10.1f}")
    print(f"{'ratio validator / floor':34}{ratio:>10.2f}   goal >= {GOAL_RATIO}")
    print(f"{'validator latency p50 / p99 (ms)':34}{p50:>10.3f}{p99:>10.3f}")
    verdict = "PASS" if ok else "FAIL"
    print(f"goal >= {GOAL_CHECKS_PER_SECOND:,} checks/s and >= {GOAL_RATIO}x floor: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
