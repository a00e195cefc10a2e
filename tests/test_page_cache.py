"""The time picker is rendered once and reused (booking.pagecache) until what it shows changes
(booking.scheduling.versions); the request's time step, rendered for each visitor, offers the
picker only while it has times.

Everything here goes through the real app and database: pages are fetched like a browser,
changes are made the ways the app makes them (the ORM, the admin pages, the patient's form).
The minute in the picker's cache key is frozen for every test, so a page can only go stale or
fresh through the availability version, never because the clock happened to cross a minute.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.extensions import db
from booking.patients import views
from booking.scheduling import versions
from booking.scheduling.closures import close_clinic, reopen_clinic
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityVersion,
    ClinicClosure,
    ClinicSettings,
    Location,
    ScheduleException,
    WorkingHours,
)
from booking.scheduling.services import set_location_active
from booking.staff.models import StaffUser
from booking.staff.services import set_staff_active
from booking.timeutil import now_utc
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_request,
)
from tests.support import (
    AuthActions,
    answer_red_flags,
    csrf_token,
    form_tokens,
    post_request,
    valid_answers,
)
from tests.support import Clinic as SharedClinic

BERLIN = ZoneInfo("Europe/Berlin")
FORM = "/request/steps/time"
PICKER = "/request/time"
SLOT_RE = re.compile(r'name="slot" id="slot-[^"]+" value="([^"]+)"')
PICK_LINK = "Choose a time from our open slots"
SPANISH = {"Accept-Language": "es"}
ENGLISH = {"Accept-Language": "en"}
VERSION = sa.select(AvailabilityVersion.version).where(AvailabilityVersion.id == 1)


# Helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clinic:
    """Dr. Weber at the main clinic 08:00-18:00 every day, one 45-minute type, an admin."""

    admin_id: int
    specialist_id: int
    location_id: int
    type_id: int
    day: date  # inside the picker's two weeks and beyond the default 24 hours' notice

    def key(self, hhmm: str = "10:00") -> str:
        """The picker's slot value for Dr. Weber at ``hhmm`` (Berlin) on ``day``."""
        at = datetime.combine(self.day, time.fromisoformat(hhmm), tzinfo=BERLIN)
        return f"{self.specialist_id}.{self.location_id}.{int(at.timestamp())}"

    def at(self, hhmm: str = "10:00") -> datetime:
        return datetime.combine(self.day, time.fromisoformat(hhmm), tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture
def clinic(clinic: SharedClinic) -> Clinic:
    return Clinic(
        admin_id=clinic.admin.id,
        specialist_id=clinic.weber.id,
        location_id=clinic.location,
        type_id=clinic.type,
        day=datetime.now(BERLIN).date() + timedelta(days=7),
    )


@pytest.fixture(autouse=True)
def _version_row(app: Flask) -> None:
    """The version's one row, as the migration adds it. create_all() adds it with the table,
    but on PostgreSQL the tables outlive a test and conftest empties them all (TRUNCATE), so
    from the second test on the row would be missing and no page ever reused."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.scalar(VERSION) is None:
            conn.execute(sa.insert(AvailabilityVersion.__table__).values(id=1, version=0))


@pytest.fixture(autouse=True)
def _frozen_key_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the version may change the picker's key during a test (not a minute passing)."""
    minute = now_utc().replace(second=0, microsecond=0)
    monkeypatch.setattr(versions, "now_utc", lambda: minute)


def page(client: FlaskClient, path: str, **kwargs: object) -> str:
    """A patient page that rendered. The request's steps open as a patient opens them, after
    the first step's questions."""
    response = client.get(path, **kwargs)
    if response.status_code == 302 and "/request/start" in response.headers["Location"]:
        answer_red_flags(client)
        response = client.get(path, **kwargs)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def offered(client: FlaskClient) -> set[str]:
    """The slot values the time picker offers on the clinic's day (``Clinic.day``: the
    picker lists one day's times at a time)."""
    day = datetime.now(BERLIN).date() + timedelta(days=7)
    return set(SLOT_RE.findall(page(client, f"{PICKER}?day={day.isoformat()}")))


def version(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(VERSION)


def admin_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    AuthActions(client).login(email="admin@example.com")
    return client


def appointment(
    clinic: Clinic, hhmm: str = "10:00", *, active: bool = True, request_id: int | None = None
) -> Appointment:
    """A 45-minute appointment with Dr. Weber (not added to the session), for a new request
    unless ``request_id`` is given (making one commits)."""
    starts_at = clinic.at(hhmm)
    return Appointment(
        request_id=request_id or make_request().id,
        specialist_id=clinic.specialist_id,
        location_id=clinic.location_id,
        appointment_type_id=clinic.type_id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        blocked_until=starts_at + timedelta(minutes=55),
        active=active,
        uid=f"cache-{hhmm}-{active}@example.com",
    )


def raw_change(app: Flask, *statements: sa.Executable) -> None:
    """Commit ``statements`` on a connection of its own, as another server (or a script) would:
    no ORM session, so none of its events see it."""
    with app.app_context(), db.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


RAISE_VERSION = (
    sa.update(AvailabilityVersion.__table__)
    .where(AvailabilityVersion.__table__.c.id == 1)
    .values(version=AvailabilityVersion.__table__.c.version + 1)
)
CLOSE_LOCATIONS = sa.update(Location.__table__).values(active=False)


# 2. Changes to what patients can book show on the next page ---------------------------------


def book_through_orm(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        db.session.add(appointment(clinic))
        db.session.commit()


def book_through_the_form(app: Flask, clinic: Clinic) -> None:
    patient = app.test_client()
    tokens = form_tokens(patient, f"/request/start?type={clinic.type_id}&slot={clinic.key()}")
    answers = valid_answers(appointment_type=str(clinic.type_id), slot=clinic.key())
    assert post_request(patient, answers, tokens=tokens).status_code == 303


def remove_hours_through_orm(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        for row in db.session.scalars(
            sa.select(WorkingHours).where(WorkingHours.weekday == clinic.day.weekday())
        ):
            db.session.delete(row)
        db.session.commit()


def remove_hours_through_admin(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        row_id = db.session.scalar(
            sa.select(WorkingHours.id).where(WorkingHours.weekday == clinic.day.weekday())
        )
    admin = admin_client(app)
    path = f"/staff/admin/scheduling/specialists/{clinic.specialist_id}/hours/{row_id}/delete"
    token = csrf_token(admin, "/staff/admin/scheduling/")
    assert admin.post(path, data={"csrf_token": token, "confirmed": "1"}).status_code == 302


def take_time_off(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        db.session.add(
            ScheduleException(
                specialist_id=clinic.specialist_id,
                kind="time_off",
                starts_at=clinic.at("09:00"),
                ends_at=clinic.at("12:00"),
            )
        )
        db.session.commit()


def close_the_clinic_on_the_day(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        close_clinic(clinic.day, "Team training", db.session.get(StaffUser, clinic.admin_id))


def reopen_the_clinic_on_the_day(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        closure = db.session.scalars(sa.select(ClinicClosure)).one()
        reopen_clinic(closure, db.session.get(StaffUser, clinic.admin_id))


def deactivate_specialist(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        weber = db.session.get(StaffUser, clinic.specialist_id)
        set_staff_active(weber, False, actor=db.session.get(StaffUser, clinic.admin_id))


def deactivate_location(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        location = db.session.get(Location, clinic.location_id)
        set_location_active(location, False, db.session.get(StaffUser, clinic.admin_id))


def require_a_month_of_notice(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        db.session.add(ClinicSettings(id=1, min_notice_hours=24 * 30))
        db.session.commit()


def bulk_update_appointments(app: Flask, clinic: Clinic) -> None:
    """Reinstate the inactive appointment ``cancelled_appointment`` put on the slot."""
    with app.app_context():
        db.session.execute(
            sa.update(Appointment).where(Appointment.active.is_(False)).values(active=True)
        )
        db.session.commit()


def cancelled_appointment(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        db.session.add(appointment(clinic, active=False))
        db.session.commit()


@pytest.mark.parametrize(
    ("prepare", "close"),
    [
        (None, book_through_orm),
        (None, book_through_the_form),
        (None, remove_hours_through_orm),
        (None, remove_hours_through_admin),
        (None, take_time_off),
        (None, close_the_clinic_on_the_day),
        (None, deactivate_specialist),
        (None, deactivate_location),
        (None, require_a_month_of_notice),
        (cancelled_appointment, bulk_update_appointments),
    ],
    ids=lambda f: getattr(f, "__name__", "-"),
)
def test_a_time_closed_by_a_change_is_no_longer_offered(
    app: Flask,
    clinic: Clinic,
    prepare: Callable[[Flask, Clinic], None] | None,
    close: Callable[[Flask, Clinic], None],
) -> None:
    if prepare is not None:
        prepare(app, clinic)
    patient = app.test_client()
    assert clinic.key() in offered(patient)
    assert clinic.key() in offered(patient)  # the page is kept and still right
    before = version(app)

    close(app, clinic)

    assert version(app) > before
    assert clinic.key() not in offered(patient)
    assert clinic.key() not in offered(app.test_client())


def bulk_delete_appointments(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        db.session.execute(sa.delete(Appointment))
        db.session.commit()


def add_hours_through_admin(app: Flask, clinic: Clinic) -> FlaskClient:
    """Weekly hours 09:00-12:00 on the clinic's day, added on the admin's page; returns the
    admin's client (its next page carries the admin's flash)."""
    admin = admin_client(app)
    path = f"/staff/admin/scheduling/specialists/{clinic.specialist_id}"
    data = {
        "hours-csrf_token": csrf_token(admin, path),
        "hours-submit": "pressed",
        "hours-weekday": str(clinic.day.weekday()),
        "hours-location": str(clinic.location_id),
        "hours-start_time": "09:00",
        "hours-end_time": "12:00",
    }
    assert admin.post(path, data=data).status_code == 302
    return admin


def add_hours_through_orm(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        make_hours(
            db.session.get(StaffUser, clinic.specialist_id),
            db.session.get(Location, clinic.location_id),
            [clinic.day.weekday()],
        )


def reactivate_specialist(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        weber = db.session.get(StaffUser, clinic.specialist_id)
        set_staff_active(weber, True, actor=db.session.get(StaffUser, clinic.admin_id))


@pytest.mark.parametrize(
    ("prepare", "reopen"),
    [
        (book_through_orm, bulk_delete_appointments),
        (remove_hours_through_orm, add_hours_through_admin),
        (remove_hours_through_orm, add_hours_through_orm),
        (deactivate_specialist, reactivate_specialist),
        (close_the_clinic_on_the_day, reopen_the_clinic_on_the_day),
    ],
    ids=lambda f: f.__name__,
)
def test_a_time_opened_by_a_change_is_offered(
    app: Flask,
    clinic: Clinic,
    prepare: Callable[[Flask, Clinic], None],
    reopen: Callable[[Flask, Clinic], None],
) -> None:
    prepare(app, clinic)
    patient = app.test_client()
    assert clinic.key() not in offered(patient)
    assert clinic.key() not in offered(patient)

    reopen(app, clinic)

    assert clinic.key() in offered(patient)


def set_type_active(app: Flask, clinic: Clinic, active: bool) -> None:
    with app.app_context():
        db.session.get(AppointmentType, clinic.type_id).active = active
        db.session.commit()


def set_all_hours(app: Flask, clinic: Clinic, present: bool) -> None:
    if present:
        add_hours_through_orm(app, clinic)
        return
    with app.app_context():
        db.session.execute(sa.delete(WorkingHours))
        db.session.commit()


@pytest.mark.parametrize("toggle", [set_type_active, set_all_hours], ids=["type", "hours"])
def test_the_form_drops_and_regains_its_link_to_the_picker(
    app: Flask, clinic: Clinic, toggle: Callable[[Flask, Clinic, bool], None]
) -> None:
    patient = app.test_client()
    assert PICK_LINK in page(patient, FORM)
    assert PICK_LINK in page(patient, FORM)

    toggle(app, clinic, False)
    assert PICK_LINK not in page(patient, FORM)
    assert PICK_LINK not in page(app.test_client(), FORM)
    if toggle is set_type_active:  # no type left to book: the picker sends patients back
        assert patient.get(PICKER).status_code == 302

    toggle(app, clinic, True)
    assert PICK_LINK in page(patient, FORM)
    assert clinic.key() in offered(patient)


# 3. The version counts committed transactions -----------------------------------------------


def test_a_rolled_back_change_leaves_the_version_and_a_commit_raises_it_once(
    app: Flask, clinic: Clinic
) -> None:
    start = version(app)
    with app.app_context():
        # Flushed and bulk changes, then a rollback: nothing happened.
        db.session.add(appointment(clinic))
        db.session.flush()
        db.session.execute(sa.update(Location).values(active=False))
        db.session.rollback()
        assert db.session.scalar(VERSION) == start

        # The next commit touches nothing patients book: the rolled back changes are forgotten.
        make_request()
        assert db.session.scalar(VERSION) == start

        # One transaction, several flushes and a bulk statement: raised exactly once.
        first, second = make_request().id, make_request().id
        assert db.session.scalar(VERSION) == start
        db.session.add(appointment(clinic, "10:00", request_id=first))
        db.session.flush()
        db.session.add(appointment(clinic, "14:00", request_id=second))
        db.session.flush()
        db.session.execute(sa.update(ClinicSettings).values(buffer_minutes=5))
        db.session.get(Location, clinic.location_id).name = "Renamed clinic"
        db.session.commit()
        assert db.session.scalar(VERSION) == start + 1

        # A change left for the commit's own flush (no flush before it) counts too.
        db.session.get(AppointmentType, clinic.type_id).duration_minutes = 30
        db.session.commit()
        assert db.session.scalar(VERSION) == start + 2

        # Savepoints (a booking holds its time in one): released ones raise nothing yet, the
        # transaction's commit raises it once; a commit with a savepoint still open too.
        with db.session.begin_nested():
            db.session.get(Location, clinic.location_id).name = "Clinic in a savepoint"
        db.session.get(Location, clinic.location_id).address = "Elsewhere 1"
        db.session.commit()
        assert db.session.scalar(VERSION) == start + 3
        db.session.begin_nested()
        db.session.get(Location, clinic.location_id).name = "Committed from inside"
        db.session.commit()
        assert db.session.scalar(VERSION) == start + 4
    assert version(app) == start + 4


# 4. Languages ---------------------------------------------------------------------------------


def choose_spanish_in_session(client: FlaskClient) -> dict[str, str]:
    page(client, "/privacy?lang=es")  # the language switcher, kept in the session
    return {}


def ask_for_spanish(_client: FlaskClient) -> dict[str, str]:
    return SPANISH


@pytest.mark.parametrize("path", [FORM, PICKER])
@pytest.mark.parametrize("choose", [ask_for_spanish, choose_spanish_in_session])
@pytest.mark.parametrize("spanish_first", [True, False], ids=["es-first", "en-first"])
def test_spanish_and_english_visitors_never_share_a_page(
    app: Flask,
    clinic: Clinic,
    path: str,
    choose: Callable[[FlaskClient], dict[str, str]],
    spanish_first: bool,
) -> None:
    spanish, english = app.test_client(), app.test_client()
    headers = choose(spanish)

    def visit_spanish() -> str:
        return page(spanish, path, headers=headers)

    def visit_english() -> str:
        return page(english, path, headers=ENGLISH)

    visits = [visit_spanish, visit_english] if spanish_first else [visit_english, visit_spanish]
    for _ in range(2):  # the second round is served from the cache
        pages = {visit: visit() for visit in visits}
        assert '<html lang="es">' in pages[visit_spanish]
        assert "Solicitar" in pages[visit_spanish]
        assert '<html lang="en">' in pages[visit_english]
        assert "Request a spine evaluation" in pages[visit_english]
        assert "Request a spine evaluation" not in pages[visit_spanish]


# 5. Flashed messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [FORM, PICKER])
def test_a_page_with_a_flashed_message_is_not_reused(app: Flask, clinic: Clinic, path: str) -> None:
    flashed, other = app.test_client(), app.test_client()
    for patient in (flashed, other):  # the steps open after the first one
        answer_red_flags(patient)
    with flashed.session_transaction() as session:
        session["_flashes"] = [("info", "Hello from the clinic")]

    assert "Hello from the clinic" in page(flashed, path)
    assert "Hello from the clinic" not in page(other, path)
    assert "Hello from the clinic" not in page(flashed, path)  # shown once


def test_an_admins_flash_on_the_picker_stays_with_the_admin(app: Flask, clinic: Clinic) -> None:
    """A real flash: the admin adds hours, then looks at the patients' picker."""
    remove_hours_through_orm(app, clinic)
    admin = add_hours_through_admin(app, clinic)

    assert "Working hours added." in page(admin, PICKER)
    patient_page = page(app.test_client(), PICKER)
    assert "Working hours added." not in patient_page
    assert clinic.key() in offered(app.test_client())


# 6. Another server's change shows after the recheck interval; this one's at once ---------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The monotonic clock the version's recheck interval is measured with; tests move it."""
    now = [1000.0]
    monkeypatch.setattr(versions, "monotonic", lambda: now[0])
    yield now


def test_a_change_from_elsewhere_shows_after_the_recheck_interval(
    app: Flask, clinic: Clinic, clock: list[float]
) -> None:
    """The trade-off: a change committed by another process (here a connection outside the ORM
    session, which raises the version itself) is seen once this process asks again."""
    app.config["AVAILABILITY_RECHECK_SECONDS"] = 60.0
    patient = app.test_client()
    assert clinic.key() in offered(patient)
    assert PICK_LINK in page(patient, FORM)
    before = version(app)

    raw_change(app, CLOSE_LOCATIONS, RAISE_VERSION)
    assert version(app) == before + 1

    clock[0] += 59
    assert clinic.key() in offered(patient)  # still the version read 59 seconds ago
    clock[0] += 2
    assert offered(patient) == set()

    # This process's own committed change shows at once, without the clock moving.
    with app.app_context():
        set_location_active(
            db.session.get(Location, clinic.location_id),
            True,
            db.session.get(StaffUser, clinic.admin_id),
        )
    assert clinic.key() in offered(patient)
    deactivate_specialist(app, clinic)
    assert offered(patient) == set()


# 7. The cache can be switched off ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "stale"), [(60, True), (0, False)], ids=["cache-on", "cache-off"]
)
def test_without_the_cache_a_change_behind_the_versions_back_shows_at_once(
    app: Flask, clinic: Clinic, seconds: int, stale: bool
) -> None:
    """With the cache on, a change that does not raise the version is not seen on the picker
    (which shows its pages really are reused); with ``PAGE_CACHE_SECONDS = 0`` it is."""
    app.config["PAGE_CACHE_SECONDS"] = seconds
    patient = app.test_client()
    assert clinic.key() in offered(patient)
    assert PICK_LINK in page(patient, FORM)

    raw_change(app, sa.delete(WorkingHours.__table__))  # the version stays

    assert (clinic.key() in offered(patient)) is stale
    assert PICK_LINK not in page(patient, FORM)  # the time step is never reused


# Found by these tests and fixed ----------------------------------------------------------------


def test_a_type_closed_while_the_picker_renders_is_not_kept_under_the_new_version(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        # One SQLite transaction reads one snapshot: the writer waits for the page instead.
        pytest.skip("no commit can land between two reads of one SQLite transaction")

    with app.app_context():
        short_id = make_appointment_type("Short check", minutes=20).id
    assert "Short check" in page(app.test_client(), PICKER)

    def another_server_commits_meanwhile() -> object:
        # What another server does between this view's first query and its version read.
        monkeypatch.setattr(views, "availability_key", versions.availability_key)
        close_type = (
            sa.update(AppointmentType.__table__)
            .where(AppointmentType.__table__.c.id == short_id)
            .values(active=False)
        )
        raw_change(app, close_type, RAISE_VERSION)
        return versions.availability_key()

    monkeypatch.setattr(views, "availability_key", another_server_commits_meanwhile)
    page(app.test_client(), PICKER)  # renders during the change

    assert "Short check" not in page(app.test_client(), PICKER)
