"""Derived models (organoids, PDX, cell lines): the models, their passages, the QC of a passage, and the specimens
a passage produced (``passage_specimens``), imported after the models and passages they come from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import select, text, tuple_
from sqlalchemy.orm import aliased
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.bulk import id_filter, insert_rows
from biobank.domain.codes import require_safe
from biobank.domain.errors import BiobankError, invalid
from biobank.domain.vocab import (
    CustodyKind,
    Fixative,
    Lineage,
    MaterialType,
    QuantityUnit,
    SpecimenStatus,
    StorageFormat,
)
from biobank.domain.vocab_derived import (
    ESTABLISHED_OR_BEYOND,
    STATUS_TRANSITIONS,
    VIABLE_SOURCE_FORMATS,
    EngraftmentType,
    GrowthProperties,
    IdentityMethod,
    Matrix,
    ModelKind,
    ModelStatus,
    MycoplasmaResult,
    TumourPreparation,
)
from biobank.imports import coerce as c
from biobank.imports.columns import (
    Column,
    Context,
    bool_col,
    date_col,
    datetime_col,
    int_col,
    num_col,
    pct_col,
    quantity_col,
    text_col,
    vocab_col,
)
from biobank.imports.kinds._shared import (
    custody_audited,
    each,
    existing_by,
    known,
    link_pending,
    specimen_quantities,
    stored_ids,
    template_rows,
)
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import (
    ConsentWithdrawal,
    CustodyEvent,
    DerivedModel,
    Donor,
    ModelPassage,
    ModelQC,
    Specimen,
    User,
)
from biobank.models.base import table_of
from biobank.services.checks import check_order, check_time
from biobank.services.derived import (
    CULTURE_FIELDS,
    PASSAGE_MATERIALS,
    PDX_FIELDS,
    check_passage_yield,
    check_qc_results,
    judge_qc,
    qc_requirements_met,
)
from biobank.services.donors import latest_consents
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate, SpecimenCorrection

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------- derived models


def matrix_col(name: str, help: str) -> Column:
    """The culture matrix: 'none' is a value here (no matrix), not an empty cell."""
    coercer = c.vocab(Matrix)

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        if isinstance(raw, str) and raw.strip().casefold() == Matrix.none.value:
            return c.Coerced(Matrix.none.value)
        result = coercer(raw)
        return c.Coerced(None if result.value is None else result.value.value, result.note)

    return Column(name, run, help, vocabulary=tuple(m.value for m in Matrix), type="vocabulary")


class SourceInfo(NamedTuple):
    id: int
    donor_id: int
    donor_code: str
    storage_format: str
    collected_at: datetime


def model_consent(res: Resolver, donor_ids: set[int]) -> set[int]:
    """Donors whose latest consent covers model derivation and who have not withdrawn (as ``require_consent``)."""
    latest = latest_consents()

    def fetch(batch: list[Any]) -> dict[int, bool]:
        consented = {r[0] for r in res.session.execute(
            select(latest.c.donor_id).where(latest.c.donor_id.in_(batch), latest.c.model_derivation.is_(True)))}
        withdrawn = {r[0] for r in res.session.execute(
            select(ConsentWithdrawal.donor_id).where(ConsentWithdrawal.donor_id.in_(batch)))}  # type: ignore[attr-defined,call-overload]  # SQLModel types the column as its Python value, not a SQL expression
        return {donor_id: donor_id in consented and donor_id not in withdrawn for donor_id in batch}

    return {donor_id for donor_id, ok in res.lookup("model_consent", donor_ids, fetch).items() if ok}


def noon(day: date) -> datetime:
    """A day as a time, as the models service records it (12:00 UTC)."""
    return datetime.combine(day, time(12), UTC)


class Models(Kind):
    name = "models"
    input_model = ModelCreate
    noun = "model"
    title = "Derived models (organoids, PDX, cell lines)"
    help = ("One row per model derived from a fresh or viable cryopreserved specimen of a donor who consented to model "
            "derivation. The row records the model's present state: its status with the dates that go with it "
            "(established_on for established or cryobanked, failed_on for failed, ended_on for discontinued). "
            "The source's remaining quantity is the specimens file's business. QC results are recorded with "
            "recording a QC result; an upsert that establishes a model needs the QC the settings require.")
    table = table_of(DerivedModel)
    order = 90
    key = ("code",)
    identity = frozenset({"donor_id", "source_specimen_id", "kind"})
    columns = (
        text_col("code", "Unique model code, e.g. RA0001-L02A-ORG1", required=True, model=ModelCreate),
        vocab_col("kind", ModelKind, "organoid, pdx or cell_line", required=True),
        text_col("source_code", "Code of the fresh or viable_cryo specimen it was derived from", required=True,
                 model=ModelCreate, targets=()),
        vocab_col("status", ModelStatus, "Status (empty: initiated)"),
        date_col("initiated_on", "Day of plating or first engraftment", required=True),
        date_col("established_on", "Day it was established (established, cryobanked, or discontinued after that)"),
        date_col("failed_on", "Day it failed (failed only)"),
        date_col("ended_on", "Day it was discontinued (discontinued only)"),
        text_col("host_strain_name", "PDX: host strain, e.g. NSG", model=ModelCreate),
        text_col("host_strain_nomenclature", "PDX: official strain nomenclature", model=ModelCreate),
        text_col("engraftment_site", "PDX: where it was engrafted, e.g. subcutaneous flank", model=ModelCreate),
        vocab_col("engraftment_type", EngraftmentType, "PDX: orthotopic or heterotopic"),
        vocab_col("tumour_preparation", TumourPreparation, "PDX: fragment or cell suspension"),
        bool_col("humanised", "PDX: humanised host (yes/no; empty: no)"),
        text_col("humanisation_type", "PDX: how the host was humanised", model=ModelCreate),
        text_col("medium", "Organoid or cell line: culture medium", model=ModelCreate),
        matrix_col("matrix", "Organoid or cell line: matrix"),
        vocab_col("growth_properties", GrowthProperties, "Organoid or cell line: how it grows"),
        text_col("notes", "Notes", model=ModelCreate),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        kind = v["kind"]
        if kind == ModelKind.pdx:
            if v.get("host_strain_name") is None:
                raise invalid("host_strain_name", None, "a PDX names its host strain (e.g. NSG)")
            for name in CULTURE_FIELDS:
                if v.get(name) is not None:
                    raise invalid(name, v[name], "applies to organoids and cell lines, not to a PDX")
        else:
            for name in PDX_FIELDS:
                if v.get(name) is not None:
                    raise invalid(name, v[name], f"applies to a PDX, not to a {kind}")
            if v.get("humanised"):
                raise invalid("humanised", "yes", f"only a PDX host is humanised, not a {kind}")
        if v.get("humanisation_type") is not None and not v.get("humanised"):
            raise invalid("humanisation_type", v["humanisation_type"], "given for a host that is not humanised")
        status = v.get("status") or ModelStatus.initiated.value
        v["status"] = status
        initiated = v["initiated_on"]
        for name in ("established_on", "failed_on", "ended_on"):
            check_time(name, v.get(name), after=[("initiated_on", initiated)])
        established, failed, ended = v.get("established_on"), v.get("failed_on"), v.get("ended_on")
        if status in (ModelStatus.established, ModelStatus.cryobanked) and established is None:
            raise invalid("established_on", None, f"a {status} model has the day it was established")
        if status == ModelStatus.failed and failed is None:
            raise invalid("failed_on", None, "a failed model has the day it failed")
        if status == ModelStatus.discontinued and ended is None:
            raise invalid("ended_on", None, "a discontinued model has the day it was discontinued")
        if failed is not None and status != ModelStatus.failed:
            raise invalid("failed_on", failed.isoformat(), f"only a failed model has one (status is {status})")
        if ended is not None and status != ModelStatus.discontinued:
            raise invalid("ended_on", ended.isoformat(), f"only a discontinued model has one (status is {status})")
        if established is not None and status not in ESTABLISHED_OR_BEYOND | {ModelStatus.discontinued}:
            raise invalid("established_on", established.isoformat(), f"a {status} model was not established")
        check_order("established_on", established, "ended_on", ended)

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session

        def fetch(batch: list[Any]) -> dict[str, SourceInfo]:
            statement = (
                select(Specimen.code, Specimen.id, Specimen.donor_id, Donor.code, Specimen.storage_format,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                       Specimen.collected_at)
                .join(Donor, Donor.id == Specimen.donor_id)
                .where(Specimen.code.in_(batch))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            )
            return {r[0]: SourceInfo(*r[1:]) for r in session.execute(statement)}

        sources = res.lookup("model_source", {r.values["source_code"] for r in rows}, fetch)
        consenting = model_consent(res, {s.donor_id for s in sources.values()})

        def build(row: Staged) -> None:
            v = row.values
            source = known(row, sources, "source_code", "specimen")
            if source.storage_format not in VIABLE_SOURCE_FORMATS:
                raise row.fail("source_code", f"{v['source_code']} is {source.storage_format}; a model needs living "
                               "material", expected="a fresh or viable_cryo specimen")
            if source.donor_id not in consenting:
                raise row.fail("source_code", f"donor {source.donor_code}: no consent to model derivation, or "
                               "consent was withdrawn", expected="a specimen of a donor who consented to model_derivation")
            check_time("initiated_on", v["initiated_on"], after=[("the source's collection", source.collected_at)])
            row.record = {
                "code": v["code"],
                "kind": v["kind"],
                "donor_id": source.donor_id,
                "source_specimen_id": source.id,
                "status": v["status"],
                "humanised": bool(v.get("humanised")),
                **{name: v.get(name) for name in (
                    "initiated_on", "established_on", "failed_on", "ended_on", *PDX_FIELDS, *CULTURE_FIELDS, "notes")},
            }

        each(rows, build)
        existing_by(res, self, rows, ("code",))
        for row in rows:
            if row.existing is None or row.record is None or row.existing["status"] == row.record["status"]:
                continue
            current, target = ModelStatus(row.existing["status"]), ModelStatus(row.record["status"])
            if target not in STATUS_TRANSITIONS[current]:
                options = ", ".join(sorted(s.value for s in STATUS_TRANSITIONS[current])) or "none (final)"
                row.error("status", f"model {row.values['code']} is {current}; allowed next: {options}",
                          expected=options)
                row.record = None
            elif target == ModelStatus.established:
                model = session.get(DerivedModel, row.existing["id"])
                assert model is not None
                missing = [name for name, ok in qc_requirements_met(session, model).items() if not ok]
                if missing:
                    row.error("status", f"model {model.code}: cannot be established without passing QC: "
                              f"{', '.join(missing)} (record its QC results first)",
                              expected="the QC the settings require")
                    row.record = None

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As starting a model does: a 'derived' custody event on the source specimen."""
        events = [
            {
                "specimen_id": rec["source_specimen_id"], "kind": CustodyKind.derived.value,
                "occurred_at": noon(rec["initiated_on"]), "user_id": actor.id if actor is not None else None,
                "from_location": None, "to_location": None,
                "note": f"model {rec['code']} ({rec['kind']}) initiated; imported",
            }
            for _id, rec in rows
        ]
        with custody_audited(session):
            insert_rows(session, table_of(CustodyEvent), events)

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(DerivedModel, Specimen.code)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
            .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)
        )
        yield from template_rows(self, session, statement, "source_code")


# -------------------------------------------------------------------------------------------------------- passages


class ModelInfo(NamedTuple):
    id: int
    kind: str
    donor_id: int
    initiated_on: date
    failed_on: date | None
    ended_on: date | None


class PassageInfo(NamedTuple):
    id: int | None  # None while the passage is only in this file
    number: int
    passaged_on: date


class Passages(Kind):
    name = "passages"
    input_model = PassageCreate
    noun = "passage"
    title = "Passages of derived models"
    help = ("One row per passage: P0 (no parent) is the first plating or engraftment; every later passage names its "
            "parent passage of the same model (which may be an earlier row of the same file) and its number is the "
            "parent's plus one. A PDX passage records latency in days, a culture its doubling time.")
    table = table_of(ModelPassage)
    order = 95
    key = ("model_code", "label")
    identity = frozenset({"model_id", "parent_passage_id", "number"})
    self_referencing = True
    columns = (
        text_col("model_code", "Code of the model", required=True, model=PassageCreate, targets=()),
        text_col("label", "Passage label, e.g. P0, P1, P2-B", required=True, model=PassageCreate),
        text_col("parent_label", "Label of the parent passage (empty for P0)", model=PassageCreate, targets=()),
        date_col("passaged_on", "Day of the passage", required=True),
        text_col("mouse_or_vessel_id", "Mouse or vessel identifier", model=PassageCreate),
        int_col("latency_days", "PDX: days to a palpable tumour", model=PassageCreate),
        num_col("doubling_time_hours", "Organoid or cell line: doubling time in hours", model=PassageCreate),
        date_col("distributed_on", "Day it was sent to a recipient"),
        # the recipient of a passage: the length of the column (distributing a passage takes no input model)
        text_col("distributed_to", "Recipient it was sent to", max_length=200),
        text_col("notes", "Notes", model=PassageCreate),
    )

    def natural(self, record: dict[str, Any]) -> Any:
        return (record["model_id"], record["label"])

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("label", v["label"])
        if v.get("parent_label") == v["label"]:
            raise invalid("parent_label", v["parent_label"], "a passage cannot be its own parent")
        on, to = v.get("distributed_on"), v.get("distributed_to")
        if (on is None) != (to is None):
            raise invalid("distributed_to" if to is None else "distributed_on", None,
                          "a distribution names both its recipient and its day")
        check_time("distributed_on", on, after=[("passaged_on", v["passaged_on"])])

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        in_file: dict[tuple[int, str], PassageInfo] = res.state.setdefault("passages", {})

        def fetch_models(batch: list[Any]) -> dict[str, ModelInfo]:
            statement = select(DerivedModel.code, DerivedModel.id, DerivedModel.kind, DerivedModel.donor_id,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                               DerivedModel.initiated_on, DerivedModel.failed_on, DerivedModel.ended_on).where(
                DerivedModel.code.in_(batch))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            return {r[0]: ModelInfo(*r[1:]) for r in session.execute(statement)}

        models = res.lookup("model", {r.values["model_code"] for r in rows}, fetch_models)
        parent_keys = {(models[r.values["model_code"]].id, r.values["parent_label"]) for r in rows
                       if r.values.get("parent_label") and r.values["model_code"] in models}

        def fetch_passages(batch: list[Any]) -> dict[Any, PassageInfo]:
            statement = select(ModelPassage.model_id, ModelPassage.label, ModelPassage.id, ModelPassage.number,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                               ModelPassage.passaged_on).where(tuple_(ModelPassage.model_id, ModelPassage.label).in_(batch))
            return {(r[0], r[1]): PassageInfo(*r[2:]) for r in session.execute(statement)}

        stored = res.lookup("passage", set(parent_keys) - set(in_file), fetch_passages)
        distributing = {models[r.values["model_code"]].donor_id for r in rows
                        if r.values.get("distributed_on") and r.values["model_code"] in models}
        consenting = model_consent(res, distributing) if distributing else set()

        def build(row: Staged) -> None:
            v = row.values
            model = known(row, models, "model_code", "model")
            on = v["passaged_on"]
            check_time("passaged_on", on, after=[("the model's initiation", model.initiated_on)])
            last = model.failed_on or model.ended_on
            if last is not None and on > last:
                raise row.fail("passaged_on", f"model {v['model_code']} stopped on {last}; no passage comes after",
                               value=on.isoformat(), expected=f"on or before {last}")
            pending: dict[str, Any] = {}
            parent: PassageInfo | None = None
            if v.get("parent_label") is not None:
                parent = in_file.get((model.id, v["parent_label"])) or stored.get((model.id, v["parent_label"]))
                if parent is None:
                    raise row.fail("parent_label", f"model {v['model_code']}: passage {v['parent_label']!r} not found "
                                   "in the database or in an earlier row of this file", expected="an existing passage label")
                check_time("passaged_on", on, after=[(f"its parent passage {v['parent_label']}", parent.passaged_on)])
                if parent.id is None:
                    pending["parent_passage_id"] = (model.id, v["parent_label"])
            if v.get("latency_days") is not None and model.kind != ModelKind.pdx:
                raise row.fail("latency_days", f"latency applies to a PDX; give a {model.kind} a doubling time",
                               expected="empty for an organoid or cell line")
            if v.get("doubling_time_hours") is not None and model.kind == ModelKind.pdx:
                raise row.fail("doubling_time_hours", "a PDX passage records its latency in days",
                               expected="empty for a PDX")
            if v.get("distributed_on") is not None and model.donor_id not in consenting:
                raise row.fail("distributed_to", f"model {v['model_code']}: the donor has no consent to model "
                               "derivation or withdrew it; the passage cannot be distributed",
                               expected="empty (not distributed)")
            number = parent.number + 1 if parent is not None else 0
            row.record = {
                "model_id": model.id,
                "number": number,
                "label": v["label"],
                "parent_passage_id": parent.id if parent is not None else None,
                **{name: v.get(name) for name in (
                    "passaged_on", "mouse_or_vessel_id", "latency_days", "doubling_time_hours", "distributed_on",
                    "distributed_to", "notes")},
            }
            row.pending = pending
            key = (model.id, v["label"])
            if key not in in_file:
                in_file[key] = PassageInfo(None, number, on)

        each(rows, build)
        existing_by(res, self, rows, ("model_id", "label"))
        stored_ids(rows, in_file, lambda r: (r.record["model_id"], r.values["label"]))  # type: ignore[index]  # only rows with a record are keyed
        link_pending(rows, "parent_passage_id", in_file, lambda r: r.pending["parent_passage_id"])

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(ModelPassage)
        statement = (
            select(ModelPassage, DerivedModel.code, parent.label)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
            .join(DerivedModel, DerivedModel.id == ModelPassage.model_id)
            .outerjoin(parent, parent.id == ModelPassage.parent_passage_id)
        )
        yield from template_rows(self, session, statement, "model_code", "parent_label")


def _passage_of(row: Staged, found: Mapping[tuple[str, str], T]) -> T:
    """What ``found`` holds for the row's model and passage; the row fails when the model has no such passage."""
    v = row.values
    hit = found.get((v["model_code"], v["passage_label"]))
    if hit is None:
        raise row.fail("passage_label", f"model {v['model_code']!r} has no passage {v['passage_label']!r} "
                       "(import models and passages first)", expected="an existing model and passage")
    return hit


def _passage_result_rows(kind: Kind, session: Session, table: type[Specimen] | type[ModelQC]) -> Iterator[dict[str, Any]]:
    """The template rows of what passages produced or were tested for (``table``: specimens, QC), each with its
    model's code and its passage's label."""
    statement = (
        select(table, DerivedModel.code, ModelPassage.label)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
        .join(ModelPassage, ModelPassage.id == table.passage_id)
        .join(DerivedModel, DerivedModel.id == ModelPassage.model_id)
    )
    return template_rows(kind, session, statement, "model_code", "passage_label")


# ----------------------------------------------------------------------------------------------- passage specimens


class PassageOrigin(NamedTuple):
    passage_id: int
    passaged_on: date
    model_id: int
    donor_id: int
    source_id: int
    site_id: int


class PassageSpecimens(Kind):
    name = "passage_specimens"
    noun = "specimen"
    title = "Specimens produced by a passage"
    help = ("One row per specimen a passage of a derived model produced (frozen vials, xenograft tissue, DNA), as "
            "recording a passage's specimens does: the donor and sampling site are the model's source specimen's, "
            "which is also the parent (a derivative). Import models and passages first.")
    table = table_of(Specimen)
    order = 97
    key = ("code",)
    identity = frozenset({"donor_id", "sampling_site_id", "parent_id", "passage_id", "lineage", "material_type"})
    columns = (
        text_col("code", "Unique specimen code, e.g. ORG-0001-P3-VC1", required=True, max_length=64),
        text_col("model_code", "Code of the model", required=True, model=PassageCreate, targets=()),
        text_col("passage_label", "Label of the passage that produced it, e.g. P3", required=True,
                 model=PassageCreate, field="label", targets=()),
        vocab_col("material_type", MaterialType, "Material: " + ", ".join(PASSAGE_MATERIALS), required=True),
        vocab_col("storage_format", StorageFormat, "Storage format (as the material allows)", required=True),
        quantity_col("quantity", "Quantity with its unit ('50 mg', '1000000 cells') or a number with the unit column",
                     required=True, targets=("quantity", "unit")),
        vocab_col("unit", QuantityUnit, "Unit when the quantity cell is a bare number"),
        quantity_col("quantity_remaining", "What is left (empty: the whole quantity)"),
        datetime_col("collected_at", "Time it was taken from the passage (empty: noon UTC on the passage day)"),
        datetime_col("stabilised_at", "Time frozen or fixed (empty: the time it was taken)"),
        int_col("freeze_thaw_count", "Freeze-thaw cycles so far", minimum=0),
        vocab_col("status", SpecimenStatus, "Status (empty: available, or depleted when nothing remains)"),
        text_col("barcode", "Barcode when different from the code", model=SpecimenCorrection),
        text_col("notes", "Notes", model=SpecimenCorrection),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        SpecimenCorrection.check_fields({k: x for k, x in v.items() if k not in ("quantity", "quantity_remaining")})
        require_safe("code", v["code"])
        check_passage_yield(v["material_type"], v["storage_format"])
        specimen_quantities(row, positive=True)
        check_order("collected_at", v.get("collected_at"), "stabilised_at", v.get("stabilised_at"))

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session

        def fetch_origins(batch: list[Any]) -> dict[Any, PassageOrigin]:
            statement = (
                select(DerivedModel.code, ModelPassage.label, ModelPassage.id, ModelPassage.passaged_on,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                       DerivedModel.id, DerivedModel.donor_id, Specimen.id, Specimen.sampling_site_id)
                .join(ModelPassage, ModelPassage.model_id == DerivedModel.id)
                .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)
                .where(tuple_(DerivedModel.code, ModelPassage.label).in_(batch))
            )
            return {(r[0], r[1]): PassageOrigin(*r[2:]) for r in session.execute(statement)}

        origins = res.lookup("passage_origin", {(r.values["model_code"], r.values["passage_label"]) for r in rows},
                             fetch_origins)
        consenting = model_consent(res, {origin.donor_id for origin in origins.values()})

        def build(row: Staged) -> None:
            v = row.values
            origin = _passage_of(row, origins)
            if origin.donor_id not in consenting:
                raise row.fail("model_code", f"model {v['model_code']}: the donor has no consent to model derivation "
                               "or withdrew it; nothing new can be recorded", expected="a model of a consenting donor")
            collected = v.get("collected_at") or noon(origin.passaged_on)
            check_order(f"passage {v['passage_label']}", origin.passaged_on, "collected_at", collected)
            stabilised = v.get("stabilised_at") or collected
            check_order("collected_at", collected, "stabilised_at", stabilised)
            row.record = {
                "code": v["code"],
                "donor_id": origin.donor_id,
                "sampling_site_id": origin.site_id,
                "parent_id": origin.source_id,
                "passage_id": origin.passage_id,
                "lineage": Lineage.derivative.value,
                "material_type": v["material_type"],
                "storage_format": v["storage_format"],
                "collected_at": collected,
                "stabilised_at": stabilised,
                "fixative": Fixative.nbf.value if v["storage_format"] == StorageFormat.ffpe else None,
                "quantity": v["_quantity"],
                "quantity_remaining": v["_remaining"],
                "unit": v["_unit"],
                "freeze_thaw_count": v.get("freeze_thaw_count") or 0,
                "status": v.get("status") or (SpecimenStatus.depleted.value if v["_remaining"] == 0
                                              else SpecimenStatus.available.value),
                "barcode": v.get("barcode"),
                "notes": v.get("notes"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("code",))

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """The chain of custody starts when the passage produced the specimen: one 'derived' event at that time."""
        ids = [new_id for new_id, _rec in rows]
        if not ids:
            return
        where, params = id_filter(session.get_bind().dialect.name, ids)
        with custody_audited(session):
            session.execute(text(
                "INSERT INTO custody_event (specimen_id, kind, occurred_at, user_id, note) "
                f"SELECT id, :derived, collected_at, :actor, 'imported' FROM specimen WHERE {where} ORDER BY id"
            ), {"derived": CustodyKind.derived.value, "actor": actor.id if actor is not None else None, **params})

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        yield from _passage_result_rows(self, session, Specimen)


# -------------------------------------------------------------------------------------------------------- model QC


class TestedPassage(NamedTuple):
    id: int
    passaged_on: date


class ModelQCResults(Kind):
    name = "model_qc"
    input_model = ModelQCCreate
    noun = "QC result"
    title = "QC of derived models"
    help = ("One row per QC of a tested passage, as recording a QC result does: identity (STR or SNP match to the "
            "donor's germline), mycoplasma, mouse content, histology, origin. Whether it passed is judged from the "
            "thresholds of the settings, as for a QC entered by hand. Import after the passages.")
    table = table_of(ModelQC)
    order = 96
    key = ("model_code", "passage_label", "tested_on")
    identity = frozenset({"passage_id", "tested_on"})
    columns = (
        text_col("model_code", "Code of the model", required=True, model=ModelQCCreate, targets=()),
        text_col("passage_label", "Label of the tested passage, e.g. P2", required=True, model=ModelQCCreate,
                 targets=()),
        date_col("tested_on", "Day of the test", required=True),
        vocab_col("identity_method", IdentityMethod, "How identity was tested (str or snp)"),
        pct_col("identity_match_pct", "Match to the donor's germline, %"),
        vocab_col("mycoplasma", MycoplasmaResult, "Mycoplasma result (empty: not tested)"),
        pct_col("mouse_content_pct", "Mouse content, %"),
        bool_col("histology_concordant", "Histology concordant with the tumour (yes/no)"),
        bool_col("not_mouse_or_ebv_origin", "Not of mouse or EBV-lymphoma origin (yes/no)"),
        text_col("notes", "Notes (empty: the reasons a failed QC failed)", model=ModelQCCreate),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        try:
            check_qc_results(**{name: v.get(name) for name in (
                "identity_method", "identity_match_pct", "mycoplasma", "mouse_content_pct", "histology_concordant",
                "not_mouse_or_ebv_origin")})
        except BiobankError as exc:  # "nothing measured" names no column: the template's first result column
            if exc.field == "qc":
                raise invalid("mycoplasma", None, "give at least one QC result") from exc
            raise

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        settings = get_settings()

        def fetch(batch: list[Any]) -> dict[Any, TestedPassage]:
            statement = (
                select(DerivedModel.code, ModelPassage.label, ModelPassage.id, ModelPassage.passaged_on)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                .join(ModelPassage, ModelPassage.model_id == DerivedModel.id)
                .where(tuple_(DerivedModel.code, ModelPassage.label).in_(batch))
            )
            return {(r[0], r[1]): TestedPassage(r[2], r[3]) for r in session.execute(statement)}

        passages = res.lookup("tested_passage", {(r.values["model_code"], r.values["passage_label"]) for r in rows},
                              fetch)

        def build(row: Staged) -> None:
            v = row.values
            passage = _passage_of(row, passages)
            if v["tested_on"] < passage.passaged_on:
                raise row.fail("tested_on", f"is before passage {v['passage_label']} ({passage.passaged_on})",
                               value=v["tested_on"].isoformat(), expected=f"on or after {passage.passaged_on}")
            mycoplasma = v.get("mycoplasma") or MycoplasmaResult.not_tested.value
            verdict = judge_qc(identity_match_pct=v.get("identity_match_pct"), mycoplasma=mycoplasma,
                               mouse_content_pct=v.get("mouse_content_pct"),
                               histology_concordant=v.get("histology_concordant"),
                               not_mouse_or_ebv_origin=v.get("not_mouse_or_ebv_origin"), settings=settings)
            row.record = {
                "passage_id": passage.id,
                "tested_on": v["tested_on"],
                "identity_method": v.get("identity_method"),
                "identity_match_pct": v.get("identity_match_pct"),
                "mycoplasma": mycoplasma,
                "mouse_content_pct": v.get("mouse_content_pct"),
                "histology_concordant": v.get("histology_concordant"),
                "not_mouse_or_ebv_origin": v.get("not_mouse_or_ebv_origin"),
                "passed": verdict.passed,
                "notes": v.get("notes") or ("; ".join(verdict.failures) or None),
            }

        each(rows, build)
        existing_by(res, self, rows, ("passage_id", "tested_on"))

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        yield from _passage_result_rows(self, session, ModelQC)
