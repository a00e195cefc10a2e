"""Factory helpers: real rows made through the real services, with sensible defaults."""

from __future__ import annotations

import io
import secrets
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from booking.documents.storage import DocumentUpload
from booking.patients.services import RequestSubmission, submit_request
from booking.requests import history
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import AppointmentType, Location
from booking.scheduling.services import create_location
from booking.staff.models import StaffRole, StaffUser
from booking.staff.services import create_staff
from tests.support import PASSWORD, Clinic, pdf_bytes

if TYPE_CHECKING:
    from booking.dashboard.services import Slot
    from booking.scheduling.availability import OpenSlot


def make_staff(role: str = "coordinator", email: str | None = None, **kw: Any) -> StaffUser:
    email = email or f"{role}-{secrets.token_hex(3)}@example.com"
    return create_staff(
        email=email,
        full_name=kw.get("full_name", f"{role.title()} {email.split('@')[0]}"),
        role=StaffRole(role),
        password=kw.get("password", PASSWORD),
        actor=None,
    )


def staff_user(email: str) -> StaffUser:
    """The account with ``email`` (one the ``staff`` fixture made, say), in this session."""
    from booking.extensions import db

    return db.session.scalars(select(StaffUser).where(StaffUser.email == email)).one()


def make_location(
    name: str = "Main clinic",
    address: str = "Friedrichstr. 1, Berlin",
    names: dict[str, str] | None = None,
) -> Location:
    """A location; ``names`` are its names in other languages ({"es": ...})."""
    return create_location(name, address, actor=None, names=names)


def make_request(
    *, documents: int = 0, red_flags: set[str] | None = None, **overrides: Any
) -> ConsultationRequest:
    values: dict[str, Any] = {
        "submission_token": secrets.token_urlsafe(32),
        "locale": "en",
        "full_name": "Erika Mustermann",
        "date_of_birth": date(1970, 5, 17),
        "guardian_name": None,
        "email": "erika.mustermann@example.com",
        "phone": "+4930901820",
        "preferred_contact": "email",
        # Eight of ten sections answered (the fewest a score allows): 20 / 40 points = 50%.
        "odi_answers": {
            "pain_intensity": 2,
            "personal_care": 2,
            "lifting": 3,
            "walking": 3,
            "sitting": 3,
            "standing": 3,
            "sleeping": 2,
            "social_life": 2,
        },
        "red_flags": red_flags or set(),
        "documents": [
            DocumentUpload(io.BytesIO(pdf_bytes(f"Report {n}")), f"report-{n}.pdf", None)
            for n in range(documents)
        ],
    }
    answers = {
        name: overrides.pop(name) for name in list(overrides) if name in history.ANSWER_NAMES
    }
    values["answers"] = history.example_answers(**answers)
    values.update(overrides)
    return submit_request(RequestSubmission(**values))


def make_appointment_type(
    name: str = "New-patient spine evaluation",
    minutes: int = 45,
    names: dict[str, str] | None = None,
):
    """An appointment type; ``names`` are its names in other languages ({"es": ...})."""
    from booking.extensions import db
    from booking.scheduling.models import AppointmentType

    appointment_type = AppointmentType(
        name=name, names=names or {}, duration_minutes=minutes, active=True
    )
    db.session.add(appointment_type)
    db.session.commit()
    return appointment_type


def make_hours(
    specialist: StaffUser,
    location: Location,
    weekdays: range | list[int] = range(7),
    start: str = "08:00",
    end: str = "18:00",
) -> None:
    """Weekly working hours for a specialist at a location (clinic wall-clock time; ``end``
    may be "24:00", midnight)."""
    from booking.extensions import db
    from booking.scheduling.models import WorkingHours
    from booking.timeutil import read_clock

    for weekday in weekdays:
        db.session.add(
            WorkingHours(
                specialist_id=specialist.id,
                location_id=location.id,
                weekday=weekday,
                start_time=read_clock(start),
                end_time=read_clock(end, end=True),
            )
        )
    db.session.commit()


def appointment_started(reference: str, ago: timedelta = timedelta(hours=1)) -> None:
    """The clock moved on: the request's appointment started ``ago`` (staff book only times
    to come, and mark completed or no-show only once the appointment has started)."""
    from booking.extensions import db
    from booking.timeutil import now_utc

    consultation = db.session.scalars(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()
    appointment = consultation.appointment
    assert appointment is not None, f"{reference} has no appointment"
    shift = now_utc() - ago - appointment.starts_at
    appointment.starts_at += shift
    appointment.ends_at += shift
    appointment.blocked_until += shift  # the buffer after it moves with it
    db.session.commit()


def make_assigned_requests(clinic: Clinic) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two requests with one document each, confirmed a week out by the coordinator: "own"
    (Anna Assigned, 09:00) is Dr. Weber's, "other" (Otto Other, 11:00) Dr. Okafor's. Both
    specialists must work at ``clinic``'s location. Returns their reference, document id and
    patient name."""
    from booking.dashboard import services as workflow
    from booking.extensions import db
    from booking.scheduling.models import AppointmentType, Location
    from booking.staff.models import StaffUser
    from booking.timeutil import clinic_today

    coordinator = db.session.get(StaffUser, clinic.coordinator.id)
    location = db.session.get(Location, clinic.location)
    appointment_type = db.session.get(AppointmentType, clinic.type)
    day = clinic_today() + timedelta(days=7)
    made = []
    for name, email, specialist_id, hour in (
        ("Anna Assigned", "anna@example.com", clinic.weber.id, 9),
        ("Otto Other", "otto@example.com", clinic.okafor.id, 11),
    ):
        consultation = make_request(documents=1, full_name=name, email=email)
        specialist = db.session.get(StaffUser, specialist_id)
        workflow.confirm_request(
            consultation,
            coordinator,
            workflow.Slot(appointment_type, specialist, location, day, time(hour)),
        )
        made.append(
            {
                "reference": consultation.reference,
                "document": consultation.documents[0].id,
                "patient": name,
            }
        )
    return made[0], made[1]


def book_first_open_time(clinic: Clinic) -> ConsultationRequest:
    """A request booked at the first time open for ``clinic``'s type (its specialist's
    appointment to come). Inside an app context."""
    from booking.extensions import db
    from booking.scheduling.models import AppointmentType
    from booking.scheduling.services import SlotChoice
    from tests.support import first_open_slot

    slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
    return make_request(
        slot=SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at)
    )


def offer_a_cancelled_time(kind_id: int, slots: list[OpenSlot]) -> ConsultationRequest:
    """A time cancelled and offered to a patient on the waiting list: "first@example.com"
    booked at the first of ``slots`` (open times of the type ``kind_id``, in order) and
    "waiting@example.com" at the first of them a day or more later, on the waiting list; the
    first cancels, and its time is offered to the waiting patient (the offer's email in the
    outbox). The waiting patient's request. Inside an app context."""
    from booking.manage import services as manage
    from booking.requests.waitlist import join_waitlist
    from booking.scheduling.services import SlotChoice

    later = next(s for s in slots if s.starts_at >= slots[0].starts_at + timedelta(days=1))
    first, waiting = (
        make_request(
            email=f"{who}@example.com",
            slot=SlotChoice(kind_id, slot.specialist_id, slot.location_id, slot.starts_at),
        )
        for who, slot in (("first", slots[0]), ("waiting", later))
    )
    join_waitlist(waiting)
    manage.cancel(first, None)
    return waiting


def staff_slot(
    kind: AppointmentType, starts_at: datetime, specialist_id: int, location_id: int
) -> Slot:
    """The time ``starts_at`` (an open slot's, in UTC) of ``kind`` with the specialist at the
    location, as a coordinator enters it on the record: the clinic's wall-clock day and time
    (a dashboard ``Slot``). Inside an app context."""
    from booking.dashboard.services import Slot
    from booking.extensions import db
    from booking.timeutil import to_clinic_tz

    local = to_clinic_tz(starts_at)
    return Slot(
        kind,
        db.session.get(StaffUser, specialist_id),
        db.session.get(Location, location_id),
        local.date(),
        local.time(),
    )


def confirm_at(
    consultation: ConsultationRequest,
    coordinator: StaffUser,
    kind: AppointmentType,
    starts_at: datetime,
    specialist_id: int,
    location_id: int,
) -> None:
    """``coordinator`` confirms ``consultation`` on its record at the open time ``starts_at``
    of ``kind`` with the specialist at the location (``staff_slot``), through the real
    ``confirm_request``: it commits, emails the patient and offers a held time it moves away
    from to the waitlist. Inside an app context."""
    from booking.dashboard.services import confirm_request

    confirm_request(
        consultation, coordinator, staff_slot(kind, starts_at, specialist_id, location_id)
    )


def first_type_open_times(days_ahead: int) -> tuple[AppointmentType, list[OpenSlot]]:
    """The first active appointment type (by id: on a demo site, the demo's first) and its
    open times in the week from ``days_ahead`` days from now, in order. Inside an app
    context."""
    from booking.extensions import db
    from booking.scheduling.availability import open_slots
    from booking.timeutil import now_utc

    kind = db.session.scalars(
        select(AppointmentType).where(AppointmentType.active).order_by(AppointmentType.id)
    ).first()
    start = now_utc() + timedelta(days=days_ahead)
    return kind, open_slots(kind, start, start + timedelta(days=7))


def clinic_slot(clinic: Clinic, day: date, at: time) -> Any:
    """The clinic's appointment type with Dr. Weber at its location, on ``day`` at the
    wall-clock time ``at``, as a coordinator enters it on the record (a dashboard ``Slot``).
    Inside an app context."""
    from booking.dashboard.services import Slot
    from booking.extensions import db

    return Slot(
        db.session.get(AppointmentType, clinic.type),
        db.session.get(StaffUser, clinic.weber.id),
        db.session.get(Location, clinic.location),
        day,
        at,
    )


def slot_two_days_ahead(clinic: Clinic) -> Any:
    """The clinic's first open time two days or more from now, as a coordinator enters it
    on the record (a dashboard ``Slot``). Inside an app context."""
    from booking.extensions import db
    from booking.scheduling.availability import open_slots
    from booking.timeutil import now_utc

    kind = db.session.get(AppointmentType, clinic.type)
    start = now_utc() + timedelta(days=2)
    slot = open_slots(kind, start, start + timedelta(days=7))[0]
    return staff_slot(kind, slot.starts_at, slot.specialist_id, slot.location_id)


def confirmed_request(app: Any, clinic: Clinic, locale: str = "en") -> int:
    """A request confirmed by the coordinator at ``slot_two_days_ahead``; its id."""
    from booking.dashboard.services import confirm_request
    from booking.extensions import db

    with app.app_context():
        consultation = make_request(locale=locale)
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
        return consultation.id


def set_visit_mode(app: Any, clinic: Clinic, mode: Any) -> None:
    """How the clinic's appointment type's visits take place, as an admin sets it."""
    from booking.extensions import db
    from booking.scheduling import admin_services
    from booking.scheduling.models import AppointmentType

    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        admin_services.edit_appointment_type(kind, kind.name, {}, mode, actor=None)


def move_to_next_time(app: Any, clinic: Clinic, request_id: int, mode: Any = None) -> None:
    """The coordinator moves the request's appointment to the first open time after it, of
    a new type whose visits take place by ``mode`` (a ``VisitMode``; None: of its own type,
    the time alone changes)."""
    from booking.dashboard.services import reschedule_request
    from booking.extensions import db
    from booking.scheduling.availability import open_slots

    with app.app_context():
        consultation = db.session.get_one(ConsultationRequest, request_id)
        appointment = consultation.appointment
        kind = appointment.appointment_type
        if mode is not None:
            kind = make_appointment_type(f"Spine review ({mode.value})", minutes=30)
            kind.mode = mode
            db.session.commit()
        later = open_slots(kind, appointment.ends_at, appointment.ends_at + timedelta(days=7))
        reschedule_request(
            consultation,
            db.session.get_one(StaffUser, clinic.coordinator.id),
            staff_slot(kind, later[0].starts_at, later[0].specialist_id, later[0].location_id),
        )
