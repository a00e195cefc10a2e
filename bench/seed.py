"""Seed a benchmark database fast: staff and schedule through the services, then N requests,
each with its patient, history, diagnosis and appointment (and, when completed, its plan and
three follow-ups), by Core ``executemany`` in batches.

The shape is the same at every size, so a larger database differs only in history:
``OPEN_REQUESTS`` requests wait in the queue (a tenth urgent), each holding a time in the next
weeks, and everything else is past (completed, cancelled, declined, no-show) with its
appointment in the past. That is what a clinic looks like after years of use, and it lets the
slot lookup and the queue be compared at 100 and 100,000 rows doing the same visible work.
"""

from __future__ import annotations

import os
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from booking.extensions import db
from booking.outcomes.models import PAIN_COLUMNS, FollowUp, Plan, TreatmentPlan
from booking.requests.instruments import NDI
from booking.requests.lifecycle import REFERENCE_ALPHABET
from booking.requests.models import (
    TRIAGE_PRIORITY,
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
)
from booking.scheduling.models import SQLITE_TRIGGERS, Appointment, AppointmentType, WorkingHours
from booking.scheduling.services import create_location
from booking.staff.models import StaffRole
from booking.staff.services import create_staff
from booking.timeutil import clinic_today, from_clinic_local, now_utc

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BENCH_PASSWORD = "bench-password-2026"  # noqa: S105  # nosec B105 - a throwaway bench database
COORDINATOR_EMAIL = "coordinator@bench.example.com"
SPECIALISTS = 4
OPEN_REQUESTS = 50
BATCH = 5000
PAST_STATUSES = [
    RequestStatus.COMPLETED,
    RequestStatus.COMPLETED,
    RequestStatus.COMPLETED,
    RequestStatus.CANCELLED,
    RequestStatus.DECLINED,
    RequestStatus.NO_SHOW,
]
BENCH_PLANS = list(Plan)
DIAGNOSES = ["herniated_disc", "spinal_stenosis", "sciatica", "degenerative_disc_disease"]


def reference(number: int) -> str:
    """A unique reference in the application's format (SC-XXXX-XXXX) for row ``number``."""
    chars = []
    for _ in range(8):
        number, digit = divmod(number, len(REFERENCE_ALPHABET))
        chars.append(REFERENCE_ALPHABET[digit])
    return f"SC-{''.join(chars[:4])}-{''.join(chars[4:])}"


def seed_schedule() -> tuple[list[int], list[int], int]:
    """Staff, two locations, an appointment type and weekday hours. Returns the specialist
    ids, the location ids and the appointment type id."""
    create_staff(
        email=COORDINATOR_EMAIL,
        full_name="Bench Coordinator",
        role=StaffRole.COORDINATOR,
        password=BENCH_PASSWORD,
        actor=None,
    )
    specialists = [
        create_staff(
            email=f"specialist{n}@bench.example.com",
            full_name=f"Dr. Bench {n}",
            role=StaffRole.SPECIALIST,
            password=BENCH_PASSWORD,
            actor=None,
        ).id
        for n in range(SPECIALISTS)
    ]
    locations = [
        create_location("Main clinic", "Friedrichstraße 100, 10117 Berlin", actor=None).id,
        create_location("Spine centre west", "Kantstraße 20, 10623 Berlin", actor=None).id,
    ]
    appointment_type = AppointmentType(
        name="New-patient spine evaluation", duration_minutes=45, active=True
    )
    db.session.add(appointment_type)
    for index, specialist_id in enumerate(specialists):
        for weekday in range(5):
            db.session.add(
                WorkingHours(
                    specialist_id=specialist_id,
                    location_id=locations[(weekday + index) % len(locations)],
                    weekday=weekday,
                    start_time=time(8, 0),
                    end_time=time(17, 0),
                )
            )
    db.session.commit()
    return specialists, locations, appointment_type.id


def _future_starts(count: int, specialists: list[int]) -> list[tuple[int, datetime]]:
    """(specialist, start) for the open requests: weekday mornings from three days on."""
    starts: list[tuple[int, datetime]] = []
    day = now_utc().date() + timedelta(days=3)
    while len(starts) < count:
        if day.weekday() < 5:
            for hour in (9, 10, 11, 14):
                for specialist_id in specialists:
                    starts.append((specialist_id, from_clinic_local(day, time(hour, 0))))
        day += timedelta(days=1)
    return starts[:count]


def seed_requests(size: int, specialists: list[int], locations: list[int], type_id: int) -> None:
    """``size`` requests with everything a record shows, in batches of ``BATCH`` rows."""
    now = now_utc()
    open_count = min(OPEN_REQUESTS, size)
    future = _future_starts(open_count, specialists)
    # Past appointments one hour apart per specialist (45 minutes + 10 minutes' buffer never
    # overlap), going back from two days ago.
    past_origin = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    for first in range(0, size, BATCH):
        numbers = range(first, min(size, first + BATCH))
        patients, requests, histories, diagnoses, appointments = [], [], [], [], []
        plans: list[dict[str, Any]] = []
        follow_ups: list[dict[str, Any]] = []
        for n in numbers:
            row_id = n + 1
            is_open = n >= size - open_count
            specialist_id = specialists[n % len(specialists)]
            if is_open:
                specialist_id, starts_at = future[n - (size - open_count)]
                status = RequestStatus.REQUESTED
                created = now - timedelta(hours=(size - n) * 3)
            else:
                starts_at = past_origin - timedelta(hours=n // len(specialists) + 1)
                status = PAST_STATUSES[n % len(PAST_STATUSES)]
                created = starts_at - timedelta(days=14)
            triage = TriageLevel.URGENT if n % 10 == 3 else TriageLevel.ROUTINE
            ends_at = starts_at + timedelta(minutes=45)
            active = status not in (RequestStatus.CANCELLED, RequestStatus.DECLINED)
            patients.append(_patient(row_id, created))
            requests.append(
                _request(row_id, status, triage, created, specialist_id if not is_open else None)
            )
            histories.append(_history(row_id, triage))
            diagnoses.append({"request_id": row_id, "code": DIAGNOSES[n % len(DIAGNOSES)]})
            appointments.append(
                {
                    "id": row_id,
                    "request_id": row_id,
                    "specialist_id": specialist_id,
                    "location_id": locations[n % len(locations)],
                    "appointment_type_id": type_id,
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "blocked_until": ends_at + timedelta(minutes=10),
                    "active": active,
                    "uid": f"bench-{row_id}@example.com",
                    "sequence": 0,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if status == RequestStatus.COMPLETED:
                plan, answers = _outcomes(row_id, specialist_id, now)
                plans.append(plan)
                follow_ups += answers
        session = db.session
        session.execute(insert(Patient.__table__), patients)
        session.execute(insert(ConsultationRequest.__table__), requests)
        session.execute(insert(MedicalHistory.__table__), histories)
        session.execute(insert(RequestDiagnosis.__table__), diagnoses)
        session.execute(insert(Appointment.__table__), appointments)
        if plans:
            session.execute(insert(TreatmentPlan.__table__), plans)
            session.execute(insert(FollowUp.__table__), follow_ups)
        session.commit()


def _outcomes(
    row_id: int, specialist_id: int, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A completed request's plan and its three follow-ups, sent and mostly answered.

    The plans' start days are spread over the last five years whatever the size (the seeded
    appointments of a small clinic are all recent), so every size has plans in every period of
    the outcomes page and each plan has all three time points behind it: the outcomes page
    does the same visible work at 100 and at 100,000 requests."""
    start = clinic_today() - timedelta(days=400 + (row_id * 7919) % 1400)
    plan = {
        "request_id": row_id,
        "plan": BENCH_PLANS[row_id % len(BENCH_PLANS)],
        "procedure_date": None,
        "consulted_on": start,
        "decided_at": now - timedelta(days=(clinic_today() - start).days),
        "decided_by_id": specialist_id,
        "followups_stopped_at": None,
    }
    neck = row_id % 4 == 0  # as in _history: the NDI was scored at intake, the ODI was not
    answers = []
    for index, (point, days) in enumerate((("6w", 42), ("3m", 91), ("12m", 365))):
        due = from_clinic_local(start + timedelta(days=days), time(9, 0))
        answered = (row_id + index) % 7 != 0  # about 85 % answer
        score = (40.0 - (row_id + index) % 5 * 5) if answered else None
        answers.append(
            {
                "request_id": row_id,
                "point": point,
                "due_at": due,
                "sent_at": due,
                "expires_at": due + timedelta(days=30),
                "reminded_at": None if answered else due + timedelta(days=7),
                "answered_at": due + timedelta(days=2) if answered else None,
                "odi_answers": {},
                "odi_percent": None if neck else score,
                "ndi_answers": {},
                "ndi_percent": score if neck else None,
                **dict.fromkeys(PAIN_COLUMNS),
                "gpe": 2 if answered else None,
                "satisfaction": 4 if answered else None,
            }
        )
    return plan, answers


def _patient(row_id: int, created: datetime) -> dict[str, Any]:
    return {
        "id": row_id,
        "full_name": f"Patient {row_id}",
        "date_of_birth": date(1950 + row_id % 50, 1 + row_id % 12, 1 + row_id % 28),
        "guardian_name": None,
        "email": f"patient{row_id}@example.com",
        "phone": f"+4930{row_id:07d}",
        "preferred_contact": "email",
        "created_at": created,
    }


def _request(
    row_id: int,
    status: RequestStatus,
    triage: TriageLevel,
    created: datetime,
    specialist_id: int | None,
) -> dict[str, Any]:
    return {
        "id": row_id,
        "reference": reference(row_id),
        "patient_id": row_id,
        "status": status,
        "triage_level": triage,
        "priority": TRIAGE_PRIORITY[triage],
        "red_flags": ["fever"] if triage == TriageLevel.URGENT else [],
        "submission_token": f"bench-{row_id}-{secrets.token_hex(8)}",
        "locale": "en" if row_id % 3 else "es",
        "preferred_days": [0, 2],
        "preferred_time_of_day": "morning",
        "earliest_date": None,
        "privacy_notice_version": "2026-11",
        "consented_at": created,
        "contact_consent": True,
        "assigned_specialist_id": specialist_id,
        "confirmed_at": created + timedelta(days=1) if specialist_id else None,
        "created_at": created,
        "updated_at": created,
    }


def _history(row_id: int, triage: TriageLevel) -> dict[str, Any]:
    urgent = triage == TriageLevel.URGENT
    neck = row_id % 4 == 0  # one request in four is about the neck
    now = row_id % 8
    return {
        "request_id": row_id,
        "pain_locations": ["neck", "arm"] if neck else ["lower_back", "leg"],
        "spine_region": "neck" if neck else "lower_back",
        "pain_side": "left",
        "pain_duration": "3_12_months",
        "pain_now": None,
        "pain_worst": None,
        **{f"{area}_pain_now": None if neck else now for area in ("back", "leg")},
        **{f"{area}_pain_worst": None if neck else 8 for area in ("back", "leg")},
        **{f"{area}_pain_now": now if neck else None for area in ("neck", "arm")},
        **{f"{area}_pain_worst": 8 if neck else None for area in ("neck", "arm")},
        "radiating_pain": True,
        "numbness": bool(row_id % 2),
        "weakness": urgent,
        "diagnoses": [DIAGNOSES[(row_id - 1) % len(DIAGNOSES)]],
        "diagnosis_other": None,
        "treatments": ["physiotherapy"],
        "surgery_details": None,
        "imaging": ["mri"],
        "imaging_when": "2026",
        "medications": "Ibuprofen",
        "allergies": None,
        "blood_thinners": False,
        "diabetes": False,
        "smoking": "never",
        "other_history": None,
        # Two sections answered: kept, but not scored.
        "odi_answers": {} if neck else {"pain_intensity": 2, "walking": 3},
        "odi_sections_answered": 0 if neck else 2,
        "odi_percent": None,
        "odi_band": None,
        "ndi_answers": dict.fromkeys(NDI.section_keys, 2) if neck else {},
        "ndi_sections_answered": 10 if neck else 0,
        "ndi_percent": 40.0 if neck else None,
        "ndi_band": "moderate" if neck else None,
    }


def seed(size: int) -> None:
    """Fill an empty, migrated database (inside an app context) with ``size`` requests.

    SQLite's no-double-booking triggers check each inserted appointment against every earlier
    one of its specialist, which makes a bulk load quadratic; they are dropped for the load
    (the rows are laid out so none overlap) and created again afterwards. PostgreSQL's
    exclusion constraint stays on: its index makes each check cheap.
    """
    specialists, locations, type_id = seed_schedule()
    sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:
        db.session.execute(text("DROP TRIGGER IF EXISTS appointment_no_overlap_insert"))
        db.session.execute(text("DROP TRIGGER IF EXISTS appointment_no_overlap_update"))
        db.session.commit()
    seed_requests(size, specialists, locations, type_id)
    if sqlite:
        for trigger in SQLITE_TRIGGERS:
            db.session.execute(text(str(trigger.statement)))
        db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # Explicit ids were inserted: move the sequences past them.
        for table in ("patient", "consultation_request", "appointment"):
            db.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608  # nosec B608
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        db.session.commit()
        # VACUUM too: a freshly bulk-loaded table has no visibility map, so index-only scans
        # (the queue's tab counts) visit the heap until autovacuum gets to it.
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    else:
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def last_open_reference(size: int) -> str:
    """The newest waiting request: the record the benchmark opens."""
    return reference(size)


def free_slot_keys(count: int) -> list[str]:
    """Up to ``count`` open times that can all be held at once (an hour apart per specialist,
    longer than the 45-minute type and its buffer), as the picker's slot keys: what the
    benchmark's simulated patients pick before they submit."""
    from booking.scheduling.availability import open_slots

    appointment_type = db.session.get(AppointmentType, 1)
    start = now_utc()
    slots = open_slots(appointment_type, start, start + timedelta(days=365))
    keys, last_start = [], {}
    for slot in slots:
        previous = last_start.get(slot.specialist_id)
        if previous is None or slot.starts_at - previous >= timedelta(hours=1):
            keys.append(slot.key)
            last_start[slot.specialist_id] = slot.starts_at
    return keys[:count]


def main() -> None:
    """``python -m bench.seed DATABASE_URL SIZE [SLOTS_FILE]``: migrate an empty database, seed
    it, and write open slot keys (one a line) for the submissions to hold."""
    import sys
    import time as clock

    from flask_migrate import upgrade

    from booking import create_app
    from booking.outcomes.results import refresh_snapshots

    url, size = sys.argv[1], int(sys.argv[2])
    # The run's key (the testing settings have their own): what is encrypted here, the
    # benchmarked app must read.
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "ENCRYPTION_KEY": os.environ["ENCRYPTION_KEY"]}
    )
    with app.app_context():
        started = clock.perf_counter()
        upgrade(directory=str(MIGRATIONS))
        migrated = clock.perf_counter()
        seed(size)
        print(
            f"seeded {size} requests in {clock.perf_counter() - migrated:.1f} s "
            f"(migrations {migrated - started:.1f} s)",
            flush=True,
        )
        # The worker's job that keeps the outcomes page's counts (every 10 minutes).
        started = clock.perf_counter()
        counted = refresh_snapshots()
        print(
            f"counting the outcomes ({counted} periods and time points, the worker's job) "
            f"took {clock.perf_counter() - started:.2f} s",
            flush=True,
        )
        if len(sys.argv) > 3:
            Path(sys.argv[3]).write_text("\n".join(free_slot_keys(5000)) + "\n")


if __name__ == "__main__":
    main()
