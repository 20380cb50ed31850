"""Every package's models, imported so that Alembic and tests see one metadata."""

from __future__ import annotations

from core import audit, diagnostics, idempotency, keys, queue, users  # noqa: F401
from core.db import Base

metadata = Base.metadata
