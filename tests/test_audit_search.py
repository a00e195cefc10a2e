"""The admin's search of the audit trail by request reference: through the rows' links to
the references they name (``audit_reference``), an index lookup, never a read of every row's
details."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import delete, select, text, update

from booking.audit.models import AuditEvent, AuditReference, AuditTrailIsAppendOnly
from booking.audit.queries import PER_PAGE, AuditFilters, audit_events, audit_page
from booking.audit.services import record
from booking.extensions import db
from tests.support import AuthActions, Clinic, shown_actions

LUCIA, OTHER = "SC-7K4M-Q2XD", "SC-3FHT-9WKC"


def _write(app: Flask) -> dict[str, int]:
    """Rows naming LUCIA in each way a row can, and rows that do not name her."""
    with app.app_context():
        rows = {
            "viewed": record("request_viewed", target_type="request", target_id=LUCIA),
            "exported": record(
                "requests_export_ended",
                details={"export": 1, "complete": True, "references": [OTHER, LUCIA]},
            ),
            "erased": record(
                "patient_erased", target_type="patient", target_id=LUCIA, details={"requests": 1}
            ),
            "nested": record("archive", details={"archive": {"reference": LUCIA}}),
            "other": record("request_viewed", target_type="request", target_id=OTHER),
            "other_export": record("requests_export_ended", details={"references": [OTHER]}),
            # Her reference inside a sentence, or a longer one starting with it, is not hers.
            "sentence": record("note", details={"reason": f"typed {LUCIA} by mistake"}),
            "longer": record("note", details={"reference": f"{LUCIA}X"}),
            "staff": record("staff_changed", target_type="staff", target_id=7),
        }
        db.session.commit()
        return {name: event.id for name, event in rows.items()}


def test_a_search_by_reference_finds_the_rows_naming_it_and_no_others(app: Flask) -> None:
    ids = _write(app)
    with app.app_context():
        # As typed: lower case and spaces around are hers too.
        events, total, _pages, _page = audit_page(AuditFilters(target=f" {LUCIA.lower()} "))
        assert sorted(e.id for e in events) == sorted(
            ids[name] for name in ("viewed", "exported", "erased", "nested")
        )
        assert total == 4
        events, total, _pages, _page = audit_page(AuditFilters(target=OTHER))
        assert sorted(e.id for e in events) == sorted(
            ids[name] for name in ("exported", "other", "other_export")
        )
        links = db.session.execute(
            select(AuditReference.audit_event_id, AuditReference.reference).where(
                AuditReference.audit_event_id == ids["exported"]
            )
        ).all()
        assert sorted(ref for _id, ref in links) == [OTHER, LUCIA]


@pytest.mark.parametrize(
    "filters",
    [AuditFilters(target=LUCIA), AuditFilters(target="7k4mq2xd", reference=LUCIA)],
    ids=["as stored", "loosely typed"],
)
def test_the_search_uses_the_reference_index(app: Flask, filters: AuditFilters) -> None:
    _write(app)
    with app.app_context():
        # The page's own query, as it is ordered and cut to a page.
        stmt = (
            audit_events(filters)
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(PER_PAGE)
        )
        sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
        if db.engine.dialect.name == "postgresql":
            # A handful of rows is read fastest whole: ask for the plan a large table gets.
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(db.session.scalars(text(f"EXPLAIN {sql}")))
            db.session.rollback()
        else:
            plan = " ".join(
                str(row[-1]) for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
        # The reference is looked up in the links' index; no row's details are read.
        assert "audit_reference" in plan and "INDEX" in plan.upper(), plan
        assert "SCAN audit_reference" not in plan and "Seq Scan" not in plan, plan
        assert "SCAN audit_event" not in plan.replace("SCAN audit_event USING INDEX", ""), plan


def test_the_links_are_append_only_and_go_with_their_row(app: Flask) -> None:
    ids = _write(app)
    with app.app_context():
        link = db.session.scalars(select(AuditReference)).first()
        assert link is not None
        db.session.delete(link)
        with pytest.raises(AuditTrailIsAppendOnly):
            db.session.flush()
        db.session.rollback()
        for statement in (
            delete(AuditReference),
            update(AuditReference).values(reference="SC-XXXX-XXXX"),
        ):
            with pytest.raises(AuditTrailIsAppendOnly):
                db.session.execute(statement)
            db.session.rollback()

        # Should a row ever be deleted through the table (as a retention job would), its
        # links go with it: a search never finds a link to nothing.
        table = AuditEvent.__table__
        db.session.execute(table.delete().where(table.c.id == ids["viewed"]))
        db.session.commit()
        left = db.session.scalars(
            select(AuditReference.audit_event_id).where(AuditReference.reference == LUCIA)
        ).all()
        assert ids["viewed"] not in left and ids["exported"] in left


# (as typed, whether the refused look-up of "7K4MQ2XD" is among what it finds)
TYPED = [
    ("sc 7k4m q2xd", False),
    ("sc7k4m-q2xd", False),
    (" SC 7K4M-Q2XD ", False),
    ("SC-7K4M-Q2XD", False),
    ("7k4mq2xd", True),
]


@pytest.mark.parametrize(("typed", "refused_too"), TYPED)
def test_the_page_finds_a_reference_typed_as_the_queue_takes_it(
    app: Flask, auth: AuthActions, clinic: Clinic, typed: str, refused_too: bool
) -> None:
    _write(app)
    with app.app_context():
        # A refused look-up recorded before it was stored as the reference it reads as kept
        # what was typed in the URL: found by that text too.
        record("access_refused", target_type="request", target_id="7K4MQ2XD")
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit", query_string={"target": typed})
    text = page.get_data(as_text=True)
    expected = ["request_viewed", "requests_export_ended", "patient_erased", "archive"]
    assert sorted(shown_actions(text)) == sorted(expected + ["access_refused"] * refused_too)
    shown = re.search(r'id="target" name="target" value="([^"]*)"', text)
    assert shown and shown[1] == typed.strip()  # the field keeps what was typed
