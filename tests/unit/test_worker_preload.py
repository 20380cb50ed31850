"""`cashless worker` imports what jobs need before RQ forks a work horse per job.

Without it every horse imported the models and configured SQLAlchemy's mappers anew: a webhook
delivery took ~0.7 s, and the mixed load test (bench/bench_load_mixed.py) saw merchant webhooks
fall minutes behind at 15 payments a second. This checks, in a fresh interpreter, that after
`preload_job_modules()` running the imports of any job function loads no module at all and that
every mapper is already configured; so a new job with a new lazy import fails here, not in
production.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT

JOB_FILES = [
    "core/diagnostics.py",
    "core/idempotency.py",
    "core/queue.py",
    "payments/jobs.py",
    "merchants/jobs.py",
    "reconciliation/jobs.py",
]


def lazy_imports_of_jobs() -> list[str]:
    """Modules imported inside job functions (`*_job`, and `run_job` that runs them all)."""
    modules = set()
    for name in JOB_FILES:
        tree = ast.parse((ROOT / name).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.name.endswith("_job"):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    modules.add(inner.module)
                elif isinstance(inner, ast.Import):
                    modules.update(alias.name for alias in inner.names)
    return sorted(modules)


def in_a_fresh_interpreter(script: str) -> Any:
    """Run `script` in a new Python process; its last line of output, read as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_jobs_import_nothing_after_the_worker_preloads() -> None:
    lazy = lazy_imports_of_jobs()
    assert "payments.webhooks" in lazy  # the scan sees the job that was slow
    script = (
        "import importlib, json, sys\n"
        "from cashless.cli import preload_job_modules\n"
        "from core.db import Base\n"
        "preload_job_modules()\n"
        "configured = all(m.configured for m in Base.registry.mappers)\n"
        "before = set(sys.modules)\n"
        f"for name in {lazy!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({'configured': configured,"
        " 'new': sorted(set(sys.modules) - before)}))\n"
    )
    answer = in_a_fresh_interpreter(script)
    assert answer["new"] == [], "add these to cashless.cli.JOB_MODULES"
    assert answer["configured"]


def test_the_worker_runs_the_same_payment_handlers_as_the_web_app() -> None:
    script = (
        "import json\n"
        "from cashless.cli import preload_job_modules\n"
        "from core.events import handlers\n"
        "preload_job_modules()\n"
        "print(json.dumps({event: sorted(f'{h.__module__}.{h.__name__}' for h in found)"
        " for event, found in handlers._handlers.items()}))\n"
    )
    registered = in_a_fresh_interpreter(script)
    assert registered == {
        "payment.succeeded": [
            "merchants.parking.on_payment_succeeded",
            "payments.fees.service.on_payment_succeeded",
        ],
        "payment.refunded": ["ticketing.service.on_payment_refunded"],
    }
