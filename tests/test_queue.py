"""The triage queue: order, status tabs, filters, search, pagination, hostile URLs, and a fixed
number of SQL queries for the queue and record pages whatever the amount of data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.dashboard.services import raise_triage
from booking.extensions import db
from booking.requests.models import ConsultationRequest, TriageLevel
from tests.factories import (
    appointment_started,
    confirmed_request,
    make_assigned_requests,
    make_request,
    staff_user,
)
from tests.support import AuthActions, Clinic, sql_statements, when, winter_day

BERLIN = ZoneInfo("Europe/Berlin")
REF_RE = re.compile(r'href="/staff/requests/(SC-[0-9A-Z]{4}-[0-9A-Z]{4})"')
CSRF_VALUE = re.compile(r'csrf_token"[^>]*value="([^"]+)"')
TAB_RE = re.compile(
    r'href="[^"]*[?&]status=(\w+)[^"]*">[^<]*<span class="badge text-bg-secondary">(\d+)</span>'
)


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


@pytest.fixture
def staff_client(auth: AuthActions, clinic: Clinic) -> FlaskClient:
    """The test client, signed in as the coordinator."""
    auth.login("coordinator")
    return auth.client


def new_request(app: Flask, **overrides: Any) -> str:
    with app.app_context():
        return make_request(**overrides).reference


def set_created(app: Flask, created: dict[str, datetime]) -> None:
    """Give requests an explicit received time (aware datetimes)."""
    with app.app_context():
        for reference, at in created.items():
            row = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one()
            row.created_at = at
        db.session.commit()


def berlin(*args: int) -> datetime:
    """A wall-clock time in the clinic, as an aware datetime."""
    return datetime(*args, tzinfo=BERLIN)


def queue(client: FlaskClient, **args: Any) -> list[str]:
    """The references the queue shows for ``args``, in page order."""
    response = client.get("/staff/", query_string=args)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return REF_RE.findall(response.get_data(as_text=True))


def act(client: FlaskClient, reference: str, action: str, **fields: Any) -> None:
    """Work a request through the record page's real form, CSRF token and all."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    token = CSRF_VALUE.search(page)
    assert token, "no CSRF token on the record page"
    prefix = {
        "confirm": "slot",
        "reschedule": "slot",
        "decline": "close",
        "cancel": "close",
        "complete": "complete",
    }.get(action, "action")
    if action == "complete":
        fields = {"plan": "physiotherapy", **fields}  # completing records the plan decided
    data = {
        f"{prefix}-csrf_token": token.group(1),
        **{f"{prefix}-{k}": v for k, v in fields.items()},
    }
    if action == "no_show":
        data["confirmed"] = "1"  # its confirmation page's button (asked first: test_workflow)
    response = client.post(f"/staff/requests/{reference}/{action}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def confirm(client: FlaskClient, clinic: Clinic, reference: str, specialist: int, day: str) -> None:
    act(
        client,
        reference,
        "confirm",
        specialist=specialist,
        location=clinic.location,
        day=day,
        start="10:00",
        appointment_type=clinic.type,
        message="",
    )


def day(n: int) -> str:
    """The ``n``th day (from 0) of a run of days ahead: staff book times to come."""
    return (winter_day(4) + timedelta(days=n)).isoformat()


def add_note(client: FlaskClient, reference: str, text: str) -> None:
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    token = CSRF_VALUE.search(page)
    assert token
    response = client.post(
        f"/staff/requests/{reference}/notes",
        data={"note-csrf_token": token.group(1), "note-text": text},
    )
    assert response.status_code == 302


def _same_count_message(small: list[str], big: list[str]) -> str:
    def listing(statements: list[str]) -> str:
        return "\n".join(f"  {n}. {' '.join(s.split())}" for n, s in enumerate(statements, 1))

    return (
        f"query count depends on the data: {len(small)} vs {len(big)}\n"
        f"--- small data set:\n{listing(small)}\n--- large data set:\n{listing(big)}"
    )


# --- order and tabs -------------------------------------------------------------------------


def test_emergency_then_urgent_first_then_oldest_waiting(
    app: Flask, staff_client: FlaskClient
) -> None:
    # Made in an order that matches neither the id order nor any wrong sort (by the levels'
    # names, "emergency" would sort last).
    routine_new = new_request(app, email="a@example.com")
    urgent_new = new_request(app, email="b@example.com", red_flags={"fever"})
    emergency = new_request(app, email="e@example.com", red_flags={"bladder_bowel"})
    routine_old = new_request(app, email="c@example.com")
    urgent_old = new_request(app, email="d@example.com", red_flags={"serious_injury"})
    set_created(
        app,
        {
            routine_old: datetime(2026, 3, 1, 9, tzinfo=UTC),
            urgent_old: datetime(2026, 3, 2, 9, tzinfo=UTC),
            urgent_new: datetime(2026, 3, 4, 9, tzinfo=UTC),
            routine_new: datetime(2026, 3, 5, 9, tzinfo=UTC),
            emergency: datetime(2026, 3, 6, 9, tzinfo=UTC),
        },
    )
    expected = [emergency, urgent_old, urgent_new, routine_old, routine_new]
    assert queue(staff_client) == expected
    assert queue(staff_client, status="all") == expected
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert page.count(">URGENT<") == 2 and page.count(">EMERGENCY<") == 1


def raise_level(app: Flask, reference: str, level: TriageLevel, at: datetime) -> None:
    """Staff raise the request's triage level at ``at`` (new symptoms), through the service
    the record page's form calls."""
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        raise_triage(consultation, staff_user("coord@example.com"), level, "New numbness", now=at)


def test_a_request_raised_to_urgent_waits_among_the_urgent_from_the_raise(
    app: Flask, staff_client: FlaskClient
) -> None:
    """Within a level the queue lists first the call-back owed longest: a request raised
    to urgent is owed its call from the raise (``call_back_since``), so one that arrived ten
    days ago and was raised now comes after an urgent one that arrived two hours ago, still
    above every routine request, and the date filter (on the arrival) still finds it."""
    raised = new_request(app, email="r@example.com")
    urgent = new_request(app, email="u@example.com", red_flags={"fever"})
    routine = new_request(app, email="o@example.com")
    set_created(
        app,
        {
            raised: datetime(2026, 3, 1, 9, tzinfo=UTC),
            routine: datetime(2026, 3, 2, 9, tzinfo=UTC),
            urgent: datetime(2026, 3, 11, 7, tzinfo=UTC),
        },
    )
    raise_level(app, raised, TriageLevel.URGENT, datetime(2026, 3, 11, 9, tzinfo=UTC))
    expected = [urgent, raised, routine]
    assert queue(staff_client) == expected
    assert queue(staff_client, status="all") == expected
    assert queue(staff_client, triage="urgent") == [urgent, raised]
    assert queue(staff_client, **{"from": "2026-03-01", "to": "2026-03-11"}) == expected
    assert queue(staff_client, **{"from": "2026-03-01", "to": "2026-03-01"}) == [raised]
    assert queue(staff_client, **{"from": "2026-03-02", "to": "2026-03-11"}) == [urgent, routine]


def test_status_tabs_count_each_status_within_the_other_filters(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    waiting = [new_request(app, email=f"w{n}@example.com") for n in range(2)]
    waiting.append(new_request(app, email="u@example.com", red_flags={"fever_weight_loss"}))
    confirmed = [new_request(app, email=f"c{n}@example.com") for n in range(3)]
    declined = new_request(app, email="d@example.com")
    cancelled = new_request(app, email="x@example.com", red_flags={"serious_injury"})
    for n, reference in enumerate(confirmed):
        confirm(staff_client, clinic, reference, clinic.weber.id, day(n))
    with app.app_context():
        appointment_started(confirmed[2])
    act(staff_client, confirmed[2], "complete")
    act(staff_client, declined, "decline", message="We do not treat this here.")
    # An urgent patient nobody called: closing it takes the box saying so.
    act(staff_client, cancelled, "cancel", message="", unreached="y")

    page = staff_client.get("/staff/").get_data(as_text=True)
    assert dict(TAB_RE.findall(page)) == {
        "requested": "3",
        "awaiting_patient": "0",
        "confirmed": "2",
        "completed": "1",
        "declined": "1",
        "cancelled": "1",
        "no_show": "0",
        "all": "8",
    }
    assert "3 requests" in page
    # The tabs count within the other filters: only urgent requests here.
    page = staff_client.get("/staff/?triage=urgent").get_data(as_text=True)
    counts = dict(TAB_RE.findall(page))
    assert counts["requested"] == "1"
    assert counts["cancelled"] == "1"
    assert counts["confirmed"] == "0"
    assert counts["all"] == "2"


# --- filters --------------------------------------------------------------------------------


def test_filter_by_status_and_all(app: Flask, staff_client: FlaskClient, clinic: Clinic) -> None:
    waiting = new_request(app, email="w@example.com")
    confirmed = new_request(app, email="c@example.com")
    declined = new_request(app, email="d@example.com")
    confirm(staff_client, clinic, confirmed, clinic.weber.id, day(0))
    act(staff_client, declined, "decline", message="We do not treat this here.")

    assert queue(staff_client) == [waiting]  # the default tab: waiting requests
    assert queue(staff_client, status="requested") == [waiting]
    assert queue(staff_client, status="confirmed") == [confirmed]
    assert queue(staff_client, status="declined") == [declined]
    assert queue(staff_client, status="no_show") == []
    assert sorted(queue(staff_client, status="all")) == sorted([waiting, confirmed, declined])


def test_a_search_with_no_match_on_its_tab_points_to_the_matches_in_other_statuses(
    app: Flask, staff_client: FlaskClient
) -> None:
    """The search starts on the tab shown, by default "requested": a coordinator looking up
    the patient on the phone, whose request was declined, read "No requests match." """
    declined = new_request(app, full_name="Dora Declined", email="dora@example.com")
    act(staff_client, declined, "decline", message="We do not treat this here.")

    page = staff_client.get("/staff/", query_string={"q": "Declined"}).get_data(as_text=True)
    assert REF_RE.findall(page) == []
    assert "No requests match." not in page
    assert "None on this tab matches." in page
    link = re.search(r'<a href="([^"]+)">Show the 1 that match in every status</a>', page)
    assert link is not None
    assert queue(staff_client, **dict(parse_qsl(urlsplit(unescape(link[1])).query))) == [declined]

    nobody = staff_client.get("/staff/", query_string={"q": "Nobody"}).get_data(as_text=True)
    assert "No requests match." in nobody
    assert "None on this tab matches." not in nobody


def test_filter_by_triage(app: Flask, staff_client: FlaskClient) -> None:
    routine = new_request(app, email="r@example.com")
    urgent = new_request(app, email="u@example.com", red_flags={"fragile_bones"})
    emergency = new_request(app, email="e@example.com", red_flags={"progressive_weakness"})
    assert queue(staff_client, triage="emergency") == [emergency]
    assert queue(staff_client, triage="urgent") == [urgent]
    assert queue(staff_client, triage="routine") == [routine]
    assert queue(staff_client, triage="") == [emergency, urgent, routine]


def test_filter_by_diagnosis(app: Flask, staff_client: FlaskClient) -> None:
    disc = new_request(app, email="a@example.com", diagnoses=["herniated_disc"])
    both = new_request(app, email="b@example.com", diagnoses=["spinal_stenosis", "sciatica"])
    sciatica = new_request(app, email="c@example.com", diagnoses=["sciatica"])
    new_request(app, email="d@example.com", diagnoses=[])
    set_created(
        app,
        {
            disc: datetime(2026, 3, 1, tzinfo=UTC),
            both: datetime(2026, 3, 2, tzinfo=UTC),
            sciatica: datetime(2026, 3, 3, tzinfo=UTC),
        },
    )
    assert queue(staff_client, diagnosis="sciatica") == [both, sciatica]
    assert queue(staff_client, diagnosis="spinal_stenosis") == [both]
    assert queue(staff_client, diagnosis="herniated_disc") == [disc]
    assert queue(staff_client, diagnosis="scoliosis") == []


def test_filter_by_assigned_specialist(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    for_weber = [new_request(app, email=f"w{n}@example.com") for n in range(2)]
    for_okafor = new_request(app, email="o@example.com")
    unassigned = new_request(app, email="u@example.com")
    confirm(staff_client, clinic, for_weber[0], clinic.weber.id, day(0))
    confirm(staff_client, clinic, for_weber[1], clinic.weber.id, day(1))
    confirm(staff_client, clinic, for_okafor, clinic.okafor.id, day(0))

    assert sorted(queue(staff_client, status="all", specialist=clinic.weber.id)) == sorted(
        for_weber
    )
    assert queue(staff_client, status="all", specialist=clinic.okafor.id) == [for_okafor]
    assert unassigned not in queue(staff_client, status="all", specialist=clinic.weber.id)
    assert len(queue(staff_client, status="all")) == 4
    # The page offers the specialists by name and keeps the choice selected.
    page = staff_client.get(f"/staff/?status=all&specialist={clinic.okafor.id}")
    option = f'<option dir="auto" value="{clinic.okafor.id}" selected>Dr. Okafor</option>'
    assert option in page.get_data(as_text=True)


def test_date_range_uses_the_clinic_day_not_the_utc_day(
    app: Flask, staff_client: FlaskClient
) -> None:
    refs = {name: new_request(app, email=f"{name}@example.com") for name in "abcdef"}
    set_created(
        app,
        {
            # 10 March (Berlin is UTC+1): 00:30 there is still 9 March in UTC.
            refs["a"]: berlin(2026, 3, 10, 0, 30),
            refs["b"]: berlin(2026, 3, 10, 23, 30),
            # 11 March 00:30 in Berlin is 10 March 23:30 in UTC: not the 10th.
            refs["c"]: berlin(2026, 3, 11, 0, 30),
            refs["d"]: berlin(2026, 3, 9, 23, 30),
            # Summer time (UTC+2): 1 July 01:30 in Berlin is 30 June in UTC.
            refs["e"]: berlin(2026, 7, 1, 1, 30),
            refs["f"]: berlin(2026, 6, 30, 23, 30),
        },
    )
    assert berlin(2026, 3, 11, 0, 30).astimezone(UTC).day == 10  # the premise

    def shown(**args: str) -> set[str]:
        found = set(queue(staff_client, status="all", **args))
        return {name for name, ref in refs.items() if ref in found}

    assert shown(**{"from": "2026-03-10", "to": "2026-03-10"}) == {"a", "b"}
    assert shown(**{"from": "2026-03-11", "to": "2026-03-11"}) == {"c"}
    assert shown(**{"from": "2026-03-09", "to": "2026-03-09"}) == {"d"}
    assert shown(**{"from": "2026-07-01", "to": "2026-07-01"}) == {"e"}
    assert shown(**{"from": "2026-06-30", "to": "2026-06-30"}) == {"f"}
    assert shown(**{"from": "2026-03-11"}) == {"c", "e", "f"}
    assert shown(to="2026-03-10") == {"a", "b", "d"}
    assert shown(**{"from": "2026-03-12", "to": "2026-03-01"}) == set()
    # Dates the wrong way round find nothing: the page says why instead of "0 requests".
    swapped = staff_client.get("/staff/", query_string={"from": "2026-03-12", "to": "2026-03-01"})
    assert "The From date is after the To date" in swapped.get_data(as_text=True)
    plain = staff_client.get("/staff/", query_string={"from": "2026-03-01", "to": "2026-03-12"})
    assert "The From date is after the To date" not in plain.get_data(as_text=True)


def set_appointment_start(app: Flask, starts: dict[str, datetime]) -> None:
    """Move requests' appointments to an explicit start (aware datetimes), their end and
    blocked time with them."""
    with app.app_context():
        for reference, at in starts.items():
            appointment = (
                db.session.scalars(
                    select(ConsultationRequest).where(ConsultationRequest.reference == reference)
                )
                .one()
                .appointment
            )
            shift = at - appointment.starts_at
            appointment.starts_at += shift
            appointment.ends_at += shift
            appointment.blocked_until += shift
        db.session.commit()


def test_the_dates_can_be_the_appointments_clinic_day(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    """Staff looking for "the appointments of next week" choose which date From and To apply
    to: the arrival (the default, as before) or the appointment's start, a day of the
    clinic's time zone. Requests without an appointment the queue shows (none booked, or
    given up by a cancellation) are left out then. The choice stays in every link."""
    refs = {name: new_request(app, email=f"{name}@example.com") for name in "abcdefgh"}
    for n, name in enumerate("abcdefh"):
        specialist = clinic.weber if n % 2 == 0 else clinic.okafor
        confirm(staff_client, clinic, refs[name], specialist.id, day(n))
    act(staff_client, refs["h"], "cancel", message="")
    set_appointment_start(
        app,
        {
            # As the arrival test: 10 March 00:30 in Berlin (UTC+1) is still 9 March in UTC.
            refs["a"]: berlin(2026, 3, 10, 0, 30),
            refs["b"]: berlin(2026, 3, 10, 23, 30),
            refs["c"]: berlin(2026, 3, 11, 0, 30),  # 10 March in UTC: not the 10th
            refs["d"]: berlin(2026, 3, 9, 23, 30),
            # Summer time (UTC+2): 1 July 01:30 in Berlin is 30 June in UTC.
            refs["e"]: berlin(2026, 7, 1, 1, 30),
            refs["f"]: berlin(2026, 6, 30, 23, 30),
            refs["h"]: berlin(2026, 3, 10, 12, 0),  # cancelled: the time was given up
        },
    )
    # Every one arrived on 10 March, but "g" (no appointment) a day earlier.
    set_created(app, {ref: berlin(2026, 3, 10, 9, 0) for ref in refs.values()})
    set_created(app, {refs["g"]: berlin(2026, 3, 9, 9, 0)})

    def shown(**args: str) -> set[str]:
        found = set(queue(staff_client, status="all", **args))
        return {name for name, ref in refs.items() if ref in found}

    by_appointment = {"dates": "appointment"}
    assert shown(**by_appointment, **{"from": "2026-03-10", "to": "2026-03-10"}) == {"a", "b"}
    assert shown(**by_appointment, **{"from": "2026-03-11", "to": "2026-03-11"}) == {"c"}
    assert shown(**by_appointment, **{"from": "2026-03-09", "to": "2026-03-09"}) == {"d"}
    assert shown(**by_appointment, **{"from": "2026-07-01", "to": "2026-07-01"}) == {"e"}
    assert shown(**by_appointment, **{"from": "2026-06-30", "to": "2026-06-30"}) == {"f"}
    assert shown(**by_appointment, **{"from": "2026-03-11"}) == {"c", "e", "f"}
    assert shown(**by_appointment, to="2026-03-10") == {"a", "b", "d"}
    # Without a date the choice filters nothing: every request, booked or not.
    assert shown(**by_appointment) == set("abcdefgh")
    # The arrival, as before: by default, when asked for, or for a value the page never offered.
    on_the_tenth = {"from": "2026-03-10", "to": "2026-03-10"}
    assert shown(**on_the_tenth) == set("abcdefh")
    assert shown(dates="received", **on_the_tenth) == set("abcdefh")
    assert shown(dates="booked'--", **{"from": "2026-03-09", "to": "2026-03-09"}) == {"g"}
    # The tab's count follows it too.
    tenth = staff_client.get("/staff/", query_string={**by_appointment, **on_the_tenth})
    page = tenth.get_data(as_text=True)
    assert dict(TAB_RE.findall(page))["all"] == "2"

    # A labelled select (no script needed) keeps the choice, and every link keeps it: the
    # tabs, the export, the pages.
    assert '<label class="form-label" for="dates">' in page
    select_box = re.search(
        r'<select class="form-select" id="dates" name="dates">(.*?)</select>', page, re.S
    )
    assert select_box
    assert '<option value="appointment" selected>Appointment date</option>' in select_box[1]
    assert '<option value="received">Date received</option>' in select_box[1]
    links = [
        unescape(href) for href in re.findall(r'(?:href|action)="(/staff/[^"]*\?[^"]*)"', page)
    ]
    tabs = [link for link in links if "status=" in link]
    assert tabs and all("dates=appointment" in link for link in tabs)
    assert any(link.startswith("/staff/export.csv?") for link in tabs)
    plain = staff_client.get("/staff/", query_string={"status": "all"}).get_data(as_text=True)
    assert "dates=" not in plain  # the default stays out of the address
    assert '<option value="received" selected>Date received</option>' in plain


def test_dates_read_day_month_name_year_and_24_hour_time(
    app: Flask, staff_client: FlaskClient
) -> None:
    """Not the locale's "12/5/26, 12:26 PM" (5 December or 12 May?) nor "May 17, 1970"."""
    reference = new_request(app)
    set_created(app, {reference: berlin(2026, 12, 5, 12, 26)})
    with app.app_context():
        row = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        row.consented_at = berlin(2026, 12, 5, 12, 24)
        db.session.commit()

    page = staff_client.get("/staff/", query_string={"status": "all"}).get_data(as_text=True)
    assert '<td data-label="Received">5 Dec 2026, 12:26</td>' in page  # the queue's Received column

    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "17 May 1970 (age " in record
    assert "agreed 5 Dec 2026, 12:24</dd>" in record  # the consent
    assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b|\d:\d\d [AP]M", page + record)


def test_the_consent_names_the_privacy_notice_by_its_date(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A notice's version is the day it took effect: read as the pages write dates, not as
    the code "2026-12-05". A version named otherwise is shown as written."""
    dated, named = new_request(app), new_request(app)
    with app.app_context():
        for reference, version in ((dated, "2026-12-05"), (named, "v2")):
            row = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one()
            row.privacy_notice_version = version
            row.consented_at = berlin(2026, 12, 6, 9, 30)
        db.session.commit()

    record = staff_client.get(f"/staff/requests/{dated}").get_data(as_text=True)
    assert "Privacy notice of 5 Dec 2026, agreed 6 Dec 2026, 09:30</dd>" in record
    assert "2026-12-05" not in record
    record = staff_client.get(f"/staff/requests/{named}").get_data(as_text=True)
    assert "Privacy notice version v2, agreed 6 Dec 2026, 09:30</dd>" in record


def test_appointments_carry_their_weekday_and_received_reads_alike_everywhere(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    """An appointment to come is read with its weekday, as the agenda and the record give it
    ("Thu 14 Jan 2027, 10:00"); when a request was received is a stamp, read as the queue,
    the record's timeline and the intake summary write it ("5 Dec 2026, 12:26"), the
    record's "Received" too."""
    request_id = confirmed_request(app, clinic)
    day = winter_day(14)
    with app.app_context():
        row = db.session.get(ConsultationRequest, request_id)
        starts_at = datetime.combine(day, time(10), tzinfo=BERLIN)
        row.appointment.starts_at = starts_at
        row.appointment.ends_at = row.appointment.blocked_until = starts_at + timedelta(hours=1)
        row.created_at = berlin(2026, 12, 5, 12, 26)
        reference = row.reference
        db.session.commit()

    page = staff_client.get("/staff/", query_string={"status": "all"}).get_data(as_text=True)
    assert f'<td data-label="Appointment">{when(day, "10:00")}<br>' in page
    assert '<td data-label="Received">5 Dec 2026, 12:26</td>' in page
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f"{when(day, '10:00')}<br>" in record  # the record's appointment, as before
    assert 'Received</dt><dd class="col-sm-8">5 Dec 2026, 12:26</dd>' in record
    assert "Sat 5 Dec 2026" not in record


@pytest.fixture
def people(app: Flask) -> dict[str, str]:
    people = {
        "erika": {"full_name": "Erika Mustermann", "email": "erika.mustermann@example.com",
                  "phone": "+4930901820"},
        "jonas": {"full_name": "Jonas Becker", "email": "jb@praxis-nord.de",
                  "phone": "+4915112345678"},
        "underscore": {"full_name": "Ann_a Lee", "email": "lee@example.org",
                       "phone": "+4940111222"},
        "anna": {"full_name": "Anna Berg", "email": "anna.berg@example.net",
                 "phone": "+4940333444"},
        "percent": {"full_name": "Max 100% Sure", "email": "max@example.com",
                    "phone": "+4989555666"},
    }  # fmt: skip
    return {name: new_request(app, **fields) for name, fields in people.items()}


# Each search with who it finds: one page each, on the same five people (one app and five
# requests for all, not one per search: the setup cost 0.25 s per search, the search 0.04 s).
SEARCHES = [
    ("Mustermann", {"erika"}),
    ("bECKe", {"jonas"}),  # case-insensitive, part of the name
    ("  becker  ", {"jonas"}),
    ("praxis-nord", {"jonas"}),  # part of the email
    ("ERIKA.MUSTERMANN@EXAMPLE.COM", {"erika"}),
    ("151 1234 5678", {"jonas"}),  # phone digits, typed with spaces
    ("+49 30 901820", {"erika"}),
    ("901820", {"erika"}),
    ("030 901820", {"erika"}),  # as written in the clinic's country, with the leading 0
    ("0151 12345678", {"jonas"}),
    ("nobody at all", set()),
    # % and _ are literal characters, not LIKE wildcards.
    ("%", {"percent"}),
    ("0%", {"percent"}),
    ("M%r", set()),
    ("_", {"underscore"}),
    ("n_a", {"underscore"}),  # as a wildcard it would also match "Anna"
    ("\\", set()),
]


def test_search(staff_client: FlaskClient, people: dict[str, str]) -> None:
    found = {}
    for q, _ in SEARCHES:
        shown = set(queue(staff_client, status="all", q=q))
        found[q] = {name for name, ref in people.items() if ref in shown}
    assert found == dict(SEARCHES)  # every search's result, all compared at once


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("\u0301", id="a-lone-accent"),
        pytest.param("\u0301 \u0308\u0327", id="accents-and-a-space"),
        pytest.param("\u200b\u200e", id="invisible-marks"),
    ],
)
def test_a_search_of_nothing_but_marks_is_no_search(
    app: Flask, staff_client: FlaskClient, clinic: Clinic, q: str
) -> None:
    """Accents on no letter fold away (``folded``) and invisible marks show nothing in the
    box: compared as they were, the first matched every patient and the second none, both
    under "search results". Such a search is no search: the queue as it is without one."""
    waiting = new_request(app, email="w@example.com")
    confirmed = new_request(app, email="c@example.com")
    confirm(staff_client, clinic, confirmed, clinic.weber.id, day(0))

    def shown(**args: Any) -> tuple[str, list[str], list[tuple[str, str]], str]:
        page = staff_client.get("/staff/", query_string=args).get_data(as_text=True)
        title = re.search(r"<title>(.*?) \u2013 ", page, re.S)[1]
        box = re.search(r'<input[^>]*id="q"[^>]*value="([^"]*)"', page)[1]
        return title, REF_RE.findall(page), TAB_RE.findall(page), box

    assert shown(q=q) == shown()
    assert shown(q=q)[1] == [waiting]
    assert shown(status="all", q=q) == shown(status="all")
    assert "search results" not in shown(status="all", q=q)[0]


def test_search_by_reference_in_any_case(staff_client: FlaskClient, people: dict[str, str]) -> None:
    reference = people["anna"]
    assert queue(staff_client, status="all", q=reference) == [reference]
    assert queue(staff_client, status="all", q=reference.lower()) == [reference]
    assert queue(staff_client, status="all", q=f" {reference.swapcase()} ") == [reference]
    # As read out or copied without its dashes or prefix: "sc cvaw y4x9", "CVAWY4X9".
    letters = reference.removeprefix("SC-").replace("-", "")
    for typed in (letters, letters.lower(), f"sc {letters[:4]} {letters[4:]}", f"SC{letters}"):
        assert queue(staff_client, status="all", q=typed) == [reference], typed


def test_search_ignores_case_beyond_ascii(
    app: Flask, staff_client: FlaskClient, request: pytest.FixtureRequest
) -> None:
    oezdemir = new_request(app, full_name="Özlem Özdemir", email="oe@example.com")
    new_request(app, full_name="Erika Mustermann", email="em@example.com")
    assert queue(staff_client, status="all", q="özdemir") == [oezdemir]
    assert queue(staff_client, status="all", q="ÖZLEM") == [oezdemir]


def test_search_ignores_accents(app: Flask, staff_client: FlaskClient) -> None:
    """Staff type names as they hear them: "Garcia" finds "García", "munoz" finds "Muñoz",
    and the other way round."""
    garcia = new_request(app, full_name="José García Muñoz", email="jg@example.com")
    plain = new_request(app, full_name="Jose Garcia", email="plain@example.com")
    assert queue(staff_client, status="all", q="garcia munoz") == [garcia]
    assert queue(staff_client, status="all", q="MUÑOZ") == [garcia]
    assert set(queue(staff_client, status="all", q="josé garcía")) == {garcia, plain}


def test_search_ignores_invisible_characters_pasted_into_a_name_or_the_search(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A name pasted from another application may carry a zero-width space, joiner or a soft
    hyphen that nobody sees: it is found by the name typed without, and a search pasted with
    one finds the name typed without."""
    pasted = new_request(app, full_name="Mar\u200bía Lo\u00adpez", email="ml@example.com")
    guardian = new_request(
        app, full_name="Lena Becker", guardian_name="Jo\u200dsé Ruiz", email="jr@example.com"
    )
    typed = new_request(app, full_name="Ana Torres", email="at@example.com")
    assert queue(staff_client, status="all", q="maria lopez") == [pasted]
    assert queue(staff_client, status="all", q="jose ruiz") == [guardian]
    assert queue(staff_client, status="all", q="Ana\u200b Tor\ufeffres") == [typed]


def test_search_finds_a_minors_request_by_the_guardians_name(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A parent or guardian who filled the request in for a child phones and gives their own
    name: the search finds it by that name too, without accents or case, and the row still
    names the patient."""
    child = new_request(
        app, full_name="Lena Mustermann", guardian_name="Jürgen Núñez", email="jn@example.com"
    )
    new_request(app, full_name="Erika Becker", email="eb@example.com")
    for typed in ("Jürgen Núñez", "jurgen nunez", "NUÑEZ", "ürgen"):
        assert queue(staff_client, status="all", q=typed) == [child], typed
    page = staff_client.get("/staff/", query_string={"status": "all", "q": "nunez"})
    row = unescape(page.get_data(as_text=True))
    assert "Lena Mustermann" in row and "Núñez" not in row


def test_pagination_shows_the_rest_on_page_two_and_clamps(
    app: Flask, staff_client: FlaskClient
) -> None:
    refs = [new_request(app, email=f"p{n}@example.com") for n in range(27)]
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    set_created(app, {ref: start + timedelta(minutes=n) for n, ref in enumerate(refs)})

    first = queue(staff_client)
    assert first == refs[:25]
    assert queue(staff_client, page=2) == refs[25:]
    page_two = staff_client.get("/staff/?page=2").get_data(as_text=True)
    assert "27 requests" in page_two and "page 2 of 2" in page_two
    # A page past the end shows the last page; page 0 the first.
    assert queue(staff_client, page=50) == refs[25:]
    assert "page 2 of 2" in staff_client.get("/staff/?page=50").get_data(as_text=True)
    assert queue(staff_client, page=0) == refs[:25]
    # Paging keeps the other filters.
    assert "status=requested" in page_two and "page=1" in page_two


BAD_ARGS = [
    {"status": "bogus"},
    {"status": "REQUESTED'--"},
    {"triage": "critical"},
    {"triage": "urgent' OR 1=1"},
    {"diagnosis": "not-a-code"},
    {"specialist": "abc"},
    {"specialist": "-1"},
    {"specialist": "1.5"},
    {"specialist": "99999999999999999999999"},
    {"specialist": "\u00b2"},  # "²": str.isdigit() says yes, int() says no
    {"from": "2026-02-30"},
    {"from": "yesterday"},
    {"to": "2026-13-01"},
    {"from": "0001-01-01"},
    {"to": "9999-12-31"},
    {"page": "abc"},
    {"page": "-2"},
    {"page": "1e3"},
    {"page": "99999999999999999999999"},
    {"page": "\u00b2"},
]


def _bad_param(args: dict[str, str]) -> Any:
    ((key, value),) = args.items()
    return pytest.param(args, id=f"{key}={value!r}")


@pytest.mark.parametrize("args", [_bad_param(a) for a in BAD_ARGS])
def test_bad_filter_values_are_ignored(
    app: Flask, staff_client: FlaskClient, args: dict[str, str]
) -> None:
    routine = new_request(app, email="r@example.com")
    urgent = new_request(app, email="u@example.com", red_flags={"bladder_bowel"})
    response = staff_client.get("/staff/", query_string=args)
    assert response.status_code == 200
    # Ignored: the page is the default queue (waiting requests, urgent first).
    assert REF_RE.findall(response.get_data(as_text=True)) == [urgent, routine]


@pytest.mark.parametrize(
    ("q", "matches"),
    [
        pytest.param("%00", None, id="nul"),
        pytest.param("a%00b", None, id="nul-inside"),
        pytest.param("x" * 5000, False, id="very-long"),
        pytest.param("%27%20OR%201%3D1%20--", False, id="sql"),
        pytest.param("%ED%A0%80%FF", False, id="invalid-utf8"),
    ],
)
def test_hostile_search_text_never_fails(
    app: Flask,
    staff_client: FlaskClient,
    request: pytest.FixtureRequest,
    q: str,
    matches: bool | None,
) -> None:
    reference = new_request(app)
    response = staff_client.get(f"/staff/?status=all&q={q}")
    assert response.status_code == 200
    if matches is not None:  # a NUL may be dropped or match nothing: either is fine
        assert (reference in REF_RE.findall(response.get_data(as_text=True))) is matches


# --- a fixed number of queries --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        {"status": "all"},
        {"status": "confirmed", "q": "example.com"},
        {"status": "requested", "triage": "routine", "diagnosis": "herniated_disc"},
    ],
    ids=["all", "confirmed-search", "requested-filtered"],
)
def test_queue_page_query_count_does_not_grow_with_the_data(
    app: Flask, staff_client: FlaskClient, clinic: Clinic, args: dict[str, str]
) -> None:
    def make(n: int, **kw: Any) -> str:
        return new_request(app, email=f"patient{n}@example.com", **kw)

    small = [make(0, documents=1), make(1), make(2)]
    confirm(staff_client, clinic, small[1], clinic.weber.id, day(0))
    with sql_statements(app) as few:
        response = staff_client.get("/staff/", query_string=args)
    assert response.status_code == 200
    shown_small = len(REF_RE.findall(response.get_data(as_text=True)))

    more = [
        make(n, documents=n % 3, red_flags={"bladder_bowel"} if n % 4 == 0 else None)
        for n in range(3, 40)
    ]
    for n, reference in enumerate(more[:8]):
        specialist = clinic.weber.id if n % 2 else clinic.okafor.id
        confirm(staff_client, clinic, reference, specialist, day(n))
    add_note(staff_client, more[0], "Called the patient.")
    with sql_statements(app) as many:
        response = staff_client.get("/staff/", query_string=args)
    assert response.status_code == 200
    shown_many = len(REF_RE.findall(response.get_data(as_text=True)))

    assert shown_many > shown_small >= 1  # the larger page really shows more rows
    assert len(few) == len(many), _same_count_message(few, many)
    # +1 on every staff page of a coordinator or admin: the late emails' banner; +1 for the
    # days an admin closed the clinic (the urgent requests' waits count working time).
    assert len(many) <= 8, _same_count_message(few, many)


def test_record_page_query_count_does_not_grow_with_the_data(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        admin_email = staff_user("admin@example.com").email
    plain = new_request(app, email="plain@example.com", documents=1)
    busy = new_request(app, email="busy@example.com", documents=6, red_flags={"bladder_bowel"})
    # Status changes and emails, and notes by three different people.
    confirm(staff_client, clinic, busy, clinic.weber.id, day(0))
    act(
        staff_client,
        busy,
        "reschedule",
        specialist=clinic.weber.id,
        location=clinic.location,
        day=day(1),
        start="11:00",
        appointment_type=clinic.type,
        message="Moved.",
    )
    add_note(staff_client, busy, "Coordinator note.")
    for email in (clinic.weber.email, admin_email):
        other = app.test_client()
        AuthActions(other).login(email=email)
        add_note(other, busy, f"Note by {email}.")
    add_note(staff_client, busy, "Another coordinator note.")

    with sql_statements(app) as few:
        response = staff_client.get(f"/staff/requests/{plain}")
    assert response.status_code == 200
    with sql_statements(app) as many:
        response = staff_client.get(f"/staff/requests/{busy}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.count("report-") >= 6 and "Note by admin@example.com." in page

    assert len(few) == len(many), _same_count_message(few, many)
    # The record page's budget, as tests/test_query_counts.py counts it there (what each
    # query is for is listed there).
    assert len(many) <= 21, _same_count_message(few, many)


def test_a_specialists_queue_holds_their_own_requests_with_no_choice_of_specialist(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        own, other = make_assigned_requests(clinic)
    auth.login(email=clinic.weber.email)
    for args in ({"status": "all"}, {"status": "all", "specialist": clinic.okafor.id}):
        response = auth.client.get("/staff/queue", query_string=args)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert REF_RE.findall(page) == [own["reference"]], args
        assert 'id="specialist"' not in page and "Specialist" not in page

    coordinator = auth.new_client("coordinator")
    page = coordinator.get("/staff/queue", query_string={"status": "all"}).get_data(as_text=True)
    assert 'id="specialist"' in page
    assert sorted(REF_RE.findall(page)) == sorted([own["reference"], other["reference"]])


def test_the_title_names_the_triage_filter_and_the_search(
    app: Flask, staff_client: FlaskClient
) -> None:
    """Each filtered list is a page of its own: the title (read first by a screen reader,
    shown in the browser's tabs and history) says which, as it does the status and page;
    not the text searched for, often a patient's name."""
    new_request(app, email="u@example.com", red_flags={"fragile_bones"})

    def title(path: str) -> str:
        page = staff_client.get(path).get_data(as_text=True)
        # The page's own part, before the dash and the clinic's name.
        return re.search(r"<title>(.*?) \u2013 ", page, re.S)[1]

    assert (
        title("/staff/?status=all&triage=urgent&q=M%C3%BCller+%3Cb%3E")
        == "Triage queue: All, Triage: Urgent, search results"
    )
    assert title("/staff/?status=all") == "Triage queue: All"


# --- urgent requests still to call back -----------------------------------------------------


def _post_record_form(client: FlaskClient, reference: str, path: str, data: dict) -> None:
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    tokens = dict(re.findall(r'name="([a-z]+-csrf_token)"[^>]*value="([^"]+)"', page))
    prefix = next(iter(data)).split("-", 1)[0]
    data = {f"{prefix}-csrf_token": tokens[f"{prefix}-csrf_token"], **data}
    response = client.post(f"/staff/requests/{reference}/{path}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def _unreached_section(client: FlaskClient, **args: Any) -> str | None:
    page = client.get("/staff/", query_string=args).get_data(as_text=True)
    if 'id="unreached-heading"' not in page:
        return None
    section = page[page.index('id="unreached-heading"') :]
    return section[: section.index("</section>")]


def test_unreached_urgent_requests_stay_on_the_default_tab_whatever_their_open_status(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    """Confirming an urgent request, or asking its patient for something, takes it out of
    the "requested" tab, yet nobody has called: the tab lists it above its rows, with its
    status, most urgent first, until a call that reached the patient is logged."""
    urgent = new_request(app, email="u@example.com", red_flags={"fever"})
    emergency = new_request(app, email="e@example.com", red_flags={"bladder_bowel"})
    routine = new_request(app, email="r@example.com")
    reached = new_request(app, email="x@example.com", red_flags={"serious_injury"})
    waiting = new_request(app, email="w@example.com", red_flags={"fever"})
    confirm(staff_client, clinic, urgent, clinic.weber.id, day(0))
    confirm(staff_client, clinic, routine, clinic.weber.id, day(1))
    confirm(staff_client, clinic, reached, clinic.okafor.id, day(2))
    _post_record_form(staff_client, reached, "calls", {"call-outcome": "reached"})
    _post_record_form(staff_client, emergency, "ask", {"ask-items": ["imaging_report"]})

    section = _unreached_section(staff_client)
    assert section is not None
    assert REF_RE.findall(section) == [emergency, urgent]  # the emergency first
    row = section[section.index(emergency) :]
    assert "waiting for the patient" in row[: row.index("</tr>")]
    row = section[section.index(urgent) :]
    assert "confirmed" in row[: row.index("</tr>")]
    # Listed above the tab's own rows, which are still its own (the one not yet confirmed).
    assert queue(staff_client) == [emergency, urgent, waiting]
    # Other tabs list them in their own rows, as before.
    assert _unreached_section(staff_client, status="confirmed") is None

    _post_record_form(staff_client, urgent, "calls", {"call-outcome": "reached"})
    section = _unreached_section(staff_client)
    assert section is not None and REF_RE.findall(section) == [emergency]
    # Under the tab's filters, like its rows.
    assert _unreached_section(staff_client, triage="urgent") is None


def test_unreached_urgent_requests_of_other_statuses_wait_from_their_raise(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    """The default tab's list of unreached urgent requests merges two statuses in the
    queue's order: a request raised to urgent after an urgent one arrived comes after it,
    however long ago it arrived itself."""
    raised = new_request(app, email="r@example.com")
    urgent = new_request(app, email="u@example.com", red_flags={"fever"})
    set_created(
        app,
        {
            raised: datetime(2026, 3, 1, 9, tzinfo=UTC),
            urgent: datetime(2026, 3, 11, 7, tzinfo=UTC),
        },
    )
    raise_level(app, raised, TriageLevel.URGENT, datetime(2026, 3, 11, 9, tzinfo=UTC))
    confirm(staff_client, clinic, raised, clinic.weber.id, day(0))
    _post_record_form(staff_client, urgent, "ask", {"ask-items": ["imaging_report"]})

    section = _unreached_section(staff_client)
    assert section is not None and REF_RE.findall(section) == [urgent, raised]


def _row_of(page: str, reference: str) -> str:
    row = page[page.index(f"/staff/requests/{reference}") :]
    return row[: row.index("</tr>")]


UNREAD = "Unread message from the patient"


def test_requests_with_an_unread_message_from_the_patient_are_marked_and_listed(
    app: Flask, staff_client: FlaskClient
) -> None:
    """After sending, a message is the patient's one way to tell the clinic of new or worse
    symptoms: the queue marks its row in words (read out with the status, not a colour
    alone), counts such requests and lists them, urgent first, until someone opens the
    record (which reads the thread). The clinic's own messages the patient has not read do
    not count."""
    from booking.messages.services import send_patient_message, send_staff_message

    routine_old = new_request(app, email="a@example.com")
    routine_new = new_request(app, email="b@example.com")
    urgent = new_request(app, email="u@example.com", red_flags={"fever"})
    elsewhere = new_request(app, email="w@example.com", red_flags={"fever"})
    set_created(
        app,
        {
            routine_old: datetime(2026, 3, 1, 9, tzinfo=UTC),
            routine_new: datetime(2026, 3, 2, 9, tzinfo=UTC),
            urgent: datetime(2026, 3, 3, 9, tzinfo=UTC),
            elsewhere: datetime(2026, 3, 4, 9, tzinfo=UTC),
        },
    )
    # Out of the "requested" tab, its call-back still owed: listed above the tab's rows.
    _post_record_form(staff_client, elsewhere, "ask", {"ask-items": ["imaging_report"]})
    with app.app_context():
        by_reference = {
            r.reference: r
            for r in db.session.scalars(select(ConsultationRequest))
            if r.reference in (routine_old, routine_new, urgent, elsewhere)
        }
        for reference in (routine_new, urgent, elsewhere):
            send_patient_message(by_reference[reference], "Since yesterday my leg feels weaker.")
        send_staff_message(
            by_reference[routine_old], staff_user("coord@example.com"), "Please call us."
        )

    page = staff_client.get("/staff/").get_data(as_text=True)
    assert UNREAD in _row_of(page, routine_new) and UNREAD in _row_of(page, urgent)
    assert UNREAD not in _row_of(page, routine_old)
    section = _unreached_section(staff_client)
    assert section is not None and UNREAD in _row_of(section, elsewhere)
    assert re.search(r'Unread messages <span class="badge[^"]*" id="unread-count">3<', page)

    listed = staff_client.get("/staff/", query_string={"status": "all", "unread": "1"})
    text = listed.get_data(as_text=True)
    assert "<title>Triage queue: Unread messages" in text
    assert re.search(r'aria-current="page"\s*href="/staff/queue\?status=all">Unread messages', text)
    assert REF_RE.findall(text) == [urgent, elsewhere, routine_new]  # urgent first
    # The filter form keeps the list switched on, and the other list's link leaves it.
    assert '<input type="hidden" name="unread" value="1">' in text
    assert 'href="/staff/queue?status=all&amp;unnotified=1"' in text

    staff_client.get(f"/staff/requests/{urgent}")  # opening the record reads the thread
    assert queue(staff_client, status="all", unread="1") == [elsewhere, routine_new]
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert UNREAD not in _row_of(page, urgent)
    assert re.search(r'Unread messages <span class="badge[^"]*" id="unread-count">2<', page)
