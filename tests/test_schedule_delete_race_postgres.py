"""Two tabs deleting the same weekly hours or exception at the same moment, on PostgreSQL.

Each read the row while it was there; the first deletes it and commits, the second then
deleted a row no longer there: its DELETE matched nothing, and it said "deleted" and audited
the deletion a second time. The second now waits for the first (the row locked FOR UPDATE,
read again), finds it gone and says so, as a delete sent after the first does. The
interleaving is made exact: the other tab's delete is committed, from its own session, just
after this tab read the row.
PostgreSQL only: on SQLite, BEGIN IMMEDIATE serialises the whole of each change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.scheduling import admin_services as admin
from booking.scheduling.models import Location, ScheduleException, WorkingHours
from booking.staff.models import StaffUser
from booking.timeutil import now_utc
from tests.factories import make_hours
from tests.support import AuthActions, Clinic, csrf_token, text

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _other_tab_deletes(
    app: Flask, monkeypatch: pytest.MonkeyPatch, finder: str, delete: Any, model: type
) -> list[bool]:
    """Make the other tab delete the row just after this tab's view read it."""
    read = getattr(admin, finder)
    deleted: list[bool] = []

    def other_tab_deletes_it_meanwhile(row_id: int) -> Any:
        found = read(row_id)
        if not deleted:  # once: from its own session, committed after this tab's read
            deleted.append(True)
            with app.app_context():
                delete(db.session.get(model, row_id), None)
        return found

    monkeypatch.setattr(admin, finder, other_tab_deletes_it_meanwhile)
    return deleted


@pytest.mark.parametrize("kind", ["hours", "time off"])
def test_the_second_of_two_deletes_at_once_says_it_was_already_deleted(
    app: Flask, auth: AuthActions, clinic: Clinic, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    with app.app_context():
        weber = db.session.get(StaffUser, clinic.weber.id)
        if kind == "hours":
            make_hours(weber, db.session.get(Location, clinic.location), weekdays=[0])
            row_id = db.session.scalar(select(func.max(WorkingHours.id)))
        else:
            start = now_utc() + timedelta(days=3)
            row_id = admin.add_time_off(
                weber, start, start + timedelta(hours=2), None, actor=None
            ).exception.id
    if kind == "hours":
        action, url = "working_hours_deleted", f"hours/{row_id}/delete"
        finder, delete, model = "find_working_hours", admin.delete_working_hours, WorkingHours
        message = "These working hours were already deleted"
    else:
        action, url = "schedule_exception_deleted", f"exceptions/{row_id}/delete"
        finder, model = "find_schedule_exception", ScheduleException
        delete = admin.delete_schedule_exception
        message = "This time off was already deleted"
    auth.login("admin")
    client = auth.client
    page = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    token = csrf_token(client, page)
    deleted = _other_tab_deletes(app, monkeypatch, finder, delete, model)
    response = client.post(f"{page}/{url}", data={"csrf_token": token, "confirmed": "1"})
    assert deleted
    assert response.status_code == 302
    assert response.headers["Location"] == page
    shown = text(client.get(page).get_data(as_text=True))
    assert f"{message}, perhaps in another tab or by another administrator" in shown
    with app.app_context():
        rows = db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )
    assert rows == 1
