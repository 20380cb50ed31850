"""Schemas of the fees API: integer VND everywhere, business dates, the rule that won and why."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from core.auth import current_principal, signed_url
from core.money import MAX_AMOUNT
from payments.fees.rules import FULL_WAIVER_BP, Channel, Scope
from payments.schemas import PaymentSchema, StrictSchema

CODE_RE = r"^[a-z0-9][a-z0-9-]{1,39}$"
CATEGORY_RE = r"^[a-z0-9_]{1,40}$"
REASON_RE = r"^[a-z0-9_]{2,60}$"
CHANNELS = [c.value for c in Channel]
MAX_REPORT_DAYS = 1100


class FeeAmount(ma.fields.Integer):
    """A fee in VND: a strict integer, zero allowed (a free service), never a float."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(0, MAX_AMOUNT), **kwargs)


def _category(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        allow_none=True,
        validate=validate.Regexp(CATEGORY_RE, error="lower-case letters, digits and _"),
        metadata={"description": "beneficiary category, e.g. poor_household, student"},
        **kwargs,
    )


# -- catalogue and quotes -------------------------------------------------------------------------
class FeesByChannelSchema(ma.Schema):
    counter = ma.fields.Integer()
    online = ma.fields.Integer()


class PublicServiceSchema(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name_vi = ma.fields.String()
    name_en = ma.fields.String()
    authority_vi = ma.fields.String()
    authority_en = ma.fields.String()
    council_procedure = ma.fields.Boolean(
        metadata={"description": "a procedure whose fee the People's Council sets"}
    )
    fees = ma.fields.Nested(
        FeesByChannelSchema,
        allow_none=True,
        metadata={"description": "today's fee by channel, before any waiver"},
    )
    fee_version_id = ma.fields.Integer(allow_none=True)
    currency = ma.fields.Constant("VND")


class PublicServiceListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(PublicServiceSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class FeeQuoteRequestSchema(StrictSchema):
    channel = ma.fields.String(required=True, validate=validate.OneOf(CHANNELS))
    beneficiary_category = _category(load_default=None)


class FeeQuoteRuleSchema(ma.Schema):
    id = ma.fields.Integer()
    reason_code = ma.fields.String()
    basis_points = ma.fields.Integer(metadata={"description": "10000 = the whole fee"})
    scope = ma.fields.String()
    channel = ma.fields.String(allow_none=True)
    beneficiary_category = ma.fields.String(allow_none=True)
    effective_from = ma.fields.Date()
    effective_to = ma.fields.Date(allow_none=True)
    decided_by = ma.fields.String(
        metadata={"description": "only_rule | largest_waiver | latest_effective_from | lowest_id"}
    )
    why = ma.fields.String()
    candidates = ma.fields.List(
        ma.fields.Integer(), metadata={"description": "ids of every applicable rule"}
    )


class FeeQuoteVersionSchema(ma.Schema):
    id = ma.fields.Integer()
    effective_from = ma.fields.Date()
    effective_to = ma.fields.Date(allow_none=True)
    legal_basis = ma.fields.String()


class FeeQuoteSchema(ma.Schema):
    service_code = ma.fields.String()
    channel = ma.fields.String()
    beneficiary_category = ma.fields.String(allow_none=True)
    business_date = ma.fields.Date()
    gross_fee = ma.fields.Integer()
    waived_amount = ma.fields.Integer()
    payable = ma.fields.Integer(metadata={"description": "gross_fee - waived_amount; no fee added"})
    currency = ma.fields.Constant("VND")
    rule = ma.fields.Nested(FeeQuoteRuleSchema, allow_none=True)
    legal_basis = ma.fields.String(allow_none=True)
    fee_version = ma.fields.Nested(FeeQuoteVersionSchema)


# -- applications ---------------------------------------------------------------------------------
class FeeApplicationRequestSchema(FeeQuoteRequestSchema):
    pass


class FeeApplicationRuleSchema(ma.Schema):
    id = ma.fields.Integer()
    reason_code = ma.fields.String()
    basis_points = ma.fields.Integer()
    decided_by = ma.fields.String(allow_none=True)
    why = ma.fields.String(allow_none=True)


class FeeApplicationSchema(ma.Schema):
    id = ma.fields.Integer()
    service_code = ma.fields.Function(lambda a: a.service.code)
    service_name_vi = ma.fields.Function(lambda a: a.service.name_vi)
    service_name_en = ma.fields.Function(lambda a: a.service.name_en)
    channel = ma.fields.String()
    beneficiary_category = ma.fields.String(allow_none=True)
    gross_fee = ma.fields.Integer()
    waived_amount = ma.fields.Integer()
    payable = ma.fields.Integer()
    currency = ma.fields.String()
    rule = ma.fields.Method("dump_rule", allow_none=True)
    legal_basis = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "awaiting_payment | paid | fee_waived"})
    receipt_no = ma.fields.String(allow_none=True)
    receipt_url = ma.fields.Method(
        "dump_receipt_url",
        allow_none=True,
        metadata={"description": "the receipt page, with a short-lived signed token"},
    )
    payment = ma.fields.Nested(PaymentSchema, allow_none=True)
    business_date = ma.fields.Date()
    completed_business_date = ma.fields.Date(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    completed_at = ma.fields.AwareDateTime(allow_none=True)

    def dump_rule(self, application: Any) -> dict[str, Any] | None:
        rule = application.rule
        if rule is None:
            return None
        return FeeApplicationRuleSchema().dump(
            {
                "id": rule.id,
                "reason_code": rule.reason_code,
                "basis_points": rule.basis_points,
                "decided_by": application.rule_decided_by,
                "why": application.rule_why,
            }
        )

    def dump_receipt_url(self, application: Any) -> str | None:
        if not application.receipt_no:
            return None
        principal = current_principal(optional=True)
        user_id = principal.user_id if principal else application.applicant_user_id
        return signed_url(f"/receipts/{application.receipt_no}", user_id)


class FeeApplicationListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(FeeApplicationSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


# -- report ---------------------------------------------------------------------------------------
class WaivedFeeReportQuerySchema(StrictSchema):
    from_ = ma.fields.Date(data_key="from", required=True)
    to = ma.fields.Date(required=True)
    group = ma.fields.String(load_default="day", validate=validate.OneOf(["day", "month"]))
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @ma.validates_schema
    def window(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data:
            if data["to"] < data["from_"]:
                raise ma.ValidationError("to is before from", "to")
            if (data["to"] - data["from_"]).days > MAX_REPORT_DAYS:
                raise ma.ValidationError(f"at most {MAX_REPORT_DAYS} days", "to")


class WaivedFeeRowSchema(ma.Schema):
    period = ma.fields.String(metadata={"description": "YYYY-MM-DD or YYYY-MM"})
    service_code = ma.fields.String()
    service_name_vi = ma.fields.String()
    service_name_en = ma.fields.String()
    count = ma.fields.Integer()
    gross_fee = ma.fields.Integer()
    waived_amount = ma.fields.Integer(metadata={"description": "revenue foregone"})
    payable = ma.fields.Integer()


class WaivedFeeTotalsSchema(ma.Schema):
    count = ma.fields.Integer()
    gross_fee = ma.fields.Integer()
    waived_amount = ma.fields.Integer()
    payable = ma.fields.Integer()


class WaivedFeeReportSchema(ma.Schema):
    group = ma.fields.String()
    currency = ma.fields.Constant("VND")
    data = ma.fields.List(ma.fields.Nested(WaivedFeeRowSchema))
    totals = ma.fields.Nested(WaivedFeeTotalsSchema)
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.String(allow_none=True)


# -- admin ----------------------------------------------------------------------------------------
def _check_dates(data: dict[str, Any]) -> None:
    end = data.get("effective_to")
    if end is not None and end < data["effective_from"]:
        raise ma.ValidationError("effective_to is before effective_from", "effective_to")


class FeeVersionRequestSchema(StrictSchema):
    counter_fee = FeeAmount(required=True)
    online_fee = FeeAmount(required=True)
    effective_from = ma.fields.Date(required=True)
    effective_to = ma.fields.Date(load_default=None, allow_none=True)
    legal_basis = ma.fields.String(required=True, validate=validate.Length(1, 2000))

    @ma.validates_schema
    def dates(self, data: dict[str, Any], **_: Any) -> None:
        if "effective_from" in data:
            _check_dates(data)


class FeeVersionSchema(ma.Schema):
    id = ma.fields.Integer()
    counter_fee = ma.fields.Integer()
    online_fee = ma.fields.Integer()
    currency = ma.fields.Constant("VND")
    effective_from = ma.fields.Date()
    effective_to = ma.fields.Date(allow_none=True)
    legal_basis = ma.fields.String()
    created_by = ma.fields.String()
    created_at = ma.fields.AwareDateTime()


class FeeVersionListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(FeeVersionSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class PublicServiceRequestSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Regexp(CODE_RE))
    name_vi = ma.fields.String(required=True, validate=validate.Length(1, 300))
    name_en = ma.fields.String(required=True, validate=validate.Length(1, 300))
    authority_vi = ma.fields.String(required=True, validate=validate.Length(1, 300))
    authority_en = ma.fields.String(required=True, validate=validate.Length(1, 300))
    council_procedure = ma.fields.Boolean(load_default=False)
    fee = ma.fields.Nested(FeeVersionRequestSchema, required=True)


class WaiverRuleRequestSchema(StrictSchema):
    scope = ma.fields.String(required=True, validate=validate.OneOf([s.value for s in Scope]))
    service_code = ma.fields.String(validate=validate.Regexp(CODE_RE))
    channel = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS)
    )
    beneficiary_category = _category(load_default=None)
    waiver = ma.fields.String(required=True, validate=validate.OneOf(["full", "percentage"]))
    basis_points = ma.fields.Integer(strict=True, validate=validate.Range(0, FULL_WAIVER_BP))
    reason_code = ma.fields.String(required=True, validate=validate.Regexp(REASON_RE))
    legal_basis = ma.fields.String(required=True, validate=validate.Length(1, 2000))
    effective_from = ma.fields.Date(required=True)
    effective_to = ma.fields.Date(load_default=None, allow_none=True)
    supersedes_id = ma.fields.Integer(strict=True, validate=validate.Range(1))

    @ma.validates_schema
    def consistent(self, data: dict[str, Any], **_: Any) -> None:
        if ("service_code" in data) != (data.get("scope") == Scope.SERVICE):
            raise ma.ValidationError(
                "give service_code exactly when scope is service", "service_code"
            )
        if data.get("waiver") == "percentage":
            if "basis_points" not in data:
                raise ma.ValidationError("a percentage waiver needs basis_points", "basis_points")
            if data["basis_points"] == 0 and "supersedes_id" not in data:
                raise ma.ValidationError("0 only ends a rule it supersedes", "basis_points")
        elif data.get("basis_points", FULL_WAIVER_BP) != FULL_WAIVER_BP:
            raise ma.ValidationError("a full waiver is 10000 basis points", "basis_points")
        if "effective_from" in data:
            _check_dates(data)

    @ma.post_load
    def to_basis_points(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.pop("waiver") == "full":
            data["basis_points"] = FULL_WAIVER_BP
        return data


class WaiverRuleSchema(ma.Schema):
    id = ma.fields.Integer()
    scope = ma.fields.String()
    service_id = ma.fields.Integer(allow_none=True)
    channel = ma.fields.String(allow_none=True)
    beneficiary_category = ma.fields.String(allow_none=True)
    basis_points = ma.fields.Integer()
    reason_code = ma.fields.String()
    legal_basis = ma.fields.String()
    effective_from = ma.fields.Date()
    effective_to = ma.fields.Date(allow_none=True)
    supersedes_id = ma.fields.Integer(allow_none=True)
    created_by = ma.fields.String()
    created_at = ma.fields.AwareDateTime()


class WaiverRuleListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(WaiverRuleSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)
