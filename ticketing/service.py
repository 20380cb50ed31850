"""Commuter use cases: the catalogue, phones, buying tickets, credentials, tokens, re-binding.

Functions taking a `db` own their transaction; the one taking a `session` (the payment-refund
handler) runs inside the publisher's. Views hand in an `Issuer` built from the app's key ring.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.db import Database
from core.errors import FieldError
from core.pagination import Page, paginate
from payments import service as payments
from ticketing import credential as tv2
from ticketing import fares
from ticketing.errors import (
    DeviceMismatch,
    DeviceNotFound,
    FareProductNotFound,
    FareRuleViolation,
    InvalidPublicKey,
    ProductUnavailable,
    RebindTooSoon,
    TicketNotFound,
    TicketNotUsable,
)
from ticketing.issuing import IssuedCredential, Issuer
from ticketing.models import (
    CommuterConcession,
    ConcessionCategory,
    Device,
    FareProduct,
    Tap,
    Ticket,
    TicketStatus,
)
from ticketing.revocations import lift, lock_ticket, revoke, revoke_device_binding

TRANSIT_REVENUE = "transit_revenue"
KIND_ORDER = {"single_ride": 0, "day_pass": 1, "monthly_pass": 2}


@dataclass
class TicketView:
    """A ticket with its product and, when one was just issued, its credential."""

    ticket: Ticket
    product: FareProduct
    server_time: datetime
    credential: str | None = None  # standard base64 of the 125 bytes
    credential_not_after: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _view(
    ticket: Ticket, product: FareProduct, now: datetime, issued: IssuedCredential | None = None
) -> TicketView:
    if issued is None:
        return TicketView(ticket, product, now)
    return TicketView(
        ticket,
        product,
        now,
        base64.b64encode(issued.raw).decode("ascii"),
        datetime.fromtimestamp(issued.not_after, now.tzinfo),
    )


def _rule_error(exc: fares.FareRuleError) -> FareRuleViolation:
    return FareRuleViolation(
        str(exc), code=exc.code, errors=[FieldError(exc.field, exc.code, str(exc))]
    )


# -- the catalogue ------------------------------------------------------------------------------
def list_products(
    db: Database,
    *,
    mode: str | None = None,
    kind: str | None = None,
    include_inactive: bool = False,
    limit: int = 50,
    starting_after: int | None = None,
) -> Page:
    """Fare products by id (cursor pagination); only those on sale unless asked otherwise."""
    stmt = select(FareProduct)
    if not include_inactive:
        stmt = stmt.where(FareProduct.active.is_(True))
    if mode:
        stmt = stmt.where(FareProduct.mode == mode)
    if kind:
        stmt = stmt.where(FareProduct.kind == kind)
    with db.reader() as session:
        return paginate(session, stmt, FareProduct.id, limit, starting_after)


def get_product(db: Database, product_id: int) -> FareProduct:
    with db.reader() as session:
        product = session.get(FareProduct, product_id)
        if product is None:
            raise FareProductNotFound("no such fare product")
        return product


def concession_of(session: Session, user_id: int, now: datetime) -> ConcessionCategory | None:
    """The commuter's verified concession category in force at `now`, if any."""
    row = session.get(CommuterConcession, user_id)
    if row is None or (row.valid_until is not None and row.valid_until < now):
        return None
    category = session.get(ConcessionCategory, row.category_code)
    return category if category is not None and category.active else None


# -- devices ------------------------------------------------------------------------------------
def decode_public_key(encoded: str) -> bytes:
    """Standard base64 of a 33-byte compressed P-256 point on the curve, or 422."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        tv2.decompress_public_key(raw)
    except ValueError as exc:
        raise InvalidPublicKey(
            "public_key must be base64 of a 33-byte compressed P-256 point"
        ) from exc
    return raw


def register_device(db: Database, user_id: int, public_key: bytes) -> tuple[Device, bool]:
    """Register a phone's key; the same key again returns its device (created=False).

    Idempotent per (user, key); a race between two tabs is settled by the unique constraint.
    """
    with db.transaction() as session:
        stmt = select(Device).where(Device.user_id == user_id, Device.public_key == public_key)
        found = session.scalars(stmt).first()
        if found is not None:
            return found, False
        device = Device(user_id=user_id, public_key=public_key, active=True, created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(device)
                session.flush()
        except IntegrityError:
            return session.scalars(stmt).one(), False
        return device, True


def list_devices(db: Database, user_id: int) -> list[Device]:
    with db.reader() as session:
        return list(session.scalars(select(Device).where(Device.user_id == user_id)))


def _owned_device(session: Session, user_id: int, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None or device.user_id != user_id or not device.active:
        raise DeviceNotFound("no such device of yours; register it first")
    return device


# -- tickets ------------------------------------------------------------------------------------
def _on_sale(session: Session, product_id: int) -> FareProduct:
    product = session.get(FareProduct, product_id)
    if product is None:
        raise FareProductNotFound("no such fare product")
    if not product.active:
        raise ProductUnavailable("this fare product is no longer on sale")
    return product


def _validity(
    product: FareProduct, now: datetime, valid_on: date | None, valid_month: date | None
) -> fares.Validity:
    try:
        return fares.ticket_validity(
            product.kind,
            now,
            valid_on=valid_on,
            valid_month=valid_month,
            validity_hours=product.validity_hours,
        )
    except fares.FareRuleError as exc:
        raise _rule_error(exc) from exc


def _issue(issuer: Issuer, ticket: Ticket, device: Device, now: datetime) -> IssuedCredential:
    try:
        return issuer.credential(
            ticket_id=ticket.id,
            fare_product=ticket.fare_product_id,
            user_id=ticket.user_id,
            device_key=device.public_key,
            valid_from=ticket.valid_from,
            valid_until=ticket.valid_until,
            now=now,
        )
    except fares.FareRuleError as exc:
        raise TicketNotUsable(str(exc), code="ticket_expired") from exc


def _pay(session: Session, ticket: Ticket, product: FareProduct) -> int:
    payment = payments.spend_from_wallet(
        session,
        user_id=ticket.user_id,
        amount=ticket.price,
        purpose="ticket",
        owner_ref=f"ticket:{ticket.id}",
        credit_account=TRANSIT_REVENUE,
        external_key=f"ticket:{ticket.id}",
        description=product.name_vi,
    )
    return int(payment.id)


def purchase_ticket(
    db: Database,
    issuer: Issuer,
    *,
    user_id: int,
    fare_product_id: int,
    device_id: int | None,
    valid_on: date | None = None,
    valid_month: date | None = None,
    now: datetime | None = None,
) -> TicketView:
    """Buy a ticket from the wallet (or get it free with a verified concession), bound to a phone.

    One transaction: the ticket, the wallet payment (idempotent by `ticket:<id>`) and the first
    credential; nothing is kept if the wallet is short (422 insufficient_funds). Moves money.
    Retries are made safe by the request's Idempotency-Key. Without a device (a phone with no
    WebCrypto) there is no credential: the rider shows fallback tokens.
    """
    now = now or utcnow()
    with db.transaction() as session:
        product = _on_sale(session, fare_product_id)
        device = None if device_id is None else _owned_device(session, user_id, device_id)
        validity = _validity(product, now, valid_on, valid_month)
        ticket = _new_ticket(session, product, user_id, device, validity, now)
        if ticket.price > 0:
            ticket.payment_id = _pay(session, ticket, product)
        else:
            _record_free_issue(session, ticket, product)
        issued = None if device is None else _issue(issuer, ticket, device, now)
        return _view(ticket, product, now, issued)


def _new_ticket(
    session: Session,
    product: FareProduct,
    user_id: int,
    device: Device | None,
    validity: fares.Validity,
    now: datetime,
) -> Ticket:
    """The ticket row at the commuter's price (a verified concession may lower it), flushed."""
    category = concession_of(session, user_id, now)
    group = category.group if category else None
    price = fares.price_for(product.price, product.concession_prices or {}, group)
    ticket = Ticket(
        user_id=user_id,
        fare_product_id=product.id,
        device_id=device.id if device else None,
        status=TicketStatus.ACTIVE,
        valid_from=validity.valid_from,
        valid_until=validity.valid_until,
        price=price,
        concession_category=category.code if category and price < product.price else None,
        rebind_count=0,
        created_at=now,
    )
    session.add(ticket)
    session.flush()
    return ticket


def _record_free_issue(session: Session, ticket: Ticket, product: FareProduct) -> None:
    audit.record(
        session,
        actor=f"user:{ticket.user_id}",
        action="ticket.issue_free",
        entity_type="ticket",
        entity_id=ticket.id,
        after={
            "fare_product": product.code,
            "list_price": product.price,
            "concession": ticket.concession_category,
        },
    )


def _owned_ticket(session: Session, user_id: int, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.user_id != user_id:
        raise TicketNotFound("no such ticket of yours")
    return ticket


def _check_usable(ticket: Ticket, now: datetime) -> None:
    if ticket.status == TicketStatus.REVOKED:
        raise TicketNotUsable("the ticket is revoked", code="ticket_revoked")
    if ticket.status == TicketStatus.CONSUMED:
        raise TicketNotUsable("this single ride has been used", code="ticket_consumed")
    if ticket.valid_until < now:
        raise TicketNotUsable("the ticket's validity has ended", code="ticket_expired")


def refresh_credential(
    db: Database,
    issuer: Issuer,
    *,
    user_id: int,
    ticket_id: int,
    device_id: int,
    now: datetime | None = None,
) -> TicketView:
    """A fresh credential for the phone the ticket is bound to (≤ 72 h). Writes nothing."""
    now = now or utcnow()
    with db.reader() as session:
        ticket = _owned_ticket(session, user_id, ticket_id)
        _check_usable(ticket, now)
        if ticket.device_id != device_id:
            raise DeviceMismatch("the ticket is bound to another phone (or none); re-bind it")
        device = _owned_device(session, user_id, device_id)
        product = session.get(FareProduct, ticket.fare_product_id)
        assert product is not None
        return _view(ticket, product, now, _issue(issuer, ticket, device, now))


def fallback_tokens(
    db: Database,
    issuer: Issuer,
    *,
    user_id: int,
    ticket_id: int,
    count: int,
    now: datetime | None = None,
) -> list[tuple[int, str]]:
    """Up to `count` (≤ 2,880) pre-signed `TVF:` tokens from the current step, inside validity.

    Only for a ticket bound to no phone: tokens can be copied, so a ticket is either bound to a
    device key (TV2) or shown with tokens (TVF), never both.
    """
    now = now or utcnow()
    with db.reader() as session:
        ticket = _owned_ticket(session, user_id, ticket_id)
        _check_usable(ticket, now)
        if ticket.device_id is not None:
            raise DeviceMismatch(
                "this ticket is bound to a phone: show its dynamic QR", code="ticket_device_bound"
            )
        steps = fares.fallback_steps(
            int(now.timestamp()),
            int(ticket.valid_from.timestamp()),
            int(ticket.valid_until.timestamp()),
            min(count, fares.MAX_FALLBACK_TOKENS),
        )
        return issuer.fallback_tokens(
            ticket_id=ticket.id, fare_product=ticket.fare_product_id, steps=steps, now=now
        )


def rebind_ticket(
    db: Database,
    issuer: Issuer,
    *,
    user_id: int,
    ticket_id: int,
    device_id: int,
    now: datetime | None = None,
) -> TicketView:
    """Move a ticket to another of the commuter's phones, at most once a day; audited.

    Locks the ticket. The old phone's credentials are revoked (a device-key entry in the
    bundle). Re-binding to the phone it is already on just issues a credential.
    """
    now = now or utcnow()
    with db.transaction() as session:
        ticket = lock_ticket(session, ticket_id)
        if ticket.user_id != user_id:
            raise TicketNotFound("no such ticket of yours")
        _check_usable(ticket, now)
        device = _owned_device(session, user_id, device_id)
        product = session.get(FareProduct, ticket.fare_product_id)
        assert product is not None
        if ticket.device_id != device.id:
            _move_binding(session, ticket, device, now)
        return _view(ticket, product, now, _issue(issuer, ticket, device, now))


def _move_binding(session: Session, ticket: Ticket, device: Device, now: datetime) -> None:
    again_at = fares.may_rebind(ticket.last_rebind_at, now)
    if again_at is not None:
        wait = max(1, int((again_at - now).total_seconds()))
        raise RebindTooSoon(
            "a ticket can be moved to another phone once a day",
            headers={"Retry-After": str(wait)},
            extra={"retry_at": again_at.isoformat()},
        )
    old = None if ticket.device_id is None else session.get(Device, ticket.device_id)
    if old is not None:
        actor = f"user:{ticket.user_id}"
        revoke_device_binding(session, ticket, old.public_key, actor=actor, now=now)
    before = {"device_id": ticket.device_id, "rebind_count": ticket.rebind_count}
    ticket.device_id, ticket.last_rebind_at = device.id, now
    ticket.rebind_count += 1
    audit.record(
        session,
        actor=f"user:{ticket.user_id}",
        action="ticket.rebind",
        entity_type="ticket",
        entity_id=ticket.id,
        before=before,
        after={"device_id": device.id, "rebind_count": ticket.rebind_count},
    )


def list_tickets(
    db: Database,
    user_id: int,
    *,
    usable_only: bool = False,
    limit: int = 50,
    starting_after: int | None = None,
    now: datetime | None = None,
) -> Page:
    """The commuter's tickets by id, each with its product (no credentials)."""
    now = now or utcnow()
    stmt = select(Ticket).where(Ticket.user_id == user_id)
    if usable_only:
        stmt = stmt.where(Ticket.status == TicketStatus.ACTIVE, Ticket.valid_until >= now)
    with db.reader() as session:
        page = paginate(session, stmt, Ticket.id, limit, starting_after)
        ids = {t.fare_product_id for t in page["data"]}
        products = {
            p.id: p for p in session.scalars(select(FareProduct).where(FareProduct.id.in_(ids)))
        }
        page["data"] = [_view(t, products[t.fare_product_id], now) for t in page["data"]]
        return page


def get_ticket(db: Database, ticket_id: int, *, user_id: int | None) -> TicketView:
    """One ticket: the owner's (`user_id`), or any for staff (`user_id=None`)."""
    with db.reader() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or (user_id is not None and ticket.user_id != user_id):
            raise TicketNotFound("no such ticket")
        product = session.get(FareProduct, ticket.fare_product_id)
        assert product is not None
        return _view(ticket, product, utcnow())


def ticket_taps(
    db: Database, ticket_id: int, *, user_id: int | None, limit: int, starting_after: int | None
) -> Page:
    """The ticket's scans (its trips), oldest first; the owner's or, for staff, any."""
    get_ticket(db, ticket_id, user_id=user_id)
    with db.reader() as session:
        stmt = select(Tap).where(Tap.ticket_id == ticket_id)
        return paginate(session, stmt, Tap.id, limit, starting_after)


# -- staff ---------------------------------------------------------------------------------------
def revoke_ticket(db: Database, actor: str, ticket_id: int, reason: str, note: str) -> TicketView:
    """Staff: revoke a ticket (gates refuse it from their next bundle). Locks it; audited."""
    now = utcnow()
    with db.transaction() as session:
        ticket = lock_ticket(session, ticket_id)
        if revoke(session, ticket, reason=reason, actor=actor, now=now, note=note) is None:
            raise TicketNotUsable("the ticket is already revoked", code="ticket_already_revoked")
        return _view(ticket, _product_of(session, ticket), now)


def unrevoke_ticket(db: Database, actor: str, ticket_id: int, note: str) -> TicketView:
    """Staff: lift a ticket's revocation (for instance one raised automatically). Audited."""
    now = utcnow()
    with db.transaction() as session:
        ticket = lock_ticket(session, ticket_id)
        lift(session, ticket, actor=actor, now=now, note=note)
        return _view(ticket, _product_of(session, ticket), now)


def _product_of(session: Session, ticket: Ticket) -> FareProduct:
    product = session.get(FareProduct, ticket.fare_product_id)
    assert product is not None  # a foreign key
    return product


# -- payments tell us ---------------------------------------------------------------------------
def on_payment_refunded(session: Session, payload: dict[str, Any]) -> None:
    """A fully refunded ticket payment revokes the ticket (runs in the refund's transaction)."""
    owner_ref = str(payload.get("owner_ref") or "")
    if payload.get("purpose") != "ticket" or payload.get("status") != "refunded":
        return
    if not owner_ref.startswith("ticket:") or not owner_ref[7:].isdigit():
        return
    ticket = session.get(Ticket, int(owner_ref[7:]), with_for_update=True)
    if ticket is not None:
        revoke(session, ticket, reason="refunded", actor="payments", now=utcnow())


# -- the commuter's page ------------------------------------------------------------------------
@dataclass
class Offer:
    product: FareProduct
    price: int  # what this commuter pays (the concession price when one applies)


def page_data(db: Database, user_id: int, now: datetime | None = None) -> dict[str, Any]:
    """What the ticket page shows: offers at the commuter's price, usable tickets, balance."""
    now = now or utcnow()
    with db.reader() as session:
        category = concession_of(session, user_id, now)
        group = category.group if category else None
        kind_order = case(KIND_ORDER, value=FareProduct.kind, else_=len(KIND_ORDER))
        on_sale = session.scalars(
            select(FareProduct)
            .where(FareProduct.active.is_(True))
            .order_by(FareProduct.mode, kind_order, FareProduct.id)
        )
        offers = [
            Offer(p, fares.price_for(p.price, p.concession_prices or {}, group)) for p in on_sale
        ]
        tickets = list(
            session.scalars(
                select(Ticket)
                .where(
                    Ticket.user_id == user_id,
                    Ticket.status == TicketStatus.ACTIVE,
                    Ticket.valid_until >= now,
                )
                .order_by(Ticket.id.desc())
                .limit(50)
            )
        )
        ids = {t.fare_product_id for t in tickets}
        products = {
            p.id: p for p in session.scalars(select(FareProduct).where(FareProduct.id.in_(ids)))
        }
    views = [_view(t, products[t.fare_product_id], now) for t in tickets]
    balance = payments.wallet_balance(db, user_id)
    return {"offers": offers, "tickets": views, "concession": category, "balance": balance}
