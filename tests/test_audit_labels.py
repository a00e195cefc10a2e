"""The admin's audit trail reads in plain words: every action the code base records has a
label (``booking.audit.labels``), shown with its code, which the DPO's SQL uses; and every
type of target it records has a reading for the Record cell (``booking.admin.trail``)."""

from __future__ import annotations

import ast
import functools
import html
import re
from pathlib import Path

from flask import Flask
from sqlalchemy import select, update

from booking.admin.trail import TARGET_READINGS, as_stored, record_cell
from booking.audit.labels import ACTION_LABELS, action_label
from booking.audit.models import AuditEvent
from booking.audit.services import record
from booking.extensions import db
from booking.scheduling.services import Names
from tests.support import AuthActions, Clinic, shown_actions

BOOKING = Path(__file__).resolve().parent.parent / "booking"
# The functions that write an audit row, and which of their arguments is the action.
WRITERS = {"record": 0, "audited_when_done": 1, "record_view": 2}


@functools.cache
def _modules() -> tuple[tuple[Path, ast.Module], ...]:
    """Every module of the code base, parsed once for the tests of this file (each reads
    them all twice: about a second of parsing a time). Nothing here changes a tree."""
    return tuple(
        (path, ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(BOOKING.rglob("*.py"))
    )


def _constants() -> dict[str, str]:
    """Every module-level ``NAME = "text"`` in the code base, by name: actions kept as
    constants (``ACCESS_REFUSED``) are recorded by name."""
    found: dict[str, str] = {}
    for _path, module in _modules():
        for node in module.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value.value
    return found


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    arguments = function.args
    return {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}


def recorded_actions() -> set[str]:
    """Every action code an audit row is written with: the first argument of ``record`` (the
    action of ``audited_when_done`` and ``record_view``), and every ``action=`` handed on to
    them (``record_change``, ``_finish``, ``_close``) or to ``AuditEvent``. A name must be a
    constant or a parameter handed on by its function, so no code goes unseen."""
    return _written("action", WRITERS)


def recorded_target_types() -> set[str]:
    """Every target type an audit row is written with: every ``target_type=`` given to
    ``record``, ``record_refused_access`` or ``AuditEvent``, read as ``recorded_actions``
    reads the actions."""
    return _written("target_type", {})


def _written(keyword: str, writers: dict[str, int]) -> set[str]:
    """The texts an audit row is written with as ``keyword``: given by name, or at its
    position to one of ``writers``."""
    constants = _constants()
    codes: set[str] = set()
    unseen: list[str] = []

    def collect(node: ast.expr, where: str, parameters: set[str]) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            codes.add(node.value)
        elif isinstance(node, ast.IfExp):
            collect(node.body, where, parameters)
            collect(node.orelse, where, parameters)
        elif isinstance(node, ast.Name) and node.id in constants:
            codes.add(constants[node.id])
        elif not (isinstance(node, ast.Name) and node.id in parameters):
            unseen.append(f"{where}: {ast.unparse(node)}")

    def visit(node: ast.AST, path: Path, parameters: set[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            parameters = _parameters(node)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            where = f"{path.relative_to(BOOKING.parent)}:{node.lineno}"
            position = writers.get(name or "")
            if position is not None and len(node.args) > position:
                collect(node.args[position], where, parameters)
            # A class's ``action=`` is a filter (``AuditFilters``), except the row itself.
            hands_on = name == "AuditEvent" or not (name or "A")[0].isupper()
            for given in node.keywords:
                if given.arg == keyword and hands_on:
                    collect(given.value, where, parameters)
        for child in ast.iter_child_nodes(node):
            visit(child, path, parameters)

    for path, module in _modules():
        visit(module, path, set())
    assert not unseen, f"{keyword}s the test cannot read (use a literal or a constant): {unseen}"
    return codes


def test_the_collector_finds_the_actions_written_in_each_way() -> None:
    codes = recorded_actions()
    assert {
        "login",  # record("login", ...)
        "staff_created",  # record(\n "staff_created", ...)
        "staff_deactivated",  # "staff_activated" if active else "staff_deactivated"
        "access_refused",  # the constant ACCESS_REFUSED
        "request_viewed",  # record_view(..., REQUEST_VIEWED)
        "document_downloaded",  # record_view(..., "document_downloaded" if ... else ...)
        "requests_export_ended",  # audited_when_done(..., "requests_export_ended", ...)
        "patient_rescheduled",  # record_change(..., action="patient_rescheduled")
        "audit_addresses_reduced",
    } <= codes
    assert len(codes) > 60


def test_every_recorded_action_has_a_label() -> None:
    missing = sorted(recorded_actions() - set(ACTION_LABELS))
    assert not missing, f"give these actions a label in booking/audit/labels.py: {missing}"


def test_the_collector_finds_the_target_types_written_in_each_way() -> None:
    types = recorded_target_types()
    assert {
        "staff",  # record("login", target_type="staff", ...)
        "draft",  # "request" if isinstance(row, Document) else "draft"
        "agenda",  # record_refused_access(..., target_type="agenda", ...)
        "patient",
    } <= types
    assert len(types) > 15


def test_every_recorded_target_type_has_a_reading() -> None:
    missing = sorted(recorded_target_types() - set(TARGET_READINGS))
    assert not missing, f"say how these targets read in booking/admin/trail.py: {missing}"


def test_every_target_reads_in_plain_words_even_once_deleted(app: Flask) -> None:
    """With nothing looked up (the record deleted since), a row's Record cell still says
    what kind of thing it was about, in words, with its id where it has one."""
    with app.test_request_context():
        for kind in TARGET_READINGS:
            row = AuditEvent(target_type=kind, target_id="424242", details={})
            text = record_cell(row, Names(), {})
            if kind == "request":  # its reference, linked to its record
                assert text == '<a href="/staff/requests/424242" class="font-monospace">424242</a>'
                continue
            assert text and text != as_stored(kind, "424242"), kind
            assert "_" not in text and text[0].isupper(), (kind, text)
        # A type no longer written (an older row's): its type and id, as stored.
        row = AuditEvent(target_type="retired_thing", target_id="7", details={})
        assert record_cell(row, Names(), {}) == "retired thing 7"


def test_labels_are_plain_words(app: Flask) -> None:
    with app.test_request_context():
        for code, label in ACTION_LABELS.items():
            text = str(label)
            assert text and "_" not in text and text[0].isupper(), (code, text)
        assert len({str(label) for label in ACTION_LABELS.values()}) == len(ACTION_LABELS)
        assert action_label("request_viewed") == "Record opened"
        assert action_label("no_such_action") == "no_such_action"  # an older row's code


def test_the_page_shows_labels_with_their_codes(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        record("two_factor_enabled", target_type="staff", target_id=1)
        record("retired_action")  # a code no longer written: shown as it is
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    rows = re.findall(r'<td data-label="Action">([^<]+)<br>', page)
    assert "Two-factor sign-in switched on" in rows
    # A code with no label is shown once, as the code it is, not as its own label too.
    assert "retired_action" not in rows
    cells = re.findall(
        r'<td data-label="Action">(?:[^<]*<br>)?<code[^>]*>retired_action</code></td>', page
    )
    assert cells == [
        '<td data-label="Action"><code class="small text-body-secondary">retired_action</code></td>'
    ]
    assert "two_factor_enabled" in shown_actions(page)
    assert "retired_action" in shown_actions(page)
    menu = re.search(r'<select[^>]*id="action".*?</select>', page, re.S)
    assert menu
    options = dict(re.findall(r'<option value="([a-z_]+)"[^>]*>([^<]+)</option>', menu.group(0)))
    assert html.unescape(options["two_factor_enabled"]) == (
        "Two-factor sign-in switched on (two_factor_enabled)"
    )
    assert options["retired_action"] == "retired_action"
    # Filtering by a label's code still finds its rows.
    chosen = auth.client.get("/staff/admin/audit", query_string={"action": "two_factor_enabled"})
    assert shown_actions(chosen.get_data(as_text=True)) == ["two_factor_enabled"]


def test_a_password_reset_reads_as_written_to_the_outbox_not_as_sent(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """``password_reset_sent`` is recorded when the reset email is written to the outbox:
    the worker sends it later, or drops it (its link over), or fails. The trail says what
    is true when it is written, not that the link went."""
    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.staff.services import send_password_reset

    with app.app_context():
        email_id = send_password_reset(clinic.coordinator.email)
        email = db.session.get(OutboxEmail, email_id)
        assert email is not None and email.status == OutboxStatus.PENDING  # nothing sent yet
    auth.login("admin")
    page = auth.client.get(
        "/staff/admin/audit", query_string={"action": "password_reset_sent"}
    ).get_data(as_text=True)
    assert shown_actions(page) == ["password_reset_sent"]
    rows = re.findall(r'<td data-label="Action">([^<]+)<br>', page)
    assert rows == ["Password reset link written to the outbox"]
    assert "Password reset link sent" not in page


def test_a_new_link_and_emails_sent_again_read_as_written_to_the_outbox(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """``manage_link_reissued`` and ``patient_emails_resent`` are recorded as their emails
    are written to the outbox (the worker sends them later, or fails): the trail does not
    say they were sent."""
    from booking.dashboard import services as workflow
    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.requests.models import ConsultationRequest
    from booking.staff.models import StaffUser
    from tests.factories import make_request

    with app.app_context():
        consultation = make_request()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.FAILED))
        db.session.commit()
        workflow.resend_patient_emails(consultation, coordinator, consultation.patient.email)
        consultation = db.session.get(ConsultationRequest, consultation.id)
        workflow.send_new_link(consultation, coordinator)
        assert all(  # nothing written by the two has gone yet
            email.status == OutboxStatus.PENDING
            for email in db.session.scalars(select(OutboxEmail))
            if email.status != OutboxStatus.FAILED
        )
    auth.login("admin")
    labels = {}
    for action in ("manage_link_reissued", "patient_emails_resent"):
        page = auth.client.get("/staff/admin/audit", query_string={"action": action}).get_data(
            as_text=True
        )
        [labels[action]] = re.findall(r'<td data-label="Action">([^<]+)<br>', page)
    assert {action: html.unescape(label) for action, label in labels.items()} == {
        "manage_link_reissued": "Patient's private links ended and reissued",
        "patient_emails_resent": "Failed emails to patient written to the outbox again",
    }
