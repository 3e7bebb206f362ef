"""Table models. Import from here: ``from biobank.models import Donor``."""

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
from biobank.models.plans import AnalysisPlan, PlanDonor, PlanSpecimen  # noqa: E402

__all__ += ["AnalysisPlan", "PlanDonor", "PlanSpecimen"]
