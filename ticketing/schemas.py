"""Marshmallow schemas of the ticketing API: every body and query loaded, every answer dumped."""

from __future__ import annotations

import base64
import re
from datetime import date
from typing import Any

import marshmallow as ma
from marshmallow import validate

from core.clock import utcnow
from core.money import MAX_AMOUNT
from payments.schemas import StrictSchema  # one definition of 'unknown fields are a 422'
from ticketing.fares import MAX_FALLBACK_TOKENS, ConcessionGroup
from ticketing.validation import Mode, Outcome, ProductKind, Reason

MODES = [m.value for m in Mode]
KINDS = [k.value for k in ProductKind]
REASONS = [r.value for r in Reason]
GROUPS = [g.value for g in ConcessionGroup]
CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
MAX_TAPS_PER_UPLOAD = 500


class Amount(ma.fields.Integer):
    """Integer VND: no floats, no strings, no booleans (SPEC §2)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(0, MAX_AMOUNT), **kwargs)


class Month(ma.fields.Field):
    """`YYYY-MM` → the first day of that month."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        match = MONTH_RE.match(value) if isinstance(value, str) else None
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ma.ValidationError("a month as YYYY-MM")
        return date(int(match.group(1)), int(match.group(2)), 1)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else value.strftime("%Y-%m")


class Base64Bytes(ma.fields.Field):
    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")


class PageQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200))
    starting_after = ma.fields.Integer(validate=validate.Range(0))


class ServerTimeSchema(ma.Schema):
    server_time = ma.fields.AwareDateTime()


# -- fare products ------------------------------------------------------------------------------
class ProductQuerySchema(PageQuerySchema):
    mode = ma.fields.String(validate=validate.OneOf(MODES))
    kind = ma.fields.String(validate=validate.OneOf(KINDS))
    include_inactive = ma.fields.Boolean(load_default=False)


class FareProductSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    kind = ma.fields.String()
    mode = ma.fields.String()
    price = ma.fields.Integer()
    currency = ma.fields.Constant("VND")
    validity_hours = ma.fields.Integer(allow_none=True)
    routes = ma.fields.List(ma.fields.String(), allow_none=True)
    passback_seconds = ma.fields.Integer()
    concession_prices = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    band = ma.fields.String(allow_none=True)
    name_vi = ma.fields.String()
    name_en = ma.fields.String()
    active = ma.fields.Boolean()


class FareProductListSchema(ServerTimeSchema):
    data = ma.fields.List(ma.fields.Nested(FareProductSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class FareProductCreateSchema(StrictSchema):
    id = ma.fields.Integer(validate=validate.Range(1, 65535))
    code = ma.fields.String(required=True, validate=validate.Regexp(CODE_RE))
    kind = ma.fields.String(required=True, validate=validate.OneOf(KINDS))
    mode = ma.fields.String(required=True, validate=validate.OneOf(MODES))
    price = Amount(required=True)
    validity_hours = ma.fields.Integer(allow_none=True, validate=validate.Range(1, 72))
    routes = ma.fields.List(
        ma.fields.String(validate=validate.Length(1, 40)),
        allow_none=True,
        validate=validate.Length(1, 500),
    )
    passback_seconds = ma.fields.Integer(validate=validate.Range(0, 86_400))
    concession_prices = ma.fields.Dict(
        keys=ma.fields.String(validate=validate.OneOf(GROUPS)), values=Amount()
    )
    band = ma.fields.String(allow_none=True, validate=validate.Length(0, 80))
    name_vi = ma.fields.String(required=True, validate=validate.Length(1, 200))
    name_en = ma.fields.String(required=True, validate=validate.Length(1, 200))
    active = ma.fields.Boolean()


class FareProductUpdateSchema(FareProductCreateSchema):
    class Meta:
        unknown = ma.RAISE
        exclude = ("id",)


# -- concessions --------------------------------------------------------------------------------
class ConcessionCategorySchema(ma.Schema):
    code = ma.fields.String()
    group = ma.fields.String()
    name_vi = ma.fields.String()
    name_en = ma.fields.String()
    active = ma.fields.Boolean()


class ConcessionCategoryListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(ConcessionCategorySchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.String(allow_none=True)


class ConcessionCategoryCreateSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Regexp(CODE_RE))
    group = ma.fields.String(required=True, validate=validate.OneOf(GROUPS))
    name_vi = ma.fields.String(required=True, validate=validate.Length(1, 200))
    name_en = ma.fields.String(required=True, validate=validate.Length(1, 200))
    active = ma.fields.Boolean()


class ConcessionCategoryUpdateSchema(StrictSchema):
    group = ma.fields.String(validate=validate.OneOf(GROUPS))
    name_vi = ma.fields.String(validate=validate.Length(1, 200))
    name_en = ma.fields.String(validate=validate.Length(1, 200))
    active = ma.fields.Boolean()


class ConcessionSetSchema(StrictSchema):
    category = ma.fields.String(required=True, validate=validate.Length(1, 40))
    valid_until = ma.fields.AwareDateTime(load_default=None, allow_none=True)
    note = ma.fields.String(required=True, validate=validate.Length(1, 2000))


class NoteSchema(StrictSchema):
    note = ma.fields.String(required=True, validate=validate.Length(1, 2000))


class CommuterConcessionSchema(ma.Schema):
    user_id = ma.fields.Integer()
    category = ma.fields.String(attribute="category_code")
    verified_by = ma.fields.String()
    verified_at = ma.fields.AwareDateTime()
    valid_until = ma.fields.AwareDateTime(allow_none=True)
    note = ma.fields.String(allow_none=True)


# -- devices ------------------------------------------------------------------------------------
class DeviceCreateSchema(StrictSchema):
    public_key = ma.fields.String(required=True, validate=validate.Length(40, 48))


class DeviceSummarySchema(ma.Schema):
    id = ma.fields.Integer()
    public_key = Base64Bytes()
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()


class DeviceSchema(DeviceSummarySchema):
    server_time = ma.fields.Method("now")

    def now(self, _obj: object) -> str:
        return utcnow().isoformat()


class DeviceListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(DeviceSummarySchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


# -- tickets ------------------------------------------------------------------------------------
class TicketPurchaseSchema(StrictSchema):
    fare_product_id = ma.fields.Integer(
        required=True, strict=True, validate=validate.Range(1, 65535)
    )
    device_id = ma.fields.Integer(
        required=True, strict=True, allow_none=True, validate=validate.Range(1)
    )
    payment_method = ma.fields.String(required=True, validate=validate.OneOf(["wallet"]))
    valid_on = ma.fields.Date(load_default=None)
    valid_month = Month(load_default=None)


class DeviceRefSchema(StrictSchema):
    device_id = ma.fields.Integer(required=True, strict=True, validate=validate.Range(1))


class ProductBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    kind = ma.fields.String()
    mode = ma.fields.String()
    name_vi = ma.fields.String()
    name_en = ma.fields.String()


class TicketSummarySchema(ma.Schema):
    """A `TicketView` without a credential (lists, staff views)."""

    id = ma.fields.Integer(attribute="ticket.id")
    status = ma.fields.String(attribute="ticket.status")
    fare_product_id = ma.fields.Integer(attribute="ticket.fare_product_id")
    fare_product = ma.fields.Nested(ProductBriefSchema, attribute="product")
    device_id = ma.fields.Integer(attribute="ticket.device_id", allow_none=True)
    valid_from = ma.fields.AwareDateTime(attribute="ticket.valid_from")
    valid_until = ma.fields.AwareDateTime(attribute="ticket.valid_until")
    price = ma.fields.Integer(attribute="ticket.price")
    currency = ma.fields.Constant("VND")
    concession_category = ma.fields.String(attribute="ticket.concession_category", allow_none=True)
    payment_id = ma.fields.Integer(attribute="ticket.payment_id", allow_none=True)
    consumed_at = ma.fields.AwareDateTime(attribute="ticket.consumed_at", allow_none=True)
    rebind_count = ma.fields.Integer(attribute="ticket.rebind_count")
    created_at = ma.fields.AwareDateTime(attribute="ticket.created_at")
    server_time = ma.fields.AwareDateTime()


class TicketSchema(TicketSummarySchema):
    """A ticket as bought or re-bound, with its TV2 credential (base64 of 125 bytes)."""

    credential = ma.fields.String(allow_none=True)
    credential_not_after = ma.fields.AwareDateTime(allow_none=True)


class TicketListQuerySchema(PageQuerySchema):
    usable = ma.fields.Boolean(load_default=False)


class TicketListSchema(ServerTimeSchema):
    data = ma.fields.List(ma.fields.Nested(TicketSummarySchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class CredentialSchema(ma.Schema):
    ticket_id = ma.fields.Integer(attribute="ticket.id")
    credential = ma.fields.String()
    credential_not_after = ma.fields.AwareDateTime()
    valid_until = ma.fields.AwareDateTime(attribute="ticket.valid_until")
    server_time = ma.fields.AwareDateTime()


class TokenQuerySchema(StrictSchema):
    count = ma.fields.Integer(load_default=120, validate=validate.Range(1, MAX_FALLBACK_TOKENS))


class FallbackTokenSchema(ma.Schema):
    step = ma.fields.Integer()
    qr_text = ma.fields.String()


class FallbackTokenListSchema(ServerTimeSchema):
    tokens = ma.fields.List(ma.fields.Nested(FallbackTokenSchema))


class RevokeSchema(StrictSchema):
    reason = ma.fields.String(
        load_default="staff", validate=validate.OneOf(["staff", "lost", "fraud", "refunded"])
    )
    note = ma.fields.String(required=True, validate=validate.Length(1, 2000))


# -- validators, validation and taps ------------------------------------------------------------
class ValidatorSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    mode = ma.fields.String()
    route = ma.fields.String(allow_none=True)
    station = ma.fields.String(allow_none=True)
    lat = ma.fields.Float(allow_none=True)
    lon = ma.fields.Float(allow_none=True)
    active = ma.fields.Boolean()
    user_id = ma.fields.Integer(allow_none=True)


class ValidatorListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(ValidatorSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.String(allow_none=True)


class ValidatorQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200))
    starting_after = ma.fields.String(validate=validate.Length(1, 64))


class ValidatorCreateSchema(StrictSchema):
    id = ma.fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    )
    name = ma.fields.String(validate=validate.Length(0, 120))
    mode = ma.fields.String(required=True, validate=validate.OneOf(MODES))
    route = ma.fields.String(allow_none=True, validate=validate.Length(1, 40))
    station = ma.fields.String(allow_none=True, validate=validate.Length(1, 40))
    lat = ma.fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    lon = ma.fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    active = ma.fields.Boolean()
    user_id = ma.fields.Integer(allow_none=True, strict=True)


class ValidatorUpdateSchema(ValidatorCreateSchema):
    class Meta:
        unknown = ma.RAISE
        exclude = ("id",)


QR_TEXT = validate.Length(1, 512)


class ValidationRequestSchema(StrictSchema):
    qr_text = ma.fields.String(required=True, validate=QR_TEXT)
    validator_id = ma.fields.String(required=True, validate=validate.Length(1, 64))
    validator_seq = ma.fields.Integer(required=True, strict=True, validate=validate.Range(0, 2**62))
    mode = ma.fields.String(required=True, validate=validate.OneOf(MODES))
    scanned_at = ma.fields.AwareDateTime(load_default=None)
    lat = ma.fields.Float(load_default=None, validate=validate.Range(-90, 90))
    lon = ma.fields.Float(load_default=None, validate=validate.Range(-180, 180))


class TapSchema(ma.Schema):
    id = ma.fields.Integer()
    validator_id = ma.fields.String()
    validator_seq = ma.fields.Integer()
    ticket_id = ma.fields.Integer(allow_none=True)
    step = ma.fields.Integer(allow_none=True)
    decision = ma.fields.String()
    reason = ma.fields.String()
    skew = ma.fields.Integer(allow_none=True)
    source = ma.fields.String()
    device_decision = ma.fields.String(allow_none=True)
    device_reason = ma.fields.String(allow_none=True)
    scanned_at = ma.fields.AwareDateTime()
    decided_at = ma.fields.AwareDateTime()
    received_at = ma.fields.AwareDateTime()


class TapListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(TapSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class ValidationResultSchema(ma.Schema):
    """A `TapResult` of an online validation."""

    decision = ma.fields.String(attribute="tap.decision")
    reason = ma.fields.String(attribute="tap.reason")
    ticket_id = ma.fields.Integer(attribute="tap.ticket_id", allow_none=True)
    step = ma.fields.Integer(attribute="tap.step", allow_none=True)
    skew = ma.fields.Integer(attribute="tap.skew", allow_none=True)
    tap_id = ma.fields.Integer(attribute="tap.id")
    validator_seq = ma.fields.Integer(attribute="tap.validator_seq")
    replayed = ma.fields.Boolean(attribute="duplicate")
    flagged = ma.fields.Boolean()
    scanned_at = ma.fields.AwareDateTime(attribute="tap.scanned_at")
    server_time = ma.fields.AwareDateTime()


class OfflineTapSchema(StrictSchema):
    validator_seq = ma.fields.Integer(required=True, strict=True, validate=validate.Range(0, 2**62))
    qr_text = ma.fields.String(required=True, validate=QR_TEXT)
    scanned_at = ma.fields.AwareDateTime(required=True)
    decision = ma.fields.String(required=True, validate=validate.OneOf([o.value for o in Outcome]))
    reason = ma.fields.String(required=True, validate=validate.OneOf(REASONS))
    lat = ma.fields.Float(load_default=None, validate=validate.Range(-90, 90))
    lon = ma.fields.Float(load_default=None, validate=validate.Range(-180, 180))


class TapUploadSchema(StrictSchema):
    validator_id = ma.fields.String(required=True, validate=validate.Length(1, 64))
    taps = ma.fields.List(
        ma.fields.Nested(OfflineTapSchema),
        required=True,
        validate=validate.Length(1, MAX_TAPS_PER_UPLOAD),
    )


class TapOutcomeSchema(ma.Schema):
    validator_seq = ma.fields.Integer(attribute="tap.validator_seq")
    status = ma.fields.Method("dump_status")
    tap_id = ma.fields.Integer(attribute="tap.id")
    decision = ma.fields.String(attribute="tap.decision")
    reason = ma.fields.String(attribute="tap.reason")
    ticket_id = ma.fields.Integer(attribute="tap.ticket_id", allow_none=True)
    flagged = ma.fields.Boolean()

    def dump_status(self, result: Any) -> str:
        if result.conflict:
            return "conflict"  # this seq was used for another scan: nothing was recorded
        return "duplicate" if result.duplicate else "recorded"


class TapUploadResultSchema(ServerTimeSchema):
    validator_id = ma.fields.String()
    recorded = ma.fields.Integer()
    duplicates = ma.fields.Integer()
    conflicts = ma.fields.Integer()
    results = ma.fields.List(ma.fields.Nested(TapOutcomeSchema))


class BundleQuerySchema(StrictSchema):
    since = ma.fields.Integer(load_default=None, validate=validate.Range(0))


class BundleSchema(ma.Schema):
    """A `SignedBundle`: the JWS and, for convenience, what it says about itself."""

    bundle = ma.fields.String(attribute="jws")
    version = ma.fields.Integer()
    issued_at = ma.fields.AwareDateTime()
    expires_at = ma.fields.AwareDateTime()
    since = ma.fields.Integer(allow_none=True)
    next_since = ma.fields.Integer()
    server_time = ma.fields.AwareDateTime()


class PublicJwkSchema(ma.Schema):
    kty = ma.fields.String()
    crv = ma.fields.String()
    x = ma.fields.String()
    y = ma.fields.String()
    kid = ma.fields.String()
    use = ma.fields.String()
    alg = ma.fields.String()


# -- revenue protection -------------------------------------------------------------------------
class FlagQuerySchema(PageQuerySchema):
    status = ma.fields.String(validate=validate.OneOf(["open", "confirmed", "dismissed"]))


class RevenueFlagSchema(ma.Schema):
    id = ma.fields.Integer()
    ticket_id = ma.fields.Integer()
    kind = ma.fields.String()
    tap_id = ma.fields.Integer()
    other_tap_id = ma.fields.Integer(allow_none=True)
    detail = ma.fields.Dict()
    status = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    resolved_at = ma.fields.AwareDateTime(allow_none=True)
    resolved_by = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)


class RevenueFlagListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(RevenueFlagSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class FlagResolutionSchema(StrictSchema):
    action = ma.fields.String(required=True, validate=validate.OneOf(["confirm", "dismiss"]))
    note = ma.fields.String(required=True, validate=validate.Length(1, 2000))
