"""iCalendar files for appointment emails (RFC 5545/5546, made with the ``icalendar`` package).

The event's UID never changes for one appointment and its SEQUENCE rises with every change, so
calendar apps update (or, with METHOD:CANCEL, remove) the event they already hold.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from booking.scheduling.models import Appointment
from booking.scheduling.visits import calendar_location, visit_join_link
from booking.timeutil import now_utc


def calendar_file_name(locale: str) -> str:
    """The calendar file's name in ``locale`` ("appointment.ics", "cita.ics"): mail apps show
    it under the email and save it by that name. Lower-case ASCII letters, digits and hyphens
    only, so a header carries it as it is (no RFC 2231 encoding)."""
    with force_locale(locale):
        word = _("Appointment")
    plain = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()
    return f"{re.sub(r'[^a-z0-9]+', '-', plain).strip('-') or 'appointment'}.ics"


def appointment_ics(
    appointment: Appointment, *, cancel: bool = False, publish: bool = False
) -> str:
    """The appointment as an iCalendar file: for an email, an invitation (METHOD:REQUEST)
    or its withdrawal (``cancel``: METHOD:CANCEL) naming the patient as the attendee; for
    a download from the patient's page (``publish``), METHOD:PUBLISH without attendee, which
    calendar apps import as an event rather than show as an invitation to answer. One UID
    and SEQUENCE in all, so each updates the same event."""
    clinic = current_app.config["CLINIC_NAME"]
    organizer_email = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1]

    calendar = Calendar()
    calendar.add("prodid", "-//SpineConsult//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else ("PUBLISH" if publish else "REQUEST"))

    event = Event()
    event.add("uid", appointment.uid)
    event.add("sequence", appointment.sequence)
    event.add("dtstamp", now_utc())
    event.add("dtstart", appointment.starts_at)
    event.add("dtend", appointment.ends_at)
    # The summary names the clinic, not the reason for the visit: no medical details.
    event.add("summary", f"{clinic}: {appointment.request.reference}")
    # For the patient, in their language, whoever's action sends it (a coordinator's
    # confirmation is made on an English page).
    with force_locale(appointment.request.locale):
        event.add("location", vText(calendar_location(appointment)))
    if (link := visit_join_link(appointment)) is not None and not cancel:
        event.add("url", link)
    # A time the patient picked but staff have not confirmed yet is tentative.
    # (The scheduling layer knows no request statuses: these are requested and awaiting_patient.)
    tentative = appointment.request.status in ("requested", "awaiting_patient")
    event.add("status", "CANCELLED" if cancel else ("TENTATIVE" if tentative else "CONFIRMED"))
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = vText(clinic)
    event.add("organizer", organizer)
    # RFC 5546 asks for the attendee in a REQUEST and a CANCEL: calendar apps (Gmail,
    # Outlook) match an update or a cancellation to the event the recipient holds by it, and
    # may otherwise show it as a plain attachment. The patient only, by address (no name):
    # the file goes to them alone. No reply is expected.
    patient_email = appointment.request.patient.email
    if patient_email and not publish:
        attendee = vCalAddress(f"mailto:{patient_email}")
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("TENTATIVE" if tentative else "ACCEPTED")
        attendee.params["rsvp"] = vText("FALSE")
        event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar.to_ical().decode()


def with_attendee(ics: str, address: str) -> str:
    """An email's invitation (``ics``) naming ``address`` as its attendee instead of the
    address it was written for: sent again to a corrected address, calendar apps match the
    invitation to the event its recipient holds by the attendee."""
    calendar = Calendar.from_ical(ics)
    for event in calendar.walk("VEVENT"):
        before = event.get("attendee")
        if before is None:
            continue
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params.update(before.params)
        event["attendee"] = attendee
    return calendar.to_ical().decode()
