"""Vocabularies of derived models (DOMAIN.md §2 "Derived model"): PDX-MI and the CancerModels.org dictionary.

Values are what the database stores; the named CHECK constraints of :mod:`biobank.models.derived` are built from
these enums, and :data:`STATUS_TRANSITIONS` is the one place the allowed status changes are written down (the
service and a database trigger both read it).
"""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    organoid = "organoid"
    pdx = "pdx"
    cell_line = "cell_line"  # 2D culture / cell line


#: Short, code-safe abbreviation of each kind, used in model codes (``RA0001-L02A-ORG1``).
KIND_ABBREVIATION: dict[ModelKind, str] = {
    ModelKind.organoid: "ORG",
    ModelKind.pdx: "PDX",
    ModelKind.cell_line: "CL",
}


class ModelStatus(StrEnum):
    initiated = "initiated"
    growing = "growing"
    established = "established"
    failed = "failed"
    cryobanked = "cryobanked"
    discontinued = "discontinued"


#: Allowed status changes. A model that is growing may be stopped before it is established (discontinued), which
#: is not a failure of the culture (e.g. the programme dropped the site); failed and discontinued are final.
STATUS_TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.initiated: frozenset({ModelStatus.growing, ModelStatus.failed}),
    ModelStatus.growing: frozenset({ModelStatus.established, ModelStatus.failed, ModelStatus.discontinued}),
    ModelStatus.established: frozenset({ModelStatus.cryobanked, ModelStatus.discontinued}),
    ModelStatus.cryobanked: frozenset({ModelStatus.discontinued}),
    ModelStatus.failed: frozenset(),
    ModelStatus.discontinued: frozenset(),
}

#: Statuses of a model that was established at some point (the numerator of the take rate).
ESTABLISHED_OR_BEYOND = frozenset({ModelStatus.established, ModelStatus.cryobanked})

#: Storage formats a model can be derived from: living material only.
VIABLE_SOURCE_FORMATS = ("fresh", "viable_cryo")


class EngraftmentType(StrEnum):
    orthotopic = "orthotopic"
    heterotopic = "heterotopic"


class TumourPreparation(StrEnum):
    fragment = "fragment"
    cell_suspension = "cell_suspension"


class Matrix(StrEnum):
    matrigel_bme = "matrigel_bme"
    collagen = "collagen"
    none = "none"


class GrowthProperties(StrEnum):
    """CancerModels.org ``growth_properties`` (stored in snake case; exported with the dictionary's wording)."""

    embedded_3d = "embedded_3d"
    adherent = "adherent"
    adherent_and_suspension = "adherent_and_suspension"
    suspension = "suspension"


GROWTH_PROPERTIES_LABEL: dict[GrowthProperties, str] = {
    GrowthProperties.embedded_3d: "embedded 3d culture",
    GrowthProperties.adherent: "adherent",
    GrowthProperties.adherent_and_suspension: "mix of adherent and suspension",
    GrowthProperties.suspension: "suspension",
}


class IdentityMethod(StrEnum):
    str_ = "STR"
    snp = "SNP"


class MycoplasmaResult(StrEnum):
    negative = "negative"
    positive = "positive"
    not_tested = "not_tested"


class QcRequirement(StrEnum):
    """Checks a setting may require before a model can be marked established (``BIOBANK_MODEL_QC_REQUIRED``)."""

    identity = "identity"  # STR/SNP match to the donor's germline at or above the threshold
    mycoplasma = "mycoplasma"  # mycoplasma negative
    mouse_content = "mouse_content"  # mouse content at or below the limit
    histology = "histology"  # histology concordant with the source tumour
    origin = "origin"  # tumour confirmed not of mouse or EBV-lymphoma origin
