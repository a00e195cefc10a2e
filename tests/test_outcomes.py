"""Outcomes after the visit (#19): the plan at completion, the follow-up schedule, invitations
sent once (two workers, a worker that was down), consent, stop, deceased, and the patient's
questionnaire answered through the email's link."""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.outcomes import emails as outcome_emails
from booking.outcomes import schedule
from booking.outcomes.labels import GPE_WORSE
from booking.outcomes.models import FollowUp, FollowUpLink, Plan, RegistryCode, TreatmentPlan
from booking.outcomes.progress import ANSWERED, OPEN, UNANSWERED, follow_up_list
from booking.outcomes.results import response_counts
from booking.outcomes.services import (
    FollowUpAnswers,
    ProcedureDateCorrected,
    answer_followup,
    correct_procedure_date,
    followups_due,
    invite_due,
    mark_deceased,
    record_plan,
    send_due_followup_reminders,
    send_due_followups,
)
from booking.requests.lifecycle import WorkflowError
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.rights.services import withdraw_contact_consent
from booking.scheduling.models import AppointmentType, Location
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, now_utc, to_clinic_tz
from tests.factories import (
    clinic_slot,
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
    staff_user,
)
from tests.support import (
    AuthActions,
    Clinic,
    csrf_token,
    headings,
    outbox_emails,
    request_row_is_free,
    row_is_free,
    session_cookie,
    table_boxes,
    wait_until,
)
from tests.test_destructive_confirmation import asked, confirm

BERLIN = ZoneInfo("Europe/Berlin")
LINK = re.compile(r"http://[^/\s]+(/follow-up/open/[A-Za-z0-9_-]+)(/stop)?")


# ---- the schedule ----------------------------------------------------------------------------


def test_time_points_count_weeks_and_calendar_months() -> None:
    assert schedule.due_day(date(2026, 1, 31), "1m") == date(2026, 2, 28)
    assert schedule.due_day(date(2028, 1, 31), "1m") == date(2028, 2, 29)
    assert schedule.due_day(date(2026, 3, 10), "6w") == date(2026, 4, 21)
    assert schedule.due_day(date(2026, 3, 10), "12m") == date(2027, 3, 10)
    assert schedule.parse_schedule("12m, 6w,3m, 6w") == ["6w", "3m", "12m"]
    for bad in ("", "6", "0w", "6d", "100m", "3 m x"):
        with pytest.raises(schedule.BadPoint):
            schedule.parse_schedule(bad)


def test_invitations_go_out_at_nine_clinic_time_across_a_clock_change() -> None:
    # 1 March (winter time, UTC+1) + 6 weeks = 12 April (summer time, UTC+2).
    assert schedule.due_at(date(2026, 3, 1), "6w", BERLIN) == datetime(2026, 4, 12, 7, tzinfo=UTC)
    assert schedule.due_at(date(2026, 3, 1), "1w", BERLIN) == datetime(2026, 3, 8, 8, tzinfo=UTC)


def test_the_procedure_date_counts_over_the_consultation() -> None:
    assert schedule.start_of(date(2026, 3, 1), date(2026, 4, 2)) == date(2026, 4, 2)
    assert schedule.start_of(date(2026, 3, 1), None) == date(2026, 3, 1)


# ---- completing with a plan ------------------------------------------------------------------


def _completed(
    *,
    consent: bool = True,
    plan: Plan = Plan.PHYSIOTHERAPY,
    procedure: date | None = None,
    days_ago: int = 1,
    on: date | None = None,
    **kw,
) -> ConsultationRequest:
    """A request confirmed for 10:00 ``days_ago`` (clinic time; a request is completed only
    once its appointment has started), or on the day ``on`` (a past day the test read once:
    reading today again here could give the next day, around midnight), then completed with
    ``plan``."""
    coordinator = make_staff("coordinator")
    specialist = make_staff("specialist")
    location = make_location()
    appointment_type = make_appointment_type()
    make_hours(specialist, location, range(7), "09:00", "17:00")
    consultation = make_request(followup_consent=consent, **kw)
    workflow.confirm_request(
        consultation,
        coordinator,
        workflow.Slot(
            appointment_type,
            specialist,
            location,
            on or clinic_today() - timedelta(days=days_ago),
            time(10),
        ),
    )
    workflow.complete_request(consultation, coordinator, plan, procedure)
    return consultation


def _start(request_id: int) -> date:
    plan = db.session.get(TreatmentPlan, request_id)
    return schedule.start_of(plan.consulted_on, plan.procedure_date)


def _invitations() -> list[OutboxEmail]:
    return list(
        db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "followup_invitation")
            .order_by(OutboxEmail.id)
        )
    )


def _seen_yesterday(app: Flask, clinic: Clinic, **kw: Any) -> str:
    """The reference of a request confirmed with Dr. Weber for 10:00 yesterday: its visit has
    started, so the record page offers to complete it."""
    with app.app_context():
        consultation = make_request(**kw)
        workflow.confirm_request(
            consultation,
            staff_user(clinic.coordinator.email),
            clinic_slot(clinic, clinic_today() - timedelta(days=1), time(10)),
        )
        return consultation.reference


def test_the_record_page_completes_with_the_plan_and_procedure_date(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    reference = _seen_yesterday(app, clinic, followup_consent=True)
    AuthActions(client).login("coordinator")
    page = f"/staff/requests/{reference}"
    assert "Plan decided" in client.get(page).get_data(as_text=True)
    token = csrf_token(client, page)
    missing = client.post(f"{page}/complete", data={"complete-csrf_token": token})
    assert missing.status_code == 422
    assert "Please choose the plan decided." in missing.get_data(as_text=True)
    # A procedure before the consultation (yesterday) would make the request's answers a
    # baseline taken after it: refused, nothing recorded.
    with app.app_context():
        before, planned = clinic_today() - timedelta(days=3), clinic_today() + timedelta(days=40)
    early = client.post(
        f"{page}/complete",
        data={
            "complete-csrf_token": token,
            "complete-plan": "minimally_invasive",
            "complete-procedure_date": before.isoformat(),
        },
    )
    assert early.status_code == 409
    assert "The procedure date cannot be before the consultation" in early.get_data(True)
    # A mistyped year would put the follow-ups off by decades (9999: past the calendar's end).
    for far in ("2062-03-01", "9999-12-31"):
        late = client.post(
            f"{page}/complete",
            data={
                "complete-csrf_token": token,
                "complete-plan": "minimally_invasive",
                "complete-procedure_date": far,
            },
        )
        assert late.status_code == 409, far
        assert "more than 3 years after the consultation: please check the year" in (
            late.get_data(True)
        )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(TreatmentPlan)) == 0
    response = client.post(
        f"{page}/complete",
        data={
            "complete-csrf_token": token,
            "complete-plan": "minimally_invasive",
            "complete-procedure_date": planned.isoformat(),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        assert consultation.status == "completed"
        plan = db.session.get(TreatmentPlan, consultation.id)
        assert plan.plan == Plan.MINIMALLY_INVASIVE
        assert plan.procedure_date == planned
        assert consultation.followup_consent is True
        assert consultation.followup_consent_version == app.config["FOLLOWUP_CONSENT_VERSION"]
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "treatment_plan_recorded")
        ).one()
        assert audit.details == {
            "plan": "minimally_invasive",
            "procedure_date": planned.isoformat(),
        }


# ---- correcting the procedure date -------------------------------------------------------------


def _corrections() -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "treatment_plan_corrected")
        )
    )


@pytest.mark.parametrize("shift", [60, -50], ids=["postponed", "brought forward"])
def test_a_corrected_procedure_date_moves_the_follow_ups_still_to_come(
    app: Flask, shift: int
) -> None:
    with app.app_context():
        old = clinic_today() + timedelta(days=55)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=old)
        new = old + timedelta(days=shift)
        coordinator = staff_user(make_staff("coordinator").email)
        corrected = correct_procedure_date(consultation, new, coordinator, shown=old.isoformat())
        assert corrected == ProcedureDateCorrected(rescheduled=[], superseded=[], closed=[])
        assert db.session.get(TreatmentPlan, consultation.id).procedure_date == new
        [audit] = _corrections()
        assert audit.target_id == consultation.reference
        assert audit.actor_id == coordinator.id
        assert audit.details == {
            "procedure_date": {"before": old.isoformat(), "after": new.isoformat()},
            "follow_ups_rescheduled": [],
            "follow_ups_superseded": [],
            "invitations_closed": [],
        }
        old_six, new_six = (schedule.due_at(day, "6w", BERLIN) for day in (old, new))
        # Nothing goes at the old date's time, nor before the new one's.
        assert send_due_followups(now=min(old_six, new_six) - timedelta(days=1)) == []
        if shift > 0:
            assert send_due_followups(now=old_six) == []
        assert send_due_followups(now=new_six - timedelta(minutes=1)) == []
        assert len(send_due_followups(now=new_six)) == 1
        assert send_due_followups(now=new_six + timedelta(hours=1)) == []
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert (follow_up.point, follow_up.due_at) == ("6w", new_six)


def test_follow_ups_sent_too_early_for_a_postponed_date_are_kept_and_asked_again(
    app: Flask,
) -> None:
    """The operation is postponed after two questionnaires went: the 6-week one, answered
    before the new date, and the 3-month one, still open, were both asked too early for it.
    Both are kept as they were (time point, due time, answers), marked superseded, the open
    one's link closed (answered now, it would be the 3-month result taken before the new
    date's 3 months); each time point is asked again at the new date's time, once."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start)
        six_weeks, three_months = (schedule.due_at(start, p, BERLIN) for p in ("6w", "3m"))
        assert len(send_due_followups(now=six_weeks)) == 1
        answered_at = six_weeks + timedelta(days=2)
        _answer("6w", answered_at)
        assert len(send_due_followups(now=three_months)) == 1
        now = three_months + timedelta(hours=1)
        new = start + timedelta(days=60)
        corrected = correct_procedure_date(
            consultation, new, staff_user(make_staff("coordinator").email), now=now
        )
        assert corrected == ProcedureDateCorrected(
            rescheduled=[], superseded=["6w", "3m"], closed=["3m"]
        )
        rows = {f.point: f for f in db.session.scalars(select(FollowUp))}
        assert set(rows) == {"6w", "3m"}
        six = rows["6w"]
        assert (six.due_at, six.sent_at, six.answered_at) == (six_weeks, six_weeks, answered_at)
        assert (six.odi_percent, six.gpe, six.satisfaction) == (22.0, 2, 5)
        assert six.superseded_at == now
        assert (rows["3m"].due_at, rows["3m"].sent_at) == (three_months, three_months)
        assert rows["3m"].expires_at == now and rows["3m"].answered_at is None
        assert rows["3m"].superseded_at == now
        details = _corrections()[0].details
        assert details["follow_ups_superseded"] == ["6w", "3m"]
        assert details["invitations_closed"] == ["3m"]
        # The closed 3 months are asked again: no non-response on the coordinators' list.
        listed, counts = follow_up_list(UNANSWERED, now + timedelta(days=1))
        assert listed == [] and counts[UNANSWERED] == counts[OPEN] == 0
        assert counts[ANSWERED] == 1  # the 6-week answer, kept
        # Closed: no reminder of it. Each time point goes again at its new time, once.
        assert send_due_followup_reminders(now=three_months + timedelta(days=8)) == []
        for point in ("6w", "3m", "12m"):
            due = schedule.due_at(new, point, BERLIN)
            assert send_due_followups(now=due - timedelta(minutes=1)) == []
            assert len(send_due_followups(now=due)) == 1
            assert send_due_followups(now=due + timedelta(hours=1)) == []
        assert [
            (f.point, f.sent_at, f.superseded_at)
            for f in db.session.scalars(select(FollowUp).order_by(FollowUp.id))
        ] == [
            ("6w", six_weeks, now),
            ("3m", three_months, now),
            *((p, schedule.due_at(new, p, BERLIN), None) for p in ("6w", "3m", "12m")),
        ]


def test_an_answer_given_once_the_new_due_time_had_come_is_kept_as_its_result(
    app: Flask,
) -> None:
    """Postponed by three days, corrected after the 6-week answer: the invitation went three
    days before the new 6 weeks, but the patient answered five days after it went, two days
    into the new 6 weeks. That is the 6-week answer, taken at its time: kept as the time
    point's row (no second 6-week questionnaire), not superseded."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start)
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        answered_at = six_weeks + timedelta(days=5)
        _answer("6w", answered_at)
        new = start + timedelta(days=3)
        corrected = correct_procedure_date(
            consultation,
            new,
            staff_user(make_staff("coordinator").email),
            now=answered_at + timedelta(days=1),
        )
        assert corrected.superseded == [] and corrected.closed == []
        assert db.session.scalars(select(FollowUp)).one().superseded_at is None
        new_six_weeks = schedule.due_at(new, "6w", BERLIN)
        assert send_due_followups(now=new_six_weeks + timedelta(days=2)) == []
        assert len(send_due_followups(now=schedule.due_at(new, "3m", BERLIN))) == 1


def _answer(point: str, at: datetime) -> None:
    db.session.execute(
        update(FollowUp)
        .where(FollowUp.point == point, FollowUp.superseded_at.is_(None))
        .values(answered_at=at, odi_percent=22.0, gpe=2, satisfaction=5)
    )
    db.session.commit()


def test_a_time_point_is_not_superseded_behind_a_later_one_that_stays(app: Flask) -> None:
    """Postponed by three days, corrected after both answers: the 6 weeks were answered a day
    after their invitation (before the new 6 weeks), the 3 months five days after theirs
    (after the new 3 months: kept). Superseded, the 6 weeks would never be asked again (the
    sender never goes back before a time point recorded) and would vanish from the response
    rate: they stay as what happened, and the schedule goes on at 12 months."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start)
        six_weeks, three_months = (schedule.due_at(start, p, BERLIN) for p in ("6w", "3m"))
        assert len(send_due_followups(now=six_weeks)) == 1
        _answer("6w", six_weeks + timedelta(days=1))
        assert len(send_due_followups(now=three_months)) == 1
        _answer("3m", three_months + timedelta(days=5))
        new = start + timedelta(days=3)
        corrected = correct_procedure_date(
            consultation,
            new,
            staff_user(make_staff("coordinator").email),
            now=three_months + timedelta(days=6),
        )
        assert corrected == ProcedureDateCorrected(rescheduled=[], superseded=[], closed=[])
        assert [f.superseded_at for f in db.session.scalars(select(FollowUp))] == [None, None]
        counted = response_counts(start - timedelta(days=1), now=three_months + timedelta(days=7))
        assert counted == {"6w": [1, 0, 1, 0, 0], "3m": [1, 0, 1, 0, 0]}
        for point in ("6w", "3m"):
            assert send_due_followups(now=schedule.due_at(new, point, BERLIN)) == []
        assert len(send_due_followups(now=schedule.due_at(new, "12m", BERLIN))) == 1


def test_a_correction_undone_gives_back_the_answer_it_superseded(app: Flask) -> None:
    """A date typed by mistake (ten days later) supersedes the 6-week answer; corrected back
    minutes later, the answer is the 6 weeks' again, and the patient is not asked twice."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        coordinator = staff_user(make_staff("coordinator").email)
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        _answer("6w", six_weeks + timedelta(days=2))
        now = six_weeks + timedelta(days=3)
        wrong = start + timedelta(days=10)
        assert correct_procedure_date(consultation, wrong, coordinator, now=now).superseded == [
            "6w"
        ]
        back = correct_procedure_date(
            consultation, start, coordinator, now=now + timedelta(minutes=5)
        )
        assert back == ProcedureDateCorrected(
            rescheduled=[], superseded=[], closed=[], restored=["6w"]
        )
        row = db.session.scalars(select(FollowUp)).one()
        assert row.superseded_at is None and row.odi_percent == 22.0
        assert _corrections()[-1].details["follow_ups_restored"] == ["6w"]
        later = now + timedelta(days=14)
        assert send_due_followups(now=later) == []  # the 6 weeks are answered: not again
        assert len(send_due_followups(now=schedule.due_at(start, "3m", BERLIN))) == 1


def test_a_correction_undone_after_the_time_point_was_asked_again_keeps_the_new_answer(
    app: Flask,
) -> None:
    """Once the time point was asked again under the corrected date, that invitation is its
    row: correcting the date back gives nothing back (one live row per time point)."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        coordinator = staff_user(make_staff("coordinator").email)
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        _answer("6w", six_weeks + timedelta(days=1))
        moved = start + timedelta(days=10)
        correct_procedure_date(consultation, moved, coordinator, now=six_weeks + timedelta(days=2))
        asked_again = schedule.due_at(moved, "6w", BERLIN)
        assert len(send_due_followups(now=asked_again)) == 1
        back = correct_procedure_date(
            consultation, start, coordinator, now=asked_again + timedelta(hours=1)
        )
        assert back.restored == []
        live = db.session.scalars(select(FollowUp).where(FollowUp.superseded_at.is_(None))).one()
        assert live.sent_at == asked_again


def test_a_postponement_corrected_late_asks_again_what_was_asked_too_early(
    app: Flask,
) -> None:
    """The date is corrected late, once the new 3 months have passed: the 6-week answer,
    given before the operation, and the 3-month invitation, sent weeks before the new 3
    months, were asked too early, as they would have been had staff corrected the date at
    once. Both are superseded; the sender sends the 3 months (its link still has time) and
    records the 6 weeks missed (past), as after any downtime, then the 12 months."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        six_weeks, three_months = (schedule.due_at(start, p, BERLIN) for p in ("6w", "3m"))
        assert len(send_due_followups(now=six_weeks)) == 1
        db.session.execute(
            update(FollowUp)
            .where(FollowUp.point == "6w")
            .values(answered_at=six_weeks + timedelta(days=1), odi_percent=30.0)
        )
        db.session.commit()
        assert len(send_due_followups(now=three_months)) == 1
        new = start + timedelta(days=45)  # the 6 weeks were answered on day 43
        now = schedule.due_at(new, "3m", BERLIN) + timedelta(days=5)
        corrected = correct_procedure_date(
            consultation, new, staff_user(make_staff("coordinator").email), now=now
        )
        # The 3-month link had expired: superseded, nothing to close.
        assert corrected == ProcedureDateCorrected(
            rescheduled=[], superseded=["6w", "3m"], closed=[]
        )
        # Superseded: no part of the response rate.
        assert response_counts(start - timedelta(days=1), now=now) == {}
        assert len(send_due_followups(now=now)) == 1
        twelve = schedule.due_at(new, "12m", BERLIN)
        assert len(send_due_followups(now=twelve)) == 1
        assert [(f.point, f.sent_at, f.superseded_at is not None) for f in _rows()] == [
            ("6w", six_weeks, True),
            ("3m", three_months, True),
            ("6w", None, False),
            ("3m", now, False),
            ("12m", twelve, False),
        ]


@pytest.mark.parametrize("late", [False, True], ids=["3 months sent", "3 months missed"])
def test_a_date_brought_forward_closes_the_open_link_and_goes_on_to_the_next_time_point(
    app: Flask, late: bool
) -> None:
    """The procedure recorded 60 days after the consultation, its 6-week questionnaire sent
    (day 102), then the date corrected to the consultation day: under it the 3 months (about
    day 90) are due already. The 6-week link closes (not answered after the 3 months are
    due, nor open beside them) and the 3 months are sent at once, or recorded missed when
    the correction comes past their link's life; the 12 months go at their new time."""
    with app.app_context():
        consulted = clinic_today() - timedelta(days=1)
        consultation = _completed(
            plan=Plan.OPEN_SURGERY, procedure=consulted + timedelta(60), on=consulted
        )
        six_weeks = schedule.due_at(consulted + timedelta(days=60), "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        now = six_weeks + timedelta(days=29 if late else 1)
        corrected = correct_procedure_date(
            consultation, consulted, staff_user(make_staff("coordinator").email), now=now
        )
        assert corrected == ProcedureDateCorrected(rescheduled=[], superseded=[], closed=["6w"])
        [six] = _rows()
        assert six.expires_at == now and six.superseded_at is None
        sent = send_due_followups(now=now)
        new_three, new_twelve = (schedule.due_at(consulted, p, BERLIN) for p in ("3m", "12m"))
        assert new_three < six_weeks
        assert [(f.point, f.due_at, f.sent_at) for f in _rows()] == [
            ("6w", six_weeks, six_weeks),
            ("3m", new_three, None if late else now),
        ]
        assert len(sent) == (0 if late else 1)
        assert send_due_followups(now=new_twelve - timedelta(minutes=1)) == []
        assert len(send_due_followups(now=new_twelve)) == 1
        assert [f.point for f in _rows()] == ["6w", "3m", "12m"]


def test_a_correction_that_closes_a_link_is_not_saved_until_confirmed(app: Flask) -> None:
    """Not yet confirmed (``ask_first``), a correction that would close a questionnaire's link
    (the date brought forward: the 3 months due already) changes nothing and says what it
    would do, for staff to confirm; confirmed, it does it."""
    with app.app_context():
        consulted = clinic_today() - timedelta(days=1)
        planned = consulted + timedelta(days=60)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=planned, on=consulted)
        six_weeks = schedule.due_at(planned, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        now = six_weeks + timedelta(days=1)
        coordinator = staff_user(make_staff("coordinator").email)
        plan = select(TreatmentPlan.procedure_date)

        asking = correct_procedure_date(
            consultation, consulted, coordinator, ask_first=True, now=now
        )
        assert asking == ProcedureDateCorrected([], [], ["6w"], saved=False)
        assert db.session.scalars(plan).one() == planned
        assert _rows()[0].expires_at > now
        assert _corrections() == []

        done = correct_procedure_date(consultation, consulted, coordinator, now=now)
        assert done == ProcedureDateCorrected([], [], ["6w"])
        assert db.session.scalars(plan).one() == consulted
        assert _rows()[0].expires_at == now
        assert len(_corrections()) == 1


@pytest.mark.parametrize(
    ("shift", "rescheduled"), [(45, True), (20, False)], ids=["now to come", "past still"]
)
def test_a_time_point_missed_under_the_old_date_is_invited_when_it_is_still_to_come(
    app: Flask, shift: int, rescheduled: bool
) -> None:
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        # The worker was down past the 6-week link's life: recorded missed, never sent.
        now = schedule.due_at(start, "6w", BERLIN) + timedelta(days=31)
        assert send_due_followups(now=now) == []
        assert db.session.scalars(select(FollowUp)).one().sent_at is None
        new = start + timedelta(days=shift)
        corrected = correct_procedure_date(
            consultation, new, staff_user(make_staff("coordinator").email), now=now
        )
        new_six = schedule.due_at(new, "6w", BERLIN)
        if rescheduled:
            assert corrected.rescheduled == ["6w"]
            assert db.session.scalars(select(FollowUp)).all() == []
            assert len(send_due_followups(now=new_six)) == 1
            follow_up = db.session.scalars(select(FollowUp)).one()
            assert (follow_up.due_at, follow_up.sent_at) == (new_six, new_six)
        else:
            # Past under the new date too: still missed, due when the new date says.
            assert corrected.rescheduled == []
            follow_up = db.session.scalars(select(FollowUp)).one()
            assert (follow_up.due_at, follow_up.sent_at) == (new_six, None)


@pytest.mark.parametrize("missed", [False, True], ids=["6 weeks due", "6 weeks missed"])
def test_a_date_corrected_after_the_senders_read_is_the_one_it_invites_by(
    app: Flask, missed: bool
) -> None:
    """The sender reads the plans with a time point due, then invites each in a transaction
    of its own: the operation postponed in between (nothing else serialises the two on
    PostgreSQL), the time point is not sent by the old date, nor is one the correction
    removed as still to come recorded again; each goes at the new date's time."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        if missed:  # the worker was down past the 6-week link's life
            assert (
                send_due_followups(now=schedule.due_at(start, "6w", BERLIN) + timedelta(days=31))
                == []
            )
            now = schedule.due_at(start, "3m", BERLIN)  # and 3 months are due
        else:
            now = schedule.due_at(start, "6w", BERLIN)
        assert followups_due(now) == [consultation.id]
        new = start + timedelta(days=60)
        corrected = correct_procedure_date(
            consultation, new, staff_user(make_staff("coordinator").email), now=now
        )
        assert corrected.rescheduled == (["6w"] if missed else [])
        assert invite_due(consultation.id, now) is None
        assert _rows() == [] and _invitations() == []
        new_six = schedule.due_at(new, "6w", BERLIN)
        assert len(send_due_followups(now=new_six)) == 1
        assert [(f.point, f.due_at, f.sent_at) for f in _rows()] == [("6w", new_six, new_six)]


def test_the_sender_writes_an_invitation_holding_the_lock_a_date_correction_takes(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staff correcting the procedure date while an invitation is written wait for it (on
    SQLite as for any writer, on PostgreSQL for the request's row), then see it: the date
    cannot change between the sender's decision and its invitation."""
    from booking.outcomes import services as job

    with app.app_context():
        consultation = _completed()
        request_id = consultation.id
        compose = job.emails.invitation
        free: list[bool] = []

        def look_then_compose(consultation, follow_up, **kw):
            free.append(request_row_is_free(app, request_id))
            return compose(consultation, follow_up, **kw)

        monkeypatch.setattr(job.emails, "invitation", look_then_compose)
        assert len(send_due_followups(now=schedule.due_at(_start(request_id), "6w", BERLIN))) == 1
        assert free == [False]


def test_a_date_correction_decides_on_the_follow_ups_locked(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The correction reads the follow-ups locked (on PostgreSQL their rows; SQLite's
    BEGIN IMMEDIATE holds every writer off): an answer the patient sends meanwhile waits for
    it, and is not committed between its read and its decision, which would report the
    questionnaire "closed, not answered" in the audit and to staff. Here the correction
    changes nothing of the 6-week row (moved 3 days, still due; the 3 months not yet),
    so only the read can have locked it."""
    from booking.outcomes import services as job

    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        follow_up_id = db.session.scalars(select(FollowUp.id)).one()
        audit = job.record
        free: list[bool] = []

        def look_then_record(*args, **kw):
            free.append(row_is_free(app, FollowUp.id, follow_up_id))
            return audit(*args, **kw)

        monkeypatch.setattr(job, "record", look_then_record)
        corrected = correct_procedure_date(
            consultation,
            start - timedelta(days=3),
            staff_user(make_staff("coordinator").email),
            now=six_weeks + timedelta(hours=1),
        )
        assert corrected == ProcedureDateCorrected(rescheduled=[], superseded=[], closed=[])
        assert free == [False]


def test_a_date_is_added_to_a_procedure_plan_completed_without_one(app: Flask) -> None:
    with app.app_context():
        consultation = _completed(plan=Plan.INJECTION)
        day = clinic_today() + timedelta(days=3)
        correct_procedure_date(consultation, day, staff_user(make_staff("admin").email))
        assert db.session.get(TreatmentPlan, consultation.id).procedure_date == day
        assert _corrections()[0].details["procedure_date"] == {
            "before": None,
            "after": day.isoformat(),
        }


def test_a_procedure_date_correction_is_refused_by_record_plans_rules(app: Flask) -> None:
    with app.app_context():
        yesterday = clinic_today() - timedelta(days=1)  # the consultation
        planned = yesterday + timedelta(days=11)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=planned, on=yesterday)
        coordinator = staff_user(make_staff("coordinator").email)
        refusals = [
            (consultation, yesterday - timedelta(days=1), coordinator, None, "cannot be before"),
            (
                consultation,
                yesterday + timedelta(days=3 * 365 + 1),
                coordinator,
                None,
                "more than 3 years after the consultation",
            ),
            (consultation, planned, coordinator, None, "That is the procedure date already"),
            (consultation, planned + timedelta(days=7), coordinator, "", "changed while you had"),
            (
                consultation,
                planned + timedelta(days=7),
                staff_user(make_staff("specialist").email),  # not assigned to them
                None,
                "not assigned to you",
            ),
        ]
        for request, day, actor, shown, reason in refusals:
            with pytest.raises(WorkflowError, match=reason):
                correct_procedure_date(request, day, actor, shown=shown)
            db.session.rollback()
        assert db.session.get(TreatmentPlan, consultation.id).procedure_date == planned
        assert _corrections() == []
        # The last day allowed is taken.
        last = yesterday + timedelta(days=3 * 365)
        correct_procedure_date(consultation, last, coordinator, shown=planned.isoformat())
        assert db.session.get(TreatmentPlan, consultation.id).procedure_date == last


def _completed_seen_yesterday(
    app: Flask, clinic: Clinic, plan: Plan, procedure: date | None
) -> str:
    reference = _seen_yesterday(app, clinic, followup_consent=True)
    with app.app_context():
        workflow.complete_request(
            db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one(),
            staff_user(clinic.coordinator.email),
            plan,
            procedure,
        )
    return reference


def test_a_plan_with_no_procedure_has_no_date_to_correct(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Advice has no procedure: the page offers no date, and a post (a forged or old page) is
    refused, nothing recorded."""
    reference = _completed_seen_yesterday(app, clinic, Plan.ADVICE, None)
    AuthActions(client).login("coordinator")
    page = f"/staff/requests/{reference}"
    assert "procedure date" not in client.get(page).get_data(as_text=True).lower()
    with app.app_context():
        day = clinic_today() + timedelta(days=5)
    refused = client.post(
        f"{page}/procedure-date",
        data={
            "procedure-csrf_token": csrf_token(client, page),
            "procedure-procedure_date": day.isoformat(),
        },
    )
    assert refused.status_code == 409
    assert "plan has no procedure date to correct." in refused.get_data(True)
    with app.app_context():
        assert db.session.scalars(select(TreatmentPlan.procedure_date)).one() is None
        assert _corrections() == []


def test_the_record_page_corrects_the_procedure_date(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        planned = clinic_today() + timedelta(days=10)
    reference = _completed_seen_yesterday(app, clinic, Plan.OPEN_SURGERY, planned)
    AuthActions(client).login("coordinator")
    page = f"/staff/requests/{reference}"
    shown = client.get(page).get_data(as_text=True)
    assert "Correct the procedure date" in shown
    assert f'name="procedure-shown" type="hidden" value="{planned.isoformat()}"' in shown
    token = csrf_token(client, page)
    url = f"{page}/procedure-date"
    new = planned + timedelta(days=21)
    fields = {"procedure-shown": planned.isoformat(), "procedure-procedure_date": new.isoformat()}
    assert client.post(url, data=fields).status_code == 400  # no CSRF token
    empty = client.post(url, data={"procedure-csrf_token": token})
    assert empty.status_code == 422
    assert "Please enter the procedure date." in empty.get_data(as_text=True)
    stale = client.post(
        url, data={**fields, "procedure-csrf_token": token, "procedure-shown": "2026-01-01"}
    )
    assert stale.status_code == 409
    assert "The procedure date was changed while you had this page open" in stale.get_data(True)
    with app.app_context():
        assert _corrections() == []
    # Nothing sent yet: nothing to supersede or close, so nothing to ask first (it was asked,
    # with nothing to warn of); saved at once.
    done = client.post(url, data={**fields, "procedure-csrf_token": token})
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"{page}#followup")
    assert "The procedure date is corrected" in client.get(page).get_data(as_text=True)
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        assert db.session.get(TreatmentPlan, consultation.id).procedure_date == new
        assert len(_corrections()) == 1
    # The same page sent again (its date is no longer the one stored): refused, kept.
    again = client.post(url, data={**fields, "procedure-csrf_token": token})
    assert again.status_code == 409


def test_a_correction_that_supersedes_and_closes_a_questionnaire_says_so_first(
    app: Flask, auth: AuthActions
) -> None:
    """The 6 weeks' questionnaire went out, unanswered; postponing the operation supersedes
    it and closes its link. The confirmation page says so, and nothing changes until its
    button is pressed: no audit row, no email, the questionnaire's link still open."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        reference = consultation.reference
        assert len(send_due_followups(now=schedule.due_at(start, "6w", BERLIN))) == 1
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    staff = auth.new_client(email=auth.account("coordinator").email)
    page = f"/staff/requests/{reference}"
    new = start + timedelta(days=40)

    question, warnings, asking = asked(
        staff.post(
            f"{page}/procedure-date",
            data={
                "procedure-csrf_token": csrf_token(staff, page),
                "procedure-shown": start.isoformat(),
                "procedure-procedure_date": new.isoformat(),
            },
        )
    )

    assert question.startswith(f"Change the procedure date of {reference} to ")
    assert warnings == [
        "1 questionnaire sent too early for the new date, or answered before it, will no "
        "longer be counted (it is kept, answers and all): its time point is asked again when "
        "it comes.",
        "1 questionnaire sent but not answered will be closed: its link stops working.",
    ]
    assert f'name="procedure-procedure_date" value="{new.isoformat()}"' in asking
    with app.app_context():
        assert _corrections() == []
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert follow_up.superseded_at is None and follow_up.expires_at > now_utc()
        assert db.session.scalars(select(TreatmentPlan.procedure_date)).one() == start
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == emails

    assert confirm(staff, asking).status_code == 302
    with app.app_context():
        [correction] = _corrections()
        assert correction.details["follow_ups_superseded"] == ["6w"]
        assert correction.details["invitations_closed"] == ["6w"]
        assert db.session.scalars(select(FollowUp)).one().superseded_at is not None
        assert db.session.scalars(select(TreatmentPlan.procedure_date)).one() == new


def test_a_plan_without_a_date_is_offered_to_add_one_by_that_name(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The form is named as its summary reads, for a screen reader too (its heading)."""
    reference = _completed_seen_yesterday(app, clinic, Plan.INJECTION, None)
    AuthActions(client).login("coordinator")
    shown = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert '<h3 class="visually-hidden" id="procedure-heading">Add the procedure date</h3>' in shown
    assert "Correct the procedure date" not in shown


# ---- invitations -----------------------------------------------------------------------------


def test_a_refused_completion_keeps_the_record_pages_headings_in_order(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The form sits under its own h3 ("Complete the request"): the summary of its errors is
    an h4 in it, not an h2 that would end the "Next step" part and take the form's fields
    with it."""
    reference = _seen_yesterday(app, clinic)
    AuthActions(client).login("coordinator")
    page = f"/staff/requests/{reference}"
    refused = client.post(
        f"{page}/complete", data={"complete-csrf_token": csrf_token(client, page)}
    )
    assert refused.status_code == 422
    outline = headings(refused.get_data(as_text=True))
    summary = outline.index((4, "Please correct the following"))
    assert outline[summary - 1] == (3, "Complete the request")
    levels = [level for level, _ in outline]
    skips = [outline[i] for i in range(1, len(levels)) if levels[i] > levels[i - 1] + 1]
    assert not skips, f"headings skip a level: {skips}"


def test_each_time_point_is_sent_once_at_its_time(app: Flask) -> None:
    with app.app_context():
        consultation = _completed()
        start = _start(consultation.id)
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert send_due_followups(now=six_weeks - timedelta(minutes=1)) == []
        assert len(send_due_followups(now=six_weeks)) == 1
        assert send_due_followups(now=six_weeks + timedelta(hours=1)) == []
        three_months = schedule.due_at(start, "3m", BERLIN)
        assert len(send_due_followups(now=three_months + timedelta(minutes=5))) == 1
        emails = _invitations()
        assert len(emails) == 2
        assert emails[0].recipient == "erika.mustermann@example.com"
        assert "/follow-up/open/" in emails[0].body_text
        assert "/stop" in emails[0].body_text  # the stop link is in every email
        assert "Herniated" not in emails[0].body_text
        points = db.session.scalars(select(FollowUp.point).order_by(FollowUp.id)).all()
        assert points == ["6w", "3m"]


def test_after_downtime_only_the_latest_due_point_is_sent(app: Flask) -> None:
    with app.app_context():
        consultation = _completed()
        start = _start(consultation.id)
        # The worker was down from before 6 weeks until just after 3 months.
        at = schedule.due_at(start, "3m", BERLIN) + timedelta(days=2)
        assert len(send_due_followups(now=at)) == 1
        rows = {f.point: f for f in db.session.scalars(select(FollowUp))}
        assert rows["3m"].sent_at == at and rows["6w"].sent_at is None  # missed, never sent late
        assert send_due_followups(now=at + timedelta(days=1)) == []
        # Down past the 12-month link's life: nothing is sent at all.
        late = schedule.due_at(start, "12m", BERLIN) + timedelta(days=31)
        assert send_due_followups(now=late) == []
        assert len(_invitations()) == 1


def test_two_workers_at_once_send_one_invitation(app: Flask) -> None:
    with app.app_context():
        consultation = _completed()
        at = schedule.due_at(_start(consultation.id), "6w", BERLIN) + timedelta(minutes=1)
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(send_due_followups(now=at))
                db.session.remove()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 1]
    with app.app_context():
        assert len(_invitations()) == 1
        assert db.session.scalar(select(func.count()).select_from(FollowUp)) == 1


def test_the_procedure_date_moves_the_schedule(app: Flask) -> None:
    with app.app_context():
        procedure = clinic_today() + timedelta(days=60)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=procedure)
        from_visit = schedule.due_at(
            db.session.get(TreatmentPlan, consultation.id).consulted_on, "6w", BERLIN
        )
        assert send_due_followups(now=from_visit + timedelta(hours=1)) == []
        assert len(send_due_followups(now=schedule.due_at(procedure, "6w", BERLIN))) == 1


@pytest.mark.parametrize(
    "why", ["no consent", "deceased", "stopped", "not completed", "contact consent withdrawn"]
)
def test_no_invitation_without_consent_or_to_the_deceased(app: Flask, why: str) -> None:
    with app.app_context():
        if why == "not completed":
            # A plan on a request still open (never the case from the page): not followed up.
            consultation = make_request(followup_consent=True)
            record_plan(consultation, Plan.ADVICE, None, make_staff("coordinator"))
            db.session.commit()
        else:
            consultation = _completed(consent=why != "no consent")
        if why == "deceased":
            mark_deceased(consultation, staff_user(make_staff("admin").email))
            assert db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "patient_marked_deceased")
            ).one()
        if why == "stopped":
            db.session.get(TreatmentPlan, consultation.id).followups_stopped_at = datetime.now(UTC)
            db.session.commit()
        if why == "contact consent withdrawn":  # on the private page: "no ... follow-ups"
            assert withdraw_contact_consent(consultation)
        at = schedule.due_at(_start(consultation.id), "6w", BERLIN) + timedelta(minutes=1)
        assert send_due_followups(now=at) == []
        assert _invitations() == []


def test_no_invitation_email_is_written_to_a_patient_marked_deceased(app: Flask) -> None:
    """The jobs leave a deceased patient out before writing; the email's own rule says so
    too (``Patient.writable_address``), for any caller: a reminder of an invitation sent
    before the patient was marked is not written."""
    with app.app_context():
        consultation = _completed()
        at = schedule.due_at(_start(consultation.id), "6w", BERLIN) + timedelta(minutes=1)
        assert len(send_due_followups(now=at)) == 1
        follow_up = db.session.scalars(select(FollowUp)).one()
        mark_deceased(consultation, staff_user(make_staff("admin").email))
        assert outcome_emails.invitation(consultation, follow_up, reminder=True) is None


def test_a_late_invitations_link_closes_when_the_next_time_point_falls_due(app: Flask) -> None:
    """The worker was down for four weeks: the 6-week invitation goes out late, and its link
    works until the 3-month one is due, not 30 days (no "6 weeks" answered after 3 months,
    never two questionnaires open at once)."""
    with app.app_context():
        consultation = _completed()
        start = _start(consultation.id)
        late = schedule.due_at(start, "6w", BERLIN) + timedelta(days=28)
        assert len(send_due_followups(now=late)) == 1
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert follow_up.expires_at == schedule.due_at(start, "3m", BERLIN)
        assert follow_up.expires_at < late + timedelta(days=30)


def _rows() -> list[FollowUp]:
    return list(db.session.scalars(select(FollowUp).order_by(FollowUp.id)))


def test_a_time_point_added_to_the_schedule_keeps_each_patients_questionnaires_in_order(
    app: Flask,
) -> None:
    """The clinic adds "10w" to "6w, 3m, 12m". A patient already asked at 3 months is not
    invited to a "10 weeks" questionnaire the next day (answered after 3 months, it would
    count as the 10-week result, two links open at once): their schedule goes on at 12
    months. A patient asked only at 6 weeks gets the 10-week one, and the 6-week link,
    still working then, closes as it is sent."""
    from booking.outcomes.services import default_settings

    with app.app_context():
        ahead = _completed(email="ahead@example.com")
        start = _start(ahead.id)
        send_due_followups(now=schedule.due_at(start, "6w", BERLIN))
        three_months = schedule.due_at(start, "3m", BERLIN)
        send_due_followups(now=three_months)
        behind = _second_completed(ahead, email="behind@example.com")
        # Eight weeks on: its six weeks (14 weeks from ``start``) come after the patient ahead's
        # three months (at most 92 days) in every month of the year; seven weeks on they came a
        # day early from late March (13 weeks = 91 days) and the test failed.
        behind_start = start + timedelta(weeks=8)
        db.session.get(TreatmentPlan, behind.id).consulted_on = behind_start
        db.session.commit()
        six_weeks = schedule.due_at(behind_start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        assert six_weeks > three_months

        chosen = default_settings()
        chosen.schedule = ["6w", "10w", "3m", "12m"]
        db.session.add(chosen)
        db.session.commit()
        ten_weeks = schedule.due_at(behind_start, "10w", BERLIN)
        assert len(send_due_followups(now=ten_weeks)) == 1
        rows = {
            (row.request_id, row.point): row
            for row in db.session.scalars(select(FollowUp).order_by(FollowUp.id))
        }
        assert (ahead.id, "10w") not in rows
        assert rows[behind.id, "10w"].sent_at == ten_weeks
        assert rows[behind.id, "6w"].expires_at == ten_weeks  # one questionnaire open at once
        assert send_due_followups(now=ten_weeks + timedelta(days=1)) == []
        assert (ahead.id, "10w") not in {(r.request_id, r.point) for r in _rows()}
        # The patient ahead goes on at 12 months.
        assert len(send_due_followups(now=schedule.due_at(start, "12m", BERLIN))) == 1
        assert [r.point for r in _rows() if r.request_id == ahead.id] == ["6w", "3m", "12m"]


def test_a_time_point_in_months_is_invited_whatever_the_months_lengths(app: Flask) -> None:
    """The sender reads only plans started recently enough for their last time point: three
    months back from 31 January (to 31 October, 92 days) is longer than three months forward
    from it (to 30 April, 89 days), and a short link once left such plans out for good."""
    from booking.outcomes.services import default_settings

    app.config["FOLLOWUP_LINK_DAYS"] = 1
    with app.app_context():
        chosen = default_settings()
        chosen.schedule = ["6w", "3m"]
        db.session.add(chosen)
        consultation = _completed()
        db.session.get(TreatmentPlan, consultation.id).consulted_on = date(2025, 10, 31)
        db.session.commit()
        due = schedule.due_at(date(2025, 10, 31), "3m", BERLIN)
        assert to_clinic_tz(due).date() == date(2026, 1, 31)
        assert len(send_due_followups(now=due + timedelta(minutes=5))) == 1
        assert db.session.scalars(
            select(FollowUp.point).where(FollowUp.sent_at.is_not(None))
        ).all() == ["3m"]


def test_one_reminder_after_seven_days_while_unanswered(app: Flask) -> None:
    with app.app_context():
        consultation = _completed()
        sent = schedule.due_at(_start(consultation.id), "6w", BERLIN)
        send_due_followups(now=sent)
        assert send_due_followup_reminders(now=sent + timedelta(days=6)) == []
        assert len(send_due_followup_reminders(now=sent + timedelta(days=7))) == 1
        assert send_due_followup_reminders(now=sent + timedelta(days=8)) == []
        emails = _invitations()
        assert len(emails) == 2 and emails[1].subject.startswith("Reminder")
        # Each email has a link of its own; both open the same questionnaire.
        assert db.session.scalar(select(func.count()).select_from(FollowUpLink)) == 2


def _second_completed(first: ConsultationRequest, **kw: Any) -> ConsultationRequest:
    """Another patient completed with ``first``'s staff, type and place, an hour later."""
    coordinator = db.session.scalars(select(StaffUser).where(StaffUser.role == "coordinator")).one()
    consultation = make_request(followup_consent=True, **kw)
    workflow.confirm_request(
        consultation,
        coordinator,
        workflow.Slot(
            db.session.scalars(select(AppointmentType)).one(),
            db.session.scalars(select(StaffUser).where(StaffUser.role == "specialist")).one(),
            db.session.scalars(select(Location)).one(),
            clinic_today() - timedelta(days=1),
            time(11),
        ),
    )
    workflow.complete_request(consultation, coordinator, Plan.PHYSIOTHERAPY, None)
    return consultation


def test_one_patients_failing_reminder_holds_back_no_later_patients(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The reminders go out in the follow-ups' order: one that cannot be written (here its
    email fails) is logged and tried again next run, and every later patient still gets
    theirs."""
    from booking.outcomes import services as job

    with app.app_context():
        failing = _completed(email="failing@example.com")
        other = _second_completed(failing, email="other@example.com")
        sent = schedule.due_at(_start(failing.id), "6w", BERLIN)
        assert len(send_due_followups(now=sent)) == 2
        compose = job.emails.invitation

        def fail_for_one(consultation, follow_up, **kw):
            if consultation.id == failing.id:
                raise RuntimeError("cannot compose")
            return compose(consultation, follow_up, **kw)

        monkeypatch.setattr(job.emails, "invitation", fail_for_one)
        [queued] = send_due_followup_reminders(now=sent + timedelta(days=7))
        assert db.session.get(OutboxEmail, queued).recipient == "other@example.com"
        reminded = {
            row.request_id: row.reminded_at
            for row in db.session.execute(select(FollowUp.request_id, FollowUp.reminded_at))
        }
        assert reminded[failing.id] is None and reminded[other.id] is not None
        # Mended, the failed one is reminded on the next run.
        monkeypatch.setattr(job.emails, "invitation", compose)
        assert len(send_due_followup_reminders(now=sent + timedelta(days=8))) == 1
    assert "follow-up reminder" in caplog.text and "failed; the others go on" in caplog.text


def test_no_reminder_for_a_patient_marked_deceased_while_the_job_ran(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the follow-ups due, then claims each: a patient marked deceased (or
    who stopped the invitations) in between, by staff in a request of their own (their own
    session, committed), is not sent the reminder. Marked as the job starts its claim, before
    it takes the request's lock: the moment a colleague's change can land (on SQLite the
    claim's transaction holds every writer off, on PostgreSQL its lock the request)."""
    from booking.outcomes import services as job

    with app.app_context():
        consultation = _completed()
        sent = schedule.due_at(_start(consultation.id), "6w", BERLIN)
        send_due_followups(now=sent)
        request_id = consultation.id
        coordinator_id = make_staff("coordinator").id
        lock_then_claim = job._lock_request
        marked: list[bool] = []

        def mark_then_claim(claimed_id: int) -> bool:
            if not marked:
                with app.app_context():  # the staff's request, in its own session
                    job.mark_deceased(
                        db.session.get(ConsultationRequest, request_id),
                        db.session.get(StaffUser, coordinator_id),
                    )
                    db.session.remove()
                marked.append(True)
            return lock_then_claim(claimed_id)

        monkeypatch.setattr(job, "_lock_request", mark_then_claim)
        assert send_due_followup_reminders(now=sent + timedelta(days=7)) == []
        # No reminder; and the invitation, never delivered here, was withdrawn with the mark.
        assert marked and _invitations() == []
        assert db.session.scalars(select(FollowUp)).one().reminded_at is None


def test_no_reminder_of_an_invitation_closed_by_a_date_corrected_while_the_job_ran(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reminder job reads the invitations unanswered, then claims each: staff postponing
    the operation in between (a request of its own: its own session, committed) close the
    open one (its time point has not come under the new date), a moment after the job's
    ``now``, and its reminder does not go."""
    from booking.outcomes import services as job

    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        request_id = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start).id
        coordinator_id = make_staff("coordinator").id
        sent = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=sent)) == 1
        now = sent + timedelta(days=7)
        closed: list[str] = []

        lock = job._lock_request

        def correct_then_claim(request: int) -> bool:
            if not closed:
                with app.app_context():  # the staff's request, in its own session
                    closed.extend(
                        correct_procedure_date(
                            db.session.get(ConsultationRequest, request_id),
                            start + timedelta(days=60),
                            db.session.get(StaffUser, coordinator_id),
                            now=now + timedelta(seconds=1),
                        ).closed
                    )
                    db.session.remove()
            return lock(request)

        # Between the job's read and its claim, which starts by taking the request's lock.
        monkeypatch.setattr(job, "_lock_request", correct_then_claim)
        assert send_due_followup_reminders(now=now) == []
        assert closed == ["6w"] and len(_invitations()) == 1
        assert db.session.scalars(select(FollowUp)).one().reminded_at is None


# ---- the order of the locks (PostgreSQL) ------------------------------------------------------
# Staff correcting a procedure date hold the request's row FOR UPDATE (``lock_request``), then
# update its follow-ups. A reminder or an answer that updated its follow-up first, then wrote an
# email to the outbox (whose foreign key takes a share of the request's row), would wait for
# the request while holding the follow-up: a deadlock, one side aborted. The race is made
# exact: a second connection holds the request as the correction does; the side under test
# must wait for it holding nothing on the follow-up, which the correction can then lock.
# PostgreSQL only: SQLite's BEGIN IMMEDIATE runs one writer at a time, whole.


def _hold_request(request_id: int) -> tuple[Any, Any]:
    """A second connection holding the request's row as a date correction does, until its
    transaction ends."""
    connection = db.engine.connect()
    transaction = connection.begin()
    connection.execute(
        select(ConsultationRequest.id).where(ConsultationRequest.id == request_id).with_for_update()
    )
    return connection, transaction


def _someone_waits_for(connection: Any) -> bool:
    """Whether a statement waits for a lock ``connection`` holds (a new transaction each
    time: PostgreSQL keeps one snapshot of its activity view per transaction)."""
    pid = connection.scalar(text("SELECT pg_backend_pid()"))
    with db.engine.connect() as probe:
        return bool(
            probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": pid},
            )
        )


def _follow_up_lockable(connection: Any, follow_up_id: int) -> bool:
    """Whether the correction, holding the request, could now lock the follow-up's row."""
    try:
        connection.execute(
            select(FollowUp.id).where(FollowUp.id == follow_up_id).with_for_update(nowait=True)
        )
    except OperationalError:  # lock_not_available
        return False
    return True


def _run_while_the_request_is_held(
    app: Flask, request_id: int, follow_up_id: int, work: Callable[[], Any]
) -> tuple[bool, list[Any]]:
    """Run ``work`` in a thread of its own while a second connection holds the request; once
    it waits, whether the follow-up could be locked; then release it and return what ``work``
    returned."""
    results: list[Any] = []

    def run() -> None:
        with app.app_context():
            try:
                results.append(work())
            except BaseException as exc:  # shown by the assertions of the caller
                results.append(exc)
            finally:
                db.session.remove()

    connection, transaction = _hold_request(request_id)
    worker = threading.Thread(target=run)
    try:
        worker.start()
        wait_until(lambda: _someone_waits_for(connection), "the other side to wait", 10)
        lockable = _follow_up_lockable(connection, follow_up_id)
    finally:
        transaction.rollback()
        connection.close()
        worker.join(timeout=30)
    assert not worker.is_alive()
    return lockable, results


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reminder_takes_the_request_before_its_follow_up(app: Flask) -> None:
    with app.app_context():
        consultation = _completed()
        request_id = consultation.id
        sent = schedule.due_at(_start(request_id), "6w", BERLIN)
        assert len(send_due_followups(now=sent)) == 1
        follow_up_id = db.session.scalars(select(FollowUp.id)).one()
        db.session.commit()

        lockable, [queued] = _run_while_the_request_is_held(
            app,
            request_id,
            follow_up_id,
            lambda: send_due_followup_reminders(now=sent + timedelta(days=7)),
        )
        assert lockable
        assert isinstance(queued, list) and len(queued) == 1
        assert db.session.get(FollowUp, follow_up_id).reminded_at == sent + timedelta(days=7)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_answer_takes_the_request_before_its_follow_up(app: Flask) -> None:
    """A patient much worse: the answers and the clinic's notice are written in one
    transaction, the notice to the outbox."""
    with app.app_context():
        consultation = _completed()
        request_id = consultation.id
        send_due_followups(now=schedule.due_at(_start(request_id), "6w", BERLIN))
        follow_up_id = db.session.scalars(select(FollowUp.id)).one()
        db.session.commit()
        worse = FollowUpAnswers(
            odi_answers={},
            odi_percent=20.0,
            ndi_answers={},
            ndi_percent=None,
            pain={"back_pain_now": 7, "back_pain_worst": 9, "leg_pain_now": 4, "leg_pain_worst": 8},
            gpe=max(GPE_WORSE),
            satisfaction=2,
        )

        lockable, [answered] = _run_while_the_request_is_held(
            app,
            request_id,
            follow_up_id,
            lambda: answer_followup(db.session.get_one(FollowUp, follow_up_id), worse),
        )
        assert lockable and answered is None
        follow_up = db.session.get_one(FollowUp, follow_up_id)
        assert follow_up.answered_at is not None and follow_up.gpe == max(GPE_WORSE)
    [notice] = outbox_emails(app, "followup_worse_staff")
    assert notice.request_id == request_id


# ---- the patient's questionnaire ---------------------------------------------------------------


def _link(app: Flask, stop: bool = False) -> str:
    with app.app_context():
        body = _invitations()[-1].body_text
    match = LINK.search(body)
    assert match
    return match.group(1) + ("/stop" if stop else "")


def _page(client: FlaskClient, name: str = "questionnaire") -> str:
    """The page ``name`` of the questionnaire whose link ``client`` opened: its cookie holds
    for that questionnaire's pages only (``/follow-up/<id>/``)."""
    paths = {path for _domain, path, key in client._cookies if key == "followup_access"}
    assert len(paths) == 1, paths
    return f"{paths.pop()}{name}"


def _questionnaire_open(app: Flask, client: FlaskClient, **completed: Any) -> tuple[str, int]:
    """A request completed (``_completed``'s options), its 6-week questionnaire sent, and its
    link opened in ``client``: the request's reference and id."""
    with app.app_context():
        consultation = _completed(**completed)
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", BERLIN))
        opened = consultation.reference, consultation.id
    client.get(_link(app))
    return opened


def _answers(token: str, **overrides: str) -> dict[str, str]:
    answers = {
        "csrf_token": token,
        "back_pain_now": "2",
        "back_pain_worst": "4",
        "leg_pain_now": "1",
        "leg_pain_worst": "3",
        "gpe": "2",
        "satisfaction": "5",
        **{
            f"odi_{key}": "1"
            for key in (
                "pain_intensity",
                "personal_care",
                "lifting",
                "walking",
                "sitting",
                "standing",
                "sleeping",
                "social_life",
                "travelling",
                "sex_life",
            )
        },
    }
    answers.update(overrides)
    return answers


def test_the_patient_answers_through_the_emails_link_once(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", BERLIN))
    opened = client.get(_link(app))
    assert opened.status_code == 303
    assert re.fullmatch(r"/follow-up/\d+/questionnaire", opened.headers["Location"])
    page = client.get(_page(client))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Back pain right now" in text and "Completely recovered" in text
    token = csrf_token(client, _page(client))
    bad = client.post(_page(client), data=_answers(token, back_pain_worst="1"))
    assert bad.status_code == 422
    assert "cannot be lower" in bad.get_data(as_text=True)
    done = client.post(_page(client), data=_answers(token))
    assert done.status_code == 303
    again = client.post(_page(client), data=_answers(token, gpe="7"))
    assert "already been answered" in again.get_data(as_text=True)
    with app.app_context():
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert follow_up.answered_at is not None
        assert follow_up.gpe == 2 and follow_up.satisfaction == 5
        assert follow_up.odi_percent == 20.0 and follow_up.back_pain_now == 2
        assert follow_up.neck_pain_now is None


def test_the_patients_copy_of_their_data_holds_the_plan_and_their_answers(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The right of access covers what the patient answered after the visit, and the plan
    staff decided, as it covers the intake's answers."""
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        reference = consultation.reference
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", BERLIN))
        make_staff("admin", "privacy.admin@example.com")
        # A registry export gave the record its code: the patient may ask the registry.
        db.session.add(RegistryCode(patient_id=consultation.patient_id, code="RC-7QX2M4"))
        db.session.commit()
    client.get(_link(app))
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token)).status_code == 303

    admin = auth.new_client(email="privacy.admin@example.com")
    page = admin.get(f"/staff/admin/privacy/{reference}").get_data(as_text=True)
    response = admin.post(
        f"/staff/admin/privacy/{reference}/export",
        data={"csrf_token": re.search(r'csrf_token"[^>]*value="([^"]+)"', page).group(1)},
    )
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    [exported] = json.loads(archive.read("patient.json"))["requests"]
    plan = exported["treatment_plan"]
    assert plan["plan"] == "physiotherapy" and plan["procedure_date"] is None
    assert plan["registry_code"] == "RC-7QX2M4"
    [answered] = plan["follow_ups"]
    assert answered["point"] == "6w" and answered["answered_at"]
    assert (answered["odi_percent"], answered["gpe"], answered["satisfaction"]) == (20.0, 2, 5)
    assert answered["odi_answers"]["walking"] == 1
    summary = archive.read("summary.txt").decode()
    section = summary.split("-- Follow-up questionnaires --")[1].split("-- Emails --")[0]
    assert "Oswestry Disability Index, score (%): 20.0" in section
    assert "Time point: 6 weeks" in section
    # Every answer in words, not as its code.
    assert "Change since the treatment: Much improved" in section
    assert "Satisfaction with the treatment: Very satisfied" in section
    assert "Plan: Physiotherapy" in summary
    assert "Your code in the clinic's registry exports: RC-7QX2M4" in summary
    assert "Walking: " in section  # each answer as the statement the patient chose


@pytest.mark.parametrize(("gpe", "alerted"), [("6", True), ("7", True), ("5", False)])
def test_a_patient_much_worse_is_brought_to_the_clinics_attention(
    app: Flask, client: FlaskClient, gpe: str, alerted: bool
) -> None:
    """ "Much worse" or "worse than ever" emails the clinic with the answer, in the same
    transaction as the answers, and the patient reads what to do now; "slightly worse" is
    seen on the record as any answer is."""
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        reference = consultation.reference
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", BERLIN))
    client.get(_link(app))
    token = csrf_token(client, _page(client))
    done = client.post(_page(client), data=_answers(token, gpe=gpe))
    assert done.status_code == 303
    thanks = client.get(done.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        alerts = list(
            db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.template == "followup_worse_staff")
            )
        )
        if not alerted:
            assert alerts == []
            assert "You told us your symptoms are worse" not in thanks
            assert "does not read the answers straight away" in thanks
            return
        [alert] = alerts
        assert alert.recipient == app.config["STAFF_NOTIFICATION_EMAIL"]
        assert reference in alert.subject and "reports being worse" in alert.subject
        answer = "Much worse" if gpe == "6" else "Worse than ever"
        assert f"the 6 weeks follow-up questionnaire of request {reference}" in alert.body_text
        assert f'chose "{answer}"' in alert.body_text
        assert f"/staff/requests/{reference}" in alert.body_text
        assert "Erika" not in alert.body_text + alert.body_html  # no name
    assert "You told us your symptoms are worse" in thanks
    assert "please call the clinic" in thanks and "Call 112" in thanks
    # Coming back to the link later, they read it again.
    again = client.get(_page(client)).get_data(as_text=True)
    assert "already been answered" in again and "You told us your symptoms are worse" in again


def test_a_worse_notice_that_failed_is_on_the_queue_until_someone_opens_the_record(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The clinic's email about a patient much worse failed for good: nobody would learn of
    the answer. The queue names the request, apart from the urgent alerts, until a staff
    member opens its record (which shows the answer); an opening before the answer does not
    count."""
    from booking.notifications.models import OutboxStatus

    reference, _id = _questionnaire_open(app, client, spine_region="lower_back")
    staff = auth.new_client(email=auth.account("coordinator").email)
    staff.get(f"/staff/requests/{reference}")  # before the answer: it was not there to see
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token, gpe="7")).status_code == 303
    with app.app_context():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template == "followup_worse_staff")
            .values(status=OutboxStatus.FAILED)
        )
        db.session.commit()

    page = staff.get("/staff/").get_data(as_text=True)
    assert 'id="failed-alerts-heading"' not in page  # not an urgent request's alert
    banner = page.split('id="failed-worse-heading"')[1].split("</section>")[0]
    assert "much worse or worse than ever" in banner
    assert f"/staff/requests/{reference}#followup" in banner
    assert f"Open the follow-up answers of request {reference}</a>" in banner
    [opening] = re.findall(r'<section[^>]*"failed-worse-heading"[^>]*>', page)
    assert "role=" not in opening  # a region named by its heading, not an alert
    # A specialist does not get the banner (coordinators and admins answer every request).
    specialist = auth.new_client(email=auth.account("specialist").email)
    assert 'id="failed-worse-heading"' not in specialist.get("/staff/").get_data(as_text=True)

    staff.get(f"/staff/requests/{reference}")
    assert 'id="failed-worse-heading"' not in staff.get("/staff/").get_data(as_text=True)


def test_a_worse_notice_still_waiting_after_its_minutes_is_on_the_queue(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """Not failed, but not delivered either (no worker running, or the mail server refusing
    for hours of retries): after ``ALERT_LATE_MINUTES`` the queue names it, as a failed one."""
    reference, _id = _questionnaire_open(app, client, spine_region="lower_back")
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token, gpe="7")).status_code == 303
    staff = auth.new_client(email=auth.account("coordinator").email)

    def written_ago(minutes: int) -> None:
        with app.app_context():
            db.session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.template == "followup_worse_staff")
                .values(created_at=now_utc() - timedelta(minutes=minutes))
            )
            db.session.commit()

    written_ago(app.config["ALERT_LATE_MINUTES"] - 1)
    assert 'id="failed-worse-heading"' not in staff.get("/staff/").get_data(as_text=True)
    written_ago(app.config["ALERT_LATE_MINUTES"] + 1)
    page = staff.get("/staff/").get_data(as_text=True)
    banner = page.split('id="failed-worse-heading"')[1].split("</section>")[0]
    assert f"Open the follow-up answers of request {reference}</a>" in banner
    assert f"more than {app.config['ALERT_LATE_MINUTES']} minutes" in banner


def _untouched_since(request_id: int, old: datetime, treated_on: date) -> None:
    """Date a completed request's every change ``old`` (its status, timeline, appointment
    and plan), its treatment started ``treated_on``; the caller commits."""
    from booking.requests.events import RequestEvent
    from booking.scheduling.models import Appointment

    for model, column, values in (
        (ConsultationRequest, ConsultationRequest.id, {"updated_at": old}),
        (RequestEvent, RequestEvent.request_id, {"occurred_at": old}),
        (
            Appointment,
            Appointment.request_id,
            {"starts_at": old - timedelta(hours=1), "ends_at": old},
        ),
        (TreatmentPlan, TreatmentPlan.request_id, {"decided_at": old, "consulted_on": treated_on}),
    ):
        db.session.execute(update(model).where(column == request_id).values(**values))


def test_retention_keeps_a_request_whose_follow_up_was_answered_within_the_period(
    app: Flask,
) -> None:
    """A follow-up answered last week is a change: the request is not "untouched" for the
    retention job, whatever the age of its status change, appointment and plan."""
    from booking.privacy.services import purge_expired

    app.config["RETENTION_DAYS"] = 30
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        request_id, reference = consultation.id, consultation.reference
        send_due_followups(now=schedule.due_at(_start(request_id), "6w", BERLIN))
        old, last_week = now_utc() - timedelta(days=40), now_utc() - timedelta(days=7)
        # Treated long enough ago that every time point is past (the next test).
        _untouched_since(request_id, old, treated_on=(old - timedelta(days=500)).date())
        db.session.execute(
            update(FollowUp)
            .where(FollowUp.request_id == request_id)
            .values(sent_at=old, expires_at=old, answered_at=last_week)
        )
        db.session.commit()
        assert purge_expired(dry_run=True).references == []

        db.session.execute(
            update(FollowUp).where(FollowUp.request_id == request_id).values(answered_at=old)
        )
        db.session.commit()
        assert purge_expired(dry_run=True).references == [reference]


def test_one_plan_that_cannot_be_scheduled_holds_back_no_other_patients_invitation(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """A procedure date stored before the check above (9999-12-31: its 3 months fall past the
    calendar's end) fails its own plan only; the job logs it and invites everyone else."""
    with app.app_context():
        other = _completed(spine_region="lower_back", email="other@example.com")
        broken = make_request(
            followup_consent=True, spine_region="lower_back", email="broken@example.com"
        )
        broken.status = RequestStatus.COMPLETED
        db.session.add(
            TreatmentPlan(
                request_id=broken.id,
                plan=Plan.PHYSIOTHERAPY,
                consulted_on=clinic_today(),
                procedure_date=date(9999, 12, 31),
            )
        )
        db.session.commit()
        broken_id, other_id = broken.id, other.id
        queued = send_due_followups(now=schedule.due_at(_start(other_id), "6w", BERLIN))
        assert len(queued) == 1
        (invited,) = db.session.scalars(select(FollowUp.request_id)).all()
        assert invited == other_id
    assert f"follow-up of request {broken_id} failed; the others go on" in caplog.text


def test_retention_keeps_a_request_until_its_last_follow_up_has_had_its_chance(
    app: Flask,
) -> None:
    """A clinic keeping closed requests 30 days: a patient treated 40 days ago, nothing
    changed since, still has the 3- and 12-month questionnaires to come. Purged, they would
    never be sent (and the outcomes would lose them); the patient stopping them ends that."""
    from booking.privacy.services import purge_expired

    app.config["RETENTION_DAYS"] = 30
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        request_id, reference = consultation.id, consultation.reference
        old = now_utc() - timedelta(days=40)
        _untouched_since(request_id, old, treated_on=old.date())
        db.session.commit()
        assert purge_expired(dry_run=True).references == []
        # A patient who gave no consent to them is sent none: nothing keeps the request.
        for consent, due in ((False, [reference]), (True, [])):
            db.session.execute(
                update(ConsultationRequest)
                .where(ConsultationRequest.id == request_id)
                .values(followup_consent=consent, updated_at=old)
            )
            db.session.commit()
            assert purge_expired(dry_run=True).references == due

        db.session.execute(
            update(TreatmentPlan)
            .where(TreatmentPlan.request_id == request_id)
            .values(followups_stopped_at=old)
        )
        db.session.commit()
        assert purge_expired(dry_run=True).references == [reference]


def test_a_back_and_neck_patient_reads_which_region_each_part_is_about(
    app: Flask, client: FlaskClient
) -> None:
    _questionnaire_open(app, client, spine_region="both")
    page = client.get(_page(client)).get_data(as_text=True)
    back = page.index("Daily life: your lower back")
    neck = page.index("Daily life: your neck")
    assert back < neck and ">Daily life<" not in page


def test_answers_too_few_to_score_are_pointed_out_once(app: Flask, client: FlaskClient) -> None:
    """Every section may be skipped, but a score needs 8 of 10: a patient who skipped more is
    told once, and their answers go as they are if they send again."""
    _questionnaire_open(app, client, spine_region="lower_back")
    token = csrf_token(client, _page(client))
    answers = _answers(token)
    skipped = {
        k: v for k, v in answers.items() if k not in ("odi_walking", "odi_sitting", "odi_standing")
    }
    first = client.post(_page(client), data=skipped)
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert "Some answers cannot be counted yet" in page
    assert "at least 8 of its 10 sections are answered" in page
    # A warning the patient may send past, not an error: the title says to look again.
    assert "<title>Please check: How are you doing?" in page and "<title>Error" not in page
    assert 'name="send_anyway" value="1"' in page
    # What was chosen is kept.
    assert re.search(r'<input[^>]*checked[^>]*name="back_pain_now"[^>]*value="2"', page)
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).one().answered_at is None

    sent = client.post(_page(client), data={**skipped, "send_anyway": "1"})
    assert sent.status_code == 303
    with app.app_context():
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert follow_up.answered_at is not None and follow_up.odi_percent is None


def test_a_section_ticked_by_mistake_can_be_skipped_after_all(
    app: Flask, client: FlaskClient
) -> None:
    """Both instruments say a section that does not apply may be skipped, but a radio
    button once ticked cannot be unticked (the page had no way to send "no answer" for it):
    each section's last choice skips it. Chosen for "Sex life", the score is taken over the
    nine sections answered."""
    _questionnaire_open(app, client, spine_region="lower_back")
    page = client.get(_page(client)).get_data(as_text=True)
    assert page.count("Skip this section: it does not apply to me") == 10
    assert re.search(r'name="odi_sex_life"[^>]*type="radio" value=""', page)
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token, odi_sex_life="")).status_code == 303
    with app.app_context():
        follow_up = db.session.scalars(select(FollowUp)).one()
        assert follow_up.odi_answers.get("sex_life") is None
        assert sum(v is not None for v in follow_up.odi_answers.values()) == 9
        assert follow_up.odi_percent == 20.0  # 9 points of 45


def test_two_sections_skipped_still_score_without_a_word(app: Flask, client: FlaskClient) -> None:
    _questionnaire_open(app, client, spine_region="lower_back")
    token = csrf_token(client, _page(client))
    answers = {k: v for k, v in _answers(token).items() if k not in ("odi_walking", "odi_sex_life")}
    assert client.post(_page(client), data=answers).status_code == 303


def test_coordinators_see_who_answered_worse_and_who_never_answered(
    app: Flask, auth: AuthActions
) -> None:
    with app.app_context():
        yesterday = clinic_today() - timedelta(days=1)  # every one's consultation
        first = _completed(spine_region="lower_back", on=yesterday)
        coordinator = db.session.scalars(
            select(StaffUser).where(StaffUser.role == "coordinator")
        ).one()
        specialist = db.session.scalars(
            select(StaffUser).where(StaffUser.role == "specialist")
        ).one()
        refs = {"worse": first.reference}
        for name in ("better", "expired", "open", "stopped"):
            consultation = make_request(followup_consent=True)
            workflow.confirm_request(
                consultation,
                coordinator,
                workflow.Slot(
                    db.session.scalars(select(AppointmentType)).one(),
                    specialist,
                    db.session.scalars(select(Location)).one(),
                    yesterday,
                    time(11 + len(refs)),
                ),
            )
            workflow.complete_request(consultation, coordinator, Plan.PHYSIOTHERAPY, None)
            refs[name] = consultation.reference
        assert len(send_due_followups(now=schedule.due_at(_start(first.id), "6w", BERLIN))) == 5
        by_ref = {
            ref: db.session.scalars(
                select(FollowUp)
                .join(ConsultationRequest, ConsultationRequest.id == FollowUp.request_id)
                .where(ConsultationRequest.reference == ref)
            ).one()
            for ref in refs.values()
        }
        for name, gpe in (("worse", 6), ("better", 2)):
            by_ref[refs[name]].answered_at = now_utc()
            by_ref[refs[name]].gpe = gpe
        by_ref[refs["expired"]].expires_at = now_utc() - timedelta(minutes=1)
        db.session.get(
            TreatmentPlan, by_ref[refs["stopped"]].request_id
        ).followups_stopped_at = now_utc()
        db.session.commit()
        make_staff("specialist", "other.specialist@example.com")

    staff = auth.new_client(email=auth.account("coordinator").email)
    page = staff.get("/staff/outcomes/follow-ups").get_data(as_text=True)  # "worse" first
    table = page[page.index('id="follow-ups"') :]
    assert refs["worse"] in table and "Much worse" in table
    assert [name for name, caption in table_boxes(page)] == ["Answered worse"]
    assert not any(refs[name] in table for name in ("better", "expired", "open", "stopped"))
    assert re.search(r"Answered worse <span[^>]*>1</span>", page)
    assert re.search(r"Never answered <span[^>]*>2</span>", page)

    never = staff.get("/staff/outcomes/follow-ups?show=unanswered").get_data(as_text=True)
    table = never[never.index('id="follow-ups"') :]
    assert refs["expired"] in table and refs["stopped"] in table
    assert "stopped by the patient" in table
    assert refs["open"] not in table and refs["worse"] not in table
    still_open = staff.get("/staff/outcomes/follow-ups?show=open").get_data(as_text=True)
    assert refs["open"] in still_open and refs["stopped"] not in still_open
    answered = staff.get("/staff/outcomes/follow-ups?show=answered").get_data(as_text=True)
    assert refs["better"] in answered and refs["worse"] in answered

    # A patient since marked deceased is nobody to chase: in no list of the unanswered.
    with app.app_context():
        db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == refs["open"])
        ).one().patient.deceased_at = now_utc()
        db.session.commit()
    still_open = staff.get("/staff/outcomes/follow-ups?show=open").get_data(as_text=True)
    assert refs["open"] not in still_open

    specialist_client = auth.new_client(email="other.specialist@example.com")
    assert specialist_client.get("/staff/outcomes/follow-ups").status_code == 403


def test_the_follow_up_list_marks_an_answer_a_corrected_date_superseded(
    app: Flask, auth: AuthActions
) -> None:
    """The patient answered the 6 weeks "much worse", then staff postponed the operation:
    that answer is superseded, and the 6 weeks asked again. It stays listed among the
    answered worse and the answered (the clinic must see it), marked as not counted; the
    questionnaire asked again is listed open, unmarked."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        reference = consultation.reference
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        db.session.execute(
            update(FollowUp).values(answered_at=six_weeks + timedelta(days=1), gpe=6)
        )
        db.session.commit()
        new = start + timedelta(days=40)
        corrected = correct_procedure_date(
            consultation,
            new,
            staff_user(make_staff("coordinator").email),
            now=six_weeks + timedelta(days=2),
        )
        assert corrected.superseded == ["6w"]
        assert len(send_due_followups(now=schedule.due_at(new, "6w", BERLIN))) == 1

    staff = auth.new_client(email=auth.account("coordinator").email)
    marker = "superseded when the procedure date changed"
    for show, rows in (("worse", 1), ("answered", 1), ("open", 1)):
        page = staff.get(f"/staff/outcomes/follow-ups?show={show}").get_data(as_text=True)
        table = page[page.index('id="follow-ups"') :]
        assert table.count(f">{reference}</a>") == rows, show
        assert (marker in table) == (show != "open"), show
        if show != "open":
            assert "not counted, asked again at its new time" in table


def test_the_record_dates_the_baseline_and_flags_an_old_one(app: Flask, auth: AuthActions) -> None:
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        reference, request_id = consultation.reference, consultation.id
        send_due_followups(now=schedule.due_at(_start(request_id), "6w", BERLIN))
    staff = auth.new_client(email=auth.account("coordinator").email)
    record = staff.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert 'id="progress-table"' in record
    # Wider than a phone, it scrolls in a box a keyboard reaches without scripts too.
    [(name, caption)] = table_boxes(record)
    assert name == caption and caption.startswith("Baseline (the request's answers)")
    assert "days before the treatment started" not in record
    with app.app_context():
        start = db.session.get(TreatmentPlan, request_id).consulted_on
        answered = now_utc() - timedelta(days=200)
        db.session.execute(
            update(ConsultationRequest)
            .where(ConsultationRequest.id == request_id)
            .values(created_at=answered)
        )
        db.session.commit()
        # Counted in clinic days: late in a UTC evening the clinic's date is already the next.
        days = (start - to_clinic_tz(answered).date()).days
    record = staff.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f"{days} days before the treatment started" in record


def test_the_record_names_the_follow_up_consent_text_by_its_date(
    app: Flask, auth: AuthActions
) -> None:
    """The consent text's version is the day it took effect, read as a date."""
    with app.app_context():
        consultation = _completed()
        reference = consultation.reference
        consultation.followup_consent_version = "2026-12-05"
        db.session.commit()
    staff = auth.new_client(email=auth.account("coordinator").email)
    record = staff.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Yes (consent text of 5 Dec 2026)</dd>" in record
    assert "2026-12-05" not in record


def test_the_pain_scales_are_required_and_not_marked_optional(
    app: Flask, client: FlaskClient
) -> None:
    _questionnaire_open(app, client, spine_region="lower_back")
    text = client.get(_page(client)).get_data(as_text=True)
    for label in ("Back pain right now", "Leg pain at its worst in the last week"):
        marked = re.search(rf"{label}\s*(<[^>]+>\s*)*\(optional\)", text)
        assert marked is None, label
    token = csrf_token(client, _page(client))
    unrated = {key: "" for key in ("back_pain_now", "back_pain_worst", "leg_pain_now")}
    bad = client.post(_page(client), data=_answers(token, **unrated))
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert page.count("Please rate this pain right now from 0 to 10.") >= 2  # field and summary
    assert "Please rate this pain at its worst from 0 to 10." in page
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).one().answered_at is None


def _six_weeks_sent_late(app: Flask) -> datetime:
    """A completed request's 6-week questionnaire sent, its link open for 60 days more (as
    one sent late, open when the 3-month one comes); the treatment's start."""
    with app.app_context():
        consultation = _completed(spine_region="lower_back")
        start = _start(consultation.id)
        send_due_followups(now=schedule.due_at(start, "6w", BERLIN))
        db.session.execute(update(FollowUp).values(expires_at=now_utc() + timedelta(days=60)))
        db.session.commit()
    return start


def test_two_questionnaires_open_in_two_tabs_each_keep_their_own_answers(
    app: Flask, client: FlaskClient
) -> None:
    """The 6-week questionnaire, sent late, is open in one tab when the 3-month one arrives
    and is opened in another: each tab's answers go to its own questionnaire."""
    start = _six_weeks_sent_late(app)
    client.get(_link(app))
    six_weeks = _page(client)
    token = csrf_token(client, six_weeks)
    with app.app_context():
        send_due_followups(now=schedule.due_at(start, "3m", BERLIN))
        assert len(_invitations()) == 2
    three_months = client.get(_link(app)).headers["Location"]
    assert three_months != six_weeks
    assert client.post(six_weeks, data=_answers(token, gpe="3")).status_code == 303
    assert "3 months" in client.get(three_months).get_data(as_text=True)
    with app.app_context():
        answered = {f.point: f.gpe for f in db.session.scalars(select(FollowUp)) if f.answered_at}
    assert answered == {"6w": 3}
    # A questionnaire's address opens nothing without its own link's cookie.
    assert client.get("/follow-up/999999/questionnaire").status_code == 404


def test_a_cookie_of_the_same_name_planted_first_does_not_close_the_questionnaire(
    app: Flask, client: FlaskClient
) -> None:
    """A sibling site on the same domain can set ``followup_access`` for the questionnaire's
    path, and the browser then sends both, the planted one first: the pages try every value
    and open with the patient's, renew that one, and the answers are taken."""
    start = _six_weeks_sent_late(app)
    client.get(_link(app))
    page = _page(client)
    form_token = csrf_token(client, page)
    own = client.get_cookie("followup_access", path=page.rsplit("/", 1)[0] + "/")
    assert own is not None
    # Another questionnaire's working link (the 3-month one) is no key to this one either.
    with app.app_context():
        send_due_followups(now=schedule.due_at(start, "3m", BERLIN))
    later = app.test_client()
    later_page = later.get(_link(app)).headers["Location"]
    others = later.get_cookie("followup_access", path=later_page.rsplit("/", 1)[0] + "/")
    assert others is not None and later_page != page
    session = session_cookie(client)
    browser = app.test_client(use_cookies=False)
    for junk in ("A" * 43, others.value, "x" * 5000, "\xe9"):
        sent = f"followup_access={junk}; followup_access={own.value}"
        for path in (page, page.replace("questionnaire", "stop")):
            shown = browser.get(path, headers={"Cookie": sent})
            assert shown.status_code == 200, (junk[:10], path)
        renewed = browser.get(page, headers={"Cookie": sent}).headers.getlist("Set-Cookie")
        assert [c for c in renewed if c.startswith(f"followup_access={own.value};")], renewed
        assert browser.get(page, headers={"Cookie": f"followup_access={junk}"}).status_code == 404
    sent = f"{session.key}={session.value}; followup_access=junk; followup_access={own.value}"
    answered = browser.post(page, data=_answers(form_token), headers={"Cookie": sent})
    assert answered.status_code == 303
    with app.app_context():
        answers = {f.point: f.gpe for f in db.session.scalars(select(FollowUp)) if f.answered_at}
    assert answers == {"6w": 2}


@pytest.mark.parametrize("why", ["deceased", "contact consent withdrawn"])
def test_an_open_questionnaire_closes_for_a_patient_no_longer_to_be_contacted(
    app: Flask, client: FlaskClient, why: str
) -> None:
    """Marked deceased (nobody answers for them, nor alerts the clinic they are worse), or
    consent withdrawn, while the page is open: the answers are not stored."""
    _reference, request_id = _questionnaire_open(app, client)
    token = csrf_token(client, _page(client))
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        if why == "deceased":
            mark_deceased(consultation, staff_user(make_staff("admin").email))
        else:
            assert withdraw_contact_consent(consultation)
    response = client.post(_page(client), data=_answers(token, gpe="7"))
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalars(select(FollowUp.answered_at)).one() is None
        assert (
            db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.template == "followup_worse_staff")
            ).all()
            == []
        )


@pytest.mark.parametrize("why", ["deceased", "contact consent withdrawn"])
def test_a_patient_no_longer_to_be_contacted_is_not_counted_as_waiting(
    app: Flask, client: FlaskClient, why: str
) -> None:
    """Their link answers no more (``can_answer``), whatever its expiry says: the results,
    the coordinators' lists and the record agree that the questionnaire is closed, and an
    unanswered one is left out rather than counted a non-response (nobody is to chase
    them, and they are no longer followed up)."""
    from booking.outcomes.progress import OPEN, UNANSWERED, follow_up_list

    with app.app_context():
        consultation = _completed()
        start = _start(consultation.id)
        sent = schedule.due_at(start, "6w", BERLIN)
        send_due_followups(now=sent)
        if why == "deceased":
            mark_deceased(consultation, staff_user(make_staff("admin").email))
        else:
            assert withdraw_contact_consent(consultation)
        reference = consultation.reference
        soon = sent + timedelta(days=1)  # the link's expiry is weeks away
        # Sent, neither open nor answered: no longer followed up (left out of the rate).
        assert response_counts(start - timedelta(days=1), now=soon) == {"6w": [1, 0, 0, 1, 0]}
        _rows, counts = follow_up_list(OPEN, soon)
        assert counts[OPEN] == 0 and counts[UNANSWERED] == 0
    AuthActions(client).login("coordinator")
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "not answered" in record and "sent, waiting" not in record


@pytest.mark.parametrize("field", ["back_pain_now", "odi_lifting", "gpe"])
def test_an_answer_of_spaces_is_refused_on_its_field(
    app: Flask, client: FlaskClient, field: str
) -> None:
    """No browser sends one; Optional() alone read it as no answer and the score as int(" ")."""
    _questionnaire_open(app, client)
    token = csrf_token(client, _page(client))
    response = client.post(_page(client), data=_answers(token, **{field: " "}))
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(FollowUp.answered_at)).one() is None


def test_the_thanks_page_is_only_for_a_questionnaire_answered(
    app: Flask, client: FlaskClient
) -> None:
    _questionnaire_open(app, client)
    assert client.get(_page(client, "thanks")).status_code == 404
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token)).status_code == 303
    assert "Thank you" in client.get(_page(client, "thanks")).get_data(as_text=True)


def test_a_link_expires_after_thirty_days_and_a_stranger_gets_nothing(
    app: Flask, client: FlaskClient
) -> None:
    assert client.get("/follow-up/open/not-a-real-token").status_code == 404
    assert client.get("/follow-up/1/questionnaire").status_code == 404
    with app.app_context():
        # Seen 81 days ago, treated the day after; the 6-week invitation went out 31 days ago.
        _completed(plan=Plan.INJECTION, procedure=clinic_today() - timedelta(days=80), days_ago=81)
        assert len(send_due_followups(now=datetime.now(UTC) - timedelta(days=31))) == 1
    assert client.get(_link(app)).status_code == 303
    gone = client.get(_page(client))
    assert gone.status_code == 404
    assert "This link no longer works" in gone.get_data(as_text=True)
    assert "works for 30 days after we send it" in gone.get_data(as_text=True)
    app.config["FOLLOWUP_LINK_DAYS"] = 14  # the page says the clinic's own setting
    assert "works for 14 days after" in client.get(_page(client)).get_data(as_text=True)


def test_a_questionnaire_closed_by_a_changed_treatment_date_says_so(
    app: Flask, client: FlaskClient
) -> None:
    """The operation postponed after the 6-week questionnaire went: the patient opening its
    link is told the treatment date changed and that it comes again if it still applies,
    not that the link no longer works; nor can they send it."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
    _reference, request_id = _questionnaire_open(
        app, client, plan=Plan.OPEN_SURGERY, procedure=start
    )
    page = _page(client)
    token = csrf_token(client, page)
    with app.app_context():
        correct_procedure_date(
            db.session.get(ConsultationRequest, request_id),
            start + timedelta(days=40),
            staff_user(make_staff("coordinator").email),
            now=schedule.due_at(start, "6w", BERLIN) + timedelta(hours=1),
        )
    for gone in (client.get(page), client.post(page, data=_answers(token))):
        assert gone.status_code == 404
        text = gone.get_data(as_text=True)
        assert "<title>Your treatment date has changed" in text
        assert "we will send it to you again at the right time" in text
        assert "You do not need to do anything now." in text
        assert "no longer works" not in text
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).one().answered_at is None


@pytest.mark.parametrize(
    ("days_ago", "after", "replaced"),
    [(110, 1, True), (140, 29, False)],
    ids=["3 months sent", "3 months missed"],
)
def test_a_questionnaire_a_date_brought_forward_closed_points_to_the_newer_one(
    app: Flask, client: FlaskClient, days_ago: int, after: int, replaced: bool
) -> None:
    """The procedure recorded 60 days after the consultation, its 6-week questionnaire sent,
    then the date corrected to the consultation day: the 6-week link closes and the 3 months,
    due already, are sent at once. The patient opening the 6-week link is told it was
    replaced by a newer one, in the latest email; not when the 3 months, past their link's
    life, were recorded missed and nothing newer went (the page as for any link closed)."""
    with app.app_context():
        consulted = clinic_today() - timedelta(days=days_ago)
    _reference, request_id = _questionnaire_open(
        app,
        client,
        plan=Plan.OPEN_SURGERY,
        procedure=consulted + timedelta(days=60),
        on=consulted,
    )
    page = _page(client)
    with app.app_context():
        now = schedule.due_at(consulted + timedelta(days=60), "6w", BERLIN) + timedelta(after)
        assert now < now_utc()  # the link closed at ``now`` is closed as the page is opened
        corrected = correct_procedure_date(
            db.session.get(ConsultationRequest, request_id),
            consulted,
            staff_user(make_staff("coordinator").email),
            now=now,
        )
        assert corrected.closed == ["6w"]
        assert len(send_due_followups(now=now)) == (1 if replaced else 0)
    gone = client.get(page)
    assert gone.status_code == 404
    text = gone.get_data(as_text=True)
    assert ("replaced by a newer one" in text) == replaced
    assert ("the link in the most recent email from the clinic" in text) == replaced
    assert ("no longer works" in text) != replaced
    assert "Your treatment date has changed" not in text


def test_a_questionnaire_after_a_procedure_counts_from_the_procedure(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        consultation = _completed(
            plan=Plan.MINIMALLY_INVASIVE, procedure=clinic_today() + timedelta(days=3)
        )
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", BERLIN))
    client.get(_link(app))
    page = client.get(_page(client)).get_data(as_text=True)
    assert "How are you doing? (6 weeks after your procedure)" in page
    assert "after your visit)" not in page


def test_the_stop_link_stops_further_invitations(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        consultation = _completed()
        start, reference = _start(consultation.id), consultation.reference
        send_due_followups(now=schedule.due_at(start, "6w", BERLIN))
    assert client.get(_link(app, stop=True)).status_code == 303
    page = client.get(_page(client, "stop"))
    assert "Send me no more questionnaires" in page.get_data(as_text=True)
    token = csrf_token(client, _page(client, "stop"))
    assert client.post(_page(client, "stop"), data={"csrf_token": token}).status_code == 303
    assert "no more questionnaires" in client.get(_page(client, "stop")).get_data(as_text=True)
    with app.app_context():
        later = schedule.due_at(start, "3m", BERLIN)
        assert send_due_followups(now=later) == []
        assert send_due_followup_reminders(now=later) == []
        assert db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "followups_stopped")
        ).one()
        # The open invitation is closed for the results (a non-response, not "still open")
        # and the record says why it is unanswered.
        [(sent, still_open, answered, _left_out, _closed_for_later)] = response_counts(
            start - timedelta(days=1)
        ).values()
        assert (sent, still_open, answered) == (1, 0, 0)
    staff = app.test_client()
    AuthActions(staff).login("coordinator")
    record = staff.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "not answered (stopped)" in record and "sent, waiting" not in record


def test_the_stop_page_says_a_questionnaire_closes_only_while_one_is_open(
    app: Flask, client: FlaskClient
) -> None:
    """Once the questionnaire was answered, the stop page still told the patient that "the
    one open now closes": there was none."""
    _questionnaire_open(app, client, spine_region="lower_back")
    stop = client.get(_page(client, "stop")).get_data(as_text=True)
    assert "and the one open now closes" in stop
    token = csrf_token(client, _page(client))
    assert client.post(_page(client), data=_answers(token)).status_code == 303
    stop = client.get(_page(client, "stop")).get_data(as_text=True)
    assert "Send me no more questionnaires" in stop
    assert "You will receive no more questionnaires about how you are doing" in stop
    assert "open now" not in stop


def test_answers_the_database_failed_to_store_are_shown_again(
    app: Flask, client: FlaskClient, failing_commit: Callable[[], None]
) -> None:
    """The questionnaire came back as the bare 503 page and every answer was gone (the pages
    are no-store: Back shows an empty form). Now it comes back with the answers chosen, and
    sending again stores them."""
    _questionnaire_open(app, client, spine_region="lower_back")
    token = csrf_token(client, _page(client))
    failing_commit()
    failed = client.post(_page(client), data=_answers(token, gpe="3"))
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert "we cannot confirm that your answers were saved" in page
    assert re.search(r'<input[^>]*checked[^>]*name="gpe"[^>]*value="3"', page)
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).one().answered_at is None
    assert client.post(_page(client), data=_answers(token, gpe="3")).status_code == 303
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).one().gpe == 3
