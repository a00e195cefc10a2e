"""The audit trail as the admin reads it: the ids its rows keep (a specialist, a location, an
appointment type, in their details or as their target) named, looked up once per kind for
the whole page, and each row's target (its Record cell) said as the clinic calls it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from booking.audit.models import AuditEvent
from booking.feedback.services import PAGE_NAMES, feedback_pages, page_name
from booking.requests import asks
from booking.scheduling.admin_services import WEEKDAY_NAMES
from booking.scheduling.services import Names, names_by_id

# The details' keys that hold an id, by what it is the id of: the appointment's snapshot
# (``requests.lifecycle.snapshot``) and the schedule's rows (``scheduling.admin_services``).
STAFF_KEYS = frozenset({"specialist", "specialist_id"})
LOCATION_KEYS = frozenset({"location", "location_id"})
APPOINTMENT_TYPE_KEYS = frozenset({"appointment_type", "appointment_type_id"})


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
    ``readable_details``); and by event id, what its Record cell says (a row about a
    request is linked by the page instead, and a row about nothing has none)."""

    details: dict[str, dict[Any, str]]
    records: dict[int, str]


def trail_names(events: Sequence[AuditEvent]) -> TrailNames:
    """The names of the ids the events keep, in their details and as their targets. Three
    queries at most, and a fourth (the checklist) when a row names checklist items,
    whatever the number of events."""
    wanted: dict[str, set[int]] = {"staff": set(), "locations": set(), "types": set()}
    for key, value in _keyed_ids(event.details for event in events):
        if key in STAFF_KEYS:
            wanted["staff"].add(value)
        elif key in LOCATION_KEYS:
            wanted["locations"].add(value)
        elif key in APPOINTMENT_TYPE_KEYS:
            wanted["types"].add(value)
    for event in events:
        kind = TARGET_KINDS.get(event.target_type or "")
        if kind and (event.target_id or "").isdigit():
            wanted[kind].add(int(event.target_id))  # type: ignore[arg-type]
    names = names_by_id(wanted["staff"], wanted["locations"], wanted["types"])
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
        },
        records={
            event.id: text
            for event in events
            if (text := record_cell(event, names, items, pages)) is not None
        },
    )


def _about_checklist_items(event: AuditEvent) -> bool:
    """Whether a row names checklist items: as its target, or the items of an ask."""
    return event.target_type == "checklist_item" or (
        isinstance(event.details, Mapping) and isinstance(event.details.get("items"), list)
    )


def record_cell(
    event: AuditEvent,
    names: Names,
    items: Mapping[str, str],
    pages: Mapping[int, str] | None = None,
) -> str | None:
    """What a row is about, as an administrator reads it: "Working hours of Dr. Okafor
    (12)", "Checklist item “MRI report”", "Feedback on “Treatments” (7)". A record since
    deleted keeps its id; a target of a kind not named here shows its type and id as
    stored. None for a request (the page links it) and for a row about nothing. ``pages``
    gives, by id, the page of feedback whose row does not keep it in its details."""
    kind, target = event.target_type, event.target_id or ""
    if not kind or kind == "request":
        return None
    number = int(target) if target.isdigit() else None
    if kind == "staff":
        return _("Staff account %(name)s", name=_named(names.staff, number, target))
    if kind == "agenda":
        return _("Agenda of %(name)s", name=_named(names.staff, number, target))
    if kind == "location":
        return _("Location %(name)s", name=_named(names.locations, number, target))
    if kind == "appointment_type":
        return _("Appointment type %(name)s", name=_named(names.appointment_types, number, target))
    if kind in ("working_hours", "schedule_exception"):
        # The row may be deleted (the deletion is what is audited): its specialist is in the
        # details the row was written with, under "before" or "after".
        specialist = _detail(event.details, "specialist_id")
        who = names.staff.get(specialist) if isinstance(specialist, int) else None
        if kind == "working_hours":
            if who is None:
                return _("Working hours %(id)s", id=target)
            return _("Working hours of %(name)s (%(id)s)", name=who, id=target)
        if _detail(event.details, "kind") == "extra":
            if who is None:
                return _("Extra hours %(id)s", id=target)
            return _("Extra hours of %(name)s (%(id)s)", name=who, id=target)
        if who is None:
            return _("Time off %(id)s", id=target)
        return _("Time off of %(name)s (%(id)s)", name=who, id=target)
    if kind == "checklist_item":
        labels = event.details.get("labels") if isinstance(event.details, Mapping) else None
        label = items.get(target) or asks.label_of(
            target, labels if isinstance(labels, dict) else None
        )
        return _("Checklist item “%(label)s”", label=label)
    if kind == "patient":
        return _("Patient of %(reference)s", reference=target)
    # The clinic's one set of settings, or the clinic's data as a whole: no id to show.
    whole = {
        "clinic_settings": _("Booking rules"),
        "outcome_settings": _("Follow-up settings"),
        "clinic": _("Clinic settings"),
        "outcomes": _("Registry of outcomes"),
        "retention": _("Records past their keeping time"),
        "audit": _("Audit trail"),
    }
    if kind in whole:
        return whole[kind]
    # What these rows keep as their target (a draft's id, the page an upload came through)
    # is still shown: this page is the only place an admin reads it.
    if kind == "draft":
        return (
            _("Request not yet sent (%(id)s)", id=target) if target else _("Request not yet sent")
        )
    if kind == "upload":
        return _("Patient's upload (%(id)s)", id=target) if target else _("Patient's upload")
    if kind == "offer":
        return _("Waiting list offer %(id)s", id=target)
    if kind == "page_feedback":
        slug = _detail(event.details, "page")
        if not slug and pages and number is not None:
            slug = pages.get(number)
        if slug and target:
            return _("Feedback on “%(page)s” (%(id)s)", page=page_name(str(slug)), id=target)
        return _("Page feedback %(id)s", id=target) if target else _("Page feedback")
    return f"{kind.replace('_', ' ')} {target}".strip()


def _named(found: Mapping[int, str], number: int | None, target: str) -> str:
    """A target's name with its id ("Dr. Okafor (5)"), or its id alone when it has none."""
    name = found.get(number) if number is not None else None
    return f"{name} ({target})" if name else target


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
