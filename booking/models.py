"""Every model, imported in one place so Alembic and the app see the whole schema."""

from booking.documents.models import Document
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.patients.models import (
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestStatus,
    TriageLevel,
)

__all__ = [
    "ConsultationRequest",
    "Document",
    "MedicalHistory",
    "OutboxEmail",
    "OutboxStatus",
    "Patient",
    "RequestStatus",
    "TriageLevel",
]
