"""The skeleton's contract: problem+json everywhere, health, OpenAPI, auth and idempotency."""

from __future__ import annotations

import time
from typing import Any

import jwt
from flask.testing import FlaskClient

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.json if response.json is not None else {}
    import json

    body = json.loads(response.get_data(as_text=True))
    for field in ("type", "title", "status", "detail", "code", "request_id"):
        assert field in body, field
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    if code:
        assert body["code"] == code
    return body


def test_health_and_ready(client: FlaskClient) -> None:
    assert client.get("/healthz").json["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"]["database"] == "ok"


def test_openapi_document_and_local_docs(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/auth/token" in spec["paths"]
    page = client.get("/api/docs").get_data(as_text=True)
    assert "/api/docs/assets/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_is_problem_json(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_problem_json(client: FlaskClient) -> None:
    response = client.delete("/api/v1/auth/token")
    assert_problem(response, 405, "method_not_allowed")


def test_malformed_json_is_problem_json(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", data="{not json", content_type="application/json")
    assert_problem(response, 400, "malformed_json")


def test_validation_error_lists_fields(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "admin1", "extra": 1})
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert {"password", "extra"} <= fields


def test_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc12345-test"})
    assert response.headers["X-Request-ID"] == "abc12345-test"


def test_token_login_and_me(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "finance1", "password": "demo"})
    assert response.status_code == 200
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    keys = client.get("/.well-known/jwks.json").json["keys"]
    assert header["kid"] in {k["kid"] for k in keys}
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json["username"] == "finance1" and me.json["roles"] == ["finance"]


def test_wrong_password_is_401(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "finance1", "password": "x"})
    assert_problem(response, 401, "invalid_credentials")


def _claims(client: FlaskClient, username: str = "admin1") -> dict[str, Any]:
    token = client.post("/api/v1/auth/token", json={"username": username, "password": "demo"}).json[
        "access_token"
    ]
    return jwt.decode(token, options={"verify_signature": False})


def _get_me(client: FlaskClient, token: str) -> Any:
    return client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_alg_none_token_is_rejected(client: FlaskClient) -> None:
    claims = _claims(client)
    forged = jwt.encode(claims, None, algorithm="none", headers={"kid": "1"})
    assert_problem(_get_me(client, forged), 401)


def test_hs256_token_signed_with_public_key_is_rejected(client: FlaskClient) -> None:
    claims = _claims(client)
    jwk = client.get("/.well-known/jwks.json").json["keys"][0]
    public_pem = jwt.algorithms.ECAlgorithm.from_jwk(jwk).public_bytes(  # type: ignore[union-attr]
        encoding=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).Encoding.PEM,
        format=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]
        ).PublicFormat.SubjectPublicKeyInfo,
    )
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{b64(signature)}"
    assert_problem(_get_me(client, forged), 401)


def test_expired_token_is_rejected(app: Any, client: FlaskClient) -> None:
    claims = _claims(client)
    claims.update(
        iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600
    )
    with app.app_context():
        key = app.extensions["cashless"].keyring.current("token")
    expired = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": str(key.kid)})
    assert_problem(_get_me(client, expired), 401, "token_expired")


def test_unknown_kid_is_rejected(app: Any, client: FlaskClient) -> None:
    claims = _claims(client)
    with app.app_context():
        key = app.extensions["cashless"].keyring.current("token")
    wrong = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": "99"})
    assert_problem(_get_me(client, wrong), 401, "invalid_token")


def test_rotated_key_keeps_verifying_until_retired(
    app: Any, client: FlaskClient, auth: Any
) -> None:
    from core.keys import Purpose, retire, rotate

    headers = auth("admin1")
    svc = app.extensions["cashless"]
    old_kid = svc.keyring.current(Purpose.TOKEN).kid
    new_kid = rotate(svc.db, svc.keyring, Purpose.TOKEN, actor="test")
    assert new_kid != old_kid
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    fresh = client.post("/api/v1/auth/token", json={"username": "admin1", "password": "demo"})
    assert jwt.get_unverified_header(fresh.json["access_token"])["kid"] == str(new_kid)
    retire(svc.db, svc.keyring, Purpose.TOKEN, old_kid, actor="test")
    assert_problem(client.get("/api/v1/auth/me", headers=headers), 401)


def test_wrong_role_is_403(client: FlaskClient, auth: Any) -> None:
    response = client.get("/api/v1/users", headers=auth("commuter1"))
    assert_problem(response, 403, "forbidden_role")


def test_missing_token_is_401(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/users"), 401, "unauthorized")


def test_device_api_key_authenticates(app: Any, client: FlaskClient) -> None:
    from cashless.demo import _demo_api_key

    prefix, secret = _demo_api_key(app.extensions["cashless"].settings.secret_key)
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer hck_{prefix}_{secret}"})
    assert me.status_code == 200 and me.json["username"] == "gate1"
    bad = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer hck_{prefix}_nope"})
    assert_problem(bad, 401, "invalid_api_key")


def test_self_registration_gives_commuter_only(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"username": "rider7", "password": "secret7"}
    )
    assert response.status_code == 201 and response.json["roles"] == ["commuter"]
    sneaky = client.post(
        "/api/v1/auth/register",
        json={"username": "rider8", "password": "secret8", "roles": ["admin"]},
    )
    assert_problem(sneaky, 422)
    assert_problem(
        client.post("/api/v1/auth/register", json={"username": "rider7", "password": "other7"}),
        409,
        "username_taken",
    )


def test_admin_manages_users_audited(app: Any, client: FlaskClient, auth: Any) -> None:
    headers = auth("admin1")
    created = client.post(
        "/api/v1/users",
        headers=headers,
        json={"username": "cashier2", "password": "pass2", "roles": ["vendor"]},
    )
    assert created.status_code == 201
    user_id = created.json["id"]
    patched = client.patch(
        f"/api/v1/users/{user_id}", headers=headers, json={"roles": ["vendor", "attendant"]}
    )
    assert patched.json["roles"] == ["attendant", "vendor"]
    key = client.post(f"/api/v1/users/{user_id}/api-keys", headers=headers, json={"label": "pos"})
    assert key.status_code == 201 and key.json["api_key"].startswith("hck_")
    from core.audit import history

    with app.extensions["cashless"].db.reader() as session:
        actions = [r.action for r in history(session, "user", user_id)]
    assert actions == ["user.create", "user.update", "api_key.issue"]
    page = client.get("/api/v1/users?limit=2", headers=headers).json
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = client.get(
        f"/api/v1/users?limit=200&starting_after={page['next_cursor']}", headers=headers
    ).json
    assert rest["has_more"] is False
    assert page["data"][-1]["id"] < rest["data"][0]["id"]


def test_idempotent_replay_and_changed_body(client: FlaskClient, auth: Any) -> None:
    headers = {**auth("admin1"), "Idempotency-Key": "ping-1"}
    first = client.post("/api/v1/system/pings", headers=headers, json={"message": "one"})
    assert first.status_code == 202
    again = client.post("/api/v1/system/pings", headers=headers, json={"message": "one"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    changed = client.post("/api/v1/system/pings", headers=headers, json={"message": "two"})
    assert_problem(changed, 422, "idempotency_key_reused")
    bad = client.post(
        "/api/v1/system/pings",
        headers={**headers, "Idempotency-Key": "no spaces"},
        json={"message": "x"},
    )
    assert_problem(bad, 422, "idempotency_key_invalid")


def test_idempotency_key_is_scoped_to_caller(client: FlaskClient, auth: Any) -> None:
    first = client.post(
        "/api/v1/system/pings",
        json={"message": "a"},
        headers={**auth("admin1"), "Idempotency-Key": "shared-key"},
    )
    other = client.post(
        "/api/v1/system/pings",
        json={"message": "a"},
        headers={**auth("finance1"), "Idempotency-Key": "shared-key"},
    )
    assert other.status_code == 202 and "Idempotent-Replayed" not in other.headers
    assert other.json["id"] != first.json["id"]


def test_ping_runs_in_process_job(client: FlaskClient, auth: Any) -> None:
    headers = auth("admin1")
    ping = client.post("/api/v1/system/pings", headers=headers, json={"message": "hello"}).json
    deadline = time.time() + 5
    status = ping["status"]
    while status != "answered" and time.time() < deadline:
        time.sleep(0.05)
        status = client.get(f"/api/v1/system/pings/{ping['id']}", headers=headers).json["status"]
    assert status == "answered"


def test_login_rate_limit(app: Any) -> None:
    from core.config import Settings

    settings: Settings = app.extensions["cashless"].settings
    app.extensions["cashless"].settings = settings.with_overrides(login_rate_limit="3 per minute")
    client = app.test_client()
    codes = [
        client.post(
            "/api/v1/auth/token",
            json={"username": "nobody", "password": "x"},
            environ_base={"REMOTE_ADDR": "10.9.8.7"},
        ).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3] == 429
    response = client.post(
        "/api/v1/auth/token",
        json={"username": "nobody", "password": "x"},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
