"""Input models at the service boundary (``XCreate``): one declaration of a write's fields, types and limits.

The command line, the dashboard forms, the import kinds and the API build one of these and hand it to the service;
the service takes it whole, so a field list is written once here rather than at every caller. Building one from
bad input raises the project's :class:`~biobank.domain.errors.ValidationError` naming the field, never pydantic's.

The limits are declared here once and read by everything else: the services check them, the import columns take
their lengths and ranges from them (:mod:`biobank.imports.columns`), and a form reads them for its widgets with
:func:`limits` (``limits(RegionCollect, "distance_to_tumour_mm").maximum``) or the constants (:data:`MAX_PIECES`,
:data:`MAX_QUANTITY`, :data:`MAX_DEPTH` ...). Text lengths are those of the database columns the text goes into
(a test holds them equal).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticError

from biobank.domain.errors import ValidationError, invalid, shown
from biobank.domain.vocab import DonorStatus, ImagingResponse, MaterialType, QuantityUnit, Sex
from biobank.domain.vocab_derived import MycoplasmaResult
from biobank.services.checks import future_reason

# --- plausibility limits (the numbers a form, a command and an import all share) ---------------------------------

#: Pieces (tubes, cassettes, vials) of one storage format made in one go.
MAX_PIECES = 50
#: The most of one specimen, by unit: a bigger number is a typing slip (100 g of tissue, 50 ml of blood...).
MAX_QUANTITY: Mapping[str, float] = MappingProxyType({
    QuantityUnit.mg.value: 100_000.0,
    QuantityUnit.ul.value: 50_000.0,
    QuantityUnit.cells.value: 1e10,
    QuantityUnit.sections.value: 1_000.0,
    QuantityUnit.blocks.value: 100.0,
    QuantityUnit.ng.value: 1e7,
})
#: Sequencing depth an analysis plan may ask for (x).
MAX_DEPTH = 10_000.0
#: Hours of decalcification (EDTA on dense bone can take weeks).
MAX_DECALCIFICATION_HOURS = 1_500.0
#: Largest lesion diameter, mm.
MAX_SIZE_MM = 500.0
#: Farthest normal tissue from the tumour, mm (across the body).
MAX_DISTANCE_MM = 2_000.0
#: Oldest age at death, years.
MAX_AGE = 130
#: Days from diagnosis (or from a treatment) to death.
MAX_DAYS_BEFORE_DEATH = 36_500
#: PDX latency to a palpable tumour, days.
MAX_LATENCY_DAYS = 1_000
#: Doubling time of a culture, hours.
MAX_DOUBLING_HOURS = 10_000.0
#: Concentration of an extract, ng/µl.
MAX_CONCENTRATION = 1e7
#: Nucleic-acid yield, ng.
MAX_YIELD_NG = 1e9
#: Elution volume of an extract, µl (a maxi-prep elutes in about 1 ml).
MAX_ELUTION_UL = 5_000.0

Input = TypeVar("Input", bound="ServiceInput")


def _not_future(value: datetime | date) -> datetime | date:
    reason = future_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


#: A time that has happened: not later than now plus the clock skew the settings allow.
PastTime = Annotated[datetime, AfterValidator(_not_future)]
#: A day that has come.
PastDay = Annotated[date, AfterValidator(_not_future)]
#: A percentage.
Percent = Annotated[float, Field(ge=0, le=100)]
#: A choice from a vocabulary: the service checks it against its list (and the list bounds its length).
Choice = str


class ServiceInput(BaseModel):
    """Base of every input model: unknown fields refused, values frozen once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)

    def __init__(self, /, **data: Any) -> None:
        # Built directly or with build(): bad input is always the project's error, never pydantic's.
        try:
            super().__init__(**data)
        except PydanticError as exc:
            raise _ours(exc, type(self).__name__) from None

    @field_validator("*", mode="after")
    @classmethod
    def _finite_numbers(cls, value: Any) -> Any:
        return _finite(value)

    @classmethod
    def check_fields(cls, values: Mapping[str, Any]) -> None:
        """Each given value against its field's declared type and limits, alone (for a row that names only some
        fields, as an import in upsert mode does); the first bad one raises the project's ValidationError."""
        adapters = _field_adapters(cls)
        for name, value in values.items():
            adapter = adapters.get(name)
            if adapter is None or value is None:
                continue
            try:
                adapter.validate_python(value)
            except PydanticError as exc:
                raise _ours(exc, name) from None

    @classmethod
    def build(cls: type[Input], **fields: Any) -> Input:
        """The input model of ``fields``, or the project's ValidationError naming the first bad field."""
        return cls(**fields)


def _path(loc: Sequence[Any]) -> str:
    """Pydantic's location as the services name fields: ``("formats", 0, "quantity")`` -> ``formats[1].quantity``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _number(value: Any) -> str:
    return shown(value) if isinstance(value, int | float) else str(value)


def _reason(error: Mapping[str, Any]) -> str:
    """Pydantic's complaint in the lab's words."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length'):,} characters"
    if kind == "greater_than_equal":
        return "cannot be negative" if ctx.get("ge") == 0 else f"must be at least {_number(ctx.get('ge'))}"
    if kind == "greater_than":
        return "must be positive" if ctx.get("gt") == 0 else f"must be more than {_number(ctx.get('gt'))}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx.get('le'))}"
    if kind == "less_than":
        return f"must be less than {_number(ctx.get('lt'))}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("datetime_parsing", "datetime_type", "datetime_from_date_parsing"):
        return "must be a date and time"
    if kind in ("date_parsing", "date_type", "date_from_datetime_inexact", "date_from_datetime_parsing"):
        return "must be a date"
    if kind in ("bool_parsing", "bool_type"):
        return "must be yes or no"
    if kind == "string_type":
        return "must be text"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this form"
    return str(error["msg"]).removeprefix("Value error, ")


def _ours(exc: PydanticError, where: str) -> ValidationError:
    """Pydantic's first error as the project's, naming the field (its path in the model, else ``where``)."""
    error = exc.errors()[0]
    field = _path(error["loc"]) or where
    value = None if error.get("type") == "missing" else error.get("input")  # a missing field's input is the whole form
    return invalid(field, value, _reason(error))


_ADAPTER_CONFIG = ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False)


@cache
def _field_adapters(model: type[ServiceInput]) -> dict[str, TypeAdapter[Any]]:
    """A validator per field of ``model``: its annotation with its constraints, and the finite-number rule."""
    return {
        name: TypeAdapter(
            Annotated[info.annotation, *info.metadata, AfterValidator(_finite)],  # type: ignore[arg-type]  # a type built at run time from the field
            config=_ADAPTER_CONFIG,
        )
        for name, info in model.model_fields.items()
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# --- reading the limits (forms, import columns) ------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What a field accepts: numbers between ``minimum`` and ``maximum`` (the minimum itself excluded when
    ``exclusive_minimum``), text of at most ``max_length`` characters. None: no such limit."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    max_length: int | None = None


def _annotation_of(model: type, name: str) -> tuple[Any, list[Any]]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        info = model.model_fields[name]
        return info.annotation, list(info.metadata)
    if is_dataclass(model):
        return typing.get_type_hints(model, include_extras=True)[name], []
    raise TypeError(f"{model!r} is neither an input model nor a dataclass")


def _constraints(annotation: Any, metadata: list[Any]) -> list[Any]:
    """Every constraint object in ``metadata`` and in the ``Annotated`` parts of ``annotation`` (through unions)."""
    found = list(metadata)
    stack = [annotation]
    while stack:
        current = stack.pop()
        if typing.get_origin(current) is Annotated:
            base, *extra = typing.get_args(current)
            stack.append(base)
            found.extend(extra)
        elif typing.get_origin(current) in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(current))
    flat: list[Any] = []
    for item in found:
        flat.extend(getattr(item, "metadata", None) or [item])
    return flat


@cache
def limits(model: type, field: str) -> Limits:
    """The limits ``model`` (an input model, or :class:`FormatRequest`) declares for ``field``."""
    annotation, metadata = _annotation_of(model, field)
    minimum = maximum = None
    exclusive = False
    max_length = None
    for item in _constraints(annotation, metadata):
        if getattr(item, "ge", None) is not None:
            minimum, exclusive = float(item.ge), False
        if getattr(item, "gt", None) is not None:
            minimum, exclusive = float(item.gt), True
        if getattr(item, "le", None) is not None:
            maximum = float(item.le)
        if getattr(item, "lt", None) is not None:
            maximum = float(item.lt)
        if getattr(item, "max_length", None) is not None:
            max_length = int(item.max_length)
    return Limits(minimum, maximum, exclusive, max_length)


def form_limits(model: type) -> dict[str, Limits]:
    """Every field of ``model`` with its limits (what a form's widgets are bounded by)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        names = list(model.model_fields)
    elif is_dataclass(model):
        names = [f.name for f in fields(model)]
    else:
        raise TypeError(f"{model!r} is neither an input model nor a dataclass")
    return {name: limits(model, name) for name in names}


def check_quantity(field: str, amount: float | None, unit: str | None, *, allow_zero: bool = False) -> None:
    """A quantity is positive (or zero, for what is left) and no more than :data:`MAX_QUANTITY` of its unit."""
    if amount is None:
        return
    if not math.isfinite(amount):
        raise invalid(field, amount, "must be a finite number")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise invalid(field, amount, "cannot be negative" if allow_zero else "must be positive")
    most = MAX_QUANTITY.get(str(unit)) if unit is not None else None
    if most is not None and amount > most:
        raise invalid(field, amount, f"is more than {shown(most)} {unit}, which no specimen holds; check the number and unit")


# --- the input models -----------------------------------------------------------------------------------------


class ModelCreate(ServiceInput):
    """A new derived model (organoid, PDX, cell line) started from a living specimen."""

    source_code: str = Field(max_length=64)
    kind: Choice
    initiated_on: PastDay
    quantity_used: float | None = Field(default=None, ge=0)
    code: str | None = Field(default=None, max_length=64)
    host_strain_name: str | None = Field(default=None, max_length=60)
    host_strain_nomenclature: str | None = Field(default=None, max_length=120)
    engraftment_site: str | None = Field(default=None, max_length=120)
    engraftment_type: Choice | None = None
    tumour_preparation: Choice | None = None
    humanised: bool = False
    humanisation_type: str | None = Field(default=None, max_length=120)
    medium: str | None = Field(default=None, max_length=200)
    matrix: Choice | None = None
    growth_properties: Choice | None = None
    notes: str | None = Field(default=None, max_length=1000)


@dataclass(frozen=True)
class FormatRequest:
    """One storage format to make from a region, and how many pieces (tubes, cassettes) of it.

    A plain dataclass (callers write ``FormatRequest("ffpe", 1, "blocks")``); its limits are checked when the
    :class:`RegionCollect` holding it is built, and by the collection service (the quantity against its unit's
    :data:`MAX_QUANTITY`).
    """

    storage_format: str
    quantity: Annotated[float, Field(gt=0)]
    unit: str
    count: Annotated[int, Field(ge=1, le=MAX_PIECES)] = 1
    material_type: str | None = None
    stabilised_at: PastTime | None = None
    fixative: str | None = None
    fixation_end_at: PastTime | None = None
    decalcification_agent: str | None = None
    decalcification_hours: Annotated[float, Field(ge=0, le=MAX_DECALCIFICATION_HOURS)] | None = None


class DonorCreate(ServiceInput):
    """The fields of ``register_donor``."""

    code: str | None = Field(default=None, max_length=32)  # None: the next code is generated (RA-0013)
    sex: Choice = Sex.unknown
    age_at_death: int | None = Field(default=None, ge=0, le=MAX_AGE)
    primary_diagnosis: str | None = Field(default=None, max_length=200)
    primary_site_code: str | None = Field(default=None, max_length=40)
    icdo3_topography: str | None = Field(default=None, max_length=8)
    icdo3_morphology: str | None = Field(default=None, max_length=10)
    diagnosis_days_before_death: int | None = Field(default=None, ge=0, le=MAX_DAYS_BEFORE_DEATH)
    er_status: Choice | None = None
    pr_status: Choice | None = None
    her2_status: Choice | None = None
    cause_of_death: str | None = Field(default=None, max_length=200)
    hardy_scale: int | None = Field(default=None, ge=0, le=4)
    status: Choice = DonorStatus.enrolled


class AutopsyOpen(ServiceInput):
    """The fields of ``open_autopsy``."""

    donor_code: str = Field(max_length=32)
    case_code: str = Field(max_length=32)
    death_at: PastTime | None
    refrigerated_at: PastTime | None = None
    start_at: PastTime | None = None
    end_at: PastTime | None = None
    institution: str | None = Field(default=None, max_length=200)
    prosector: str | None = Field(default=None, max_length=120)
    team: str | None = Field(default=None, max_length=300)
    status: Choice | None = None
    death_place: str | None = Field(default=None, max_length=200)
    death_reported_by: str | None = Field(default=None, max_length=120)
    death_reported_at: PastTime | None = None


class DeathCall(ServiceInput):
    """The fields of the death call (``cases.open_case``): the time of death, where, who reported it and when; the
    refrigeration time when known; who will do the autopsy. The case code is generated when not given."""

    donor_code: str = Field(max_length=32)
    death_at: PastTime | None
    death_place: str | None = Field(default=None, max_length=200)
    death_reported_by: str | None = Field(default=None, max_length=120)
    death_reported_at: PastTime | None = None
    refrigerated_at: PastTime | None = None
    case_code: str | None = Field(default=None, max_length=32)
    institution: str | None = Field(default=None, max_length=200)
    prosector: str | None = Field(default=None, max_length=120)
    team: str | None = Field(default=None, max_length=300)


class LesionCreate(ServiceInput):
    """The fields of ``add_lesion``."""

    donor_code: str = Field(max_length=32)
    code: str = Field(max_length=8)
    site_code: str = Field(max_length=40)
    kind: Choice
    laterality: Choice | None = None
    bone_phenotype: Choice | None = None
    size_mm: float | None = Field(default=None, gt=0, le=MAX_SIZE_MM)
    imaging_response: Choice = ImagingResponse.unknown
    er_status: Choice | None = None
    pr_status: Choice | None = None
    her2_status: Choice | None = None
    description: str | None = Field(default=None, max_length=500)


class RegionCollect(ServiceInput):
    """The fields of ``collect_region``."""

    # The formats are dataclasses the caller built: their declared limits are checked here, on every build.
    model_config = ConfigDict(revalidate_instances="always")

    case_code: str = Field(max_length=32)
    kind: Choice
    site_code: str = Field(max_length=40)
    excised_at: PastTime
    formats: Sequence[FormatRequest]
    lesion_code: str | None = Field(default=None, max_length=8)
    region_label: str | None = Field(default=None, max_length=8)
    laterality: Choice | None = None
    tissue_status: Choice | None = None
    distance_to_tumour_mm: float | None = Field(default=None, ge=0, le=MAX_DISTANCE_MM)
    prosector: str | None = Field(default=None, max_length=120)
    gross_description: str | None = Field(default=None, max_length=500)
    #: Who collected the specimens (a technician's name or initials; not the user entering them).
    collected_by: str | None = Field(default=None, max_length=120)


class PassageCreate(ServiceInput):
    """The fields of ``record_passage``."""

    model_code: str = Field(max_length=64)
    passaged_on: PastDay
    parent_label: str | None = Field(default=None, max_length=16)
    label: str | None = Field(default=None, max_length=16)
    mouse_or_vessel_id: str | None = Field(default=None, max_length=64)
    latency_days: int | None = Field(default=None, ge=0, le=MAX_LATENCY_DAYS)
    doubling_time_hours: float | None = Field(default=None, gt=0, le=MAX_DOUBLING_HOURS)
    notes: str | None = Field(default=None, max_length=1000)


class ModelQCCreate(ServiceInput):
    """The fields of ``record_model_qc``."""

    model_code: str = Field(max_length=64)
    passage_label: str = Field(max_length=16)
    tested_on: PastDay
    identity_method: Choice | None = None
    identity_match_pct: Percent | None = None
    mycoplasma: Choice = MycoplasmaResult.not_tested
    mouse_content_pct: Percent | None = None
    histology_concordant: bool | None = None
    not_mouse_or_ebv_origin: bool | None = None
    notes: str | None = Field(default=None, max_length=1000)


class SpecimenCorrection(ServiceInput):
    """The fields ``correct_specimen`` may change, with their limits (a correction names only some of them)."""

    collected_at: PastTime | None = None
    stabilised_at: PastTime | None = None
    fixation_end_at: PastTime | None = None
    fixative: Choice | None = None
    decalcification_agent: Choice | None = None
    decalcification_hours: float | None = Field(default=None, ge=0, le=MAX_DECALCIFICATION_HOURS)
    quantity: float | None = Field(default=None, ge=0)
    quantity_remaining: float | None = Field(default=None, ge=0)
    unit: Choice | None = None
    material_type: Choice | None = None
    storage_format: Choice | None = None
    concentration_ng_ul: float | None = Field(default=None, ge=0, le=MAX_CONCENTRATION)
    er_status: Choice | None = None
    pr_status: Choice | None = None
    her2_status: Choice | None = None
    notes: str | None = Field(default=None, max_length=1000)
    barcode: str | None = Field(default=None, max_length=64)


class SpecimenQC(ServiceInput):
    """The results ``record_qc`` records: pathology review and nucleic-acid QC, each within its scale."""

    tumour_cellularity_pct: Percent | None = None
    necrosis_pct: Percent | None = None
    yield_ng: float | None = Field(default=None, ge=0, le=MAX_YIELD_NG)
    a260_280: float | None = Field(default=None, ge=0, le=5)
    rin: float | None = Field(default=None, ge=0, le=10)
    din: float | None = Field(default=None, ge=0, le=10)
    dv200_pct: Percent | None = None
    concentration_ng_ul: float | None = Field(default=None, ge=0, le=MAX_CONCENTRATION)
    a260_230: float | None = Field(default=None, ge=0, le=5)
    pathology_reviewer: str | None = Field(default=None, max_length=120)
    slide_ref: str | None = Field(default=None, max_length=64)


class AliquotRequest(ServiceInput):
    """What ``aliquot`` splits off a specimen (the same for every specimen of a work list): the listed
    ``portions``, or ``count`` aliquots of ``portion`` each."""

    portions: Sequence[Annotated[float, Field(gt=0)]] | None = Field(default=None, max_length=MAX_PIECES)
    count: int | None = Field(default=None, ge=1, le=MAX_PIECES)
    portion: float | None = Field(default=None, gt=0)

    def amounts(self) -> list[float]:
        """The aliquot quantities, in order; the project's error naming the field when none, or both ways, were
        given."""
        if self.portions and (self.count is not None or self.portion is not None):
            raise invalid("portions", ",".join(f"{p:g}" for p in self.portions),
                          "give the portions, or a count and the quantity of each, not both")
        if self.portions:
            return [float(p) for p in self.portions]
        if self.portion is None:
            raise invalid("portion", None, "is required: give the quantity of each aliquot")
        return [float(self.portion)] * (self.count or 1)


#: The unit a new derivative is kept in unless one is given: extracts in ng, sections and cells counted, fluids in µl.
DEFAULT_UNITS: dict[str, str] = {
    MaterialType.dna.value: QuantityUnit.ng.value,
    MaterialType.rna.value: QuantityUnit.ng.value,
    MaterialType.section.value: QuantityUnit.sections.value,
    MaterialType.cells.value: QuantityUnit.cells.value,
    MaterialType.plasma.value: QuantityUnit.ul.value,
    MaterialType.buffy_coat.value: QuantityUnit.ul.value,
}


class DeriveRequest(ServiceInput):
    """The fields of ``derive``: new material (an extract, sections, cells) made from a specimen. The unit is the
    material's usual one (:data:`DEFAULT_UNITS`) unless given. For an extract, the yield follows from concentration ×
    elution volume unless stated, and the quantity from the yield (ng) or the elution volume (µl) unless stated."""

    material_type: Choice
    unit: Choice

    @model_validator(mode="before")
    @classmethod
    def _usual_unit(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("unit") in (None, "") and values.get("material_type") is not None:
            usual = DEFAULT_UNITS.get(str(values["material_type"]).strip())
            if usual is not None:
                return {**values, "unit": usual}
        return values

    parent_quantity_used: float = Field(ge=0)
    quantity: float | None = Field(default=None, gt=0)
    storage_format: Choice | None = None
    extraction_method: str | None = Field(default=None, max_length=40)
    extraction_kit: str | None = Field(default=None, max_length=120)
    elution_volume_ul: float | None = Field(default=None, gt=0, le=MAX_ELUTION_UL)
    concentration_ng_ul: float | None = Field(default=None, ge=0, le=MAX_CONCENTRATION)
    yield_ng: float | None = Field(default=None, ge=0, le=MAX_YIELD_NG)


class DisposeRequest(ServiceInput):
    """The fields of ``dispose``: why (it goes into the custody record)."""

    reason: str = Field(max_length=500)


class StorageNotes(ServiceInput):
    """The free text of ``check_out``, ``return_specimen`` and ``move_specimen``: a check-out's purpose (kept on the
    check-out) and a return's or a move's note (kept on its custody event, after the cycle count)."""

    purpose: str = Field(max_length=300)
    note: str = Field(max_length=400)


class OrderCreate(ServiceInput):
    """The fields of ``create_order``."""

    study: str = Field(max_length=120)
    recipient: str = Field(max_length=200)
    use: Choice
    purpose: str | None = Field(default=None, max_length=500)
    code: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=500)


class PlanSettings(ServiceInput):
    """What a draft plan may change later: its target depth and primary site."""

    target_depth: float | None = Field(default=None, gt=0, le=MAX_DEPTH)
    primary_site_code: str | None = Field(default=None, max_length=40)
    unknown_primary: bool = False


class PlanCreate(PlanSettings):
    """The fields of ``create_plan``."""

    code: str = Field(max_length=32)
    name: str = Field(max_length=200)
    purpose: Choice
    assay: Choice
    donor_codes: Sequence[str] = ()
    description: str | None = Field(default=None, max_length=1000)
    use_suggestion: bool = True


class ContainerCreate(ServiceInput):
    """The fields of ``add_container``."""

    code: str = Field(max_length=40)
    kind: Choice
    parent_code: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=120)
    note: str | None = Field(default=None, max_length=300)


class ConsentCreate(ServiceInput):
    """The fields of ``record_consent``."""

    donor_code: str = Field(max_length=32)
    given_by: Choice
    consented_on: PastDay
    scopes: frozenset[str] = frozenset()
    document_ref: str | None = Field(default=None, max_length=120)
    form_version: str | None = Field(default=None, max_length=40)
    taken_by: str | None = Field(default=None, max_length=120)
    change: Choice | None = None  # None: initial for the first version, else re-consent or scope change
    reason: str | None = Field(default=None, max_length=500)


class TreatmentLineCreate(ServiceInput):
    """The fields of ``add_treatment_line``."""

    donor_code: str = Field(max_length=32)
    line_number: int | None = Field(default=None, ge=1, le=99)  # None: the next line
    agents: str = Field(max_length=300)
    start_days_before_death: int | None = Field(default=None, ge=0, le=MAX_DAYS_BEFORE_DEATH)
    end_days_before_death: int | None = Field(default=None, ge=0, le=MAX_DAYS_BEFORE_DEATH)
    category: Choice | None = None
    intent: Choice | None = None
    best_response: Choice | None = None
    #: Or the calendar days, turned into days before death once the death is recorded (the dates are not kept).
    start_on: PastDay | None = None
    end_on: PastDay | None = None


class ClinicalEventCreate(ServiceInput):
    """The fields of ``add_clinical_event``: days before death, or the day it happened once the death is recorded."""

    donor_code: str = Field(max_length=32)
    kind: Choice
    days_before_death: int | None = Field(default=None, ge=0, le=MAX_DAYS_BEFORE_DEATH)
    occurred_on: PastDay | None = None
    site_code: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=300)


class WithdrawalCreate(ServiceInput):
    """The fields of ``withdraw_consent``: every scope (a full withdrawal, with what happens to the material) or
    some scopes (a partial withdrawal: a new consent version without them)."""

    donor_code: str = Field(max_length=32)
    requested_by: Choice
    withdrawn_at: PastTime
    reason: str = Field(max_length=500)
    scopes: frozenset[str] | None = None
    material: Choice | None = None
