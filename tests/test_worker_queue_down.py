"""A real ``flask worker`` whose Redis is down: it keeps trying, but its log is not flooded.

Huey's consumer logs an error with its traceback at every failed read: its scheduler every
``--scheduler-interval`` (Huey's default: every second) and each worker thread after a delay
that starts at 0.1 s. ``flask worker`` sets both for a queue that blocks (Redis), where the
delay only ever follows a failed read."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from booking.logging import STORAGE_ERROR_QUIET_SECONDS, RepeatedStorageErrorFilter
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
    assert output.count("Error reading from queue") >= 2, output  # the premise: Redis is down
    # Each kind of error has its traceback once (the scheduler's read, each periodic job it
    # could not hand over, the thread's read, the start-up heartbeat); every one after it
    # is one line, never dropped.
    # (The jobs due every minute at least: four, whatever the time.)
    assert output.count("Error enqueueing periodic task") >= 4, output
    tracebacks = [line for line in output.splitlines() if line.startswith("redis.exceptions.")]
    assert len(tracebacks) <= 4, output
    reads = [line for line in output.splitlines() if "Error reading from queue" in line]
    assert reads[0].endswith("Error reading from queue"), output  # the first, whole
    for line in reads[1:]:
        assert "Error reading from queue: ConnectionError: Error 111 connecting" in line
        assert "still failing; its traceback was logged at " in line


def _refused() -> redis.exceptions.ConnectionError:
    """What reading a Redis that is down raises (nothing listens on the port): the first
    refusal's, not tried again (redis-py's default retries it three times with a backoff of
    up to 10 s: about 9 s a call here, a minute for the test below)."""
    try:
        redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)).ping()
    except redis.exceptions.ConnectionError as exc:
        return exc
    raise AssertionError("something answered")


class _Lines(logging.Handler):
    """What the worker's log would show: each record formatted, traceback included."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_repeated_storage_errors_keep_their_first_traceback_and_are_one_line_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first error reading the queue keeps its traceback; the same error again is one
    line saying when the traceback was logged; after a quiet spell (Redis back a while) the
    next one is whole again. Any other error keeps its traceback every time, and other
    loggers' errors are left as they are."""
    clock = [1000.0]
    lines = _Lines()
    lines.addFilter(RepeatedStorageErrorFilter(clock=lambda: clock[0]))
    worker = logging.getLogger("huey.consumer.Worker")
    monkeypatch.setattr(worker, "handlers", [lines])
    monkeypatch.setattr(worker, "propagate", False)
    monkeypatch.setattr(worker, "level", logging.INFO)

    def fail(exc: BaseException, message: str = "Error reading from queue") -> str:
        try:
            raise exc
        except BaseException:
            worker.exception(message)
        return lines.lines[-1]

    first = fail(_refused())
    assert "Traceback (most recent call last)" in first
    clock[0] += 60
    again = fail(_refused())
    assert "Traceback" not in again and "\n" not in again
    assert again.startswith(
        "ERROR huey.consumer.Worker: Error reading from queue: ConnectionError: "
    )
    assert "(still failing; its traceback was logged at " in again
    # Another message's first error is whole too.
    assert "Traceback" in fail(_refused(), "Error reading schedule.")
    # A bug is never shortened.
    assert "Traceback" in fail(ValueError("a bug"))
    assert "Traceback" in fail(ValueError("a bug"))
    # Redis back for longer than the quiet spell: the next outage's first error is whole.
    clock[0] += STORAGE_ERROR_QUIET_SECONDS + 1
    assert "Traceback" in fail(_refused())
    assert "Traceback" not in fail(_refused())
    # Not Huey's consumer: left alone.
    other = logging.getLogger("booking.tasks")
    monkeypatch.setattr(other, "handlers", [lines])
    monkeypatch.setattr(other, "propagate", False)
    for _ in range(2):
        try:
            raise _refused()
        except redis.exceptions.ConnectionError:
            other.exception("a task's own error")
        assert "Traceback" in lines.lines[-1]
