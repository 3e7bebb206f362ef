"""Every import kind by name: the one place that lists them. A new kind is a class in a module of
:mod:`biobank.imports.kinds` and one entry in :data:`KIND_CLASSES`."""

from __future__ import annotations

from biobank.domain.errors import BiobankError
from biobank.imports.kinds.collection import Autopsies, Lesions, SamplingSites
from biobank.imports.kinds.derived import ModelQCResults, Models, Passages, PassageSpecimens
from biobank.imports.kinds.donors import Consents, Donors, TreatmentLines
from biobank.imports.kinds.specimens import PassageDescendants, Specimens
from biobank.imports.kinds.storage import Containers, Placements
from biobank.imports.spec import Kind

#: The kinds, in the order of a full load (each kind's ``order``).
KIND_CLASSES: tuple[type[Kind], ...] = (
    Donors,
    Consents,
    TreatmentLines,
    Autopsies,
    Lesions,
    SamplingSites,
    Specimens,
    Containers,
    Models,
    Passages,
    ModelQCResults,
    PassageSpecimens,
    PassageDescendants,
    Placements,
)

KINDS: dict[str, Kind] = {cls.name: cls() for cls in KIND_CLASSES}


def get_kind(name: str) -> Kind:
    kind = KINDS.get(name.strip().lower().replace("-", "_"))
    if kind is None:
        raise BiobankError(f"kind={name!r}: not an import kind; choose one of {', '.join(kind_names())}")
    return kind


def kind_names() -> list[str]:
    return [k.name for k in sorted(KINDS.values(), key=lambda k: k.order)]
