"""A small load client: one process per concurrent user, each with its own HTTP connection,
timing every request itself (time.perf_counter), bounded by a request count and a duration.

Processes rather than threads so the client's own Python work does not queue behind one GIL
while it measures the server (the baseline app answers in well under a millisecond).
"""

from __future__ import annotations

import http.client
import io
import multiprocessing as mp
import re
import statistics
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from booking.cli import demo_pdf
from booking.patients import steps
from booking.requests import triage

CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
PDF_SIZE = 200 * 1024


class Client:
    """One connection (reopened after each ``Connection: close``) and a cookie jar."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, str, http.client.HTTPMessage]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # The server closed a kept connection just as we reused it: open a new one.
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read().decode("utf-8", "replace")
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status, data, response.headers

    def get(self, path: str) -> tuple[int, str]:
        status, body, _headers = self.request("GET", path)
        return status, body


def bench_pdf(size: int = PDF_SIZE) -> bytes:
    """A valid PDF of about ``size`` bytes: one page whose content stream is padded."""
    return demo_pdf("Benchmark MRI report", size)


ANSWERS: list[tuple[str, str]] = [
    ("full_name", "Erika Mustermann"),
    ("date_of_birth", date(1970, 5, 17).isoformat()),
    ("email", "erika.mustermann@example.com"),
    ("phone", "+49 30 901820"),
    ("preferred_contact", "email"),
    ("pain_locations", "lower_back"),
    ("pain_locations", "leg"),
    ("pain_side", "left"),
    ("pain_duration", "3_12_months"),
    ("spine_region", "lower_back"),
    ("back_pain_now", "5"),
    ("back_pain_worst", "8"),
    ("leg_pain_now", "4"),
    ("leg_pain_worst", "7"),
    ("radiating_pain", "yes"),
    ("numbness", "yes"),
    ("weakness", "no"),
    ("diagnoses", "herniated_disc"),
    ("treatments", "physiotherapy"),
    ("imaging", "mri"),
    ("imaging_when", "MRI in March 2026"),
    ("medications", "Ibuprofen 400 mg"),
    ("allergies", "Penicillin"),
    ("blood_thinners", "no"),
    ("diabetes", "no"),
    ("smoking", "never"),
    ("other_history", "Office work, sitting most of the day."),
    *((f"red_{flag.code}", "no") for flag in triage.ASKED),
    *((f"odi_{k}", "2") for k in ("pain_intensity", "personal_care", "lifting", "walking")),
    *((f"odi_{k}", "1") for k in ("sitting", "standing", "sleeping", "social_life")),
    ("odi_travelling", "2"),
    ("preferred_days", "0"),
    ("preferred_days", "2"),
    ("preferred_time_of_day", "morning"),
    ("privacy_consent", "y"),
    ("contact_consent", "y"),
]


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, filename, content in files:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def answer_red_flags(client: Client, query: str = "") -> int:
    """The first step, every question answered "no", as a patient's browser posts it."""
    status, page = client.get(f"/request/start{query}")
    match = CSRF_RE.search(page)
    if status != 200 or not match:
        return status
    fields = [("csrf_token", match.group(1))]
    fields += [(f"red_{flag.code}", "no") for flag in triage.ASKED]
    body = "&".join(f"{name}={value}" for name, value in fields).encode()
    status, _page, _headers = client.request(
        "POST",
        f"/request/start{query}",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return status


# --- the request as steps (issue #16) ----------------------------------------------------------

STEP_ANSWERS = {"spine_region": ["lower_back"]}  # the main problem decides the function step


def step_fields(code: str) -> list[tuple[str, str]]:
    """The answers step ``code`` posts, from ``ANSWERS``."""
    names = set(steps.fields_of(code, STEP_ANSWERS))
    return [(name, value) for name, value in ANSWERS if name in names]


def post_form(client: Client, path: str, fields: list[tuple[str, str]]) -> int:
    body = urllib.parse.urlencode(fields).encode()
    status, _page, _headers = client.request(
        "POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status


def post_step(client: Client, code: str, fields: list[tuple[str, str]], nav: str = "next") -> int:
    """Open a step like a browser (its CSRF token), then post its answers: 303 when saved. A
    step shown in parts has each part opened and saved in turn, as a patient does."""
    path = f"/request/steps/{code}"
    status = 303
    for part in range(1, steps.pages_of(code, STEP_ANSWERS) + 1):
        status, page = client.get(path if part == 1 else f"{path}?page={part}")
        match = CSRF_RE.search(page)
        if status != 200 or not match:
            return status
        status = post_form(
            client,
            path,
            [("csrf_token", match.group(1)), ("nav", nav), ("page", str(part)), *fields],
        )
        if status != 303:
            return status
    return status


# The steps a draft saves, in order, so that every step opens: a step not reached yet sends
# the patient back to the first one not saved (the review opens once the documents step is).
DRAFT_STEPS = ("time", "about", "symptoms", "function", "history", "documents")


def start_draft(client: Client) -> int:
    """A patient's draft with every step before the review saved (no time picked, no files),
    so every step opens (303)."""
    status = answer_red_flags(client)
    for code in DRAFT_STEPS:
        if status != 303:
            return status
        status = post_step(client, code, step_fields(code))
    return status


def complete_steps(client: Client, pdf: bytes, *, slot_key: str | None = None) -> int:
    """The whole request as steps: the first step (with the picked time), every step opened
    and saved, the PDF uploaded on its own into the documents step, and the send (303)."""
    query = f"?type=1&slot={slot_key}" if slot_key else ""
    status = answer_red_flags(client, query)
    if status != 303:
        return status
    time_fields = step_fields("time")
    if slot_key:
        time_fields += [("appointment_type", "1"), ("slot", slot_key)]
    for code, fields in (
        ("time", time_fields),
        ("about", step_fields("about")),
        ("symptoms", step_fields("symptoms")),
        ("function", step_fields("function")),
        ("history", step_fields("history")),
    ):
        status = post_step(client, code, fields)
        if status != 303:
            return status
    status, page = client.get("/request/steps/documents")
    match = CSRF_RE.search(page)
    if status != 200 or not match:
        return status
    token = match.group(1)
    body, content_type = multipart(
        [("csrf_token", token), ("nav", "upload"), ("description", "MRI report, lumbar spine")],
        [("files", "mri-report.pdf", pdf)],
    )
    status, _page, _headers = client.request(
        "POST", "/request/steps/documents", body=body, headers={"Content-Type": content_type}
    )
    if status != 303:
        return status
    status = post_form(client, "/request/steps/documents", [("csrf_token", token), ("nav", "next")])
    if status != 303:
        return status
    return post_step(client, "review", step_fields("review"), nav="send")


def staff_login(client: Client, email: str, password: str) -> None:
    status, page = client.get("/staff/login")
    match = CSRF_RE.search(page)
    if status != 200 or not match:
        raise RuntimeError(f"staff sign-in page: HTTP {status}")
    body = (
        f"csrf_token={match.group(1)}&email={email}&password={password}".replace("@", "%40")
    ).encode()
    status, _page, _headers = client.request(
        "POST",
        "/staff/login",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status not in (302, 303):
        raise RuntimeError(f"staff sign-in failed: HTTP {status}")


@dataclass
class Scenario:
    """What one simulated user does again and again; ``expect`` is the success status."""

    name: str
    path: str = "/"
    expect: int = 200
    login: tuple[str, str] | None = None
    submit: bool = False
    slot_keys: list[str] = field(default_factory=list)  # open times the submissions hold
    draft: bool = False  # each user first starts a request (the steps' pages need one)


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    elapsed: float
    latencies: list[float] = field(repr=False, default_factory=list)
    cpu_ms: float = float("nan")  # the server's CPU time per request, when measured

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """Latency in milliseconds at percentile ``p`` (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
        return ordered[rank] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        return self.percentile(95)


def _user(
    scenario: Scenario,
    user_index: int,
    users: int,
    host: str,
    port: int,
    budget: int,
    start_at: float,
    deadline: float,
    out: Any,
) -> None:
    client = Client(host, port)
    if scenario.login:
        staff_login(client, *scenario.login)
    if scenario.draft and start_draft(client) != 303:
        raise RuntimeError("could not start a request for the steps' pages")
    pdf = bench_pdf() if scenario.submit else b""
    latencies: list[float] = []
    errors = 0
    operation: Callable[[], int]
    # Each user holds its own times (user i takes every n-th key), so no two race for one.
    keys = iter(scenario.slot_keys[user_index :: max(1, users)])
    if scenario.submit:

        def operation() -> int:
            return complete_steps(client, pdf, slot_key=next(keys, None))

    else:

        def operation() -> int:
            return client.get(scenario.path)[0]

    while time.time() < start_at:  # every user starts together, after its sign-in
        time.sleep(0.001)
    first = time.perf_counter()
    last = first
    while len(latencies) + errors < budget and time.time() < deadline:
        began = time.perf_counter()
        status = operation()
        last = time.perf_counter()
        if status == scenario.expect:
            latencies.append(last - began)
        else:
            errors += 1
    out.put((latencies, errors, first, last))


def run(
    scenario: Scenario,
    host: str,
    port: int,
    *,
    concurrency: int,
    requests: int,
    duration: float,
) -> Result:
    """Run ``scenario`` with ``concurrency`` users until ``requests`` are done or
    ``duration`` seconds have passed, whichever is first."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 1.0 + (0.5 * concurrency if scenario.login else 0.0)
    deadline = start_at + duration
    share = [
        requests // concurrency + (1 if i < requests % concurrency else 0)
        for i in range(concurrency)
    ]
    users = [
        ctx.Process(
            target=_user,
            args=(scenario, i, concurrency, host, port, share[i], start_at, deadline, queue),
            daemon=True,
        )
        for i in range(concurrency)
    ]
    for user in users:
        user.start()
    outcomes = [queue.get(timeout=duration + 120) for _ in users]
    for user in users:
        user.join(timeout=10)
    latencies = [lat for outcome in outcomes for lat in outcome[0]]
    errors = sum(outcome[1] for outcome in outcomes)
    elapsed = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    return Result(scenario.name, len(latencies), errors, elapsed, latencies)
