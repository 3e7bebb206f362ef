"""Generated codes: unique, readable at a glance, and safe for every pipeline (letters, digits, '.', '_', '-')."""

from __future__ import annotations

import re

from biobank.domain.errors import invalid
from biobank.domain.vocab import FORMAT_ABBREVIATION, MaterialType, SiteKind, StorageFormat

SAFE_CODE = re.compile(r"^[A-Za-z0-9._-]+$")
DONOR_CODE = re.compile(r"^[A-Za-z]{1,6}-?\d{1,6}$")
LESION_CODE = re.compile(r"^L\d{2,3}$")
REGION_LABEL = re.compile(r"^[A-Z]{1,2}\d?$")

#: Prefix of non-tumour sampling-site codes (``N01``, ``GB1``...).
SITE_PREFIX = {
    SiteKind.normal_tissue: "N",
    SiteKind.germline_blood: "GB",
    SiteKind.bone_marrow: "BM",
    SiteKind.premortem_blood: "PB",
}

#: Abbreviation of a derivative's material in its code (``RA0001-L02B-SF1-DNA1``).
DERIVATIVE_ABBREVIATION = {
    MaterialType.dna: "DNA",
    MaterialType.rna: "RNA",
    MaterialType.section: "SEC",
    MaterialType.cells: "CEL",
    MaterialType.plasma: "PLA",
    MaterialType.buffy_coat: "BUF",
    MaterialType.tissue: "TIS",
    MaterialType.whole_blood: "WB",
    MaterialType.bone_marrow: "BMA",
}


def require_safe(field: str, value: str) -> str:
    if not value or not SAFE_CODE.match(value):
        raise invalid(field, value, "use only letters, digits, '.', '_' and '-' (no spaces or colons)")
    return value


def compact(code: str) -> str:
    """``RA-0001`` -> ``RA0001``; ``L02-B`` -> ``L02B``."""
    return code.replace("-", "").replace("_", "")


def region_site_code(lesion_code: str, region_label: str) -> str:
    return f"{lesion_code}-{region_label}"


def other_site_code(kind: SiteKind, number: int) -> str:
    prefix = SITE_PREFIX[kind]
    return f"{prefix}{number:02d}" if kind is SiteKind.normal_tissue else f"{prefix}{number}"


def primary_specimen_code(donor_code: str, site_code: str, storage_format: str, sequence: int) -> str:
    """``RA0001-L02B-SF1``: donor, lesion and region, format and a sequence number, all visible."""
    abbreviation = FORMAT_ABBREVIATION[StorageFormat(storage_format)]
    return f"{compact(donor_code)}-{compact(site_code)}-{abbreviation}{sequence}"


def aliquot_code(parent_code: str, number: int) -> str:
    return f"{parent_code}.{number}"


def derivative_code(parent_code: str, material_type: str, number: int) -> str:
    return f"{parent_code}-{DERIVATIVE_ABBREVIATION[MaterialType(material_type)]}{number}"
