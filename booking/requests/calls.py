"""Call-backs: staff's calls to the patient of a request, each logged with who called, when
and what came of it. The earliest (by when it was made) that reached the patient
(``CallOutcome.REACHED``) acknowledges the request (``ConsultationRequest.acknowledged_at``):
that stops its clock against the call-back target and its escalation. A call with no answer
or to a wrong number does not: the patient still waits for the clinic's call, and the on-call
address is told when the target passes.

A call's note may hold medical details, so it lives on the timeline entry that goes with the
call (``event``), like a staff note: never in the audit trail, never in an email.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.events import RequestEvent
    from booking.staff.models import StaffUser


class CallOutcome(enum.StrEnum):
    REACHED = "reached"  # reached and advised
    NO_ANSWER = "no_answer"  # no answer, or a message left
    WRONG_NUMBER = "wrong_number"
    OTHER = "other"


OUTCOME_LABELS = {
    CallOutcome.REACHED: _l("Reached and advised"),
    CallOutcome.NO_ANSWER: _l("No answer, left a message"),
    CallOutcome.WRONG_NUMBER: _l("Wrong number"),
    CallOutcome.OTHER: _l("Other (see the note)"),
}


class CallbackAttempt(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE")
    )
    caller_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    # When the call was made, as staff entered it (default: when it was logged).
    called_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[CallOutcome] = mapped_column(value_enum(CallOutcome, "call_outcome", 20))
    # The timeline entry holding the call's note.
    event_id: Mapped[int] = mapped_column(
        ForeignKey("request_event.id", ondelete="CASCADE"), unique=True
    )
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    caller: Mapped[StaffUser] = relationship()
    event: Mapped[RequestEvent] = relationship(back_populates="call")

    __table_args__ = (Index("ix_callback_attempt_request", "request_id", "called_at"),)

    @property
    def outcome_label(self) -> str:
        return str(OUTCOME_LABELS[self.outcome])
