"""The audit trail as the admin reads it: the ids its rows keep (a specialist, a location, an
appointment type, in their details or as their target) named, looked up once per kind for
the whole page, and each row's target (its Record cell) said as the clinic calls it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape

from booking.audit.models import AuditEvent
from booking.feedback.services import PAGE_NAMES, feedback_pages, page_name
from booking.notifications.models import OutboxStatus
from booking.notifications.services import Delivery, deliveries
from booking.requests import asks
from booking.requests.emails import ESCALATION_TEMPLATES
from booking.scheduling.admin_services import WEEKDAY_NAMES
from booking.scheduling.services import Names, names_by_id
from booking.templating import isolated, naming
from booking.timeutil import clinic_date

# The details' keys that hold an id, by what it is the id of: the appointment's snapshot
# (``requests.lifecycle.snapshot``) and the schedule's rows (``scheduling.admin_services``).
STAFF_KEYS = frozenset({"specialist", "specialist_id"})
LOCATION_KEYS = frozenset({"location", "location_id"})
APPOINTMENT_TYPE_KEYS = frozenset({"appointment_type", "appointment_type_id"})
# The outbox email a row says was written: the on-call alert of an escalated request
# (``requests.escalation``). Its id alone ("email id: 55") tells a reader nothing.
EMAIL_KEY = "email_id"


# The rows' targets that are one of the same kinds (an account changed, a place edited, a
# specialist's agenda asked for).
TARGET_KINDS = {
    "staff": "staff",
    "agenda": "staff",
    "location": "locations",
    "appointment_type": "types",
}


@dataclass(frozen=True)
class TrailNames:
    """For the page: by details key, the names of the ids and codes kept under it (for
    ``readable_details``); by event id, what its Record cell says (a row about nothing has
    none), and the details key its Record cell already says (``PART_KEYS``), which its
    details leave out."""

    details: dict[str, dict[Any, str]]
    records: dict[int, str]
    in_records: dict[int, str]


def trail_names(events: Sequence[AuditEvent]) -> TrailNames:
    """The names of the ids the events keep, in their details and as their targets. Three
    queries at most, a fourth (the checklist) when a row names checklist items, and one for
    the alert emails rows name, whatever the number of events."""
    wanted: dict[str, set[int]] = {"staff": set(), "locations": set(), "types": set()}
    emails: set[int] = set()
    for key, value in _keyed_ids(event.details for event in events):
        if key in STAFF_KEYS:
            wanted["staff"].add(value)
        elif key in LOCATION_KEYS:
            wanted["locations"].add(value)
        elif key in APPOINTMENT_TYPE_KEYS:
            wanted["types"].add(value)
        elif key == EMAIL_KEY:
            emails.add(value)
    for event in events:
        kind = TARGET_KINDS.get(event.target_type or "")
        if kind and (event.target_id or "").isdigit():
            wanted[kind].add(int(event.target_id))  # type: ignore[arg-type]
    names = names_by_id(wanted["staff"], wanted["locations"], wanted["types"])
    found = deliveries(emails, ESCALATION_TEMPLATES)
    alerts = {email_id: _alert(email_id, found.get(email_id)) for email_id in emails}
    items: dict[str, str] = {}
    if any(_about_checklist_items(event) for event in events):
        items = {item.code: item.label for item in asks.checklist(include_inactive=True)}
    # Feedback audited before its row kept the page's slug: looked up while it is stored.
    pages = feedback_pages(
        int(event.target_id)  # type: ignore[arg-type]
        for event in events
        if event.target_type == "page_feedback"
        and (event.target_id or "").isdigit()
        and not _detail(event.details, "page")
    )
    return TrailNames(
        details={
            **dict.fromkeys(STAFF_KEYS, names.staff),
            **dict.fromkeys(LOCATION_KEYS, names.locations),
            **dict.fromkeys(APPOINTMENT_TYPE_KEYS, names.appointment_types),
            # The schedule's rows keep a weekday's number and an exception's kind.
            "weekday": {number: str(day) for number, day in enumerate(WEEKDAY_NAMES)},
            "kind": {"time_off": _("time off"), "extra": _("extra hours")},
            # The checklist items asked of the patient, and those they answered
            # (``asks.ask_patient``, ``asks.answer_ask``).
            "items": items,
            # The information page a reader's feedback was about (``feedback``).
            "page": {slug: str(name) for slug, name in PAGE_NAMES.items()},
            # Where the alert went and whether it was sent.
            EMAIL_KEY: alerts,
        },
        records={
            event.id: text
            for event in events
            if (text := record_cell(event, names, items, pages)) is not None
        },
        in_records={
            event.id: part[0]
            for event in events
            if event.target_type in PART_OF and (part := _part(event)) is not None
        },
    )


def _alert(email_id: int, delivery: Delivery | None) -> str:
    """An alert email as a reader takes it: to whom, and whether it went."""
    if delivery is None:
        return _("alert email %(id)s, no longer in the outbox", id=email_id)
    if delivery.withdrawn:
        state = _("withdrawn")
    elif delivery.status == OutboxStatus.SENT:
        state = _("sent")
    elif delivery.status == OutboxStatus.FAILED:
        state = _("could not be sent")
    else:
        state = _("waiting to be sent")
    return _("alert to %(recipient)s, %(state)s", recipient=delivery.recipient, state=state)


def _about_checklist_items(event: AuditEvent) -> bool:
    """Whether a row names checklist items: as its target, or the items of an ask."""
    return event.target_type == "checklist_item" or (
        isinstance(event.details, Mapping) and isinstance(event.details.get("items"), list)
    )


@dataclass(frozen=True)
class _Target:
    """A row's target as its reading takes it: the row, its id as stored (and as a number
    when it is one), and the names looked up for the page."""

    event: AuditEvent
    id: str
    number: int | None
    names: Names
    items: Mapping[str, str]
    pages: Mapping[int, str]

    def detail(self, key: str) -> Any:
        return _detail(self.event.details, key)

    def named(self, found: Mapping[int, str]) -> Markup | str:
        """The target's name, isolated, with its id ("Dr. Okafor (5)"), or its id alone when
        it has none (deleted since)."""
        name = found.get(self.number) if self.number is not None else None
        return Markup("{} ({})").format(isolated(name), self.id) if name else self.id

    def specialist(self) -> Markup | None:
        """The specialist of a schedule row, isolated. The row may be deleted (the deletion
        is what is audited): its specialist is in the details the row was written with."""
        specialist = self.detail("specialist_id")
        name = self.names.staff.get(specialist) if isinstance(specialist, int) else None
        return isolated(name) if name else None


def _working_hours(t: _Target) -> str:
    who = t.specialist()
    if who is None:
        return _("Working hours %(id)s", id=t.id)
    return naming(_("Working hours of %(name)s (%(id)s)"), name=who, id=t.id)


def _schedule_exception(t: _Target) -> str:
    who = t.specialist()
    if t.detail("kind") == "extra":
        if who is None:
            return _("Extra hours %(id)s", id=t.id)
        return naming(_("Extra hours of %(name)s (%(id)s)"), name=who, id=t.id)
    if who is None:
        return _("Time off %(id)s", id=t.id)
    return naming(_("Time off of %(name)s (%(id)s)"), name=who, id=t.id)


def _clinic_closure(t: _Target) -> str:
    day = t.detail("day")  # ISO, as the row was written: the closure may be removed since
    try:
        shown = clinic_date(date.fromisoformat(day), "full") if isinstance(day, str) else None
    except ValueError:
        shown = None
    if shown is None:
        return _("Closed day %(id)s", id=t.id)
    return _("Clinic closed on %(day)s (%(id)s)", day=shown, id=t.id)


def _checklist_item(t: _Target) -> str:
    labels = t.detail("labels")
    label = t.items.get(t.id) or asks.label_of(t.id, labels if isinstance(labels, dict) else None)
    return _("Checklist item “%(label)s”", label=label)


def _page_feedback(t: _Target) -> str:
    slug = t.detail("page")
    if not slug and t.number is not None:
        slug = t.pages.get(t.number)
    if slug and t.id:
        return _("Feedback on “%(page)s” (%(id)s)", page=page_name(str(slug)), id=t.id)
    return _("Page feedback %(id)s", id=t.id) if t.id else _("Page feedback")


# A row about a request (or a request not yet sent) may be about one thing of it, which its
# details keep by id: its Record cell names that thing ("Document 12 of SC-7K4M-Q2XD").
PART_KEYS = ("document_id", "message_id", "call_id", "note_id")
PART_OF = frozenset({"request", "draft"})


def _part(event: AuditEvent) -> tuple[str, int] | None:
    """The (details key, id) of the thing of a request a row is about, if it names one."""
    if isinstance(event.details, Mapping):
        for key in PART_KEYS:
            value = event.details.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return key, value
    return None


def _part_of(key: str) -> str:
    """How a thing of a request is named, the request given as ``%(request)s``."""
    return {
        "document_id": _("Document %(id)s of %(request)s"),
        "message_id": _("Message %(id)s of %(request)s"),
        "call_id": _("Phone call %(id)s about %(request)s"),
        "note_id": _("Note %(id)s on %(request)s"),
    }[key]


def _request(t: _Target) -> str:
    """The request's reference, linked to its record, after the thing of it the row is
    about when it names one."""
    if not t.id:
        return _("A request")
    link = Markup('<a href="{}" class="font-monospace">{}</a>').format(
        url_for("dashboard.record", reference=t.id), t.id
    )
    part = _part(t.event)
    if part is None:
        return link
    # The words escaped, the link kept: a translation is text, not markup.
    return escape(_part_of(part[0])) % {"id": part[1], "request": link}


def _draft(t: _Target) -> str:
    request = _("a request not yet sent (%(id)s)", id=t.id) if t.id else _("a request not yet sent")
    part = _part(t.event)
    if part is not None:
        return _part_of(part[0]) % {"id": part[1], "request": request}
    return _("Request not yet sent (%(id)s)", id=t.id) if t.id else _("Request not yet sent")


# What a row's Record cell says, by the type of its target: every type ``record`` is called
# with has its reading here (``tests/test_audit_labels.py`` holds it).
TARGET_READINGS: dict[str, Callable[[_Target], str]] = {
    "request": _request,
    "staff": lambda t: naming(_("Staff account %(name)s"), name=t.named(t.names.staff)),
    "agenda": lambda t: naming(_("Agenda of %(name)s"), name=t.named(t.names.staff)),
    "location": lambda t: naming(_("Location %(name)s"), name=t.named(t.names.locations)),
    "appointment_type": lambda t: naming(
        _("Appointment type %(name)s"), name=t.named(t.names.appointment_types)
    ),
    "working_hours": _working_hours,
    "schedule_exception": _schedule_exception,
    "clinic_closure": _clinic_closure,
    "checklist_item": _checklist_item,
    "patient": lambda t: _("Patient of %(reference)s", reference=t.id),
    # The clinic's one set of settings, or the clinic's data as a whole: no id to show.
    "clinic_settings": lambda t: _("Booking rules"),
    "outcome_settings": lambda t: _("Follow-up settings"),
    "clinic": lambda t: _("Clinic settings"),
    "outcomes": lambda t: _("Registry of outcomes"),
    "retention": lambda t: _("Records past their keeping time"),
    "audit": lambda t: _("Audit trail"),
    # What these rows keep as their target (a draft's id, the page an upload came through)
    # is still shown: this page is the only place an admin reads it.
    "draft": _draft,
    "upload": lambda t: _("Patient's upload (%(id)s)", id=t.id) if t.id else _("Patient's upload"),
    "offer": lambda t: _("Waiting list offer %(id)s", id=t.id),
    "page_feedback": _page_feedback,
}


def record_cell(
    event: AuditEvent,
    names: Names,
    items: Mapping[str, str],
    pages: Mapping[int, str] | None = None,
) -> str | None:
    """What a row is about, as an administrator reads it: "Working hours of Dr. Okafor
    (12)", "Checklist item “MRI report”", "Feedback on “Treatments” (7)". A record since
    deleted keeps its id; a target of a type with no reading (an older row's) shows its type
    and id as stored. A request is linked to its record ("Document 12 of SC-7K4M-Q2XD",
    markup). None for a row about nothing.
    ``pages`` gives, by id, the page of feedback whose row does not keep it in its details."""
    kind, target = event.target_type, event.target_id or ""
    if not kind:
        return None
    reading = TARGET_READINGS.get(kind)
    if reading is None:
        return as_stored(kind, target)
    number = int(target) if target.isdigit() else None
    return reading(_Target(event, target, number, names, items, pages or {}))


def as_stored(kind: str, target: str) -> str:
    """A target of a type with no reading, as the row keeps it."""
    return f"{kind.replace('_', ' ')} {target}".strip()


def _detail(details: Any, key: str) -> Any:
    """A value a row's details keep under ``key``: as it is, or the after (else the before) of
    a change."""
    if not isinstance(details, Mapping):
        return None
    value = details.get(key)
    if isinstance(value, Mapping) and set(value) == {"before", "after"}:
        return value["after"] if value["after"] is not None else value["before"]
    return value


def _keyed_ids(values: Iterable[Any], key: str = "") -> Iterator[tuple[str, int]]:
    """Every (key, id) in the details at any depth, a change's before and after under the
    changed key."""
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            yield key, value
        elif isinstance(value, Mapping):
            if set(value) == {"before", "after"}:
                yield from _keyed_ids(value.values(), key)
            else:
                for inner, item in value.items():
                    yield from _keyed_ids([item], str(inner))
