"""A version number for everything patients can book, raised by every change to it.

Pages listing open times (the time picker) or depending on them (the request form's "choose a
time" link) are costly to compute and the same for every patient until something changes. They
are kept in ``booking.pagecache`` under the current version: a row in the database, raised in
the same transaction as the change (just before COMMIT, so the row is locked for the shortest
time and last of all, after every other lock the transaction takes). A change shows at once on
the server that made it and within ``AVAILABILITY_RECHECK_SECONDS`` on the others.

What counts as a change is any insert, update or delete of the rows availability is computed
from, through the ORM (unit of work or bulk ``update()``/``delete()`` statements). A change
that turns out not to matter (a specialist's new password) costs only a fresh render.
"""

from __future__ import annotations

from datetime import datetime
from time import monotonic
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from booking.extensions import db
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityVersion,
    ClinicClosure,
    ClinicSettings,
    Location,
    ScheduleException,
    WorkingHours,
)
from booking.staff.models import StaffUser
from booking.timeutil import now_utc

# Rows the open times (and the names shown beside them) are computed from.
WATCHED: tuple[type, ...] = (
    Appointment,
    AppointmentType,
    ClinicClosure,
    ClinicSettings,
    Location,
    ScheduleException,
    StaffUser,
    WorkingHours,
)
CHANGED = "availability_changed"
RAISED = "availability_raised"
KNOWN = "booking.availability_version"  # app.extensions: (version, when read: monotonic())
_TABLE = AvailabilityVersion.__table__
_READ = select(_TABLE.c.version).where(_TABLE.c.id == 1)
_RAISE = update(_TABLE).where(_TABLE.c.id == 1).values(version=_TABLE.c.version + 1)


def current_version() -> int | None:
    """The version, or None when the row is missing (then nothing may be reused).

    Each process asks the database at most every ``AVAILABILITY_RECHECK_SECONDS``, and again
    at once after it committed a change itself."""
    app = current_app
    known = app.extensions.get(KNOWN)
    now = monotonic()
    if known is not None and now - known[1] < app.config["AVAILABILITY_RECHECK_SECONDS"]:
        return known[0]
    version = db.session.execute(_READ).scalar()
    app.extensions[KNOWN] = (version, now)
    return version


def availability_key() -> tuple[int, datetime] | None:
    """What a page of open times depends on besides its URL: the version and the minute
    (times close as the clock moves on). None when the version cannot be read."""
    version = current_version()
    if version is None:
        return None
    return version, now_utc().replace(second=0, microsecond=0)


def _touches_watched(objects: Any) -> bool:
    return any(isinstance(obj, WATCHED) for obj in objects)


@event.listens_for(Session, "before_flush")
def _note_changes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if not session.info.get(CHANGED) and (
        _touches_watched(session.new)
        or _touches_watched(session.dirty)
        or _touches_watched(session.deleted)
    ):
        session.info[CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper and issubclass(mapper.class_, WATCHED):
        state.session.info[CHANGED] = True


@event.listens_for(Session, "before_commit")
def _raise_version(session: Session) -> None:
    # While a savepoint is the current transaction, it is the one being released (a commit
    # of the whole transaction releases open savepoints first): the outer commit raises it.
    if session.get_nested_transaction() is not None:
        return
    # Changes not flushed yet are flushed by the commit after this hook: look at them too.
    if session.info.get(CHANGED) or (
        _touches_watched(session.new)
        or _touches_watched(session.dirty)
        or _touches_watched(session.deleted)
    ):
        # Flush first: COMMIT flushes only after this hook, and a raise taken before the
        # flush's own inserts could wait on another transaction's rows while that one waits
        # for the version (a deadlock). Flushed first, the raise is the last statement.
        session.flush()
        session.connection().execute(_RAISE)
        session.info.pop(CHANGED, None)
        session.info[RAISED] = True


@event.listens_for(Session, "after_commit")
def _forget_version(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the transaction goes on
    raised = session.info.pop(RAISED, False)
    if not raised and session.info.pop(CHANGED, False):
        # Committed while a savepoint was still open, so the hook above stood aside: raise
        # it now, just after (a crash in between leaves pages at most PAGE_CACHE_SECONDS old).
        with session.get_bind().begin() as connection:
            connection.execute(_RAISE)
        raised = True
    if raised and has_app_context():
        current_app.extensions.pop(KNOWN, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_changes(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's end keeps the outer transaction's changes; a rolled back one drops them.
    if transaction.parent is None:
        session.info.pop(CHANGED, None)
        session.info.pop(RAISED, None)
