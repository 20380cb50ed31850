"""HTTP adapters of the ticketing package: thin views over service functions.

`blp` is the API under /api/v1; `well_known` serves the public JWK of the bundle key at
/.well-known/bundle-key.json (SPEC §13), which gates may also receive out of band.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint

from core.auth import current_principal, require
from core.clock import utcnow
from core.errors import NotFound
from core.http import idempotent, services
from core.ratelimit import limiter
from ticketing import catalogue, gate_service, service
from ticketing import schemas as s
from ticketing.gate_service import Caller
from ticketing.gate_state import Scan
from ticketing.issuing import Issuer

blp = Blueprint(
    "ticketing", __name__, url_prefix="/api/v1", description="Fare products, tickets, validation"
)
well_known = Blueprint(
    "ticketing_well_known", __name__, url_prefix="/.well-known", description="Gate bundle key"
)
JOSE = "application/jose"


def _issuer() -> Issuer:
    svc = services()
    return Issuer(svc.keyring, svc.settings.holder_ref_secret.encode())


def _me() -> int:
    return current_principal().user_id


def _actor() -> str:
    return current_principal().username


def _caller() -> Caller:
    principal = current_principal()
    return Caller(principal.user_id, principal.has("admin"))


def _owner_or_staff() -> int | None:
    principal = current_principal()
    return None if principal.has("admin") else principal.user_id


def _gate_key() -> str:
    """Rate-limit per device credential, not per address (gates share carrier NATs)."""
    header = request.headers.get("Authorization", "")
    if not header:
        return get_remote_address()
    return "gate:" + hashlib.sha256(header.encode()).hexdigest()[:32]


def _validation_limit() -> str:
    return services().settings.validation_rate_limit


# -- fare products ------------------------------------------------------------------------------
@blp.route("/fare-products")
class FareProducts(MethodView):
    @blp.response(200, s.FareProductListSchema)
    @require()
    @blp.arguments(s.ProductQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The fare products on sale, by id (`include_inactive` for withdrawn ones too)."""
        page = service.list_products(services().db, **query)
        return {**page, "server_time": utcnow()}

    @blp.response(201, s.FareProductSchema)
    @require("admin")
    @blp.arguments(s.FareProductCreateSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Add a fare product (admin, audited)."""
        return catalogue.create_product(services().db, _actor(), body)


@blp.route("/fare-products/<int:product_id>")
class FareProductItem(MethodView):
    @blp.response(200, s.FareProductSchema)
    @require()
    def get(self, product_id: int) -> Any:
        """One fare product."""
        return service.get_product(services().db, product_id)

    @blp.response(200, s.FareProductSchema)
    @require("admin")
    @blp.arguments(s.FareProductUpdateSchema(partial=True))
    def patch(self, body: dict[str, Any], product_id: int) -> Any:
        """Change a fare product (admin, audited); prices apply to later purchases."""
        return catalogue.update_product(services().db, _actor(), product_id, body)


# -- concessions --------------------------------------------------------------------------------
@blp.route("/concession-categories")
class ConcessionCategories(MethodView):
    @blp.response(200, s.ConcessionCategoryListSchema)
    @require()
    def get(self) -> dict[str, Any]:
        """The concession categories (free or priority price), by code."""
        data = catalogue.list_categories(services().db)
        return {"data": data, "has_more": False, "next_cursor": None}

    @blp.response(201, s.ConcessionCategorySchema)
    @require("admin")
    @blp.arguments(s.ConcessionCategoryCreateSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Add a concession category (admin, audited)."""
        return catalogue.create_category(services().db, _actor(), body)


@blp.route("/concession-categories/<string:code>", methods=["PATCH"])
@blp.response(200, s.ConcessionCategorySchema)
@require("admin")
@blp.arguments(s.ConcessionCategoryUpdateSchema)
def update_category(body: dict[str, Any], code: str) -> Any:
    """Change a concession category (admin, audited)."""
    return catalogue.update_category(services().db, _actor(), code, body)


@blp.route("/commuters/me/concession")
@blp.response(200, s.CommuterConcessionSchema)
@require()
def my_concession() -> Any:
    """The caller's verified concession (404 when none)."""
    row = catalogue.get_concession(services().db, _me())
    if row is None:
        raise NotFound("you have no verified concession", code="concession_not_found")
    return row


@blp.route("/commuters/<int:user_id>/concession")
class CommuterConcession(MethodView):
    @blp.response(200, s.CommuterConcessionSchema)
    @require("admin")
    def get(self, user_id: int) -> Any:
        """A commuter's concession (admin)."""
        row = catalogue.get_concession(services().db, user_id)
        if row is None:
            raise NotFound("this commuter has no concession", code="concession_not_found")
        return row

    @blp.response(200, s.CommuterConcessionSchema)
    @require("admin")
    @blp.arguments(s.ConcessionSetSchema)
    def put(self, body: dict[str, Any], user_id: int) -> Any:
        """Set a commuter's concession after checking documents (admin, audited)."""
        return catalogue.set_concession(
            services().db,
            _actor(),
            user_id,
            category_code=body["category"],
            valid_until=body["valid_until"],
            note=body["note"],
        )

    @blp.response(204)
    @require("admin")
    @blp.arguments(s.NoteSchema)
    def delete(self, body: dict[str, Any], user_id: int) -> None:
        """Withdraw a commuter's concession (admin, audited)."""
        catalogue.remove_concession(services().db, _actor(), user_id, body["note"])


# -- devices ------------------------------------------------------------------------------------
@blp.route("/devices")
class Devices(MethodView):
    @blp.response(201, s.DeviceSchema)
    @blp.alt_response(200, schema=s.DeviceSchema, description="the key was already registered")
    @require("commuter")
    @blp.arguments(s.DeviceCreateSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a phone's P-256 public key (base64 of the 33-byte compressed point)."""
        key = service.decode_public_key(body["public_key"])
        device, created = service.register_device(services().db, _me(), key)
        return device, 201 if created else 200

    @blp.response(200, s.DeviceListSchema)
    @require("commuter")
    def get(self) -> dict[str, Any]:
        """The caller's phones."""
        data = service.list_devices(services().db, _me())
        return {"data": data, "has_more": False, "next_cursor": None}


# -- tickets ------------------------------------------------------------------------------------
@blp.route("/tickets")
class Tickets(MethodView):
    @idempotent()
    @blp.response(201, s.TicketSchema)
    @require("commuter")
    @blp.arguments(s.TicketPurchaseSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Buy a ticket with the wallet, bound to one of your phones (Idempotency-Key required)."""
        return service.purchase_ticket(
            services().db,
            _issuer(),
            user_id=_me(),
            fare_product_id=body["fare_product_id"],
            device_id=body["device_id"],
            valid_on=body["valid_on"],
            valid_month=body["valid_month"],
        )

    @blp.response(200, s.TicketListSchema)
    @require("commuter")
    @blp.arguments(s.TicketListQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The caller's tickets by id (`usable=true`: active and still valid)."""
        page = service.list_tickets(
            services().db,
            _me(),
            usable_only=query["usable"],
            limit=query["limit"],
            starting_after=query.get("starting_after"),
        )
        return {**page, "server_time": utcnow()}


@blp.route("/tickets/<int:ticket_id>")
@blp.response(200, s.TicketSummarySchema)
@require()
def get_ticket(ticket_id: int) -> Any:
    """One ticket: your own, or any for an admin."""
    return service.get_ticket(services().db, ticket_id, user_id=_owner_or_staff())


@blp.route("/tickets/<int:ticket_id>/credential", methods=["POST"])
@blp.response(200, s.CredentialSchema)
@require("commuter")
@blp.arguments(s.DeviceRefSchema)
def refresh_credential(body: dict[str, Any], ticket_id: int) -> Any:
    """A fresh TV2 credential (≤ 72 h, never past the validity) for the bound phone."""
    return service.refresh_credential(
        services().db, _issuer(), user_id=_me(), ticket_id=ticket_id, device_id=body["device_id"]
    )


@blp.route("/tickets/<int:ticket_id>/tokens")
@blp.response(200, s.FallbackTokenListSchema)
@require("commuter")
@blp.arguments(s.TokenQuerySchema, location="query")
def fallback_tokens(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """Pre-signed `TVF:` tokens, one per 30-s step from now (phones without WebCrypto)."""
    tokens = service.fallback_tokens(
        services().db, _issuer(), user_id=_me(), ticket_id=ticket_id, count=query["count"]
    )
    return {
        "tokens": [{"step": st, "qr_text": text} for st, text in tokens],
        "server_time": utcnow(),
    }


@blp.route("/tickets/<int:ticket_id>/rebind", methods=["POST"])
@idempotent(required=False)
@blp.response(200, s.TicketSchema)
@require("commuter")
@blp.arguments(s.DeviceRefSchema)
def rebind_ticket(body: dict[str, Any], ticket_id: int) -> Any:
    """Move a ticket to another of your phones (once a day; the old phone's code stops)."""
    return service.rebind_ticket(
        services().db, _issuer(), user_id=_me(), ticket_id=ticket_id, device_id=body["device_id"]
    )


@blp.route("/tickets/<int:ticket_id>/taps")
@blp.response(200, s.TapListSchema)
@require()
@blp.arguments(s.PageQuerySchema, location="query")
def ticket_taps(query: dict[str, Any], ticket_id: int) -> Any:
    """The ticket's scans (trips): your own ticket's, or any for an admin."""
    return service.ticket_taps(
        services().db,
        ticket_id,
        user_id=_owner_or_staff(),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/tickets/<int:ticket_id>/revocation", methods=["POST"])
@blp.response(200, s.TicketSummarySchema)
@require("admin")
@blp.arguments(s.RevokeSchema)
def revoke_ticket(body: dict[str, Any], ticket_id: int) -> Any:
    """Revoke a ticket (admin, audited); gates refuse it from their next bundle."""
    return service.revoke_ticket(services().db, _actor(), ticket_id, body["reason"], body["note"])


@blp.route("/tickets/<int:ticket_id>/revocation/lift", methods=["POST"])
@blp.response(200, s.TicketSummarySchema)
@require("admin")
@blp.arguments(s.NoteSchema)
def lift_revocation(body: dict[str, Any], ticket_id: int) -> Any:
    """Un-revoke a ticket, for instance one revoked automatically (admin, audited)."""
    return service.unrevoke_ticket(services().db, _actor(), ticket_id, body["note"])


# -- validators ---------------------------------------------------------------------------------
@blp.route("/validators")
class Validators(MethodView):
    @blp.response(200, s.ValidatorListSchema)
    @require("admin")
    @blp.arguments(s.ValidatorQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> Any:
        """Registered validators by id (admin)."""
        return catalogue.list_validators(
            services().db, limit=query["limit"], starting_after=query.get("starting_after")
        )

    @blp.response(201, s.ValidatorSchema)
    @require("admin")
    @blp.arguments(s.ValidatorCreateSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a validator: id, mode, route (bus) or station (metro), location (audited)."""
        return catalogue.create_validator(services().db, _actor(), body)


@blp.route("/validators/<string:validator_id>")
class ValidatorItem(MethodView):
    @blp.response(200, s.ValidatorSchema)
    @require("admin")
    def get(self, validator_id: str) -> Any:
        """One validator (admin)."""
        return catalogue.get_validator(services().db, validator_id)

    @blp.response(200, s.ValidatorSchema)
    @require("admin")
    @blp.arguments(s.ValidatorUpdateSchema(partial=True))
    def patch(self, body: dict[str, Any], validator_id: str) -> Any:
        """Change a validator (admin, audited)."""
        return catalogue.update_validator(services().db, _actor(), validator_id, body)


@blp.route("/validations", methods=["POST"])
@limiter.limit(_validation_limit, key_func=_gate_key)
@blp.response(200, s.ValidationResultSchema)
@require("validator", "admin")
@blp.arguments(s.ValidationRequestSchema)
def validate(body: dict[str, Any]) -> Any:
    """Validate a scan online, decided with the server's clock; idempotent per validator_seq."""
    received = utcnow()
    scan = Scan.online(body, received)
    return gate_service.validate_online(
        services().db, _issuer(), _caller(), scan, mode=body["mode"], now=received
    )


@blp.route("/validators/taps", methods=["POST"])
@blp.response(200, s.TapUploadResultSchema)
@require("validator", "admin")
@blp.arguments(s.TapUploadSchema)
def upload_taps(body: dict[str, Any]) -> Any:
    """Upload taps an offline validator made; each is re-verified and counted once."""
    return gate_service.upload_taps(
        services().db, _issuer(), _caller(), body["validator_id"], body["taps"]
    )


@blp.route("/validators/bundle")
@blp.response(200, s.BundleSchema)
@blp.alt_response(200, content_type=JOSE, description="the bare JWS (Accept: application/jose)")
@require("validator", "admin")
@blp.arguments(s.BundleQuerySchema, location="query")
def bundle(query: dict[str, Any]) -> Any:
    """The signed validation bundle (JWS, ES256); `since` gives only the revocation changes."""
    signed = gate_service.build_bundle(services().db, _issuer(), since=query["since"])
    if request.accept_mimetypes.best_match(["application/json", JOSE]) == JOSE:
        return Response(signed.jws, mimetype=JOSE)
    return signed


# -- revenue protection -------------------------------------------------------------------------
@blp.route("/revenue-protection/flags")
@blp.response(200, s.RevenueFlagListSchema)
@require("admin")
@blp.arguments(s.FlagQuerySchema, location="query")
def list_flags(query: dict[str, Any]) -> Any:
    """Revenue-protection flags (impossible journeys, reused rides), by id (admin)."""
    return gate_service.list_flags(
        services().db,
        status=query.get("status"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/revenue-protection/flags/<int:flag_id>/resolution", methods=["POST"])
@blp.response(200, s.RevenueFlagSchema)
@require("admin")
@blp.arguments(s.FlagResolutionSchema)
def resolve_flag(body: dict[str, Any], flag_id: int) -> Any:
    """Confirm a flag (the ticket stays revoked) or dismiss it (un-revoked); audited."""
    return gate_service.resolve_flag(services().db, _actor(), flag_id, body["action"], body["note"])


# -- the gate's trust anchor --------------------------------------------------------------------
@well_known.route("/bundle-key.json")
@well_known.response(200, s.PublicJwkSchema)
def bundle_key() -> dict[str, Any]:
    """The public JWK that verifies validation bundles (demo convenience; gates get it out of
    band with `cashless keys export --purpose bundle`)."""
    return _issuer().bundle_public_jwk()
