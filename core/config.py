"""One settings object, read from the environment only.

Secrets that are missing on the embedded default are generated once into the instance folder,
under a file lock, so every process of one installation agrees on them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

SECRET_NAMES = ("secret_key", "bank_webhook_secret", "key_encryption_key", "holder_ref_secret")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with. Built by `load_settings`, never mutated."""

    instance_path: Path
    database_url: str
    redis_url: str | None = None
    demo: bool = False
    sandbox: bool = False
    secret_key: str = ""
    bank_webhook_secret: str = ""
    key_encryption_key: str = ""
    holder_ref_secret: str = ""
    collection_bin: str = "970436"
    collection_account: str = "0011001234567"
    collection_name: str = "HANOI CASHLESS"
    collection_city: str = "HA NOI"
    public_url: str = "http://127.0.0.1:5000"
    token_ttl_seconds: int = 3600
    payment_ttl_seconds: int = 900
    login_rate_limit: str = "10 per minute"
    validation_rate_limit: str = "6000 per minute"
    log_level: str = "INFO"
    testing: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True when the service runs on SQLite without Redis (the `make run` default)."""
        return self.database_url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def with_overrides(self, **values: Any) -> Settings:
        return replace(self, **values)


def _instance_path(env: Mapping[str, str]) -> Path:
    raw = env.get("CASHLESS_INSTANCE_PATH") or str(Path.cwd() / "instance")
    path = Path(raw).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _normalise_db_url(url: str) -> str:
    # Heroku-style URLs and plain postgresql:// should use the psycopg 3 driver.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def ensure_instance_secrets(instance_path: Path) -> dict[str, str]:
    """Return the generated secrets of this instance, creating any that are missing.

    Guarantees: runs under an exclusive file lock, so concurrent first starts (several gunicorn
    workers, the CLI and a worker) all read the same values; the file is readable by its owner only.
    """
    path = instance_path / "secrets.json"
    with FileLock(str(path) + ".lock", timeout=30):
        current: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in SECRET_NAMES if not current.get(name)]
        if missing:
            for name in missing:
                current[name] = secrets.token_urlsafe(48)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(current, indent=2))
            tmp.chmod(0o600)
            tmp.replace(path)
        return current


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment (and explicit overrides, used by tests)."""
    env = os.environ if env is None else env
    instance_path = _instance_path(env)
    database_url = _normalise_db_url(
        env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'cashless.sqlite3'}"
    )
    from_env = {name: env.get(f"CASHLESS_{name.upper()}", "") for name in SECRET_NAMES}
    if any(not value for value in from_env.values()):
        generated = ensure_instance_secrets(instance_path)
        from_env = {name: from_env[name] or generated[name] for name in SECRET_NAMES}
    settings = Settings(
        instance_path=instance_path,
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        demo=_flag(env.get("CASHLESS_DEMO")),
        sandbox=_flag(env.get("CASHLESS_SANDBOX")),
        collection_bin=env.get("CASHLESS_COLLECTION_BIN", "970436"),
        collection_account=env.get("CASHLESS_COLLECTION_ACCOUNT", "0011001234567"),
        collection_name=env.get("CASHLESS_COLLECTION_NAME", "HANOI CASHLESS"),
        collection_city=env.get("CASHLESS_COLLECTION_CITY", "HA NOI"),
        public_url=env.get("CASHLESS_PUBLIC_URL", "http://127.0.0.1:5000"),
        token_ttl_seconds=int(env.get("CASHLESS_TOKEN_TTL", "3600")),
        payment_ttl_seconds=int(env.get("CASHLESS_PAYMENT_TTL", "900")),
        login_rate_limit=env.get("CASHLESS_LOGIN_RATE_LIMIT", "10 per minute"),
        validation_rate_limit=env.get("CASHLESS_VALIDATION_RATE_LIMIT", "6000 per minute"),
        log_level=env.get("CASHLESS_LOG_LEVEL", "INFO"),
        secret_key=from_env["secret_key"],
        bank_webhook_secret=from_env["bank_webhook_secret"],
        key_encryption_key=from_env["key_encryption_key"],
        holder_ref_secret=from_env["holder_ref_secret"],
    )
    return settings.with_overrides(**overrides) if overrides else settings
