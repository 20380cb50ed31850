"""Schemas of the merchants and parking API: integers for money, UTC timestamps, business dates."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from core.auth import current_principal, signed_url
from core.clock import business_date, utcnow
from core.money import MAX_AMOUNT
from merchants.models import MerchantCategory, StaffRole
from merchants.tariffs import VehicleClass
from payments.schemas import Amount, PageQuerySchema, PaymentSchema, StrictSchema, qr_links

CATEGORIES = [c.value for c in MerchantCategory]
STAFF_ROLES = [r.value for r in StaffRole]
VEHICLE_CLASSES = [c.value for c in VehicleClass]
CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$"
DEVICE_RE = r"^[A-Za-z0-9._:-]{1,64}$"


def _list_of(item: type[ma.Schema], cursor: ma.fields.Field | None = None) -> type[ma.Schema]:
    return ma.Schema.from_dict(
        {
            "data": ma.fields.List(ma.fields.Nested(item)),
            "has_more": ma.fields.Boolean(),
            "next_cursor": cursor or ma.fields.Integer(allow_none=True),
        },
        name=f"{item.__name__.removesuffix('Schema')}List",
    )


# -- merchants ----------------------------------------------------------------------------------
class StaffInputSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(3, 64))
    role = ma.fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))


class MerchantCreateSchema(StrictSchema):
    legal_name = ma.fields.String(required=True, validate=validate.Length(1, 200))
    short_name = ma.fields.String(
        required=True,
        validate=validate.Length(1, 25),
        metadata={"description": "shown by banking apps (QR tag 59) and on payout notes"},
    )
    category = ma.fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    settlement_bank_bin = ma.fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))
    settlement_account = ma.fields.String(required=True, validate=validate.Length(1, 40))
    settlement_account_name = ma.fields.String(validate=validate.Length(1, 200))
    discount_rate_bp = ma.fields.Integer(
        strict=True,
        validate=validate.Range(0, 10_000),
        metadata={"description": "merchant discount in basis points (0 for markets by default)"},
    )
    staff = ma.fields.List(ma.fields.Nested(StaffInputSchema), load_default=list)


class MerchantUpdateSchema(StrictSchema):
    legal_name = ma.fields.String(validate=validate.Length(1, 200))
    short_name = ma.fields.String(validate=validate.Length(1, 25))
    settlement_bank_bin = ma.fields.String(validate=validate.Regexp(r"^\d{6}$"))
    settlement_account = ma.fields.String(validate=validate.Length(1, 40))
    settlement_account_name = ma.fields.String(validate=validate.Length(1, 200))
    discount_rate_bp = ma.fields.Integer(strict=True, validate=validate.Range(0, 10_000))
    active = ma.fields.Boolean()


class StallSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    market = ma.fields.String()


class StaffSchema(ma.Schema):
    user_id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()
    role = ma.fields.String()


class MerchantSchema(ma.Schema):
    id = ma.fields.Integer()
    legal_name = ma.fields.String()
    short_name = ma.fields.String()
    category = ma.fields.String()
    settlement_bank_bin = ma.fields.String(attribute="settlement_bin")
    settlement_bank_name = ma.fields.String()
    settlement_account = ma.fields.String()
    settlement_account_name = ma.fields.String()
    discount_rate_bp = ma.fields.Integer()
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    stalls = ma.fields.List(ma.fields.Nested(StallSchema))
    staff = ma.fields.List(ma.fields.Nested(StaffSchema))


class MerchantSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    legal_name = ma.fields.String()
    short_name = ma.fields.String()
    category = ma.fields.String()
    discount_rate_bp = ma.fields.Integer()
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()


MerchantListSchema = _list_of(MerchantSummarySchema)


class MerchantListQuerySchema(PageQuerySchema):
    category = ma.fields.String(validate=validate.OneOf(CATEGORIES))


# -- stalls and charges -------------------------------------------------------------------------
class StallCreateSchema(StrictSchema):
    market = ma.fields.String(required=True, validate=validate.Length(1, 120))
    code = ma.fields.String(
        required=True,
        validate=validate.Regexp(CODE_RE),
        metadata={"description": "printed on the QR as its terminal label (tag 62/07)"},
    )
    name = ma.fields.String(required=True, validate=validate.Length(1, 120))


class StallQRSchema(ma.Schema):
    """A stall's static code with image links an `<img>` can load (signed, 10 minutes)."""

    payload = ma.fields.String()
    reference = ma.fields.String()
    png_url = ma.fields.Method("dump_png")
    svg_url = ma.fields.Method("dump_svg")
    poster_url = ma.fields.Method("dump_poster")

    def _links(self, code: Any) -> dict[str, str]:
        base = f"/api/v1/merchants/{code.merchant_id}/stalls/{code.stall_id}"
        return qr_links(base, code.payload) or {}

    def dump_png(self, code: Any) -> str:
        return self._links(code)["png_url"]

    def dump_svg(self, code: Any) -> str:
        return self._links(code)["svg_url"]

    def dump_poster(self, code: Any) -> str:
        principal = current_principal(optional=True)
        path = f"/api/v1/merchants/{code.merchant_id}/stalls/{code.stall_id}/poster.svg"
        return signed_url(path, principal.user_id if principal else 0)


class ChargeRequestSchema(StrictSchema):
    amount = Amount(required=True)
    description = ma.fields.String(validate=validate.Length(0, 200))
    stall_id = ma.fields.Integer(strict=True, validate=validate.Range(1))


class ChargeSchema(PaymentSchema):
    """A payment, plus the signed URL of its live stream for an `EventSource`."""

    events_url = ma.fields.Method("dump_events_url")

    def dump_events_url(self, payment: Any) -> str:
        principal = current_principal(optional=True)
        path = f"/api/v1/payments/{payment.id}/events"
        return signed_url(path, principal.user_id if principal else 0)


def _today() -> Any:
    return business_date(utcnow())


class DayQuerySchema(StrictSchema):
    business_date = ma.fields.Date(
        load_default=_today,
        metadata={"description": "the Asia/Ho_Chi_Minh business day; today when left out"},
    )


class StallSalesSchema(ma.Schema):
    stall_id = ma.fields.Integer(allow_none=True)
    code = ma.fields.String()
    name = ma.fields.String()
    count = ma.fields.Integer()
    amount = ma.fields.Integer()
    static_count = ma.fields.Integer()
    static_amount = ma.fields.Integer()


class SaleSchema(ma.Schema):
    id = ma.fields.Integer()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    status = ma.fields.String()
    method = ma.fields.String()
    reference = ma.fields.String(allow_none=True)
    kind = ma.fields.Function(lambda p: "static" if p.reference is None else "dynamic")
    stall_id = ma.fields.Integer(allow_none=True)
    description = ma.fields.String(allow_none=True)
    refunded_amount = ma.fields.Integer()
    succeeded_at = ma.fields.AwareDateTime(allow_none=True)
    business_date = ma.fields.Date()


class SalesSummarySchema(ma.Schema):
    merchant_id = ma.fields.Integer()
    business_date = ma.fields.Date()
    currency = ma.fields.String()
    count = ma.fields.Integer()
    amount = ma.fields.Integer()
    refunded_amount = ma.fields.Integer()
    net_amount = ma.fields.Integer()
    pending_count = ma.fields.Integer()
    stalls = ma.fields.List(ma.fields.Nested(StallSalesSchema))
    sales = ma.fields.List(ma.fields.Nested(SaleSchema))


# -- payouts ------------------------------------------------------------------------------------
class PayoutSchema(ma.Schema):
    id = ma.fields.Integer()
    merchant_id = ma.fields.Integer()
    business_date = ma.fields.Date()
    period_start = ma.fields.Date()
    status = ma.fields.String()
    charges_count = ma.fields.Integer()
    charges_amount = ma.fields.Integer()
    refunds_amount = ma.fields.Integer()
    gross_amount = ma.fields.Integer()
    discount_rate_bp = ma.fields.Integer()
    discount_amount = ma.fields.Integer()
    amount = ma.fields.Integer(attribute="net_amount")
    currency = ma.fields.Constant("VND")
    description = ma.fields.String()
    bank_bin = ma.fields.String()
    bank_account = ma.fields.String()
    posted_on = ma.fields.Date(allow_none=True)
    created_at = ma.fields.AwareDateTime()


PayoutListSchema = _list_of(PayoutSchema)


class PayoutListQuerySchema(PageQuerySchema):
    business_date = ma.fields.Date()
    merchant_id = ma.fields.Integer(validate=validate.Range(1))


class PayoutRunRequestSchema(StrictSchema):
    business_date = ma.fields.Date(required=True)
    merchant_id = ma.fields.Integer(strict=True, validate=validate.Range(1))


class PayoutRunSchema(ma.Schema):
    business_date = ma.fields.Date()
    batches = ma.fields.List(ma.fields.Nested(PayoutSchema))


class PayoutFileQuerySchema(StrictSchema):
    business_date = ma.fields.Date(required=True)


# -- parking ------------------------------------------------------------------------------------
class ClassCounts(ma.fields.Dict):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            keys=ma.fields.String(validate=validate.OneOf(VEHICLE_CLASSES)),
            values=ma.fields.Integer(strict=True, validate=validate.Range(0, MAX_AMOUNT)),
            **kwargs,
        )


class LotCreateSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Regexp(CODE_RE))
    name = ma.fields.String(required=True, validate=validate.Length(1, 200))
    address = ma.fields.String(load_default="", validate=validate.Length(0, 300))
    operator_id = ma.fields.Integer(required=True, strict=True, validate=validate.Range(1))
    capacity = ClassCounts(required=True)
    tariff = ma.fields.Dict(
        required=True, metadata={"description": "a tariff document (see HK-01's for the shape)"}
    )
    pass_prices = ClassCounts(load_default=dict)


class LotUpdateSchema(StrictSchema):
    name = ma.fields.String(validate=validate.Length(1, 200))
    address = ma.fields.String(validate=validate.Length(0, 300))
    capacity = ClassCounts()
    tariff = ma.fields.Dict()
    pass_prices = ClassCounts()
    active = ma.fields.Boolean()


class LotSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    address = ma.fields.String()
    operator_id = ma.fields.Integer()
    capacity = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    pass_prices = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    active = ma.fields.Boolean()


LotListSchema = _list_of(LotSummarySchema)


class LotSchema(LotSummarySchema):
    occupied = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    free = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    tariff = ma.fields.Dict()


class ParkingQuoteRequestSchema(StrictSchema):
    vehicle_class = ma.fields.String(required=True, validate=validate.OneOf(VEHICLE_CLASSES))
    entered_at = ma.fields.AwareDateTime(required=True)
    exited_at = ma.fields.AwareDateTime(required=True)


class ParkingQuoteSchema(ma.Schema):
    amount = ma.fields.Integer()
    currency = ma.fields.Constant("VND")
    breakdown = ma.fields.List(ma.fields.Dict())


class EntryRequestSchema(StrictSchema):
    plate = ma.fields.String(required=True, validate=validate.Length(1, 32))
    vehicle_class = ma.fields.String(required=True, validate=validate.OneOf(VEHICLE_CLASSES))
    device_id = ma.fields.String(load_default="web", validate=validate.Regexp(DEVICE_RE))
    entered_at = ma.fields.AwareDateTime(
        metadata={"description": "when the vehicle came in, if recorded late (≤ 24 h)"}
    )


class ParkingSessionSchema(ma.Schema):
    id = ma.fields.Integer()
    lot_id = ma.fields.Integer()
    plate = ma.fields.String()
    vehicle_class = ma.fields.String()
    status = ma.fields.String()
    entered_at = ma.fields.AwareDateTime()
    exited_at = ma.fields.AwareDateTime(allow_none=True)
    amount = ma.fields.Integer(allow_none=True)
    currency = ma.fields.Constant("VND")
    breakdown = ma.fields.List(ma.fields.Dict(), allow_none=True)
    method = ma.fields.String(allow_none=True)
    payment_id = ma.fields.Integer(allow_none=True)
    opened_by = ma.fields.String()
    opened_device = ma.fields.String()
    closed_by = ma.fields.String(allow_none=True)
    closed_device = ma.fields.String(allow_none=True)
    cash_collected_by = ma.fields.String(allow_none=True)
    business_date = ma.fields.Date(allow_none=True)
    closed_at = ma.fields.AwareDateTime(allow_none=True)


ParkingSessionListSchema = _list_of(ParkingSessionSchema)


class SessionListQuerySchema(PageQuerySchema):
    status = ma.fields.String(
        validate=validate.OneOf(["inside", "open", "awaiting_payment", "closed"])
    )
    plate = ma.fields.String(validate=validate.Length(1, 32))


class AuditEntrySchema(ma.Schema):
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String()
    action = ma.fields.String()
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)
    note = ma.fields.String(allow_none=True)


class SessionTrailSchema(ParkingSessionSchema):
    lot_code = ma.fields.String()
    audit = ma.fields.List(ma.fields.Nested(AuditEntrySchema))


class ExitRequestSchema(StrictSchema):
    method = ma.fields.String(required=True, validate=validate.OneOf(["wallet", "vietqr", "cash"]))
    payer = ma.fields.String(
        validate=validate.Length(3, 64),
        metadata={"description": "username of the driver who will pay a wallet exit in the app"},
    )
    device_id = ma.fields.String(load_default="web", validate=validate.Regexp(DEVICE_RE))


class ExitSchema(ma.Schema):
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    breakdown = ma.fields.List(ma.fields.Dict())
    payment = ma.fields.Method("dump_payment", allow_none=True)
    session = ma.fields.Nested(ParkingSessionSchema)

    def dump_payment(self, result: Any) -> dict[str, Any] | None:
        if result.payment is None:
            return None
        return dict(ChargeSchema().dump(result.payment))


class PlateCorrectionSchema(StrictSchema):
    plate = ma.fields.String(required=True, validate=validate.Length(1, 32))
    reason = ma.fields.String(required=True, validate=validate.Length(3, 300))
    device_id = ma.fields.String(load_default="web", validate=validate.Regexp(DEVICE_RE))


class EnforcementSchema(ma.Schema):
    """Paid or not, and until when: never who paid or how."""

    plate = ma.fields.String()
    paid = ma.fields.Boolean()
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    basis = ma.fields.String(allow_none=True)
    checked_at = ma.fields.AwareDateTime()


class PassRequestSchema(StrictSchema):
    plate = ma.fields.String(required=True, validate=validate.Length(1, 32))
    vehicle_class = ma.fields.String(required=True, validate=validate.OneOf(VEHICLE_CLASSES))
    month = ma.fields.String(validate=validate.Regexp(r"^\d{4}-\d{2}$"))


class PassSchema(ma.Schema):
    id = ma.fields.Integer()
    lot_id = ma.fields.Integer()
    plate = ma.fields.String()
    vehicle_class = ma.fields.String()
    month = ma.fields.String()
    valid_from = ma.fields.AwareDateTime()
    valid_until = ma.fields.AwareDateTime()
    amount = ma.fields.Integer()
    currency = ma.fields.Constant("VND")
    payment_id = ma.fields.Integer(allow_none=True)
    business_date = ma.fields.Date()


PassListSchema = _list_of(PassSchema)


class RemittanceQuerySchema(StrictSchema):
    business_date = ma.fields.Date(required=True)
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class MethodTotalSchema(ma.Schema):
    count = ma.fields.Integer()
    amount = ma.fields.Integer()


class LotRemittanceSchema(ma.Schema):
    lot_id = ma.fields.Integer(allow_none=True)
    lot_code = ma.fields.String()
    lot_name = ma.fields.String()
    entries = ma.fields.Integer()
    exits = ma.fields.Integer()
    inside_now = ma.fields.Integer()
    awaiting_payment = ma.fields.Integer()
    by_method = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(MethodTotalSchema))
    passes_sold = ma.fields.Integer()
    passes_amount = ma.fields.Integer()
    cash_amount = ma.fields.Integer()
    cashless_amount = ma.fields.Integer()
    owed_to_treasury = ma.fields.Integer()


class RemittanceSchema(ma.Schema):
    operator_id = ma.fields.Integer()
    operator_name = ma.fields.String()
    business_date = ma.fields.Date()
    currency = ma.fields.String()
    lots = ma.fields.List(ma.fields.Nested(LotRemittanceSchema))
    total = ma.fields.Nested(LotRemittanceSchema)
    cash_outstanding = ma.fields.Integer(
        metadata={"description": "cash the operator holds for the treasury, all days"}
    )
