"""Who is calling (SPEC §13): bearer JWTs (ES256, `kid`), device API keys, page sessions with
CSRF, and short-lived signed URL tokens for streams and images.

Verification pins the algorithm list to ES256 and looks the key up by `kid` in the token key
ring, so `alg: none`, an HS256 token signed with the public key, an unknown or retired `kid`
and an expired token are all refused with 401.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jwt
from flask import g, request, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core import users
from core.clock import utcnow
from core.errors import Forbidden, Unauthorized
from core.http import services
from core.keys import Purpose

F = TypeVar("F", bound=Callable[..., Any])
ISSUER = "hanoi-cashless"
AUDIENCE = "hanoi-cashless-api"
URL_TOKEN_TTL = 600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    roles: frozenset[str]
    via: str  # "token", "api_key", "session" or "url_token"

    @property
    def scope(self) -> str:
        """The idempotency scope: keys are per caller."""
        return f"user:{self.user_id}"

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def issue_token(user: users.User) -> tuple[str, int]:
    """An ES256 access token for `user` with the current token key's `kid`."""
    svc = services()
    key = svc.keyring.current(Purpose.TOKEN)
    now = int(utcnow().timestamp())
    ttl = svc.settings.token_ttl_seconds
    claims = {
        "sub": str(user.id),
        "name": user.username,
        "roles": sorted(user.role_set),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": secrets.token_hex(8),
    }
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": str(key.kid)})
    return token, ttl


def _principal_from_jwt(token: str) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
        kid = int(str(header.get("kid", "")))
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized("malformed token", code="invalid_token") from exc
    key = services().keyring.verifying(Purpose.TOKEN, kid)
    if key is None:
        raise Unauthorized("unknown signing key", code="invalid_token")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token", code="invalid_token") from exc
    with services().db.reader() as db_session:
        user = users.get_user(db_session, int(claims["sub"]))
        if user is None or not user.active:
            raise Unauthorized("account disabled", code="invalid_token")
        return Principal(user.id, user.username, user.role_set, "token")


def _from_user(user: users.User, via: str) -> Principal:
    return Principal(user.id, user.username, user.role_set, via)


def _authenticate() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("use 'Authorization: Bearer <token>'", code="invalid_token")
        if credential.startswith("hck_"):
            user = users.user_for_api_key(services().db, credential.strip())
            if user is None:
                raise Unauthorized("unknown API key", code="invalid_api_key")
            return _from_user(user, "api_key")
        return _principal_from_jwt(credential.strip())
    if "uid" in session:
        return _principal_from_session()
    return None


def _principal_from_session() -> Principal | None:
    with services().db.reader() as db_session:
        user = users.get_user(db_session, int(session["uid"]))
        if user is None or not user.active:
            session.clear()
            return None
    if request.method not in SAFE_METHODS:
        check_csrf()
    return _from_user(user, "session")


def current_principal(optional: bool = False, url_token: bool = False) -> Principal:
    """The authenticated caller of this request (cached). 401 if none and not optional."""
    if "principal" not in g:
        principal = _authenticate()
        if principal is None and url_token and request.args.get("token"):
            principal = _principal_from_url_token(request.args["token"], request.path)
        g.principal = principal
    if g.principal is None and not optional:
        raise Unauthorized("log in first", code="unauthorized")
    return cast(Principal, g.principal)


def require(
    *roles: str, url_token: bool = False, owner: Callable[..., bool] | None = None
) -> Callable[[F], F]:
    """Allow the view for callers holding one of `roles` (any role when none given).

    `owner(principal, **view_kwargs)` adds an ownership check (a vendor's own merchant, a
    commuter's own ticket); failing it is a 404 so ids of others are not confirmed.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal(url_token=url_token)
            if roles and not principal.has(*roles):
                raise Forbidden("your role may not do this", code="forbidden_role")
            if owner is not None and not owner(principal, **kwargs):
                from core.errors import NotFound

                raise NotFound("no such resource")
            return view(*args, **kwargs)

        wrapper._required_roles = roles  # type: ignore[attr-defined]
        wrapper._url_token = url_token  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator


# -- page sessions and CSRF -----------------------------------------------------------------------
def login_session(user: users.User) -> None:
    session.clear()
    session["uid"] = user.id
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True


def logout_session() -> None:
    session.clear()


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def check_csrf() -> None:
    """Every state-changing request made with the session cookie carries the CSRF token."""
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden("missing or wrong CSRF token", code="csrf_failed")


# -- signed URL tokens ----------------------------------------------------------------------------
def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret_key, salt="url-token")


def url_token(path: str, user_id: int) -> str:
    """A token that lets `EventSource` or `<img>` fetch exactly `path` for 10 minutes."""
    return _serializer().dumps({"p": path, "u": user_id})


def _principal_from_url_token(token: str, path: str) -> Principal:
    try:
        data = _serializer().loads(token, max_age=URL_TOKEN_TTL)
    except SignatureExpired as exc:
        raise Unauthorized("link expired", code="url_token_expired") from exc
    except BadSignature as exc:
        raise Unauthorized("bad link token", code="invalid_url_token") from exc
    if data.get("p") != path:
        raise Unauthorized("link token is for another resource", code="invalid_url_token")
    with services().db.reader() as db_session:
        user = users.get_user(db_session, int(data["u"]))
        if user is None or not user.active:
            raise Unauthorized("account disabled", code="invalid_url_token")
        return _from_user(user, "url_token")


def signed_url(path: str, user_id: int) -> str:
    return f"{path}?token={url_token(path, user_id)}"
