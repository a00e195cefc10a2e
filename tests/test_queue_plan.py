"""Every tab of the triage queue reads its page from an index in the queue's order.

Latency is not asserted (a wall clock fails on a busy machine); the query plan is. A plan that
sorts reads every request of the tab before it can return the first 25, so its time grows with
the clinic's history; a plan that walks an index in queue order stops after the page. The
statements are the ones the queue page really sends, captured from a request, and explained
on a database holding a few thousand requests: on PostgreSQL with statistics (autovacuum keeps
them), on SQLite without (the app never runs ANALYZE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.extensions import db
from booking.requests.models import (
    OPEN_STATUSES,
    TRIAGE_PRIORITY,
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestStatus,
    TriageLevel,
)
from booking.timeutil import now_utc
from tests.factories import make_request, make_staff
from tests.support import AuthActions, sql_statements

ROWS = 3000
# Within a level, the call-back clock (``call_back_since_column``): the raise, else the arrival.
CLOCK = "coalesce(consultation_request.triage_raised_at, consultation_request.created_at)"
QUEUE_ORDER = f"ORDER BY consultation_request.priority DESC, {CLOCK}, consultation_request.id"
# The "requested" tab's list of unreached urgent requests of other statuses
# (``queries.unreached_elsewhere``): checked on its own below.
UNREACHED = "consultation_request.acknowledged_at IS NULL"
QUEUE_INDEXES = ("ix_consultation_request_queue", "ix_consultation_request_queue_all")
TABS = [
    "/staff/?status=all",
    *(f"/staff/?status={status.value}" for status in RequestStatus),
    "/staff/?status=all&triage=urgent",
    "/staff/?status=all&triage=emergency",
    "/staff/?status=all&from=2026-11-01&to=2026-11-30",
    "/staff/?status=completed&from=2026-11-01&to=2026-11-30",
    "/staff/?status=all&page=3",
]


def _row(column: Any, value: int) -> dict[str, Any]:
    return dict(db.session.execute(sa.select(column.table).where(column == value)).mappings().one())


def _copy(row: dict[str, Any], changes: list[dict[str, Any]], table: sa.Table) -> None:
    db.session.execute(sa.insert(table), [{**row, **change} for change in changes])


def _level(n: int) -> TriageLevel:
    if n % 20 == 7:
        return TriageLevel.EMERGENCY
    return TriageLevel.URGENT if n % 10 == 3 else TriageLevel.ROUTINE


def _raised_at(n: int, created_at: datetime) -> datetime | None:
    """Some of the pressing requests were raised by staff, some time after they arrived."""
    return created_at + timedelta(hours=n // 2) if n % 10 in (3, 7) and n % 3 == 0 else None


@pytest.fixture
def signed_in(app: Flask, client: FlaskClient) -> FlaskClient:
    """A coordinator signed in, and ``ROWS`` requests in every status and triage level: one
    submitted through the service, then copied in bulk (submitting thousands is too slow)."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        first = make_request()
        request_row = _row(ConsultationRequest.__table__.c.id, first.id)
        patient_row = _row(Patient.__table__.c.id, first.patient_id)
        history_row = _row(MedicalHistory.__table__.c.request_id, first.id)
        statuses, start = list(RequestStatus), now_utc()
        ids = range(first.id + 1, first.id + ROWS)
        _copy(patient_row, [{"id": n} for n in ids], Patient.__table__)
        _copy(
            request_row,
            [
                {
                    "id": n,
                    "patient_id": n,
                    "reference": f"SC-{n:09d}",
                    "submission_token": f"plan-{n}",
                    "status": statuses[n % len(statuses)],
                    "triage_level": (level := _level(n)),
                    "priority": TRIAGE_PRIORITY[level],
                    "created_at": (created := start - timedelta(hours=n)),
                    "triage_raised_at": _raised_at(n, created),
                }
                for n in ids
            ],
            ConsultationRequest.__table__,
        )
        _copy(history_row, [{"request_id": n} for n in ids], MedicalHistory.__table__)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            for table in ("patient", "consultation_request", "medical_history"):
                db.session.execute(sa.text(f"ANALYZE {table}"))
            db.session.commit()
    AuthActions(client).attempt("coord@example.com")
    return client


def _sqlite_plan(conn: sa.Connection, statement: str, parameters: Any) -> list[str]:
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return [row[3] for row in rows]


def _pg_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _pg_nodes(child)


def _pg_plan(conn: sa.Connection, statement: str, parameters: Any) -> list[dict[str, Any]]:
    rows = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
    document = rows.scalar_one()
    if isinstance(document, str):
        document = json.loads(document)
    return list(_pg_nodes(document[0]["Plan"]))


@pytest.mark.parametrize("path", TABS)
def test_every_tab_reads_its_page_in_index_order(
    app: Flask, signed_in: FlaskClient, path: str
) -> None:
    with sql_statements(app) as seen:
        assert signed_in.get(path).status_code == 200
    captured = [
        (s, p)
        for s, p in zip(seen, seen.parameters, strict=True)
        if QUEUE_ORDER in s and UNREACHED not in s
    ]
    assert len(captured) == 1, "the queue page sends one page query"
    statement, parameters = captured[0]
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = _sqlite_plan(conn, statement, parameters)
            assert not [step for step in plan if "TEMP B-TREE" in step], plan
            driving = next(step for step in plan if " consultation_request " in f"{step} ")
            assert any(index in driving for index in QUEUE_INDEXES), driving
            if "from=" in path:
                # The first date bounds the index range read (on the clock, which it
                # implies), rather than filter every entry before it.
                assert "<expr>>" in driving, driving
            return
        nodes = _pg_plan(conn, statement, parameters)
        kinds = [node["Node Type"] for node in nodes]
        reads = [n for n in nodes if n.get("Index Name", "").startswith("ix_consultation_request")]
        scanned = [n for n in nodes if n.get("Relation Name") == "consultation_request"]
        assert reads and not [n for n in scanned if n["Node Type"] == "Seq Scan"], nodes
        sorts = [kind for kind in kinds if "Sort" in kind]
        if "from=" in path and sorts:
            # A status's tab between two dates: PostgreSQL 15 cannot read a status's index
            # entries in order one priority at a time (as SQLite does), so it may read the
            # requests received between the dates (an index on the arrival bounds them on
            # both sides) and sort those: work that grows with the dates asked for, not with
            # the clinic's history (the tab's count reads them too).
            assert any(
                "(created_at >= " in n.get("Index Cond", "")
                and "(created_at < " in n.get("Index Cond", "")
                for n in reads
            ), reads
            return
        assert not sorts, kinds
        driving = reads[0]
        index_used, condition = driving["Index Name"], driving.get("Index Cond", "")
        assert any(index in index_used for index in QUEUE_INDEXES), driving
        if "from=" in path:
            # The first date bounds the index range read (on the clock, which it implies),
            # rather than filter every entry before it.
            assert "COALESCE(triage_raised_at, created_at) >=" in condition, driving


def test_the_unreached_urgent_lists_read_their_status_in_index_order(
    app: Flask, signed_in: FlaskClient
) -> None:
    """The default tab's lists of unreached urgent requests in the other open statuses
    (``queries.unreached_elsewhere``) each read the queue index of their status in order, as
    that status's tab does: never every urgent request ever received."""
    # As in a clinic: the patients of the closed urgent requests were reached long ago.
    with app.app_context():
        db.session.execute(
            sa.update(ConsultationRequest)
            .where(ConsultationRequest.status.not_in(sorted(OPEN_STATUSES)))
            .values(acknowledged_at=ConsultationRequest.created_at)
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE consultation_request"))
            db.session.commit()
    with sql_statements(app) as seen:
        assert signed_in.get("/staff/").status_code == 200
    captured = [
        (s, p)
        for s, p in zip(seen, seen.parameters, strict=True)
        if QUEUE_ORDER in s and UNREACHED in s
    ]
    assert len(captured) == 2, "one query for each status other than requested that is open"
    for statement, parameters in captured:
        with app.app_context(), db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                plan = _sqlite_plan(conn, statement, parameters)
                driving = next(step for step in plan if " consultation_request " in f"{step} ")
                index_used, condition = driving, driving
            else:
                # A sort of the rows found may follow: those of one status still unreached.
                # (directly, or as the bitmap a heap scan reads).
                nodes = _pg_plan(conn, statement, parameters)
                read = [n for n in nodes if n.get("Relation Name") == "consultation_request"]
                assert not [n for n in read if n["Node Type"] == "Seq Scan"], read
                driving = next(
                    n
                    for n in nodes
                    if n.get("Index Name", "").startswith("ix_consultation_request")
                )
                index_used, condition = driving.get("Index Name", ""), driving.get("Index Cond", "")
        assert "ix_consultation_request_queue " in f"{index_used} ", driving
        assert "status" in condition, driving


def test_the_unread_messages_from_patients_are_read_from_their_own_index(
    app: Flask, signed_in: FlaskClient
) -> None:
    """The queue marks, counts and lists requests with a message from the patient nobody
    at the clinic has read (``messages.services.unread_by_staff``) on every load: from the
    partial index of those rows, never by scanning every message the clinic ever had."""
    from booking.messages.models import Message
    from booking.messages.services import send_patient_message

    with app.app_context():
        first = db.session.scalars(sa.select(ConsultationRequest).order_by("id")).first()
        send_patient_message(first, "My left foot feels numb since yesterday.")
        message_row = _row(Message.__table__.c.request_id, first.id)
        _copy(
            message_row,
            [
                {"id": message_row["id"] + n, "request_id": first.id + n, "read_at": now_utc()}
                for n in range(1, ROWS)
            ],
            Message.__table__,
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE message"))
            db.session.commit()
    with sql_statements(app) as seen:
        assert signed_in.get("/staff/").status_code == 200
    captured = [(s, p) for s, p in zip(seen, seen.parameters, strict=True) if "FROM message" in s]
    assert captured, "the queue reads the unread messages"
    for statement, parameters in captured:
        with app.app_context(), db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                plan = _sqlite_plan(conn, statement, parameters)
                reads = [step for step in plan if " message" in f"{step} "]
                assert reads and all("ix_message_unread_from_patient" in r for r in reads), plan
            else:
                nodes = _pg_plan(conn, statement, parameters)
                read = [n for n in nodes if n.get("Relation Name") == "message"]
                assert read and not [n for n in read if n["Node Type"] == "Seq Scan"], read
