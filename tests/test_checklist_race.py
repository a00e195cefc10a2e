"""Two admins adding an item to the clinic's checklist at the same moment.

Each admin's check (``asks.add_item``) reads the checklist, finds the name free and writes the
item. Named alike in the clinic's language, the second hit the unique code made from the name:
a server error (500). Named alike only in Spanish, both were written, and patients reading
Spanish were asked twice for what reads as one thing. The database now holds each item's name
unique in each language, case and spacing aside (``ChecklistItemName``), and the second admin
reads the check's own refusal at the name; an item whose only clash is its code gets the next
free one.

The other admin's item is committed just after this admin's check read the checklist: on
PostgreSQL from the other admin's own session, at that moment; on SQLite, where one writer
runs at a time (BEGIN IMMEDIATE) so nothing can come between, it is committed first and this
admin's first read made to miss it.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.requests import asks
from tests.factories import staff_user
from tests.support import AuthActions, Staff, field_error

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TAKEN = "Error: The checklist already has an item with this name."


def _other_admin_adds_after_the_read(
    app: Flask, monkeypatch: pytest.MonkeyPatch, staff: Staff, *theirs: dict[str, str]
) -> None:
    """The other admin adds an item labelled ``theirs[0]`` just after this admin's first read
    (the next, ``theirs[1]``, just after its second, and so on)."""

    def other_admin_adds(labels: dict[str, str]) -> None:
        with app.app_context():
            asks.add_item(labels, staff_user(staff.admin.email))

    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
        if not postgresql:
            for labels in theirs:
                other_admin_adds(labels)
            other_codes = list(
                db.session.scalars(select(asks.ChecklistItem.code).order_by(asks.ChecklistItem.id))
            )
    read = asks._stored_items
    reads: list[bool] = []
    others_adding: list[bool] = []

    def read_just_before_the_other_admins_item() -> list[asks.ChecklistItem]:
        items = read()
        if others_adding:  # the other admin's own read
            return items
        reads.append(True)
        if len(reads) <= len(theirs):
            if postgresql:
                others_adding.append(True)
                other_admin_adds(theirs[len(reads) - 1])
                others_adding.clear()
            else:
                not_yet = other_codes[len(reads) - 1 :]
                items = [item for item in items if item.code not in not_yet]
        return items

    monkeypatch.setattr(asks, "_stored_items", read_just_before_the_other_admins_item)


def _add(auth: AuthActions, label: str, label_es: str = "") -> tuple[int, str]:
    """This admin adds an item on the checklist page: the answer's status and page."""
    token = TOKEN.search(auth.client.get("/staff/admin/checklist").get_data(as_text=True))
    assert token
    response = auth.client.post(
        "/staff/admin/checklist",
        data={"csrf_token": token.group(1), "label": label, "label_es": label_es},
    )
    return response.status_code, response.get_data(as_text=True)


def _labels(app: Flask) -> list[dict[str, str]]:
    with app.app_context():
        query = select(asks.ChecklistItem.labels).order_by(asks.ChecklistItem.id)
        return list(db.session.scalars(query))


@pytest.mark.parametrize(
    ("theirs", "mine", "refused_at"),
    [
        # The clinic's name in other capitals and spacing (the same code would be made).
        ({"en": "Bone density scan"}, ("bone  DENSITY scan", ""), "label"),
        # A new English name, but the Spanish one is the other item's (another code).
        (
            {"en": "Whole-spine X-ray", "es": "Radiografía de columna"},
            ("Spine X-ray", "radiografía de columna"),
            "label_es",
        ),
    ],
)
def test_an_item_named_like_one_added_meanwhile_is_refused_at_that_name(
    app: Flask,
    auth: AuthActions,
    staff: Staff,
    monkeypatch: pytest.MonkeyPatch,
    theirs: dict[str, str],
    mine: tuple[str, str],
    refused_at: str,
) -> None:
    _other_admin_adds_after_the_read(app, monkeypatch, staff, theirs)
    auth.login("admin")
    status, page = _add(auth, *mine)
    assert status == 422
    assert field_error(page, refused_at) == TAKEN
    assert _labels(app) == [theirs]


def test_an_item_whose_code_was_taken_meanwhile_gets_the_next_code(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two names ("MRI-report" and "MRI report") made into one code: the second item is
    added, under the next code."""
    _other_admin_adds_after_the_read(app, monkeypatch, staff, {"en": "MRI-report"})
    auth.login("admin")
    status, _page = _add(auth, "MRI report")
    assert status == 302
    with app.app_context():
        items = db.session.scalars(select(asks.ChecklistItem).order_by(asks.ChecklistItem.id))
        assert [(item.code, item.labels) for item in items] == [
            ("mri_report", {"en": "MRI-report"}),
            ("mri_report_2", {"en": "MRI report"}),
        ]


def test_an_item_refused_three_times_meanwhile_is_refused_with_nothing_saved(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each time this admin's item is written, another admin's has just taken its code (three
    names made into one code): after the third refusal, the page said "Internal Server Error"
    (500). It says that nothing was saved, to try again; the others' items stand."""
    theirs = [{"en": "MRI-report"}, {"en": "MRI_report"}, {"en": "MRI.report"}]
    _other_admin_adds_after_the_read(app, monkeypatch, staff, *theirs)
    auth.login("admin")
    status, page = _add(auth, "MRI report", "Informe de resonancia")
    assert status == 422
    assert field_error(page, "label") == (
        "Error: Another admin changed the checklist at the same moment: nothing was saved. "
        "Please try again."
    )
    assert _labels(app) == theirs
    with app.app_context():
        added = select(AuditEvent.target_id).where(AuditEvent.action == "checklist_item_added")
        assert sorted(db.session.scalars(added)) == ["mri_report", "mri_report_2", "mri_report_3"]
