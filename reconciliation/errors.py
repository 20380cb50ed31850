"""Exceptions of the reconciliation package; core/http.py maps them to problem+json."""

from __future__ import annotations

from core.errors import Conflict, NotFound, ValidationFailed


class StatementNotFound(NotFound):
    code = "statement_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class ItemNotFound(NotFound):
    code = "item_not_found"


class ReportNotFound(NotFound):
    code = "report_not_found"


class SandboxOnly(NotFound):
    code = "sandbox_disabled"


class UnknownAccount(ValidationFailed):
    code = "unknown_account"
    title = "Not one of our collection accounts"


class FutureDay(ValidationFailed):
    code = "future_business_day"


class DayClosed(Conflict):
    code = "business_day_closed"
    title = "Business day closed"


class DayNotReconciled(Conflict):
    code = "day_not_reconciled"
    title = "The day cannot close yet"


class NotResolvable(Conflict):
    code = "item_not_resolvable"


class AlreadyResolved(Conflict):
    code = "already_resolved"


class StaleRun(Conflict):
    code = "stale_run"
    title = "Not the latest run of the day"


class NothingToPost(Conflict):
    code = "nothing_to_post"
