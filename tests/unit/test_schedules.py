"""Schedules fire at Asia/Ho_Chi_Minh times, in-process and under `rq cron` alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from cashless.schedules import all_schedules
from core.queue import ALLOWED_PREFIXES, next_cron_run, resolve
from tests.conftest import ROOT


def test_every_schedule_names_a_real_job() -> None:
    for schedule in all_schedules():
        assert schedule.func.startswith(ALLOWED_PREFIXES)
        assert callable(resolve(schedule.func))
        assert (schedule.cron is None) != (schedule.interval is None)


def test_in_process_cron_is_read_in_hanoi_time() -> None:
    after = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 07:00 in Hanoi
    assert next_cron_run("30 3 * * *", after) == datetime(2026, 11, 28, 20, 30, tzinfo=UTC)


def test_rq_cron_config_reads_cron_in_hanoi_time() -> None:
    """RQ 3 reads cron strings in the process's local time: `cashless cron` sets TZ."""
    script = (
        "import json\n"
        "from datetime import datetime, timezone\n"
        "from rq import cron\n"
        "import cashless.cron\n"
        "entry = next(e for e in cron._job_data_registry if e['name'] == 'idempotency-purge')\n"
        "job = cron.CronJob(queue_name=entry['queue_name'], func=entry['func'],"
        " cron=entry['cron'], name=entry['name'], args=entry['args'])\n"
        "job.latest_enqueue_time = datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc)\n"
        "print(json.dumps(job.get_next_enqueue_time().isoformat()))\n"
    )
    env = {**os.environ, "TZ": "Asia/Ho_Chi_Minh", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == "2026-11-28T20:30:00+00:00"
