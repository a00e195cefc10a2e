"""The audit trail's details read as the other pages do: specialists, locations and
appointment types by name (looked up once per kind for the page), times in clinic time."""

from __future__ import annotations

import html
import re

from flask import Flask

from booking.audit.services import record
from booking.extensions import db
from booking.templating import NOTHING
from tests.factories import make_appointment_type, make_location
from tests.support import AuthActions, Clinic, sql_statements

GONE = 424242  # an id no record has (one deleted since the row was written)


def _details(page: str) -> list[str]:
    return [html.unescape(line) for line in re.findall(r"<li>([^<]*)</li>", page)]


def test_ids_are_named_and_times_are_clinic_times(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        record(
            "request_rescheduled",
            target_type="request",
            target_id="SC-7K4M-Q2XD",
            details={
                "specialist": {"before": clinic.okafor.id, "after": clinic.weber.id},
                "location": {"before": None, "after": clinic.location},
                "appointment_type": {"before": clinic.type, "after": GONE},
                "starts_at": {"before": None, "after": "2026-12-09T09:00:00+00:00"},
            },
        )
        record(
            "working_hours_added",
            target_type="working_hours",
            target_id=1,
            details={
                "specialist_id": {"before": None, "after": GONE},
                "location_id": {"before": None, "after": clinic.location},
                "start_time": {"before": None, "after": "09:00:00"},
            },
        )
        record("slot_offered", details={"starts_at": "2026-07-01T07:30:00+00:00", "wave": 1})
        # A row about an account or a place: its Record cell names it, with its id.
        record("staff_deactivated", target_type="staff", target_id=clinic.okafor.id)
        record("location_updated", target_type="location", target_id=GONE)
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    assert f"<td>staff Dr. Okafor ({clinic.okafor.id})</td>" in page
    assert f"<td>location {GONE}</td>" in page  # no longer there: the id, as stored
    lines = _details(page)
    assert "specialist: Dr. Okafor → Dr. Weber" in lines
    assert f"location: {NOTHING} → Main clinic" in lines
    assert f"appointment type: New-patient spine evaluation → {GONE}" in lines
    assert f"starts at: {NOTHING} → 9 Dec 2026, 10:00" in lines  # Berlin, winter
    assert f"specialist id: {NOTHING} → {GONE}" in lines  # no longer there: the id, as stored
    assert f"location id: {NOTHING} → Main clinic" in lines
    assert f"start time: {NOTHING} → 09:00:00" in lines  # a clinic wall-clock time, no instant
    assert "starts at: 1 Jul 2026, 09:30" in lines  # Berlin, summer
    assert "wave: 1" in lines
    assert "+00:00" not in page


def test_names_are_looked_up_once_per_kind_for_the_page(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        locations = [clinic.location] + [
            make_location(f"Site {n}", "Street 1").id for n in range(4)
        ]
        types = [clinic.type] + [make_appointment_type(f"Type {n}").id for n in range(4)]
        specialists = [clinic.weber.id, clinic.okafor.id, GONE]

    def write(count: int) -> None:
        with app.app_context():
            for n in range(count):
                record(
                    "request_confirmed",
                    details={
                        "specialist": {"before": None, "after": specialists[n % 3]},
                        "location": {"before": None, "after": locations[n % 5]},
                        "appointment_type": {"before": None, "after": types[n % 5]},
                    },
                )
            db.session.commit()

    def selects() -> int:
        with sql_statements(app, selects_only=True) as statements:
            page = auth.client.get(
                "/staff/admin/audit", query_string={"action": "request_confirmed"}
            )
        assert page.status_code == 200
        return len(statements)

    auth.login("admin")
    write(3)
    few = selects()
    write(47)
    many = selects()
    page = auth.client.get("/staff/admin/audit", query_string={"action": "request_confirmed"})
    lines = _details(page.get_data(as_text=True))
    assert len(lines) == 150  # 50 rows of 3 lines: a full page
    assert f"location: {NOTHING} → Site 3" in lines
    assert f"appointment type: {NOTHING} → Type 3" in lines
    assert many == few, (few, many)
