"""A patient's name in a right-to-left script (Arabic, Hebrew) sits inside lines of other text
on the staff pages: the record's heading beside the reference, the queue's row (a card on a
phone, after its label), the agenda's entry between times and types, the intake summary's
heading; and the greeting of the HTML part of a patient's email. Without isolation the
bidirectional algorithm lets the name and its neighbours (punctuation, digits, the reference)
reorder one another; each is in a ``<bdi>``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from flask_babel import force_locale

from booking.dashboard import services as workflow
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import AppointmentType, VisitMode
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, to_clinic_tz
from tests.factories import (
    clinic_slot,
    confirmed_request,
    make_request,
    offer_a_cancelled_time,
    set_visit_mode,
)
from tests.support import (
    AuthActions,
    Clinic,
    open_manage_link,
    outbox_emails,
    patient_email_values,
)

NAME = "محمد عبدالله"
ISOLATED = f"<bdi>{NAME}</bdi>"


def _confirmed(app: Flask, clinic: Clinic) -> tuple[str, str]:
    """A request of the Arabic-named patient confirmed for 10:00 a week ahead (any day: the
    clinic's hours are every day); returns its reference and the day."""
    with app.app_context():
        day = clinic_today() + timedelta(days=7)
        consultation = make_request(full_name=NAME, email="mohammed@example.com")
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        workflow.confirm_request(
            consultation,
            coordinator,
            clinic_slot(clinic, day, time(10)),
        )
        return consultation.reference, day.isoformat()


def test_a_right_to_left_name_is_isolated_from_the_text_around_it(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    reference, day = _confirmed(app, clinic)
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", record, re.S)[1]
    assert heading == f'<span class="font-monospace">{reference}</span> · {ISOLATED}'
    assert f"No follow-up questionnaire or reminder is sent to {ISOLATED} after this." in record

    queue = client.get("/staff/", query_string={"status": "confirmed"}).get_data(as_text=True)
    row = queue[queue.index(reference) :]
    row = row[: row.index("</tr>")]
    assert f'data-label="Patient">{ISOLATED}</td>' in row

    agenda = client.get("/staff/calendar", query_string={"date": day}).get_data(as_text=True)
    assert f'<bdi><a href="/staff/requests/{reference}">{NAME}</a></bdi>' in agenda

    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    heading = re.search(r'<h1 id="summary-heading"[^>]*>(.*?)</h1>', summary, re.S)[1]
    assert heading == f'{ISOLATED} <span class="font-monospace">{reference}</span>'


EMAIL_TEMPLATES = Path(__file__).parents[1] / "booking" / "templates" / "email"
# The patient emails that greet the patient by name ("Dear Erika Mustermann,").
GREETING_EMAILS = sorted(
    path.stem
    for path in EMAIL_TEMPLATES.glob("[!_]*.txt")
    if '_("Dear %(name)s,"' in path.read_text(encoding="utf-8")
)


def _email_parts(
    app: Flask,
    clinic: Clinic,
    template: str,
    rename: Callable[[ConsultationRequest], dict[str, Any]],
) -> tuple[str, str]:
    """The HTML and text parts of ``template`` written for a confirmed request after
    ``rename`` gave one of its names in Arabic (and returned what else the template needs);
    nothing is stored."""
    request_id = confirmed_request(app, clinic)
    with app.test_request_context(), force_locale("en"):
        consultation = db.session.get(ConsultationRequest, request_id)
        extra = rename(consultation)
        context = {**patient_email_values(consultation), **extra}
        html = render_template(f"email/{template}.html", **context)
        text = render_template(f"email/{template}.txt", **context)
        db.session.rollback()
    return html, text


def test_the_email_to_a_right_to_left_named_patient_greets_them_by_an_isolated_name(
    app: Flask, clinic: Clinic
) -> None:
    _confirmed(app, clinic)
    (email,) = outbox_emails(app, "request_update")
    assert f"<p>Dear {ISOLATED},</p>" in email.body_html
    assert f"Dear {NAME}," in email.body_text  # plain text has no markup to isolate with


@pytest.mark.parametrize(
    ("lang", "greeting"), [("en", "<p>Dear {},</p>"), ("es", "<p>Estimado/a {}:</p>")]
)
@pytest.mark.parametrize("template", GREETING_EMAILS)
def test_every_patient_email_isolates_the_name_it_greets(
    app: Flask, clinic: Clinic, template: str, lang: str, greeting: str
) -> None:
    """The name in the HTML part's greeting is in a ``<bdi>`` and still escaped; the text part
    greets with the name as it is."""
    assert len(GREETING_EMAILS) >= 10 and "request_received" in GREETING_EMAILS
    request_id = confirmed_request(app, clinic, locale=lang)
    name = f"{NAME} <b>&"
    with app.test_request_context(), force_locale(lang):
        context = patient_email_values(db.session.get(ConsultationRequest, request_id))
        context["patient_name"] = name
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **context)
    assert greeting.format(f"<bdi>{NAME} &lt;b&gt;&amp;</bdi>") in html
    assert greeting.format(name).removeprefix("<p>").removesuffix("</p>") in text


@pytest.mark.parametrize(
    ("template", "isolated"),
    [
        # A staff email's greeting, and the admin named in the two-factor reset's first line.
        ("staff_password_reset", ["<p>Hello {},</p>"]),
        ("staff_two_factor_reset", ["<p>Hello {},</p>", "<p>{}, an administrator of"]),
        ("triage_raised_staff", ["<p>{} raised request "]),
        # The specialist's name between the commas of the time held, and of a time offered.
        ("request_received", [", {}, "]),
        ("waitlist_offer", ["<br>{}, "]),
    ],
)
def test_staff_names_in_emails_are_isolated(
    app: Flask, clinic: Clinic, template: str, isolated: list[str]
) -> None:
    name = f"{NAME} <b>&"

    def rename(consultation: ConsultationRequest) -> dict[str, Any]:
        consultation.appointment.specialist.full_name = name
        return {
            "user": consultation.appointment.specialist,
            "admin_name": name,
            "link": "https://clinic.example/staff/login",
            "hours": 2,
            "enrol_required": True,
            "previous": consultation.triage_level,
            "raised_by": name,
            "request_url": "https://clinic.example/staff/requests/x",
        }

    html, text = _email_parts(app, clinic, template, rename)
    for line in isolated:
        assert line.format(f"<bdi>{NAME} &lt;b&gt;&amp;</bdi>") in html
    assert name in text  # plain text has no markup to isolate with


TYPE_NAME = "مراجعة الصور <b>&"  # an appointment type named in Arabic (and markup, escaped)


@pytest.mark.parametrize(
    ("template", "isolated"),
    [
        # The type's name between the commas of the time held, and before the offer's length.
        ("request_received", ", {}, "),
        ("waitlist_offer", "<br>{} ("),
    ],
)
def test_appointment_type_names_in_emails_are_isolated(
    app: Flask, clinic: Clinic, template: str, isolated: str
) -> None:
    """The type's name sits between the time and the specialist's name (isolated already):
    without its own ``<bdi>`` a right-to-left name takes the commas and the digits of the
    length around it into its run."""

    def rename(consultation: ConsultationRequest) -> dict[str, Any]:
        consultation.appointment.appointment_type.name = TYPE_NAME
        consultation.appointment.appointment_type.names = {}
        return {}

    html, text = _email_parts(app, clinic, template, rename)
    assert isolated.format("<bdi>مراجعة الصور &lt;b&gt;&amp;</bdi>") in html
    assert TYPE_NAME in text  # plain text has no markup to isolate with


LOCATION_NAME = "عيادة العمود الفقري <b>&"  # a location named in Arabic (and markup, escaped)
# The patient emails that say where the visit takes place (the location's name, then its
# address).
PLACE_EMAILS = sorted(
    path.stem
    for path in EMAIL_TEMPLATES.glob("[!_]*.txt")
    if "visit_where(" in path.read_text(encoding="utf-8")
)


@pytest.mark.parametrize("template", PLACE_EMAILS)
def test_location_names_in_emails_are_isolated(app: Flask, clinic: Clinic, template: str) -> None:
    """The location's name is followed by a comma and the address, which starts or ends with
    its street number: without its own ``<bdi>`` a right-to-left name takes them into its run.
    The text part reads as before."""
    assert len(PLACE_EMAILS) >= 5 and "appointment_address" in PLACE_EMAILS

    def rename(consultation: ConsultationRequest) -> dict[str, Any]:
        consultation.appointment.location.name = LOCATION_NAME
        consultation.appointment.location.names = {}
        return {}

    html, text = _email_parts(app, clinic, template, rename)
    isolated = "<bdi>عيادة العمود الفقري &lt;b&gt;&amp;</bdi>, Friedrichstr. 1, Berlin"
    assert isolated in html
    assert f"{LOCATION_NAME}, Friedrichstr. 1, Berlin" in text
    assert "<bdi>" not in text


def test_a_visit_from_home_says_how_in_the_html_part_as_in_the_text(
    app: Flask, clinic: Clinic
) -> None:
    """No location to isolate: the HTML part says how the patient takes part, escaped."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    with app.test_request_context(), force_locale("en"):
        context = patient_email_values(db.session.get(ConsultationRequest, request_id))
        html = render_template("email/request_update.html", **context)
    assert (
        "<td>By video, from wherever suits you: the clinic will send you how to join.</td>" in html
    )


def test_the_private_page_isolates_the_type_and_specialist_names_of_the_time(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The private page lists the time's type, length, specialist and place between middle
    dots: a right-to-left type or specialist name took the dots and the digits of the length
    into its run. Each name is in a ``<bdi>``, as the emails' are."""
    with app.app_context():
        db.session.get(AppointmentType, clinic.type).name = "مراجعة الصور"
        db.session.get(StaffUser, clinic.weber.id).full_name = NAME
        db.session.commit()
        consultation = make_request(email="mohammed@example.com")
        workflow.confirm_request(
            consultation,
            db.session.get(StaffUser, clinic.coordinator.id),
            clinic_slot(clinic, clinic_today() + timedelta(days=7), time(10)),
        )
        url = open_manage_link(client, consultation)
    page = client.get(url).get_data(as_text=True)
    assert f"<bdi>مراجعة الصور</bdi> · 45 minutes · {ISOLATED} · " in page


PLACE_NAME = "عيادة العمود الفقري"  # a location named in Arabic
PLACE = f"<bdi>{PLACE_NAME} &lt;b&gt;&amp;</bdi>, Friedrichstr. 1, Berlin"


def _named_in_arabic(clinic: Clinic, specialist: str) -> AppointmentType:
    """In an app context: the clinic's appointment type and location named in Arabic (the
    location with markup, to be escaped), Dr. Weber named ``specialist``; stored. Returns
    the type."""
    from booking.scheduling.models import Location

    kind = db.session.get(AppointmentType, clinic.type)
    kind.name, kind.names = "مراجعة الصور", {}
    location = db.session.get(Location, clinic.location)
    location.name, location.names = f"{PLACE_NAME} <b>&", {}
    db.session.get(StaffUser, clinic.weber.id).full_name = specialist
    db.session.commit()
    return kind


def test_the_patient_pages_isolate_the_names_of_the_place_and_the_specialist(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Every page showing the patient a time gives the specialist's name and the place (the
    location's name, a comma, then the address with its street number), and the picker the
    type's name before its length: a right-to-left name took the commas, dots, digits and
    parentheses around it into its run. Each name is in a ``<bdi>``, still escaped."""
    from booking.patients.views import SUBMITTED_KEY
    from booking.scheduling.availability import open_slots
    from booking.timeutil import now_utc

    with app.app_context():
        kind = _named_in_arabic(clinic, NAME)
        start = now_utc() + timedelta(days=2)
        waiting = offer_a_cancelled_time(
            kind.id, open_slots(kind, start, start + timedelta(days=7))
        )
        reference = waiting.reference
        url = open_manage_link(client, waiting)
    (offer_email,) = outbox_emails(app, "waitlist_offer")
    with client.session_transaction() as session:
        session[SUBMITTED_KEY] = reference  # the browser that sent the request

    pick = client.get("/request/time").get_data(as_text=True)
    assert '"><bdi>مراجعة الصور</bdi> (45 minutes)' in pick
    assert (
        f'<p class="fw-semibold mb-1">{ISOLATED} · <bdi>{PLACE_NAME} &lt;b&gt;&amp;</bdi></p>'
        in (pick)
    )
    private = client.get(url).get_data(as_text=True)
    assert f"{ISOLATED} · {PLACE}</p>" in private
    submitted = client.get("/request/submitted").get_data(as_text=True)
    assert f"{ISOLATED} · {PLACE}</p>" in submitted
    moving = client.get(f"{url}/reschedule").get_data(as_text=True)
    assert f"</strong>, {ISOLATED}, {PLACE}</p>" in moving
    link = re.search(r"https?://[^/\s]+(/manage/\S+)", offer_email.body_text).group(1)
    offer = client.get(client.get(link).headers["Location"]).get_data(as_text=True)
    assert f"<br>{ISOLATED} · {PLACE}</p>" in offer


def test_the_request_form_isolates_the_names_of_the_time_chosen(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The time step's card and the review give the chosen time's type, specialist and
    place between middle dots, each name isolated as on the private page."""
    from tests.support import fill_request, first_open_slot, form_tokens, open_step, valid_answers

    with app.app_context():
        kind = _named_in_arabic(clinic, NAME)
        slot = first_open_slot(kind)
    tokens = form_tokens(client, f"/request?type={clinic.type}&slot={slot.key}")
    chosen = f"<bdi>مراجعة الصور</bdi> · {ISOLATED} · {PLACE}</p>"
    assert chosen in open_step(client, "time")
    answers = valid_answers(appointment_type=str(clinic.type), slot=slot.key)
    assert fill_request(client, answers, tokens=tokens) is None
    assert chosen in open_step(client, "review")


STAFF_NAME = "د. ليلى حداد <b>&"  # a specialist named in Arabic (and markup, escaped)
STAFF_ISOLATED = "<bdi>د. ليلى حداد &lt;b&gt;&amp;</bdi>"
PLACE_ISOLATED = f"<bdi>{PLACE_NAME} &lt;b&gt;&amp;</bdi>"


def test_the_staff_pages_isolate_the_names_of_the_place_the_specialist_and_the_type(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The record's and the intake summary's appointment line give the specialist's and the
    location's names between middle dots; the agenda gives the type's and the location's
    after the patient's, and the location's after a free time's; the queue the specialist's
    under the time. A right-to-left name took the dots, commas and digits around it into its
    run: each is in a ``<bdi>``, still escaped, as on the patient's pages."""

    with app.app_context():
        _named_in_arabic(clinic, STAFF_NAME)
    reference, day = _confirmed(app, clinic)
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f"45 minutes · {STAFF_ISOLATED} · {PLACE_ISOLATED}</p>" in record
    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert f" · {STAFF_ISOLATED} · {PLACE_ISOLATED}</dd>" in summary

    queue = client.get("/staff/", query_string={"status": "confirmed"}).get_data(as_text=True)
    row = queue[queue.index(reference) :]
    assert f"<br><small>{STAFF_ISOLATED}</small></td>" in row[: row.index("</tr>")]

    agenda = client.get("/staff/calendar", query_string={"date": day}).get_data(as_text=True)
    entry = agenda[agenda.index(f'<a href="/staff/requests/{reference}">') :]
    entry = " ".join(entry[: entry.index("</li>")].split())
    assert f'· <bdi>مراجعة الصور</bdi> · <span class="small">{PLACE_ISOLATED}</span>' in entry
    # A longer entry's text is in its clamp (``agenda-clamp``), closed before the entry.
    assert re.search(
        re.escape(f'· Free · <span class="small">{PLACE_ISOLATED}</span>') + "(</span>)?</li>",
        agenda,
    )
    assert re.search(rf'<h3 class="agenda-head" id="col-[^"]+">{STAFF_ISOLATED}', agenda)


ACTOR_NAME = "سارة الخطيب <b>&"  # a coordinator named in Arabic (and markup, escaped)
ACTOR_ISOLATED = "<bdi>سارة الخطيب &lt;b&gt;&amp;</bdi>"


def test_the_staff_pages_isolate_the_names_of_the_staff_who_acted(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Who reached the patient ("by <name>, <date>", on the record and the queue), who logged
    each call, who asked for information, who wrote or read a message, who changed the
    status or wrote the note on the timeline, and why a specialist is off on the agenda
    ("Time off: <reason>"): a right-to-left name took the comma, dots and date beside it into
    its run. Each is in a ``<bdi>``, still escaped; the translated sentences keep their
    msgids (the name is passed in isolated, as the emails do)."""
    from booking.messages.services import (
        load_thread,
        record_thread_read,
        send_patient_message,
        send_staff_message,
    )
    from booking.requests.asks import ask_patient
    from booking.requests.calls import CallOutcome
    from booking.scheduling.admin_services import add_time_off
    from booking.timeutil import from_clinic_local

    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        coordinator.full_name = ACTOR_NAME
        db.session.commit()
        asked = make_request(email="asked@example.com")
        ask_patient(asked, coordinator, [], "Which side hurts more?")
        called = make_request(email="called@example.com")
        workflow.add_note(called, coordinator, "Spoke to the GP.")
        workflow.log_callback(called, coordinator, CallOutcome.REACHED)
        send_staff_message(called, coordinator, "Please bring your scans.")
        send_patient_message(called, "I will.")
        record_thread_read(called, load_thread(called, for_staff=True), coordinator)
        day = clinic_today() + timedelta(days=7)
        workflow.confirm_request(called, coordinator, clinic_slot(clinic, day, time(10)))
        weber = db.session.get(StaffUser, clinic.weber.id)
        add_time_off(
            weber,
            from_clinic_local(day, time(15)),
            from_clinic_local(day, time(16)),
            "مؤتمر <b>&",
            actor=None,
        )
        asked_reference, called_reference = asked.reference, called.reference
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{asked_reference}").get_data(as_text=True)
    assert re.search(rf"Asked on [^<]+ by {ACTOR_ISOLATED}\.", record)

    record = client.get(f"/staff/requests/{called_reference}").get_data(as_text=True)
    assert re.search(rf"Patient reached</span>\s+by {ACTOR_ISOLATED}, \d", record)
    assert re.search(
        rf"<strong>Reached and advised</strong> · [^<]+ · {ACTOR_ISOLATED}</li>", record
    )
    thread = record[record.index('id="messages"') : record.index('id="timeline"')]
    assert re.search(rf"<strong>{ACTOR_ISOLATED}</strong>\s+· \d", thread)
    assert re.search(rf"read [^<]+ by {ACTOR_ISOLATED}</span>", thread)
    timeline = record[record.index('id="timeline"') :]
    for entry in ("Note", "Call-back", "Message to the patient", "requested → confirmed"):
        start = timeline.index(entry)
        assert (
            f"<small>· {ACTOR_ISOLATED}</small>" in timeline[start : timeline.index("</li>", start)]
        )

    queue = client.get("/staff/", query_string={"status": "confirmed"}).get_data(as_text=True)
    row = queue[queue.index(called_reference) :]
    assert re.search(rf"<small>by {ACTOR_ISOLATED}, \d", row[: row.index("</tr>")])

    agenda = client.get(
        "/staff/calendar", query_string={"date": day.isoformat(), "specialist": clinic.weber.id}
    ).get_data(as_text=True)
    assert re.search(
        re.escape("Time off: <bdi>مؤتمر &lt;b&gt;&amp;</bdi>") + "(</span>)?</li>", agenda
    )


def test_the_patients_thread_the_navbar_and_the_summary_isolate_staff_names(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The clinic's message on the patient's private page ("The clinic · <name> · <date>"),
    the signed-in staff member's name in the staff navbar ("<name> (coordinator)") and the
    intake summary's footer ("Prepared <date> by <name> from ..."): a right-to-left name took
    the dot, the brackets or the date beside it into its run. Each is in a ``<bdi>``, still
    escaped."""
    from booking.messages.services import send_staff_message

    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        coordinator.full_name = ACTOR_NAME
        db.session.commit()
        consultation = make_request(email="thread@example.com")
        send_staff_message(consultation, coordinator, "Please bring your scans.")
        reference = consultation.reference
        url = open_manage_link(client, consultation)
    page = client.get(url).get_data(as_text=True)
    assert re.search(rf"<strong>The clinic · {ACTOR_ISOLATED}</strong>\s+· \d", page)

    AuthActions(client).attempt(clinic.coordinator.email)
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f"{ACTOR_ISOLATED} (coordinator)" in record
    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert re.search(rf"Prepared [^<]+ by {ACTOR_ISOLATED} from the request", summary)


def _options(page: str, select_id: str) -> list[tuple[str, str]]:
    """The attributes and the label of each option of the select ``select_id`` on ``page``."""
    select = re.search(rf'<select[^>]* id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no select {select_id}"
    return re.findall(r"<option([^>]*)>([^<]*)</option>", select[1])


def test_options_naming_a_specialist_a_place_or_a_type_take_the_names_direction(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A select's option holds text only, so a name in it cannot be in a ``<bdi>``: each
    option naming a specialist, a location or an appointment type (the queue's and the
    agenda's filters, the record's appointment form, the admin's hours, the patient's picker)
    is ``dir="auto"``, its name still escaped. The fixed options ("Any", "Choose…") are not."""
    from tests.factories import make_hours, make_location

    with app.app_context():
        _named_in_arabic(clinic, STAFF_NAME)
        make_hours(db.session.get(StaffUser, clinic.weber.id), make_location("North clinic"))
        reference = make_request(email="options@example.com").reference

    others = ("Dr. Okafor", "North clinic")  # named in English, dir="auto" all the same

    def named(page: str, select_id: str, *names: str) -> None:
        options = _options(page, select_id)
        for name in names:
            assert any(label == name for _attrs, label in options), (select_id, name)
        for attrs, label in options:
            assert ('dir="auto"' in attrs) == (label in names or label in others), (
                select_id,
                label,
            )

    escaped_staff = "د. ليلى حداد &lt;b&gt;&amp;"
    escaped_place = f"{PLACE_NAME} &lt;b&gt;&amp;"
    pick = client.get("/request/time").get_data(as_text=True)
    named(pick, "specialist", escaped_staff)
    named(pick, "location", escaped_place)

    auth = AuthActions(client)
    auth.login("coordinator")
    queue = client.get("/staff/").get_data(as_text=True)
    named(queue, "specialist", escaped_staff, "Dr. Okafor")
    agenda = client.get("/staff/calendar").get_data(as_text=True)
    named(agenda, "specialist", escaped_staff, "Dr. Okafor")
    named(agenda, "location", escaped_place)
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    named(record, "slot-specialist", escaped_staff, "Dr. Okafor")
    named(record, "slot-location", escaped_place)
    named(record, "slot-appointment_type", "مراجعة الصور (45 min)")

    admin = auth.new_client("admin")
    page = admin.get(f"/staff/admin/scheduling/specialists/{clinic.weber.id}")
    for select_id in ("hours-location", "extra-location"):
        named(page.get_data(as_text=True), select_id, escaped_place, "North clinic")


def test_the_admin_pages_isolate_the_specialists_name_of_time_off_and_hours(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The audit trail's Record cell ("Time off of <name> (12)", "Working hours of <name>
    (3)", "Staff account <name> (5)") and the question before deleting time off or hours
    ("Delete the time off of <name> from <date> to <date>?") are sentences built in Python:
    a right-to-left name took the parentheses, the id and the dates beside it into its run.
    The name is in a ``<bdi>``, still escaped; the browser tab's title has no tags."""
    from booking.audit.services import record
    from booking.scheduling import admin_services
    from booking.scheduling.models import WorkingHours
    from booking.timeutil import from_clinic_local

    with app.app_context():
        weber = db.session.get(StaffUser, clinic.weber.id)
        weber.full_name = STAFF_NAME
        admin = db.session.get(StaffUser, clinic.admin.id)
        day = clinic_today() + timedelta(days=7)
        off = admin_services.add_time_off(
            weber, *(from_clinic_local(day, time(h)) for h in (15, 17)), None, admin
        ).exception.id
        hours = db.session.scalars(
            db.select(WorkingHours).where(WorkingHours.specialist_id == weber.id)
        ).first()
        hours_id = hours.id
        record("staff_deactivated", target_type="staff", target_id=weber.id)
        db.session.commit()
    client = AuthActions(client).new_client("admin")

    trail = client.get("/staff/admin/audit").get_data(as_text=True)
    cells = re.findall(r'<td data-label="Record">(.*?)</td>', trail, re.S)
    assert f"Staff account {STAFF_ISOLATED} ({clinic.weber.id})" in cells
    assert f"Time off of {STAFF_ISOLATED} ({off})" in cells

    base = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(base).get_data(as_text=True))
    for path, question in (
        (f"{base}/exceptions/{off}/delete", "Delete the time off of {} from "),
        (f"{base}/hours/{hours_id}/delete", "Delete the working hours of {} on "),
    ):
        page = client.post(path, data={"csrf_token": token[1]}).get_data(as_text=True)
        heading = re.search(r'<h1 class="h2" id="confirm-heading">(.*?)</h1>', page, re.S)[1]
        assert heading.startswith(question.format(STAFF_ISOLATED)), heading
        title = re.search(r"<title>(.*?)</title>", page, re.S)[1]
        assert question.format("د. ليلى حداد &lt;b&gt;&amp;") in title and "bdi" not in title


def test_the_specialists_schedule_page_isolates_their_name(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The schedule page's heading ("Schedule of <name>") and its breadcrumb's last item give
    the specialist's name: a right-to-left name is in a ``<bdi>``, still escaped; the browser
    tab's title has no tags."""
    with app.app_context():
        db.session.get(StaffUser, clinic.weber.id).full_name = STAFF_NAME
        db.session.commit()
    admin = AuthActions(client).new_client("admin")

    page = admin.get(f"/staff/admin/scheduling/specialists/{clinic.weber.id}").get_data(
        as_text=True
    )
    heading = re.search(r'<h1 class="h2">(.*?)</h1>', page, re.S)[1]
    assert heading == f"Schedule of {STAFF_ISOLATED}"
    assert f'<li class="breadcrumb-item active" aria-current="page">{STAFF_ISOLATED}</li>' in page
    title = re.search(r"<title>(.*?)</title>", page, re.S)[1]
    assert "Schedule of د. ليلى حداد &lt;b&gt;&amp;" in title and "bdi" not in title


def test_the_closed_days_page_isolates_the_name_of_the_admin_who_closed_the_day(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The "Closed by" cell says who closed the day and when ("<name>, 14 Dec 2026"): a
    right-to-left name took the comma and the date into its run. It is in a ``<bdi>``, still
    escaped."""
    from booking.scheduling.closures import close_clinic

    with app.app_context():
        admin = db.session.get(StaffUser, clinic.admin.id)
        admin.full_name = ACTOR_NAME
        db.session.commit()
        close_clinic(clinic_today() + timedelta(days=10), "Team training", admin)
    admin_client = AuthActions(client).new_client("admin")

    page = admin_client.get("/staff/admin/scheduling/closed-days").get_data(as_text=True)
    assert re.search(rf"<td>{ACTOR_ISOLATED}, \d+ \w+ \d{{4}}</td>", page)


def test_the_close_day_question_isolates_the_specialists_name_of_each_appointment(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Closing a booked day lists each appointment on it ("<reference> at <time> with
    <name>"): a right-to-left name at the end of the line took the time into its run, and
    the next line's reference too when it wrapped. The name is in a ``<bdi>``, still
    escaped."""
    from tests.factories import book_first_open_time
    from tests.support import page_token

    with app.app_context():
        consultation = book_first_open_time(clinic)
        consultation.appointment.specialist.full_name = STAFF_NAME
        db.session.commit()
        reference = consultation.reference
        starts_at = to_clinic_tz(consultation.appointment.starts_at)
    admin = AuthActions(client).new_client("admin")
    closed_days = "/staff/admin/scheduling/closed-days"
    token = page_token(admin.get(closed_days).get_data(as_text=True))

    page = admin.post(
        closed_days,
        data={"csrf_token": token, "day": starts_at.date().isoformat(), "reason": "Training"},
    ).get_data(as_text=True)
    at = starts_at.strftime("%H:%M")
    assert f">{reference} at {at} with {STAFF_ISOLATED}</a></li>" in page


def test_the_audit_trails_details_isolate_names_and_texts(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A detail line gives a change as "<key>: <before> → <after>", a list as "a, b": a
    right-to-left name (a specialist's, looked up by id) or text someone typed took the arrow,
    the comma and the other value into its run. Each is in a ``<bdi>``, still escaped; times,
    numbers and the dash for nothing are not."""
    from booking.audit.services import record
    from booking.templating import NOTHING

    with app.app_context():
        db.session.get(StaffUser, clinic.weber.id).full_name = STAFF_NAME
        record(
            "request_rescheduled",
            target_type="request",
            target_id="SC-7K4M-Q2XD",
            details={
                "specialist": {"before": clinic.okafor.id, "after": clinic.weber.id},
                "starts_at": {"before": None, "after": "2026-12-09T09:00:00+00:00"},
                "reason": "مؤتمر <b>&",
                "codes": ["ب 12", "A-3"],
                "minutes": {"before": 30, "after": 45},
            },
        )
        db.session.commit()
    admin = AuthActions(client).new_client("admin")

    page = admin.get("/staff/admin/audit").get_data(as_text=True)
    lines = re.findall(r"<li>(.*?)</li>", page)
    assert f"specialist: <bdi>Dr. Okafor</bdi> → {STAFF_ISOLATED}" in lines
    assert f"starts at: {NOTHING} → 9 Dec 2026, 10:00" in lines
    assert "reason: <bdi>مؤتمر &lt;b&gt;&amp;</bdi>" in lines
    assert "codes: <bdi>ب 12</bdi>, <bdi>A-3</bdi>" in lines
    assert "minutes: 30 → 45" in lines


def test_flashed_messages_isolate_the_names_they_carry(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The message shown after an admin's action names what it was done to ("<name> can no
    longer sign in.", "<name> still has 1 appointment to come: ...", "Patients can no longer
    book <type>.", "1 appointment to come is still at <place>, ..."): a right-to-left name
    took the full stop, the digits and the comma beside it into its run. The name is in a
    ``<bdi>``, still escaped, after the redirect (the session keeps a flash's markup)."""
    from tests.factories import book_first_open_time
    from tests.support import csrf_token

    with app.app_context():
        _named_in_arabic(clinic, STAFF_NAME)
        book_first_open_time(clinic)
    admin = AuthActions(client).new_client("admin")

    def switched_off(path: str, page: str) -> str:
        response = admin.post(
            path,
            data={"csrf_token": csrf_token(admin, page), "active": "0", "confirmed": "1"},
            follow_redirects=True,
        )
        return response.get_data(as_text=True)

    shown = switched_off(f"/staff/accounts/{clinic.weber.id}/active", "/staff/accounts")
    assert f">{STAFF_ISOLATED} can no longer sign in.</div>" in shown
    assert f">{STAFF_ISOLATED} still has 1 appointment to come: move it" in shown

    shown = switched_off(
        f"/staff/admin/scheduling/types/{clinic.type}/active", "/staff/admin/scheduling/"
    )
    assert ">Patients can no longer book <bdi>مراجعة الصور</bdi>.</div>" in shown

    shown = switched_off(
        f"/staff/admin/locations/{clinic.location}/active", "/staff/admin/locations"
    )
    assert f">1 appointment to come is still at {PLACE_ISOLATED}, and its patient" in shown


def test_the_questions_before_an_admins_action_isolate_the_names_they_carry(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The page asking to confirm an action names what it is done to ("Deactivate the account
    of <name>?", "Close <place>?", "Deactivate <type>?", "Change the email address of
    <patient>?") and warns with the appointments left ("<name> still has 1 appointment to
    come: ...", "1 appointment to come is at <place>: ..."): a right-to-left name took the
    question mark, the digits and the colon beside it into its run. The name is in a
    ``<bdi>``, still escaped; the tab's title has no tags."""
    from tests.factories import book_first_open_time
    from tests.support import csrf_token
    from tests.test_contact_details import correct

    with app.app_context():
        _named_in_arabic(clinic, STAFF_NAME)
        consultation = book_first_open_time(clinic)
        consultation.patient.full_name = f"{NAME} <b>&"
        db.session.commit()
        reference = consultation.reference
    admin = AuthActions(client).new_client("admin")

    def asked(path: str, page: str, **fields: str) -> tuple[str, list[str], str]:
        response = admin.post(path, data={"csrf_token": csrf_token(admin, page), **fields})
        shown = response.get_data(as_text=True)
        heading = re.search(r'<h1 class="h2" id="confirm-heading">(.*?)</h1>', shown, re.S)[1]
        warnings = re.findall(r"<strong>Warning:</strong> (.*?)</div>", shown)
        title = re.search(r"<title>(.*?)</title>", shown, re.S)[1]
        assert "bdi" not in title
        return heading, warnings, title

    heading, warnings, title = asked(
        f"/staff/accounts/{clinic.weber.id}/active", "/staff/accounts", active="0"
    )
    assert heading == f"Deactivate the account of {STAFF_ISOLATED}?"
    assert "Deactivate the account of د. ليلى حداد &lt;b&gt;&amp;?" in title
    assert warnings[0].startswith(f"{STAFF_ISOLATED} still has 1 appointment to come: ")

    heading, _warnings, _title = asked(
        f"/staff/accounts/{clinic.weber.id}/role", "/staff/accounts", role="coordinator"
    )
    assert heading == f"Change the role of {STAFF_ISOLATED} to Coordinator?"

    heading, warnings, _title = asked(
        f"/staff/admin/locations/{clinic.location}/active", "/staff/admin/locations", active="0"
    )
    assert heading == f"Close {PLACE_ISOLATED}?"
    assert f"1 appointment to come is at {PLACE_ISOLATED}: it stays there" in warnings[-1]

    heading, _warnings, _title = asked(
        f"/staff/admin/scheduling/types/{clinic.type}/active", "/staff/admin/scheduling/"
    )
    assert heading == "Deactivate <bdi>مراجعة الصور</bdi>?"

    coordinator = AuthActions(app.test_client()).new_client("coordinator")
    page = correct(coordinator, reference, email="new@example.com", confirmed=False)
    heading = re.search(r'<h1 class="h2" id="confirm-heading">(.*?)</h1>', page.text, re.S)[1]
    assert heading == f"Change the email address of <bdi>{NAME} &lt;b&gt;&amp;</bdi>?"


def test_the_record_isolates_the_guardians_and_the_patients_names_to_ask_for(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A call-back a parent or guardian asked for says whom to ask for ("<guardian> (parent
    or guardian of <patient>)"): a right-to-left name took the brackets into its run. Each
    name is in a ``<bdi>``, still escaped."""
    import secrets

    from booking.patients.services import CallbackSubmission, request_callback

    with app.app_context():
        reference = request_callback(
            CallbackSubmission(
                submission_token=secrets.token_urlsafe(32),
                locale="en",
                full_name=f"{NAME} <b>&",
                phone="+4930901821",
                red_flags={"saddle_numbness"},
                guardian_name=ACTOR_NAME,
            )
        ).reference
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert (
        f'<dd class="col-sm-8">{ACTOR_ISOLATED} (parent or guardian of '
        f"<bdi>{NAME} &lt;b&gt;&amp;</bdi>)</dd>"
    ) in record


def test_the_accounts_page_isolates_the_name_of_an_unsent_notices_account(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A notice about an account that could not be sent is listed as "To <address>, the old
    address of <name>, written <date>": a right-to-left name took the commas and the date
    into its run. It is in a ``<bdi>``, still escaped."""
    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.staff.services import correct_staff_details, details_mark

    with app.app_context():
        weber = db.session.get(StaffUser, clinic.weber.id)
        weber.full_name = STAFF_NAME
        db.session.commit()
        correct_staff_details(
            weber,
            full_name=weber.full_name,
            email="weber.new@example.com",
            shown=details_mark(weber),
            actor=db.session.get(StaffUser, clinic.admin.id),
        )
        for email in db.session.scalars(
            db.select(OutboxEmail).where(OutboxEmail.template == "staff_email_changed")
        ):
            email.status = OutboxStatus.FAILED  # both addresses refused it for good
        db.session.commit()
    admin = AuthActions(client).new_client("admin")

    page = " ".join(admin.get("/staff/accounts").get_data(as_text=True).split())
    assert f"To {clinic.weber.email}, the old address of {STAFF_ISOLATED}, written " in page
    assert f"To weber.new@example.com, the new address of {STAFF_ISOLATED}, written " in page


def test_the_record_isolates_the_name_of_who_decided_the_plan(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The completed record's plan says when and by whom it was decided ("<date> · <name>"):
    a right-to-left name took the middle dot and the time into its run. It is in a
    ``<bdi>``, still escaped."""
    from booking.outcomes.models import Plan

    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        coordinator.full_name = ACTOR_NAME
        db.session.commit()
        consultation = make_request(followup_consent=True)
        workflow.confirm_request(
            consultation,
            coordinator,
            clinic_slot(clinic, clinic_today() - timedelta(days=1), time(10)),
        )
        workflow.complete_request(consultation, coordinator, Plan.PHYSIOTHERAPY, None)
        reference = consultation.reference
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert re.search(
        rf'<dt class="col-sm-4">Decided</dt><dd class="col-sm-8">[^<]+ · {ACTOR_ISOLATED}</dd>',
        record,
    )


FILE_NAME = "تقرير الرنين 2.pdf"  # a document named in Arabic
FILE_NAME_ISOLATED = f"<bdi>{FILE_NAME}</bdi>"


def test_document_names_are_isolated_where_text_surrounds_them(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A document's name is followed by its size ("<name> · 1 kB"), its description, a date
    or a note in brackets ("<name> (received - being checked ...)"), or a colon and why it
    was not added: a right-to-left name took the digits, dots and brackets beside it into
    its run. On the request's steps, the private page, the record and the intake summary
    the name (and the description beside it) is in a ``<bdi>``, still escaped."""
    from booking.documents.models import Document
    from tests.support import open_step, pdf_bytes, upload
    from tests.test_virus_scan import reach_documents_step

    reach_documents_step(client)
    assert upload(client, (pdf_bytes(), FILE_NAME)).status_code == 303
    added = open_step(client, "documents")
    assert f"<strong>{FILE_NAME_ISOLATED}</strong> · 1 kB" in added
    assert f"<li>{FILE_NAME_ISOLATED}" in open_step(client, "review")
    refused = upload(client, (b"MZ\x90\x00 not a pdf", "صورة.pdf")).get_data(as_text=True)
    assert "<strong><bdi>صورة.pdf</bdi></strong>: " in refused

    with app.app_context():
        consultation = make_request(documents=1)
        document = db.session.scalars(db.select(Document)).one()
        document.original_name, document.description = f"{FILE_NAME} <b>&", "صورة <b>"
        db.session.commit()
        reference = consultation.reference
    shown = f"<bdi>{FILE_NAME} &lt;b&gt;&amp;</bdi> · <bdi>صورة &lt;b&gt;</bdi>"
    patient = app.test_client()
    with app.app_context():
        url = open_manage_link(patient, db.session.get(ConsultationRequest, consultation.id))
    assert f"<li>{shown} <small" in patient.get(url).get_data(as_text=True)

    AuthActions(client).attempt(clinic.coordinator.email)
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f"<strong><bdi>{FILE_NAME} &lt;b&gt;&amp;</bdi></strong> · <bdi>صورة" in record
    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert f'<td class="summary-document-name">{shown}' in summary


def test_the_intake_summary_isolates_the_name_of_who_wrote_each_note(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The summary's staff notes read "<heading> · <date> · <name>": a right-to-left name
    took the dot and the time into its run. It is in a ``<bdi>``, still escaped."""
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        coordinator.full_name = ACTOR_NAME
        db.session.commit()
        consultation = make_request(email="noted@example.com")
        workflow.add_note(consultation, coordinator, "Spoke to the GP.")
        reference = consultation.reference
    AuthActions(client).attempt(clinic.coordinator.email)

    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert re.search(rf"<li><strong>Note</strong> · [^<]+ · {ACTOR_ISOLATED}<div", summary)


def test_the_edit_pages_isolate_the_name_of_what_they_edit(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The pages correcting an appointment type, a location or a staff account name it in
    their heading ("Edit <name>", "Correct the account of <name>") and breadcrumb, as the
    specialist's schedule page does: the name is in a ``<bdi>``, still escaped; the tab's
    title has no tags."""
    with app.app_context():
        _named_in_arabic(clinic, STAFF_NAME)
    admin = AuthActions(client).new_client("admin")

    for path, heading in (
        (f"/staff/admin/scheduling/types/{clinic.type}", "Edit <bdi>مراجعة الصور</bdi>"),
        (f"/staff/admin/locations/{clinic.location}", f"Edit {PLACE_ISOLATED}"),
        (f"/staff/accounts/{clinic.weber.id}/edit", f"Correct the account of {STAFF_ISOLATED}"),
    ):
        page = admin.get(path).get_data(as_text=True)
        assert re.search(r'<h1 class="h2" id="[a-z]+-heading">(.*?)</h1>', page, re.S)[1] == heading
        name = heading[heading.index("<bdi>") :]
        assert f'<li class="breadcrumb-item active" aria-current="page">{name}</li>' in page
        assert "bdi" not in re.search(r"<title>(.*?)</title>", page, re.S)[1]


# A refusal a service words with a name in it ("These hours overlap <name>'s hours ...") is
# shown by its page as the markup the service built: the name in a ``<bdi>``, still escaped.
ERROR_NAME = "محمد عبدالله <b>&"  # a name typed in Arabic (and markup, to be escaped)
ERROR_ISOLATED = "<bdi>محمد عبدالله &lt;b&gt;&amp;</bdi>"


def test_the_refusals_of_overlapping_hours_isolate_the_specialists_and_the_places_names(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Weekly hours overlapping others ("... overlap <name>'s hours on Monday from 08:00 to
    18:00 at <place>.") and extra hours overlapping others ("... other extra hours of
    <name>."): a right-to-left name took the apostrophe, the day and the full stop into its
    run."""
    from tests.test_scheduling_admin import schedule_path, submit, target_day

    with app.app_context():
        _named_in_arabic(clinic, ERROR_NAME)
    admin = AuthActions(client).new_client("admin")
    path = schedule_path(clinic.weber.id)

    hours = submit(
        admin,
        path,
        "hours",
        weekday="0",
        location=str(clinic.location),
        start_time="09:00",
        end_time="10:00",
    )
    assert hours.status_code == 422
    assert (
        f"These hours overlap {ERROR_ISOLATED}'s hours on Monday from 08:00 to 18:00 at "
        f"{PLACE_ISOLATED}. Choose other times"
    ) in hours.get_data(as_text=True).replace("&#39;", "'")

    iso = target_day().isoformat()
    extra = {"location": str(clinic.location), "start_day": iso, "end_day": iso}
    assert (
        submit(admin, path, "extra", **extra, start_time="19:00", end_time="20:00").status_code
        == 302
    )
    again = submit(admin, path, "extra", **extra, start_time="19:30", end_time="21:00")
    assert again.status_code == 422
    assert f"These hours overlap other extra hours of {ERROR_ISOLATED}." in again.get_data(
        as_text=True
    )


ADDRESS = "شارع الملك فهد 12 <b>&"  # an address typed in Arabic (and markup, escaped)
ADDRESS_ISOLATED = "<bdi>شارع الملك فهد 12 &lt;b&gt;&amp;</bdi>"


def test_the_refusals_of_a_page_shown_before_another_change_isolate_the_name_it_now_has(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A page shown before another admin's change (or one's own, on another page) is refused
    with what the thing is now ("it is now <name>, 45 minutes (...)", "it is now <place>,
    <address>", "it is now <name>, <email>"): a right-to-left name took the comma and what
    follows it into its run, as a right-to-left address took the full stop after it (the
    address and the email isolated too)."""
    from tests.test_admin_edits import post_as_shown
    from tests.test_staff_details import change_own, own_page, shown

    with app.app_context():
        _named_in_arabic(clinic, ERROR_NAME)
    auth = AuthActions(client)
    admin, other = auth.new_client("admin"), auth.new_client("admin")

    for path, changed, now in (
        (
            f"/staff/admin/scheduling/types/{clinic.type}",
            {"duration_minutes": "60"},
            "it is now <bdi>مراجعة الصور</bdi>, 60 minutes (",
        ),
        (
            f"/staff/admin/locations/{clinic.location}",
            {"address": ADDRESS},
            f"it is now {PLACE_ISOLATED}, {ADDRESS_ISOLATED}. Check",
        ),
    ):
        older = admin.get(path).get_data(as_text=True)
        post_as_shown(other, path, other.get(path).get_data(as_text=True), **changed)
        assert now in post_as_shown(admin, path, older, name="Another name")

    weber = auth.new_client("specialist", email=clinic.weber.email)
    older = own_page(weber)
    assert change_own(weber, NAME, clinic.weber.email).status_code == 302
    stale = weber.post(
        "/staff/account",
        data={**older, "full_name": "Dr. Weber", "email": clinic.weber.email, "password": ""},
    )
    assert f"it is now {ISOLATED}, <bdi>{clinic.weber.email}</bdi>. Check" in stale.get_data(
        as_text=True
    )

    older = shown(admin, clinic.weber.id)
    other.post(
        f"/staff/accounts/{clinic.weber.id}/edit",
        data={**shown(other, clinic.weber.id), "full_name": ERROR_NAME, "email": "w@example.com"},
    )
    stale = admin.post(
        f"/staff/accounts/{clinic.weber.id}/edit",
        data={**older, "full_name": "Dr. Weber", "email": "w@example.com"},
    )
    assert f"it is now {ERROR_ISOLATED}, <bdi>w@example.com</bdi>. Check" in stale.get_data(
        as_text=True
    )


def test_the_refusals_of_a_two_factor_reset_isolate_the_colleagues_name(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A reset refused because the colleague used a code since the page was shown ("<name>
    used or set up two-factor sign-in since ...") or because their account is deactivated
    ("The account of <name> is deactivated: ..."): a right-to-left name took the colon and
    the words beside it into its run. Flashed, the markup survives the redirect."""
    import time as clock

    import pyotp

    from tests.test_two_factor import code_step
    from tests.test_two_factor_reset import enrolled, reset, shown, signed_in_admin

    with app.app_context():
        db.session.get(StaffUser, clinic.weber.id).full_name = ERROR_NAME
        db.session.commit()
    secret = enrolled(app, clinic.weber.email)
    signed_in_admin(app, client, clinic)
    older = shown(client, clinic.weber.id)
    weber = app.test_client()
    AuthActions(weber).attempt(clinic.weber.email)
    assert code_step(weber, pyotp.TOTP(secret).at(clock.time() + 30)).status_code == 302

    page = reset(client, clinic.weber.id, older).get_data(as_text=True)
    assert f">{ERROR_ISOLATED} used or set up two-factor sign-in since the page" in page

    older = shown(client, clinic.weber.id)
    with app.app_context():
        db.session.get(StaffUser, clinic.weber.id).active = False
        db.session.commit()
    page = reset(client, clinic.weber.id, older).get_data(as_text=True)
    assert f">The account of {ERROR_ISOLATED} is deactivated: nothing was reset." in page


def test_the_refusals_of_a_time_staff_book_isolate_the_specialists_and_the_places_names(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A time the specialist is not free at ("<name> is not free at that time at <place>:
    ...") and one on a day the clinic is closed ("... add extra hours for <name> (...)"): a
    right-to-left name took the colon and the brackets beside it into its run."""
    from booking.scheduling.closures import close_clinic
    from tests.test_workflow import act

    with app.app_context():
        day = clinic_today() + timedelta(days=7)
        _named_in_arabic(clinic, ERROR_NAME)
        reference = make_request().reference
    AuthActions(client).attempt(clinic.coordinator.email)
    fields = {
        "specialist": clinic.weber.id,
        "location": clinic.location,
        "day": day.isoformat(),
        "start": "06:00",  # before Dr. Weber's hours (08:00-18:00)
        "appointment_type": clinic.type,
        "message": "",
    }

    busy = act(client, reference, "confirm", **fields)
    assert busy.status_code == 409
    assert (
        f">{ERROR_ISOLATED} is not free at that time at {PLACE_ISOLATED}: outside their hours"
        in busy.get_data(as_text=True)
    )

    with app.app_context():
        close_clinic(day, "Team training", db.session.get(StaffUser, clinic.admin.id))
    closed = act(client, reference, "confirm", **{**fields, "start": "10:00"})
    assert closed.status_code == 409
    assert f"an administrator can add extra hours for {ERROR_ISOLATED} (Scheduling" in (
        closed.get_data(as_text=True)
    )


def test_the_refusal_of_a_name_another_reads_in_a_language_isolates_that_name(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A type's Spanish name another type reads already is refused next to its box
    ("Another appointment type is already called <name> in Spanish."): a right-to-left name
    took the words and the full stop after it into its run."""
    from tests.factories import make_appointment_type
    from tests.support import form_values

    with app.app_context():
        db.session.get(AppointmentType, clinic.type).names = {"es": ERROR_NAME}
        db.session.commit()
        imaging = make_appointment_type("Imaging review", minutes=30).id
    admin = AuthActions(client).new_client("admin")
    path = f"/staff/admin/scheduling/types/{imaging}"
    data = {
        **form_values(admin.get(path).get_data(as_text=True)),
        "name": "Imaging review",
        "name_es": ERROR_NAME,
        "mode": "in_person",
    }
    response = admin.post(path, data=data)
    assert response.status_code == 422
    assert (
        f"Another appointment type is already called {ERROR_ISOLATED} in Spanish."
        in response.get_data(as_text=True)
    )
