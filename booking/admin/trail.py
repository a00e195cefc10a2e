"""The audit trail as the admin reads it: the ids its rows keep (a specialist, a location, an
appointment type, in their details or as their target) named, looked up once per kind for
the whole page."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from booking.audit.models import AuditEvent
from booking.scheduling.services import names_by_id

# The details' keys that hold an id, by what it is the id of: the appointment's snapshot
# (``requests.lifecycle.snapshot``) and the schedule's rows (``scheduling.admin_services``).
STAFF_KEYS = frozenset({"specialist", "specialist_id"})
LOCATION_KEYS = frozenset({"location", "location_id"})
APPOINTMENT_TYPE_KEYS = frozenset({"appointment_type", "appointment_type_id"})


# The rows' targets that are one of the same kinds (an account changed, a place edited).
TARGET_KINDS = {"staff": "staff", "location": "locations", "appointment_type": "types"}


@dataclass(frozen=True)
class TrailNames:
    """For the page: by details key, the names of the ids kept under it (for
    ``readable_details``); and by (target type, target id), the target's name."""

    details: dict[str, dict[int, str]]
    targets: dict[tuple[str, str], str]


def trail_names(events: Sequence[AuditEvent]) -> TrailNames:
    """The names of the ids the events keep, in their details and as their targets. Three
    queries at most, whatever the number of events."""
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
    by_kind = {"staff": names.staff, "locations": names.locations, "types": names.appointment_types}
    return TrailNames(
        details={
            **dict.fromkeys(STAFF_KEYS, names.staff),
            **dict.fromkeys(LOCATION_KEYS, names.locations),
            **dict.fromkeys(APPOINTMENT_TYPE_KEYS, names.appointment_types),
        },
        targets={
            (target_type, str(number)): name
            for target_type, kind in TARGET_KINDS.items()
            for number, name in by_kind[kind].items()
        },
    )


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
