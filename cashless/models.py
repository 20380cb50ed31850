"""Every package's models, imported so that Alembic and tests see one metadata."""

from __future__ import annotations

from core import audit, diagnostics, idempotency, keys, queue, users  # noqa: F401
from core.db import Base
from payments import models as _payments_models  # noqa: F401

metadata = Base.metadata
