"""HTTP adapters of the payments package: thin views over service functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, request, stream_with_context
from flask_smorest import Blueprint

from core.auth import current_principal, require
from core.clock import utcnow
from core.errors import NotFound
from core.http import idempotent, services
from core.ratelimit import limiter
from payments import bank, live, notifications, qrimage, service, simulator, webhooks
from payments.errors import BadSignature
from payments.schemas import (
    BankBatchSchema,
    BankNotificationSchema,
    BatchResultSchema,
    MerchantEventListSchema,
    MerchantEventQuerySchema,
    NotificationResultSchema,
    PageQuerySchema,
    PaymentListQuerySchema,
    PaymentListSchema,
    PaymentSchema,
    RefundRequestSchema,
    RefundSchema,
    SandboxTransferRequestSchema,
    SandboxTransferSchema,
    SuspenseListSchema,
    TopupRequestSchema,
    WalletSchema,
    WalletStatementSchema,
    WebhookDeliveryListSchema,
    WebhookDeliveryQuerySchema,
    WebhookEndpointCreateSchema,
    WebhookEndpointListSchema,
    WebhookEndpointSchema,
    WebhookEndpointSecretSchema,
    WindowQuerySchema,
)

blp = Blueprint(
    "payments",
    __name__,
    url_prefix="/api/v1",
    description="Payments, wallets, refunds, the bank and its simulator",
)


def _cfg() -> service.PaymentsConfig:
    return service.PaymentsConfig.from_settings(services().settings)


def _me() -> tuple[int, frozenset[str]]:
    principal = current_principal()
    return principal.user_id, principal.roles


def signed_by_bank(view: Callable[..., Any]) -> Callable[..., Any]:
    """Verify X-Signature over the raw body before anything parses it (SPEC §4)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bank.verify(
                services().settings.bank_webhook_secret,
                request.headers.get("X-Signature"),
                request.get_data(),
                int(utcnow().timestamp()),
            )
        except bank.SignatureError as exc:
            raise BadSignature(str(exc)) from exc
        return view(*args, **kwargs)

    return wrapper


def _credit(data: dict[str, Any]) -> notifications.IncomingCredit:
    return notifications.IncomingCredit(**data)


@blp.route("/payments")
@blp.response(200, PaymentListSchema)
@require("finance", "admin")
@blp.arguments(PaymentListQuerySchema, location="query")
def list_payments(query: dict[str, Any]) -> dict[str, Any]:
    """Payments of a business day or a time window (finance)."""
    return service.list_payments(
        services().db,
        start=query.get("from_"),
        end=query.get("to"),
        day=query.get("business_date"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/payments/<int:payment_id>")
@blp.response(200, PaymentSchema)
@require()
def get_payment(payment_id: int) -> Any:
    """One payment, for its payer, its merchant's staff and finance."""
    return service.payment_for(services().db, payment_id, *_me())


@blp.route("/payments/<int:payment_id>/events")
@blp.doc(
    responses={200: {"description": "text/event-stream of `status` and `amount_mismatch` events"}}
)
@require(url_token=True)
def payment_events(payment_id: int) -> Response:
    """Live status (Server-Sent Events); accepts a signed `?token=` for EventSource."""
    service.payment_for(services().db, payment_id, *_me())
    frames = live.stream(services().db, services().bus, payment_id)
    return Response(
        stream_with_context(frames),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@blp.route("/payments/<int:payment_id>/qr.png")
@blp.doc(responses={200: {"description": "image/png"}})
@require(url_token=True)
def payment_qr_png(payment_id: int) -> Response:
    """The payment's dynamic VietQR as PNG (while pending)."""
    payment = service.payment_for(services().db, payment_id, *_me())
    if not payment.qr_payload:
        raise NotFound("this payment has no QR code")
    return Response(qrimage.render_png(payment.qr_payload), mimetype="image/png")


@blp.route("/payments/<int:payment_id>/qr.svg")
@blp.doc(responses={200: {"description": "image/svg+xml"}})
@require(url_token=True)
def payment_qr_svg(payment_id: int) -> Response:
    """The payment's dynamic VietQR as SVG (while pending)."""
    payment = service.payment_for(services().db, payment_id, *_me())
    if not payment.qr_payload:
        raise NotFound("this payment has no QR code")
    return Response(qrimage.render_svg(payment.qr_payload), mimetype="image/svg+xml")


@blp.route("/payments/<int:payment_id>/wallet-payment", methods=["POST"])
@idempotent(required=True)
@blp.response(200, PaymentSchema)
@require("commuter")
def wallet_payment(payment_id: int) -> Any:
    """Pay a pending payment from the caller's wallet (409 not pending, 422 insufficient)."""
    return service.pay_pending_with_wallet(services().db, payment_id, current_principal().user_id)


@blp.route("/payments/<int:payment_id>/cancel", methods=["POST"])
@idempotent(required=False)
@blp.response(200, PaymentSchema)
@require("vendor", "attendant", "finance", "admin")
def cancel_payment(payment_id: int) -> Any:
    """A vendor cancels a pending charge of their merchant."""
    user_id, roles = _me()
    payment = service.payment_for(services().db, payment_id, user_id, roles)
    if not service.may_manage(payment, user_id, roles):
        raise NotFound("no such payment")
    return service.cancel_payment(services().db, payment_id, current_principal().username)


@blp.route("/payments/<int:payment_id>/refunds", methods=["POST"])
@idempotent(required=True)
@blp.response(201, RefundSchema)
@require("vendor", "finance", "admin")
@blp.arguments(RefundRequestSchema)
def refund_payment(body: dict[str, Any], payment_id: int) -> Any:
    """Refund all or part of a payment; 412 when `refund_amount_available` is stale."""
    user_id, roles = _me()
    payment = service.payment_for(services().db, payment_id, user_id, roles)
    if not service.may_manage(payment, user_id, roles):
        raise NotFound("no such payment")
    return service.refund(
        services().db,
        payment_id,
        amount=body["amount"],
        refund_amount_available=body["refund_amount_available"],
        actor=current_principal().username,
        reason=body.get("reason"),
    )


@blp.route("/wallets/me")
@blp.response(200, WalletSchema)
@require("commuter")
def my_wallet() -> dict[str, int]:
    """The caller's wallet balance."""
    return {"balance": service.wallet_balance(services().db, current_principal().user_id)}


@blp.route("/wallets/me/topups", methods=["POST"])
@idempotent(required=True)
@blp.response(201, PaymentSchema)
@require("commuter")
@blp.arguments(TopupRequestSchema)
def topup(body: dict[str, Any]) -> Any:
    """Top up the wallet by VietQR bank transfer: a pending payment with its QR."""
    return service.topup_wallet(services().db, _cfg(), current_principal().user_id, body["amount"])


@blp.route("/wallets/me/transactions")
@blp.response(200, WalletStatementSchema)
@require("commuter")
@blp.arguments(WindowQuerySchema, location="query")
def wallet_statement(query: dict[str, Any]) -> dict[str, Any]:
    """Movements of the caller's wallet in a time window."""
    return service.wallet_statement(
        services().db,
        current_principal().user_id,
        start=query["from_"],
        end=query["to"],
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/bank/notifications", methods=["POST"])
@signed_by_bank
@blp.arguments(BankNotificationSchema)
@blp.response(200, NotificationResultSchema)
def bank_notification(body: dict[str, Any]) -> notifications.Outcome:
    """The acquiring bank notifies a credit (signed; duplicates are harmless)."""
    return notifications.receive(services().db, _cfg(), _credit(body))


@blp.route("/bank/notifications/batch", methods=["POST"])
@signed_by_bank
@blp.arguments(BankBatchSchema)
@blp.response(200, BatchResultSchema)
def bank_notification_batch(body: dict[str, Any]) -> dict[str, Any]:
    """Up to 1,000 credits in one signed request (banks batch at peak)."""
    credits = [_credit(item) for item in body["notifications"]]
    return {"results": notifications.receive_many(services().db, _cfg(), credits)}


@blp.route("/sandbox/bank/transfers", methods=["POST"])
@limiter.limit("120 per minute")
@blp.response(201, SandboxTransferSchema)
@require()
@blp.arguments(SandboxTransferRequestSchema)
def sandbox_transfer(body: dict[str, Any]) -> Any:
    """Sandbox only: pay a VietQR code from a simulated bank; it notifies our webhook."""
    return simulator.create_transfer(
        services().db, services().settings, user_id=current_principal().user_id, **body
    )


@blp.route("/suspense")
@blp.response(200, SuspenseListSchema)
@require("finance", "admin")
@blp.arguments(PageQuerySchema, location="query")
def suspense(query: dict[str, Any]) -> dict[str, Any]:
    """Credits parked in suspense, waiting for finance."""
    return notifications.list_suspense(services().db, query["limit"], query.get("starting_after"))


# -- merchant webhooks and the events list (payments.webhooks) ----------------------------------
MERCHANT_ROLES = ("vendor", "attendant", "admin")  # and then: staff of this merchant, or admin


def _merchant_staff(principal: Any, merchant_id: int, **_: Any) -> bool:
    return webhooks.may_access_merchant(principal.user_id, principal.roles, merchant_id)


@blp.route("/merchants/<int:merchant_id>/webhook-endpoints", methods=["POST"])
@idempotent(required=False)
@blp.response(201, WebhookEndpointSecretSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
@blp.arguments(WebhookEndpointCreateSchema)
def create_webhook_endpoint(body: dict[str, Any], merchant_id: int) -> dict[str, Any]:
    """Register a URL for the merchant's events; the answer shows its secret, once."""
    settings = services().settings
    return webhooks.register_endpoint(services().db, settings.sandbox, merchant_id, body["url"])


@blp.route("/merchants/<int:merchant_id>/webhook-endpoints")
@blp.response(200, WebhookEndpointListSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
@blp.arguments(PageQuerySchema, location="query")
def list_webhook_endpoints(query: dict[str, Any], merchant_id: int) -> dict[str, Any]:
    """The merchant's webhook endpoints (without secrets)."""
    return webhooks.list_endpoints(
        services().db, merchant_id, query["limit"], query.get("starting_after")
    )


@blp.route(
    "/merchants/<int:merchant_id>/webhook-endpoints/<int:endpoint_id>/rotate-secret",
    methods=["POST"],
)
@idempotent(required=False)
@blp.response(200, WebhookEndpointSecretSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
def rotate_webhook_secret(merchant_id: int, endpoint_id: int) -> dict[str, Any]:
    """A new secret (shown once); the previous one keeps signing alongside it for 24 h."""
    return webhooks.rotate_secret(services().db, merchant_id, endpoint_id)


@blp.route(
    "/merchants/<int:merchant_id>/webhook-endpoints/<int:endpoint_id>/disable", methods=["POST"]
)
@idempotent(required=False)
@blp.response(200, WebhookEndpointSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
def disable_webhook_endpoint(merchant_id: int, endpoint_id: int) -> dict[str, Any]:
    """Stop sending to this endpoint; its pending deliveries are cancelled."""
    return webhooks.disable_endpoint(services().db, merchant_id, endpoint_id)


@blp.route("/merchants/<int:merchant_id>/events")
@blp.response(200, MerchantEventListSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
@blp.arguments(MerchantEventQuerySchema, location="query")
def list_merchant_events(query: dict[str, Any], merchant_id: int) -> dict[str, Any]:
    """The merchant's events in order, to catch up on missed webhooks (docs/EVENTS.md)."""
    return webhooks.list_events(
        services().db,
        merchant_id,
        limit=query["limit"],
        starting_after=query.get("starting_after"),
        type_=query.get("type"),
    )


@blp.route("/merchants/<int:merchant_id>/webhook-deliveries")
@blp.response(200, WebhookDeliveryListSchema)
@require(*MERCHANT_ROLES, owner=_merchant_staff)
@blp.arguments(WebhookDeliveryQuerySchema, location="query")
def list_webhook_deliveries(query: dict[str, Any], merchant_id: int) -> dict[str, Any]:
    """Delivery attempts to the merchant's endpoints: status, attempts, last answer."""
    return webhooks.list_deliveries(
        services().db,
        merchant_id,
        limit=query["limit"],
        starting_after=query.get("starting_after"),
        status=query.get("status"),
        endpoint_id=query.get("endpoint_id"),
    )
