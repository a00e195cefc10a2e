"""Outcomes after the visit, staff and public side (#19 items 3-5): the change categories at
their thresholds, Wilson intervals, marking a patient deceased, the settings page, each
patient's progress on the record, the clinic's results with small groups suppressed, the
pseudonymised registry export, and the public sentence on the treatments page."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, insert, select, update
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.outcomes import measures as m
from booking.outcomes import results, schedule
from booking.outcomes.models import (
    PLAN_GROUP,
    FollowUp,
    OutcomeSnapshot,
    Plan,
    RegistryCode,
    TreatmentPlan,
)
from booking.outcomes.services import (
    FollowUpAnswers,
    SettingsChange,
    answer_followup,
    correct_procedure_date,
    default_settings,
    save_settings,
    send_due_followups,
)
from booking.requests.models import ConsultationRequest, Patient, RequestStatus
from booking.timeutil import clinic_today, now_utc, to_clinic_tz
from tests.factories import make_request, make_staff, staff_user
from tests.support import CSRF_RE, AuthActions, csrf_token, sql_statements, table_boxes
from tests.test_outcomes import BERLIN, _completed, _invitations, _start

ODI = m.Threshold(m.DEFAULT_ODI_POINTS, m.DEFAULT_RELATIVE_PERCENT)
NDI = m.Threshold(m.DEFAULT_NDI_POINTS, None)
PAIN = m.Threshold(m.DEFAULT_PAIN_POINTS, m.DEFAULT_RELATIVE_PERCENT)


# ---- the categories and intervals ----------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "baseline", "value", "expected"),
    [
        # ODI: 10 points, or 30 % of the baseline.
        (ODI, 50, 40, m.IMPROVED),  # exactly 10 points
        (ODI, 50, 40.1, m.UNCHANGED),  # 9.9 points, 19.8 %
        (ODI, 50, 60, m.WORSE),
        (ODI, 50, 59.9, m.UNCHANGED),
        (ODI, 20, 14, m.IMPROVED),  # 6 points = exactly 30 % of 20
        (ODI, 20, 14.2, m.UNCHANGED),  # 29 %
        # Worse: 10 points only; 30 % of a low baseline is within measurement error.
        (ODI, 20, 26, m.UNCHANGED),  # 30 % upwards, 6 points
        (ODI, 4, 6, m.UNCHANGED),  # one step in one section
        (ODI, 20, 30, m.WORSE),
        # NDI: 7.5 points, no relative threshold.
        (NDI, 40, 32.5, m.IMPROVED),
        (NDI, 40, 32.6, m.UNCHANGED),
        (NDI, 10, 4, m.UNCHANGED),  # 60 % of the baseline, but 6 points
        (NDI, 40, 47.5, m.WORSE),
        # Pain 0-10: 2 points, or 30 %.
        (PAIN, 6, 4, m.IMPROVED),
        (PAIN, 6, 5, m.UNCHANGED),  # 1 point, 17 %
        (PAIN, 3, 2, m.IMPROVED),  # 1 point, 33 %
        (PAIN, 4, 6, m.WORSE),
        (PAIN, 2, 3, m.UNCHANGED),  # 50 % upwards, but 1 point
        (PAIN, 0, 1, m.UNCHANGED),  # no share of nothing
        (PAIN, 0, 0, m.UNCHANGED),
        (PAIN, None, 3, None),
        (PAIN, 3, None, None),
    ],
)
def test_change_categories_at_the_exact_thresholds(
    threshold: m.Threshold, baseline: float | None, value: float | None, expected: str | None
) -> None:
    assert m.classify(baseline, value, threshold) == expected


@pytest.mark.parametrize(
    ("count", "total", "low", "high"),
    [
        # Newcombe, Stat Med 1998;17:857-72, table I, method 3 (Wilson), in per cent.
        (81, 263, 25.53, 36.62),
        (15, 148, 6.24, 16.05),
        (0, 20, 0.0, 16.11),
        # By hand: p = 0.8, z^2/n = 0.38415; centre 0.71674, half-width 0.22658.
        (8, 10, 49.02, 94.33),
        (10, 10, 72.25, 100.0),
    ],
)
def test_wilson_intervals_match_published_and_hand_computed_values(
    count: int, total: int, low: float, high: float
) -> None:
    share = m.wilson(count, total)
    assert share.low == pytest.approx(low, abs=0.01)
    assert share.high == pytest.approx(high, abs=0.01)
    assert share.percent == pytest.approx(100 * count / total)
    with pytest.raises(ValueError):
        m.wilson(1, 0)


# ---- marking a patient deceased, and the settings ----------------------------------------------


def test_a_coordinator_marks_a_patient_deceased_after_confirming(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        consultation = _completed()
        reference, request_id = consultation.reference, consultation.id
        due = schedule.due_at(_start(request_id), "6w", BERLIN)
    auth = AuthActions(client)
    auth.login("coordinator")
    page = f"/staff/requests/{reference}"
    assert "Mark the patient deceased" in client.get(page).get_data(as_text=True)
    token = csrf_token(client, page)
    unconfirmed = client.post(f"{page}/deceased", data={"deceased-csrf_token": token})
    assert unconfirmed.status_code == 422
    assert "Please tick the box to confirm." in unconfirmed.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Patient.deceased_at)) is None
    done = client.post(
        f"{page}/deceased", data={"deceased-csrf_token": token, "deceased-confirm": "y"}
    )
    assert done.status_code == 302
    shown = client.get(page).get_data(as_text=True)
    assert "Marked deceased on" in shown and "Mark the patient deceased" not in shown
    with app.app_context():
        assert db.session.scalar(select(Patient.deceased_at)) is not None
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_marked_deceased")
        ).one()
        assert event.target_id == reference
        assert send_due_followups(now=due + timedelta(minutes=1)) == []
        assert _invitations() == []


def test_the_settings_page_changes_the_schedule_and_thresholds(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
    AuthActions(client).login("admin")
    page = client.get("/staff/outcomes/settings").get_data(as_text=True)
    assert 'value="6w, 3m, 12m"' in page and "Ostelo" in page and "Carreon" in page
    token = csrf_token(client, "/staff/outcomes/settings")
    fields = {
        "csrf_token": token,
        "schedule": "6m, 2w",
        "odi_points": "12",
        "ndi_points": "7.5",
        "pain_points": "2",
        "relative_percent": "30",
    }
    bad = client.post("/staff/outcomes/settings", data={**fields, "schedule": "6d"})
    assert bad.status_code == 422
    assert "is not a time point" in bad.get_data(as_text=True)
    # Words Python reads as decimals are no numbers ("sNaN" stopped the range check).
    for word in ("sNaN", "NaN", "Infinity"):
        bad = client.post("/staff/outcomes/settings", data={**fields, "odi_points": word})
        assert bad.status_code == 422, word
        assert "Please enter a number." in bad.get_data(as_text=True)
    assert client.post("/staff/outcomes/settings", data=fields).status_code == 302
    assert 'value="2w, 6m"' in client.get("/staff/outcomes/settings").get_data(as_text=True)
    with app.app_context():
        consultation = _completed()
        start = _start(consultation.id)
        assert send_due_followups(now=schedule.due_at(start, "6w", BERLIN)) != []
        points = db.session.scalars(select(FollowUp.point)).all()
        assert points == ["2w"]  # 6 weeks is no longer a time point; 2 weeks is
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "outcome_settings_changed")
        ).one()
        assert audit.details["after"]["schedule"] == ["2w", "6m"]
        assert audit.details["after"]["odi_points"] == 12.0
        # Every setting has its before, the public figures' switch included.
        assert audit.details["before"].keys() == audit.details["after"].keys()
        assert "public_figures" in audit.details["before"]


# ---- each patient's progress on the record ----------------------------------------------------


def _answer(follow_up: FollowUp, *, odi: float, back_now: int, gpe: int = 2) -> None:
    answer_followup(
        follow_up,
        FollowUpAnswers(
            odi_answers={},
            odi_percent=odi,
            ndi_answers={},
            ndi_percent=None,
            pain={
                "back_pain_now": back_now,
                "back_pain_worst": max(back_now, 6),
                "leg_pain_now": 4,
                "leg_pain_worst": 9,
            },
            gpe=gpe,
            satisfaction=4,
        ),
    )


def test_the_record_shows_the_baseline_and_each_follow_up_against_the_thresholds(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        # Baseline: ODI 50 %, back pain 5 (now) / 8 (worst), leg pain 4 / 7.
        consultation = _completed()
        reference = consultation.reference
        start = _start(consultation.id)
        send_due_followups(now=schedule.due_at(start, "6w", BERLIN))
        _answer(db.session.scalars(select(FollowUp)).one(), odi=38, back_now=3)
        send_due_followups(now=schedule.due_at(start, "3m", BERLIN))
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    table = page[
        page.index('id="progress-table"') : page.index("</table>", page.index("progress-table"))
    ]
    rows = {row.split("</th>")[0].rsplit(">", 1)[-1]: row for row in table.split("<tr>")[1:]}
    odi = rows["Oswestry Disability Index"]
    assert "50.0" in odi and "38.0" in odi and "improved" in odi  # 12 points
    back = rows["Back pain now"]
    assert "improved" in back  # 5 -> 3: 2 points
    assert "unchanged" in rows["Leg pain now"]  # 4 -> 4
    assert "worse" in rows["Leg pain at worst"]  # 7 -> 9
    assert "Much improved" in rows["Global Perceived Effect"]
    assert "6 weeks" in table and "3 months" in table and "sent, waiting" in table
    # The chart: an accessible SVG with a title and description; the table is its text.
    assert 'role="img" aria-labelledby="progress-disability-title"' in page
    assert '<title id="progress-disability-title">Disability index (0-100 %)</title>' in page
    assert 'aria-describedby="progress-pain-desc"' in page
    assert "style=" not in page[page.index("<svg") : page.index("</svg>")]
    # The source of each default is named.
    assert "Ostelo RW et al." in page and "Carreon LY et al." in page


def test_the_record_page_costs_the_same_queries_with_more_follow_ups(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        consultation = _completed()
        reference = consultation.reference
        start = _start(consultation.id)
        send_due_followups(now=schedule.due_at(start, "6w", BERLIN))
        _answer(db.session.scalars(select(FollowUp)).one(), odi=40, back_now=4)
    AuthActions(client).login("coordinator")
    path = f"/staff/requests/{reference}"
    client.get(path)
    with sql_statements(app) as one:
        assert client.get(path).status_code == 200
    with app.app_context():
        for point in ("3m", "12m"):
            send_due_followups(now=schedule.due_at(start, point, BERLIN))
            follow_up = db.session.scalars(select(FollowUp).where(FollowUp.point == point)).one()
            _answer(follow_up, odi=30, back_now=2)
    with sql_statements(app) as three:
        page = client.get(path).get_data(as_text=True)
    assert "12 months" in page
    assert len(three) == len(one)


def test_the_record_marks_a_follow_up_answered_before_a_postponed_operation(
    app: Flask, client: FlaskClient
) -> None:
    """The 6-week questionnaire answered, then the operation postponed by two months: the
    answer was given before the treatment started, and the questionnaire is asked again. The
    record still shows the first answer, marked superseded and not counted (no change judged,
    not charted); the answer to the new one is counted as usual."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start)
        reference, request_id = consultation.reference, consultation.id
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        db.session.execute(
            update(FollowUp)
            .where(FollowUp.point == "6w")
            .values(answered_at=six_weeks + timedelta(days=2), odi_percent=22.0, gpe=2)
        )
        db.session.commit()
    AuthActions(client).login("coordinator")
    path = f"/staff/requests/{reference}"
    mark = "superseded when the procedure date changed"
    first = client.get(path).get_data(as_text=True)
    assert mark not in first and 'class="badge' in _table(first)
    new = start + timedelta(days=60)
    with app.app_context():
        correct_procedure_date(
            db.session.get(ConsultationRequest, request_id),
            new,
            staff_user(make_staff("coordinator").email),
            now=six_weeks + timedelta(days=3),
        )
    page = client.get(path).get_data(as_text=True)
    table = _table(page)
    assert "6 weeks" in table and "22.0" in table
    assert table.count(mark) == 1 and "not counted" in table
    assert 'class="badge' not in table and "<svg" not in page
    with app.app_context():
        assert len(send_due_followups(now=schedule.due_at(new, "6w", BERLIN))) == 1
        again = db.session.scalars(select(FollowUp).where(FollowUp.superseded_at.is_(None))).one()
        _answer(again, odi=30, back_now=3)
        # Answered at its time, after the operation (the clock here is today's).
        again.answered_at = schedule.due_at(new, "6w", BERLIN) + timedelta(days=1)
        db.session.commit()
    table = _table(page := client.get(path).get_data(as_text=True))
    assert table.count("6 weeks") == 2 and table.count(mark) == 1
    assert "30.0" in table and 'class="badge' in table and "<svg" in page


def test_an_answer_before_the_treatment_started_is_neither_judged_nor_charted(
    app: Flask, client: FlaskClient
) -> None:
    """The 6-week questionnaire answered (the ODI from 50 % to 22 %), then the procedure
    date set to the day after the answer with no correction superseding it (as a correction
    made before superseding existed left it, or one kept behind a later time point): the
    record marks it "not counted", as the results leave it out, and judges no change on it
    and draws no chart from it, which would show the treatment's effect before the
    treatment."""
    with app.app_context():
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.MINIMALLY_INVASIVE, procedure=start)
        reference, request_id = consultation.reference, consultation.id
        six_weeks = schedule.due_at(start, "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        answered_at = six_weeks + timedelta(days=2)
        db.session.execute(
            update(FollowUp).values(answered_at=answered_at, odi_percent=22.0, gpe=2)
        )
        db.session.get(TreatmentPlan, request_id).procedure_date = to_clinic_tz(
            answered_at
        ).date() + timedelta(days=1)
        db.session.commit()
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    table = _table(page)
    assert "22.0" in table and "answered before the treatment started: not counted" in table
    assert 'class="badge' not in table and "<svg" not in page


def _table(page: str) -> str:
    return page[
        page.index('id="progress-table"') : page.index("</table>", page.index("progress-table"))
    ]


# ---- the clinic's results -------------------------------------------------------------------


def _treated(
    plan: Plan,
    improved: int,
    unchanged: int = 0,
    *,
    diagnoses: tuple[str, ...] = ("herniated_disc",),
    unanswered: int = 0,
    worse: int = 0,
    **request: object,
) -> list[int]:
    """Completed requests treated 100 days ago whose 3-month questionnaire was answered:
    ``improved`` with the ODI from 50 % to 30 %, ``unchanged`` to 45 %, ``worse`` to 65 %;
    ``unanswered`` more were sent it and did not answer. Returns the patients' ids."""
    patients = []
    now = now_utc()
    scores = [30.0] * improved + [45.0] * unchanged + [65.0] * worse
    for n in range(len(scores) + unanswered):
        consultation = make_request(diagnoses=list(diagnoses), **request)
        consultation.status = RequestStatus.COMPLETED
        db.session.add(
            TreatmentPlan(
                request_id=consultation.id,
                plan=plan,
                consulted_on=clinic_today() - timedelta(days=100),
            )
        )
        db.session.flush()
        answered = n < len(scores)
        db.session.add(
            FollowUp(
                request_id=consultation.id,
                point="3m",
                due_at=now - timedelta(days=10),
                sent_at=now - timedelta(days=10),
                expires_at=now + timedelta(days=20),
                answered_at=now - timedelta(days=5) if answered else None,
                odi_percent=scores[n] if answered else None,
                back_pain_now=2 if answered else None,
                gpe=2 if answered else None,
                satisfaction=5 if answered else None,
            )
        )
        patients.append(consultation.patient_id)
    db.session.commit()
    return patients


def _row(page: str, table_id: str, heading: str) -> str:
    table = page[page.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    return next(row for row in table.split("<tr") if f">{heading}</th>" in row)


def test_the_response_rate_counts_closed_invitations_and_not_the_deceased(app: Flask) -> None:
    """Of the invitations sent: one answered, two whose link expired unanswered, one whose
    link is still open, and one unanswered by a patient marked deceased while its link was
    open. The rate is answered of closed: 1 of 3 (not 1 of 5)."""
    with app.app_context():
        _answered, expired, also_expired, _still_open, deceased = [
            db.session.get(Patient, patient_id)
            for patient_id in _treated(Plan.PHYSIOTHERAPY, 1, unanswered=4)
        ]
        now = now_utc()
        for patient in (expired, also_expired, deceased):
            db.session.execute(
                update(FollowUp)
                .where(FollowUp.request_id == patient.requests[0].id)
                .values(expires_at=now - timedelta(days=1))
            )
        deceased.deceased_at = now - timedelta(days=2)
        db.session.commit()
        counted = results.response_counts(clinic_today() - timedelta(days=365))
        assert counted == {"3m": [5, 1, 1, 1, 0]}
        (response,) = results.point_responses(counted, ["3m"])
        assert (response.sent, response.still_open, response.left_out) == (5, 1, 1)
        assert response.share is not None
        assert (response.share.count, response.share.total) == (1, 3)


@pytest.mark.parametrize("why", ["deceased", "withdrew"])
@pytest.mark.parametrize(
    ("expired_days_ago", "stopped", "lapsed_first"),
    [(30, False, True), (-20, True, True), (-20, False, False)],
    ids=["link expired weeks before", "questionnaires stopped before", "link still open"],
)
def test_a_questionnaire_that_lapsed_before_follow_up_ended_is_a_non_response(
    app: Flask,
    client: FlaskClient,
    why: str,
    expired_days_ago: int,
    stopped: bool,
    lapsed_first: bool,
) -> None:
    """The 3-month questionnaire sent and never answered; two days ago the patient was
    marked deceased (or withdrew their consent to be contacted). Its link had expired
    unanswered weeks before: it was a non-response when it closed, and stays one (registries
    count a time point by its status when its window closed); the results counted it "no
    longer followed up", out of the rate, whenever the marking came. So when the patient had
    stopped the questionnaires before, their link still open: it closed then. Its link still
    open at the marking: left out of the rate, as before. The record says the same of the
    time point."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        [patient_id] = _treated(Plan.PHYSIOTHERAPY, 0, unanswered=1)
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.patient_id == patient_id)
        ).one()
        now = now_utc()
        follow_up = db.session.scalars(select(FollowUp)).one()
        follow_up.sent_at = follow_up.due_at = now - timedelta(days=60)
        follow_up.expires_at = now - timedelta(days=expired_days_ago)
        if stopped:
            db.session.get(TreatmentPlan, consultation.id).followups_stopped_at = now - timedelta(
                days=10
            )
        ended = now - timedelta(days=2)
        if why == "deceased":
            consultation.patient.deceased_at = ended
        else:
            consultation.contact_consent = False
            consultation.contact_consent_withdrawn_at = ended
        db.session.commit()
        reference = consultation.reference
        counted = results.response_counts(clinic_today() - timedelta(days=365))
        # [sent, still open, answered, left out, closed for a later time point]
        assert counted == {"3m": [1, 0, 0, 0 if lapsed_first else 1, 0]}
        (response,) = results.point_responses(counted, ["3m"])
        if lapsed_first:
            assert response.share is not None
            assert (response.share.count, response.share.total) == (0, 1)
        else:
            assert response.share is None
    AuthActions(client).login("coordinator")
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    [three] = re.findall(r'<th scope="col">3 months<br>(.*?)</th>', record, re.S)
    assert "not answered" in three
    assert ("no longer followed up" in three) == (not lapsed_first)
    assert ("stopped" in three) == stopped


def _treated_never_sent(days_ago: int, **request: object) -> int:
    """A completed request treated ``days_ago`` whose patient was sent no questionnaire; its
    id."""
    consultation = make_request(**request)
    consultation.status = RequestStatus.COMPLETED
    db.session.add(
        TreatmentPlan(
            request_id=consultation.id,
            plan=Plan.PHYSIOTHERAPY,
            consulted_on=clinic_today() - timedelta(days=days_ago),
        )
    )
    db.session.commit()
    return consultation.id


def test_the_response_rate_says_how_many_treated_were_never_sent_the_questionnaire(
    app: Flask, client: FlaskClient
) -> None:
    """Three patients sent the 3-month questionnaire answered it; two more treated as long
    ago did not agree to the questionnaires and were never sent it. "100 %" alone reads as
    every treated patient followed up: the page says 5 reached the time point, 2 not sent.
    One treated 10 days ago has reached no time point yet."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 3)
        _treated_never_sent(100, followup_consent=False)
        _treated_never_sent(100, followup_consent=False)
        _treated_never_sent(10)
        since = clinic_today() - timedelta(days=365)
        assert results.reached_counts(since, ["6w", "3m", "12m"]) == {
            "6w": [5, 5, 0, 5, 0, 0],
            "3m": [5, 2, 0, 2, 0, 0],
            "12m": [0, 0, 0, 0, 0, 0],
        }
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    cells = "<td>5</td><td>2</td><td>0</td><td>2</td><td>0</td><td>0</td><td>3</td><td>0</td>"
    assert f"{cells}<td>0</td><td>0</td><td>3</td><td>100 %" in _row(page, "responses", "3 months")
    assert "Not sent: treatments of the period" in page


def test_the_treatments_that_reached_each_time_point_are_counted_in_one_statement(
    app: Flask,
) -> None:
    """Four treated 100 days ago (three sent the 3-month questionnaire, one never sent any),
    two treated 10 days ago (one sent the 6-week questionnaire early, which counts it as
    reached), one treated 400 days ago (before the period): every time point's figures come
    from one statement, however many time points."""
    with app.app_context():
        _treated(Plan.PHYSIOTHERAPY, 3)
        _treated_never_sent(100)
        early = _treated_never_sent(10)
        _treated_never_sent(10)
        _treated_never_sent(400)
        now = now_utc()
        db.session.add(
            FollowUp(
                request_id=early,
                point="6w",
                due_at=now,
                sent_at=now,
                expires_at=now + timedelta(days=30),
            )
        )
        db.session.commit()
        since = clinic_today() - timedelta(days=365)
    with sql_statements(app, selects_only=True) as statements, app.app_context():
        counted = results.reached_counts(since, ["6w", "3m", "12m", "3m"])
    assert counted == {
        "6w": [5, 4, 0, 4, 0, 0],
        "3m": [4, 1, 0, 1, 0, 0],
        "12m": [0, 0, 0, 0, 0, 0],
    }
    assert len(statements) == 1
    with sql_statements(app) as statements, app.app_context():
        assert results.reached_counts(since, []) == {}
    assert statements == []


def test_each_response_row_adds_up_whatever_became_of_the_patient(
    app: Flask, client: FlaskClient
) -> None:
    """Seven treated 100 days ago reached the 3-month time point: one answered, one's link
    is still open, one's expired, one stopped the questionnaires, one was marked deceased
    and one withdrew their consent to be contacted while theirs was open (all six sent it),
    and one did
    not agree to the questionnaires (never sent it). One treated 10 days ago reached none.
    Every row adds up: reached = not sent + sent, and the rate is answered of sent less
    still open and no longer followed up (1 of the expired, stopped and answered: 1 of 3)."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _answered, _still_open, expired, stopped, deceased, withdrew = [
            db.session.get(Patient, patient_id)
            for patient_id in _treated(Plan.PHYSIOTHERAPY, 1, unanswered=5)
        ]
        _treated_never_sent(100, followup_consent=False)
        _treated_never_sent(10)
        now = now_utc()
        for patient in (expired, deceased, withdrew):
            db.session.execute(
                update(FollowUp)
                .where(FollowUp.request_id == patient.requests[0].id)
                .values(expires_at=now - timedelta(days=1))
            )
        db.session.get(TreatmentPlan, stopped.requests[0].id).followups_stopped_at = now
        deceased.deceased_at = now - timedelta(days=2)
        withdrew.requests[0].contact_consent = False
        withdrew.requests[0].contact_consent_withdrawn_at = now - timedelta(days=2)
        db.session.commit()
        with app.test_request_context():
            shown = results.clinic_results(12, "3m", fresh=True)
        rows = {r.point: r for r in shown.responses}
        assert [(p, rows[p].reached, rows[p].not_sent, rows[p].sent) for p in rows] == [
            ("6w", 7, 7, 0),
            ("3m", 7, 1, 6),
            ("12m", 0, 0, 0),
        ]
        for row in shown.responses:
            assert row.reached == row.not_sent + row.sent
            assert row.not_sent_by_reason is not None
            assert row.not_sent == sum(row.not_sent_by_reason.values())
            closed = row.sent - row.still_open - row.left_out - row.closed_for_later
            assert (row.share.total if row.share else 0) == closed
        three = rows["3m"]
        assert (three.still_open, three.left_out) == (1, 2)
        assert three.share is not None and (three.share.count, three.share.total) == (1, 3)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    not_sent = "<td>1</td><td>0</td><td>1</td><td>0</td><td>0</td>"
    sent = "<td>6</td><td>1</td><td>2</td><td>0</td><td>1</td><td>33 %"
    assert f"<td>7</td>{not_sent}{sent}" in _row(page, "responses", "3 months")
    not_sent = "<td>7</td><td>0</td><td>7</td><td>0</td><td>0</td>"
    assert f"<td>7</td>{not_sent}<td>0</td><td>0</td><td>0</td><td>0</td><td>0</td>" in _row(
        page, "responses", "6 weeks"
    )
    assert "“Treatments that reached it” = “Not sent” + “Sent”" in page


def test_the_treatments_never_sent_a_time_point_are_counted_by_reason(
    app: Flask, client: FlaskClient
) -> None:
    """Eight treated 100 days ago (the 6 weeks due some 58 days ago, the 3 months some 10):
    one sent the 3 months (and no 6 weeks: it did not agree to the questionnaires), and
    seven never sent either: two marked deceased between the two time points (one of them
    had not agreed to the questionnaires: the death comes first), one who stopped them, one
    without an email address, one who withdrew their consent to be contacted, one with
    nothing against them (the invitations could not be sent), and one marked deceased after
    the 3 months were due (alive when they were: no death for them). A death leaves the
    patients who could be followed up only at the time points due after it."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 1)
        for _n in range(7):
            _treated_never_sent(100, followup_consent=True)
        plans = db.session.scalars(
            select(TreatmentPlan)
            .where(~TreatmentPlan.follow_ups.any())
            .order_by(TreatmentPlan.request_id)
        ).all()
        died, died_declined, stopped, no_email, withdrew, _failed, died_later = [
            db.session.get(ConsultationRequest, plan.request_id) for plan in plans
        ]
        now = now_utc()
        died.patient.deceased_at = now - timedelta(days=30)
        died_declined.patient.deceased_at = now - timedelta(days=20)
        died_declined.followup_consent = False
        db.session.get(TreatmentPlan, stopped.id).followups_stopped_at = now - timedelta(60)
        no_email.patient.email = None
        withdrew.contact_consent = False
        died_later.patient.deceased_at = now - timedelta(days=5)
        db.session.commit()
        since = clinic_today() - timedelta(days=365)
        # [reached, not sent, deceased, declined, unreachable, other]
        assert results.reached_counts(since, ["6w", "3m", "12m"]) == {
            "6w": [8, 8, 0, 3, 2, 3],
            "3m": [8, 7, 2, 1, 2, 2],
            "12m": [0, 0, 0, 0, 0, 0],
        }
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>8</td><td>7</td><td>2</td><td>1</td><td>2</td><td>2</td><td>1</td>" in _row(
        page, "responses", "3 months"
    )
    assert "Deceased before it was due" in page
    assert "a death is no loss to follow-up" in page


def test_the_outcomes_page_shows_shares_with_intervals_and_suppresses_small_groups(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3, unanswered=3)  # 12 scored: shown
        _treated(Plan.OPEN_SURGERY, 5, 0, diagnoses=("spinal_stenosis",))  # 5: suppressed
        # 11 scored: big enough, but shown with the total (28) and the 12 it would give away
        # the 5 by subtraction: suppressed too.
        _treated(Plan.PHYSIOTHERAPY, 6, 5, diagnoses=("sciatica",))
    AuthActions(client).login("coordinator")
    response = client.get("/staff/outcomes?point=3m")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    share = m.wilson(9, 12)
    mis = _row(page, "by-plan-group", "Minimally invasive surgery")
    assert "<td>12</td><td>9</td>" in mis and "75 %" in mis
    assert f"({share.low:.0f}\u2013{share.high:.0f} %)" in mis  # 47 to 91 %
    open_surgery = _row(page, "by-plan-group", "Open surgery")
    assert "Suppressed" in open_surgery and "fewer than 10 requests" in open_surgery
    assert "<td>5</td>" not in open_surgery and "0 %" not in open_surgery
    non_surgical = _row(page, "by-plan-group", "Non-surgical care")
    assert "Suppressed" in non_surgical and "would give away a smaller group" in non_surgical
    assert "<td>11</td>" not in non_surgical
    assert "Suppressed" in _row(page, "by-diagnosis", "Spinal stenosis")
    assert "would give away" in _row(page, "by-diagnosis", "Sciatica")
    assert "<td>12</td>" in _row(page, "by-diagnosis", "Herniated (slipped) disc")
    overall = _row(page, "overall", "All requests")
    assert "Suppressed" not in overall and "<td>28</td>" in overall
    # Response rate: the 3 unanswered links are still open, so 28 of the 28 closed answered
    # (counted against all 31 sent, it read 90 %).
    assert "<td>31</td><td>3</td><td>0</td><td>0</td><td>28</td><td>100 %" in _row(
        page, "responses", "3 months"
    )
    # The thresholds' sources are named.
    assert "Ostelo RW et al." in page and "Carreon LY et al." in page


def test_the_outcomes_tables_scroll_in_their_own_box_not_the_page(
    app: Flask, client: FlaskClient
) -> None:
    """The response rate's thirteen columns made the whole page 1010 px wide on a 390 px
    phone: every heading and paragraph scrolled sideways with it. Each table scrolls in a
    box of its own, as the other staff pages' do: a named region in the tab order, so a
    keyboard scrolls it too."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    boxes = table_boxes(page)
    assert ("Response rate per time point", "Response rate per time point") in boxes
    assert ("All requests table", "All requests") in boxes
    assert ("By plan group table", "By plan group") in boxes
    # Every table of the page is in one.
    assert len(boxes) == page.count("<table")


def test_a_time_point_taken_out_of_the_schedule_keeps_its_results(
    app: Flask, client: FlaskClient
) -> None:
    """The clinic stops asking at 3 months: the answers given then are still its results,
    offered after the schedule's time points."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 8, 4)
        changed = default_settings()
        changed.schedule = ["6w", "12m"]
        db.session.add(changed)
        db.session.commit()
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "beyond the threshold at 3 months" in page
    assert "<td>12</td><td>8</td>" in _row(page, "overall", "All requests")
    assert 'aria-current="page">3 months</a>' in page  # offered in the time points
    # Asked for nothing, the page opens at the schedule's first point, 3 months still listed.
    first = client.get("/staff/outcomes").get_data(as_text=True)
    assert "beyond the threshold at 6 weeks" in first and ">3 months</a>" in first


def test_the_page_counts_requests_not_people(app: Flask, client: FlaskClient) -> None:
    """Each request has a patient record of its own, so a person treated twice (the neck
    after the back) is two in every count: the page labels its counts as requests and says
    so, not as patients."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 8, 4)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert '<th scope="col">Requests scored</th>' in page
    assert "12 requests scored at this time point" in page
    assert "a patient who sent two requests (the neck after the back) counts twice" in page
    assert "<td>12</td><td>8</td>" in _row(page, "overall", "All requests")
    assert "Patients scored" not in page and "patients scored" not in page


def test_the_page_says_which_index_judges_a_patient_with_both_regions(
    app: Flask, client: FlaskClient
) -> None:
    """A patient with the lower back and the neck answers both indexes; "improved" is judged
    on one of them (``main_instrument``), and the page says which."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        both = str(results.main_instrument("both").name)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert f"for a patient with both, the {both})" in page


def test_the_page_shows_the_share_worse_beside_the_share_improved(
    app: Flask, client: FlaskClient
) -> None:
    """A clinic's 42 % improved reads differently with a third worse: both are shown, for
    the same patients."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 5, 3, worse=4)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    overall = _row(page, "overall", "All requests")
    worse = m.wilson(4, 12)
    assert "<td>12</td><td>5</td>" in overall and "<td>4</td>" in overall
    assert f'33 % <small class="text-body-secondary">({worse.low:.0f}\u2013' in overall


def test_one_small_group_is_not_given_away_by_subtraction() -> None:
    """17 scored, 12 in one plan group and 5 in the other: the 12 are suppressed too, or the
    total less them would show the 5 (and how many of them improved)."""
    tally = results.Tally(
        scored=17,
        groups={
            results.BY_PLAN_GROUP: {"minimally_invasive": [9, 12, 0], "open_surgery": [5, 5, 0]}
        },
    )
    shown = {g.key: g for g in tally.shares(results.BY_PLAN_GROUP, {})}
    assert shown["open_surgery"].share is None and not shown["open_surgery"].shields
    assert shown["minimally_invasive"].share is None and shown["minimally_invasive"].shields
    # Asked for one group alone (the public figure), the others do not hide it.
    (alone,) = tally.shares(results.BY_PLAN_GROUP, {}, ["minimally_invasive"], alone=True)
    assert alone.share is not None and alone.share.total == 12


PLAN_PARENTS = {plan.value: PLAN_GROUP[plan].value for plan in Plan}


def test_a_plan_is_not_given_away_by_its_plan_group_less_its_siblings() -> None:
    """Non-surgical care (43) is shown, and advice (5) is suppressed: with physiotherapy,
    medication and injections all shown, non-surgical care less them would give advice's
    numbers. Against the overall total, minimally invasive surgery (10) is the one shielded,
    which does not help: the smallest sibling shown (injections) is suppressed too."""
    plans = {
        "advice": [3, 5, 1],
        "physiotherapy": [9, 15, 2],
        "medication": [6, 12, 1],
        "injection": [6, 11, 1],
        "minimally_invasive": [6, 10, 1],
    }
    tally = results.Tally(
        scored=53,
        groups={
            results.BY_PLAN_GROUP: {"non_surgical": [24, 43, 5], "minimally_invasive": [6, 10, 1]},
            results.BY_PLAN: plans,
        },
    )
    groups = tally.shares(results.BY_PLAN_GROUP, {})
    assert all(group.share is not None for group in groups)
    alone = {g.key: g for g in tally.shares(results.BY_PLAN, {}, list(plans))}
    assert alone["minimally_invasive"].shields and alone["injection"].share is not None
    shown = {g.key: g for g in tally.within(results.BY_PLAN, {}, list(plans), groups, PLAN_PARENTS)}
    assert shown["advice"].share is None and not shown["advice"].shields
    assert shown["injection"].share is None and shown["injection"].shields
    assert shown["injection"].worse is None
    assert shown["physiotherapy"].share is not None and shown["medication"].share is not None


def test_a_plan_group_hidden_hides_its_plans() -> None:
    """Open surgery (11) is shielded in the plan groups (with the total, it would give away
    the 5 referred): its one plan must not show the same numbers in the plans' table."""
    tally = results.Tally(
        scored=46,
        groups={
            results.BY_PLAN_GROUP: {
                "non_surgical": [20, 30, 2],
                "open_surgery": [7, 11, 1],
                "other": [2, 5, 0],
            },
            results.BY_PLAN: {
                "physiotherapy": [10, 14, 1],
                "injection": [10, 16, 1],
                "open_surgery": [7, 11, 1],
                "referral": [2, 5, 0],
            },
        },
    )
    groups = {g.key: g for g in tally.shares(results.BY_PLAN_GROUP, {})}
    assert groups["open_surgery"].shields
    shown = {
        g.key: g
        for g in tally.within(
            results.BY_PLAN,
            {},
            ["physiotherapy", "injection", "open_surgery", "referral"],
            list(groups.values()),
            PLAN_PARENTS,
        )
    }
    assert shown["open_surgery"].share is None and shown["open_surgery"].shields
    assert shown["referral"].share is None


def _forget_counts() -> None:
    db.session.execute(delete(OutcomeSnapshot))
    db.session.commit()


def test_the_outcomes_page_costs_the_same_queries_with_more_patients(
    app: Flask, client: FlaskClient
) -> None:
    """Counting afresh (no snapshot) and reading the snapshot each cost a fixed number of
    statements whatever the number of patients and follow-ups; reading costs fewer."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        # 12: a group of its own (a smaller one would hide the 15 below, which the total
        # less it would give away).
        _treated(Plan.MINIMALLY_INVASIVE, 8, 4)
    AuthActions(client).login("coordinator")
    client.get("/staff/outcomes")
    with sql_statements(app) as few_read:
        client.get("/staff/outcomes")
    with app.app_context():
        _forget_counts()
    with sql_statements(app) as few_counted:
        client.get("/staff/outcomes")
    with app.app_context():
        _treated(Plan.OPEN_SURGERY, 10, 5, diagnoses=("sciatica", "spinal_stenosis"))
        _forget_counts()
    with sql_statements(app) as more_counted:
        page = client.get("/staff/outcomes").get_data(as_text=True)
    assert "<td>15</td>" in _row(page, "by-plan-group", "Open surgery")
    with sql_statements(app) as more_read:
        assert client.get("/staff/outcomes").get_data(as_text=True).count("<td>15</td>") >= 1
    assert len(more_counted) == len(few_counted)
    assert len(more_read) == len(few_read)
    assert len(few_read) < len(few_counted)


def test_the_page_reads_the_kept_counts_until_they_are_counted_again(
    app: Flask, client: FlaskClient
) -> None:
    """A new answer shows after the worker's next count, when the kept counts are older than
    the limit, or at once when staff ask; the page says when the figures were counted."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)  # 12 scored
    auth = AuthActions(client)
    auth.login("coordinator")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>12</td><td>9</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")
    assert "Counted on " in page and "within 15 minutes" in page
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 1)  # a 13th answer
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>12</td><td>9</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")

    # Staff count again now (a button: a form with its CSRF token).
    response = client.post(
        "/staff/outcomes/refresh?months=12&point=3m",
        data={"csrf_token": csrf_token(client, "/staff/outcomes")},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/outcomes?months=12&point=3m"
    page = client.get("/staff/outcomes?months=12&point=3m").get_data(as_text=True)
    assert "The figures are up to date." in page
    assert "<td>13</td><td>10</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")
    # Without the token nothing is counted.
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 1)  # a 14th
    client.post("/staff/outcomes/refresh?months=12&point=3m", data={})
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>13</td><td>10</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")

    # Counts older than the limit (the worker is down) are counted again when the page opens.
    with app.app_context():
        old = now_utc() - results.SNAPSHOT_MAX_AGE - timedelta(seconds=1)
        db.session.execute(update(OutcomeSnapshot).values(computed_at=old))
        db.session.commit()
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>14</td><td>11</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")


def test_a_time_point_the_period_cannot_have_reached_says_so(
    app: Flask, client: FlaskClient
) -> None:
    """Treatments started in the last 12 months reach 12 months today at the earliest: the
    page says why there are no answers at that time point, rather than only "No patient
    answered", and points to a longer period."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)
        reached = schedule.due_day(results.since_for(12), "12m")
        today = clinic_today()
    AuthActions(client).login("coordinator")
    page = client.get("/staff/outcomes?months=12&point=12m").get_data(as_text=True)
    if reached >= today:  # every day but 29 February, when 12 months back is 28 February
        assert 'id="too-soon"' in page
        assert "Treatments started in the last 12 months reach 12 months on" in page
        assert "Choose a longer period to see them." in page
    for other in ("months=24&point=12m", "months=12&point=3m"):
        assert 'id="too-soon"' not in client.get(f"/staff/outcomes?{other}").get_data(True)


def test_new_thresholds_are_counted_at_once(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        admin = make_staff("admin", "admin@example.com").email
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)  # ODI 50 to 30 (9) and 50 to 45 (3)
    AuthActions(client).login("admin")
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>12</td><td>9</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")
    with app.app_context():
        # 5 points, no relative threshold: the 3 who went from 50 to 45 improved too.
        change = SettingsChange(["6w", "3m", "12m"], 5, 7.5, 2, 0, public_figures=False)
        save_settings(change, staff_user(admin))
    page = client.get("/staff/outcomes?point=3m").get_data(as_text=True)
    assert "<td>12</td><td>12</td>" in _row(page, "by-plan-group", "Minimally invasive surgery")


def test_the_workers_job_counts_every_period_and_time_point_and_drops_old_counts(
    app: Flask,
) -> None:
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)
        db.session.add(
            OutcomeSnapshot(
                key="v1|12|3m|2020-01-01|old",
                computed_at=now_utc() - timedelta(days=2),
                tally={"scored": 0, "not_scored": 0, "groups": {}, "responses": {}},
            )
        )
        db.session.commit()
    app.extensions["spineconsult.count_outcomes"].call_local()  # what the worker runs
    with app.app_context():
        kept = db.session.scalars(select(OutcomeSnapshot)).all()
        assert len(kept) == len(results.PERIOD_MONTHS) * 3
        saved = default_settings()
        three_months = db.session.get(
            OutcomeSnapshot,
            results.snapshot_key(12, "3m", results.since_for(12), saved),
        )
        assert three_months is not None
        assert three_months.tally["groups"]["plan_group"]["minimally_invasive"] == [9, 12, 0]
        assert three_months.tally["responses"] == {"3m": [12, 0, 12, 0, 0]}
        # No patient in it: numbers and group codes only.
        assert "herniated_disc" in three_months.tally["groups"]["diagnosis"]
        assert "@" not in str(kept[0].tally)


def test_the_workers_job_counts_what_depends_on_the_period_once_per_period(
    app: Flask,
) -> None:
    """The response counts and the treatments that reached each time point are the same for
    every time point of a period: the job counts them once per period, in one statement each
    (3 response statements and 3 reached statements for 3 periods of 3 time points), not
    once per time point (9 and 9, or 27 had each time point its own statement)."""
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)
        _treated_never_sent(100)
        points = len(default_settings().schedule)
    with sql_statements(app, selects_only=True) as statements, app.app_context():
        assert results.refresh_snapshots() == len(results.PERIOD_MONTHS) * points
    responses = [s for s in statements if "GROUP BY follow_up.point" in s]
    reached = [s for s in statements if "GROUP BY coalesce(" in s]
    assert len(responses) == len(results.PERIOD_MONTHS)
    assert len(reached) == len(results.PERIOD_MONTHS)
    with app.app_context():
        # Every time point's snapshot of the year holds the same, right, counts.
        year = [k.tally for k in db.session.scalars(select(OutcomeSnapshot)) if "|12|" in k.key]
        assert len(year) == points
        for tally in year:
            assert tally["reached"] == {
                "6w": [13, 13, 0, 13, 0, 0],
                "3m": [13, 1, 0, 1, 0, 0],
                "12m": [0, 0, 0, 0, 0, 0],
            }
            assert tally["responses"] == {"3m": [12, 0, 12, 0, 0]}


def test_two_workers_counting_at_once_keep_one_snapshot(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other worker's snapshot appears while this one counts: this one's insert meets the
    key and gives way, and its counts are still returned."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite's BEGIN IMMEDIATE makes the second worker wait for the first")
        _treated(Plan.MINIMALLY_INVASIVE, 9, 3)
        saved = default_settings()
        key = results.snapshot_key(12, "3m", results.since_for(12), saved)
        counted = results.count

        def count_while_another_worker_stores(*args: object) -> results.Tally:
            tally = counted(*args)  # type: ignore[arg-type]
            with db.engine.begin() as other:
                other.execute(
                    insert(OutcomeSnapshot).values(
                        key=key, computed_at=now_utc(), tally=tally.to_json()
                    )
                )
            return tally

        monkeypatch.setattr(results, "count", count_while_another_worker_stores)
        tally, _when = results.snapshot(12, "3m", saved)
        assert tally.groups["overall"]["all"] == [9, 12, 0]
        assert db.session.scalar(select(func.count()).select_from(OutcomeSnapshot)) == 1


def test_specialists_and_visitors_are_refused_the_outcomes_and_the_export(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        make_staff("specialist", "weber@example.com")
    export = "/staff/outcomes/registry.csv"
    for path in ("/staff/outcomes", "/staff/outcomes/settings"):
        assert client.get(path).headers["Location"].startswith("/staff/login")
    token = {"csrf_token": csrf_token(client, "/staff/login")}
    assert client.post(export, data=token).headers["Location"].startswith("/staff/login")
    AuthActions(client).login("specialist")
    for path in ("/staff/outcomes", "/staff/outcomes/settings"):
        assert client.get(path).status_code == 403
    assert (
        client.post(export, data={"csrf_token": csrf_token(client, "/staff/calendar")}).status_code
        == 403
    )
    assert 'href="/staff/outcomes"' not in client.get("/staff/queue").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RegistryCode)) == 0


def _export(client: FlaskClient, months: int = 12) -> TestResponse:
    """Press the results page's export button, as a browser does: a post with its token."""
    page = client.get(f"/staff/outcomes?months={months}").get_data(as_text=True)
    form = page[page.index('action="/staff/outcomes/registry.csv') :]
    action = form[len('action="') : form.index('"', len('action="'))].replace("&amp;", "&")
    token = CSRF_RE.search(form)
    assert token, "no CSRF token in the export's form"
    return client.post(action, data={"csrf_token": token.group(1)})


def test_another_sites_link_to_the_registry_export_writes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    """The export makes each new patient's registry code and an audit event: a link or an
    image on another site, followed by a signed-in coordinator's browser, must not. A GET is
    refused (405), and so is a post without the page's token (400); the button works."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.PHYSIOTHERAPY, 2)
    AuthActions(client).login("coordinator")
    assert client.get("/staff/outcomes/registry.csv?months=12").status_code == 405
    assert client.post("/staff/outcomes/registry.csv?months=12").status_code == 400

    def written() -> tuple[int, int]:
        with app.app_context():
            codes = db.session.scalar(select(func.count()).select_from(RegistryCode))
            events = db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "outcomes_exported")
            )
            return codes, events

    assert written() == (0, 0)
    assert _export(client).status_code == 200
    assert written() == (2, 1)


def test_the_registry_export_is_pseudonymised_and_reads_back_with_its_bom(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        patients = _treated(
            Plan.MINIMALLY_INVASIVE,
            2,
            1,
            full_name="Lucía Fernández",
            email="lucia.private@example.com",
            phone="+34911222333",
            diagnosis_other="Fell from a horse in Toledo",
            other_history="Works at the Prado",
        )
    AuthActions(client).login("coordinator")
    response = _export(client)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.data.startswith(b"\xef\xbb\xbf")
    text = response.data.decode("utf-8-sig")
    for personal in (
        "Lucía", "Fernández", "lucia.private", "911222333", "horse", "Toledo", "Prado",
        "1970-05-17", "1970",
    ):  # fmt: skip
        assert personal not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3  # the unanswered follow-up is not exported
    assert {row["time_point"] for row in rows} == {"3m"}
    assert sorted(row["odi_change"] for row in rows) == ["improved", "improved", "unchanged"]
    assert {row["odi_baseline"] for row in rows} == {"50"}
    assert {row["diagnoses"] for row in rows} == {"herniated_disc"}
    assert {row["plan_group"] for row in rows} == {"minimally_invasive"}
    # When the baseline was given (the month the request was sent), so its age is known.
    with app.app_context():
        sent = {
            to_clinic_tz(r.created_at).strftime("%Y-%m")
            for r in db.session.scalars(select(ConsultationRequest))
        }
    assert {row["baseline_month"] for row in rows} == sent
    codes = [row["registry_code"] for row in rows]
    assert len(set(codes)) == 3 and all(len(code) == 12 for code in codes)
    # The same code in every export, stored once per patient.
    again = list(csv.DictReader(io.StringIO(_export(client).data.decode("utf-8-sig"))))
    assert sorted(row["registry_code"] for row in again) == sorted(codes)
    with app.app_context():
        stored = dict(
            db.session.execute(select(RegistryCode.patient_id, RegistryCode.code)).tuples().all()
        )
        assert set(stored) == set(patients) and sorted(stored.values()) == sorted(codes)
        exports = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "outcomes_exported")
        ).all()
        assert [event.details for event in exports] == [{"months": 12, "rows": 3}] * 2


def test_an_answer_given_before_the_treatment_started_is_no_result(
    app: Flask, client: FlaskClient
) -> None:
    """Three answers at 3 months: one with no procedure (counted from the consultation), one
    whose procedure is the day it was answered (clinic time: counted), one whose procedure
    is the day after (the operation postponed after the patient answered): no result of the
    time point in the clinic's results nor in the registry export."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 3)
        follow_ups = db.session.scalars(select(FollowUp).order_by(FollowUp.request_id)).all()
        plain, on_the_day, postponed = (f.request_id for f in follow_ups)
        answered_on = {f.request_id: to_clinic_tz(f.answered_at).date() for f in follow_ups}
        for request_id, day in (
            (on_the_day, answered_on[on_the_day]),
            (postponed, answered_on[postponed] + timedelta(days=1)),
        ):
            db.session.get(TreatmentPlan, request_id).procedure_date = day
        db.session.commit()
        since = results.since_for(12)
        counted = results.patient_outcomes("3m", since, default_settings())
        assert {outcome.request_id for outcome in counted} == {plain, on_the_day}
        assert results.count("3m", since, default_settings()).scored == 2
    AuthActions(client).login("coordinator")
    rows = list(csv.DictReader(io.StringIO(_export(client).data.decode("utf-8-sig"))))
    assert len(rows) == 2
    with app.app_context():
        [export] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "outcomes_exported")
        ).all()
        assert export.details == {"months": 12, "rows": 2}


def test_a_follow_up_superseded_by_a_corrected_date_is_no_result(
    app: Flask, client: FlaskClient
) -> None:
    """Three answers at 3 months, one of them superseded (sent too early for a corrected
    procedure date, answered after the operation all the same): it is asked again, so it is
    no result, no part of the response rate, and not in the registry export."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        _treated(Plan.MINIMALLY_INVASIVE, 3)
        follow_ups = db.session.scalars(select(FollowUp).order_by(FollowUp.request_id)).all()
        follow_ups[2].superseded_at = follow_ups[2].answered_at + timedelta(days=1)
        db.session.commit()
        since = results.since_for(12)
        counted = results.patient_outcomes("3m", since, default_settings())
        assert {o.request_id for o in counted} == {f.request_id for f in follow_ups[:2]}
        assert results.response_counts(since)["3m"] == [2, 0, 2, 0, 0]
    AuthActions(client).login("coordinator")
    rows = list(csv.DictReader(io.StringIO(_export(client).data.decode("utf-8-sig"))))
    assert len(rows) == 2


@pytest.mark.parametrize(
    ("after", "closed", "died"),
    [(1, True, False), (31, False, False), (1, True, True), (31, False, True)],
    ids=["closed early", "expired first", "closed early, died since", "expired, died since"],
)
def test_the_staff_pages_show_a_link_closed_for_a_later_time_point_as_such(
    app: Flask, client: FlaskClient, after: int, closed: bool, died: bool
) -> None:
    """As above, all of it in the past: the 6-week link closed by the clinic when the date
    was brought forward (the 3 months due already), which the results count apart, neither
    open nor a non-response. The record's follow-up table said "not answered" of it, and the
    coordinators' list of the never answered listed it as one that lapsed: both say now that
    it was closed for a later time point. One that expired before the correction is still
    "not answered". A patient marked deceased months after either closed counts as they
    stood then (``closed_while_followed``), in the results and on the record alike; nobody
    chases them in the list."""
    with app.app_context():
        consulted = clinic_today() - timedelta(days=200)
        consultation = _completed(
            plan=Plan.OPEN_SURGERY, procedure=consulted + timedelta(60), days_ago=200
        )
        coordinator = staff_user(make_staff("coordinator").email)
        six_weeks = schedule.due_at(consulted + timedelta(days=60), "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        now = six_weeks + timedelta(days=after)
        corrected = correct_procedure_date(consultation, consulted, coordinator, now=now)
        assert corrected.closed == (["6w"] if closed else [])
        send_due_followups(now=now)
        if died:
            consultation.patient.deceased_at = now_utc()
            db.session.commit()
        reference = consultation.reference
        assert results.response_counts(consulted - timedelta(days=1))["6w"] == [
            1, 0, 0, 0, 1 if closed else 0
        ]  # fmt: skip
    AuthActions(client).login("coordinator")
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    [six] = re.findall(r'<th scope="col">6 weeks<br>(.*?)</th>', record, re.S)
    assert ("closed for a later time point" in six) == closed
    assert ("not answered" in six) == (not closed)
    assert "no longer followed up" not in six
    if died:
        return
    listed = client.get("/staff/outcomes/follow-ups", query_string={"show": "unanswered"})
    row = listed.get_data(as_text=True).split('id="follow-ups"', 1)[1]
    row = row.split("<td>6 weeks</td>", 1)[1].split("</tr>", 1)[0]
    assert ("closed for a later time point" in row) == closed


@pytest.mark.parametrize(
    ("after", "closed_for_later"),
    [(1, True), (29, True), (31, False)],
    ids=["3 months sent", "3 months missed", "6 weeks expired first"],
)
def test_a_link_the_clinic_closed_for_a_later_time_point_is_no_non_response(
    app: Flask, after: int, closed_for_later: bool
) -> None:
    """The procedure recorded 60 days after the consultation, its 6-week questionnaire sent,
    then the date brought forward to the consultation day ``after`` days later: the 3 months
    are due already under it, so the open 6-week link is closed and the 3 months sent (or
    recorded missed, past their link's life). The patient did not let the 6 weeks lapse: the
    clinic closed them, so they count neither as answered nor as a non-response, nor as
    still open. Brought forward once the 6-week link had expired (30 days), it lived its
    life unanswered: a non-response. A 3-month questionnaire superseded by a later
    correction (the operation postponed again) is in no count at all."""
    with app.app_context():
        consulted = clinic_today() - timedelta(days=1)
        consultation = _completed(
            plan=Plan.OPEN_SURGERY, procedure=consulted + timedelta(60), on=consulted
        )
        coordinator = staff_user(make_staff("coordinator").email)
        six_weeks = schedule.due_at(consulted + timedelta(days=60), "6w", BERLIN)
        assert len(send_due_followups(now=six_weeks)) == 1
        now = six_weeks + timedelta(days=after)
        corrected = correct_procedure_date(consultation, consulted, coordinator, now=now)
        assert corrected.closed == (["6w"] if closed_for_later else [])
        send_due_followups(now=now)
        since = consulted - timedelta(days=1)
        later = now + timedelta(days=1)
        counted = results.response_counts(since, now=later)
        # [sent, still open, answered, left out, closed for a later time point]
        assert counted["6w"] == [1, 0, 0, 0, 1 if closed_for_later else 0]
        assert counted.get("3m") == ([1, 1, 0, 0, 0] if after == 1 else None)
        six = results.point_responses(counted, ["6w"])[0]
        assert six.closed_for_later == (1 if closed_for_later else 0)
        assert (six.share is None) == closed_for_later  # none closed by the patient's hand
        if after == 1:
            # Postponed again before the 3 months were answered: they were asked too early,
            # superseded and asked again at their new time; the 6 weeks stay as they were.
            corrected = correct_procedure_date(
                consultation, consulted + timedelta(days=30), coordinator, now=later
            )
            assert corrected.superseded == ["3m"]
            counted = results.response_counts(since, now=later + timedelta(days=1))
            assert counted == {"6w": [1, 0, 0, 0, 1]}


def test_an_answer_counts_from_the_clinic_day_of_the_treatment_not_the_utc_day(
    app: Flask,
) -> None:
    """Whether an answer came before the treatment started is judged on the clinic's day
    (``schedule.answered_before_start``): at 00:30 in Berlin on the day of the operation it
    is still the day before in UTC (23:30 in winter, 22:30 in summer), and the answer counts;
    at 23:30 in Berlin the evening before it does not, whichever the clock's offset."""
    winter, summer = date(2026, 1, 15), date(2026, 7, 15)
    answers = {
        "winter, 00:30 on the day": (winter, datetime(2026, 1, 14, 23, 30, tzinfo=UTC)),
        "winter, 23:30 the day before": (winter, datetime(2026, 1, 14, 22, 30, tzinfo=UTC)),
        "summer, 00:30 on the day": (summer, datetime(2026, 7, 14, 22, 30, tzinfo=UTC)),
        "summer, 23:30 the day before": (summer, datetime(2026, 7, 14, 21, 30, tzinfo=UTC)),
    }
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, len(answers))
        follow_ups = db.session.scalars(select(FollowUp).order_by(FollowUp.request_id)).all()
        ids = {}
        for (name, (procedure, answered_at)), follow_up in zip(
            answers.items(), follow_ups, strict=True
        ):
            follow_up.answered_at = answered_at
            db.session.get(TreatmentPlan, follow_up.request_id).procedure_date = procedure
            ids[follow_up.request_id] = name
        db.session.commit()
        counted = results.patient_outcomes("3m", date(2026, 1, 1), default_settings())
        assert sorted(ids[outcome.request_id] for outcome in counted) == [
            "summer, 00:30 on the day",
            "winter, 00:30 on the day",
        ]


REGISTRY_HEADING = (
    "registry_code,time_point,plan,plan_group,spine_region,diagnoses,age_at_start,"
    "baseline_month,start_month,answered_month,odi_baseline,odi,odi_change,ndi_baseline,ndi,"
    "ndi_change,back_pain_now_baseline,back_pain_worst_baseline,leg_pain_now_baseline,"
    "leg_pain_worst_baseline,neck_pain_now_baseline,neck_pain_worst_baseline,"
    "arm_pain_now_baseline,arm_pain_worst_baseline,back_pain_now,back_pain_worst,leg_pain_now,"
    "leg_pain_worst,neck_pain_now,neck_pain_worst,arm_pain_now,arm_pain_worst,gpe,satisfaction"
)


def test_the_registry_export_streams_the_same_file_and_audits_its_end(
    app: Flask, client: FlaskClient
) -> None:
    """The file is sent as it is read (never built whole), byte for byte the file the
    export has always made; it is audited as it starts (the rows then, which the access
    monitor counts) and when it ends, as the queue's export is."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        patients = _treated(Plan.PHYSIOTHERAPY, 1, 1, diagnoses=("sciatica", "spinal_stenosis"))
    AuthActions(client).login("coordinator")
    response = _export(client)
    assert response.status_code == 200 and response.is_streamed
    assert "Content-Length" not in response.headers  # sent as read, its size unknown at first
    body = response.data
    with app.app_context():
        codes = dict(
            db.session.execute(select(RegistryCode.patient_id, RegistryCode.code)).tuples().all()
        )
        lines = []
        for patient_id, (odi, change) in zip(
            patients, [("30", "improved"), ("45", "unchanged")], strict=True
        ):
            consultation = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.patient_id == patient_id)
            ).one()
            plan = db.session.get_one(TreatmentPlan, consultation.id)
            start, born = plan.consulted_on, consultation.patient.date_of_birth
            age = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
            follow_up = plan.follow_ups[0]
            lines.append(
                f"{codes[patient_id]},3m,physiotherapy,non_surgical,lower_back,"
                f"sciatica;spinal_stenosis,{age},"
                f"{to_clinic_tz(consultation.created_at):%Y-%m},{start:%Y-%m},"
                f"{to_clinic_tz(follow_up.answered_at):%Y-%m},50,{odi},{change},,,,"
                "5,8,4,7,,,,,2,,,,,,,,2,5\r\n"
            )
        expected = "\ufeff" + REGISTRY_HEADING + "\r\n" + "".join(lines)
        assert body == expected.encode("utf-8")

        started, ended = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(["outcomes_exported", "outcomes_export_ended"]))
            .order_by(AuditEvent.id)
        ).all()
    assert (started.action, started.details) == ("outcomes_exported", {"months": 12, "rows": 2})
    assert (ended.action, ended.details) == (
        "outcomes_export_ended",
        {"export": started.id, "complete": True, "rows": 2},
    )
    assert ended.actor_id == started.actor_id is not None


def test_the_registry_export_uses_the_clinics_separator(app: Flask) -> None:
    """A spreadsheet set to German or Spanish reads ";" as its list separator: with "," every
    row landed in one cell, as the queue's export once did. A cell holding the separator (the
    diagnoses' list) is quoted and reads back whole; a decimal has those spreadsheets'
    decimal comma (they read "44.4" as 444)."""
    app.config["EXPORT_CSV_DELIMITER"] = ";"
    with app.app_context():
        _treated(Plan.PHYSIOTHERAPY, 1, diagnoses=("sciatica", "spinal_stenosis"))
        db.session.execute(update(FollowUp).values(odi_percent=44.4))
        coordinator = staff_user(make_staff("coordinator").email)
        export_id = results.start_registry_export(12, coordinator)
        text = results.registry_head() + "".join(
            results.registry_pieces(12, coordinator, export_id)
        )
    heading, line = text.lstrip("\ufeff").splitlines()[:2]
    assert heading.startswith("registry_code;time_point;") and "," not in heading
    [row] = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert row["time_point"] == "3m" and row["diagnoses"] == "sciatica;spinal_stenosis"
    assert '"sciatica;spinal_stenosis"' in line
    assert (row["odi_baseline"], row["odi"]) == ("50", "44,4")


# ---- the public sentence ------------------------------------------------------------------------


def test_the_public_sentence_needs_the_switch_and_thirty_patients(
    app: Flask, client: FlaskClient
) -> None:
    sentence = "patients had minimally invasive surgery here in the last 12 months"
    with app.app_context():
        admin = make_staff("admin", "admin@example.com").email
        _treated(Plan.MINIMALLY_INVASIVE, 20, 9)  # 29 scored
        _treated(Plan.OPEN_SURGERY, 30, 10)  # another group: never counted here
    assert sentence not in client.get("/info/treatments").get_data(as_text=True)
    with app.app_context():
        save_settings(
            SettingsChange(
                schedule=["6w", "3m", "12m"],
                odi_points=10,
                ndi_points=7.5,
                pain_points=2,
                relative_percent=30,
                public_figures=True,
            ),
            staff_user(admin),
        )
    assert sentence not in client.get("/info/treatments").get_data(as_text=True)  # N = 29
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 1)  # 30: 21 improved = 70 %
        results.refresh_snapshots()  # the worker's next count
    page = client.get("/info/treatments?lang=en").get_data(as_text=True)
    assert (
        f"Our results: at least 30 {sentence} and answered our questionnaire after 3 months."
        in page
    )
    assert "For about 70 % of them" in page
    spanish = client.get("/info/treatments?lang=es").get_data(as_text=True)
    assert "al menos 30 pacientes operados aquí con cirugía mínimamente invasiva" in spanish
    assert "tras 3 meses" in spanish and "En alrededor del 70 % de ellos" in spanish
    # The 31st patient did not improve (21 of 31: 68 %): exact figures would say so to
    # anyone who saw the page before and knows who had surgery; the rounded ones do not.
    with app.app_context():
        _treated(Plan.MINIMALLY_INVASIVE, 0, 1)
        results.refresh_snapshots()
    after = client.get("/info/treatments?lang=en").get_data(as_text=True)
    assert f"Our results: at least 30 {sentence}" in after and "For about 70 % of them" in after
    with app.app_context():
        assert results.rounded_figure(40, 97.5, "3m").percent == 90  # never "about 100 %"
        assert results.rounded_figure(40, 2.5, "3m").percent == 10
        assert results.rounded_figure(32, 21 / 32 * 100, "3m").percent == 70
    with app.app_context():
        change = SettingsChange(["6w", "3m", "12m"], 10, 7.5, 2, 30, public_figures=False)
        save_settings(change, staff_user(admin))
    assert sentence not in client.get("/info/treatments?lang=en").get_data(as_text=True)
