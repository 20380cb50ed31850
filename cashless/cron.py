"""The `rq cron` configuration: `TZ=Asia/Ho_Chi_Minh rq cron cashless.cron`.

RQ 3 reads cron strings in the scheduler's local time, so the process runs with
TZ=Asia/Ho_Chi_Minh (the Makefile and docs say so). Each entry only enqueues
`core.queue.run_schedule(name)`, which writes the outbox row with a per-day unique id: the
database, not the scheduler, is the guard against running a day twice.
"""

from __future__ import annotations

from rq import cron

from cashless.schedules import all_schedules
from core.queue import run_schedule, set_schedule_provider

set_schedule_provider(all_schedules)

for _schedule in all_schedules():
    cron.register(
        run_schedule,
        _schedule.queue,
        args=(_schedule.name,),
        interval=_schedule.interval,
        cron=_schedule.cron,
        name=_schedule.name,
    )
