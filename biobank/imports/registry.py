"""Every import kind by name: the one place that lists them. A new kind is a class in a module of
:mod:`biobank.imports.kinds` and one entry in :data:`KIND_CLASSES`."""

from __future__ import annotations

from biobank.domain.errors import BiobankError
from biobank.imports.kinds.collection import Autopsies, Lesions, SamplingSites
from biobank.imports.kinds.derived import ModelQCResults, Models, Passages, PassageSpecimens
from biobank.imports.kinds.donors import Consents, Donors, TreatmentLines
from biobank.imports.kinds.sequencing import SequencingResults
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

#: Kinds written through their services rather than into one table (``write_spilled``): importable, with a template,
#: but not part of a full load or its round trip (:func:`kind_names`).
SERVICE_KIND_CLASSES: tuple[type[Kind], ...] = (SequencingResults,)

#: Kinds read through a mapping file rather than a template (:mod:`biobank.imports.kinds.collection_log`): a lab's
#: own wide log becoming several tables; imported with ``--map``, no template, not part of a full load.
MAPPED_KIND_NAMES: tuple[str, ...] = ("collection_log",)

KINDS: dict[str, Kind] = {cls.name: cls() for cls in (*KIND_CLASSES, *SERVICE_KIND_CLASSES)}


def get_kind(name: str) -> Kind:
    key = name.strip().lower().replace("-", "_")
    kind = KINDS.get(key)
    if kind is None and key in MAPPED_KIND_NAMES:
        raise BiobankError(f"kind={name!r}: a collection log is read through a mapping file (biobank import "
                           f"{key} FILE --map MAP.toml, see docs/collection-log.md); it has no template", field="kind")
    if kind is None:
        raise BiobankError(f"kind={name!r}: not an import kind; choose one of {', '.join(import_kind_names())}")
    return kind


def kind_names() -> list[str]:
    """The table kinds, in the order of a full load (what an export of the whole biobank round-trips)."""
    names = {cls.name for cls in KIND_CLASSES}
    return [k.name for k in sorted(KINDS.values(), key=lambda k: k.order) if k.name in names]


def import_kind_names() -> list[str]:
    """Every kind a file can be imported as: the table kinds, the service kinds (``sequencing``), then the kinds read
    through a mapping file (``collection_log``)."""
    return [*kind_names(), *(cls.name for cls in SERVICE_KIND_CLASSES), *MAPPED_KIND_NAMES]
