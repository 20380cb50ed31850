"""Schemas of the reconciliation API: integers for money, UTC timestamps, business dates."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import validate

from core.money import MAX_AMOUNT
from payments.schemas import StrictSchema  # one definition of 'unknown fields are a 422'
from reconciliation.categories import Action, Category

CATEGORIES = [c.value for c in Category]


class PageQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.Integer(validate=validate.Range(0))


# -- statements -------------------------------------------------------------------------------
class StatementFormSchema(StrictSchema):
    account_number = ma.fields.String(required=True, validate=validate.Length(1, 40))
    format = ma.fields.String(load_default="csv", validate=validate.OneOf(["csv", "camt053"]))


class StatementFileSchema(ma.Schema):
    file = Upload(required=True)


class LineErrorSchema(ma.Schema):
    line = ma.fields.Integer(allow_none=True)
    message = ma.fields.String()


class StatementSchema(ma.Schema):
    id = ma.fields.Integer()
    account_number = ma.fields.String()
    format = ma.fields.String()
    filename = ma.fields.String()
    status = ma.fields.String()
    lines_total = ma.fields.Integer()
    lines_accepted = ma.fields.Integer()
    lines_rejected = ma.fields.Integer()
    lines_skipped = ma.fields.Integer()
    errors = ma.fields.List(ma.fields.Nested(LineErrorSchema))
    message = ma.fields.String(allow_none=True)
    size_bytes = ma.fields.Integer()
    sha256 = ma.fields.String()
    created_by = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    finished_at = ma.fields.AwareDateTime(allow_none=True)


class StatementListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(StatementSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class SandboxStatementSchema(StrictSchema):
    business_date = ma.fields.Date(required=True)
    account_number = ma.fields.String(load_default=None)


# -- runs -------------------------------------------------------------------------------------
class RunRequestSchema(StrictSchema):
    business_date = ma.fields.Date(required=True)
    account_number = ma.fields.String(required=True, validate=validate.Length(1, 40))


class RunSchema(ma.Schema):
    id = ma.fields.Integer()
    account_number = ma.fields.String()
    business_date = ma.fields.Date()
    attempt = ma.fields.Integer()
    status = ma.fields.String()
    phase = ma.fields.String()
    progress = ma.fields.Integer()
    counts = ma.fields.Method("dump_counts")
    lines_count = ma.fields.Integer()
    postings_count = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    created_by = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    started_at = ma.fields.AwareDateTime(allow_none=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)

    def dump_counts(self, run: Any) -> dict[str, int]:
        """Every category, zero until the run has counted it."""
        counts = dict(run.counts or {})
        return {category: int(counts.get(category, 0)) for category in CATEGORIES}


class RunListQuerySchema(PageQuerySchema):
    business_date = ma.fields.Date()


class RunListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(RunSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


# -- items and resolutions --------------------------------------------------------------------
class ItemQuerySchema(PageQuerySchema):
    category = ma.fields.String(validate=validate.OneOf(CATEGORIES))
    needs_resolution = ma.fields.Boolean(load_default=False)


class StatementLineSchema(ma.Schema):
    id = ma.fields.Integer()
    bank_txn_id = ma.fields.String()
    line_no = ma.fields.Integer()
    booked_at = ma.fields.AwareDateTime()
    business_date = ma.fields.Date()
    value_date = ma.fields.Date(allow_none=True)
    amount = ma.fields.Integer()
    direction = ma.fields.String()
    description = ma.fields.String()
    reference = ma.fields.String(allow_none=True)
    counterparty_account = ma.fields.String(allow_none=True)
    counterparty_name = ma.fields.String(allow_none=True)


class LedgerLineSchema(ma.Schema):
    posting_id = ma.fields.Integer()
    amount = ma.fields.Integer()
    business_date = ma.fields.Date()
    external_key = ma.fields.String()
    kind = ma.fields.String()
    memo = ma.fields.String(allow_none=True)
    payment_id = ma.fields.Integer(allow_none=True)
    reference = ma.fields.String(allow_none=True)


class AuditSchema(ma.Schema):
    id = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String()
    action = ma.fields.String()
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)
    note = ma.fields.String(allow_none=True)


class ResolutionSchema(ma.Schema):
    id = ma.fields.Integer()
    item_id = ma.fields.Integer()
    action = ma.fields.String()
    note = ma.fields.String()
    amount = ma.fields.Integer(allow_none=True)
    account = ma.fields.String(allow_none=True)
    linked_to = ma.fields.String(allow_none=True)
    journal_key = ma.fields.String(allow_none=True)
    resolved_by = ma.fields.String()
    resolved_at = ma.fields.String(allow_none=True)
    audit = ma.fields.Nested(AuditSchema)


class ItemSchema(ma.Schema):
    id = ma.fields.Integer()
    run_id = ma.fields.Integer()
    category = ma.fields.String()
    method = ma.fields.String()
    statement_line_id = ma.fields.Integer(allow_none=True)
    posting_id = ma.fields.Integer(allow_none=True)
    related_posting_id = ma.fields.Integer(allow_none=True)
    member_count = ma.fields.Integer()
    line_amount = ma.fields.Integer(allow_none=True)
    ledger_amount = ma.fields.Integer(allow_none=True)
    fee = ma.fields.Integer(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    statement_line = ma.fields.Nested(StatementLineSchema, allow_none=True)
    ledger_line = ma.fields.Nested(LedgerLineSchema, allow_none=True)
    resolution = ma.fields.Nested(ResolutionSchema, allow_none=True)
    resolved = ma.fields.Boolean()


class ItemListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(ItemSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("a note is required to resolve an item")


class ResolutionRequestSchema(StrictSchema):
    action = ma.fields.String(required=True, validate=validate.OneOf([a.value for a in Action]))
    note = ma.fields.String(required=True, validate=[validate.Length(max=2000), _not_blank])
    amount = ma.fields.Integer(
        strict=True, validate=validate.Range(-MAX_AMOUNT, MAX_AMOUNT), load_default=None
    )
    account = ma.fields.String(load_default=None, validate=validate.Length(1, 80))
    posting_id = ma.fields.Integer(strict=True, load_default=None)
    statement_line_id = ma.fields.Integer(strict=True, load_default=None)
    payment_id = ma.fields.Integer(strict=True, load_default=None)


# -- close and reports ------------------------------------------------------------------------
class DayCloseSchema(ma.Schema):
    business_date = ma.fields.Date()
    closed_at = ma.fields.AwareDateTime()
    closed_by = ma.fields.String()
    summary = ma.fields.Dict()
    report_csv_url = ma.fields.Method("csv_url")
    report_xlsx_url = ma.fields.Method("xlsx_url")

    def csv_url(self, close: Any) -> str:
        return f"/api/v1/reports/daily?business_date={close.business_date.isoformat()}&format=csv"

    def xlsx_url(self, close: Any) -> str:
        return f"/api/v1/reports/daily?business_date={close.business_date.isoformat()}&format=xlsx"


class ReportQuerySchema(StrictSchema):
    business_date = ma.fields.Date(required=True)
    format = ma.fields.String(load_default="csv", validate=validate.OneOf(["csv", "xlsx"]))


class ReportSignatureSchema(ma.Schema):
    business_date = ma.fields.Date()
    format = ma.fields.String()
    signature = ma.fields.String()
    alg = ma.fields.String()
    kid = ma.fields.String()
    sha256 = ma.fields.String()
    keys_url = ma.fields.String()


class ReportKeysSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict())
