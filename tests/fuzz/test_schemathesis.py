"""Schemathesis against our own /openapi.json (slow tier): every operation, as the roles that
may call it, with generated (mostly hostile) input. No 5xx, every error is problem+json, and
every success matches its documented schema."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from cashless.authz import operations
from tests.conftest import login

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("CASHLESS_FUZZ_EXAMPLES", "6"))
DEMO_BY_ROLE = {
    "commuter": "commuter1",
    "vendor": "vendor1",
    "attendant": "attendant1",
    "validator": "gate1",
    "finance": "finance1",
    "admin": "admin1",
}
# Generated calls that would lock the fuzzer out or stall it, not bugs.
SKIP = {("PATCH", "/api/v1/users/{user_id}")}


def _roles_by_operation(app: Flask) -> dict[tuple[str, str], list[str]]:
    table = {}
    for op in operations(app):
        path = op.path.replace("<", "{").replace(">", "}")
        roles = list(op.roles) if op.roles else list(DEMO_BY_ROLE)
        table[(op.method, path)] = roles[:2] if op.roles is None else roles
    return table


def _check(case: Any, response: Any, failures: list[str]) -> None:
    where = f"{case.method} {case.formatted_path}"
    if response.status_code >= 500:
        failures.append(f"{where}: {response.status_code} {response.text[:300]}")
        return
    if response.status_code >= 400:
        headers = {k.lower(): v for k, v in response.headers.items()}
        kind = headers.get("content-type", "")
        kind = kind[0] if isinstance(kind, list) else kind
        if "problem+json" not in kind:
            failures.append(f"{where}: {response.status_code} without problem+json ({kind})")
            return
        body = json.loads(response.text)
        if not body.get("code") or not body.get("request_id"):
            failures.append(f"{where}: problem without code/request_id: {body}")
        return
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except Exception as exc:
        failures.append(f"{where}: {response.status_code} breaks its schema: {str(exc)[:400]}")


def test_fuzz_every_operation(app: Flask) -> None:
    client = app.test_client()
    tokens = {role: login(client, user) for role, user in DEMO_BY_ROLE.items()}
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    roles = _roles_by_operation(app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in SKIP or not key[1].startswith(("/api/v1", "/.well-known", "/healthz")):
            continue
        for role in roles.get(key, ["admin"]):
            headers = {**tokens[role], "Idempotency-Key": f"fuzz-{role}"}

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def run(case: Any) -> None:
                headers["Idempotency-Key"] = os.urandom(8).hex()
                _check(case, case.call(headers=headers), failures)

            run()
    assert not failures, "\n".join(sorted(set(failures))[:60])
