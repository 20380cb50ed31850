"""Every package's models, imported so that Alembic and tests see one metadata."""

from __future__ import annotations

from core import audit, diagnostics, idempotency, keys, queue, users  # noqa: F401
from core.db import Base
from merchants import models as _merchants_models  # noqa: F401
from payments import models as _payments_models  # noqa: F401
from payments.fees import models as _fees_models  # noqa: F401
from reconciliation import models as _reconciliation_models  # noqa: F401
from ticketing import models as _ticketing_models  # noqa: F401

metadata = Base.metadata
