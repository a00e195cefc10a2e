"""Every refused look at a record is audited: a specialist's "not found" on another
specialist's request, document or note, and ids that do not exist (probing), each a committed
row saying who asked for what, when and from where; admins can list them on the audit page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import ACCESS_REFUSED, AuditEvent
from booking.extensions import db
from booking.timeutil import clinic_today, now_utc
from tests.factories import (
    make_assigned_requests,
)
from tests.support import AuthActions, Clinic, audited_actions, csrf_token, shown_actions

# The clinic's proxy and the staff member's own address behind it (ProxyFix makes the latter
# the request's remote address).
PROXY_IP = "10.0.0.5"
STAFF_IP = "198.51.100.23"


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings.update(TRUSTED_PROXIES=1)
    return app_settings


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


@dataclass(frozen=True)
class Assigned(Clinic):
    """``clinic`` and one confirmed request (with one document) for each specialist: "own"
    is Dr. Weber's, "other" Dr. Okafor's."""

    own: dict[str, Any]
    other: dict[str, Any]


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Assigned:
    with app.app_context():
        own, other = make_assigned_requests(clinic)
        return Assigned(**vars(clinic), own=own, other=other)


def signed_in(app: Flask, email: str) -> FlaskClient:
    """A client signed in as ``email``, calling through the clinic's proxy."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=STAFF_IP)
    AuthActions(client).login(email=email)
    return client


def refusals(app: Flask) -> list[AuditEvent]:
    """The refusal rows, read in a session of their own: only committed rows are seen."""
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == ACCESS_REFUSED).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def get(client: FlaskClient, url: str) -> tuple[int, str]:
    response = client.get(url)
    status, page = response.status_code, response.get_data(as_text=True)
    response.close()  # a served document is an open file
    return status, page


def test_a_specialist_refused_another_specialists_records_leaves_one_row_per_refusal(
    app: Flask, clinic: Assigned
) -> None:
    client = signed_in(app, clinic.weber.email)
    own, other = clinic.own, clinic.other
    token = csrf_token(client, f"/staff/requests/{own['reference']}")
    base = f"/staff/requests/{other['reference']}"
    document = f"{base}/documents/{other['document']}"
    before = now_utc()

    asked = [
        (client.get(base), "GET", base, "dashboard.record", "not_assigned"),
        (client.get(document), "GET", document, "dashboard.document", "not_assigned"),
        (
            client.get(f"{document}?download=1"),
            "GET",
            document,  # the path only: a query string is never kept
            "dashboard.document",
            "not_assigned",
        ),
        (
            client.post(
                f"{base}/notes", data={"note-csrf_token": token, "note-text": "Looked at it."}
            ),
            "POST",
            f"{base}/notes",
            "dashboard.add_note",
            "not_assigned",
        ),
        (
            client.post(f"{base}/complete", data={"action-csrf_token": token}),
            "POST",
            f"{base}/complete",
            "dashboard.change_status",
            "not_assigned",
        ),
    ]
    # Their own reference with the other request's document: not theirs either.
    mixed = f"/staff/requests/{own['reference']}/documents/{other['document']}"
    status, page = get(client, mixed)
    after = now_utc()

    for response, *_ in asked:
        assert response.status_code == 404
        assert other["patient"] not in response.get_data(as_text=True)
    assert status == 404 and other["patient"] not in page

    rows = refusals(app)
    assert len(rows) == len(asked) + 1
    for row, (_response, method, path, endpoint, reason) in zip(rows, asked, strict=False):
        assert row.actor_id == clinic.weber.id
        assert row.actor_email == "weber@example.com"
        assert row.ip_address == STAFF_IP  # the caller's, not the proxy's
        assert before - timedelta(seconds=1) <= row.occurred_at <= after + timedelta(seconds=1)
        assert (row.target_type, row.target_id) == ("request", other["reference"])
        assert row.details["reason"] == reason
        assert row.details["method"] == method
        assert row.details["path"] == path
        assert row.details["endpoint"] == endpoint
    assert rows[1].details["document_id"] == other["document"]
    assert rows[2].details["document_id"] == other["document"]
    assert rows[4].details["action"] == "complete"
    assert rows[-1].target_id == own["reference"]
    assert rows[-1].details == {
        "reason": "document_of_another_request",
        "method": "GET",
        "path": mixed,
        "endpoint": "dashboard.document",
        "document_id": other["document"],
    }
    with app.app_context():
        # Refused, so not recorded as a look at medical data, and nothing was changed.
        looked = db.session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_id == other["reference"],
                AuditEvent.actor_id == clinic.weber.id,
                AuditEvent.action != ACCESS_REFUSED,
            )
        ).all()
        assert looked == []


def test_a_reference_typed_in_lower_case_is_recorded_as_the_reference(
    app: Flask, clinic: Assigned
) -> None:
    client = signed_in(app, clinic.weber.email)
    reference = clinic.other["reference"]
    assert get(client, f"/staff/requests/{reference.lower()}")[0] == 404
    (row,) = refusals(app)
    # As the audit page's "Request reference" filter looks it up.
    assert row.target_id == reference


@pytest.mark.parametrize("written", ["sc {0} {1}", "{0}{1}", " SC {0}-{1}"])
def test_a_reference_written_another_way_is_found_by_the_audit_search(
    app: Flask, clinic: Assigned, written: str
) -> None:
    """A reference typed into the URL as staff read it out ("sc 7k4m q2xd") is recorded as
    the reference, so the audit page's search finds the refusal by the reference as written
    (and by the other ways of typing it, which it reads the same way)."""
    client = signed_in(app, clinic.weber.email)
    reference = clinic.other["reference"]
    typed = written.format(reference[3:7].lower(), reference[8:].lower())
    assert get(client, f"/staff/requests/{quote(typed)}")[0] == 404
    (row,) = refusals(app)
    assert row.target_id == reference
    assert row.details["path"] == f"/staff/requests/{typed}"  # what the URL held

    admin = signed_in(app, clinic.admin.email)
    for search in (reference, typed):
        page = admin.get(
            "/staff/admin/audit", query_string={"target": search, "refused": "1"}
        ).get_data(as_text=True)
        assert shown_actions(page) == ["access_refused"], search


@pytest.mark.parametrize("written", ["sc {0} {1}", "{0}{1}", "sc-{0}-{1}"])
def test_a_record_typed_another_way_opens_at_its_reference(
    app: Flask, clinic: Assigned, written: str
) -> None:
    """A reference typed into the address as staff read it out opens the record (at the
    reference's own address); another specialist's, typed so, is refused as not theirs."""
    reference = clinic.own["reference"]
    typed = written.format(reference[3:7].lower(), reference[8:].lower())
    client = signed_in(app, clinic.weber.email)
    response = client.get(f"/staff/requests/{quote(typed)}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/staff/requests/{reference}"
    assert get(client, f"/staff/requests/{reference}")[0] == 200
    assert refusals(app) == []

    other = clinic.other["reference"]
    typed = written.format(other[3:7].lower(), other[8:].lower())
    assert get(client, f"/staff/requests/{quote(typed)}")[0] == 404
    (row,) = refusals(app)
    assert (row.target_id, row.details["reason"]) == (other, "not_assigned")


@pytest.mark.parametrize(
    ("page", "look"),
    [
        ("/summary", "request_summary_viewed"),
        ("/summary.pdf", "request_summary_downloaded"),
        ("/documents/{document}", "document_viewed"),
        ("/documents/{document}?download=1", "document_downloaded"),
    ],
)
def test_a_records_other_pages_typed_another_way_go_to_their_reference(
    app: Flask, clinic: Assigned, page: str, look: str
) -> None:
    """Each of a record's pages, its reference typed as read out, is sent to its reference's
    own address (query string kept), and the look is audited once, there."""
    reference = clinic.own["reference"]
    typed = quote(f"sc {reference[3:7].lower()} {reference[8:].lower()}")
    page = page.format(document=clinic.own["document"])
    client = signed_in(app, clinic.weber.email)
    before = audited_actions(app, reference)
    response = client.get(f"/staff/requests/{typed}{page}")
    assert (response.status_code, response.headers["Location"]) == (
        302,
        f"/staff/requests/{reference}{page}",
    )
    assert audited_actions(app, reference) == before
    shown = client.get(response.headers["Location"])
    assert shown.status_code == 200
    shown.close()  # a served document is an open file
    assert audited_actions(app, reference) == [*before, look]
    assert refusals(app) == []


def test_a_form_posted_to_a_record_typed_another_way_still_works(
    app: Flask, clinic: Assigned
) -> None:
    reference = clinic.own["reference"]
    typed = quote(f"sc {reference[3:7].lower()} {reference[8:].lower()}")
    client = signed_in(app, clinic.weber.email)
    token = csrf_token(client, f"/staff/requests/{reference}")
    empty = client.post(
        f"/staff/requests/{typed}/notes", data={"note-csrf_token": token, "note-text": ""}
    )
    assert empty.status_code == 422  # shown with its error, not sent away
    added = client.post(
        f"/staff/requests/{typed}/notes",
        data={"note-csrf_token": token, "note-text": "Called back, prefers mornings."},
    )
    assert (added.status_code, added.headers["Location"]) == (
        302,
        f"/staff/requests/{reference}#timeline",
    )
    assert "Called back, prefers mornings." in get(client, f"/staff/requests/{reference}")[1]


def test_the_specialists_own_records_are_not_refusals(app: Flask, clinic: Assigned) -> None:
    client = signed_in(app, clinic.weber.email)
    own = clinic.own
    assert get(client, f"/staff/requests/{own['reference']}")[0] == 200
    assert get(client, f"/staff/requests/{own['reference']}/documents/{own['document']}")[0] == 200
    assert refusals(app) == []


@pytest.mark.parametrize("role", ["coordinator", "weber"])
def test_ids_that_do_not_exist_are_recorded_too(app: Flask, clinic: Assigned, role: str) -> None:
    """A run of "not found" from one account is what probing for records looks like."""
    client = signed_in(app, getattr(clinic, role).email)
    own = clinic.own
    missing_document = f"/staff/requests/{own['reference']}/documents/999999"
    assert get(client, "/staff/requests/SC-NONE-XIST")[0] == 404
    assert get(client, missing_document)[0] == 404

    nothing, document = refusals(app)
    assert nothing.actor_id == getattr(clinic, role).id
    assert (nothing.target_id, nothing.details["reason"]) == ("SC-NONE-XIST", "no_such_request")
    if role == "weber":
        assert (document.target_id, document.details["reason"]) == (
            own["reference"],
            "no_such_document",
        )
        assert document.details["document_id"] == 999999
        assert document.details["path"] == missing_document
    else:
        assert document.details["reason"] == "no_such_document"


def test_what_was_asked_for_is_kept_short_and_printable(app: Flask, clinic: Assigned) -> None:
    """The reference and path come from the URL: kept whatever they hold, without letting a
    bidi override turn the admin's page around, and within the columns' sizes."""
    client = signed_in(app, clinic.coordinator.email)
    assert get(client, "/staff/requests/" + "A" * 5000)[0] == 404
    assert get(client, "/staff/requests/SC-\u202eKCAH")[0] == 404

    long, bidi = refusals(app)
    assert long.target_id == "A" * 40
    assert len(long.details["path"]) <= 300
    assert "\u202e" not in bidi.target_id and "\u202e" not in bidi.details["path"]
    assert bidi.target_id == "SC-\\u202eKCAH"


def test_the_audit_page_lists_only_the_refusals_when_asked(app: Flask, clinic: Assigned) -> None:
    specialist = signed_in(app, clinic.weber.email)
    assert get(specialist, f"/staff/requests/{clinic.own['reference']}")[0] == 200
    assert get(specialist, f"/staff/requests/{clinic.other['reference']}")[0] == 404
    admin = signed_in(app, clinic.admin.email)

    everything = admin.get("/staff/admin/audit").get_data(as_text=True)
    assert {"request_viewed", "access_refused"} <= set(shown_actions(everything))
    # A plain checkbox in the filter form: it works without JavaScript.
    form = re.search(r"<form method=\"get\".*?</form>", everything, re.S)
    assert form and 'type="checkbox" id="refused" name="refused" value="1"' in form.group(0)
    assert 'for="refused"' in form.group(0)

    response = admin.get("/staff/admin/audit", query_string={"refused": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    actions = shown_actions(page)
    assert actions == ["access_refused"]
    assert "weber@example.com" in page and STAFF_IP in page
    assert 'name="refused" value="1" checked' in page

    # Combined with the other filters, e.g. who asked.
    by_admin = admin.get(
        "/staff/admin/audit", query_string={"refused": "1", "actor": "admin@example.com"}
    ).get_data(as_text=True)
    assert shown_actions(by_admin) == []


def test_the_refusal_filter_is_kept_from_page_to_page(app: Flask, clinic: Assigned) -> None:
    coordinator = signed_in(app, clinic.coordinator.email)
    for n in range(51):  # one more than a page
        assert get(coordinator, f"/staff/requests/SC-NONE-{n:04d}")[0] == 404
    admin = signed_in(app, clinic.admin.email)
    with app.app_context():
        today = clinic_today().isoformat()
    page = admin.get(
        "/staff/admin/audit", query_string={"refused": "1", "from": today, "to": today}
    ).get_data(as_text=True)
    assert "51 entries" in page
    (next_link,) = re.findall(r'href="([^"]*page=2[^"]*)"', page)
    next_page = admin.get(html.unescape(next_link)).get_data(as_text=True)
    assert shown_actions(next_page) == ["access_refused"]
    assert 'name="refused" value="1" checked' in next_page
    assert f'id="from" name="from" value="{today}"' in next_page


def test_the_audit_filters_say_what_they_could_not_use(app: Flask, clinic: Assigned) -> None:
    """A date that cannot be read is said, not dropped without a word; "_" and "%" in the
    address are themselves; a page past the end shows the last page as such."""
    coordinator = signed_in(app, clinic.coordinator.email)
    assert get(coordinator, f"/staff/requests/{clinic.own['reference']}")[0] == 200
    admin = signed_in(app, clinic.admin.email)

    bad = admin.get("/staff/admin/audit", query_string={"from": "2026-13-45"})
    assert "These dates could not be read, so the list is not filtered by them: From." in (
        bad.get_data(as_text=True)
    )
    swapped = admin.get(
        "/staff/admin/audit", query_string={"from": "2026-12-05", "to": "2026-12-01"}
    )
    assert "The From date is after the To date" in swapped.get_data(as_text=True)

    def actors(who: str) -> set[str]:
        page = admin.get("/staff/admin/audit", query_string={"actor": who}).get_data(as_text=True)
        return set(re.findall(r"<tr><td[^>]*>[^<]*</td><td[^>]*>([^<]+)</td>", page))

    assert actors("coord") == {clinic.coordinator.email}
    assert actors("%") == set() and actors("c_ord") == set()  # no wildcards

    for n in range(51):  # more than a page
        assert get(coordinator, f"/staff/requests/SC-NONE-{n:04d}")[0] == 404
    last = admin.get("/staff/admin/audit", query_string={"page": "999"}).get_data(as_text=True)
    assert "2 / 2" in last and "page=998" not in last and "page=1" in last
