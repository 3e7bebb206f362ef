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

from biobank.models.derived import DerivedModel, ModelPassage, ModelQC  # noqa: E402

__all__ += ["DerivedModel", "ModelPassage", "ModelQC"]
# Storage, check-outs and distribution (issue 3).
from biobank.models.storage import (  # noqa: E402
    Checkout,
    Container,
    DistributionItem,
    DistributionOrder,
    SpecimenLocation,
)

__all__ += ["Checkout", "Container", "DistributionItem", "DistributionOrder", "SpecimenLocation"]
from biobank.models.plans import AnalysisPlan, PlanDonor, PlanSpecimen  # noqa: E402

__all__ += ["AnalysisPlan", "PlanDonor", "PlanSpecimen"]
