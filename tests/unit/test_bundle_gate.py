"""The signed validation bundle, the offline GateValidator, its file state and its CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_validation import (
    BUS_01,
    BUS_01_B,
    DAY_BUS,
    METRO_S1,
    NOW,
    SINGLE_BUS,
    STEP,
    World,
)
from ticketing.bundle import (
    BundleError,
    BundleExpired,
    build_bundle_payload,
    parse_bundle_payload,
    public_key_from_jwk,
    public_key_to_jwk,
    sign_bundle,
    verify_bundle,
)
from ticketing.credential import decompress_public_key
from ticketing.gate import FileGateState, GateStateError, GateValidator
from ticketing.gate_cli import gate_validate
from ticketing.validation import (
    IssuerKey,
    MemoryGateState,
    Mode,
    ProductKind,
    ProductRule,
    Reason,
    Revocation,
    ValidatorInfo,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "ticket_vectors.json").read_text(encoding="utf-8")
)
BUNDLE_KEY = ec.generate_private_key(ec.SECP256R1())
BUNDLE_JWK = public_key_to_jwk(BUNDLE_KEY.public_key())


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _payload(world: World, **overrides: Any) -> dict[str, Any]:
    payload = build_bundle_payload(
        version=7,
        issued_at=NOW - 3600,
        expires_at=NOW + 86_400,
        keys=world.keys(),
        revocations=[Revocation(4242, NOW + 3600), Revocation(4343, NOW + 3600, b"\x02" * 33)],
        products=world.products().values(),
        validators=[BUS_01, BUS_01_B, METRO_S1],
        next_since="c-123",
    )
    payload.update(overrides)
    return payload


def _token(world: World, **overrides: Any) -> str:
    return sign_bundle(_payload(world, **overrides), BUNDLE_KEY, "bundle-1")


# --- bundle ------------------------------------------------------------------------------------


def test_bundle_round_trips_into_rules(world: World) -> None:
    data = verify_bundle(_token(world), BUNDLE_JWK, NOW)
    assert (data.version, data.next_since, data.expires_at) == (7, "c-123", NOW + 86_400)
    assert [key.kid for key in data.keys] == [1, 2]
    assert data.products == world.products()
    assert data.validators["bus-01-a"] == BUS_01
    assert data.revocations[1].device_key == b"\x02" * 33
    rules = data.rules()
    assert rules.revocations.is_revoked(4242, None, NOW)
    assert rules.keys.lookup(1, NOW) is not None and rules.keys.lookup(2, NOW) is None


def test_bundle_header_is_es256_with_kid(world: World) -> None:
    header = jwt.get_unverified_header(_token(world))
    assert header["alg"] == "ES256" and header["kid"] == "bundle-1"


def test_bundle_payload_is_plain_json(world: World) -> None:
    body = _token(world).split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["keys"][0]["kid"] == 1
    assert payload["keys"][0]["jwk"]["crv"] == "P-256"
    assert payload["revocations"][0] == {"ticket_id": 4242, "until": NOW + 3600}


def test_jwk_round_trips(world: World) -> None:
    jwk = public_key_to_jwk(world.issuer.public_key())
    assert public_key_from_jwk(jwk).public_numbers() == world.issuer.public_key().public_numbers()
    vector_key = decompress_public_key(bytes.fromhex(VECTORS["issuer"]["public_compressed_hex"]))
    assert public_key_to_jwk(vector_key) == VECTORS["issuer"]["jwk"]


def test_bundle_under_another_key_is_rejected(world: World) -> None:
    other = public_key_to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(_token(world), other, NOW)


def test_tampered_bundle_is_rejected(world: World) -> None:
    header, _body, signature = _token(world).split(".")
    forged = json.dumps(_payload(world, revocations=[])).encode()
    forged_body = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(BundleError):
        verify_bundle(f"{header}.{forged_body}.{signature}", BUNDLE_JWK, NOW)


def test_expired_bundle_is_rejected(world: World) -> None:
    token = _token(world)
    assert verify_bundle(token, BUNDLE_JWK, NOW + 86_400)
    with pytest.raises(BundleExpired):
        verify_bundle(token, BUNDLE_JWK, NOW + 86_401)


@pytest.mark.parametrize("algorithm", ["HS256", "none", "ES384"])
def test_only_es256_is_accepted(world: World, algorithm: str) -> None:
    if algorithm == "HS256":
        token = jwt.encode(_payload(world), "secret-secret-secret-secret-32by", algorithm="HS256")
    elif algorithm == "none":
        token = jwt.encode(_payload(world), "", algorithm="none")
    else:
        token = jwt.encode(
            _payload(world), ec.generate_private_key(ec.SECP384R1()), algorithm="ES384"
        )
    with pytest.raises(BundleError):
        verify_bundle(token, BUNDLE_JWK, NOW)


def test_kid_of_the_gate_key_must_match(world: World) -> None:
    assert verify_bundle(_token(world), {**BUNDLE_JWK, "kid": "bundle-1"}, NOW)
    with pytest.raises(BundleError, match="key id"):
        verify_bundle(_token(world), {**BUNDLE_JWK, "kid": "bundle-2"}, NOW)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "x", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "", "y": ""},
        {"kty": "EC", "crv": "P-256"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43},
    ],
)
def test_bad_gate_keys_are_rejected(world: World, jwk: dict[str, str]) -> None:
    with pytest.raises(BundleError):
        verify_bundle(_token(world), jwk, NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": True},
        {"expires_at": NOW - 7200},
        {"keys": "none"},
        {"keys": [{"kid": 300, "jwk": {}, "not_before": 0}]},
        {"revocations": [{"ticket_id": 2**63, "until": 0}]},
        {"revocations": [{"ticket_id": 1, "until": 0, "device_key": "AAAA"}]},
        {"products": [{"id": 1, "kind": "season", "mode": "bus", "routes": None}]},
        {"products": [{"id": 1, "kind": "day_pass", "mode": "bus", "routes": "01"}]},
        {"products": [{"id": 1, "kind": "day_pass", "mode": "bus"}] * 2},
        {"validators": [{"id": "", "mode": "bus"}]},
        {"validators": [{"id": "a", "mode": "tram"}]},
        {"next_since": 1.5},
    ],
)
def test_bundle_shape_is_checked(world: World, overrides: dict[str, Any]) -> None:
    with pytest.raises(BundleError):
        parse_bundle_payload(_payload(world, **overrides))


@settings(max_examples=30, deadline=None)
@given(garbage=st.text(max_size=200))
def test_garbage_bundle_raises_only_bundle_error(garbage: str) -> None:
    with pytest.raises(BundleError):
        verify_bundle(garbage, BUNDLE_JWK, NOW)


# --- the offline validator -----------------------------------------------------------------------


def test_gate_accepts_then_refuses_the_replay(world: World) -> None:
    gate = GateValidator(_token(world), BUNDLE_JWK, MemoryGateState(), now=NOW)
    text = world.qr(product=SINGLE_BUS, ticket_id=9100)
    assert gate.validate(text, "bus-01-a", NOW).reason is Reason.OK
    assert gate.validate(text, "bus-01-a", NOW + 3).reason is Reason.CONSUMED


def test_gate_denies_unlisted_validator(world: World) -> None:
    gate = GateValidator(_token(world), BUNDLE_JWK, MemoryGateState(), now=NOW)
    assert gate.validate(world.qr(), "bus-99", NOW).reason is Reason.VALIDATOR_UNKNOWN


def test_gate_refuses_to_run_on_an_expired_bundle(world: World) -> None:
    gate = GateValidator(_token(world), BUNDLE_JWK, MemoryGateState(), now=NOW)
    with pytest.raises(BundleExpired):
        gate.validate(world.qr(), "bus-01-a", NOW + 86_401)
    with pytest.raises(BundleExpired):
        GateValidator(_token(world), BUNDLE_JWK, MemoryGateState(), now=NOW + 86_401)


def _vector_gate() -> GateValidator:
    """A gate trusting the vector issuer key, on a bus route, with a day pass and no passback."""
    vector_key = decompress_public_key(bytes.fromhex(VECTORS["issuer"]["public_compressed_hex"]))
    product = ProductRule(
        VECTORS["credential"]["fare_product"], ProductKind.DAY_PASS, Mode.BUS, passback_seconds=0
    )
    payload = build_bundle_payload(
        version=1,
        issued_at=VECTORS["credential"]["not_before"],
        expires_at=VECTORS["credential"]["not_after"],
        keys=[IssuerKey(VECTORS["issuer"]["kid"], vector_key, 0)],
        revocations=[],
        products=[product],
        validators=[ValidatorInfo("v1", Mode.BUS, route="01")],
    )
    token = sign_bundle(payload, BUNDLE_KEY, "b")
    return GateValidator(
        token, BUNDLE_JWK, MemoryGateState(), now=VECTORS["credential"]["not_before"]
    )


@pytest.mark.parametrize("row", VECTORS["window"], ids=lambda row: str(row["lead"]))
def test_window_vectors(row: dict[str, Any]) -> None:
    decision = _vector_gate().validate(VECTORS["dynamic"]["qr_text"], "v1", row["now"])
    assert (str(decision.decision), str(decision.reason)) == (row["decision"], row["reason"])
    fallback = _vector_gate().validate(VECTORS["fallback"]["qr_text"], "v1", row["now"])
    assert (str(fallback.decision), str(fallback.reason)) == (row["decision"], row["reason"])


@pytest.mark.parametrize("name", sorted(VECTORS["negative"]))
def test_negative_vectors(name: str) -> None:
    vector = VECTORS["negative"][name]
    decision = _vector_gate().validate(vector["qr_text"], "v1", 30 * VECTORS["dynamic"]["step"])
    assert str(decision.reason) == vector["reason"]


# --- file state --------------------------------------------------------------------------------


def test_file_state_persists_between_runs(world: World, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    text = world.qr(ticket_id=9200)
    with FileGateState(path) as state:
        gate = GateValidator(_token(world), BUNDLE_JWK, state, now=NOW)
        assert gate.validate(text, "bus-01-a", NOW).reason is Reason.OK
    with FileGateState(path) as state:
        gate = GateValidator(_token(world), BUNDLE_JWK, state, now=NOW)
        assert gate.validate(text, "bus-01-a", NOW + 1).reason is Reason.REPLAYED
    assert json.loads(path.read_text())["version"] == 1


def test_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(GateStateError), FileGateState(path):
        pass


def test_file_state_is_pruned_on_save(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(
        json.dumps({"version": 1, "steps": [["v", 1, 1, 10]], "last": [], "consumed": [[1, 10]]})
    )
    with FileGateState(path) as state:
        assert state.ride_consumed(1)
        state.prune(NOW)
        state.save()
    assert json.loads(path.read_text()) == {"version": 1, "steps": [], "last": [], "consumed": []}


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture()
def files(world: World, tmp_path: Path) -> dict[str, Path]:
    bundle, key = tmp_path / "bundle.jws", tmp_path / "bundle-key.json"
    bundle.write_text(_token(world) + "\n")
    key.write_text(json.dumps(BUNDLE_JWK))
    return {"bundle": bundle, "key": key, "state": tmp_path / "state.json"}


def _run(files: dict[str, Path], *args: str, input: str | None = None) -> Any:
    base = ["--bundle", str(files["bundle"]), "--key", str(files["key"]), "--now", str(NOW)]
    return CliRunner().invoke(gate_validate, [*base, *args], input=input)


def test_cli_accepts_then_denies_the_replay(world: World, files: dict[str, Path]) -> None:
    text = world.qr(ticket_id=9300)
    args = ["--state", str(files["state"]), "--validator", "bus-01-a", text]
    first = _run(files, *args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "decision": "accept",
        "reason": "ok",
        "ticket_id": 9300,
        "fare_product": DAY_BUS,
        "step": STEP,
        "skew": 0,
    }
    second = _run(files, *args)
    assert second.exit_code == 1
    assert json.loads(second.stdout)["reason"] == "replayed"


def test_cli_deny_exits_1(files: dict[str, Path]) -> None:
    result = _run(files, "--validator", "bus-01-a", "TV2:nonsense")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason"] == "malformed"


def test_cli_unknown_validator_is_a_deny(world: World, files: dict[str, Path]) -> None:
    result = _run(files, "--validator", "nobody", world.qr())
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason"] == "validator_unknown"


def test_cli_reads_the_scan_from_stdin(world: World, files: dict[str, Path]) -> None:
    result = _run(files, "--validator", "bus-01-a", "-", input=world.qr(ticket_id=9301) + "\n")
    assert result.exit_code == 0, result.output


def test_cli_unusable_bundle_exits_2(files: dict[str, Path]) -> None:
    files["bundle"].write_text("not a bundle")
    result = _run(files, "--validator", "bus-01-a", "TV2:x")
    assert result.exit_code == 2
    assert "unusable bundle" in result.stderr


def test_cli_bundle_under_another_key_exits_2(files: dict[str, Path]) -> None:
    other = public_key_to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    files["key"].write_text(json.dumps(other))
    assert _run(files, "--validator", "bus-01-a", "TV2:x").exit_code == 2


def test_cli_expired_bundle_exits_2(world: World, files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        gate_validate,
        [
            "--bundle",
            str(files["bundle"]),
            "--key",
            str(files["key"]),
            "--now",
            str(NOW + 86_401),
            "--validator",
            "bus-01-a",
            world.qr(),
        ],
    )
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["TV2:x"],  # several validators in the bundle and no --validator
        ["--validator", "bus-01-a", "--now", "yesterday", "TV2:x"],
        ["--validator", "bus-01-a"],  # no QR text
    ],
)
def test_cli_bad_arguments_exit_2(files: dict[str, Path], args: list[str]) -> None:
    assert _run(files, *args).exit_code == 2


def test_cli_missing_bundle_or_key_exits_2(files: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    no_bundle = runner.invoke(gate_validate, ["--bundle", str(tmp_path / "nope"), "TV2:x"])
    assert no_bundle.exit_code == 2
    no_key = runner.invoke(
        gate_validate,
        ["--bundle", str(files["bundle"]), "TV2:x"],
        env={"CASHLESS_BUNDLE_KEY_FILE": None},
    )
    assert no_key.exit_code == 2
    files["key"].write_text("[1, 2]")
    assert _run(files, "--validator", "bus-01-a", "TV2:x").exit_code == 2


def test_cli_corrupt_state_exits_2(world: World, files: dict[str, Path]) -> None:
    files["state"].write_text("garbage")
    result = _run(files, "--state", str(files["state"]), "--validator", "bus-01-a", world.qr())
    assert result.exit_code == 2
