"""Clinic locations (the part of the clinic settings this issue needs)."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from booking.audit.services import record
from booking.extensions import db
from booking.scheduling.models import Location
from booking.staff.models import StaffUser


class LocationError(ValueError):
    pass


def active_locations() -> list[Location]:
    return list(
        db.session.scalars(
            select(Location).where(Location.active.is_(True)).order_by(Location.name)
        )
    )


def all_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def create_location(name: str, address: str, actor: StaffUser | None) -> Location:
    name = name.strip()
    if db.session.scalar(select(Location.id).where(Location.name == name)) is not None:
        raise LocationError(_("A location with this name already exists."))
    location = Location(name=name, address=address.strip(), active=True)
    db.session.add(location)
    db.session.flush()
    record(
        "location_created",
        target_type="location",
        target_id=location.id,
        actor=actor,
        details={"name": location.name, "address": location.address},
    )
    db.session.commit()
    return location


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
