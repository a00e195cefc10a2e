"""A fixed number of SQL queries per page, whatever the size of the clinic's data.

Each page is loaded with 5 requests (each holding an appointment) and again with 50, on SQLite
and PostgreSQL; every statement the app sends is counted with a SQLAlchemy event listener. A
page that loaded rows one by one (a lazy load in a template loop) would send more at 50.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from booking.dashboard.services import add_note
from booking.extensions import db
from booking.scheduling import versions
from booking.scheduling.availability import open_slots
from booking.scheduling.models import AppointmentType
from booking.scheduling.services import SlotChoice
from booking.staff.auth import find_staff_by_email
from booking.timeutil import from_clinic_local, now_utc, to_clinic_tz
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import AuthActions, answer_red_flags, csrf_token, reach, sql_statements

SMALL, LARGE = 5, 50


class Clinic:
    """Two specialists with weekday hours and requests that each hold one of their times."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        with app.app_context():
            location = make_location()
            self.type_id = make_appointment_type().id
            specialists = [make_staff("specialist", full_name=f"Dr. Query {n}") for n in range(2)]
            for specialist in specialists:
                make_hours(specialist, location)
            specialist_ids = [specialist.id for specialist in specialists]
            self.specialist_id = specialist_ids[0]
            self.coordinator = make_staff("coordinator").email
        self.requests = 0
        with app.app_context():
            # Every fourth start of each specialist: an hour apart, so none overlap (45
            # minutes and the 10-minute buffer); computed once, before any is held. From a
            # clinic midnight: the agenda pages show the first day, which must be a whole day
            # at any time of day the tests run (from 2 days ahead it was an evening's end).
            appointment_type = db.session.get(AppointmentType, self.type_id)
            day = to_clinic_tz(now_utc() + timedelta(days=3)).date()
            start = from_clinic_local(day, time(0, 0))
            slots = open_slots(appointment_type, start, start + timedelta(days=12))
            per_specialist = [
                [s for s in slots if s.specialist_id == specialist_id][::4]
                for specialist_id in specialist_ids
            ]
            self.free = [s for pair in zip(*per_specialist, strict=False) for s in pair]

    def grow_to(self, size: int) -> None:
        """Add requests until there are ``size``, each holding an open time in the next two
        weeks (the slot lookup's first page); the newest also has documents and a note."""
        with self.app.app_context():
            while self.requests < size:
                slot = self.free[self.requests]
                consultation = make_request(
                    documents=2 if self.requests == size - 1 else 0,
                    slot=SlotChoice(
                        self.type_id, slot.specialist_id, slot.location_id, slot.starts_at
                    ),
                )
                self.requests += 1
                if self.requests == size:
                    coordinator = find_staff_by_email(self.coordinator)
                    add_note(consultation, coordinator, f"Called the patient ({size}).")
                    self.newest = consultation.reference

    def slot_key(self) -> str:
        with self.app.app_context():
            appointment_type = db.session.get(AppointmentType, self.type_id)
            start = now_utc() + timedelta(days=2)
            slot = open_slots(appointment_type, start, start + timedelta(days=14))[-1]
            return slot.key


def first_day(clinic: Clinic) -> str:
    """The clinic day of the first time the requests hold (ISO date)."""
    with clinic.app.app_context():
        return to_clinic_tz(clinic.free[0].starts_at).date().isoformat()


def times_offered(picker_page: str) -> int:
    """The open times the picker counts on its days (it lists one day's times at a time)."""
    return sum(int(n) for n in re.findall(r" · ([0-9]+) times?</a>", picker_page))


PAGES = {
    "request step": lambda clinic: "/request/steps/about",
    "request's time step with a picked time": lambda clinic: (
        f"/request/steps/time?type={clinic.type_id}&slot={clinic.slot_key()}"
    ),
    "request's review step": lambda clinic: "/request/steps/review",
    "slot lookup": lambda clinic: f"/request/time?type={clinic.type_id}",
    "slot lookup, one specialist": lambda clinic: (
        f"/request/time?type={clinic.type_id}&specialist={clinic.specialist_id}"
    ),
    "staff queue": lambda clinic: "/staff/",
    "staff queue, every status": lambda clinic: "/staff/?status=all",
    "staff export of the queue": lambda clinic: "/staff/export.csv",
    "request record": lambda clinic: f"/staff/requests/{clinic.newest}",
    "agenda, specialists side by side": lambda clinic: f"/staff/calendar?date={first_day(clinic)}",
    "agenda, a specialist's week": lambda clinic: (
        f"/staff/calendar?view=week&date={first_day(clinic)}&specialist={clinic.specialist_id}"
    ),
}


def queries_for(
    app: Flask, client: FlaskClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    # Once before counting: anything a first view sets up is not counted (the request's steps
    # first ask the questions about urgent symptoms, as for every patient). The picker's
    # cache key holds the minute: it is frozen, so a minute passing on a loaded machine between
    # the two views does not count a cache miss as a page that grew.
    minute = now_utc().replace(second=0, microsecond=0)
    monkeypatch.setattr(versions, "now_utc", lambda: minute)
    if path.startswith("/staff/export.csv"):  # a post with the queue page's token
        token = csrf_token(client, "/staff/")

        def fetch() -> TestResponse:
            return client.post(path, data={"csrf_token": token})
    else:

        def fetch() -> TestResponse:
            return client.get(path)

    first = fetch()
    first.get_data()
    if first.status_code == 302 and "/request/start" in first.headers["Location"]:
        answer_red_flags(client)
    step = urlsplit(path).path.removeprefix("/request/steps/")
    if step != urlsplit(path).path:  # a step opens once the patient has come this far
        reach(client, step)
    fetch()
    with sql_statements(app) as statements:
        response = fetch()
        body = response.get_data(as_text=True)  # a streamed response reads as it is sent
    assert response.status_code == 200, path
    return len(statements), body


@pytest.mark.parametrize("page", PAGES)
def test_queries_per_page_do_not_grow_with_the_data(
    app: Flask, client: FlaskClient, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = Clinic(app)
    AuthActions(client).attempt(clinic.coordinator)

    clinic.grow_to(SMALL)
    small, small_page = queries_for(app, client, PAGES[page](clinic), monkeypatch)
    clinic.grow_to(LARGE)
    large, large_page = queries_for(app, client, PAGES[page](clinic), monkeypatch)

    assert large == small, f"{page}: {small} queries with {SMALL} requests, {large} with {LARGE}"
    # The pages did show the larger data (the queue lists more rows, the picker fewer times).
    if page.startswith(("staff queue", "agenda")):
        assert len(re.findall(r"/staff/requests/SC-", large_page)) > len(
            re.findall(r"/staff/requests/SC-", small_page)
        )
    if page.startswith("staff export"):  # a heading, then a line per request
        assert (len(small_page.splitlines()), len(large_page.splitlines())) == (
            SMALL + 1,
            LARGE + 1,
        )
    if page.startswith("slot lookup"):  # the days' counts of open times
        assert times_offered(large_page) < times_offered(small_page)
    if page == "request record":
        assert f"Called the patient ({LARGE})." in large_page


def test_the_queue_and_record_are_a_handful_of_queries(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounds, not just equality: a page that grew by a constant would still pass above."""
    clinic = Clinic(app)
    AuthActions(client).attempt(clinic.coordinator)
    clinic.grow_to(SMALL)
    # As measured on SQLite, whose count includes BEGIN IMMEDIATE (PostgreSQL's does not).
    for path, most in (
        # A step of the request: its draft (the documents only on the steps showing them)
        # and what the page offers.
        ("/request/steps/about", 3),
        ("/request/steps/review", 5),
        (f"/request/time?type={clinic.type_id}", 10),
        # The queue, plus one read of the clinic's two-factor rule (for an account without it),
        # plus, on the default tab, its unreached urgent requests of the two other open
        # statuses (one query each: queries.unreached_elsewhere), plus, on every staff page of
        # a coordinator or admin, the count of late emails (dashboard.queries.mail_banner),
        # plus the days an admin closed the clinic (the call-back waits count working time).
        ("/staff/", 10),
        # likewise +1 for the two-factor rule, +1 for the patient's working private links,
        # +2 for the requests for information and the clinic's checklist, +1 for the message
        # thread (its documents only when it has messages), +1 for the access monitor's count
        # of the records this account opened in the hour (booking.rights.monitoring), +1 for
        # the follow-up's plan, time points and thresholds (one statement: booking.outcomes),
        # +1 for the view's audit row's link to the reference (booking.audit AuditReference), +1
        # for the late emails, +1 for the days an admin closed the clinic (the call-back
        # wait counts working time: followup.clinic_hours), +1 for the emails withdrawn unsent
        # (their audit rows, for the timeline: booking.requests.withdrawals)
        (f"/staff/requests/{clinic.newest}", 21),
        # The agenda: the appointments, the weekly hours, the time off and extra hours, the
        # specialists and the locations, the clinic's buffer (a grown one holds after each
        # appointment), plus the account and the two-factor rule, and the late emails; +2 for
        # the days an admin closed the clinic (read by the agenda's hours and again for the
        # headings: one small indexed range each).
        (f"/staff/calendar?date={first_day(clinic)}", 12),
    ):
        count, _page = queries_for(app, client, path, monkeypatch)
        assert count <= most, f"{path}: {count} queries"


def test_queue_counts_stop_at_the_cap(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tab counts up to a cap (so the count does not read years of history on every
    view) and says "N+" beyond it; below the cap the numbers are exact."""
    from booking.dashboard import queries

    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    clinic = Clinic(app)
    AuthActions(client).attempt(clinic.coordinator)
    clinic.grow_to(SMALL)

    page = client.get("/staff/").get_data(as_text=True)
    tabs = dict(re.findall(r'status=(\w+)"[^>]*>\s*[^<]*<span class="badge[^"]*">([^<]+)<', page))
    assert tabs["requested"] == "3+"
    assert tabs["all"] == "3+"
    assert tabs["confirmed"] == "0"
    # Paged past the cap, the rest could not be reached: the page says to narrow the list.
    assert "More than 3 requests: the pages show the first 3. Narrow the list" in page
    assert len(re.findall(r'href="/staff/requests/SC-', page)) == SMALL  # the list is whole

    monkeypatch.setattr(queries, "COUNT_CAP", 1000)
    page = client.get("/staff/").get_data(as_text=True)
    assert f"{SMALL} requests" in page
