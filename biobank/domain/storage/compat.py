"""Which storage formats may live at which temperature (DOMAIN.md §4): a table, not scattered ifs.

Frozen material (snap-frozen, OCT, RNAlater, frozen fluids and extracts, viable cryopreserved cells) needs -60 °C
or colder; viable cells belong in liquid nitrogen (a -80 °C freezer is tolerated with a warning, briefly);
FFPE blocks and slides stay at room temperature or in a fridge; fresh tissue goes to culture, never to storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from biobank.domain.storage.kinds import TemperatureClass as T
from biobank.domain.vocab import MaterialType, StorageFormat

ALLOWED: dict[StorageFormat, frozenset[T]] = {
    StorageFormat.snap_frozen: frozenset({T.minus80, T.ln}),
    StorageFormat.oct: frozenset({T.minus80, T.ln}),
    StorageFormat.rnalater: frozenset({T.minus80, T.ln}),
    StorageFormat.frozen: frozenset({T.minus80, T.ln}),
    StorageFormat.viable_cryo: frozenset({T.minus80, T.ln}),
    StorageFormat.ffpe: frozenset({T.rt, T.fridge}),
    StorageFormat.fresh: frozenset(),
}

#: Where a format should go when there is a choice.
PREFERRED: dict[StorageFormat, T] = {StorageFormat.viable_cryo: T.ln}

#: Materials that tolerate more than their format says: extracted DNA keeps at -20 °C.
MATERIAL_EXTRA: dict[MaterialType, frozenset[T]] = {MaterialType.dna: frozenset({T.minus20})}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    warning: str = ""


def check(storage_format: str, material_type: str, temperature: str | None) -> Verdict:
    """May a specimen of this format and material be stored at ``temperature`` (a MIABIS class)?"""
    fmt = StorageFormat(storage_format)
    if fmt is StorageFormat.fresh:
        return Verdict(False, "fresh material goes to culture or processing; it cannot be stored long-term")
    if temperature is None:
        return Verdict(False, "the container is not inside a temperature-controlled unit (freezer, tank, fridge, cabinet)")
    temp = T(temperature)
    allowed = set(ALLOWED[fmt])
    if material_type in MaterialType.__members__.values():
        allowed |= MATERIAL_EXTRA.get(MaterialType(material_type), frozenset())
    if temp not in allowed:
        wanted = " or ".join(sorted(t.value for t in allowed))
        return Verdict(False, f"{fmt.value} ({material_type}) must be stored at {wanted}, not {temp.value}")
    preferred = PREFERRED.get(fmt)
    if preferred is not None and temp is not preferred:
        return Verdict(True, warning=f"{fmt.value} is best kept at {preferred.value}; {temp.value} only short-term")
    return Verdict(True)


def suitable(storage_format: str, material_type: str, temperature: str | None) -> bool:
    return check(storage_format, material_type, temperature).allowed
