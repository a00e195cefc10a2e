"""Reading requests for the dashboard: the triage queue and one record.

Every page loads what it shows in a fixed number of queries, whatever the number of rows:
many-to-one and one-to-one data is joined into the page query, lists are loaded with one
``selectinload`` each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, exists, false, func, or_, select
from sqlalchemy.orm import aliased, contains_eager, joinedload, selectinload

from booking.extensions import db
from booking.forms import phone_e164
from booking.messages.services import unread_by_staff
from booking.notifications.services import mail_delay
from booking.outcomes.progress import unseen_failed_worse_notices
from booking.requests.emails import PATIENT_TEMPLATES
from booking.requests.events import RequestEvent
from booking.requests.followup import duration_label
from booking.requests.models import (
    OPEN_STATUSES,
    PRESSING_LEVELS,
    TRIAGE_PRIORITY,
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
    call_back_since_column,
    folded,
)
from booking.requests.queries import (
    alerts_late_before,
    failed_alerts,
    typed_reference,
    unnotified_request_ids,
    unseen_failed_request_notices,
    visible_to,
)
from booking.scheduling.models import Appointment
from booking.staff.models import StaffUser
from booking.staff.services import ACCOUNT_TEMPLATES, NOTICE_TEMPLATES
from booking.timeutil import from_clinic_local, now_utc

PER_PAGE = 25

# Which date the queue's From and To apply to: the day a request arrived (as before), or its
# appointment's day in the clinic's time zone ("the appointments of next week").
DATES_RECEIVED = "received"
DATES_APPOINTMENT = "appointment"
DATE_FIELDS = (DATES_RECEIVED, DATES_APPOINTMENT)


@dataclass
class QueueFilters:
    status: str | None = RequestStatus.REQUESTED.value  # None: every status
    triage: str | None = None
    diagnosis: str | None = None
    specialist_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    dates: str = DATES_RECEIVED  # which date From and To apply to (``DATE_FIELDS``)
    search: str | None = None
    # Only requests whose patient was not notified (an email to them failed for good).
    unnotified: bool = False
    # Only requests with a message from the patient no member of staff has read yet.
    unread: bool = False
    page: int = 1

    def as_query_args(self, **overrides: Any) -> dict[str, Any]:
        """The filters as URL arguments (for links that keep them)."""
        values = {
            "status": self.status or "all",
            "triage": self.triage,
            "diagnosis": self.diagnosis,
            "specialist": self.specialist_id,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "dates": self.dates if self.dates != DATES_RECEIVED else None,
            "q": self.search,
            "unnotified": 1 if self.unnotified else None,
            "unread": 1 if self.unread else None,
            "page": self.page if self.page > 1 else None,
        }
        values.update(overrides)
        return {k: v for k, v in values.items() if v not in (None, "")}


# Counting every request of a status reads all of them: after years of use that was most of
# the queue's time (150 ms at 100,000 requests). Each tab counts up to this many, then "1000+".
COUNT_CAP = 1000


@dataclass
class QueuePage:
    items: list[ConsultationRequest]
    total: int
    page: int
    per_page: int
    counts: dict[str, int] = field(default_factory=dict)
    # On the "requested" tab: the open emergency and urgent requests of the other open
    # statuses whose patient nobody has reached (``unreached_elsewhere``), most pressing first.
    unreached: list[ConsultationRequest] = field(default_factory=list)
    unreached_more: bool = False  # there are more than ``UNREACHED_SHOWN``
    # Requests of any status, under the other filters, whose patient was not notified.
    unnotified: int = 0
    # Which of this page's rows those are (looked up only when there are some).
    unnotified_ids: frozenset[int] = frozenset()
    # Requests of any status, under the other filters, with a message from the patient no
    # member of staff has read (``unread_by_staff``), and which of this page's rows (and of
    # ``unreached``) those are: read with the rows, no query of their own.
    unread: int = 0
    unread_ids: frozenset[int] = frozenset()
    # For coordinators and admins: the urgent requests whose alert to the clinic was never
    # delivered (``queries.failed_alerts``; looked up only when there are some).
    failed_alerts: list[str] = field(default_factory=list)
    # For coordinators and admins likewise: the requests whose notice that the patient answered
    # a follow-up "worse" was never delivered, and nobody has opened since
    # (``progress.unseen_failed_worse_notices``; looked up only when there are some).
    failed_worse_notices: list[str] = field(default_factory=list)
    # For coordinators and admins likewise: the routine requests whose notice to the clinic
    # failed for good, and nobody has opened since
    # (``queries.unseen_failed_request_notices``; looked up only when there are some).
    failed_request_notices: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(min(self.total, COUNT_CAP) / self.per_page))

    @property
    def total_capped(self) -> bool:
        """The list has more requests than were counted (the pager stops at the cap)."""
        return self.total > COUNT_CAP

    def count_label(self, status: str | None) -> str:
        """A tab's count: exact up to ``COUNT_CAP``, "1000+" beyond (None: every status)."""
        values = [self.counts.get(status, 0)] if status else list(self.counts.values())
        if any(n > COUNT_CAP for n in values):
            return f"{sum(min(n, COUNT_CAP) for n in values)}+"
        return str(sum(values))

    @property
    def cap(self) -> int:
        return COUNT_CAP

    @property
    def unnotified_label(self) -> str:
        return f"{COUNT_CAP}+" if self.unnotified > COUNT_CAP else str(self.unnotified)

    @property
    def unread_label(self) -> str:
        return f"{COUNT_CAP}+" if self.unread > COUNT_CAP else str(self.unread)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(user: StaffUser, f: QueueFilters) -> list[ColumnElement[bool]]:
    """What the user may see under the filters, except the status: conditions on requests
    and, with a search, on their patient (the statement joins it). Built once per page and
    shared by the list and every tab's count."""
    return [*_shared_conditions(user, f), *_toggled(f)]


def _toggled(f: QueueFilters) -> list[ColumnElement[bool]]:
    """The conditions of the two lists staff switch on and off beside the tabs."""
    conditions = []
    if f.unnotified:
        conditions.append(ConsultationRequest.id.in_(unnotified_request_ids()))
    if f.unread:
        conditions.append(ConsultationRequest.id.in_(unread_by_staff()))
    return conditions


def _shared_conditions(user: StaffUser, f: QueueFilters) -> list[ColumnElement[bool]]:
    """``_conditions`` but the lists switched on and off (``_toggled``): what those lists'
    own counts are counted under."""
    conditions = [visible_to(user)]
    if f.triage:
        conditions.append(ConsultationRequest.priority == TRIAGE_PRIORITY[TriageLevel(f.triage)])
    else:
        # Always true (the priority follows the level), but it lets both databases seek the
        # queue indexes one priority at a time, in the queue's order, so the first date below
        # bounds the read instead of filtering every request of the tab.
        conditions.append(ConsultationRequest.priority.in_(sorted(TRIAGE_PRIORITY.values())))
    if f.specialist_id:
        conditions.append(ConsultationRequest.assigned_specialist_id == f.specialist_id)
    if f.diagnosis:
        conditions.append(
            exists().where(
                RequestDiagnosis.request_id == ConsultationRequest.id,
                RequestDiagnosis.code == f.diagnosis,
            )
        )
    if f.dates == DATES_APPOINTMENT:
        conditions.extend(_appointment_days(f))
    else:
        conditions.extend(_arrival_days(f))
    if f.search:
        text = f.search.strip()
        pattern = f"%{_escape_like(text)}%"
        matches = [
            ConsultationRequest.reference == typed_reference(text),
            Patient.search_name.contains(folded(text), autoescape=True),
            Patient.search_guardian.contains(folded(text), autoescape=True),
            Patient.email.ilike(pattern, escape="\\"),
        ]
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 4:
            matches.append(Patient.phone.contains(digits, autoescape=True))
            # As written in the clinic's country ("030 901820"): the stored E.164's digits.
            typed = (phone_e164(text, valid=False) or "").lstrip("+")
            if typed and typed != digits:
                matches.append(Patient.phone.contains(typed, autoescape=True))
        conditions.append(or_(*matches))
    return conditions


def _arrival_days(f: QueueFilters) -> list[ColumnElement[bool]]:
    """Requests that arrived from ``f.date_from`` to ``f.date_to``, clinic days."""
    conditions = []
    if f.date_from:
        start = from_clinic_local(f.date_from, time())
        conditions.append(ConsultationRequest.created_at >= start)
        # Implied by the arrival (a request's level is raised after it arrived), but on the
        # call-back clock the queue indexes are ordered by, so it bounds their read. The end
        # date cannot: a request of the range may have been raised since.
        conditions.append(call_back_since_column() >= start)
    if f.date_to:
        end = from_clinic_local(f.date_to + timedelta(days=1), time())
        conditions.append(ConsultationRequest.created_at < end)
    return conditions


def _appointment_days(f: QueueFilters) -> list[ColumnElement[bool]]:
    """Requests whose appointment starts from ``f.date_from`` to ``f.date_to``, clinic days.
    Only an appointment the queue shows counts (``active``: a declined or cancelled request's
    time is given up), so a request without one is left out once a date is given. A subquery
    on an alias, apart from the queue's own join of the appointment (which it would otherwise
    correlate with): PostgreSQL reads it from the appointments' time index."""
    if not (f.date_from or f.date_to):
        return []
    booked = aliased(Appointment)
    times = [booked.active]
    if f.date_from:
        times.append(booked.starts_at >= from_clinic_local(f.date_from, time()))
    if f.date_to:
        times.append(booked.starts_at < from_clinic_local(f.date_to + timedelta(days=1), time()))
    return [ConsultationRequest.id.in_(select(booked.request_id).where(*times))]


# What a row of the queue shows of the medical history. The other columns are for the record
# and the export: six are free text, decrypted as they load, and five are answers stored as
# JSON; reading them for the 25 rows of a page cost about 0.6 ms of CPU it did not show.
QUEUE_HISTORY = (MedicalHistory.diagnoses, MedicalHistory.odi_percent, MedicalHistory.ndi_percent)


def _listed(
    f: QueueFilters, conditions: list[ColumnElement[bool]], *, whole_history: bool = True
) -> Select:
    """The list under the filters' ``conditions`` and status, in queue order (urgent first,
    then the one waiting longest for its call-back, ``call_back_since``: a request staff
    raised to urgent waits from the raise, not from its arrival), with what each row shows
    joined in, so a page of any size is one query. Without ``whole_history``, only the
    history's ``QUEUE_HISTORY`` columns are read."""
    specialist = aliased(StaffUser)
    acknowledger = aliased(StaffUser)
    history = contains_eager(ConsultationRequest.history)
    if not whole_history:
        history = history.load_only(*QUEUE_HISTORY)
    stmt = select(ConsultationRequest).join(ConsultationRequest.patient).where(*conditions)
    if f.status:
        stmt = stmt.where(ConsultationRequest.status == f.status)
    return (
        stmt.outerjoin(ConsultationRequest.history)  # an emergency call-back has none
        .outerjoin(specialist, ConsultationRequest.assigned_specialist)
        .outerjoin(ConsultationRequest.appointment)
        .outerjoin(acknowledger, ConsultationRequest.acknowledged_by)
        .options(
            contains_eager(ConsultationRequest.patient),
            history,
            contains_eager(ConsultationRequest.assigned_specialist.of_type(specialist)),
            contains_eager(ConsultationRequest.appointment),
            contains_eager(ConsultationRequest.acknowledged_by.of_type(acknowledger)),
        )
        .order_by(
            ConsultationRequest.priority.desc(),  # emergency, then urgent, then routine
            call_back_since_column(),  # as the queue indexes hold it
            ConsultationRequest.id,
        )
    )


def _capped_count(f: QueueFilters, conditions: list[ColumnElement[bool]], label: str) -> Any:
    rows = select(ConsultationRequest.id)
    if f.search:  # the search looks at the patient's names, email and phone
        rows = rows.join(ConsultationRequest.patient)
    capped = rows.where(*conditions).limit(COUNT_CAP + 1).subquery()
    return select(func.count()).select_from(capped).scalar_subquery().label(label)


UNNOTIFIED = "unnotified"
UNREAD = "unread"
# How many undelivered alerts the queue names at most (the oldest first).
FAILED_ALERTS_SHOWN = 10


@dataclass(frozen=True)
class _Counts:
    statuses: dict[str, int]
    unnotified: int
    unread: int
    alerted: bool
    worse_failed: bool
    notice_failed: bool


def _status_counts(
    f: QueueFilters,
    conditions: list[ColumnElement[bool]],
    shared: list[ColumnElement[bool]],
    late_before: datetime | None,
) -> _Counts:
    """Requests per status under the filters' ``conditions``, each counted up to
    ``COUNT_CAP + 1`` rows of the status index; under the ``shared`` ones (the lists
    switched on and off left out), the requests of any status whose patient was not
    notified, and those with a message from the patient nobody has read; and (with
    ``late_before``, ``failed_alerts``'s cut-off) whether an urgent alert to the clinic, and
    whether a notice of a patient feeling worse nobody has looked at since, failed or is
    late: one query whose work
    does not grow with the clinic's history (the unread messages are read from the message
    table, as the unnotified requests from the failed emails)."""
    columns = [
        _capped_count(f, [*conditions, ConsultationRequest.status == status], status.value)
        for status in RequestStatus
    ]
    unnotified = [*shared, ConsultationRequest.id.in_(unnotified_request_ids())]
    columns.append(_capped_count(f, unnotified, UNNOTIFIED))
    unread = [*shared, ConsultationRequest.id.in_(unread_by_staff())]
    columns.append(_capped_count(f, unread, UNREAD))
    alerted = failed_alerts(late_before).exists() if late_before else false()
    columns.append(alerted.label("failed_alerts"))
    worse = unseen_failed_worse_notices(late_before).exists() if late_before else false()
    columns.append(worse.label("failed_worse_notices"))
    notice = unseen_failed_request_notices().exists() if late_before else false()
    columns.append(notice.label("failed_request_notices"))
    *row, unnotified_count, unread_count, alerted, worse_failed, notice_failed = db.session.execute(
        select(*columns)
    ).one()
    counts = {status.value: n for status, n in zip(RequestStatus, row, strict=True) if n}
    return _Counts(
        counts,
        unnotified_count,
        unread_count,
        bool(alerted),
        bool(worse_failed),
        bool(notice_failed),
    )


def _rows_marking_unread(stmt: Select) -> tuple[list[ConsultationRequest], frozenset[int]]:
    """The requests of ``stmt`` (a ``_listed`` statement) and which of them hold a message
    from the patient no member of staff has read: a column of the same query."""
    rows = db.session.execute(
        stmt.add_columns(ConsultationRequest.id.in_(unread_by_staff()).label(UNREAD))
    ).unique()
    items, unread = [], set()
    for consultation, has_unread in rows:
        items.append(consultation)
        if has_unread:
            unread.add(consultation.id)
    return items, frozenset(unread)


# How many unreached urgent requests of other statuses the "requested" tab lists at most.
UNREACHED_SHOWN = 25


def unreached_elsewhere(
    f: QueueFilters, conditions: list[ColumnElement[bool]]
) -> tuple[list[ConsultationRequest], bool, frozenset[int]]:
    """The open emergency and urgent requests, under the queue's filters (``conditions``),
    whose patient no logged call has reached (``ConsultationRequest.unreached``) and that
    left the "requested" tab: staff confirmed them or asked the patient for something, yet
    the call-back is still owed. The tab staff work lists them above its own rows, so they
    do not rest on the on-call email alone. Most pressing first, then the longest owed its
    call-back (``call_back_since``); at most ``UNREACHED_SHOWN`` (and whether there are
    more), and which of them hold a message from the patient nobody has read
    (``_rows_marking_unread``).

    One query per status, each read from the queue index by its status, as that status's
    tab is: asked for both statuses at once, the databases walked the every-status index
    instead, through every urgent request ever received, to find the few still open. The
    two short lists are merged here, in the queue's order."""
    if f.triage and TriageLevel(f.triage) not in PRESSING_LEVELS:
        return [], False, frozenset()  # filtered to routine requests: none can be listed
    found: list[ConsultationRequest] = []
    unread: set[int] = set()
    for status in sorted(OPEN_STATUSES - {RequestStatus.REQUESTED}):
        stmt = _listed(
            replace(f, status=status.value),
            [
                *conditions,
                ConsultationRequest.priority.in_(
                    sorted(TRIAGE_PRIORITY[level] for level in PRESSING_LEVELS)
                ),
                ConsultationRequest.acknowledged_at.is_(None),
            ],
            whole_history=False,
        ).limit(UNREACHED_SHOWN + 1)
        rows, marked = _rows_marking_unread(stmt)
        found.extend(rows)
        unread |= marked
    found.sort(key=lambda r: (-r.priority, r.call_back_since, r.id))  # the queue's order
    shown = found[:UNREACHED_SHOWN]
    return shown, len(found) > UNREACHED_SHOWN, frozenset(unread & {r.id for r in shown})


def queue_page(user: StaffUser, f: QueueFilters, per_page: int = PER_PAGE) -> QueuePage:
    """One page of the queue and the counts per status. Two queries, a third for the rows to
    flag when some patient was not notified, a fourth when an urgent alert to the clinic was
    never delivered, a fifth when a notice of a patient feeling worse was not and a sixth
    when a routine request's notice to the clinic failed (shown to coordinators and admins,
    who answer every request); on the "requested" tab, two more for
    the unreached urgent requests of the other open statuses (``unreached_elsewhere``).
    Which rows hold a message from the patient nobody has read comes with them."""
    shared = _shared_conditions(user, f)
    conditions = [*shared, *_toggled(f)]
    late_before = alerts_late_before() if user.works_every_request else None
    found = _status_counts(f, conditions, shared, late_before)
    counts, unnotified = found.statuses, found.unnotified
    total = counts.get(f.status, 0) if f.status else sum(counts.values())

    page = max(1, min(f.page, max(1, math.ceil(min(total, COUNT_CAP) / per_page))))
    stmt = _listed(f, conditions, whole_history=False)
    stmt = stmt.limit(per_page).offset((page - 1) * per_page)
    items, unread_ids = _rows_marking_unread(stmt)
    unreached: list[ConsultationRequest] = []
    unreached_more = False
    if f.status == RequestStatus.REQUESTED.value:
        unreached, unreached_more, unread_elsewhere = unreached_elsewhere(f, conditions)
        unread_ids |= unread_elsewhere
    flagged: frozenset[int] = frozenset()
    if unnotified and items:
        flagged = frozenset(
            db.session.scalars(
                select(ConsultationRequest.id).where(
                    ConsultationRequest.id.in_([item.id for item in items]),
                    ConsultationRequest.id.in_(unnotified_request_ids()),
                )
            )
        )
    return QueuePage(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        counts=counts,
        unreached=unreached,
        unreached_more=unreached_more,
        unnotified=unnotified,
        unnotified_ids=flagged,
        unread=found.unread,
        unread_ids=unread_ids,
        failed_alerts=(
            list(db.session.scalars(failed_alerts(late_before).limit(FAILED_ALERTS_SHOWN)))
            if found.alerted and late_before is not None
            else []
        ),
        failed_worse_notices=(
            list(
                db.session.scalars(
                    unseen_failed_worse_notices(late_before).limit(FAILED_ALERTS_SHOWN)
                )
            )
            if found.worse_failed and late_before is not None
            else []
        ),
        failed_request_notices=(
            list(db.session.scalars(unseen_failed_request_notices().limit(FAILED_ALERTS_SHOWN)))
            if found.notice_failed
            else []
        ),
    )


# Rows read from the database at a time by the CSV export.
EXPORT_BATCH = 500


def export_count(user: StaffUser, f: QueueFilters) -> int:
    """How many rows the export of the filtered list holds (its audit row says so)."""
    rows = _listed(f, _conditions(user, f)).with_only_columns(ConsultationRequest.id)
    return db.session.scalar(select(func.count()).select_from(rows.order_by(None).subquery())) or 0


def export_rows(user: StaffUser, f: QueueFilters) -> Iterator[ConsultationRequest]:
    """Every request of the filtered list (not just one page, and not cut at any size), read
    ``EXPORT_BATCH`` at a time so that a long list is never held in memory whole. The query
    runs when the first row is asked for: in a streamed response, that is in the session of
    the stream, not of the view that made it."""
    stmt = _listed(f, _conditions(user, f)).execution_options(yield_per=EXPORT_BATCH)

    def rows() -> Iterator[ConsultationRequest]:
        yield from db.session.scalars(stmt)

    return rows()


def load_record(reference: str) -> ConsultationRequest | None:
    """A request with everything its record page shows, in a fixed number of queries; the
    reference read as staff may type it ("sc 7k4m q2xd": ``typed_reference``)."""
    stmt = (
        select(ConsultationRequest)
        .where(ConsultationRequest.reference == typed_reference(reference))
        .options(
            joinedload(ConsultationRequest.patient),
            joinedload(ConsultationRequest.history),
            joinedload(ConsultationRequest.assigned_specialist),
            joinedload(ConsultationRequest.acknowledged_by),
            joinedload(ConsultationRequest.appointment).joinedload(Appointment.specialist),
            joinedload(ConsultationRequest.appointment).joinedload(Appointment.location),
            # How the visit takes place (a video visit's link form, the mode shown).
            joinedload(ConsultationRequest.appointment).joinedload(Appointment.appointment_type),
            selectinload(ConsultationRequest.documents),
            selectinload(ConsultationRequest.emails),
            # The calls come with their timeline entries (one row each).
            selectinload(ConsultationRequest.events).options(
                joinedload(RequestEvent.actor), joinedload(RequestEvent.call)
            ),
        )
    )
    return db.session.scalars(stmt).unique().one_or_none()


URGENT = TriageLevel.URGENT


# A failed email counts on the banner of late emails this long after its last attempt; a
# patient's stays on the queue's "Patient not notified" list until staff send it again.
FAILED_SHOWN_FOR = timedelta(days=1)


@dataclass(frozen=True)
class MailBanner:
    """The staff pages' banner of emails not delivered in time (``MAIL_LATE_MINUTES``)."""

    waiting: int  # still waiting to go, written more than MAIL_LATE_MINUTES ago
    failed: int  # failed for good in the last day, nobody sent again
    oldest: str  # how long ago the oldest of them was written, as staff read it
    # Of the failed, those to a staff member about their account (``ACCOUNT_TEMPLATES``):
    # not on the "Patient not notified" list. Among them, the notices (of a changed address,
    # of a two-factor reset), which the admins' accounts page lists; the rest are password
    # reset links, asked for again.
    failed_to_staff: int = 0
    failed_account_notices: int = 0
    # Of the failed, those the "Patient not notified" list shows, to send again
    # (``emails.PATIENT_TEMPLATES``). The rest are the clinic's own alerts and notices (the
    # urgent ones have the queue's banner), receipts and the like: nothing to send again, and
    # a link to that list would lead staff to an empty page.
    failed_to_patients: int = 0

    @property
    def failed_elsewhere(self) -> int:
        """The failed emails neither to a patient's list nor about a staff account."""
        return self.failed - self.failed_to_patients - self.failed_to_staff


def mail_banner() -> MailBanner | None:
    """Emails that have waited longer than ``MAIL_LATE_MINUTES`` or failed for good in the
    last day (``FAILED_SHOWN_FOR``), or None when there are none (or the setting is 0). One
    query (``notifications.services.mail_delay``)."""
    minutes = current_app.config["MAIL_LATE_MINUTES"]
    if not minutes:
        return None
    now = now_utc()
    delay = mail_delay(
        now - timedelta(minutes=minutes),
        now - FAILED_SHOWN_FOR,
        {"staff": ACCOUNT_TEMPLATES, "notices": NOTICE_TEMPLATES, "patients": PATIENT_TEMPLATES},
    )
    if not delay.count or delay.oldest_at is None:
        return None
    return MailBanner(
        delay.waiting,
        delay.failed,
        duration_label(now - delay.oldest_at),
        failed_to_staff=delay.failed_among["staff"],
        failed_account_notices=delay.failed_among["notices"],
        failed_to_patients=delay.failed_among["patients"],
    )
