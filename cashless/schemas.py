"""Schemas of the application-level endpoints: auth, users, system."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from core.users import Role
from payments.schemas import StrictSchema  # one definition of 'unknown fields are a 422'

ROLE_NAMES = [r.value for r in Role]


class TokenRequestSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(1, 64))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(1, 256))


class TokenSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer()


class RegisterSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(3, 64))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(4, 256))
    display_name = ma.fields.String(load_default="", validate=validate.Length(0, 120))


class UserSchema(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()
    roles = ma.fields.Method("dump_roles")
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()

    def dump_roles(self, user: object) -> list[str]:
        return sorted(getattr(user, "role_set", []))


class UserCreateSchema(RegisterSchema):
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_NAMES)),
        required=True,
        validate=validate.Length(1, 6),
    )


class UserUpdateSchema(StrictSchema):
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_NAMES)), validate=validate.Length(1, 6)
    )
    active = ma.fields.Boolean()
    password = ma.fields.String(load_only=True, validate=validate.Length(4, 256))


class ListQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200))
    starting_after = ma.fields.Integer(validate=validate.Range(0))


class UserListSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(UserSchema))
    has_more = ma.fields.Boolean()
    next_cursor = ma.fields.Integer(allow_none=True)


class ApiKeyCreateSchema(StrictSchema):
    label = ma.fields.String(load_default="", validate=validate.Length(0, 120))


class ApiKeySchema(ma.Schema):
    api_key = ma.fields.String()


class PingCreateSchema(StrictSchema):
    message = ma.fields.String(load_default="ping", validate=validate.Length(1, 200))
    hold_seconds = ma.fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 30))


class PingSchema(ma.Schema):
    id = ma.fields.Integer()
    message = ma.fields.String()
    status = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    answered_at = ma.fields.AwareDateTime(allow_none=True)
    answered_by = ma.fields.String(allow_none=True)


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    server_time = ma.fields.AwareDateTime()


class JwksSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict())
