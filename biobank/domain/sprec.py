"""The ISBER SPREC code of a specimen, derived from its raw pre-analytical data, never typed (DOMAIN.md §4).

Conventions stated here and in the docs:
- SPREC version 2.0 elements for solid samples: sample type, collection type, warm ischemia, cold ischemia,
  fixation type, fixation time, long-term storage.
- At autopsy nothing is clamped: warm and cold ischemia are ``N`` and the autopsy collection codes ``A06``…``A72``
  carry the post-mortem interval, measured from death to excision (collection).
- Bins are half-open: a lower bound belongs to its bin (exactly 6 h post mortem is ``A12``; exactly 15 min of
  fixation is ``B``).
- Fluid SPREC (blood, plasma, buffy coat, marrow) needs the tube type and centrifugation, which the tracker does not
  record; those specimens get no SPREC code rather than an invented one. Analytes and sections take the code of the
  primary specimen they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from biobank.domain.vocab import Fixative, MaterialType, StorageFormat

SPREC_VERSION = "2.0"

_HOUR = timedelta(hours=1)
_MIN = timedelta(minutes=1)

#: (code, upper bound exclusive) for autopsy collection types.
AUTOPSY_BINS: tuple[tuple[str, timedelta], ...] = (
    ("A06", 6 * _HOUR),
    ("A12", 12 * _HOUR),
    ("A24", 24 * _HOUR),
    ("A48", 48 * _HOUR),
    ("A72", 72 * _HOUR),
)
FIXATION_TIME_BINS: tuple[tuple[str, timedelta], ...] = (
    ("A", 15 * _MIN),
    ("B", 1 * _HOUR),
    ("C", 4 * _HOUR),
    ("D", 8 * _HOUR),
    ("E", 24 * _HOUR),
    ("F", 48 * _HOUR),
    ("G", 72 * _HOUR),
)
#: SPREC 2.0 warm/cold ischemia bins (minutes), for surgical material; autopsy material uses ``N``.
ISCHEMIA_BINS: tuple[tuple[str, timedelta], ...] = (
    ("A", 2 * _MIN),
    ("B", 10 * _MIN),
    ("C", 20 * _MIN),
    ("D", 30 * _MIN),
    ("E", 60 * _MIN),
)

SOLID_MATERIALS = frozenset({MaterialType.tissue, MaterialType.cells})


@dataclass(frozen=True)
class Sprec:
    code: str
    version: str = SPREC_VERSION

    def __str__(self) -> str:
        return f"{self.code} (SPREC {self.version})"


def _bin(value: timedelta, bins: tuple[tuple[str, timedelta], ...], beyond: str) -> str:
    for code, upper in bins:
        if value < upper:
            return code
    return beyond


def collection_type(death_at: datetime | None, collected_at: datetime | None) -> str:
    """Autopsy collection code from the time between death and excision; ``ZZZ`` beyond 72 h, ``XXX`` unknown."""
    if death_at is None or collected_at is None:
        return "XXX"
    interval = collected_at - death_at
    if interval < timedelta(0):
        raise ValueError("collected before death: not an autopsy collection")
    return _bin(interval, AUTOPSY_BINS, "ZZZ")


def ischemia(minutes: float | None, *, autopsy: bool = True) -> str:
    """Warm or cold ischemia code; ``N`` at autopsy (no clamping), ``X`` when unknown."""
    if autopsy:
        return "N"
    if minutes is None:
        return "X"
    return _bin(timedelta(minutes=minutes), ISCHEMIA_BINS, "F")


def sample_type(material_type: str, storage_format: str, *, bone: bool) -> str:
    material = MaterialType(material_type)
    if material is MaterialType.cells:
        if storage_format == StorageFormat.viable_cryo:
            return "CLN"
        if storage_format == StorageFormat.fresh:
            return "CEN"
        return "PEN"
    return "BON" if bone else "TIS"


def fixation_type(storage_format: str, fixative: str | None) -> str:
    fmt = StorageFormat(storage_format)
    if fixative is not None:
        return {
            Fixative.nbf: "NBF",
            Fixative.formalin: "FOR",
            Fixative.aldehyde: "ALD",
            Fixative.alcohol: "ETH",
            Fixative.paxgene: "PXT",
            Fixative.other: "ZZZ",
        }[Fixative(fixative)]
    return {
        StorageFormat.snap_frozen: "SNP",
        StorageFormat.oct: "OCT",
        StorageFormat.rnalater: "RNL",
        StorageFormat.fresh: "ZZZ",
        StorageFormat.viable_cryo: "ZZZ",
        StorageFormat.ffpe: "XXX",  # FFPE without a recorded fixative
        StorageFormat.frozen: "XXX",
    }[fmt]


def fixation_time(
    storage_format: str, fixative: str | None, start: datetime | None, end: datetime | None
) -> str:
    """Time in fixative; ``N`` when not fixed, ``X`` when the times are unknown, ``Z`` beyond 72 h."""
    fixed = fixative is not None or storage_format == StorageFormat.ffpe
    if not fixed:
        return "N"
    if start is None or end is None:
        return "X"
    duration = end - start
    if duration < timedelta(0):
        raise ValueError("fixation ends before it starts")
    return _bin(duration, FIXATION_TIME_BINS, "Z")


#: MIABIS temperature class -> long-term storage code for cryotubes.
_CRYO_BY_TEMPERATURE = {"LN": "C", "-60to-85": "D"}


def long_term_storage(storage_format: str, temperature: str | None = None) -> str:
    """Long-term storage code from the format and, when stored, the container's MIABIS temperature class."""
    fmt = StorageFormat(storage_format)
    if fmt is StorageFormat.ffpe:
        return "P"
    if fmt is StorageFormat.fresh:
        return "Z"
    if fmt is StorageFormat.oct:
        return "Z"  # cryomold: not one of SPREC's tube codes
    if temperature is not None:
        return _CRYO_BY_TEMPERATURE.get(temperature, "Z")
    return {
        StorageFormat.snap_frozen: "D",
        StorageFormat.rnalater: "D",
        StorageFormat.viable_cryo: "C",
        StorageFormat.frozen: "A",
    }.get(fmt, "X")


def sprec_code(
    *,
    material_type: str,
    storage_format: str,
    bone: bool,
    death_at: datetime | None,
    collected_at: datetime | None,
    stabilised_at: datetime | None,
    fixation_end_at: datetime | None,
    fixative: str | None,
    temperature: str | None = None,
) -> Sprec | None:
    """The SPREC code of a primary solid specimen; None for fluids (see module docstring)."""
    if MaterialType(material_type) not in SOLID_MATERIALS:
        return None
    parts = [
        sample_type(material_type, storage_format, bone=bone),
        collection_type(death_at, collected_at),
        ischemia(None),
        ischemia(None),
        fixation_type(storage_format, fixative),
        fixation_time(storage_format, fixative, stabilised_at, fixation_end_at),
        long_term_storage(storage_format, temperature),
    ]
    return Sprec("-".join(parts))
