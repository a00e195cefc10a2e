"""Profile one page in-process: ``python -m bench.profile DATABASE_URL PATH [--staff] [-n 200]``.

Runs the app with the bench's settings through Flask's test client (no network, no gunicorn),
so the profile shows only the application's own work; prints cProfile's top functions by
cumulative and by own time. Seed the database first (``python -m bench.seed URL SIZE``).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import secrets
import tempfile
import time

from bench.load import CSRF_RE
from bench.seed import BENCH_PASSWORD, COORDINATOR_EMAIL
from booking.crypto import new_key


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("url")
    parser.add_argument("path")
    parser.add_argument("--staff", action="store_true", help="sign in as the coordinator first")
    parser.add_argument(
        "--draft", action="store_true", help="start a request first (for /request/steps/...)"
    )
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save", metavar="FILE", help="also write the profile (pstats) to FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spineconsult-profile-") as work:
        profile(args, work)


def use_bench_settings(url: str, work: str) -> None:
    """The environment the bench's app runs with (production, plain http on the loopback, no
    rate limits), its files under ``work``; set before ``create_app``."""
    os.environ.update(
        {
            "SPINECONSULT_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            # The key the database was seeded with (docs/benchmarks.md, "Profiling a page").
            "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY") or new_key(),
            "DATABASE_URL": url,
            "ALLOW_SQLITE_IN_PRODUCTION": "1",  # a SQLite file is the usual profiled database
            "STAFF_NOTIFICATION_EMAIL": "coordinators@clinic.example",
            "FORCE_HTTPS": "0",
            "TRUSTED_PROXIES": "0",
            "LOGIN_RATE_LIMIT": "1000000 per minute",
            "SUBMIT_RATE_LIMIT": "1000000 per minute",
            "UPLOAD_RATE_LIMIT": "1000000 per minute",
            "UPLOAD_DIR": os.path.join(work, "uploads"),
            "HUEY_SQLITE_PATH": os.path.join(work, "huey.sqlite3"),
            "CLAMAV_WHEN_DOWN": "hold",  # no clamd here: uploads are held for the scan
        }
    )


def profile(args: argparse.Namespace, work: str) -> None:
    use_bench_settings(args.url, work)
    from booking import create_app

    app = create_app()
    client = app.test_client()
    # Production cookies are Secure: the test client sends them back over https only.
    get = functools.partial(client.get, base_url="https://localhost")
    if args.staff:
        page = get("/staff/login").get_data(as_text=True)
        token = CSRF_RE.search(page).group(1)
        client.post(
            "/staff/login",
            base_url="https://localhost",
            headers={"Referer": "https://localhost/staff/login"},  # CSRF's https check
            data={"email": COORDINATOR_EMAIL, "password": BENCH_PASSWORD, "csrf_token": token},
        )
    if args.draft:
        _start_draft(client)
    for _ in range(10):
        response = get(args.path)
        assert response.status_code == 200, response.status_code
    # CPU time, not wall-clock time: on a shared machine it hardly moves with other load.
    started = time.process_time()
    for _ in range(args.n):
        get(args.path)
    plain = (time.process_time() - started) / args.n * 1000
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.n):
        get(args.path)
    profiler.disable()
    print(f"{args.path}: {plain:.2f} ms CPU per request without the profiler")
    if args.save:
        profiler.dump_stats(args.save)
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


def _start_draft(client: object) -> None:
    """The first step answered "no" and every step before the review saved, as
    ``bench.load.start_draft`` does."""
    from bench.load import DRAFT_STEPS, STEP_ANSWERS, step_fields
    from booking.patients import steps
    from booking.requests import triage

    https = {"base_url": "https://localhost"}
    page = client.get("/request/start", **https).get_data(as_text=True)
    answers = {f"red_{flag.code}": "no" for flag in triage.ASKED}
    headers = {"Referer": "https://localhost/request/start"}  # CSRF's https check
    token = CSRF_RE.search(page).group(1)
    response = client.post(
        "/request/start", data={**answers, "csrf_token": token}, headers=headers, **https
    )
    assert response.status_code == 303, response.status_code
    for code in DRAFT_STEPS:
        path = f"/request/steps/{code}"
        for part in range(1, steps.pages_of(code, STEP_ANSWERS) + 1):
            page = client.get(path if part == 1 else f"{path}?page={part}", **https)
            assert page.status_code == 200, (path, page.status_code, page.headers.get("Location"))
            token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
            data: dict[str, list[str]] = {"csrf_token": [token], "nav": ["next"]}
            data["page"] = [str(part)]
            for name, value in step_fields(code):
                data.setdefault(name, []).append(value)
            response = client.post(path, data=data, headers=headers, **https)
            assert response.status_code == 303, (path, response.status_code)


if __name__ == "__main__":
    main()
