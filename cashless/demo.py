"""Demo data (CASHLESS_DEMO=1 only): users with the password `demo` and each domain's samples.

Idempotent: running it again changes nothing that exists.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import users
from core.http import Services
from merchants.demo import seed as seed_merchants
from payments.fees.demo import seed_public_services
from ticketing.demo import seed as seed_ticketing

DEMO_PASSWORD = "demo"  # noqa: S105 - printed at start-up on purpose, demo mode only
DEMO_USERS = [
    ("commuter1", ["commuter"], "Nguyễn Văn An"),
    ("vendor1", ["vendor"], "Lê Thị Bình (chợ Sấu)"),
    ("attendant1", ["attendant"], "Trần Văn Cường"),
    ("finance1", ["finance"], "Phạm Thu Dung"),
    ("admin1", ["admin"], "Quản trị viên"),
    ("gate1", ["validator"], "Cổng soát vé 1"),
]

# Each domain adds its demo data here (wired by cashless only; domains never import cashless).
DomainSeeder = Callable[[Session, Services, dict[str, int]], None]
DOMAIN_SEEDERS: list[DomainSeeder] = [seed_ticketing]
DOMAIN_SEEDERS.append(seed_public_services)
DOMAIN_SEEDERS.append(seed_merchants)


def _demo_api_key(secret_key: str) -> tuple[str, str]:
    digest = hmac.new(secret_key.encode(), b"demo-gate1-api-key", hashlib.sha256).hexdigest()
    return "gate1demo", digest[:40]


def seed_demo(app: Flask) -> dict[str, Any]:
    """Create demo users and domain data; return what to print."""
    svc: Services = app.extensions["cashless"]
    prefix, secret = _demo_api_key(svc.settings.secret_key)
    with svc.db.transaction() as session:
        ids: dict[str, int] = {}
        for username, roles, name in DEMO_USERS:
            user = session.scalars(
                select(users.User).where(users.User.username == username)
            ).first()
            if user is None:
                user = users.add_user(session, username, DEMO_PASSWORD, roles, name)
            ids[username] = user.id
        if (
            session.scalars(select(users.ApiKey).where(users.ApiKey.prefix == prefix)).first()
            is None
        ):
            users.issue_api_key(session, ids["gate1"], "demo gate", prefix=prefix, secret=secret)
        for seeder in DOMAIN_SEEDERS:
            seeder(session, svc, ids)
    return {
        "users": [u for u, _, _ in DEMO_USERS],
        "password": DEMO_PASSWORD,
        "gate1_api_key": f"hck_{prefix}_{secret}",
    }


def print_credentials(credentials: dict[str, Any]) -> None:
    click.echo(
        "Demo users (password '{}'): {}".format(
            credentials["password"], ", ".join(credentials["users"])
        )
    )
    click.echo(f"Demo gate device gate1 API key: {credentials['gate1_api_key']}")
