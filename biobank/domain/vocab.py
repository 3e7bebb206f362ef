"""Controlled vocabularies (DOMAIN.md §2 and §4).

Every vocabulary is a ``StrEnum`` whose values are what the database stores; the database holds the same lists as
named CHECK constraints, built from these enums.
"""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    """MIABIS sex."""

    male = "male"
    female = "female"
    unknown = "unknown"
    undifferentiated = "undifferentiated"
    not_applicable = "not_applicable"


class DonorStatus(StrEnum):
    enrolled = "enrolled"
    deceased = "deceased"
    autopsy_done = "autopsy_done"
    withdrawn = "withdrawn"


class ReceptorStatus(StrEnum):
    positive = "positive"
    negative = "negative"
    equivocal = "equivocal"
    low = "low"
    unknown = "unknown"


class ConsentGiver(StrEnum):
    donor = "donor"
    next_of_kin = "next_of_kin"
    legal_representative = "legal_representative"


class ConsentChange(StrEnum):
    """Why a consent version was recorded: the first consent, a new form signed, scopes changed, or a partial
    withdrawal (some scopes withdrawn, the rest still in force)."""

    initial = "initial"
    re_consent = "re_consent"
    scope_change = "scope_change"
    partial_withdrawal = "partial_withdrawal"


class WithdrawalMaterial(StrEnum):
    """What happens to the material held when consent is withdrawn in full."""

    destroy = "destroy"  # dispose of every specimen still held
    keep_blocked = "keep_blocked"  # keep it, blocked from every use (the default)
    allow_distributed = "allow_distributed"  # keep blocked here; material already shipped may still be used


class ConsentScope(StrEnum):
    """What a consent may cover; each is a boolean column on the consent."""

    research_use = "research_use"
    genomic_sequencing = "genomic_sequencing"
    model_derivation = "model_derivation"
    external_sharing = "external_sharing"
    recontact = "recontact"


class TreatmentCategory(StrEnum):
    endocrine = "endocrine"
    cdk46_inhibitor = "cdk46_inhibitor"
    mtor_inhibitor = "mtor_inhibitor"
    pi3k_inhibitor = "pi3k_inhibitor"
    her2_targeted = "her2_targeted"
    chemotherapy = "chemotherapy"
    immunotherapy = "immunotherapy"
    bone_targeted = "bone_targeted"
    radiotherapy = "radiotherapy"
    surgery = "surgery"
    other = "other"


class TreatmentIntent(StrEnum):
    neoadjuvant = "neoadjuvant"
    adjuvant = "adjuvant"
    curative = "curative"
    palliative = "palliative"
    unknown = "unknown"


class Response(StrEnum):
    """Best response to a treatment line (RECIST-like)."""

    complete = "complete"
    partial = "partial"
    stable = "stable"
    progressive = "progressive"
    not_evaluable = "not_evaluable"
    unknown = "unknown"


class ClinicalEventKind(StrEnum):
    fracture = "fracture"
    spinal_cord_compression = "spinal_cord_compression"
    hypercalcaemia = "hypercalcaemia"
    vertebroplasty = "vertebroplasty"
    orthopaedic_surgery = "orthopaedic_surgery"
    other = "other"


class AutopsyStatus(StrEnum):
    scheduled = "scheduled"
    in_progress = "in_progress"
    complete = "complete"


class LesionKind(StrEnum):
    primary = "primary"
    metastasis = "metastasis"
    local_recurrence = "local_recurrence"
    lymph_node = "lymph_node"
    #: Not recorded in the source (a collection log without a lesion kind): flagged by the checklist and the planner.
    unknown = "unknown"


class BonePhenotype(StrEnum):
    osteolytic = "osteolytic"
    osteoblastic = "osteoblastic"
    mixed = "mixed"


class ImagingResponse(StrEnum):
    progressing = "progressing"
    stable = "stable"
    responding = "responding"
    unknown = "unknown"


class Laterality(StrEnum):
    left = "left"
    right = "right"
    bilateral = "bilateral"
    midline = "midline"
    not_applicable = "not_applicable"
    unknown = "unknown"


class SiteKind(StrEnum):
    """What a sampling site is: a region of a lesion, or material taken without a lesion."""

    tumour_region = "tumour_region"
    normal_tissue = "normal_tissue"
    germline_blood = "germline_blood"
    bone_marrow = "bone_marrow"
    premortem_blood = "premortem_blood"


class TissueStatus(StrEnum):
    tumour = "tumour"
    normal = "normal"
    adjacent_normal = "adjacent_normal"


class Lineage(StrEnum):
    primary = "primary"
    aliquot = "aliquot"
    derivative = "derivative"


class MaterialType(StrEnum):
    tissue = "tissue"
    whole_blood = "whole_blood"
    plasma = "plasma"
    buffy_coat = "buffy_coat"
    bone_marrow = "bone_marrow"
    dna = "dna"
    rna = "rna"
    cells = "cells"
    section = "section"


class StorageFormat(StrEnum):
    fresh = "fresh"
    snap_frozen = "snap_frozen"
    oct = "oct"
    ffpe = "ffpe"
    rnalater = "rnalater"
    viable_cryo = "viable_cryo"
    frozen = "frozen"


#: Short, code-safe abbreviation of each format, used in specimen codes (``RA0001-L02B-SF1``).
FORMAT_ABBREVIATION: dict[StorageFormat, str] = {
    StorageFormat.fresh: "FR",
    StorageFormat.snap_frozen: "SF",
    StorageFormat.oct: "OC",
    StorageFormat.ffpe: "FF",
    StorageFormat.rnalater: "RL",
    StorageFormat.viable_cryo: "VC",
    StorageFormat.frozen: "FZ",
}

#: Storage format -> (GDC preservation_method, MIABIS material type, SPREC fixation) for tissue (DOMAIN.md §4).
FORMAT_MAPPING: dict[StorageFormat, tuple[str, str, str]] = {
    StorageFormat.fresh: ("Fresh", "Tissue", "ZZZ"),
    StorageFormat.snap_frozen: ("Snap Frozen", "TissueFreshFrozen", "SNP"),
    StorageFormat.oct: ("OCT", "TissueFreshFrozen", "OCT"),
    StorageFormat.ffpe: ("FFPE", "TissueFixed", "NBF"),
    StorageFormat.rnalater: ("Frozen", "TissueFreshFrozen", "RNL"),
    StorageFormat.viable_cryo: ("Cryopreserved", "Tissue", "ZZZ"),
    StorageFormat.frozen: ("Frozen", "Other", "XXX"),
}

#: Formats that are frozen while stored: a check-out and return counts as a freeze-thaw cycle.
FROZEN_FORMATS = frozenset(
    {
        StorageFormat.snap_frozen,
        StorageFormat.oct,
        StorageFormat.rnalater,
        StorageFormat.viable_cryo,
        StorageFormat.frozen,
    }
)


class Fixative(StrEnum):
    nbf = "nbf"
    formalin = "formalin"
    aldehyde = "aldehyde"
    alcohol = "alcohol"
    paxgene = "paxgene"
    other = "other"


class DecalcificationAgent(StrEnum):
    edta = "edta"
    formic_acid = "formic_acid"
    hydrochloric_acid = "hydrochloric_acid"
    nitric_acid = "nitric_acid"
    other_acid = "other_acid"


#: Strong acids destroy nucleic acids (DOMAIN.md §1); formic acid is milder and EDTA preserves them.
ACID_DECALCIFICATION = frozenset(
    {
        DecalcificationAgent.formic_acid,
        DecalcificationAgent.hydrochloric_acid,
        DecalcificationAgent.nitric_acid,
        DecalcificationAgent.other_acid,
    }
)


class QuantityUnit(StrEnum):
    mg = "mg"
    ul = "ul"
    cells = "cells"
    sections = "sections"
    blocks = "blocks"
    ng = "ng"


class SpecimenStatus(StrEnum):
    available = "available"
    reserved = "reserved"
    in_use = "in_use"
    depleted = "depleted"
    distributed = "distributed"
    disposed = "disposed"


#: Statuses from which nothing more can be taken.
EXHAUSTED_STATUSES = frozenset({SpecimenStatus.depleted, SpecimenStatus.disposed})


class CustodyKind(StrEnum):
    collected = "collected"
    stabilised = "stabilised"
    stored = "stored"
    moved = "moved"
    checked_out = "checked_out"
    returned = "returned"
    thawed = "thawed"
    aliquoted = "aliquoted"
    derived = "derived"
    qc_recorded = "qc_recorded"
    reserved = "reserved"
    distributed = "distributed"
    disposed = "disposed"
    corrected = "corrected"


class Role(StrEnum):
    technician = "technician"
    coordinator = "coordinator"
    pi = "pi"
    admin = "admin"
    viewer = "viewer"


class AuditAction(StrEnum):
    insert = "insert"
    update = "update"
    delete = "delete"


def values(enum: type[StrEnum]) -> list[str]:
    """The stored values of a vocabulary, in declaration order."""
    return [member.value for member in enum]
