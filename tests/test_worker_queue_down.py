"""A real ``flask worker`` whose Redis is down: it keeps trying, but its log is not flooded.

Huey's consumer logs an error with its traceback at every failed read: its scheduler every
``--scheduler-interval`` (Huey's default: every second) and each worker thread after a delay
that starts at 0.1 s. ``flask worker`` sets both for a queue that blocks (Redis), where the
delay only ever follows a failed read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.smtp import free_port
from tests.support import start_worker, stop_worker, wait_until

RUN_SECONDS = 6


@pytest.mark.slow
def test_a_worker_whose_redis_is_down_logs_a_few_errors_not_one_a_second(
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = start_worker(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
                "UPLOAD_DIR": str(tmp_path / "uploads"),
                # Nothing listens there: refused at once, as when Redis is down.
                "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            },
            output=out.fileno(),
        )
    try:
        # Counted from the consumer's start, however long the app took to load.
        wait_until(lambda: "Huey consumer started" in log.read_text(), "the consumer", 60)
        time.sleep(RUN_SECONDS)
        assert worker.poll() is None  # still running, trying again
    finally:
        stop_worker(worker)
    output = log.read_text()
    # Huey's defaults: about six reads of the schedule, and about twenty of the queue (from
    # 0.1 s, growing by 15% a time), in six seconds.
    assert output.count("Error reading schedule") <= 1, output
    assert output.count("Error reading from queue") <= 4, output
    assert output.count("Error reading from queue") >= 1, output  # the premise: Redis is down
