"""The insights page: figures on worked examples, clinic-time weeks, access, safe SVG."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking.extensions import db
from booking.insights import charts, services
from booking.patients.services import RequestSubmission, submit_request
from booking.requests import history
from booking.requests.models import ConsultationRequest, RequestDiagnosis, RequestStatus
from booking.staff.models import StaffRole
from booking.timeutil import clinic_date, clinic_today, now_utc
from tests.support import AuthActions, Staff, sql_statements

PASSWORD = "correct horse battery staple"
SVG_RE = re.compile(r"<svg\b.*?</svg>", re.DOTALL)

MakeRequest = Callable[..., int]


@pytest.fixture
def make_request(app: Flask) -> MakeRequest:
    """Store a request through ``submit_request``, then move it in time and status."""

    def make(
        created_at: datetime | None = None,
        *,
        status: RequestStatus = RequestStatus.REQUESTED,
        confirmed_after: timedelta | None = None,
        diagnoses: tuple[str, ...] = ("herniated_disc",),
        urgent: bool = False,
    ) -> int:
        with app.app_context():
            consultation = submit_request(_submission(diagnoses=list(diagnoses), urgent=urgent))
            created = created_at or now_utc()
            consultation.created_at = created
            consultation.status = status
            if confirmed_after is not None:
                consultation.confirmed_at = created + confirmed_after
            db.session.commit()
            return consultation.id

    return make


def _submission(*, diagnoses: list[str], urgent: bool) -> RequestSubmission:
    return RequestSubmission(
        submission_token=secrets.token_urlsafe(24),
        locale="en",
        full_name="Erika Mustermann",
        date_of_birth=date(1970, 5, 17),
        guardian_name=None,
        email="erika.mustermann@example.com",
        phone="+4930901820",
        preferred_contact="email",
        answers=history.example_answers(
            pain_locations=["lower_back"],
            numbness=False,
            diagnoses=diagnoses,
            treatments=[],
            imaging=[],
            imaging_when=None,
            medications=None,
        ),
        odi_answers={},
        red_flags={"bladder_bowel"} if urgent else set(),
    )


def _svgs(page: str) -> list[str]:
    return SVG_RE.findall(page)


def _table_row(page: str, label: str) -> str | None:
    """The value cell of the table row headed ``label``."""
    match = re.search(rf'<th scope="row">{re.escape(label)}</th><td>(\d+)</td>', page)
    return match.group(1) if match else None


# --- figures ---------------------------------------------------------------------------------


def test_share_confirmed_and_median_on_the_briefs_example(
    app: Flask, make_request: MakeRequest
) -> None:
    now = now_utc()
    created = now - timedelta(days=10)
    make_request(created, status=RequestStatus.CONFIRMED, confirmed_after=timedelta(hours=24))
    # Confirmed, then cancelled: it still reached confirmation.
    make_request(created, status=RequestStatus.CANCELLED, confirmed_after=timedelta(hours=48))
    make_request(created)
    make_request(created, status=RequestStatus.DECLINED)

    with app.app_context():
        insights = services.clinic_insights(12, now=now)

    assert insights.total == 4
    assert insights.confirmed == 2
    assert insights.confirmed_share == 0.5
    assert insights.median_to_confirm == timedelta(hours=36)
    # Nobody has been seen or missed yet: no rate rather than 0 %.
    assert (insights.completed, insights.no_show, insights.no_show_rate) == (0, 0, None)


def test_page_shows_the_worked_example(
    client: FlaskClient, make_request: MakeRequest, auth: AuthActions, staff: Staff
) -> None:
    created = now_utc() - timedelta(hours=1)
    for hours, status in (
        (12, RequestStatus.COMPLETED),
        (24, RequestStatus.COMPLETED),
        (48, RequestStatus.NO_SHOW),
        (72, RequestStatus.CONFIRMED),
    ):
        make_request(created, status=status, confirmed_after=timedelta(hours=hours))
    make_request(created, urgent=True)
    make_request(created, status=RequestStatus.DECLINED)
    # Long before the period: counted nowhere.
    make_request(
        now_utc() - timedelta(days=400),
        status=RequestStatus.NO_SHOW,
        confirmed_after=timedelta(hours=1),
    )
    auth.login(StaffRole.COORDINATOR.value)

    response = client.get("/staff/insights")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "67%" in page  # 4 of 6 confirmed
    assert "36 hours" in page  # median of 12, 24, 48 and 72 hours
    assert "33%" in page  # 1 no-show of 2 completed + 1 no-show
    assert "1 emergency or urgent, 5 routine" in page
    assert _table_row(page, "Emergency or urgent") == "1"
    assert _table_row(page, "Routine") == "5"
    assert 'aria-current="page">Last 12 weeks<' in page


def test_no_show_rate_counts_only_completed_and_missed(
    app: Flask, make_request: MakeRequest
) -> None:
    now = now_utc()
    created = now - timedelta(days=3)
    hour = timedelta(hours=1)
    make_request(created, status=RequestStatus.COMPLETED, confirmed_after=hour)
    make_request(created, status=RequestStatus.COMPLETED, confirmed_after=hour)
    make_request(created, status=RequestStatus.NO_SHOW, confirmed_after=hour)
    make_request(created, status=RequestStatus.CANCELLED, confirmed_after=hour)
    make_request(created)

    with app.app_context():
        insights = services.clinic_insights(4, now=now)

    assert (insights.completed, insights.no_show) == (2, 1)
    assert insights.no_show_rate == pytest.approx(1 / 3)


def test_diagnoses_are_counted_per_request_naming_them(
    app: Flask,
    client: FlaskClient,
    make_request: MakeRequest,
    auth: AuthActions,
    staff: Staff,
) -> None:
    created = now_utc() - timedelta(days=2)
    make_request(created, diagnoses=("herniated_disc", "sciatica"))
    make_request(created, diagnoses=("sciatica",))
    make_request(created, diagnoses=())
    make_request(created, diagnoses=("spinal_stenosis", "sciatica"))
    make_request(now_utc() - timedelta(days=400), diagnoses=("spinal_stenosis",))

    with app.app_context():
        insights = services.clinic_insights(12)
    assert [(d.code, d.count) for d in insights.by_diagnosis] == [
        ("sciatica", 3),
        ("herniated_disc", 1),  # ties in the form's order
        ("spinal_stenosis", 1),
    ]

    auth.login(StaffRole.ADMIN.value)
    page = client.get("/staff/insights").get_data(as_text=True)
    assert _table_row(page, "Sciatica") == "3"
    assert _table_row(page, "Herniated (slipped) disc") == "1"
    assert _table_row(page, "Spinal stenosis") == "1"
    assert _table_row(page, "Fracture") is None


def test_an_emergency_call_back_is_counted_by_main_problem_too(
    app: Flask, client: FlaskClient, make_request: MakeRequest, auth: AuthActions, staff: Staff
) -> None:
    """A call-back request has no health questions: the chart by main problem still adds up
    to every request of the period, with a row of its own."""
    from booking.patients.services import CallbackSubmission, request_callback

    make_request(now_utc() - timedelta(days=2))
    with app.app_context():
        request_callback(
            CallbackSubmission(
                submission_token=secrets.token_urlsafe(32),
                locale="en",
                full_name="Jonas Weber",
                phone="+4930901820",
                red_flags={"saddle_numbness"},
            )
        )
        insights = services.clinic_insights(12)
    assert sum(item.count for item in insights.by_region) == 2
    assert (services.CALL_BACK, 1) in [(item.code, item.count) for item in insights.by_region]
    auth.login(StaffRole.ADMIN.value)
    page = client.get("/staff/insights").get_data(as_text=True)
    assert _table_row(page, "No health questions (emergency call-back)") == "1"


@pytest.mark.parametrize(
    ("now", "before_monday", "after_monday", "monday"),
    [
        # Berlin in winter (UTC+1): Monday 12 January 00:00 is Sunday 23:00 UTC.
        (
            datetime(2026, 1, 14, 12, 0, tzinfo=UTC),
            datetime(2026, 1, 11, 22, 30, tzinfo=UTC),
            datetime(2026, 1, 11, 23, 30, tzinfo=UTC),
            date(2026, 1, 12),
        ),
        # The week after clocks go forward (UTC+2): Monday 30 March 00:00 is Sunday 22:00 UTC.
        (
            datetime(2026, 4, 1, 9, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 21, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 22, 30, tzinfo=UTC),
            date(2026, 3, 30),
        ),
    ],
)
def test_weeks_follow_the_clinics_calendar(
    app: Flask,
    make_request: MakeRequest,
    now: datetime,
    before_monday: datetime,
    after_monday: datetime,
    monday: date,
) -> None:
    assert app.config["CLINIC_TIMEZONE"] == "Europe/Berlin"
    make_request(before_monday)  # Sunday evening at the clinic
    make_request(after_monday)  # Monday just after midnight at the clinic, still Sunday in UTC
    make_request(after_monday + timedelta(hours=1))
    monday_utc = datetime.combine(monday, time.min, tzinfo=UTC)
    make_request(monday_utc - timedelta(weeks=3, hours=12))  # the Sunday before the period
    make_request(monday_utc + timedelta(weeks=1, hours=1))  # next week, after `now`
    make_request(now + timedelta(days=1))  # this week, but tomorrow: after the period's end

    with app.app_context():
        insights = services.clinic_insights(4, now=now)

    assert [week.monday for week in insights.per_week] == [
        monday - timedelta(weeks=n) for n in (3, 2, 1, 0)
    ]
    assert [week.count for week in insights.per_week] == [0, 0, 1, 2]
    assert insights.total == 3
    # The period ends today (`now` is midday: the same day at the clinic), not on Sunday.
    assert (insights.first_day, insights.last_day) == (monday - timedelta(weeks=3), now.date())


def test_a_fixed_number_of_queries_whatever_the_period(
    app: Flask, make_request: MakeRequest
) -> None:
    for days in (1, 20, 100, 300):
        make_request(
            now_utc() - timedelta(days=days),
            status=RequestStatus.COMPLETED,
            confirmed_after=timedelta(hours=days),
            diagnoses=("sciatica", "fracture"),
        )
    with app.app_context():
        counts = []
        for weeks in services.PERIOD_WEEKS:
            with sql_statements(app, selects_only=True) as statements:
                insights = services.clinic_insights(weeks)
            counts.append(len(statements))
        assert insights.total == 4
    assert counts == [6, 6, 6, 6]


@pytest.mark.parametrize(
    ("given", "weeks"),
    [(None, 12), ("", 12), ("4", 4), ("26", 26), ("52", 52), ("7", 12), ("x", 12), ("-4", 12)],
)
def test_period_choice(given: str | None, weeks: int) -> None:
    assert services.period_weeks(given) == weeks


def test_period_links_keep_to_the_offered_choices(
    client: FlaskClient, make_request: MakeRequest, auth: AuthActions, staff: Staff
) -> None:
    make_request(now_utc() - timedelta(weeks=20))
    auth.login(StaffRole.ADMIN.value)

    four = client.get("/staff/insights?weeks=4").get_data(as_text=True)
    half_year = client.get("/staff/insights?weeks=26").get_data(as_text=True)

    assert 'aria-current="page">Last 4 weeks<' in four
    assert "No requests in this period." in four
    assert 'aria-current="page">Last 26 weeks<' in half_year
    assert "No requests in this period." not in half_year
    assert 'href="/staff/insights?weeks=52"' in four


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(minutes=40), "40 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=36), "36 hours"),
        (timedelta(hours=7, minutes=30), "7.5 hours"),
        (timedelta(hours=60), "2.5 days"),
        (timedelta(days=3), "3 days"),
    ],
)
def test_durations_read_naturally(app: Flask, duration: timedelta, text: str) -> None:
    with app.test_request_context():
        assert services.format_duration(duration) == text


# --- the page --------------------------------------------------------------------------------


def test_empty_period_says_so_instead_of_drawing(
    client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    auth.login(StaffRole.COORDINATOR.value)
    response = client.get("/staff/insights")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "No requests in this period." in page
    assert "<svg" not in page


def test_the_period_ends_today_and_says_so(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    """The period named on the page ends today, in the clinic's calendar, and says so:
    not on the Sunday ending the current week, a date still to come."""
    auth.login(StaffRole.COORDINATOR.value)
    page = client.get("/staff/insights?weeks=4").get_data(as_text=True)
    with app.test_request_context():
        today = clinic_today()
        first = clinic_date(today - timedelta(days=today.weekday(), weeks=3))
        last = clinic_date(today)
    assert f"Requests made from {first} to today, {last} (weeks start on Monday" in page


def test_specialists_may_not_see_insights(
    client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    auth.login(StaffRole.SPECIALIST.value)
    assert client.get("/staff/insights").status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/staff/insights?weeks=4")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login?next=")


def test_charts_are_accessible_svg_without_script(
    app: Flask,
    client: FlaskClient,
    make_request: MakeRequest,
    auth: AuthActions,
    staff: Staff,
) -> None:
    request_id = make_request(now_utc() - timedelta(days=1), urgent=True)
    with app.app_context():
        # A code the form never offered (an old or imported row) is shown as it is: escaped.
        db.session.add(RequestDiagnosis(request_id=request_id, code="<script>x</script>"))
        db.session.commit()
        assert db.session.get(ConsultationRequest, request_id) is not None
    auth.login(StaffRole.ADMIN.value)

    page = client.get("/staff/insights").get_data(as_text=True)
    svgs = _svgs(page)

    assert len(svgs) == 4
    for svg in svgs:
        assert "<script" not in svg.lower()
        assert "style=" not in svg
        assert 'role="img"' in svg
        labelled = re.search(r'aria-labelledby="([^"]+)"', svg)
        assert labelled and f'<title id="{labelled.group(1)}">' in svg
    assert "&lt;script&gt;x&lt;/script&gt;" in svgs[1]
    assert "<script>x</script>" not in page
    # The same numbers in a table for screen readers.
    assert re.search(r'<div class="visually-hidden">\s*<table>', page)
    assert _table_row(page, "&lt;script&gt;x&lt;/script&gt;") == "1"


def test_chart_functions_escape_every_text() -> None:
    bars = [charts.Bar(label='Disc & <b>"bulge"</b>', value=3, axis_label="<i>")]
    for draw in (charts.column_chart, charts.bar_chart):
        svg = draw(bars, chart_id="c1", title="A <title> & more", description="x < y")
        assert "<b>" not in svg and "<i>" not in svg
        assert "Disc &amp; &lt;b&gt;&#34;bulge&#34;&lt;/b&gt;" in svg
        assert '<title id="c1-title">A &lt;title&gt; &amp; more</title>' in svg
        assert 'aria-describedby="c1-desc"' in svg
        assert "<script" not in svg and "style=" not in svg
    with pytest.raises(ValueError, match="element id"):
        charts.bar_chart(bars, chart_id='x" onload="alert(1)', title="t")
    with pytest.raises(ValueError, match="colour"):
        charts.bar_chart([charts.Bar("a", 1, fill="red;")], chart_id="c2", title="t")


def test_column_chart_scales_to_whole_number_ticks() -> None:
    svg = charts.column_chart(
        [charts.Bar(f"Week {n}", n) for n in (0, 3, 7)], chart_id="w", title="Weeks"
    )
    ticks = re.findall(r'text-anchor="end" dominant-baseline="central" fill="[^"]+">(\d+)<', svg)
    assert ticks == ["0", "2", "4", "6", "8"]


def test_a_request_staff_raised_since_counts_by_its_urgency_at_arrival(
    app: Flask, make_request: MakeRequest
) -> None:
    """The figure is the online triage's: how urgent requests were when they came in. A
    routine one staff raised to urgent later (new symptoms) stays routine in it."""
    from booking.dashboard.services import raise_triage
    from booking.requests.models import TriageLevel
    from tests.factories import make_staff

    routine_id = make_request()
    make_request(urgent=True)
    with app.app_context():
        before = services.clinic_insights(4)
        consultation = db.session.get(ConsultationRequest, routine_id)
        raise_triage(consultation, make_staff("coordinator"), TriageLevel.URGENT, "New numbness.")
        assert consultation.triage_level == TriageLevel.URGENT
        after = services.clinic_insights(4)
    assert (before.urgent, before.routine) == (1, 1)
    assert (after.urgent, after.routine) == (1, 1)
