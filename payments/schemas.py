"""Schemas of the payments API: integers for money, UTC timestamps, business dates."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from core.auth import current_principal, signed_url
from core.money import MAX_AMOUNT

REFERENCE_RE = r"^[A-Za-z0-9-]{1,100}$"


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class Amount(ma.fields.Integer):
    """A positive integer of VND: floats, strings, booleans and absurd values are a 422."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(1, MAX_AMOUNT), **kwargs)


class QRSchema(ma.Schema):
    payload = ma.fields.String()
    png_url = ma.fields.String()
    svg_url = ma.fields.String()


def qr_links(path_base: str, payload: str | None) -> dict[str, str] | None:
    """The QR of a payment or stall, with image links a browser `<img>` can load."""
    if not payload:
        return None
    principal = current_principal(optional=True)
    user_id = principal.user_id if principal else 0
    return {
        "payload": payload,
        "png_url": signed_url(f"{path_base}/qr.png", user_id),
        "svg_url": signed_url(f"{path_base}/qr.svg", user_id),
    }


class PaymentSchema(ma.Schema):
    id = ma.fields.Integer()
    status = ma.fields.String()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    reference = ma.fields.String(allow_none=True)
    method = ma.fields.String()
    purpose = ma.fields.String()
    owner_ref = ma.fields.String(allow_none=True)
    description = ma.fields.String(allow_none=True)
    merchant_id = ma.fields.Integer(allow_none=True)
    stall_id = ma.fields.Integer(allow_none=True)
    business_date = ma.fields.Date()
    created_at = ma.fields.AwareDateTime()
    expires_at = ma.fields.AwareDateTime(allow_none=True)
    succeeded_at = ma.fields.AwareDateTime(allow_none=True)
    refunded_amount = ma.fields.Integer()
    refund_amount_available = ma.fields.Method("dump_available")
    qr = ma.fields.Method(
        "dump_qr", metadata={"description": "present while a VietQR payment is pending"}
    )

    def dump_available(self, payment: Any) -> int:
        if payment.status not in ("succeeded", "partially_refunded"):
            return 0
        return int(payment.amount - payment.refunded_amount)

    def dump_qr(self, payment: Any) -> dict[str, str] | None:
        if payment.method != "vietqr" or payment.status != "pending":
            return None
        return qr_links(f"/api/v1/payments/{payment.id}", payment.qr_payload)


class PaymentListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(PaymentSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class PaymentListQuerySchema(StrictSchema):
    business_date = ma.fields.Date()
    from_ = ma.fields.AwareDateTime(data_key="from")
    to = ma.fields.AwareDateTime()
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.Integer(validate=validate.Range(0))

    @ma.validates_schema
    def needs_window(self, data: dict[str, Any], **_: Any) -> None:
        if "business_date" not in data and not ("from_" in data and "to" in data):
            raise ma.ValidationError("give business_date, or from and to", "business_date")


class RefundRequestSchema(StrictSchema):
    amount = Amount(required=True)
    refund_amount_available = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(0, MAX_AMOUNT)
    )
    reason = ma.fields.String(validate=validate.Length(0, 300))


class RefundSchema(ma.Schema):
    id = ma.fields.Integer()
    payment_id = ma.fields.Integer()
    amount = ma.fields.Integer()
    currency = ma.fields.Constant("VND")
    destination = ma.fields.String()
    status = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    business_date = ma.fields.Date()
    created_at = ma.fields.AwareDateTime()


class WalletSchema(ma.Schema):
    balance = ma.fields.Integer()
    currency = ma.fields.Constant("VND")


class TopupRequestSchema(StrictSchema):
    amount = Amount(required=True)


class WalletMovementSchema(ma.Schema):
    id = ma.fields.Integer()
    amount = ma.fields.Integer(metadata={"description": "positive: money in; negative: out"})
    currency = ma.fields.String()
    kind = ma.fields.String()
    memo = ma.fields.String()
    payment_id = ma.fields.Integer(allow_none=True)
    business_date = ma.fields.Date()
    created_at = ma.fields.AwareDateTime()


class WalletStatementSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(WalletMovementSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class WindowQuerySchema(StrictSchema):
    from_ = ma.fields.AwareDateTime(data_key="from", required=True)
    to = ma.fields.AwareDateTime(required=True)
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.Integer(validate=validate.Range(0))


class BankNotificationSchema(ma.Schema):
    """What the acquiring bank sends (unknown extra fields are tolerated: banks add fields)."""

    class Meta:
        unknown = ma.EXCLUDE

    transaction_id = ma.fields.String(required=True, validate=validate.Regexp(REFERENCE_RE))
    account_number = ma.fields.String(required=True, validate=validate.Length(1, 40))
    amount = Amount(required=True)
    credited_at = ma.fields.AwareDateTime(required=True)
    description = ma.fields.String(load_default="", validate=validate.Length(0, 500))
    counterparty_name = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Length(0, 200)
    )
    counterparty_account = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Length(0, 40)
    )
    counterparty_bank_bin = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{6}$")
    )


class BankBatchSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    notifications = ma.fields.List(
        ma.fields.Nested(BankNotificationSchema), required=True, validate=validate.Length(1, 1000)
    )


class NotificationResultSchema(ma.Schema):
    status = ma.fields.String()
    payment_id = ma.fields.Integer(allow_none=True)


class BatchResultSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(NotificationResultSchema))


class SandboxTransferRequestSchema(StrictSchema):
    qr_payload = ma.fields.String(required=True, validate=validate.Length(1, 512))
    amount = Amount()
    description = ma.fields.String(validate=validate.Length(0, 500))


class SandboxTransferSchema(ma.Schema):
    transaction_id = ma.fields.String()
    amount = ma.fields.Integer()
    description = ma.fields.String()


class SuspenseSchema(ma.Schema):
    id = ma.fields.Integer()
    transaction_id = ma.fields.String()
    amount = ma.fields.Integer()
    credited_at = ma.fields.AwareDateTime()
    description = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    reference = ma.fields.String(allow_none=True)
    payment_id = ma.fields.Integer(allow_none=True)
    business_date = ma.fields.Date()


class SuspenseListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(SuspenseSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class PageQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.Integer(validate=validate.Range(0))


# -- merchant webhooks and events (payments.webhooks) --------------------------------------------
EVENT_TYPE_NAMES = ("payment.succeeded", "payment.expired", "payment.refunded", "payout.sent")


class WebhookEndpointCreateSchema(StrictSchema):
    url = ma.fields.String(
        required=True,
        validate=validate.Length(1, 500),
        metadata={"description": "https URL (http and loopback too in sandbox mode)"},
    )


class WebhookEndpointSchema(ma.Schema):
    id = ma.fields.Integer()
    merchant_id = ma.fields.Integer()
    url = ma.fields.String()
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    previous_secret_expires_at = ma.fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "while a rotation is on: when the previous secret stops signing"},
    )


class WebhookEndpointSecretSchema(WebhookEndpointSchema):
    secret = ma.fields.String(
        metadata={"description": "`whsec_` + base64 of 24 bytes; shown only in this answer"}
    )


class WebhookEndpointListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(WebhookEndpointSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class MerchantEventSchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "the event id, sent as `webhook-id`"})
    type = ma.fields.String()
    timestamp = ma.fields.String(metadata={"description": "when it happened (ISO 8601, UTC)"})
    data = ma.fields.Dict()
    created_at = ma.fields.AwareDateTime()


class MerchantEventListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(MerchantEventSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.String(allow_none=True)


class MerchantEventQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.String(
        validate=validate.Length(1, 40),
        metadata={"description": "the id of the last event you have (a `webhook-id`)"},
    )
    type = ma.fields.String(validate=validate.OneOf(EVENT_TYPE_NAMES))


class WebhookDeliverySchema(ma.Schema):
    id = ma.fields.Integer()
    event_id = ma.fields.String()
    event_type = ma.fields.String()
    endpoint_id = ma.fields.Integer()
    status = ma.fields.String(metadata={"description": "pending, delivered, failed or cancelled"})
    attempts = ma.fields.Integer()
    last_status_code = ma.fields.Integer(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    next_attempt_at = ma.fields.AwareDateTime(allow_none=True)
    delivered_at = ma.fields.AwareDateTime(allow_none=True)


class WebhookDeliveryListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(WebhookDeliverySchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class WebhookDeliveryQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 500))
    starting_after = ma.fields.Integer(validate=validate.Range(0))
    status = ma.fields.String(
        validate=validate.OneOf(("pending", "delivered", "failed", "cancelled"))
    )
    endpoint_id = ma.fields.Integer(validate=validate.Range(1))
