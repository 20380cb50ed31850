"""The authorization table: which roles may call each API operation, read from the code.

`cashless authz-table` prints it as Markdown for docs/AUTHORIZATION.md; a test keeps that
document equal to what the `@require` decorators actually say and calls every operation as
every role.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from core.users import Role

ROLES = [role.value for role in Role]
# Operations without @require, and why anyone may call them.
OPEN = {
    "/healthz": "public",
    "/readyz": "public",
    "/api/v1/auth/token": "public (rate limited)",
    "/api/v1/auth/register": "public (rate limited)",
    "/.well-known/jwks.json": "public",
    "/.well-known/bundle-key.json": "public",
    "/api/v1/bank/notifications": "the bank (HMAC signature)",
    "/api/v1/bank/notifications/batch": "the bank (HMAC signature)",
    "/api/v1/public-services": "public (catalogue; adding one needs admin)",
    "/api/v1/public-services/<code>": "public (catalogue)",
    "/api/v1/public-services/<code>/quotes": "public (a quote changes nothing)",
    "/api/v1/public-services/<code>/fee-versions": "public (fee history; adding needs admin)",
    "/api/v1/fee-waiver-rules": "public (rules and legal bases; adding needs admin)",
    "/api/v1/reports/keys": "public (keys that verify signed reports)",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    roles: tuple[str, ...] | None  # None: open (see OPEN); () : any authenticated caller
    url_token: bool


def _view_for(app: Flask, endpoint: str, method: str) -> object:
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return getattr(view_class, method.lower())
    return view


def operations(app: Flask) -> list[Operation]:
    """Every /api/v1 and /.well-known operation with the roles its `@require` names."""
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<int:", "<").replace("<path:", "<")
        if not (path.startswith(("/api/v1/", "/.well-known/")) or path in OPEN):
            continue
        if path.startswith("/api/v1/docs") or path.startswith("/api/docs"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            view = _view_for(app, rule.endpoint, method)
            roles = getattr(view, "_required_roles", None)
            found.append(
                Operation(
                    method,
                    path,
                    None if roles is None else tuple(roles),
                    bool(getattr(view, "_url_token", False)),
                )
            )
    return sorted(found, key=lambda op: (op.path, op.method))


def markdown(app: Flask) -> str:
    """The table: one row per operation, one column per role (✓ allowed)."""
    lines = [
        "| operation | " + " | ".join(ROLES) + " | note |",
        "| --- | " + " | ".join("---" for _ in ROLES) + " | --- |",
    ]
    for op in operations(app):
        if op.roles is None:
            cells = ["✓"] * len(ROLES)
            note = OPEN.get(op.path, "NOT DECLARED")
        else:
            cells = ["✓" if not op.roles or role in op.roles else "" for role in ROLES]
            note = "any logged-in user" if not op.roles else ""
            if op.url_token:
                note = (note + "; " if note else "") + "signed URL token accepted"
        lines.append(f"| `{op.method} {op.path}` | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines) + "\n"
