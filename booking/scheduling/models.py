"""Where and when a confirmed request is seen: clinic locations and appointments."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from babel import Locale
from flask_babel import get_locale
from sqlalchemy import (
    DDL,
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Time,
    UniqueConstraint,
    event,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.crypto import EncryptedText
from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest
    from booking.staff.models import StaffUser


class NamedInLanguages:
    """A name patients and staff read, given by an admin in the clinic's language (``name``,
    required and unique) and, optionally, in each other language (``names``: {"es": "..."}).

    One JSON column rather than a column per language: a language added to ``LANGUAGES``
    needs no migration. ``name`` stays a column of its own: the database keeps it required and
    unique whatever the case (``lower(name)``, as ``name_problem`` compares names), and lists
    sort by it."""

    name: str
    names: dict[str, str] | None

    def name_in(self, locale: Locale | str | None) -> str:
        """The name in ``locale`` ("es", or "es_MX" read as "es" when it has none of its
        own), else in the clinic's language."""
        if locale is not None and self.names:
            code = str(locale)
            for key in (code, code.partition("_")[0]):
                if self.names.get(key):
                    return self.names[key]
        return self.name

    @property
    def display_name(self) -> str:
        """The name in the reader's language: the page's, or the email's inside
        ``force_locale``. What every page, email and calendar file shows."""
        return self.name_in(get_locale())


class Location(NamedInLanguages, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The name in the other languages, by language code; addresses are not translated.
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    address: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (
        # "Annex" and "annex" read as one place to a patient: the admin pages refuse the second
        # (``services.name_problem``), and this refuses it when two admins save at once.
        Index("uq_location_name_lower", func.lower(name), unique=True),
    )


class VisitMode(enum.Enum):
    """How a visit takes place. A video or phone visit is still booked in a specialist's hours
    at a location (where the specialist is), but the patient is not sent there."""

    IN_PERSON = "in_person"
    VIDEO = "video"
    PHONE = "phone"


class AppointmentType(NamedInLanguages, db.Model):
    """What the patient books, e.g. a 45-minute new-patient spine evaluation."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The name in the other languages, by language code.
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    duration_minutes: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    mode: Mapped[VisitMode] = mapped_column(
        value_enum(VisitMode, "mode", 12), default=VisitMode.IN_PERSON
    )

    @property
    def remote(self) -> bool:
        """Whether the patient takes part from home (video or phone)."""
        return self.mode is not VisitMode.IN_PERSON

    __table_args__ = (
        CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration_range"),
        # As ``Location``'s: one name whatever the case, when two admins save at once too.
        Index("uq_appointment_type_name_lower", func.lower(name), unique=True),
    )


class WorkingHours(db.Model):
    """A specialist's weekly hours at one location, in the clinic's wall-clock time."""

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    weekday: Mapped[int]  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)

    specialist: Mapped[StaffUser] = relationship()
    location: Mapped[Location] = relationship()

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
    )


class ScheduleException(db.Model):
    """Time off (holiday, leave) or one-off extra hours for a specialist."""

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    kind: Mapped[str] = mapped_column(String(10))  # "time_off" or "extra"
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))  # for "extra"
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))

    specialist: Mapped[StaffUser] = relationship()
    location: Mapped[Location | None] = relationship()

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("kind IN ('time_off', 'extra')", name="kind_known"),
        CheckConstraint("kind = 'time_off' OR location_id IS NOT NULL", name="extra_has_location"),
        Index("ix_schedule_exception_range", "specialist_id", "starts_at"),
    )


class ClinicClosure(db.Model):
    """A day the whole clinic is closed, entered by an admin (a training day, a burst pipe),
    read with the settings' closed days (``booking.openinghours.clinic_closed_days``): weekly
    hours do not apply on it, extra hours entered for a specialist still do. Appointments
    already booked on it are not touched; staff move them."""

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)  # the clinic's calendar day
    reason: Mapped[str] = mapped_column(String(200))  # for staff, e.g. "Team training"
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    created_by: Mapped[StaffUser | None] = relationship()


class ClinicSettings(db.Model):
    """The clinic's booking rules, one row, edited by admins."""

    id: Mapped[int] = mapped_column(primary_key=True)
    buffer_minutes: Mapped[int] = mapped_column(default=10)
    min_notice_hours: Mapped[int] = mapped_column(default=24)
    horizon_days: Mapped[int] = mapped_column(default=60)
    cancel_notice_hours: Mapped[int] = mapped_column(default=24)

    __table_args__ = (
        CheckConstraint("buffer_minutes BETWEEN 0 AND 240", name="buffer_range"),
        CheckConstraint("min_notice_hours BETWEEN 0 AND 720", name="notice_range"),
        CheckConstraint("horizon_days BETWEEN 1 AND 730", name="horizon_range"),
        CheckConstraint("cancel_notice_hours BETWEEN 0 AND 720", name="cancel_notice_range"),
    )


class Appointment(db.Model):
    """A request's appointment. Rescheduling changes this row and raises ``sequence``, so the
    patient's calendar updates the same event (same ``uid``)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), unique=True
    )
    specialist_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    appointment_type_id: Mapped[int | None] = mapped_column(ForeignKey("appointment_type.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The specialist's time this appointment takes: its end plus the clinic's buffer. The
    # database refuses two active appointments of one specialist whose blocks overlap.
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)  # False once cancelled or declined
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    sequence: Mapped[int] = mapped_column(default=0)
    # When it was last put on its time (held, confirmed, moved): a reminder whose lead time had
    # already passed then is not sent, the patient has just been told the time. Empty only for
    # an appointment the migration found without a time to copy (treated as placed long ago).
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=now_utc)
    # A video visit's address to join it (https), given by staff from the clinic's video
    # service (``booking.scheduling.visits``); encrypted at rest: it may carry the meeting's
    # passcode, and whoever holds it can join.
    join_link: Mapped[str | None] = mapped_column(EncryptedText(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    request: Mapped[ConsultationRequest] = relationship(back_populates="appointment")
    specialist: Mapped[StaffUser] = relationship()
    location: Mapped[Location] = relationship()
    appointment_type: Mapped[AppointmentType | None] = relationship()

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("blocked_until >= ends_at", name="blocked_after_end"),
        # The calendar: one specialist's appointments in a time range.
        Index("ix_appointment_specialist_time", "specialist_id", "starts_at"),
        Index("ix_appointment_time", "starts_at"),
    )

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


class AvailabilityVersion(db.Model):
    """One row counting changes to what patients can book (see ``scheduling.versions``):
    pages showing open times are reused until it moves."""

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


# The migration adds the row; this covers create_all() (the tests).
event.listen(
    AvailabilityVersion.__table__,
    "after_create",
    DDL("INSERT INTO availability_version (id, version) VALUES (1, 0)"),
)


class ReminderSent(db.Model):
    """One reminder, once: the unique key stops a second worker (or a second run) sending the
    same reminder for the same appointment time again."""

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"))
    lead_hours: Mapped[int]
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the time it reminded of
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    __table_args__ = (UniqueConstraint("appointment_id", "lead_hours", "starts_at"),)


# No double booking, enforced by the database itself. PostgreSQL: an exclusion constraint over
# the specialist and the blocked time range of active appointments. SQLite has none, so
# triggers refuse the same overlap (SQLite runs one writer at a time, so they see every
# committed row). The migrations create the same objects; these hooks cover create_all(). No
# block is longer than 12 hours (8-hour type + 4-hour buffer), so the triggers look only at
# appointments starting up to a day earlier: an index range, whatever the history.
EXCLUSION_NAME = "ex_appointment_no_overlap"
OVERLAP_MESSAGE = "appointment_overlap"

# btree_gist must be installed in the database (the migration installs it; so does the test
# setup, once, before parallel workers create their tables).
PG_EXCLUSION = DDL(
    f"ALTER TABLE appointment ADD CONSTRAINT {EXCLUSION_NAME} EXCLUDE USING gist "
    "(specialist_id WITH =, tstzrange(starts_at, blocked_until) WITH &&) WHERE (active)"
)
SQLITE_TRIGGERS = [
    DDL(
        "CREATE TRIGGER appointment_no_overlap_insert BEFORE INSERT ON appointment "
        "WHEN NEW.active BEGIN "
        "SELECT RAISE(ABORT, 'appointment_overlap') FROM appointment "
        "WHERE specialist_id = NEW.specialist_id AND active "
        "AND starts_at > datetime(NEW.starts_at, '-1 day') "
        "AND starts_at < NEW.blocked_until AND blocked_until > NEW.starts_at; END"
    ),
    DDL(
        "CREATE TRIGGER appointment_no_overlap_update BEFORE UPDATE ON appointment "
        "WHEN NEW.active BEGIN "
        "SELECT RAISE(ABORT, 'appointment_overlap') FROM appointment "
        "WHERE specialist_id = NEW.specialist_id AND active AND id != NEW.id "
        "AND starts_at > datetime(NEW.starts_at, '-1 day') "
        "AND starts_at < NEW.blocked_until AND blocked_until > NEW.starts_at; END"
    ),
]
event.listen(Appointment.__table__, "after_create", PG_EXCLUSION.execute_if(dialect="postgresql"))
for _trigger in SQLITE_TRIGGERS:
    event.listen(Appointment.__table__, "after_create", _trigger.execute_if(dialect="sqlite"))


def is_overlap_error(exc: BaseException) -> bool:
    """Whether a database error is the no-double-booking guarantee refusing a booking."""
    orig = getattr(exc, "orig", exc)
    # 23P01: the exclusion constraint. 40P01: PostgreSQL may resolve two simultaneous
    # conflicting inserts under it as a deadlock; for the patient it is the same lost race.
    return getattr(orig, "sqlstate", None) in ("23P01", "40P01") or OVERLAP_MESSAGE in str(orig)


class WaitlistEntry(db.Model):
    """A patient who asked to be told when an earlier time of their appointment type frees."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), unique=True
    )
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_type.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class SlotOffer(db.Model):
    """A freed time offered to the waitlist, in waves of a few patients each
    (``booking.requests.waitlist``): the first patient emailed to accept it gets it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_type.id"))
    specialist_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Indexed: erasure and retention delete a request's claimed offers, and its foreign key's
    # ON DELETE reads them too (the table is never pruned).
    claimed_by_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="SET NULL"), index=True
    )
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last wave sent (1: the first) and when: the worker sends the next one
    # WAITLIST_WAVE_MINUTES later, claiming it by moving both on in one conditional UPDATE.
    wave: Mapped[int] = mapped_column(default=1)
    wave_sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # The request whose appointment gave the time up: no wave offers it its own time back.
    # Indexed for the same reason as ``claimed_by_request_id``.
    freed_by_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="SET NULL"), index=True
    )

    specialist: Mapped[StaffUser] = relationship()
    location: Mapped[Location] = relationship()
    appointment_type: Mapped[AppointmentType] = relationship()


class SlotOfferRecipient(db.Model):
    """A request a ``SlotOffer`` was emailed to, and when: only these may take it
    (``offered_to``: a forwarded link takes nothing), and no later wave emails them again."""

    offer_id: Mapped[int] = mapped_column(
        ForeignKey("slot_offer.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: erasure and retention delete a request's rows (the key leads with the offer).
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
