"""Who may open which staff URL.

The URLs come from the app's URL map, so a URL added tomorrow is checked tomorrow, and the
test fails until its endpoint is classified in ``ACCESS``. Every URL is tried with every method
it accepts: by an anonymous visitor, by each role that may not use it, and by each role that
may. Refused requests must change nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from booking.audit.models import ACCESS_REFUSED, AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest
from booking.rights.models import ErasureRequest
from booking.scheduling.models import ClinicClosure, Location, ScheduleException, WorkingHours
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, now_utc
from tests.factories import (
    make_assigned_requests,
    make_staff,
)
from tests.support import AuthActions, Clinic, csrf_token

ADMIN, COORDINATOR, SPECIALIST = "admin", "coordinator", "specialist"
ROLES = (ADMIN, COORDINATOR, SPECIALIST)

# Staff URLs anyone may open: signing in and getting back in.
PUBLIC = frozenset(
    {
        "staff.login",
        "staff.login_code",
        "staff.forgot_password",
        "staff.reset_password",
        "staff.choose_password",
    }
)


@dataclass(frozen=True)
class Access:
    roles: frozenset[str]
    # A specialist may use it only for requests assigned to them (others do not exist: 404).
    assigned_only: bool = False


ADMIN_ONLY = Access(frozenset({ADMIN}))
MANAGERS = Access(frozenset({ADMIN, COORDINATOR}))
EVERY_ROLE = Access(frozenset(ROLES))
EVERY_ROLE_ASSIGNED = Access(frozenset(ROLES), assigned_only=True)

# The one table of who may use what. A new /staff endpoint must be added here; "bp.*" covers
# every endpoint of a blueprint (the admin blueprint is for admins only, whatever it grows).
ACCESS: dict[str, Access] = {
    "admin.*": ADMIN_ONLY,
    "scheduling_admin.*": ADMIN_ONLY,
    "privacy.*": ADMIN_ONLY,
    "staff.accounts": ADMIN_ONLY,
    "staff.set_active": ADMIN_ONLY,
    "staff.set_role": ADMIN_ONLY,
    "staff.two_factor_policy": ADMIN_ONLY,
    "staff.reset_two_factor": ADMIN_ONLY,
    "staff.edit_account": ADMIN_ONLY,
    "staff.settle_account_notice": ADMIN_ONLY,
    "dashboard.export_csv": MANAGERS,
    "dashboard.send_new_link": MANAGERS,
    "dashboard.resend_emails": MANAGERS,
    "dashboard.correct_contact": MANAGERS,
    "insights.view": MANAGERS,
    "dashboard.mark_deceased": MANAGERS,
    "outcomes_staff.results": MANAGERS,
    "outcomes_staff.follow_ups": MANAGERS,
    "outcomes_staff.export_csv": MANAGERS,
    "outcomes_staff.refresh": MANAGERS,
    "outcomes_staff.settings": ADMIN_ONLY,
    "dashboard.home": EVERY_ROLE,
    "dashboard.queue": EVERY_ROLE,
    "calendar.view": EVERY_ROLE,
    "staff.logout": EVERY_ROLE,
    "staff.keep_alive": EVERY_ROLE,
    "staff.two_factor_setup": EVERY_ROLE,
    "staff.own_account": EVERY_ROLE,
    "dashboard.record": EVERY_ROLE_ASSIGNED,
    "dashboard.document": EVERY_ROLE_ASSIGNED,
    "dashboard.summary_page": EVERY_ROLE_ASSIGNED,
    "dashboard.summary_pdf": EVERY_ROLE_ASSIGNED,
    "dashboard.add_note": EVERY_ROLE_ASSIGNED,
    "dashboard.send_message": EVERY_ROLE_ASSIGNED,
    "dashboard.log_call": EVERY_ROLE_ASSIGNED,
    "dashboard.change_status": EVERY_ROLE_ASSIGNED,
    "dashboard.correct_procedure_date": EVERY_ROLE_ASSIGNED,
    "dashboard.set_join_link": EVERY_ROLE_ASSIGNED,
    "dashboard.ask_patient": EVERY_ROLE_ASSIGNED,
    "dashboard.withdraw_ask": EVERY_ROLE_ASSIGNED,
    "dashboard.information_reviewed": EVERY_ROLE_ASSIGNED,
    "dashboard.raise_triage": EVERY_ROLE_ASSIGNED,
    "dashboard.return_to_record": EVERY_ROLE_ASSIGNED,
}

# Pages that send a role on to another (endpoint: where), instead of answering themselves.
HOME_REDIRECTS = {SPECIALIST: {"dashboard.home": "/staff/calendar"}}
# Addresses a GET sends back to the request's record (an action's, only posted to).
TO_RECORD = frozenset({"dashboard.return_to_record"})

# The URL variables this test can fill with real values; see ``_variable_values``.
KNOWN_VARIABLES = frozenset(
    {
        "reference",
        "document_id",
        "location_id",
        "user_id",
        "action",
        "type_id",
        "hours_id",
        "exception_id",
        "closure_id",
        "code",
        "erasure_id",
    }
)
# Every form prefix of the record page, so an allowed post is judged by the view, not by CSRF.
FORM_PREFIXES = (
    "",
    "slot-",
    "close-",
    "action-",
    "note-",
    "link-",
    "ask-",
    "withdraw-",
    "reviewed-",
    "deceased-",
    "contact-",
    "raise-",
)


def access_for(endpoint: str) -> Access | None:
    return ACCESS.get(endpoint) or ACCESS.get(endpoint.split(".", 1)[0] + ".*")


def staff_rules(app: Flask) -> list[Rule]:
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/staff") and rule.endpoint not in PUBLIC
    ]
    assert rules, "the URL map has no staff URLs: is the prefix still /staff?"
    # Signing out last: the allowed-use pass would otherwise end its own session.
    return sorted(rules, key=lambda r: (r.endpoint == "staff.logout", r.rule))


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    url: str
    subject: str | None  # "own" / "other" request for URLs about one request, else None

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.endpoint})"


def _variable_values(
    clinic: Targets, subject: str | None, endpoint: str = ""
) -> dict[str, list[object]]:
    request = getattr(clinic, subject or "own")
    scheduling = endpoint.startswith("scheduling_admin.")
    return {
        "reference": [request["reference"]],
        "document_id": [request["document"]],  # the document of that same request
        "location_id": [clinic.location],
        # never the signed-in user; a specialist for the schedule pages
        "user_id": [clinic.schedule_specialist if scheduling else clinic.target],
        "action": sorted(workflow.ACTIONS),
        "type_id": [clinic.type],
        "hours_id": [clinic.hours],
        "exception_id": [clinic.exception],
        "closure_id": [clinic.closure],
        "code": ["referral_letter"],  # a checklist item (booking.requests.asks)
        "erasure_id": [clinic.erasure],
    }


def staff_cases(app: Flask, clinic: Targets) -> list[Case]:
    """Each URL of each staff rule with each method it accepts, once: a URL and method that
    another rule answers (a post to ``/requests/<reference>/confirm`` is ``change_status``'s,
    not ``return_to_record``'s) is that rule's case, not sent a second time for this one."""
    urls = app.url_map.bind("localhost")
    cases = []
    for rule in staff_rules(app):
        unknown = set(rule.arguments) - KNOWN_VARIABLES
        if unknown:
            pytest.fail(
                f"{rule.rule} ({rule.endpoint}) has URL variable(s) {sorted(unknown)} this test "
                "cannot fill: add real values for them to _variable_values()"
            )
        subjects = ["own", "other"] if "reference" in rule.arguments else [None]
        for subject in subjects:
            choices = _variable_values(clinic, subject, rule.endpoint)
            names = sorted(rule.arguments)
            for combination in itertools.product(*(choices[name] for name in names)):
                built = rule.build(dict(zip(names, combination, strict=True)))
                assert built is not None, f"cannot build {rule.rule}"
                for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                    answered_by, _ = urls.match(built[1], method)
                    if answered_by == rule.endpoint:
                        cases.append(Case(rule.endpoint, method, built[1], subject))
    return cases


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


@dataclass(frozen=True)
class Targets(Clinic):
    """``clinic``, a coordinator account to act on, time off for Dr. Okafor (whose schedule
    the scheduling pages change), and two requests with one document each: "own" is assigned
    to the specialist we sign in as (Dr. Weber), "other" to Dr. Okafor."""

    emails: dict[str, str]
    target: int
    schedule_specialist: int
    hours: int
    exception: int
    closure: int
    erasure: int
    own: dict[str, Any]
    other: dict[str, Any]


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Targets:
    with app.app_context():
        okafor = db.session.get(StaffUser, clinic.okafor.id)
        target = make_staff(COORDINATOR, "target@example.com")
        hours = db.session.scalars(
            select(WorkingHours).where(WorkingHours.specialist_id == okafor.id)
        ).first()
        exception = ScheduleException(
            specialist_id=okafor.id,
            kind="time_off",
            starts_at=now_utc() + timedelta(days=40),
            ends_at=now_utc() + timedelta(days=41),
        )
        db.session.add(exception)
        # A day the clinic is closed, entered by an admin (the scheduling pages remove it).
        closure = ClinicClosure(day=clinic_today() + timedelta(days=50), reason="Training")
        db.session.add(closure)
        db.session.commit()
        own, other = make_assigned_requests(clinic)
        # A patient's request for erasure, waiting in the admins' queue (booking.rights).
        erasure = ErasureRequest(
            reference=other["reference"],
            request_id=db.session.scalar(
                select(ConsultationRequest.id).where(
                    ConsultationRequest.reference == other["reference"]
                )
            ),
        )
        db.session.add(erasure)
        db.session.commit()
        return Targets(
            **vars(clinic),
            emails={
                ADMIN: clinic.admin.email,
                COORDINATOR: clinic.coordinator.email,
                SPECIALIST: clinic.weber.email,
            },
            target=target.id,
            schedule_specialist=okafor.id,
            hours=hours.id,
            exception=exception.id,
            closure=closure.id,
            erasure=erasure.id,
            own=own,
            other=other,
        )


@pytest.fixture(autouse=True)
def _summary_pdf_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Who may download a request's summary PDF is settled before the PDF is drawn: the view
    still finds the request for the user, renders the summary and audits the download, but
    WeasyPrint does not lay it out (seconds a PDF on CI's machines: a fifth of this file's
    time). tests/test_intake_summary.py checks the PDF itself."""
    monkeypatch.setattr("booking.pdf.render_pdf", lambda html: b"%PDF-1.7\n%not drawn\n")


def snapshot(app: Flask) -> dict[str, Any]:
    """Everything a staff URL could change."""
    with app.app_context():

        def count(model: type) -> int:
            return db.session.scalar(select(func.count()).select_from(model)) or 0

        state = {
            # A refusal is audited (tests/test_refused_access.py), and changes nothing else.
            "audit": _audit_rows_except_refusals(),
            "timeline": count(RequestEvent),
            "outbox": count(OutboxEmail),
            "staff": db.session.execute(
                select(
                    StaffUser.id,
                    StaffUser.email,
                    StaffUser.role,
                    StaffUser.active,
                    StaffUser.session_token,
                    StaffUser.password_hash,
                ).order_by(StaffUser.id)
            ).all(),
            "locations": db.session.execute(
                select(Location.id, Location.name, Location.active).order_by(Location.id)
            ).all(),
            "closed_days": db.session.scalars(
                select(ClinicClosure.day).order_by(ClinicClosure.day)
            ).all(),
            "requests": db.session.execute(
                select(
                    ConsultationRequest.reference,
                    ConsultationRequest.status,
                    ConsultationRequest.assigned_specialist_id,
                ).order_by(ConsultationRequest.id)
            ).all(),
        }
        db.session.remove()
        return state


def _audit_rows_except_refusals() -> int:
    stmt = select(func.count()).where(AuditEvent.action != ACCESS_REFUSED)
    return db.session.scalar(stmt) or 0


def fetch(client: FlaskClient, url: str) -> TestResponse:
    """GET ``url``, read the body and close the response (a document is an open file)."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def send(client: FlaskClient, case: Case, token: str | None) -> TestResponse:
    if case.method == "GET":
        return fetch(client, case.url)
    data = {f"{prefix}csrf_token": token for prefix in FORM_PREFIXES} if token else {}
    return client.post(case.url, data=data)


def redirects_to_login(response: TestResponse) -> bool:
    return response.status_code in (302, 303) and (
        urlsplit(response.headers.get("Location", "")).path == "/staff/login"
    )


def test_every_staff_endpoint_is_classified(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in staff_rules(app)}
    unclassified = sorted(e for e in endpoints if access_for(e) is None)
    assert not unclassified, (
        f"staff endpoint(s) {unclassified} are missing from ACCESS in {__name__}: "
        "say which roles may use them"
    )
    stale = sorted(
        name for name in ACCESS if name not in endpoints and not name.endswith(".*")
    ) + sorted(
        name
        for name in ACCESS
        if name.endswith(".*") and not any(e.startswith(name[:-1]) for e in endpoints)
    )
    assert not stale, f"ACCESS names endpoints the app no longer has: {stale}"


def test_the_url_list_covers_the_known_staff_pages(app: Flask, clinic: Targets) -> None:
    """Guards the URL-map walk itself: if it silently found nothing, the checks below would
    pass vacuously."""
    covered = {(case.endpoint, case.method) for case in staff_cases(app, clinic)}
    for expected in [
        ("dashboard.queue", "GET"),
        ("dashboard.record", "GET"),
        ("dashboard.document", "GET"),
        ("dashboard.add_note", "POST"),
        ("dashboard.send_message", "POST"),
        ("dashboard.log_call", "POST"),
        ("dashboard.change_status", "POST"),
        ("dashboard.export_csv", "POST"),
        ("dashboard.correct_contact", "POST"),
        ("staff.accounts", "GET"),
        ("staff.accounts", "POST"),
        ("staff.set_active", "POST"),
        ("staff.set_role", "POST"),
        ("staff.logout", "POST"),
        ("admin.audit", "GET"),
        ("admin.locations", "POST"),
        ("admin.set_location_active", "POST"),
        ("calendar.view", "GET"),
        ("insights.view", "GET"),
    ]:
        assert expected in covered, f"{expected} is not among the checked staff URLs"
    assert not covered & {(e, m) for e in PUBLIC for m in ("GET", "POST")}


def test_anonymous_visitors_are_refused_everywhere(
    app: Flask, client: FlaskClient, clinic: Targets
) -> None:
    cases = staff_cases(app, clinic)
    before = snapshot(app)
    token = csrf_token(client, "/staff/login")  # a visitor can get a valid token here
    problems = []
    patients = [clinic.own["patient"], clinic.other["patient"]]
    for case in cases:
        if case.method == "GET":
            response = send(client, case, None)
            if not redirects_to_login(response):
                problems.append(f"{case}: {response.status_code}, not a redirect to sign-in")
        else:
            # Without a token CSRF refuses it; with a valid one the sign-in check must.
            for with_token in (False, True):
                response = send(client, case, token if with_token else None)
                refused = redirects_to_login(response) or response.status_code in (401, 403)
                if not with_token:
                    refused = refused or response.status_code == 400
                if not refused:
                    problems.append(
                        f"{case} {'with' if with_token else 'without'} a CSRF token: "
                        f"{response.status_code}"
                    )
        page = response.get_data(as_text=True)
        problems += [f"{case}: shows {name!r}" for name in patients if name in page]
    assert not problems, "anonymous visitors got through:\n" + "\n".join(problems)
    assert snapshot(app) == before, "an anonymous request changed the database"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_allows(
    app: Flask, client: FlaskClient, clinic: Targets, role: str
) -> None:
    cases = staff_cases(app, clinic)
    AuthActions(client).login(email=clinic.emails[role])
    token = csrf_token(client, "/staff/queue")
    problems = []

    # Refused first, and they must change nothing.
    before = snapshot(app)
    allowed: list[Case] = []
    for case in cases:
        access = access_for(case.endpoint)
        assert access is not None, f"{case.endpoint} is not classified in ACCESS"
        if role not in access.roles:
            expected = 403
        elif role == SPECIALIST and access.assigned_only and case.subject == "other":
            expected = 404  # another specialist's request does not exist for this one
        else:
            allowed.append(case)
            continue
        response = send(client, case, token)
        if response.status_code != expected:
            problems.append(f"{case}: {response.status_code}, expected {expected}")
        elif case.subject == "other":
            page = response.get_data(as_text=True)
            if clinic.other["patient"] in page:
                problems.append(f"{case}: shows the other request's patient")
    assert not problems, f"{role} was not refused as the table says:\n" + "\n".join(problems)
    assert snapshot(app) == before, f"a request refused to the {role} changed the database"

    # Allowed: pages open; posts reach the view (which may still say no to the content).
    for case in sorted(allowed, key=lambda c: c.method):  # GETs before POSTs, logout last
        response = send(client, case, token)
        if case.method == "GET":
            if case.endpoint in HOME_REDIRECTS.get(role, ()):
                # A specialist's staff home is their agenda.
                if response.headers.get("Location") != HOME_REDIRECTS[role][case.endpoint]:
                    problems.append(f"{case}: {response.status_code}, expected their agenda")
            elif case.endpoint in TO_RECORD:
                record = case.url.rsplit("/", 1)[0]
                where = urlsplit(response.headers.get("Location", "")).path
                if response.status_code != 303 or where != record:
                    problems.append(f"{case}: {response.status_code}, expected the record")
            elif response.status_code != 200:
                problems.append(f"{case}: {response.status_code}, expected 200")
        elif response.status_code in (401, 403, 404, 405) or (
            # Signing out rightly ends on the sign-in page; anything else sent there was refused.
            redirects_to_login(response) and case.endpoint != "staff.logout"
        ):
            problems.append(f"{case}: refused with {response.status_code}")
    assert not problems, f"{role} was refused what the table allows:\n" + "\n".join(problems)
    assert redirects_to_login(client.get("/staff/")), "the last post should have signed out"


def test_a_specialist_cannot_reach_another_specialists_request(
    app: Flask, client: FlaskClient, clinic: Targets
) -> None:
    own, other = clinic.own, clinic.other
    AuthActions(client).attempt(clinic.emails[SPECIALIST])
    token = csrf_token(client, f"/staff/requests/{own['reference']}")

    # Their own request opens, so the refusals below are about the reference alone.
    page = client.get(f"/staff/requests/{own['reference']}")
    assert page.status_code == 200 and own["patient"] in page.get_data(as_text=True)
    own_document = f"/staff/requests/{own['reference']}/documents/{own['document']}"
    assert fetch(client, own_document).status_code == 200

    before = snapshot(app)
    for reference in (other["reference"], other["reference"].lower()):
        base = f"/staff/requests/{reference}"
        responses = {
            "record": client.get(base),
            "document": fetch(client, f"{base}/documents/{other['document']}"),
            "download": fetch(client, f"{base}/documents/{other['document']}?download=1"),
            "note": client.post(
                f"{base}/notes", data={"note-csrf_token": token, "note-text": "Looked at it."}
            ),
            "message": client.post(
                f"{base}/messages", data={"msg-csrf_token": token, "msg-body": "Hello."}
            ),
            "complete": client.post(f"{base}/complete", data={"action-csrf_token": token}),
            "no_show": client.post(f"{base}/no_show", data={"action-csrf_token": token}),
        }
        for what, response in responses.items():
            assert response.status_code == 404, f"{what} on {reference}: {response.status_code}"
            assert other["patient"] not in response.get_data(as_text=True)
    # Their own reference with the other request's document: still not theirs.
    mixed = f"/staff/requests/{own['reference']}/documents/{other['document']}"
    assert fetch(client, mixed).status_code == 404
    assert snapshot(app) == before


def test_a_document_of_another_request_is_refused_even_to_a_coordinator(
    app: Flask, client: FlaskClient, clinic: Targets
) -> None:
    own, other = clinic.own, clinic.other
    AuthActions(client).attempt(clinic.emails[COORDINATOR])
    for reference, document in (
        (own["reference"], own["document"]),
        (other["reference"], other["document"]),
    ):
        response = fetch(client, f"/staff/requests/{reference}/documents/{document}")
        assert response.status_code == 200
        assert response.data.startswith(b"%PDF")

    with app.app_context():
        audit_before = _audit_rows_except_refusals()
    for reference, document in (
        (own["reference"], other["document"]),
        (other["reference"], own["document"]),
        (own["reference"], other["document"] + own["document"] + 100),  # no such document
    ):
        for query in ("", "?download=1"):
            response = fetch(client, f"/staff/requests/{reference}/documents/{document}{query}")
            assert response.status_code == 404, (reference, document, query)
            assert not response.data.startswith(b"%PDF")
    with app.app_context():
        # A refused download is not recorded as a view of medical data (only as a refusal).
        assert _audit_rows_except_refusals() == audit_before
