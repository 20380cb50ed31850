"""The authorization matrix: every operation as every role, against docs/AUTHORIZATION.md."""

from __future__ import annotations

import itertools
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from cashless.authz import ROLES, markdown, operations
from tests.conftest import ROOT

DEMO_BY_ROLE = {
    "commuter": "commuter1",
    "vendor": "vendor1",
    "attendant": "attendant1",
    "validator": "gate1",
    "finance": "finance1",
    "admin": "admin1",
}
_counter = itertools.count()


def documented_table() -> str:
    text = (ROOT / "docs" / "AUTHORIZATION.md").read_text()
    match = re.search(r"<!-- table:start -->\n(.*)<!-- table:end -->", text, re.S)
    assert match, "docs/AUTHORIZATION.md lost its table markers"
    return match.group(1)


def test_document_matches_the_code(app: Flask) -> None:
    """Regenerate with `cashless authz-table` when an operation or its roles change."""
    assert documented_table() == markdown(app)
    assert "NOT DECLARED" not in markdown(app)


def _call(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> Any:
    url = re.sub(r"<[^>]+>", "1", path)
    headers = {**headers, "Idempotency-Key": f"authz-{next(_counter)}"}
    return client.open(url, method=method, headers=headers, json={})


def test_every_operation_as_every_role(app: Flask, client: FlaskClient, auth: Any) -> None:
    tokens = {role: auth(user) for role, user in DEMO_BY_ROLE.items()}
    checked = 0
    for op in operations(app):
        if op.roles is None:
            continue
        anonymous = _call(client, op.method, op.path, {})
        assert anonymous.status_code == 401, (op, anonymous.get_data(as_text=True))
        for role in ROLES:
            response = _call(client, op.method, op.path, tokens[role])
            body = response.get_json(silent=True) or {}
            refused = response.status_code == 403 and body.get("code") == "forbidden_role"
            allowed = not op.roles or role in op.roles
            assert refused != allowed, (op.method, op.path, role, response.status_code, body)
            assert response.status_code < 500, (op.method, op.path, role, body)
            checked += 1
    assert checked >= 6 * 20
