"""Table models. Import from here: ``from biobank.models import Donor``.

Importing the tables installs the audit hook (``biobank.models.audit``) too, so any script that writes through these
models leaves audit rows: there is no way to have the tables without it.
"""

from biobank.models import audit as _audit  # noqa: F401  (the audit hook: installed wherever the tables are)
from biobank.models import indexes as _indexes  # noqa: F401  (indexes for reads at scale)
from biobank.models.attachments import Attachment
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
from biobank.models.derived import DerivedModel, ModelPassage, ModelQC
from biobank.models.exports import ExportDonor, ExportRecord
from biobank.models.plans import (
    AnalysisPlan,
    AnalysisResult,
    PlanDonor,
    PlanSpecimen,
    SequencingFile,
    SequencingResult,
    SequencingRun,
)
from biobank.models.sessions import UserSession
from biobank.models.storage import Checkout, Container, DistributionItem, DistributionOrder, SpecimenLocation
from biobank.models.summaries import (
    CasePmiSummary,
    CohortGeneration,
    CohortSummary,
    PmiBinSummary,
    SiteSummary,
    SpecimenPmi,
)
from biobank.models.tokens import ApiIdempotencyKey, ApiToken

metadata = SQLModel.metadata

__all__ = [
    "AnalysisPlan",
    "AnalysisResult",
    "AnatomicalSite",
    "ApiIdempotencyKey",
    "ApiToken",
    "Attachment",
    "AuditLog",
    "Autopsy",
    "CasePmiSummary",
    "Checkout",
    "ClinicalEvent",
    "CohortGeneration",
    "CohortSummary",
    "Consent",
    "ConsentWithdrawal",
    "Container",
    "CustodyEvent",
    "DerivedModel",
    "DistributionItem",
    "DistributionOrder",
    "Donor",
    "ExportDonor",
    "ExportRecord",
    "Lesion",
    "ModelPassage",
    "ModelQC",
    "PlanDonor",
    "PlanSpecimen",
    "PmiBinSummary",
    "SamplingSite",
    "SequencingFile",
    "SequencingResult",
    "SequencingRun",
    "SiteSummary",
    "Specimen",
    "SpecimenLocation",
    "SpecimenPmi",
    "TreatmentLine",
    "User",
    "UserSession",
    "metadata",
]
