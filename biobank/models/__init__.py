"""Table models. Import from here: ``from biobank.models import Donor``."""

from biobank.models import indexes as _indexes  # noqa: F401  (indexes for reads at scale)
from biobank.models.base import SQLModel
from biobank.models.core import (
    AnatomicalSite,
    AuditLog,
    Autopsy,
    ClinicalEvent,
    Consent,
    ConsentWithdrawal,
    CustodyEvent,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    TreatmentLine,
    User,
)

metadata = SQLModel.metadata

__all__ = [
    "AnatomicalSite",
    "AuditLog",
    "Autopsy",
    "ClinicalEvent",
    "Consent",
    "ConsentWithdrawal",
    "CustodyEvent",
    "Donor",
    "Lesion",
    "SamplingSite",
    "Specimen",
    "TreatmentLine",
    "User",
    "metadata",
]
