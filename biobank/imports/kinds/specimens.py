"""Specimens: primaries from a sampling site, aliquots and derivatives from a parent (which may be an earlier row of
the same file); and ``passage_descendants``, the specimens made from what a passage produced, with the same columns
and rules, imported after ``passage_specimens`` (:mod:`biobank.imports.kinds.derived`).

Historic spreadsheets record the present state, so a specimen row carries its own remaining quantity and status:
importing an aliquot does not take its quantity from the parent again (the parent's row says what is left)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text, tuple_
from sqlalchemy.orm import aliased
from sqlmodel import Session

from biobank.db.bulk import id_filter
from biobank.db.engine import UTCDateTime
from biobank.domain.codes import require_safe
from biobank.domain.errors import invalid
from biobank.domain.vocab import (
    CustodyKind,
    DecalcificationAgent,
    Fixative,
    Lineage,
    MaterialType,
    QuantityUnit,
    SiteKind,
    SpecimenStatus,
    StorageFormat,
)
from biobank.imports.columns import datetime_col, int_col, num_col, pct_col, quantity_col, text_col, vocab_col
from biobank.imports.kinds._shared import (
    custody_audited,
    donor_of,
    donors,
    each,
    existing_by,
    link_pending,
    receptor_cols,
    specimen_quantities,
    stored_ids,
    template_rows,
)
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import Donor, SamplingSite, Specimen, User
from biobank.models.base import table_of, utcnow
from biobank.services.checks import check_order
from biobank.services.inputs import DonorCreate, SpecimenCorrection, SpecimenQC
from biobank.services.specimens import DERIVABLE

# ------------------------------------------------------------------------------------------------------- specimens


def check_specimen_values(values: dict[str, Any]) -> None:
    """A specimen row's values against what the services declare for them: the limits of a correction and of QC
    results, and no time in the future."""
    SpecimenCorrection.check_fields({k: v for k, v in values.items() if k not in ("quantity", "quantity_remaining")})
    SpecimenQC.check_fields(values)


class ParentInfo(NamedTuple):
    id: int | None  # None while the parent is only in this file
    donor_id: int
    donor_code: str
    site_id: int
    site_code: str
    site_kind: str
    material_type: str
    unit: str
    collected_at: datetime


class SiteRef(NamedTuple):
    id: int
    kind: str
    excised_at: datetime


#: Material of a primary specimen by sampling-site kind (as the collection service chooses).
DEFAULT_MATERIAL = {
    SiteKind.tumour_region.value: MaterialType.tissue.value,
    SiteKind.normal_tissue.value: MaterialType.tissue.value,
    SiteKind.germline_blood.value: MaterialType.whole_blood.value,
    SiteKind.premortem_blood.value: MaterialType.whole_blood.value,
    SiteKind.bone_marrow.value: MaterialType.bone_marrow.value,
}


SPECIMEN_VALUE_COLUMNS = (
    "stabilised_at", "fixation_end_at", "fixative", "decalcification_agent", "decalcification_hours",
    "concentration_ng_ul", "barcode", "er_status", "pr_status", "her2_status", "tumour_cellularity_pct",
    "necrosis_pct", "pathology_reviewer", "yield_ng", "a260_280", "rin", "din", "dv200_pct", "notes", "collected_by",
)


class Specimens(Kind):
    name = "specimens"
    noun = "specimen"
    title = "Specimens"
    help = ("One row per specimen. A primary names its donor and sampling site; an aliquot or derivative names its "
            "parent_code instead (the parent may be an earlier row of the same file). Quantities may carry their "
            "unit ('5 mg', '200 ul', '0.2 ml'); the row records the present state (remaining quantity, status).")
    table = table_of(Specimen)
    order = 70
    key = ("code",)
    identity = frozenset({"donor_id", "sampling_site_id", "parent_id", "lineage"})
    self_referencing = True
    after_insert_later = True  # the custody events: no later row's lookup or rule reads them
    columns = (
        # a specimen's own code, its site and parent are made by the services (no input model takes them): the
        # lengths of their columns
        text_col("code", "Unique specimen code, e.g. RA0001-L01A-SF1", required=True, max_length=64),
        text_col("donor_code", "Donor code (primary specimens; for others it must match the parent's)",
                 model=DonorCreate, field="code"),
        text_col("sampling_site", "Sampling-site code of a primary, e.g. L01-A or GB1", max_length=16,
                 targets=()),
        text_col("parent_code", "Parent specimen of an aliquot or derivative", max_length=64, targets=()),
        vocab_col("lineage", Lineage, "primary, aliquot or derivative (empty: from the parent and material)"),
        vocab_col("material_type", MaterialType, "Material (empty: from the site kind or the parent)"),
        vocab_col("storage_format", StorageFormat, "Storage format ('snap frozen', 'LN2', 'FFPE block'...)", required=True),
        datetime_col("collected_at", "Time collected (empty: the site's excision time or the parent's)"),
        datetime_col("stabilised_at", "Time into liquid nitrogen, fixative or medium"),
        datetime_col("fixation_end_at", "End of fixation"),
        vocab_col("fixative", Fixative, "Fixative (FFPE without one: nbf)"),
        vocab_col("decalcification_agent", DecalcificationAgent, "Decalcification agent (bone)"),
        num_col("decalcification_hours", "Hours of decalcification", model=SpecimenCorrection),
        quantity_col("quantity", "Quantity with its unit ('50 mg') or a number with the unit column", required=True,
                     targets=("quantity", "unit")),
        vocab_col("unit", QuantityUnit, "Unit when the quantity cell is a bare number"),
        quantity_col("quantity_remaining", "What is left (empty: the whole quantity)"),
        quantity_col("parent_quantity_used", "What making it took from the parent, in the parent's unit"),
        num_col("concentration_ng_ul", "Concentration of an analyte, ng/µl", model=SpecimenCorrection),
        int_col("freeze_thaw_count", "Freeze-thaw cycles so far", minimum=0),
        vocab_col("status", SpecimenStatus, "Status (empty: available, or depleted when nothing remains)"),
        text_col("barcode", "Barcode when different from the code", model=SpecimenCorrection),
        *receptor_cols("on this specimen"),
        pct_col("tumour_cellularity_pct", "Tumour cellularity, %"),
        pct_col("necrosis_pct", "Necrosis, %"),
        text_col("pathology_reviewer", "Who reviewed the pathology", model=SpecimenQC),
        num_col("yield_ng", "Nucleic-acid yield, ng", model=SpecimenQC),
        num_col("a260_280", "A260/280", model=SpecimenQC),
        num_col("rin", "RIN (RNA only)", model=SpecimenQC),
        num_col("din", "DIN (DNA only)", model=SpecimenQC),
        pct_col("dv200_pct", "DV200, %"),
        text_col("notes", "Notes", model=SpecimenCorrection),
        text_col("collected_by", "Who collected it (the technician's name or initials; not the user entering the row)",
                 max_length=120),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        check_specimen_values(v)
        require_safe("code", v["code"])
        parent, lineage = v.get("parent_code"), v.get("lineage")
        if parent is None:
            if lineage not in (None, Lineage.primary):
                raise invalid("parent_code", None, f"an {lineage} names its parent specimen")
            if not v.get("donor_code") or not v.get("sampling_site"):
                column = "donor_code" if not v.get("donor_code") else "sampling_site"
                raise invalid(column, None, "a primary specimen names its donor and sampling site")
        elif lineage == Lineage.primary:
            raise invalid("parent_code", parent, "a primary specimen has no parent")
        elif parent == v["code"]:
            raise invalid("parent_code", parent, "a specimen cannot be its own parent")
        specimen_quantities(row, positive=parent is None)
        check_order("stabilised_at", v.get("stabilised_at"), "fixation_end_at", v.get("fixation_end_at"))
        if v.get("fixation_end_at") is not None and v.get("stabilised_at") is None:
            raise invalid("fixation_end_at", v["fixation_end_at"].isoformat(), "needs the time fixation started")
        if v.get("decalcification_hours") is not None and v.get("decalcification_agent") is None:
            raise invalid("decalcification_hours", v["decalcification_hours"], "name the decalcification agent")
        if v["storage_format"] == StorageFormat.ffpe and v.get("fixative") is None:
            v["fixative"] = Fixative.nbf.value

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        in_file: dict[str, ParentInfo] = res.state.setdefault("specimens", {})
        session = res.session
        parent_codes = {r.values["parent_code"] for r in rows if r.values.get("parent_code")} - set(in_file)

        def fetch_parents(batch: list[Any]) -> dict[str, ParentInfo]:
            d, s = aliased(Donor), aliased(SamplingSite)
            statement = (
                select(Specimen.code, Specimen.id, Specimen.donor_id, d.code, Specimen.sampling_site_id, s.code,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                       s.kind, Specimen.material_type, Specimen.unit, Specimen.collected_at)
                .join(d, d.id == Specimen.donor_id)
                .join(s, s.id == Specimen.sampling_site_id)
                .where(Specimen.code.in_(batch))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            )
            return {r[0]: ParentInfo(*r[1:]) for r in session.execute(statement)}

        parents = res.lookup("specimen", parent_codes, fetch_parents)
        donor_codes = {r.values["donor_code"] for r in rows if r.values.get("donor_code")}
        donor_codes |= {p.donor_code for p in parents.values()}
        found = donors(res, donor_codes)
        site_keys = {(found[r.values["donor_code"]].id, r.values["sampling_site"])
                     for r in rows if r.values.get("sampling_site") and r.values.get("donor_code") in found}

        def fetch_sites(batch: list[Any]) -> dict[Any, SiteRef]:
            statement = select(SamplingSite.donor_id, SamplingSite.code, SamplingSite.id, SamplingSite.kind,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                               SamplingSite.excised_at).where(tuple_(SamplingSite.donor_id, SamplingSite.code).in_(batch))
            return {(r[0], r[1]): SiteRef(r[2], r[3], r[4]) for r in session.execute(statement)}

        sites = res.lookup("sampling_site", site_keys, fetch_sites)
        # The value columns this file gives (and the fixative, which the checks fill in): the others stay NULL.
        present = res.state.get("present", SPECIMEN_VALUE_COLUMNS)
        value_names = [name for name in SPECIMEN_VALUE_COLUMNS if name in present or name == "fixative"]

        def build(row: Staged) -> None:
            v = row.values
            parent_code = v.get("parent_code")
            pending: dict[str, Any] = {}
            parent: ParentInfo | None = None
            if parent_code is None:
                donor = donor_of(row, found)
                site = sites.get((donor.id, v["sampling_site"]))
                if site is None:
                    raise row.fail("sampling_site", f"donor {donor.code}: sampling site {v['sampling_site']!r} not "
                                   "found (import sampling sites first)", expected="a sampling site of this donor")
                lineage = Lineage.primary.value
                material = v.get("material_type") or DEFAULT_MATERIAL[site.kind]
                collected = v.get("collected_at") or site.excised_at
                site_id, site_code, site_kind = site.id, v["sampling_site"], site.kind
            else:
                parent = in_file.get(parent_code) or parents.get(parent_code)
                if parent is None:
                    raise row.fail("parent_code", f"parent specimen {parent_code!r} not found in the database or in "
                                   "an earlier row of this file", expected="an existing specimen code")
                if parent.id is None:
                    pending["parent_id"] = parent_code
                known = donor_of(row, found, "donor_code") if v.get("donor_code") else found.get(parent.donor_code)
                if known is None:
                    raise row.fail("parent_code", f"donor of {parent_code} not found")
                donor = known
                if donor.id != parent.donor_id:
                    raise row.fail("donor_code", f"the parent {parent_code} belongs to donor {parent.donor_code}",
                                   expected=parent.donor_code)
                if donor.withdrawn:
                    raise row.fail("donor_code", f"donor {donor.code}: consent was withdrawn; nothing new can be recorded")
                if v.get("sampling_site") not in (None, parent.site_code):
                    raise row.fail("sampling_site", f"the parent {parent_code} is from {parent.site_code}",
                                   expected=parent.site_code)
                material = v.get("material_type") or parent.material_type
                lineage = v.get("lineage") or (Lineage.aliquot.value if material == parent.material_type
                                               else Lineage.derivative.value)
                if lineage == Lineage.aliquot and material != parent.material_type:
                    raise row.fail("material_type", f"an aliquot is the parent's material ({parent.material_type})",
                                   expected=parent.material_type)
                if lineage == Lineage.derivative and material not in DERIVABLE.get(parent.material_type, set()):
                    raise row.fail("material_type", f"{material} cannot be derived from {parent.material_type}",
                                   expected=", ".join(sorted(DERIVABLE.get(parent.material_type, set()))) or "nothing")
                if lineage == Lineage.aliquot and v["_unit"] != parent.unit:
                    raise row.fail("quantity", f"an aliquot is measured in the parent's unit ({parent.unit})",
                                   expected=parent.unit)
                used = v.get("parent_quantity_used")
                if used is not None and used[1] not in (None, parent.unit):
                    raise row.fail("parent_quantity_used", f"must be in the parent's unit ({parent.unit})",
                                   expected=parent.unit)
                collected = v.get("collected_at") or parent.collected_at
                site_id, site_code, site_kind = parent.site_id, parent.site_code, parent.site_kind
            if donor.death_at is not None and site_kind != SiteKind.premortem_blood and collected < donor.death_at:
                raise row.fail("collected_at", "a specimen cannot be collected before death (only a pre-mortem blood "
                               "draw can)", value=collected.isoformat(), expected=f"at or after {donor.death_at.isoformat()}")
            check_order("collected_at", collected, "stabilised_at", v.get("stabilised_at"))
            if material != MaterialType.rna and v.get("rin") is not None:
                raise row.fail("rin", "RIN is measured on RNA", expected="empty unless the material is rna")
            if material != MaterialType.dna and v.get("din") is not None:
                raise row.fail("din", "DIN is measured on DNA", expected="empty unless the material is dna")
            used = v.get("parent_quantity_used")
            status = v.get("status") or (SpecimenStatus.depleted.value if v["_remaining"] == 0
                                         else SpecimenStatus.available.value)
            row.record = {
                "code": v["code"],
                "donor_id": donor.id,
                "sampling_site_id": site_id,
                "parent_id": parent.id if parent is not None else None,
                "lineage": lineage,
                "material_type": material,
                "storage_format": v["storage_format"],
                "collected_at": collected,
                "quantity": v["_quantity"],
                "quantity_remaining": v["_remaining"],
                "unit": v["_unit"],
                "parent_quantity_used": None if used is None else used[0],
                "freeze_thaw_count": v.get("freeze_thaw_count") or 0,
                "status": status,
                **{name: v.get(name) for name in value_names},
            }
            row.pending = pending
            in_file[v["code"]] = ParentInfo(None, donor.id, donor.code, site_id, site_code, site_kind, material,
                                            v["_unit"], collected)

        each(rows, build)
        existing_by(res, self, rows, ("code",))
        stored_ids(rows, in_file, lambda r: r.values["code"])
        link_pending(rows, "parent_id", in_file, lambda r: r.values["parent_code"])

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """The chain of custody starts at collection: one event per imported specimen (a primary's at its collection
        time, an aliquot's or derivative's now), written by the database from the rows just inserted."""
        ids = [new_id for new_id, _rec in rows]
        if not ids:
            return
        where, params = id_filter(session.get_bind().dialect.name, ids)
        statement = text(
            "INSERT INTO custody_event (specimen_id, kind, occurred_at, user_id, note) "
            "SELECT id, CASE lineage WHEN :primary THEN :collected WHEN :aliquot THEN :aliquoted ELSE :derived END, "
            f"CASE WHEN lineage = :primary THEN collected_at ELSE :now END, :actor, 'imported' FROM specimen WHERE {where} "
            "ORDER BY id"
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        with custody_audited(session):
            session.execute(statement, {
                "primary": Lineage.primary.value, "aliquot": Lineage.aliquot.value,
                "collected": CustodyKind.collected.value, "aliquoted": CustodyKind.aliquoted.value,
                "derived": CustodyKind.derived.value, "now": utcnow(), "actor": actor.id if actor is not None else None,
                **params,
            })

    @staticmethod
    def _exported(tree: Any) -> Any:
        """Which specimens this kind's export holds: not those a passage produced nor anything made from them."""
        return Specimen.id.not_in(select(tree.c.id))  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(Specimen)
        statement = (
            select(Specimen, Donor.code, SamplingSite.code, parent.code)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
            .join(Donor, Donor.id == Specimen.donor_id)
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
            .outerjoin(parent, parent.id == Specimen.parent_id)
            .where(self._exported(from_passages()))
        )
        yield from template_rows(self, session, statement, "donor_code", "sampling_site", "parent_code")


# ------------------------------------------------------------------------------------------------ passage descendants


def from_passages() -> Any:
    """A recursive CTE of the ids of the specimens passages produced and of everything made from them."""
    tree = select(Specimen.id).where(Specimen.passage_id.is_not(None)).cte("from_passage", recursive=True)  # type: ignore[call-overload,union-attr]  # SQLModel types the column as its Python value, not a SQL expression
    child = aliased(Specimen)
    return tree.union_all(select(child.id).where(child.parent_id == tree.c.id))  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression


class PassageDescendants(Specimens):
    name = "passage_descendants"
    title = "Specimens made from passage specimens"
    help = ("Aliquots and derivatives of the specimens a passage produced (DNA from an organoid vial, sections of "
            "xenograft tissue): the columns and rules of 'specimens', imported after 'passage_specimens' so that "
            "their parents exist. The export of 'specimens' leaves these rows out.")
    order = 98

    @staticmethod
    def _exported(tree: Any) -> Any:
        return Specimen.id.in_(select(tree.c.id)) & Specimen.passage_id.is_(None)  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
