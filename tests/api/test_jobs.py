"""The in-process job path of the embedded default: outbox, sweeper, retries, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from flask import Flask

from core import diagnostics
from core.clock import utcnow
from core.queue import JobStatus, OutboxJob, enqueue
from tests.conftest import wait_for


def services(app: Flask) -> Any:
    return app.extensions["cashless"]


def job_status(app: Flask, job_id: str) -> str:
    with services(app).db.reader() as session:
        return session.get(OutboxJob, job_id).status


def test_sweeper_reruns_a_job_whose_heartbeat_stopped(app: Flask) -> None:
    """A worker killed mid-job leaves the row `running` with an old heartbeat: re-run it."""
    svc = services(app)
    ping = diagnostics.create_ping(svc.db, "orphan")
    wait_for(lambda: job_status(app, f"ping:{ping.id}") == JobStatus.DONE, timeout=20)
    with svc.db.transaction() as session:
        ping_row = session.get(diagnostics.Ping, ping.id)
        ping_row.status = "queued"
        job = session.get(OutboxJob, f"ping:{ping.id}")
        job.status = JobStatus.RUNNING
        job.heartbeat_at = utcnow() - timedelta(minutes=5)
    assert svc.runner.sweep() == {"resent": 0, "restarted": 1}
    wait_for(lambda: diagnostics.get_ping(svc.db, ping.id).status == "answered", timeout=20)
    with svc.db.reader() as session:
        assert session.get(OutboxJob, f"ping:{ping.id}").status == JobStatus.DONE


def test_enqueue_is_idempotent_by_job_id(app: Flask) -> None:
    svc = services(app)
    with svc.db.transaction() as session:
        enqueue(session, "core.diagnostics.answer_ping_job", 999, job_id="same-id")
        enqueue(session, "core.diagnostics.answer_ping_job", 999, job_id="same-id")
    with svc.db.reader() as session:
        assert session.query(OutboxJob).filter(OutboxJob.id == "same-id").count() == 1


def test_failed_job_is_retried_then_marked_failed(app: Flask) -> None:
    svc = services(app)
    with svc.db.transaction() as session:
        enqueue(session, "core.queue.resolve", "os.system", job_id="bad-job", max_attempts=1)

    def finished() -> bool:
        with svc.db.reader() as session:
            return session.get(OutboxJob, "bad-job").status == JobStatus.FAILED

    wait_for(finished)
    with svc.db.reader() as session:
        assert "outside the allowed packages" in session.get(OutboxJob, "bad-job").error


def test_enqueue_refuses_functions_outside_our_packages(app: Flask) -> None:
    import pytest

    svc = services(app)
    with pytest.raises(ValueError, match="outside"):
        with svc.db.transaction() as session:
            enqueue(session, "os.system", "echo hi")


def test_cli_keys_rotate_and_export(app: Flask, monkeypatch: Any) -> None:
    from cashless.cli import main

    settings = services(app).settings
    monkeypatch.setenv("CASHLESS_INSTANCE_PATH", str(settings.instance_path))
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "rotate", "--purpose", "bundle"])
    second = runner.invoke(main, ["keys", "rotate", "--purpose", "bundle"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert json.loads(second.output)["kid"] == json.loads(first.output)["kid"] + 1
    exported = json.loads(runner.invoke(main, ["keys", "export", "--purpose", "bundle"]).output)
    assert {k["kid"] for k in exported["keys"]} >= {str(json.loads(second.output)["kid"])}
    assert all("d" not in key for key in exported["keys"])  # public parts only


def test_sweeper_resends_jobs_the_queue_lost(app: Flask) -> None:
    """Handed over but never started for a long time (a restart lost the queue): re-send."""
    svc = services(app)
    with svc.db.transaction() as session:
        ping = diagnostics.Ping(message="lost", status="queued")
        session.add(ping)
        session.flush()
        session.add(OutboxJob(id=f"ping:{ping.id}", func="core.diagnostics.answer_ping_job",
                              args=json.dumps([ping.id, 0]), queue="high",
                              status=JobStatus.SENT, sent_at=utcnow() - timedelta(hours=1),
                              created_at=utcnow() - timedelta(hours=1)))
    assert svc.runner.sweep() == {"resent": 1, "restarted": 0}
    wait_for(lambda: diagnostics.get_ping(svc.db, ping.id).status == "answered", timeout=20)
