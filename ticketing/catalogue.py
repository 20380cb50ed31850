"""Admin use cases: fare products, concession categories, commuters' concessions, validators.

All of them are audited, and every change a gate must learn (a product or a validator) takes the
next bundle change number, so the bundle's version moves.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit, users
from core.clock import utcnow
from core.db import Database
from core.errors import NotFound, invalid
from core.pagination import Page, paginate
from ticketing.errors import (
    AlreadyExists,
    ConcessionCategoryNotFound,
    FareProductNotFound,
    ValidatorNotFound,
)
from ticketing.fares import ConcessionGroup
from ticketing.models import (
    CommuterConcession,
    ConcessionCategory,
    FareProduct,
    Validator,
)
from ticketing.revocations import next_seq
from ticketing.validation import Mode, ProductKind, ProductRule

PRODUCT_FIELDS = (
    "code",
    "kind",
    "mode",
    "price",
    "validity_hours",
    "routes",
    "passback_seconds",
    "concession_prices",
    "band",
    "name_vi",
    "name_en",
    "active",
)
VALIDATOR_FIELDS = ("name", "mode", "route", "station", "lat", "lon", "active", "user_id")
CATEGORY_FIELDS = ("group", "name_vi", "name_en", "active")


def _snapshot(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _insert(session: Session, row: Any, what: str) -> None:
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"{what} already exists") from exc


# -- fare products ------------------------------------------------------------------------------
RULES_TTL = 5.0  # seconds a process may decide with product rules it read before
_rules_cache: dict[str, tuple[float, dict[int, ProductRule]]] = {}
_rules_lock = threading.Lock()


def product_rules(session: Session) -> dict[int, ProductRule]:
    """What gates need of every product, on sale or not (tickets sold before a withdrawal still
    ride). Cached a few seconds per database: every validation reads it."""
    key = str(session.get_bind().engine.url)
    with _rules_lock:
        hit = _rules_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < RULES_TTL:
        return hit[1]
    rules = {
        p.id: ProductRule(
            p.id,
            ProductKind(p.kind),
            Mode(p.mode),
            None if p.routes is None else frozenset(p.routes),
            p.passback_seconds,
        )
        for p in session.scalars(select(FareProduct))
    }
    with _rules_lock:
        _rules_cache[key] = (time.monotonic(), rules)
    return rules


def _forget_rules() -> None:
    with _rules_lock:
        _rules_cache.clear()


def _check_product(product: FareProduct) -> None:
    groups = {g.value for g in ConcessionGroup}
    for group, price in (product.concession_prices or {}).items():
        if group not in groups:
            raise invalid("concession_prices", f"unknown concession group {group!r}")
        if not 0 <= price <= product.price:
            raise invalid("concession_prices", "a concession price must be 0 to the full price")
    if product.kind == "single_ride" and not product.validity_hours:
        product.validity_hours = 24
    if product.kind != "single_ride":
        product.validity_hours = None


def _new_product(session: Session, data: dict[str, Any], now: datetime) -> FareProduct:
    product_id = data.get("id")
    if product_id is None:
        product_id = (session.scalar(select(func.max(FareProduct.id))) or 0) + 1
    values = {"concession_prices": {}, "passback_seconds": 900, "active": True}
    values.update({name: data[name] for name in PRODUCT_FIELDS if name in data})
    return FareProduct(id=product_id, created_at=now, updated_at=now, **values)


def create_product(db: Database, actor: str, data: dict[str, Any]) -> FareProduct:
    """Add a fare product; its id (1–65,535) is the number in every credential. Audited."""
    with db.transaction() as session:
        product = _new_product(session, data, utcnow())
        _check_product(product)
        _insert(session, product, "a fare product with this id or code")
        next_seq(session)
        audit.record(
            session,
            actor=actor,
            action="fare_product.create",
            entity_type="fare_product",
            entity_id=product.id,
            after=_snapshot(product, PRODUCT_FIELDS),
        )
    _forget_rules()
    return product


def update_product(
    db: Database, actor: str, product_id: int, changes: dict[str, Any]
) -> FareProduct:
    """Change a product (its price applies to later purchases only). Audited."""
    with db.transaction() as session:
        product = session.get(FareProduct, product_id, with_for_update=True)
        if product is None:
            raise FareProductNotFound("no such fare product")
        before = _snapshot(product, PRODUCT_FIELDS)
        for name in PRODUCT_FIELDS:
            if name in changes:
                setattr(product, name, changes[name])
        _check_product(product)
        product.updated_at = utcnow()
        try:
            session.flush()
        except IntegrityError as exc:
            raise AlreadyExists("another fare product has this code") from exc
        next_seq(session)
        audit.record(
            session,
            actor=actor,
            action="fare_product.update",
            entity_type="fare_product",
            entity_id=product.id,
            before=before,
            after=_snapshot(product, PRODUCT_FIELDS),
        )
    _forget_rules()  # this process decides with the change at once; others within RULES_TTL
    return product


# -- concessions --------------------------------------------------------------------------------
def list_categories(db: Database) -> list[ConcessionCategory]:
    with db.reader() as session:
        return list(session.scalars(select(ConcessionCategory).order_by(ConcessionCategory.code)))


def create_category(db: Database, actor: str, data: dict[str, Any]) -> ConcessionCategory:
    """Add a concession category (a group that rides free or at the priority price). Audited."""
    with db.transaction() as session:
        values = {name: data[name] for name in CATEGORY_FIELDS if name in data}
        category = ConcessionCategory(code=data["code"], created_at=utcnow(), **values)
        category.active = True if category.active is None else category.active
        _insert(session, category, "a concession category with this code")
        audit.record(
            session,
            actor=actor,
            action="concession_category.create",
            entity_type="concession_category",
            entity_id=category.code,
            after=_snapshot(category, CATEGORY_FIELDS),
        )
        return category


def update_category(
    db: Database, actor: str, code: str, changes: dict[str, Any]
) -> ConcessionCategory:
    with db.transaction() as session:
        category = session.get(ConcessionCategory, code, with_for_update=True)
        if category is None:
            raise ConcessionCategoryNotFound("no such concession category")
        before = _snapshot(category, CATEGORY_FIELDS)
        for name in CATEGORY_FIELDS:
            if name in changes:
                setattr(category, name, changes[name])
        audit.record(
            session,
            actor=actor,
            action="concession_category.update",
            entity_type="concession_category",
            entity_id=code,
            before=before,
            after=_snapshot(category, CATEGORY_FIELDS),
        )
        return category


def get_concession(db: Database, user_id: int) -> CommuterConcession | None:
    with db.reader() as session:
        return session.get(CommuterConcession, user_id)


def set_concession(
    db: Database,
    actor: str,
    user_id: int,
    *,
    category_code: str,
    valid_until: datetime | None,
    note: str,
) -> CommuterConcession:
    """Record that an admin checked a commuter's documents for a concession. Audited."""
    with db.transaction() as session:
        if users.get_user(session, user_id) is None:
            raise NotFound("no such user", code="user_not_found")
        category = session.get(ConcessionCategory, category_code)
        if category is None or not category.active:
            raise ConcessionCategoryNotFound("no such active concession category")
        row = session.get(CommuterConcession, user_id, with_for_update=True)
        before = None if row is None else _concession_snapshot(row)
        if row is None:
            row = CommuterConcession(user_id=user_id)
            session.add(row)
        row.category_code, row.valid_until, row.note = category_code, valid_until, note
        row.verified_by, row.verified_at = actor, utcnow()
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="concession.set",
            entity_type="user",
            entity_id=user_id,
            before=before,
            after=_concession_snapshot(row),
            note=note,
        )
        return row


def remove_concession(db: Database, actor: str, user_id: int, note: str) -> None:
    """Withdraw a commuter's concession (later purchases pay full price). Audited."""
    with db.transaction() as session:
        row = session.get(CommuterConcession, user_id, with_for_update=True)
        if row is None:
            raise NotFound("this commuter has no concession", code="concession_not_found")
        before = _concession_snapshot(row)
        session.delete(row)
        audit.record(
            session,
            actor=actor,
            action="concession.remove",
            entity_type="user",
            entity_id=user_id,
            before=before,
            note=note,
        )


def _concession_snapshot(row: CommuterConcession) -> dict[str, Any]:
    return {
        "category": row.category_code,
        "valid_until": row.valid_until.isoformat() if row.valid_until else None,
    }


# -- validators ---------------------------------------------------------------------------------
def _check_validator(validator: Validator) -> None:
    if validator.mode == "bus" and not validator.route:
        raise invalid("route", "a bus validator needs its route")
    if validator.mode == "metro" and not validator.station:
        raise invalid("station", "a metro gate needs its station")
    if (validator.lat is None) != (validator.lon is None):
        raise invalid("lat", "give both lat and lon, or neither")


def create_validator(db: Database, actor: str, data: dict[str, Any]) -> Validator:
    """Register a validator (id, mode, route or station, location, device account). Audited."""
    now = utcnow()
    with db.transaction() as session:
        values = {name: data[name] for name in VALIDATOR_FIELDS if name in data}
        validator = Validator(id=data["id"], created_at=now, updated_at=now, **values)
        validator.name = validator.name or validator.id
        validator.active = True if validator.active is None else validator.active
        _check_validator(validator)
        _check_device_user(session, validator.user_id)
        _insert(session, validator, "a validator with this id")
        next_seq(session)
        audit.record(
            session,
            actor=actor,
            action="validator.create",
            entity_type="validator",
            entity_id=validator.id,
            after=_snapshot(validator, VALIDATOR_FIELDS),
        )
        return validator


def _check_device_user(session: Session, user_id: int | None) -> None:
    if user_id is None:
        return
    user = users.get_user(session, user_id)
    if user is None or "validator" not in user.role_set:
        raise invalid("user_id", "the linked account must exist and have the validator role")


def update_validator(
    db: Database, actor: str, validator_id: str, changes: dict[str, Any]
) -> Validator:
    with db.transaction() as session:
        validator = session.get(Validator, validator_id, with_for_update=True)
        if validator is None:
            raise ValidatorNotFound("no such validator")
        before = _snapshot(validator, VALIDATOR_FIELDS)
        for name in VALIDATOR_FIELDS:
            if name in changes:
                setattr(validator, name, changes[name])
        _check_validator(validator)
        _check_device_user(session, validator.user_id)
        validator.updated_at = utcnow()
        next_seq(session)
        audit.record(
            session,
            actor=actor,
            action="validator.update",
            entity_type="validator",
            entity_id=validator.id,
            before=before,
            after=_snapshot(validator, VALIDATOR_FIELDS),
        )
        return validator


def list_validators(db: Database, *, limit: int, starting_after: str | None) -> Page:
    with db.reader() as session:
        return paginate(session, select(Validator), Validator.id, limit, starting_after)


def get_validator(db: Database, validator_id: str) -> Validator:
    with db.reader() as session:
        validator = session.get(Validator, validator_id)
        if validator is None:
            raise ValidatorNotFound("no such validator")
        return validator
