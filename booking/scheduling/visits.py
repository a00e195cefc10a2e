"""How a visit takes place, as patients read it: where they go, or how they take part from
home, and what they have ready. One place for every page, email and calendar file that shows
a booked or offered time, so a video or phone visit never reads as a visit to the address."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from booking.extensions import db
from booking.scheduling.models import AppointmentType, Location, VisitMode
from booking.templating import naming, unfilled
from booking.timeutil import clinic_dt, now_utc

MODE_LABELS = {
    VisitMode.IN_PERSON: _l("In person, at the location"),
    VisitMode.VIDEO: _l("By video"),
    VisitMode.PHONE: _l("By phone"),
}


class Booked(Protocol):
    """An appointment, or a time offered from the waitlist."""

    appointment_type: AppointmentType | None
    location: Location
    starts_at: datetime


def mode_of(appointment_type: AppointmentType | None) -> VisitMode:
    """A time booked before types existed, or without one, is a visit to its location."""
    return appointment_type.mode if appointment_type is not None else VisitMode.IN_PERSON


# A visit to a location, as patients read it: its name, then its address.
PLACE = "{name}, {address}"


def where(mode: VisitMode, location_name: str, address: str, *, joinable: bool = False) -> str:
    """Where the visit takes place, in the reader's language; ``joinable``: the patient has
    the video visit's link (shown with it: ``visit_join_link``)."""
    if mode is VisitMode.VIDEO:
        if joinable:
            return _("By video, from wherever suits you, with the link the clinic sent you.")
        return _("By video, from wherever suits you: the clinic will send you how to join.")
    if mode is VisitMode.PHONE:
        return _("By phone: the specialist will call you on the phone number you gave.")
    return PLACE.format(name=location_name, address=address)


def visit_where(booked: Booked) -> str:
    """``where`` for an appointment or an offered time (a template global)."""
    location = booked.location
    return where(
        mode_of(booked.appointment_type),
        location.display_name,
        location.address,
        joinable=visit_join_link(booked) is not None,
    )


def where_html(
    mode: VisitMode, location_name: str, address: str, *, joinable: bool = False
) -> Markup:
    """``where`` for the HTML part of an email and for a page: the location's name is
    isolated (``<bdi>``, as the type's and the specialist's names are), or a name in a
    right-to-left script takes the comma and the address's street number into its run and
    the reader sees them reordered. An email's text part has no markup to isolate with and
    keeps ``where``. A visit from home says how, escaped."""
    if mode is not VisitMode.IN_PERSON:
        return escape(where(mode, location_name, address, joinable=joinable))
    isolated = Markup("<bdi>{}</bdi>").format(location_name)
    # PLACE is this module's constant, no input: format() escapes the values.
    return Markup(PLACE).format(name=isolated, address=address)  # noqa: S704  # nosec B704


def visit_where_html(booked: Booked) -> Markup:
    """``where_html`` for an appointment or an offered time (a template global)."""
    location = booked.location
    return where_html(
        mode_of(booked.appointment_type),
        location.display_name,
        location.address,
        joinable=visit_join_link(booked) is not None,
    )


def _mode_change(previous: VisitMode, booked: Booked, place: str) -> str:
    mode = mode_of(booked.appointment_type)
    if mode is VisitMode.IN_PERSON:
        if previous is VisitMode.PHONE:
            return _("This visit is now in person at %(place)s, not by phone.", place=place)
        return _("This visit is now in person at %(place)s, not by video.", place=place)
    if previous is VisitMode.IN_PERSON:
        if mode is VisitMode.PHONE:
            return _("This visit is now by phone, not in person: you do not come to the clinic.")
        return _("This visit is now by video, not in person: you do not come to the clinic.")
    if mode is VisitMode.PHONE:
        return _("This visit is now by phone, not by video.")
    return _("This visit is now by video, not by phone.")


def mode_change(previous: VisitMode, booked: Booked) -> str:
    """What a move that changed how the visit takes place (``previous``: how it did) says
    first: a patient who expected a video call must not stay home, nor one who expected to
    come in travel for nothing (a template global; ``where`` is its place)."""
    location = booked.location
    return _mode_change(
        previous, booked, PLACE.format(name=location.display_name, address=location.address)
    )


def mode_change_html(previous: VisitMode, booked: Booked) -> Markup:
    """``mode_change`` for the HTML part of an email: the place as ``where_html`` gives it."""
    location = booked.location
    place = where_html(VisitMode.IN_PERSON, location.display_name, location.address)
    # The sentence chosen with its placeholder left, then the place (markup) put in.
    return naming(_mode_change(previous, booked, **unfilled("place")), place=place)


def visit_when(booked: Booked) -> str:
    """When the visit starts, as pages and emails show it; for a visit from home with the
    clinic's time zone named: the patient may be elsewhere, and their calendar file (in UTC)
    would show another hour than the email (a template global)."""
    return clinic_dt(booked.starts_at, "when", zone=visit_is_remote(booked))


def visit_join_link(booked: Booked) -> str | None:
    """The link that joins a video visit, once staff gave it; None for any other visit, or
    an offered time (a template global: every page and email showing ``visit_where`` for an
    appointment shows it with it)."""
    link = getattr(booked, "join_link", None)
    active = getattr(booked, "active", True)
    # Not once the visit is over: the link may be a specialist's room, used for others.
    over = getattr(booked, "ends_at", None) is not None and booked.ends_at <= now_utc()
    if link and active and not over and mode_of(booked.appointment_type) is VisitMode.VIDEO:
        return link
    return None


def visit_is_remote(booked: Booked) -> bool:
    """Whether the patient takes part from home (a template global)."""
    return mode_of(booked.appointment_type) is not VisitMode.IN_PERSON


def picked_from_home(answers: Mapping[str, list[str]]) -> bool:
    """Whether a request's answers (a draft's) picked a time for a visit from home, by video
    or phone: its documents are then to have at hand, not to bring."""
    if not (answers.get("slot") or [""])[0]:
        return False
    type_id = (answers.get("appointment_type") or [""])[0]
    if not type_id.isdigit():
        return False
    appointment_type = db.session.get(AppointmentType, int(type_id))
    return appointment_type is not None and appointment_type.mode is not VisitMode.IN_PERSON


def from_home(appointment_type: AppointmentType) -> str:
    """How the patient takes part in a visit of this type from home; "" for a visit to a
    location (a template global, for the time picker)."""
    if appointment_type.mode is VisitMode.IN_PERSON:
        return ""
    return where(appointment_type.mode, "", "")


def calendar_location(booked: Booked) -> str:
    """The calendar event's place: the address, or how the patient takes part."""
    mode = mode_of(booked.appointment_type)
    if mode is VisitMode.IN_PERSON:
        return f"{booked.location.display_name}, {booked.location.address}"
    # Calendar apps open a link given as the place.
    return visit_join_link(booked) or str(MODE_LABELS[mode])


def preparation(booked: Booked | None) -> str:
    """What to bring to the visit, or have ready for it from home (a template global)."""
    if booked is not None and visit_is_remote(booked):
        return _(
            "Please have your scan reports, a list of your medicines and any letters from other "
            "doctors at hand. You can add documents to your request with your private link "
            "before the visit."
        )
    return _(
        "Please bring your scans (MRI, CT or X-ray discs or reports), a list of your medicines "
        "and any letters from other doctors."
    )


def checklist(booked: Booked) -> tuple[str, list[str]]:
    """The reminder's list: its heading and items (a template global)."""
    mode = mode_of(booked.appointment_type)
    common = [
        _("a list of the medicines you take"),
        _("letters from other doctors, if you have them"),
    ]
    if mode is VisitMode.IN_PERSON:
        return _("Please bring:"), [_("your scans: MRI, CT or X-ray discs or reports"), *common]
    device = (
        _("a phone, tablet or computer with a camera and microphone, somewhere quiet and private")
        if mode is VisitMode.VIDEO
        else _("your phone, switched on, somewhere quiet and private")
    )
    return _("Please have ready:"), [device, _("your scan reports: MRI, CT or X-ray"), *common]
