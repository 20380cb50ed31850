"""``cashless gate validate``: the reference offline validator as a command (SPEC §6, §13).

Prints the decision as one JSON object and exits 0 on accept, 1 on deny, and 2 only when the
bundle is unusable or the arguments are bad (click's own usage errors also exit 2).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from ticketing.bundle import BundleData, BundleError
from ticketing.gate import FileGateState, GateStateError, GateValidator
from ticketing.validation import Decision, GateState, MemoryGateState

EXIT_ACCEPT = 0
EXIT_DENY = 1
EXIT_UNUSABLE = 2

_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def _fail(message: str) -> NoReturn:
    click.echo(json.dumps({"error": message}), err=True)
    raise click.exceptions.Exit(EXIT_UNUSABLE)


def _read_key(key_file: Path | None) -> dict[str, Any]:
    if key_file is None:
        _fail("no bundle key: pass --key FILE (the public JWK) or set CASHLESS_BUNDLE_KEY_FILE")
    try:
        jwk = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the bundle key {key_file}: {exc}")
    if not isinstance(jwk, dict):
        _fail("the bundle key file must hold one JWK object")
    return jwk


def _read_qr_text(qr_text: str) -> str:
    # "-" reads the scan from stdin: Base45 has spaces and shell metacharacters ($ % *).
    if qr_text != "-":
        return qr_text
    return sys.stdin.read().rstrip("\r\n")


def _pick_validator(bundle: BundleData, validator: str | None) -> str:
    if validator is not None:
        return validator
    if len(bundle.validators) == 1:
        return next(iter(bundle.validators))
    raise click.UsageError("--validator is required when the bundle lists several validators")


def _decide(
    bundle_token: str,
    jwk: dict[str, Any],
    state: GateState,
    validator: str | None,
    qr: str,
    now: int,
) -> Decision:
    try:
        gate = GateValidator(bundle_token, jwk, state, now=now)
    except BundleError as exc:
        _fail(f"unusable bundle: {exc}")
    return gate.validate(qr, _pick_validator(gate.bundle, validator), now)


@click.command("validate")
@click.option("--bundle", "bundle_file", type=_FILE, required=True, help="Bundle (JWS text).")
@click.option(
    "--key",
    "key_file",
    type=_FILE,
    envvar="CASHLESS_BUNDLE_KEY_FILE",
    help="Public JWK (JSON) of the bundle key.",
)
@click.option("--now", type=click.IntRange(min=0), help="Gate clock, Unix seconds [default: now].")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file keeping replay, anti-passback and consumption state between runs.",
)
@click.option("--validator", "validator", help="Validator id as listed in the bundle.")
@click.argument("qr_text")
def gate_validate(
    bundle_file: Path,
    key_file: Path | None,
    now: int | None,
    state_file: Path | None,
    validator: str | None,
    qr_text: str,
) -> None:
    """Validate QR_TEXT ("-" reads stdin) offline and print the decision as JSON.

    Exits 0 on accept, 1 on deny, 2 for an unusable bundle or bad arguments.
    """
    jwk = _read_key(key_file)
    try:
        bundle_token = bundle_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the bundle {bundle_file}: {exc}")
    clock = int(time.time()) if now is None else now
    qr = _read_qr_text(qr_text)
    try:
        if state_file is None:
            decision = _decide(bundle_token, jwk, MemoryGateState(), validator, qr, clock)
        else:
            with FileGateState(state_file) as state:
                decision = _decide(bundle_token, jwk, state, validator, qr, clock)
    except GateStateError as exc:
        _fail(str(exc))
    click.echo(json.dumps(decision.as_dict()))
    click.get_current_context().exit(EXIT_ACCEPT if decision.accepted else EXIT_DENY)
