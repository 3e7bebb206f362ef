"""Input models at the service boundary (``XCreate``): one declaration of a write's fields, types and limits.

The command line, the dashboard forms, the import kinds and the API build one of these and hand it to the service;
the service takes it whole, so a field list is written once here rather than at every caller. Building one from
bad input raises the project's :class:`~biobank.domain.errors.ValidationError` naming the field, never pydantic's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, TypeAdapter, field_validator
from pydantic import ValidationError as PydanticError

from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import DonorStatus, ImagingResponse, Sex
from biobank.domain.vocab_derived import MycoplasmaResult

#: Free text a person types (notes, descriptions): at most this long.
Text = Annotated[str, StringConstraints(max_length=5000)]
#: A short label (a strain, a medium, a vocabulary value).
Label = Annotated[str, StringConstraints(max_length=200)]
#: A code (donor, case, specimen, model): its characters are the service's rule; here only its length.
Code = Annotated[str, StringConstraints(max_length=64)]

Input = TypeVar("Input", bound="ServiceInput")


class ServiceInput(BaseModel):
    """Base of every input model: unknown fields refused, values frozen once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

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
        try:
            return cls(**fields)
        except PydanticError as exc:
            raise _ours(exc, cls.__name__) from None


def _ours(exc: PydanticError, where: str) -> ValidationError:
    """Pydantic's first error as the project's, naming the field (its path in the model, else ``where``)."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or where
    return invalid(field, error.get("input"), error["msg"].removeprefix("Value error, "))


@cache
def _field_adapters(model: type[ServiceInput]) -> dict[str, TypeAdapter[Any]]:
    """A validator per field of ``model``: its annotation with its constraints, and the finite-number rule."""
    return {
        name: TypeAdapter(Annotated[info.annotation, *info.metadata, AfterValidator(_finite)])  # type: ignore[arg-type]  # a type built at run time from the field
        for name, info in model.model_fields.items()
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class ModelCreate(ServiceInput):
    """A new derived model (organoid, PDX, cell line) started from a living specimen."""

    source_code: Code
    kind: Label
    initiated_on: date
    quantity_used: float | None = None
    code: Code | None = None
    host_strain_name: Label | None = None
    host_strain_nomenclature: Label | None = None
    engraftment_site: Label | None = None
    engraftment_type: Label | None = None
    tumour_preparation: Label | None = None
    humanised: bool = False
    humanisation_type: Label | None = None
    medium: Label | None = None
    matrix: Label | None = None
    growth_properties: Label | None = None
    notes: Text | None = None


@dataclass(frozen=True)
class FormatRequest:
    """One storage format to make from a region, and how many pieces (tubes, cassettes) of it."""

    storage_format: str
    quantity: float
    unit: str
    count: int = 1
    material_type: str | None = None
    stabilised_at: datetime | None = None
    fixative: str | None = None
    fixation_end_at: datetime | None = None
    decalcification_agent: str | None = None
    decalcification_hours: float | None = None


class DonorCreate(ServiceInput):
    """The fields of ``register_donor``."""

    code: Code
    sex: Label = Sex.unknown
    age_at_death: int | None = None
    primary_diagnosis: Text | None = None
    primary_site_code: Code | None = None
    icdo3_topography: Label | None = None
    icdo3_morphology: Label | None = None
    diagnosis_days_before_death: int | None = None
    er_status: Label | None = None
    pr_status: Label | None = None
    her2_status: Label | None = None
    cause_of_death: Text | None = None
    hardy_scale: int | None = None
    status: Label = DonorStatus.enrolled


class AutopsyOpen(ServiceInput):
    """The fields of ``open_autopsy``."""

    donor_code: Code
    case_code: Code
    death_at: datetime | None
    refrigerated_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    institution: Label | None = None
    prosector: Label | None = None
    team: Label | None = None
    status: Label | None = None


class LesionCreate(ServiceInput):
    """The fields of ``add_lesion``."""

    donor_code: Code
    code: Code
    site_code: Code
    kind: Label
    laterality: Label | None = None
    bone_phenotype: Label | None = None
    size_mm: float | None = None
    imaging_response: Label = ImagingResponse.unknown
    er_status: Label | None = None
    pr_status: Label | None = None
    her2_status: Label | None = None
    description: Text | None = None


class RegionCollect(ServiceInput):
    """The fields of ``collect_region``."""

    case_code: Code
    kind: Label
    site_code: Code
    excised_at: datetime
    formats: Sequence[FormatRequest]
    lesion_code: Code | None = None
    region_label: Code | None = None
    laterality: Label | None = None
    tissue_status: Label | None = None
    distance_to_tumour_mm: float | None = None
    prosector: Label | None = None
    gross_description: Text | None = None


class PassageCreate(ServiceInput):
    """The fields of ``record_passage``."""

    model_code: Code
    passaged_on: date
    parent_label: Code | None = None
    label: Code | None = None
    mouse_or_vessel_id: Label | None = None
    latency_days: int | None = None
    doubling_time_hours: float | None = None
    notes: Text | None = None


class ModelQCCreate(ServiceInput):
    """The fields of ``record_model_qc``."""

    model_code: Code
    passage_label: Code
    tested_on: date
    identity_method: Label | None = None
    identity_match_pct: float | None = None
    mycoplasma: Label = MycoplasmaResult.not_tested
    mouse_content_pct: float | None = None
    histology_concordant: bool | None = None
    not_mouse_or_ebv_origin: bool | None = None
    notes: Text | None = None
