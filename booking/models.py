"""Every model, imported in one place so Alembic and the app see the whole schema."""

from booking.audit.models import AuditEvent, AuditReference
from booking.documents.models import Document
from booking.feedback.models import PageFeedback
from booking.messages.models import Message
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.outcomes.models import (
    FollowUp,
    FollowUpLink,
    OutcomeSettings,
    RegistryCode,
    TreatmentPlan,
)
from booking.privacy.models import FilePurge
from booking.requests.asks import ChecklistItem, InformationRequest
from booking.requests.calls import CallbackAttempt, CallOutcome
from booking.requests.drafts import DraftDocument, RequestDraft
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import (
    ConsultationRequest,
    ManageLink,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
)
from booking.rights.models import EmailChange, ErasureRequest
from booking.scheduling import versions  # noqa: F401  (raises the availability version)
from booking.scheduling.models import Appointment, AvailabilityVersion, Location
from booking.staff.models import RecoveryCode, StaffRole, StaffSession, StaffUser

__all__ = [
    "Appointment",
    "AuditEvent",
    "AuditReference",
    "AvailabilityVersion",
    "CallOutcome",
    "CallbackAttempt",
    "ChecklistItem",
    "ConsultationRequest",
    "Document",
    "DraftDocument",
    "EmailChange",
    "ErasureRequest",
    "EventKind",
    "FilePurge",
    "FollowUp",
    "FollowUpLink",
    "InformationRequest",
    "Location",
    "ManageLink",
    "MedicalHistory",
    "Message",
    "OutboxEmail",
    "OutboxStatus",
    "OutcomeSettings",
    "PageFeedback",
    "Patient",
    "RecoveryCode",
    "RegistryCode",
    "RequestDiagnosis",
    "RequestDraft",
    "RequestEvent",
    "RequestStatus",
    "StaffRole",
    "StaffSession",
    "StaffUser",
    "TreatmentPlan",
    "TriageLevel",
]
