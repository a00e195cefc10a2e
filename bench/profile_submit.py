"""Profile a whole request in-process: ``python -m bench.profile_submit DATABASE_URL [-n 100]``.

Does what the load client's submission does (``bench.load.complete_steps``) through Flask's
test client with the bench's production settings: the first step with a picked open time,
every step opened and saved, the 200 KB PDF uploaded into the documents step, and the send,
expecting a 303. Each request holds its own open time (from ``bench.seed.free_slot_keys``), so
the database must be freshly seeded (``python -m bench.seed URL 100``) and hold enough open
times for warm-up plus two runs of ``-n``. Prints the CPU time per request without the
profiler, split into the steps and the send (also the fastest tenth of the run, steadier on a
busy machine), then one of: cProfile's top functions of the sends on CPU time (default;
``--save`` keeps the stats), a CPU-time stack sampler's inclusive and own shares
(``--sample``: cProfile inflates code that makes many small calls), pyinstrument's tree
(``--pyinstrument``, wall-clock, when installed), or the SQL of one send (``--sql``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from bench.load import CSRF_RE, STEP_ANSWERS, bench_pdf, step_fields
from bench.profile import use_bench_settings
from booking.patients import steps
from booking.requests import triage

WARMUP = 5


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_submit")
    parser.add_argument("url")
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--save", help="also write cProfile's stats to this file")
    parser.add_argument("--sample", action="store_true", help="sample the stack on CPU time")
    parser.add_argument("--sql", action="store_true", help="print one POST's SQL statements")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spineconsult-profile-") as work:
        profile(args, work)


def profile(args: argparse.Namespace, work: str) -> None:
    use_bench_settings(args.url, work)
    from bench.seed import free_slot_keys
    from booking import create_app

    app = create_app()
    with app.app_context():
        keys = iter(free_slot_keys(WARMUP + 2 * args.n))
    client = app.test_client()
    pdf = bench_pdf()
    timings = {"get": 0.0, "post": 0.0}

    https = {"base_url": "https://localhost"}

    def post(path: str, data: dict[str, Any], **extra: Any) -> None:
        page = client.get(path.split("?")[0] if "steps" in path else path, **https)
        data = {"csrf_token": CSRF_RE.search(page.get_data(as_text=True)).group(1), **data}
        response = client.post(
            path, data=data, headers={"Referer": "https://localhost/"}, **https, **extra
        )
        assert response.status_code == 303, (path, response.status_code)

    def fields(code: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in step_fields(code):
            out.setdefault(name, []).append(value)
        return out

    def submit(profiler: cProfile.Profile | Any | None = None) -> None:
        slot = next(keys)
        started = time.process_time()
        post(
            f"/request/start?type=1&slot={slot}",
            {f"red_{flag.code}": "no" for flag in triage.ASKED},
        )
        post("/request/steps/time", {**fields("time"), "appointment_type": "1", "slot": slot})
        for code in ("about", "symptoms", "function", "history"):
            # A step shown in parts: each part opened and saved in turn, as a patient does.
            for part in range(1, steps.pages_of(code, STEP_ANSWERS) + 1):
                post(f"/request/steps/{code}", {**fields(code), "page": [str(part)]})
        post(
            "/request/steps/documents",
            {"nav": "upload", "files": [(io.BytesIO(pdf), "mri-report.pdf")]},
            content_type="multipart/form-data",
        )
        post("/request/steps/documents", {"nav": "next"})
        page = client.get("/request/steps/review", **https).get_data(as_text=True)
        data = {**fields("review"), "nav": "send", "csrf_token": CSRF_RE.search(page).group(1)}
        sent = time.process_time()
        timings["get"] += sent - started
        with _profiling(profiler):
            response = client.post(
                "/request/steps/review",
                data=data,
                headers={"Referer": "https://localhost/"},
                **https,
            )
        timings["post"] += time.process_time() - sent
        assert response.status_code == 303, (response.status_code, response.get_data()[:2000])

    for _ in range(WARMUP):
        submit()
    # On a shared machine other processes slow this one down in bursts: the fastest tenth of
    # the run is the steadier figure to compare two versions by.
    batch = max(1, args.n // 10)
    fastest = {"get": float("inf"), "post": float("inf")}
    totals = {"get": 0.0, "post": 0.0}
    for start in range(0, args.n, batch):
        timings.update(get=0.0, post=0.0)
        size = min(batch, args.n - start)
        for _ in range(size):
            submit()
        for key in totals:
            totals[key] += timings[key]
            fastest[key] = min(fastest[key], timings[key] / size)
    get_ms, post_ms = (totals[k] / args.n * 1000 for k in ("get", "post"))
    print(
        f"request: {get_ms + post_ms:.2f} ms CPU (the steps up to the send {get_ms:.2f} ms, "
        f"the send {post_ms:.2f} ms) without the profiler, n={args.n}; fastest tenth: "
        f"steps {fastest['get'] * 1000:.2f} ms, send {fastest['post'] * 1000:.2f} ms"
    )
    if args.sql:
        from sqlalchemy import event

        from booking.extensions import db

        with app.app_context():
            engine = db.engine
        statements: list[str] = []

        def log(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(" ".join(statement.split())[:150])

        event.listen(engine, "before_cursor_execute", log)
        submit()
        event.remove(engine, "before_cursor_execute", log)
        print(f"{len(statements)} statements in one whole request (every step and the send):")
        print("\n".join(statements))
        return
    if args.sample:
        sampler = CpuSampler()
        for _ in range(args.n):
            submit(sampler)
        sampler.report(post_ms, args.top)
        return
    if args.pyinstrument:
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.0005)
        for _ in range(args.n):
            submit(sampler)
        print(sampler.output_text(unicode=True, color=False, show_all=False))
        return
    # CPU time, like the figure above: waits for the disk (fsync, SQLite's commit) are not
    # what the target measures.
    profiler = cProfile.Profile(time.process_time)
    for _ in range(args.n):
        submit(profiler)
    if args.save:
        profiler.dump_stats(args.save)
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


class CpuSampler:
    """A sampling profiler on CPU time (``ITIMER_PROF``): unlike cProfile it does not inflate
    code that makes many small calls, and unlike pyinstrument it does not count waits for the
    disk. Reports each function's share of the samples it was on the stack for (inclusive)."""

    INTERVAL = 0.0002

    def __init__(self) -> None:
        self.samples = 0
        self.inclusive: Counter[tuple[str, str]] = Counter()
        self.own: Counter[tuple[str, str]] = Counter()

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        self.samples += 1
        seen = set()
        leaf = True
        while frame is not None:
            code = frame.f_code
            where = (_short(code.co_filename, code.co_firstlineno), code.co_name)
            if leaf:
                self.own[where] += 1
                leaf = False
            if where not in seen:
                seen.add(where)
                self.inclusive[where] += 1
            frame = frame.f_back

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.INTERVAL, self.INTERVAL)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def report(self, post_ms: float, top: int) -> None:
        # The kernel delivers the signal at its tick (often 4 ms), not at INTERVAL: scale the
        # shares by the measured CPU time rather than count samples times the interval.
        per = post_ms / self.samples
        print(f"{self.samples} samples; ms are shares of the measured {post_ms:.2f} ms POST")
        for title, counts in (("inclusive", self.inclusive), ("own", self.own)):
            print(f"\n   ms/POST  share  {title}")
            for (where, name), count in counts.most_common(top):
                print(f"{count * per:9.2f} {count / self.samples:6.1%}  {name}  {where}")


def _short(filename: str, line: int) -> str:
    for marker in ("site-packages/", "wt-submit-speed/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return f"{filename}:{line}"


@contextmanager
def _profiling(profiler: cProfile.Profile | Any | None) -> Iterator[None]:
    """Profile only the send (each step's page is ``bench.profile --draft``'s job)."""
    if profiler is None:
        yield
        return
    is_cprofile = isinstance(profiler, cProfile.Profile)
    profiler.enable() if is_cprofile else profiler.start()
    try:
        yield
    finally:
        profiler.disable() if is_cprofile else profiler.stop()


if __name__ == "__main__":
    main()
