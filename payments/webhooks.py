"""Outgoing merchant webhooks (SPEC §4): endpoints, Standard Webhooks v1 signatures, delivery
with retries over about three days, and the lists a merchant catches up with.

- Signing (Standard Webhooks v1): `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.ts.body")>`
  where `key` is the base64-decoded part of the `whsec_…` secret. During a rotation every live
  secret signs, space separated, newest first.
- Secrets are stored in `WebhookEndpoint.secrets` (JSON, newest first) as `whsec_…` for the
  current secret and `whsec_…|<unix expiry>` for a retired one that still signs until then.
- SSRF guard: http(s) only (https outside sandbox mode); every address the host resolves to
  must be public, at registration and again at each delivery, and the connection goes to the
  address that was checked (a DNS rebinding between check and connect gains nothing). Sandbox
  mode allows loopback, for the demo and the tests.
- Delivery: a job per attempt, through the outbox, ids `webhook:<delivery>:<attempt>`; a 2xx
  is delivered, anything else is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 10 h,
  14 h and 20 h (about three days), then the delivery is `failed`. The merchant can always
  fetch what it missed from the events list.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import access
from core.clock import utcnow
from core.db import Database
from core.errors import Conflict, NotFound, invalid
from core.pagination import paginate
from core.queue import enqueue
from payments.events import EVENT_TYPES
from payments.models import MerchantEvent, WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 24
ROTATION_OVERLAP = timedelta(hours=24)
TIMEOUT_SECONDS = 10
MAX_ACTIVE_ENDPOINTS = 10
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
# A job may fire a little before its time (clocks, schedulers): early by less is still due.
DUE_SLACK = timedelta(seconds=1)
USER_AGENT = "HanoiCashless-Webhooks/1"
# Cloud metadata names: refused by name too, whatever they resolve to from here.
_METADATA = ("metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com")
BLOCKED_HOSTS = frozenset((*_METADATA, "instance-data", "instance-data.ec2.internal"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DeliveryStatus(StrEnum):
    PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


# -- signatures ---------------------------------------------------------------------------------
def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks v1 signature: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per live secret, space separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in keys)


def _parse_entry(entry: str) -> tuple[str, int | None]:
    secret, _, expiry = entry.partition("|")
    return secret, int(expiry) if expiry else None


def signing_secrets(entries: Sequence[str], now: datetime) -> list[str]:
    """The secrets that sign now: the current one and retired ones not yet expired."""
    stamp = int(now.timestamp())
    parsed = map(_parse_entry, entries)
    return [secret for secret, expiry in parsed if expiry is None or expiry > stamp]


def rotated(entries: Sequence[str], new: str, now: datetime) -> list[str]:
    """The stored list after a rotation: `new` first, the old current one retired for 24 h,
    earlier retired ones kept until they expire."""
    until = int((now + ROTATION_OVERLAP).timestamp())
    kept = [new]
    for entry in entries:
        secret, expiry = _parse_entry(entry)
        if expiry is None:
            kept.append(f"{secret}|{until}")
        elif expiry > int(now.timestamp()):
            kept.append(entry)
    return kept


def retiring_until(entries: Sequence[str], now: datetime) -> datetime | None:
    """When the last retired-but-still-signing secret stops signing (None: no rotation on)."""
    stamp = int(now.timestamp())
    expiries = [e for _, e in map(_parse_entry, entries) if e is not None and e > stamp]
    return datetime.fromtimestamp(max(expiries), now.tzinfo) if expiries else None


# -- SSRF guard ---------------------------------------------------------------------------------
class UnsafeURL(ValueError):
    """A URL we refuse to call: wrong scheme, or a host that is not a public address."""


@dataclass(frozen=True)
class VettedURL:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address hidden inside it (mapped, 6to4, Teredo, NAT64)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            found.append(ip.ipv4_mapped)
        if ip.sixtofour:
            found.append(ip.sixtofour)
        if ip.teredo:
            found.extend(ip.teredo)
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_problem(address: str, *, sandbox: bool) -> str | None:
    """Why we will not connect to `address` (None: it is a public unicast address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates = _embedded(ip)
    if sandbox and any(candidate.is_loopback for candidate in candidates):
        return None
    for candidate in candidates:
        for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
            if getattr(candidate, f"is_{kind}"):
                return f"{address} is a {kind.replace('_', '-')} address"
        if not candidate.is_global:
            return f"{address} is not a public address"
    return None


def _split(url: str, sandbox: bool) -> tuple[str, int]:
    if not url or len(url) > 500 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeURL("the URL is empty, too long or contains spaces")
    parts = urlsplit(url)
    schemes = ("http", "https") if sandbox else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeURL(f"the URL must use {' or '.join(schemes)}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the URL has an invalid port") from exc
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURL("the URL has no host")
    if host in BLOCKED_HOSTS:
        raise UnsafeURL(f"{host} is a cloud metadata host")
    return host, port


def vet_url(url: str, *, sandbox: bool, resolve: Resolver | None = None) -> VettedURL:
    """Check `url` and every address its host resolves to; raise UnsafeURL if any is not
    public (loopback is allowed in sandbox mode). Resolves DNS, so call it at each delivery."""
    host, port = _split(url, sandbox)
    try:
        addresses = (resolve or resolve_host)(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"{host} does not resolve") from exc
    if not addresses:
        raise UnsafeURL(f"{host} does not resolve")
    for address in addresses:
        problem = address_problem(address, sandbox=sandbox)
        if problem:
            raise UnsafeURL(f"{host}: {problem}")
    return VettedURL(url, host, port, tuple(addresses))


# -- HTTP: pinned to the vetted address, no redirects, no proxies --------------------------------
def _connect_to(ip: str) -> Callable[..., socket.socket]:
    def create(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((ip, address[1]), *args, **kwargs)

    return create


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, *, pinned: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = _connect_to(pinned)


class _PinnedHTTPS(http.client.HTTPSConnection):
    # TLS still checks the certificate against the host name (SNI), not the pinned address.
    def __init__(self, host: str, *, pinned: str, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = _connect_to(pinned)


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, pinned: str) -> None:
        super().__init__()
        self.pinned = pinned

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_PinnedHTTP, pinned=self.pinned), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, pinned: str) -> None:
        super().__init__()
        self.pinned = pinned

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_PinnedHTTPS, pinned=self.pinned), req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as an HTTPError: a failed attempt


def _snippet(error: urllib.error.HTTPError) -> str:
    try:
        return error.read(300).decode("utf-8", "replace") if error.fp else ""
    except (OSError, ValueError, http.client.HTTPException):
        return ""


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(target: VettedURL, headers: dict[str, str], body: bytes) -> Attempt:
    """POST `body` to the vetted address of `target` (10 s timeout). Never raises."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _NoRedirects(),
        _PinnedHTTPHandler(target.addresses[0]),
        _PinnedHTTPSHandler(target.addresses[0]),
    )
    # S310: vet_url allowed only http(s), and the handlers above connect to the vetted address.
    request = urllib.request.Request(  # noqa: S310
        target.url, data=body, method="POST", headers=headers
    )
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            response.read(65536)
            return Attempt(response.status, None)
    except urllib.error.HTTPError as exc:
        return Attempt(exc.code, f"HTTP {exc.code} {exc.reason}: {_snippet(exc)}".strip()[:1000])
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Attempt(None, f"{type(exc).__name__}: {reason}"[:1000])


# -- endpoints ----------------------------------------------------------------------------------
def may_access_merchant(user_id: int, roles: frozenset[str], merchant_id: int) -> bool:
    """Who may manage a merchant's webhooks and read its events: its staff and admins."""
    return "admin" in roles or access.allowed("merchant_staff", user_id, merchant_id)


def endpoint_view(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    """What the API shows of an endpoint; the secret only right after it was made."""
    view: dict[str, Any] = {
        "id": endpoint.id,
        "merchant_id": endpoint.merchant_id,
        "url": endpoint.url,
        "active": endpoint.active,
        "created_at": endpoint.created_at,
        "previous_secret_expires_at": retiring_until(endpoint.secrets, utcnow()),
    }
    if secret is not None:
        view["secret"] = secret
    return view


def _vetted_or_422(url: str, sandbox: bool) -> None:
    try:
        vet_url(url, sandbox=sandbox)
    except UnsafeURL as exc:
        raise invalid("url", str(exc), "unsafe_url") from exc


def register_endpoint(db: Database, sandbox: bool, merchant_id: int, url: str) -> dict[str, Any]:
    """Register a webhook URL for a merchant; returns it with its new secret (shown once).

    Refuses (422 `unsafe_url`) a URL that is not https (http too in sandbox mode) or whose host
    resolves to a non-public address; 409 past 10 active endpoints. Not idempotent by itself
    (the view honours an Idempotency-Key).
    """
    _vetted_or_422(url, sandbox)
    secret = new_secret()
    with db.transaction() as session:
        active = session.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.active.is_(True)
            )
        ).all()
        if len(active) >= MAX_ACTIVE_ENDPOINTS:
            raise Conflict(
                f"at most {MAX_ACTIVE_ENDPOINTS} active endpoints per merchant",
                code="too_many_endpoints",
            )
        endpoint = WebhookEndpoint(
            merchant_id=merchant_id, url=url, secrets=[secret], active=True, created_at=utcnow()
        )
        session.add(endpoint)
        session.flush()
        return endpoint_view(endpoint, secret)


def list_endpoints(
    db: Database, merchant_id: int, limit: int, starting_after: int | None
) -> dict[str, Any]:
    """A merchant's endpoints, oldest first, without their secrets."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id)
    with db.reader() as session:
        page = paginate(session, stmt, WebhookEndpoint.id, limit, starting_after)
    return {**page, "data": [endpoint_view(endpoint) for endpoint in page["data"]]}


def _lock_endpoint(session: Session, merchant_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None or endpoint.merchant_id != merchant_id:
        raise NotFound("no such webhook endpoint", code="webhook_endpoint_not_found")
    return endpoint


def rotate_secret(db: Database, merchant_id: int, endpoint_id: int) -> dict[str, Any]:
    """A new secret for an active endpoint (shown once). The previous one keeps signing,
    alongside the new one, for 24 h, so the merchant can switch without missing an event.
    Locks the endpoint; each call makes a new secret."""
    with db.transaction() as session:
        endpoint = _lock_endpoint(session, merchant_id, endpoint_id)
        if not endpoint.active:
            raise Conflict("the endpoint is disabled", code="webhook_endpoint_disabled")
        secret = new_secret()
        endpoint.secrets = rotated(endpoint.secrets, secret, utcnow())
        session.flush()
        return endpoint_view(endpoint, secret)


def disable_endpoint(db: Database, merchant_id: int, endpoint_id: int) -> dict[str, Any]:
    """Stop sending to an endpoint; its pending deliveries are cancelled. Idempotent."""
    with db.transaction() as session:
        endpoint = _lock_endpoint(session, merchant_id, endpoint_id)
        endpoint.active = False
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None)
        )
        session.flush()
        return endpoint_view(endpoint)


# -- catch-up lists -----------------------------------------------------------------------------
def event_view(event: MerchantEvent) -> dict[str, Any]:
    """An event as the list shows it: the webhook body plus its id (the `webhook-id`)."""
    return {
        "id": event.event_id,
        "type": event.type,
        "timestamp": event.payload.get("timestamp"),
        "data": event.payload.get("data", {}),
        "created_at": event.created_at,
    }


def _event_cursor(session: Session, merchant_id: int, event_id: str | None) -> int | None:
    if event_id is None:
        return None
    row_id = session.scalar(
        select(MerchantEvent.id).where(
            MerchantEvent.event_id == event_id, MerchantEvent.merchant_id == merchant_id
        )
    )
    if row_id is None:
        raise invalid("starting_after", "no such event of this merchant", "unknown_cursor")
    return int(row_id)


def list_events(
    db: Database,
    merchant_id: int,
    *,
    limit: int,
    starting_after: str | None = None,
    type_: str | None = None,
) -> dict[str, Any]:
    """A merchant's events in the order they happened (stable: by sequence). `starting_after`
    is the id of the last event the merchant has (a `webhook-id`); `next_cursor` is an event id.
    """
    if type_ is not None and type_ not in EVENT_TYPES:
        raise invalid("type", f"one of {', '.join(EVENT_TYPES)}")
    stmt = select(MerchantEvent).where(MerchantEvent.merchant_id == merchant_id)
    if type_ is not None:
        stmt = stmt.where(MerchantEvent.type == type_)
    with db.reader() as session:
        after = _event_cursor(session, merchant_id, starting_after)
        page = paginate(session, stmt, MerchantEvent.id, limit, after)
    data = [event_view(event) for event in page["data"]]
    cursor = data[-1]["id"] if page["has_more"] else None
    return {"data": data, "has_more": page["has_more"], "next_cursor": cursor}


def list_deliveries(
    db: Database,
    merchant_id: int,
    *,
    limit: int,
    starting_after: int | None = None,
    status: str | None = None,
    endpoint_id: int | None = None,
) -> dict[str, Any]:
    """Delivery attempts to a merchant's endpoints (status, attempts, last answer), by id."""
    stmt = (
        select(WebhookDelivery, MerchantEvent.event_id, MerchantEvent.type)
        .join(MerchantEvent, MerchantEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.merchant_id == merchant_id)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if starting_after is not None:
        stmt = stmt.where(WebhookDelivery.id > starting_after)
    with db.reader() as session:
        rows = session.execute(stmt.order_by(WebhookDelivery.id).limit(limit + 1)).all()
    data = [_delivery_view(row[0], row[1], row[2]) for row in rows[:limit]]
    more = len(rows) > limit
    return {"data": data, "has_more": more, "next_cursor": data[-1]["id"] if more else None}


def _delivery_view(delivery: WebhookDelivery, event_id: str, type_: str) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": event_id,
        "event_type": type_,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
    }


# -- delivery -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Outgoing:
    msg_id: str
    url: str
    keys: list[str]
    body: bytes


def _load(session: Session, delivery_id: int, now: datetime) -> _Outgoing | str:
    """What to send, or why nothing is sent (already delivered, cancelled, not yet due)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return "missing"
    if delivery.status != DeliveryStatus.PENDING:
        return str(delivery.status)
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + DUE_SLACK:
        return "not_due"  # a duplicate or early run of an older attempt's job
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    event = session.get(MerchantEvent, delivery.event_id)
    if endpoint is None or event is None or not endpoint.active:
        delivery.status = DeliveryStatus.CANCELLED
        return str(DeliveryStatus.CANCELLED)
    body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
    return _Outgoing(event.event_id, endpoint.url, signing_secrets(endpoint.secrets, now), body)


def _send(outgoing: _Outgoing, sandbox: bool, now: datetime) -> Attempt:
    try:
        target = vet_url(outgoing.url, sandbox=sandbox)
    except UnsafeURL as exc:
        return Attempt(None, f"refused: {exc}")
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": outgoing.msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            outgoing.keys, outgoing.msg_id, timestamp, outgoing.body
        ),
    }
    return post(target, headers, outgoing.body)


def _record(session: Session, delivery_id: int, attempt: Attempt, now: datetime) -> str:
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return str(delivery.status) if delivery else "missing"
    delivery.attempts += 1
    delivery.last_status_code = attempt.status_code
    delivery.last_error = attempt.error
    if attempt.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return str(DeliveryStatus.DELIVERED)
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        return str(DeliveryStatus.FAILED)
    delay = RETRY_DELAYS[delivery.attempts - 1]
    delivery.next_attempt_at = now + delay
    enqueue(
        session,
        "payments.jobs.deliver_webhook_job",
        delivery.id,
        job_id=f"webhook:{delivery.id}:{delivery.attempts + 1}",
        queue="low",
        max_attempts=3,
        delay=delay,
    )
    return "retry_scheduled"


def deliver(db: Database, sandbox: bool, delivery_id: int, *, now: datetime | None = None) -> str:
    """Send one event to one endpoint (one attempt) and record the answer.

    At least once: a 2xx marks the delivery delivered; anything else schedules the next
    attempt through the outbox (`webhook:<id>:<n>`, RETRY_DELAYS) until MAX_ATTEMPTS, then
    `failed`. Safe to run twice: a delivered, failed or cancelled delivery is not sent again,
    and a job that fires before its attempt is due does nothing. The HTTP call happens outside
    any database transaction. `now` is for tests. Returns what happened.
    """
    now = now or utcnow()
    with db.transaction() as session:
        outgoing = _load(session, delivery_id, now)
    if isinstance(outgoing, str):
        return outgoing
    attempt = _send(outgoing, sandbox, now)
    with db.transaction() as session:
        return _record(session, delivery_id, attempt, now)
