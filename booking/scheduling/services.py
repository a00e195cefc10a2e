"""Scheduling operations: locations, appointment types, holding and moving appointments."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr

from blinker import Namespace
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import and_, exists, func, inspect, select, true
from sqlalchemy.exc import DBAPIError, IntegrityError

from booking.audit.services import changes, record
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery
from booking.scheduling.availability import (
    STEP,
    OpenSlot,
    clinic_settings,
    find_open_slot,
    open_slots,
    week_start,
)
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    Location,
    NamedInLanguages,
    ScheduleException,
    VisitMode,
    WorkingHours,
    is_overlap_error,
)
from booking.scheduling.visits import where, where_html
from booking.staff.models import StaffUser
from booking.templating import isolated, language_name, naming
from booking.timeutil import from_clinic_local, now_utc, to_clinic_tz


class LocationError(ValueError):
    """A location change refused; ``field`` names the form field it concerns."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AddressNotices:
    """What a listener of ``location_moved`` wrote: the patients' emails telling them the new
    address (``told``, one a patient), other emails it wrote again with it (``rewritten``, such
    as a reminder waiting in the outbox), and how many patients it could not email
    (``untold``: they left no email address; staff phone them)."""

    told: list[OutboxEmail] = field(default_factory=list)
    rewritten: list[OutboxEmail] = field(default_factory=list)
    untold: int = 0


# Sent by ``edit_location`` when a location's address changes (in more than spacing or
# capitals), before it commits: ``location_moved.send(location, old_address=..., actor=...)``.
# The requests layer, above this one, tells the patients of the appointments at it in the same
# transaction and returns ``AddressNotices`` (``booking.requests.relocation``, connected by
# ``booking.requests.init_app``): the scheduling engine knows no request or patient.
location_moved = Namespace().signal("location-moved")
# Sent by ``edit_location`` before it writes a new address, the location locked:
# ``location_moving.send(location)``. A listener locks what its ``location_moved`` listener
# will change (``booking.requests.relocation`` locks the requests of the appointments there)
# while the location's row is not written yet: writing its unique name takes the lock the
# foreign-key check of every write of an appointment at it waits for, and a change to one
# made under its request's lock would wait for the save while the save waited for that
# request, a deadlock.
location_moving = Namespace().signal("location-moving")


@dataclass(frozen=True)
class LocationEdit:
    """What ``edit_location`` did: the fields changed (none: nothing written) and, when the
    address changed, how many patients had the new one written to the outbox (``emailed``:
    delivered later, by the worker) and how many could not be emailed."""

    changed: list[str]
    emailed: int = 0
    untold: int = 0
    readdressed: bool = False  # the address changed in more than spacing or capitals


def same_address(old: str, new: str) -> bool:
    """Whether two ways of writing an address read as the same place to a patient: they differ
    in spacing or capitals only."""
    return " ".join(old.split()).casefold() == " ".join(new.split()).casefold()


# Names in languages (locations and appointment types) ---------------------------------------


def other_languages() -> list[str]:
    """The languages patients read besides the clinic's: those a name may be given in."""
    clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
    return [code for code in current_app.config["LANGUAGES"] if code != clinic]


def clean_names(names: Mapping[str, str | None] | None) -> dict[str, str]:
    """The names given in the other languages, spaces collapsed. An empty one is left out:
    that language reads the clinic's name. A language the app does not offer is ignored."""
    given = names or {}
    kept = {code: " ".join((given.get(code) or "").split()) for code in other_languages()}
    return {code: name for code, name in kept.items() if name}


@dataclass(frozen=True)
class ProposedNames(NamedInLanguages):
    """Names as an admin proposes them, checked before any row changes."""

    name: str
    names: dict[str, str]

    @classmethod
    def typed(cls, name: str, names: Mapping[str, str | None] | None) -> ProposedNames:
        """The names as an admin typed them: spaces collapsed, empty languages left out."""
        return cls(" ".join(name.split()), clean_names(names))


def name_problem(
    proposed: NamedInLanguages,
    others: Iterable[NamedInLanguages],
    taken: str,
    taken_in_language: str,
) -> tuple[str, str] | None:
    """What is wrong with an admin's proposed names, as (message, form field), or None: no
    name, or one that reads like one of ``others`` (case aside) in some language, so that
    patients never see two choices that read the same. ``taken`` is the message for the
    clinic's name; ``taken_in_language`` (with %(name)s and %(language)s) for another
    language's own name."""
    if not proposed.name:
        return _("Please enter a name."), "name"
    others = list(others)
    for code in current_app.config["LANGUAGES"]:
        mine = proposed.name_in(code)
        if any(other.name_in(code).casefold() == mine.casefold() for other in others):
            # A language with no name of its own reads the clinic's.
            if not (proposed.names and code in proposed.names):
                return str(taken), "name"
            return naming(
                str(taken_in_language), name=isolated(mine), language=language_name(code)
            ), f"name_{code}"
    return None


def name_values(named: NamedInLanguages) -> dict[str, str]:
    """The names as audit details: ``name`` and ``name_<code>`` per other language."""
    return {"name": named.name, **{f"name_{c}": n for c, n in sorted((named.names or {}).items())}}


def active_locations() -> list[Location]:
    return list(
        db.session.scalars(
            select(Location).where(Location.active.is_(True)).order_by(Location.name)
        )
    )


def all_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def _check_location_names(proposed: ProposedNames, location: Location | None) -> None:
    problem = name_problem(
        proposed,
        [loc for loc in all_locations() if loc is not location],
        _l("A location with this name already exists."),
        _l("Another location is already called %(name)s in %(language)s."),
    )
    if problem is not None:
        raise LocationError(*problem)


def create_location(
    name: str,
    address: str,
    actor: StaffUser | None,
    names: Mapping[str, str | None] | None = None,
) -> Location:
    """Add a location. Its name reads apart from every other location's in each language."""
    proposed = ProposedNames.typed(name, names)
    _check_location_names(proposed, None)
    location = Location(
        name=proposed.name, names=proposed.names, address=address.strip(), active=True
    )
    db.session.add(location)
    _flush_location_names()
    record(
        "location_created",
        target_type="location",
        target_id=location.id,
        actor=actor,
        details={**name_values(location), "address": location.address},
    )
    db.session.commit()
    return location


def location_mark(location: Location) -> str:
    """A short mark of ``location``'s names and address as a page shows them, for its form to
    send back (``edit_location``)."""
    return text_digest(json.dumps([name_values(location), location.address]))[:16]


def edit_location(
    location: Location,
    name: str,
    names: Mapping[str, str | None],
    address: str,
    actor: StaffUser | None,
    *,
    shown: str,
) -> LocationEdit:
    """Change a location's names (the clinic's and the other languages') and its address:
    appointments at it, booked or to come, read the new ones in every page, email and calendar
    file written from now on (emails already sent keep what they said). The same naming rule
    as ``create_location``; the address is required. Returns the fields changed (none: nothing
    written), audited with their values before and after.

    A new address is a change every patient going there must know of: in the same transaction
    each patient with an in-person appointment still to come at the location is emailed it,
    with their calendar event updated (``location_moved``; the audit row counts them). Always,
    with no box to untick: an admin judging a change minor (a "typo" that was the street
    number) or missing a ticked box would send patients to the wrong door, and the email is
    the only way they learn. The one exception is a change of spacing or capitals only
    (``same_address``): the patient reads the same place, so nobody is emailed. An admin who
    corrects the address in two saves emails twice; the second email replaces the first if
    that one is still waiting in the outbox, and its calendar file updates the same event, so
    the patient's latest email and calendar hold the address as it now is: a short extra email
    is a far smaller harm than a patient at the old address.

    ``shown`` is ``location_mark`` of the location as the admin's page showed it: when another
    admin changed it since, nothing is written and the admin is asked to check."""
    # Locked (PostgreSQL FOR NO KEY UPDATE) before the mark is compared: another admin's save
    # waits, then finds the mark changed, rather than both passing the check. A booking
    # bringing an appointment to the location (``place_appointment`` reads it FOR SHARE) is
    # waited for, then told below, or waits and reads the new address: one not committed
    # when the listeners look for the patients going there would otherwise keep the old one.
    # Not FOR UPDATE: that blocks the foreign-key check of every write of an appointment at
    # the location (FOR KEY SHARE), and a change to one already there, made under its
    # request's lock, would wait for this save while this save's listener waits for that
    # request: a deadlock, one of the two failing.
    db.session.get(
        Location, location.id, with_for_update={"key_share": True}, populate_existing=True
    )
    if shown != location_mark(location):
        raise LocationError(
            naming(
                _(
                    "Another administrator changed this location since the page was shown: it "
                    "is now %(name)s, %(address)s. Check the names and address below, then save "
                    "again."
                ),
                name=isolated(location.name),
                address=isolated(location.address),
            ),
            "shown",
        )
    proposed = ProposedNames.typed(name, names)
    _check_location_names(proposed, location)
    address = address.strip()  # as ``create_location`` keeps it
    if not address:
        raise LocationError(_("Please enter the address."), "address")
    before = {**name_values(location), "address": location.address}
    after = {**name_values(proposed), "address": address}
    diff = changes(before, after)
    if not diff:
        return LocationEdit(changed=[])
    old_address = location.address
    readdressed = "address" in diff and not same_address(old_address, address)
    if readdressed:
        location_moving.send(location)  # before the row is written: see ``location_moving``
    location.name, location.names = proposed.name, proposed.names
    location.address = address
    _flush_location_names()
    notices: list[AddressNotices] = []
    if readdressed:
        db.session.flush()  # the emails read the new address
        notices = [
            result
            for _receiver, result in location_moved.send(
                location, old_address=old_address, actor=actor
            )
            if isinstance(result, AddressNotices)
        ]
    told = [email for notice in notices for email in notice.told]
    emailed = len({email.request_id for email in told})
    details = dict(diff)
    if readdressed:
        details["patients_emailed"] = emailed
    record(
        "location_updated",
        target_type="location",
        target_id=location.id,
        actor=actor,
        details=details,
    )
    db.session.commit()
    # Handed over in the order they were written (the outbox's order, which the sweep keeps
    # too), not the new address first: a patient's receipt or confirmation written again then
    # comes before the email saying the address changed, and a reminder after it. The
    # worker's threads may still send two at once, and mail servers keep no order: this only
    # keeps the queue from putting them out of order.
    enqueue_delivery(
        sorted(email.id for notice in notices for email in (*notice.told, *notice.rewritten))
    )
    return LocationEdit(
        changed=sorted(diff),
        emailed=emailed,
        untold=sum(notice.untold for notice in notices),
        readdressed=readdressed,
    )


def _flush_location_names() -> None:
    """Write a location's names: a twin another admin saved meanwhile hits the unique name
    (the check above read before it was committed), refused as the check refuses it."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise LocationError(_("A location with this name already exists."), "name") from None


def set_location_active(location: Location, active: bool, actor: StaffUser) -> None:
    if location.active == active:
        return
    location.active = active
    record(
        "location_updated",
        target_type="location",
        target_id=location.id,
        actor=actor,
        details={"active": {"before": not active, "after": active}},
    )
    db.session.commit()


class SlotTaken(Exception):  # noqa: N818 - the patient-facing event it names
    """The chosen time is offered for booking, but another appointment holds it."""


class SlotUnavailable(Exception):  # noqa: N818 - the patient-facing event it names
    """The chosen time is not offered for booking at all: in the past, outside the hours, on
    time off, outside the booking limits, or of an appointment type no longer offered."""


@dataclass(frozen=True)
class SlotChoice:
    """A slot as chosen on a page: checked against the engine when it is booked."""

    appointment_type_id: int
    specialist_id: int
    location_id: int
    starts_at: datetime


@dataclass(frozen=True)
class FreedTime:
    """The time an appointment gave up (moved or cancelled), to be offered to others."""

    appointment_type_id: int | None
    specialist_id: int
    location_id: int
    starts_at: datetime
    request_id: int

    @classmethod
    def of(cls, appointment: Appointment) -> FreedTime:
        """The time an appointment holds now (take it before moving or cancelling it)."""
        return cls(
            appointment.appointment_type_id,
            appointment.specialist_id,
            appointment.location_id,
            appointment.starts_at,
            appointment.request_id,
        )


@dataclass(frozen=True)
class Names:
    """Names of staff, locations and appointment types by id, for a page that shows rows
    written with their ids (the audit trail). A record that no longer exists has none."""

    staff: dict[int, str] = field(default_factory=dict)
    locations: dict[int, str] = field(default_factory=dict)
    appointment_types: dict[int, str] = field(default_factory=dict)


def names_by_id(
    staff: Iterable[int] = (), locations: Iterable[int] = (), appointment_types: Iterable[int] = ()
) -> Names:
    """The names of these ids: one query per kind asked for, whatever the number of ids."""
    staff_ids, location_ids, type_ids = set(staff), set(locations), set(appointment_types)
    names = Names()
    if staff_ids:
        rows = db.session.execute(
            select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(staff_ids))
        )
        names.staff.update(rows.tuples().all())
    if location_ids:
        places = db.session.scalars(select(Location).where(Location.id.in_(location_ids)))
        names.locations.update((place.id, place.display_name) for place in places)
    if type_ids:
        kinds = db.session.scalars(select(AppointmentType).where(AppointmentType.id.in_(type_ids)))
        names.appointment_types.update((kind.id, kind.display_name) for kind in kinds)
    return names


def active_appointment_types() -> list[AppointmentType]:
    return list(
        db.session.scalars(
            select(AppointmentType)
            .where(AppointmentType.active.is_(True))
            .order_by(AppointmentType.duration_minutes.desc(), AppointmentType.name)
        )
    )


# Built once: the request form and the home page ask on every view (one round trip).
_SCHEDULING_ENABLED = select(
    and_(
        exists().where(AppointmentType.active.is_(True)),
        exists().where(WorkingHours.id.is_not(None)),
    )
)


def scheduling_enabled() -> bool:
    """Whether patients can pick a time: at least one appointment type and some hours."""
    return bool(db.session.scalar(_SCHEDULING_ENABLED))


def new_uid() -> str:
    domain = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2]
    return f"{uuid.uuid4()}@{domain or 'spineconsult.invalid'}"


def resolve_choice(
    choice: SlotChoice,
    *,
    ignore_appointment_id: int | None = None,
    enforce_limits: bool = True,
) -> tuple[AppointmentType, OpenSlot]:
    """The appointment type and the open slot of a choice. SlotTaken when another
    appointment holds the time; SlotUnavailable when it is not a time offered for booking at
    all (a forged or stale choice), so the patient is not told someone else took it."""
    appointment_type = db.session.get(AppointmentType, choice.appointment_type_id)
    if appointment_type is None:
        raise SlotUnavailable
    if not appointment_type.active:
        # No longer offered for booking; an appointment already of this type keeps it, and
        # its patient may still move it to another time of it.
        moving = (
            db.session.get(Appointment, ignore_appointment_id) if ignore_appointment_id else None
        )
        if moving is None or moving.appointment_type_id != appointment_type.id:
            raise SlotUnavailable

    def find(ignore_bookings: bool) -> OpenSlot | None:
        return find_open_slot(
            appointment_type,
            choice.specialist_id,
            choice.location_id,
            choice.starts_at,
            ignore_appointment_id=ignore_appointment_id,
            enforce_limits=enforce_limits,
            ignore_bookings=ignore_bookings,
        )

    slot = find(ignore_bookings=False)
    if slot is None:
        # Only a refusal asks again (without the appointments) to say which one it is.
        raise SlotUnavailable if find(ignore_bookings=True) is None else SlotTaken
    return appointment_type, slot


def place_appointment(
    appointment: Appointment,
    appointment_type: AppointmentType,
    slot: OpenSlot,
    *,
    new_sequence: bool = False,
) -> None:
    """Put an appointment on a slot (new or moved) and let the database check it is free.
    A video visit's join link goes when it moves to another time or specialist.
    ``new_sequence``: the move also updates the calendar invitation the patient holds.

    Flushes; the caller commits. An overlap the database refuses becomes SlotTaken. A moved
    appointment then keeps its old time and the caller's transaction stays usable (the page
    can still be shown); after a refused new appointment the caller must roll back.

    The move is the transaction's last write to the appointment's row: on PostgreSQL every
    UPDATE of the row checks the no-overlap constraint again, and one made after the move
    (the invitation's sequence, as callers once did) waits for a racer moving another
    appointment onto the same time while that racer waits for this one: the deadlock
    PostgreSQL then breaks came out as an error page instead of "that time was just taken".
    """
    moving = inspect(appointment).persistent
    with db.session.no_autoflush:  # the appointment may be pending, still without a time
        buffer = timedelta(minutes=clinic_settings().buffer_minutes)
        # The type and the location as they stand, read again in one statement (the emails
        # written next read them) and held until this booking commits (PostgreSQL FOR
        # SHARE). An admin changing how the type's visits take place waits, then counts
        # this appointment (``admin_services.edit_appointment_type``). An admin correcting
        # the location's address (``edit_location``, which locks it first) either waits,
        # then tells this patient the new address with the others, or is waited for, and
        # the emails read the new one: never a patient left with the old address only.
        # Not the location of an appointment already to come at it: the correction emails
        # that one under its request's lock, which the caller holds (``lock_request``), and
        # waiting for the location under it would deadlock with the correction waiting for
        # the request.
        there = (
            moving
            and appointment.location_id == slot.location_id
            and appointment.active
            and appointment.starts_at > now_utc()
        )
        row = db.session.execute(
            select(AppointmentType, Location)
            .join(Location, true())  # two rows by id: one statement, not a cartesian FROM
            .where(AppointmentType.id == appointment_type.id, Location.id == slot.location_id)
            .with_for_update(
                read=True, of=AppointmentType if there else [AppointmentType, Location]
            )
            .execution_options(populate_existing=True)
        ).first()
        if row is not None:
            appointment_type = row[0]
    # begin_nested() flushes what is pending before its SAVEPOINT, so a move is made inside
    # it: PostgreSQL aborts the whole transaction on a refused statement outside a savepoint,
    # and the losing patient's page would then fail. A new appointment has no time to flush
    # before this; it is stored with the request that holds it, all or nothing.
    moved_from = (appointment.specialist_id, appointment.starts_at) if moving else None
    try:
        with db.session.begin_nested() if moving else nullcontext():
            appointment.appointment_type_id = appointment_type.id
            appointment.specialist_id = slot.specialist_id
            appointment.location_id = slot.location_id
            appointment.starts_at = slot.starts_at
            appointment.ends_at = slot.ends_at
            appointment.blocked_until = slot.ends_at + buffer
            appointment.active = True
            appointment.placed_at = now_utc()
            if new_sequence:
                appointment.sequence += 1
            if moved_from != (slot.specialist_id, slot.starts_at) or (
                appointment_type.mode is not VisitMode.VIDEO
            ):
                # A video service's link is made for one meeting, or one specialist's room:
                # after a move, staff give one for the new time.
                appointment.join_link = None
            db.session.flush()
    except DBAPIError as exc:  # IntegrityError, or a deadlock between two racers
        if is_overlap_error(exc):
            raise SlotTaken from None
        raise
    # The ids changed, not the objects already loaded: without this the email and calendar
    # file written next in this transaction named the old specialist, place and type.
    db.session.expire(appointment, ["specialist", "location", "appointment_type"])


@dataclass(frozen=True)
class SlotView:
    key: str
    starts_at: datetime
    ends_at: datetime
    specialist: str
    location: str
    address: str
    # The appointment type's name and how its visits take place, where a page shows one
    # chosen time on its own (a video consultation must not read as a visit to the address).
    appointment_type: str = ""
    mode: VisitMode = VisitMode.IN_PERSON

    @property
    def place(self) -> str:
        """Who and where, as the picker groups a day's times (who, for a visit from home)."""
        if self.mode is not VisitMode.IN_PERSON:
            return self.specialist
        return f"{self.specialist} · {self.location}"

    @property
    def place_html(self) -> Markup:
        """``place`` for a page: each name isolated (``<bdi>``), or two names in a
        right-to-left script would read in each other's place around the dot."""
        if self.mode is not VisitMode.IN_PERSON:
            return Markup("<bdi>{}</bdi>").format(self.specialist)
        return Markup("<bdi>{}</bdi> · <bdi>{}</bdi>").format(self.specialist, self.location)

    @property
    def where(self) -> str:
        """Where the chosen time's visit takes place, as patients read it."""
        return where(self.mode, self.location, self.address)

    @property
    def where_html(self) -> Markup:
        """``where`` for a page, the location's name isolated (``visits.where_html``)."""
        return where_html(self.mode, self.location, self.address)

    @property
    def part(self) -> int:
        """0 for a morning time, 1 for an afternoon one (clinic time)."""
        return 0 if to_clinic_tz(self.starts_at).hour < 12 else 1


def describe_slots(slots: list[OpenSlot], mode: VisitMode = VisitMode.IN_PERSON) -> list[SlotView]:
    """Slots of a type whose visits take place so (``mode``), with the names a patient reads
    (two queries, whatever the number of slots)."""
    specialist_ids = {s.specialist_id for s in slots}
    location_ids = {s.location_id for s in slots}
    names = dict(
        db.session.execute(
            select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(specialist_ids))
        ).all()
    )
    places = {
        loc.id: loc
        for loc in db.session.scalars(select(Location).where(Location.id.in_(location_ids)))
    }
    return [
        SlotView(
            key=s.key,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            specialist=names.get(s.specialist_id, ""),
            location=places[s.location_id].display_name if s.location_id in places else "",
            address=places[s.location_id].address if s.location_id in places else "",
            mode=mode,
        )
        for s in slots
    ]


def one_slot_per_place(slots: list[OpenSlot], anywhere: bool = False) -> list[OpenSlot]:
    """One slot per start time and location (per start time, ``anywhere``: a visit from
    home), for a patient who takes the first available specialist: the specialists free at
    that time take turns (step by step), so no one specialist gets every booking. In time
    order."""
    free: dict[tuple[datetime, int], list[OpenSlot]] = {}
    for slot in sorted(slots):
        free.setdefault((slot.starts_at, 0 if anywhere else slot.location_id), []).append(slot)
    return sorted(
        options[int(starts_at.timestamp() // STEP.total_seconds()) % len(options)]
        for (starts_at, _location), options in free.items()
    )


def group_by_day(views: list[SlotView]) -> list[tuple[date, list[SlotView]]]:
    """Slots under their clinic-time day, in order."""
    days: dict[date, list[SlotView]] = {}
    for view in views:
        days.setdefault(to_clinic_tz(view.starts_at).date(), []).append(view)
    return list(days.items())


def appointments_to_come(
    specialist_id: int | None = None,
    *,
    location_id: int | None = None,
    appointment_type_id: int | None = None,
) -> int:
    """How many held or confirmed appointments ``specialist_id`` has (or ``location_id``
    hosts, or are of ``appointment_type_id``) from now on: what must move when the specialist
    leaves or the location closes, or what was booked as the type stands."""
    stmt = select(func.count(Appointment.id)).where(
        Appointment.active.is_(True), Appointment.starts_at >= now_utc()
    )
    if specialist_id is not None:
        stmt = stmt.where(Appointment.specialist_id == specialist_id)
    if location_id is not None:
        stmt = stmt.where(Appointment.location_id == location_id)
    if appointment_type_id is not None:
        stmt = stmt.where(Appointment.appointment_type_id == appointment_type_id)
    return db.session.scalar(stmt) or 0


def active_specialists_for_booking() -> list[StaffUser]:
    """The specialists patients may choose: active, with weekly hours or extra hours still
    to come at an open location. Hours at a closed one offer no time (``availability``): a
    patient choosing that specialist would be shown none, whichever weeks they paged
    through. A specialist working extra hours only (a locum) is offered in them."""
    at_open_locations = (
        select(WorkingHours.specialist_id)
        .join(Location, WorkingHours.location_id == Location.id)
        .where(Location.active.is_(True))
    )
    extra_to_come = (
        select(ScheduleException.specialist_id)
        .join(Location, ScheduleException.location_id == Location.id)
        .where(
            ScheduleException.kind == "extra",
            ScheduleException.ends_at > now_utc(),
            Location.active.is_(True),
        )
    )
    return list(
        db.session.scalars(
            select(StaffUser)
            .where(StaffUser.role == "specialist", StaffUser.active.is_(True))
            .where(StaffUser.id.in_(at_open_locations) | StaffUser.id.in_(extra_to_come))
            .order_by(StaffUser.full_name)
        )
    )


PICKER_DAYS = 14


@dataclass(frozen=True)
class Picker:
    """What a time picker page shows: two weeks of open slots, specialist and location
    filters, paging."""

    specialists: list[StaffUser]
    specialist: StaffUser | None
    start: datetime
    end: datetime
    earlier: datetime | None
    days: list[tuple[date, list[SlotView]]]
    locations: list[Location] = field(default_factory=list)
    location: Location | None = None
    remote: bool = False  # a visit from home: no place to choose


def picker(
    args: Mapping[str, str],
    appointment_type: AppointmentType,
    *,
    moving: Appointment | None = None,
    one_per_place: bool = False,
) -> Picker:
    """The picker for ``?specialist=&location=&from=``; ``moving`` is the appointment being
    moved (its own time is free for it, and not offered again). With ``one_per_place`` and no
    specialist chosen ("first available"), each start time is offered once per location. A
    type whose visits take place from home (video, phone) has no place to choose: no location
    filter, and with ``one_per_place`` each start time once."""
    specialists = active_specialists_for_booking()
    specialist = next((s for s in specialists if str(s.id) == args.get("specialist", "")), None)
    today = week_start(None)
    start = max(week_start(args.get("from")), today)
    # Two weeks of clinic days, midnight to midnight: 14 x 24 hours from a UTC instant would
    # end an hour off across a clock change, and the next page repeat or skip a day.
    first_day = to_clinic_tz(start).date()
    end = from_clinic_local(first_day + timedelta(days=PICKER_DAYS), time())
    slots = open_slots(
        appointment_type,
        start,
        end,
        specialist_id=specialist.id if specialist else None,
        ignore_appointment_id=moving.id if moving else None,
    )
    if moving is not None:
        slots = [
            s
            for s in slots
            if (s.starts_at, s.specialist_id) != (moving.starts_at, moving.specialist_id)
        ]
    remote = appointment_type.remote
    locations = active_locations()
    location = next((loc for loc in locations if str(loc.id) == args.get("location", "")), None)
    if remote:
        location = None
    if location is not None:
        slots = [s for s in slots if s.location_id == location.id]
    if one_per_place and specialist is None:
        slots = one_slot_per_place(slots, anywhere=remote)
    return Picker(
        specialists=specialists,
        specialist=specialist,
        start=start,
        end=end,
        earlier=(
            max(from_clinic_local(first_day - timedelta(days=PICKER_DAYS), time()), today)
            if start > today
            else None
        ),
        days=group_by_day(describe_slots(slots, appointment_type.mode)),
        locations=locations,
        location=location,
        remote=remote,
    )
