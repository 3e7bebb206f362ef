"""The spellings of the closed vocabularies seen in lab spreadsheets (:data:`SYNONYM_GROUPS`), the matching key
that ignores case, spaces, hyphens and underscores (:func:`vocab_key`), and the spellings that must not be guessed
(:data:`AMBIGUOUS`). Kept apart from the coercers (:mod:`biobank.imports.coerce.vocabulary`) so that the lab's own
vocabulary (:mod:`biobank.imports.vocabulary_ext`) can read them while the coercers read the lab's vocabulary."""

from __future__ import annotations

import re
from enum import StrEnum

from biobank.domain.vocab import (
    FORMAT_ABBREVIATION,
    BonePhenotype,
    ConsentGiver,
    DecalcificationAgent,
    Fixative,
    ImagingResponse,
    Laterality,
    LesionKind,
    MaterialType,
    QuantityUnit,
    ReceptorStatus,
    Response,
    Sex,
    SiteKind,
    StorageFormat,
    TissueStatus,
    TreatmentIntent,
)
from biobank.imports.coerce.cells import _trim

_KEY_JUNK = re.compile(r"[\s_\-‐‑‒–—]+")


def vocab_key(text: str) -> str:
    """Matching key: case-, space-, hyphen- and underscore-insensitive (``Snap-Frozen`` = ``snap_frozen``)."""
    return _KEY_JUNK.sub("", _trim(text).casefold())


#: Spellings seen in lab spreadsheets, per vocabulary and value. Matching uses :func:`vocab_key`, so case, spaces,
#: hyphens and underscores need not be listed; the enum values themselves always match. Storage formats also accept
#: their label abbreviations (``vocab.FORMAT_ABBREVIATION``) except the ambiguous ``FF``.
SYNONYM_GROUPS: dict[type[StrEnum], dict[str, tuple[str, ...]]] = {
    StorageFormat: {
        "fresh": ("fresh tissue", "fresh in medium", "medium", "culture medium"),
        "snap_frozen": (
            "snap frozen",
            "snap",
            "LN2",
            "LN",
            "liquid nitrogen",
            "snap frozen in LN2",
            "flash frozen",
            "fresh frozen",
        ),
        "oct": (
            "OCT",
            "O.C.T.",
            "O.C.T",
            "OCT embedded",
            "OCT block",
            "frozen in OCT",
            "Tissue-Tek",
            "Tissue-Tek OCT",
        ),
        "ffpe": (
            "FFPE",
            "FFPE block",
            "formalin-fixed paraffin-embedded",
            "formalin fixed, paraffin embedded",
            "paraffin",
            "paraffin block",
            "paraffin embedded",
        ),
        "rnalater": ("RNA later", "RNAlater", "RNAL"),
        "viable_cryo": (
            "viable",
            "viable cryo",
            "viable cryopreserved",
            "viably frozen",
            "viable frozen",
            "cryopreserved",
            "DMSO",
            "in DMSO",
            "10% DMSO",
        ),
        "frozen": ("-80", "−80", "-80C", "-80 °C", "−80 °C", "−80C", "minus 80", "freezer", "frozen -80"),
    },
    Sex: {
        "male": ("M", "man", "XY"),
        "female": ("F", "W", "woman", "XX"),
        "unknown": ("U", "unk", "not known", "not recorded"),
        "undifferentiated": ("intersex", "indeterminate"),
        "not_applicable": ("not applicable",),
    },
    MaterialType: {
        "tissue": ("solid tissue", "tumour tissue", "tumor tissue"),
        "whole_blood": ("blood", "WB", "EDTA blood", "peripheral blood"),
        "plasma": ("blood plasma", "EDTA plasma"),
        "buffy_coat": ("buffy", "BC"),
        "bone_marrow": ("marrow", "BM", "bone marrow aspirate", "marrow aspirate", "BMA"),
        "dna": ("gDNA", "genomic DNA", "cfDNA", "ctDNA"),
        "rna": ("total RNA",),
        "cells": ("cell", "cell suspension", "single cell suspension", "cell pellet", "PBMC", "PBMCs"),
        "section": (
            "sections",
            "tissue section",
            "slide",
            "slides",
            "unstained slide",
            "unstained slides",
            "H&E slide",
            "curl",
            "curls",
            "scroll",
            "scrolls",
        ),
    },
    LesionKind: {
        "primary": ("primary tumour", "primary tumor", "prim"),
        "metastasis": ("met", "mets", "metastatic", "metastases", "metastatic lesion", "distant metastasis"),
        "local_recurrence": ("recurrence", "LR", "locoregional recurrence"),
        "lymph_node": ("LN", "node", "nodal", "lymph node metastasis", "nodal metastasis", "LN met"),
    },
    DecalcificationAgent: {
        "edta": ("EDTA decal", "Osteosoft"),
        "formic_acid": ("formic", "HCOOH"),
        "hydrochloric_acid": ("HCl", "hydrochloric", "RDO"),
        "nitric_acid": ("nitric", "HNO3"),
        "other_acid": ("acid", "strong acid"),
    },
    QuantityUnit: {
        "mg": ("milligram", "milligrams"),
        "ul": ("µl", "μl", "microlitre", "microlitres", "microliter", "microliters"),
        "cells": ("cell",),
        "sections": ("section", "slide", "slides"),
        "blocks": ("block",),
        "ng": ("nanogram", "nanograms"),
    },
    ReceptorStatus: {
        "positive": ("+", "pos", "pos.", "+ve"),
        "negative": ("−", "neg", "neg.", "-ve", "−ve"),
        "equivocal": ("equiv", "borderline"),
        "low": ("HER2-low", "low positive", "weakly positive"),
        "unknown": ("unk", "not known", "not tested", "not done"),
    },
    Laterality: {
        "left": ("L", "lt", "left side"),
        "right": ("R", "rt", "right side"),
        "bilateral": ("bilat", "both", "L+R", "L&R", "left and right"),
        "midline": ("central", "median"),
        "not_applicable": ("not applicable",),
        "unknown": ("unk", "not known"),
    },
    Fixative: {
        "nbf": ("NBF", "10% NBF", "neutral buffered formalin", "10% neutral buffered formalin"),
        "formalin": ("formaldehyde",),
        "aldehyde": ("PFA", "paraformaldehyde", "glutaraldehyde"),
        "alcohol": ("ethanol", "methanol", "70% ethanol"),
        "paxgene": ("PAXgene Tissue", "PAXgene fixative"),
    },
    TissueStatus: {
        "tumour": ("tumor", "T"),
        "normal": ("N",),
        "adjacent_normal": ("adjacent normal tissue", "NAT", "normal adjacent", "adjacent"),
    },
    SiteKind: {
        "tumour_region": ("tumor region", "tumour", "tumor"),
        "normal_tissue": ("normal",),
        "germline_blood": ("germline",),
        "bone_marrow": ("marrow", "bone marrow aspirate"),
        "premortem_blood": ("premortem", "pre-mortem blood", "antemortem blood"),
    },
    BonePhenotype: {
        "osteolytic": ("lytic",),
        "osteoblastic": ("blastic", "sclerotic", "osteosclerotic"),
        "mixed": ("mixed lytic/blastic", "lytic/blastic"),
    },
    Response: {
        "complete": ("CR", "complete response"),
        "partial": ("PR", "partial response"),
        "stable": ("SD", "stable disease"),
        "progressive": ("PD", "progression", "progressive disease"),
        "not_evaluable": ("NE",),
        "unknown": ("unk",),
    },
    ImagingResponse: {
        "progressing": ("progression", "progressive", "PD"),
        "stable": ("SD",),
        "responding": ("response", "PR", "CR"),
        "unknown": ("unk",),
    },
    TreatmentIntent: {
        "neoadjuvant": ("neo-adjuvant", "neoadj"),
        "adjuvant": ("adj",),
        "curative": ("curative intent",),
        "palliative": ("palliation",),
        "unknown": ("unk",),
    },
    ConsentGiver: {
        "donor": ("patient", "self"),
        "next_of_kin": ("NOK", "family", "relative"),
        "legal_representative": ("LAR", "legal guardian"),
    },
}

#: Flat lookup built from :data:`SYNONYM_GROUPS`: spelling -> vocabulary member.
SYNONYMS: dict[type[StrEnum], dict[str, StrEnum]] = {
    enum_cls: {spelling: enum_cls(value) for value, spellings in groups.items() for spelling in spellings}
    for enum_cls, groups in SYNONYM_GROUPS.items()
}
SYNONYMS[StorageFormat].update({abbr: fmt for fmt, abbr in FORMAT_ABBREVIATION.items() if abbr != "FF"})

#: Spellings that must not be guessed: each maps to the message shown to the user.
AMBIGUOUS: dict[type[StrEnum], dict[str, str]] = {
    StorageFormat: {
        "FF": "'FF' means fresh frozen in some labs and FFPE in others: write snap_frozen or ffpe",
        "cryo": "'cryo' may mean snap frozen or viable cryopreserved: write snap_frozen or viable_cryo",
        "formalin": "'formalin' is a fixative, not a storage format: write ffpe for a paraffin block",
    },
    ReceptorStatus: {
        "-": "'-' may mean negative or not tested: write negative, or leave the cell empty",
    },
    Sex: {},
}
