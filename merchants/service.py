"""Merchant use cases: onboarding, staff, stalls with their static codes, dynamic charges and
the day's sales.

Functions taking a `db` own their transaction; helpers taking a `session` flush, never commit.
Money only moves through payments' service functions (a charge is a payments VietQR payment
credited to `merchant:{id}:payable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.db import Database
from core.errors import FieldError, invalid
from core.pagination import Page, paginate
from core.users import User
from merchants.errors import (
    AlreadyExists,
    InvalidSettlementAccount,
    MerchantInactive,
    MerchantNotFound,
    NotStaff,
    StallNotFound,
    UserNotFound,
)
from merchants.models import Merchant, MerchantCategory, MerchantStaff, StaffRole, Stall
from payments import banks, ledger, vietqr
from payments import service as payments
from payments.models import Payment
from payments.static_codes import register_static_code, static_code_for_stall

# The city waives the merchant discount for markets to push cashless (SPEC §7); other
# categories get theirs by contract at onboarding (0 unless the admin says otherwise).
DEFAULT_DISCOUNT_BP = {category: 0 for category in MerchantCategory}
SALE_STATUSES = ("succeeded", "partially_refunded", "refunded")


@dataclass(frozen=True)
class StaffMember:
    user_id: int
    username: str
    display_name: str
    role: str


@dataclass
class MerchantView:
    """A merchant with its stalls and staff, detached from any session."""

    merchant: Merchant
    stalls: list[Stall] = field(default_factory=list)
    staff: list[StaffMember] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.merchant, name)

    @property
    def settlement_bank_name(self) -> str:
        bank = banks.bank_by_bin(self.merchant.settlement_bin)
        return bank.short_name if bank else ""


@dataclass(frozen=True)
class StallSales:
    stall_id: int | None
    code: str
    name: str
    count: int = 0
    amount: int = 0
    static_count: int = 0
    static_amount: int = 0


@dataclass
class SalesSummary:
    merchant_id: int
    business_date: date
    count: int
    amount: int
    refunded_amount: int
    pending_count: int
    stalls: list[StallSales]
    sales: list[Payment]
    currency: str = "VND"

    @property
    def net_amount(self) -> int:
        return self.amount - self.refunded_amount


def _audit(
    session: Session, actor: str, action: str, entity: str, entity_id: int, **changes: Any
) -> None:
    """One audit row in the caller's transaction (before/after/note as keywords)."""
    audit.record(
        session, actor=actor, action=action, entity_type=entity, entity_id=entity_id, **changes
    )


# -- reading ------------------------------------------------------------------------------------
def _merchant(session: Session, merchant_id: int, *, lock: bool = False) -> Merchant:
    merchant = session.get(Merchant, merchant_id, with_for_update=lock)
    if merchant is None:
        raise MerchantNotFound("no such merchant")
    return merchant


def _view(session: Session, merchant: Merchant) -> MerchantView:
    stalls = session.scalars(
        select(Stall).where(Stall.merchant_id == merchant.id).order_by(Stall.id)
    ).all()
    rows = session.execute(
        select(MerchantStaff, User)
        .join(User, User.id == MerchantStaff.user_id)
        .where(MerchantStaff.merchant_id == merchant.id)
        .order_by(MerchantStaff.id)
    ).all()
    staff = [StaffMember(u.id, u.username, u.display_name, s.role) for s, u in rows]
    return MerchantView(merchant, list(stalls), staff)


def get_merchant(db: Database, merchant_id: int) -> MerchantView:
    with db.reader() as session:
        return _view(session, _merchant(session, merchant_id))


def list_merchants(
    db: Database, *, category: str | None, limit: int, starting_after: int | None
) -> Page:
    """Merchants by id (cursor pagination), optionally of one category."""
    stmt = select(Merchant)
    if category:
        stmt = stmt.where(Merchant.category == category)
    with db.reader() as session:
        return paginate(session, stmt, Merchant.id, limit, starting_after)


def merchant_ids_of(session: Session, user_id: int, category: str | None = None) -> list[int]:
    """Active merchants the user staffs, lowest id first."""
    stmt = (
        select(Merchant.id)
        .join(MerchantStaff, MerchantStaff.merchant_id == Merchant.id)
        .where(MerchantStaff.user_id == user_id, Merchant.active.is_(True))
        .order_by(Merchant.id)
    )
    if category:
        stmt = stmt.where(Merchant.category == category)
    return list(session.scalars(stmt))


def is_staff(db: Database, user_id: int, merchant_id: int) -> bool:
    """Whether the user staffs this (active) merchant: the `merchant_staff` access check."""
    with db.reader() as session:
        return merchant_id in merchant_ids_of(session, user_id)


def my_merchant(db: Database, user_id: int) -> MerchantView:
    """The caller's merchant (the first one they staff) with its stalls; 404 when none."""
    with db.reader() as session:
        ids = merchant_ids_of(session, user_id)
        if not ids:
            raise NotStaff("you staff no merchant")
        return _view(session, _merchant(session, ids[0]))


# -- onboarding ---------------------------------------------------------------------------------
def _check_settlement(bin_: str, account: str) -> None:
    try:
        banks.validate_settlement_account(bin_, account)
    except banks.SettlementAccountError as exc:
        name = "settlement_bank_bin" if exc.code == "unknown_bin" else "settlement_account"
        raise InvalidSettlementAccount(
            exc.message, errors=[FieldError(name, str(exc.code), exc.message)]
        ) from exc


def _check_short_name(short_name: str) -> str:
    """The name banks and QR codes show (tag 59 ≤ 25 ASCII characters once folded)."""
    try:
        folded = vietqr.fold_ascii(short_name).strip()
    except vietqr.VietQRError as exc:
        raise invalid("short_name", exc.message) from exc
    if not folded or len(folded) > vietqr.MAX_MERCHANT_NAME:
        raise invalid("short_name", "1 to 25 characters once Vietnamese marks are folded")
    return short_name.strip()


def _user_by_username(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username.lower())).first()
    if user is None:
        raise UserNotFound(f"no user {username!r}")
    return user


def add_staff_member(
    session: Session, merchant: Merchant, username: str, role: str, actor: str
) -> MerchantStaff:
    """Attach a user to a merchant in the caller's transaction; 409 when already staff."""
    user = _user_by_username(session, username)
    row = MerchantStaff(merchant_id=merchant.id, user_id=user.id, role=StaffRole(role))
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"{username} already staffs this merchant") from exc
    _audit(
        session,
        actor,
        "merchant.staff_add",
        "merchant",
        merchant.id,
        after={"user_id": user.id, "username": user.username, "role": row.role},
    )
    return row


@dataclass(frozen=True)
class MerchantApplication:
    """What onboarding asks for (SPEC §7): names, category, settlement bank, discount, staff."""

    legal_name: str
    short_name: str
    category: str
    settlement_bank_bin: str
    settlement_account: str
    settlement_account_name: str | None = None
    discount_rate_bp: int | None = None
    staff: Sequence[dict[str, str]] = ()

    def to_merchant(self) -> Merchant:
        """A new merchant row; 422 for an unknown BIN, a bad account or too long a name."""
        _check_settlement(self.settlement_bank_bin, self.settlement_account)
        kind = MerchantCategory(self.category)
        rate = self.discount_rate_bp
        return Merchant(
            legal_name=self.legal_name.strip(),
            short_name=_check_short_name(self.short_name),
            category=kind,
            settlement_bin=self.settlement_bank_bin,
            settlement_account=self.settlement_account,
            settlement_account_name=(self.settlement_account_name or self.legal_name).strip(),
            discount_rate_bp=DEFAULT_DISCOUNT_BP[kind] if rate is None else rate,
        )


def onboard_merchant(db: Database, application: MerchantApplication, *, actor: str) -> MerchantView:
    """Create a merchant and its staff in one transaction, audited.

    The settlement account is checked against the BIN table (422 otherwise); the discount
    defaults by category (0 for markets). Moves no money.
    """
    merchant = application.to_merchant()
    with db.transaction() as session:
        session.add(merchant)
        session.flush()
        ledger.merchant_payable(session, merchant.id)
        _audit(
            session,
            actor,
            "merchant.onboard",
            "merchant",
            merchant.id,
            after=_audit_fields(merchant),
        )
        for member in application.staff:
            add_staff_member(session, merchant, member["username"], member["role"], actor)
        return _view(session, merchant)


def _audit_fields(merchant: Merchant) -> dict[str, Any]:
    return {
        "legal_name": merchant.legal_name,
        "short_name": merchant.short_name,
        "category": merchant.category,
        "settlement_bin": merchant.settlement_bin,
        "settlement_account": merchant.settlement_account,
        "discount_rate_bp": merchant.discount_rate_bp,
        "active": merchant.active,
    }


def update_merchant(
    db: Database, merchant_id: int, changes: dict[str, Any], actor: str
) -> MerchantView:
    """Change a merchant's names, settlement account, discount rate or active flag; audited
    with the before and after. A new settlement account is checked like at onboarding."""
    with db.transaction() as session:
        merchant = _merchant(session, merchant_id, lock=True)
        before = _audit_fields(merchant)
        bin_ = changes.get("settlement_bank_bin", merchant.settlement_bin)
        account = changes.get("settlement_account", merchant.settlement_account)
        _check_settlement(bin_, account)
        merchant.settlement_bin, merchant.settlement_account = bin_, account
        if "short_name" in changes:
            merchant.short_name = _check_short_name(changes["short_name"])
        for name in ("legal_name", "settlement_account_name", "discount_rate_bp", "active"):
            if name in changes:
                setattr(merchant, name, changes[name])
        merchant.updated_at = utcnow()
        session.flush()
        _audit(
            session,
            actor,
            "merchant.update",
            "merchant",
            merchant.id,
            before=before,
            after=_audit_fields(merchant),
        )
        return _view(session, merchant)


def add_staff(db: Database, merchant_id: int, username: str, role: str, actor: str) -> StaffMember:
    """Admin: add a staff user (409 when already staff); audited."""
    with db.transaction() as session:
        merchant = _merchant(session, merchant_id)
        row = add_staff_member(session, merchant, username, role, actor)
        user = session.get(User, row.user_id)
        assert user is not None
        return StaffMember(user.id, user.username, user.display_name, row.role)


def remove_staff(db: Database, merchant_id: int, user_id: int, actor: str) -> None:
    """Admin: detach a staff user; removing someone who is not staff is a 404. Audited."""
    with db.transaction() as session:
        row = session.scalars(
            select(MerchantStaff).where(
                MerchantStaff.merchant_id == merchant_id, MerchantStaff.user_id == user_id
            )
        ).first()
        if row is None:
            raise UserNotFound("this user does not staff this merchant")
        session.delete(row)
        _audit(
            session,
            actor,
            "merchant.staff_remove",
            "merchant",
            merchant_id,
            before={"user_id": user_id, "role": row.role},
        )


# -- stalls and their static codes ----------------------------------------------------------
def _insert_stall(session: Session, stall: Stall) -> Stall:
    try:
        with session.begin_nested():
            session.add(stall)
            session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"this merchant already has a stall {stall.code!r}") from exc
    return stall


def add_stall(
    db: Database,
    cfg: payments.PaymentsConfig,
    merchant_id: int,
    *,
    market: str,
    code: str,
    name: str,
    actor: str,
) -> Stall:
    """A stall with its static VietQR (terminal label = stall code, reference `HS…`).

    409 when the merchant already has a stall with this code; 422 when the code or the
    merchant's short name do not fit a VietQR code. Audited; moves no money.
    """
    with db.transaction() as session:
        merchant = _merchant(session, merchant_id)
        stall = _insert_stall(
            session,
            Stall(merchant_id=merchant.id, market=market.strip(), code=code, name=name.strip()),
        )
        register_static_code(
            session,
            cfg,
            stall_id=stall.id,
            merchant_id=merchant.id,
            terminal_label=code,
            merchant_name=merchant.short_name,
        )
        _audit(
            session,
            actor,
            "stall.create",
            "stall",
            stall.id,
            after={"merchant_id": merchant.id, "code": code, "name": stall.name},
        )
        return stall


def _stall(session: Session, merchant_id: int, stall_id: int) -> Stall:
    stall = session.get(Stall, stall_id)
    if stall is None or stall.merchant_id != merchant_id:
        raise StallNotFound("no such stall at this merchant")
    return stall


@dataclass(frozen=True)
class StallCode:
    merchant_id: int
    stall_id: int
    code: str
    name: str
    market: str
    merchant_name: str
    payload: str
    reference: str


def stall_code(db: Database, merchant_id: int, stall_id: int) -> StallCode:
    """The stall's static VietQR (it never changes: it is printed on the poster)."""
    with db.reader() as session:
        stall = _stall(session, merchant_id, stall_id)
        merchant = _merchant(session, merchant_id)
        code = static_code_for_stall(session, stall_id)
        if code is None:
            raise StallNotFound("this stall has no static code")
        return StallCode(
            merchant_id,
            stall_id,
            stall.code,
            stall.name,
            stall.market,
            merchant.legal_name,
            code.payload,
            code.reference,
        )


# -- dynamic charges and sales --------------------------------------------------------------
def create_charge(
    db: Database,
    cfg: payments.PaymentsConfig,
    merchant_id: int,
    *,
    amount: int,
    description: str | None = None,
    stall_id: int | None = None,
    now: datetime | None = None,
) -> Payment:
    """A pending dynamic VietQR charge for one sale, credited to the merchant's payable.

    Moves no money until the bank confirms the transfer. 409 for an inactive merchant, 404
    for a stall of another merchant, 422 for a bad amount. Retries are made safe by the
    API's Idempotency-Key.
    """
    with db.transaction() as session:
        merchant = _merchant(session, merchant_id)
        if not merchant.active:
            raise MerchantInactive("this merchant is not active")
        if stall_id is not None:
            _stall(session, merchant_id, stall_id)
        return payments.create_vietqr_payment(
            session,
            cfg,
            amount=amount,
            purpose="charge",
            owner_ref=f"stall:{stall_id}" if stall_id is not None else f"merchant:{merchant_id}",
            credit_account=ledger.merchant_payable_code(merchant_id),
            merchant_id=merchant_id,
            stall_id=stall_id,
            description=description,
            now=now,
        )


def _day_payments(db: Database, merchant_id: int, day: date) -> list[Payment]:
    found: list[Payment] = []
    cursor: int | None = None
    while True:
        page = payments.list_payments(
            db,
            start=None,
            end=None,
            day=day,
            merchant_id=merchant_id,
            limit=500,
            starting_after=cursor,
        )
        found.extend(p for p in page["data"] if p.purpose == "charge")
        if not page["has_more"]:
            return found
        cursor = page["next_cursor"]


def daily_sales(db: Database, merchant_id: int, day: date) -> SalesSummary:
    """The day's sales per stall, dynamic charges and static-QR credits alike (read only)."""
    merchant = get_merchant(db, merchant_id)
    day_payments = _day_payments(db, merchant_id, day)
    sales = [p for p in day_payments if p.status in SALE_STATUSES]
    per_stall: dict[int, StallSales] = {
        s.id: StallSales(s.id, s.code, s.name) for s in merchant.stalls
    }
    for payment in sales:
        key = payment.stall_id or 0
        row = per_stall.get(key) or StallSales(None, "", "")
        is_static = payment.reference is None
        per_stall[key] = StallSales(
            row.stall_id,
            row.code,
            row.name,
            row.count + 1,
            row.amount + payment.amount,
            row.static_count + int(is_static),
            row.static_amount + (payment.amount if is_static else 0),
        )
    return SalesSummary(
        merchant_id=merchant_id,
        business_date=day,
        count=len(sales),
        amount=sum(p.amount for p in sales),
        refunded_amount=sum(p.refunded_amount for p in sales),
        pending_count=sum(1 for p in day_payments if p.status == "pending"),
        stalls=list(per_stall.values()),
        sales=sorted(sales, key=lambda p: p.succeeded_at or p.created_at, reverse=True),
    )
