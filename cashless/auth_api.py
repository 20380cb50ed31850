"""Log in, register, who am I, users and device keys, and the public JWKS."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from cashless.schemas import (
    ApiKeyCreateSchema,
    ApiKeySchema,
    JwksSchema,
    ListQuerySchema,
    RegisterSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
    UserListSchema,
    UserSchema,
    UserUpdateSchema,
)
from core import users
from core.auth import current_principal, issue_token, require
from core.http import services
from core.keys import Purpose, jwks
from core.ratelimit import limiter

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Identity and access")
well_known = Blueprint("well_known", __name__, url_prefix="/.well-known", description="Public keys")


def _login_limit() -> str:
    return services().settings.login_rate_limit


@blp.route("/auth/token", methods=["POST"])
@limiter.limit(_login_limit)
@blp.arguments(TokenRequestSchema)
@blp.response(200, TokenSchema)
def token(body: dict[str, Any]) -> dict[str, Any]:
    """Exchange a username and password for an ES256 access token."""
    user = users.authenticate(services().db, body["username"], body["password"])
    access_token, ttl = issue_token(user)
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl}


@blp.route("/auth/register", methods=["POST"])
@limiter.limit(_login_limit)
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
def register(body: dict[str, Any]) -> users.User:
    """Commuters register themselves (always and only the commuter role)."""
    return users.register_commuter(
        services().db, body["username"], body["password"], body["display_name"]
    )


@blp.route("/auth/me")
@blp.response(200, UserSchema)
@require()
def me() -> users.User:
    """The caller's own account."""
    with services().db.reader() as session:
        user = users.get_user(session, current_principal().user_id)
        assert user is not None
        return user


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserListSchema)
    @require("admin")
    @blp.arguments(ListQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List users by id (cursor pagination)."""
        return users.list_users(services().db, query["limit"], query.get("starting_after"))

    @blp.response(201, UserSchema)
    @require("admin")
    @blp.arguments(UserCreateSchema)
    def post(self, body: dict[str, Any]) -> users.User:
        """Create a user with any roles (audited)."""
        return users.create_user(
            services().db,
            current_principal().username,
            body["username"],
            body["password"],
            body["roles"],
            body["display_name"],
        )


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.response(200, UserSchema)
@require("admin")
@blp.arguments(UserUpdateSchema)
def update_user(body: dict[str, Any], user_id: int) -> users.User:
    """Change a user's roles, deactivate them or reset their password (audited)."""
    return users.update_user(services().db, current_principal().username, user_id, **body)


@blp.route("/users/<int:user_id>/api-keys", methods=["POST"])
@blp.response(201, ApiKeySchema)
@require("admin")
@blp.arguments(ApiKeyCreateSchema)
def create_api_key(body: dict[str, Any], user_id: int) -> dict[str, str]:
    """Issue a device API key (shown once)."""
    return {
        "api_key": users.create_api_key(
            services().db, current_principal().username, user_id, body["label"]
        )
    }


@well_known.route("/jwks.json")
@well_known.response(200, JwksSchema)
def jwks_json() -> dict[str, Any]:
    """The public keys that verify our access tokens."""
    return jwks(services().keyring, Purpose.TOKEN)
