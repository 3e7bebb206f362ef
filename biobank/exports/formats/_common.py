"""Helpers shared by the export writers (no database, no I/O)."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

#: Identifiers every target accepts (DOMAIN.md §6 rule 9; cBioPortal's PATIENT_ID/SAMPLE_ID rule).
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")

#: MIABIS sex -> chromosomal sex as sarek (and copy-number tools) take it.
KARYOTYPE: dict[str, str] = {"female": "XX", "male": "XY"}

#: Lesion kinds whose anatomical site counts as the primary site for migration analyses.
PRIMARY_KINDS = frozenset({"primary", "local_recurrence"})
METASTATIC_KINDS = frozenset({"metastasis", "lymph_node"})

#: Laterality values that distinguish two sites with the same anatomical code.
SIDED = ("left", "right", "bilateral")


def isna(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA; False for anything else (including containers)."""
    if value is None:
        return True
    if not pd.api.types.is_scalar(value):
        return False
    return bool(pd.isna(value))


def text(value: Any) -> str | None:
    """The value as a stripped string, or None when missing or blank."""
    if isna(value):
        return None
    s = str(value).strip()
    return s or None


def number(value: Any) -> float | None:
    """The value as a float, or None when missing."""
    if isna(value):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    """The value as an int, or None when missing; refuses a fractional value."""
    f = number(value)
    if f is None:
        return None
    if not float(f).is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(f)


def karyotype(sex: Any) -> str:
    """MIABIS sex -> ``XX``, ``XY`` or ``NA``."""
    return KARYOTYPE.get(text(sex) or "", "NA")


def purity(cellularity_pct: Any) -> float | None:
    """Tumour cellularity in percent -> purity as a fraction in [0, 1], or None when not recorded."""
    pct = number(cellularity_pct)
    if pct is None:
        return None
    if not 0.0 <= pct <= 100.0 or math.isnan(pct):
        raise ValueError(f"tumour_cellularity_pct must be within 0-100, got {cellularity_pct!r}")
    return round(pct / 100.0, 6)


def safe_label(value: Any, fallback: str = "site") -> str:
    """A label with only letters, digits, ``.``, ``_`` and ``-``: no spaces, colons, commas or semicolons."""
    s = text(value) or ""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_.-")
    return s or fallback


def iso_duration_hours(hours: float) -> str:
    """A non-negative number of hours as an ISO 8601 duration (``PT3H30M``; seconds kept when present)."""
    if hours < 0:
        raise ValueError("ISO 8601 durations cannot be negative")
    total = round(hours * 3600)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    out = "PT"
    if h:
        out += f"{h}H"
    if m:
        out += f"{m}M"
    if s or out == "PT":
        out += f"{s}S"
    return out


def describe_collection_time(hours_after_death: Any) -> str | None:
    """Human text for the collection time relative to death (de-identified)."""
    hours = number(hours_after_death)
    if hours is None:
        return None
    if hours >= 0:
        return f"collected {iso_duration_hours(hours)} after death"
    return f"collected {iso_duration_hours(-hours)} before death"


class SiteLabeller:
    """Gives every anatomical site (site code + side) one safe label, unique across the export.

    The label is the site's label (or code) made safe, with ``_left``/``_right``/``_bilateral`` added when the
    laterality distinguishes it; two different sites whose safe labels collide get ``_2``, ``_3``...
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], str] = {}
        self._used: set[str] = set()

    @staticmethod
    def key(row: pd.Series | dict[str, Any]) -> tuple[str, str]:
        code = text(row.get("site_code")) or text(row.get("site_label")) or "unknown_site"
        side = text(row.get("laterality")) or ""
        return code, side if side in SIDED else ""

    def label(self, row: pd.Series | dict[str, Any]) -> str:
        key = self.key(row)
        if key in self._by_key:
            return self._by_key[key]
        base = safe_label(text(row.get("site_label")) or key[0])
        side = key[1]
        if side and not base.lower().endswith(side):
            base = f"{base}_{side}"
        label, n = base, 1
        while label.lower() in self._used:
            n += 1
            label = f"{base}_{n}"
        self._used.add(label.lower())
        self._by_key[key] = label
        return label


def tumour_sites(samples: pd.DataFrame, labeller: SiteLabeller | None = None) -> pd.DataFrame:
    """Tumour rows only, with ``site_key``, ``anatomical_site_label`` and ``site_category`` added.

    A site is ``primary`` when any tumour sample at it comes from a primary lesion or a local recurrence, otherwise
    ``metastasis`` (so one site never carries two categories, as Metient requires).
    """
    labeller = labeller or SiteLabeller()
    tumours = samples[samples["role"] == "tumour"].copy()
    no_kind = [
        str(c) for c, k in zip(tumours["specimen_code"], tumours["lesion_kind"], strict=True) if isna(k)
    ]
    if no_kind:
        raise ValueError(f"tumour sample(s) without lesion_kind: {', '.join(no_kind)}")
    keys = [
        (str(d), *SiteLabeller.key(r))
        for d, (_, r) in zip(tumours["donor_code"], tumours.iterrows(), strict=True)
    ]
    primary_keys = {k for k, kind in zip(keys, tumours["lesion_kind"], strict=True) if kind in PRIMARY_KINDS}
    tumours["site_key"] = [f"{k[1]}|{k[2]}" for k in keys]
    tumours["anatomical_site_label"] = [labeller.label(r) for _, r in tumours.iterrows()]
    tumours["site_category"] = ["primary" if k in primary_keys else "metastasis" for k in keys]
    return tumours
