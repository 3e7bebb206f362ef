"""What an autopsy collects from: the cases (autopsies), the donors' lesions, and the sampling sites (regions of
lesions, normal tissue, blood, marrow) specimens are taken from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from sqlalchemy import select, tuple_, update
from sqlmodel import Session

from biobank.domain.codes import LESION_CODE, REGION_LABEL, SITE_PREFIX, region_site_code, require_safe
from biobank.domain.errors import invalid, sentence, shown_time
from biobank.domain.vocab import (
    AutopsyStatus,
    BonePhenotype,
    DonorStatus,
    ImagingResponse,
    Laterality,
    LesionKind,
    SiteKind,
    TissueStatus,
)
from biobank.imports.columns import datetime_col, num_col, text_col, vocab_col
from biobank.imports.kinds._shared import (
    donor_of,
    donors,
    each,
    existing_by,
    laterality,
    receptor_cols,
    site_of,
    template_rows,
    with_defaults,
)
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import Autopsy, Donor, Lesion, SamplingSite, User
from biobank.models.audit import record_bulk
from biobank.models.base import table_of, utcnow
from biobank.services.checks import check_order
from biobank.services.collection import check_autopsy_times
from biobank.services.inputs import AutopsyOpen, LesionCreate, RegionCollect

# ------------------------------------------------------------------------------------------------------ autopsies


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _followed_status(row: Staged) -> str:
    """An upserted case's status from its times as they will be (the file's where it has the column, else the
    recorded ones): an end completes it, a start puts it in progress; otherwise it keeps its status."""
    assert row.record is not None and row.existing is not None
    merged = {name: row.record.get(name) if name in row.raw else row.existing.get(name) for name in ("start_at", "end_at")}
    if merged["end_at"] is not None:
        return AutopsyStatus.complete.value
    if merged["start_at"] is not None:
        return AutopsyStatus.in_progress.value
    return str(row.existing.get("status") or row.record["status"])


class Autopsies(Kind):
    name = "autopsies"
    input_model = AutopsyOpen
    noun = "autopsy"
    title = "Autopsies (cases)"
    help = "One row per case; status follows the times unless given (start: in progress, end: complete)."
    table = table_of(Autopsy)
    order = 40
    key = ("case_code",)
    identity = frozenset({"donor_id"})
    columns = (
        text_col("case_code", "Case code, e.g. RAP-2024-001", required=True, model=AutopsyOpen),
        text_col("donor_code", "Code of the donor", required=True, model=AutopsyOpen),
        datetime_col("death_at", "Time of death"),
        datetime_col("refrigerated_at", "Time the body was refrigerated"),
        # Status follows the times on upsert too (when the file gives no status): a start or an end sets it.
        replace(datetime_col("start_at", "Autopsy start"), targets=("start_at", "status")),
        replace(datetime_col("end_at", "Autopsy end"), targets=("end_at", "status")),
        text_col("institution", "Institution", model=AutopsyOpen),
        text_col("prosector", "Prosector", model=AutopsyOpen),
        text_col("team", "Team", model=AutopsyOpen),
        vocab_col("status", AutopsyStatus, "Status (empty: from the times)"),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("case_code", v["case_code"])
        check_autopsy_times(v.get("death_at"), v.get("refrigerated_at"), v.get("start_at"), v.get("end_at"))
        if v.get("status") is None:
            v["status"] = (AutopsyStatus.complete if v.get("end_at") else
                           AutopsyStatus.in_progress if v.get("start_at") else AutopsyStatus.scheduled).value
        if v["status"] != AutopsyStatus.scheduled and v.get("death_at") is None:
            raise invalid("death_at", None, f"an autopsy {v['status']} needs the time of death")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})
        in_file: dict[int, int] = res.state.setdefault("autopsy_donors", {})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            if donor.case_code is not None and donor.case_code != row.values["case_code"]:
                raise row.fail("donor_code", f"donor {donor.code} already has an autopsy ({donor.case_code})",
                               expected="one autopsy per donor")
            first = in_file.setdefault(donor.id, row.number)
            if first != row.number:
                raise row.fail("donor_code", f"donor {donor.code} already has an autopsy in row {first}",
                               expected="one autopsy per donor")
            row.record = {
                "donor_id": donor.id,
                **with_defaults(row, {name: None for name in (
                    "case_code", "death_at", "refrigerated_at", "start_at", "end_at", "institution", "prosector",
                    "team", "status")}),
            }

        each(rows, build)
        existing_by(res, self, rows, ("case_code",))
        for row in rows:
            if row.existing is not None and row.record is not None and _blank(row.raw.get("status")):
                row.record["status"] = _followed_status(row)

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As opening a case does: a death makes an enrolled donor deceased; a complete case, autopsy done."""
        targets: dict[int, str] = {}
        for _id, rec in rows:
            if rec["status"] == AutopsyStatus.complete:
                targets[rec["donor_id"]] = DonorStatus.autopsy_done.value
            elif rec["death_at"] is not None:
                targets[rec["donor_id"]] = DonorStatus.deceased.value
        if not targets:
            return
        table = table_of(Donor)
        current = dict(session.execute(select(table.c.id, table.c.status).where(table.c.id.in_(targets))).all())
        audit = []
        for donor_id, status in targets.items():
            old = current.get(donor_id)
            if old in (status, DonorStatus.withdrawn.value) or (
                status == DonorStatus.deceased and old != DonorStatus.enrolled
            ):
                continue
            session.execute(update(table).where(table.c.id == donor_id).values(
                status=status, updated_at=utcnow(), updated_by_id=actor.id if actor else None))
            audit.append((donor_id, {"status": [old, status]}))
        record_bulk(session, "donor", audit, "update")

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Autopsy, Donor.code).join(Donor, Donor.id == Autopsy.donor_id)  # type: ignore[call-overload]  # SQLModel columns typed as their Python values
        yield from template_rows(self, session, statement, "donor_code")


# --------------------------------------------------------------------------------------------------------- lesions


class Lesions(Kind):
    name = "lesions"
    input_model = LesionCreate
    noun = "lesion"
    title = "Lesions"
    help = "One row per lesion of a donor (L01, L02...)."
    table = table_of(Lesion)
    order = 50
    key = ("donor_code", "code")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True, model=LesionCreate),
        text_col("code", "Lesion code such as L01", required=True, model=LesionCreate),
        text_col("site_code", "Anatomical-site code, e.g. LIVER or VERTEBRA_T12", required=True, model=LesionCreate),
        vocab_col("kind", LesionKind, "Kind of lesion", required=True),
        vocab_col("laterality", Laterality, "Side (empty: unknown where a side applies)"),
        vocab_col("bone_phenotype", BonePhenotype, "Bone lesions only"),
        num_col("size_mm", "Largest diameter in mm", model=LesionCreate),
        vocab_col("imaging_response", ImagingResponse, "Last imaging response (empty: unknown)"),
        *receptor_cols("tested on this lesion"),
        text_col("description", "Description", model=LesionCreate),
    )

    def check(self, row: Staged) -> None:
        code = row.values["code"]
        if not LESION_CODE.match(code):
            raise invalid("code", code, "lesion codes look like 'L01'")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            site = site_of(row, res)
            phenotype = row.values.get("bone_phenotype")
            if phenotype is not None and site.category != "bone":
                raise row.fail("bone_phenotype", f"only bone lesions have one; {site.code} is not bone",
                               expected="empty for a lesion outside bone")
            row.record = {
                "donor_id": donor.id,
                "code": row.values["code"],
                "site_code": site.code,
                "laterality": laterality(site, row.values.get("laterality")),
                **with_defaults(row, {
                    "kind": None, "bone_phenotype": None, "size_mm": None,
                    "imaging_response": ImagingResponse.unknown.value, "er_status": None, "pr_status": None,
                    "her2_status": None, "description": None,
                }),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "code"))

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Lesion, Donor.code).join(Donor, Donor.id == Lesion.donor_id)  # type: ignore[call-overload]  # SQLModel columns typed as their Python values
        yield from template_rows(self, session, statement, "donor_code")


# -------------------------------------------------------------------------------------------------- sampling sites


class LesionInfo(NamedTuple):
    id: int
    site_code: str
    laterality: str


class SamplingSites(Kind):
    name = "sampling_sites"
    noun = "sampling site"
    title = "Sampling sites (regions)"
    help = ("One row per piece of tissue taken from one place: a region of a lesion (code L01-A from lesion_code "
            "and region_label), normal tissue (N01), germline blood (GB1), bone marrow (BM1) or a pre-mortem draw (PB1).")
    table = table_of(SamplingSite)
    order = 60
    key = ("donor_code", "code")
    identity = frozenset({"donor_id", "kind", "lesion_id", "autopsy_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True, model=AutopsyOpen),
        # the site code of a region is made from lesion and label (no service takes it): the column's own length
        text_col("code", "Site code: L01-A for a region (may be left empty), N01, GB1, BM1, PB1 otherwise", max_length=16),
        vocab_col("kind", SiteKind, "What was sampled", required=True),
        text_col("lesion_code", "Lesion of a tumour region (e.g. L01)", model=RegionCollect),
        text_col("region_label", "Region label of a tumour region (A, B...)", model=RegionCollect),
        text_col("site_code", "Anatomical-site code", required=True, model=RegionCollect),
        vocab_col("laterality", Laterality, "Side (empty: the lesion's side)"),
        vocab_col("tissue_status", TissueStatus, "tumour for a region; normal or adjacent_normal otherwise"),
        num_col("distance_to_tumour_mm", "Normal tissue: distance to the nearest tumour in mm", model=RegionCollect),
        datetime_col("excised_at", "Time of excision (or of the pre-mortem draw)", required=True),
        text_col("prosector", "Prosector (empty: the case's prosector)", model=RegionCollect),
        text_col("gross_description", "Gross description", model=RegionCollect),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        RegionCollect.check_fields(v)  # as collecting a region does: limits, no excision in the future
        kind = SiteKind(v["kind"])
        if kind == SiteKind.tumour_region:
            if not v.get("lesion_code"):
                raise invalid("lesion_code", None, "a tumour region belongs to a lesion")
            label = v.get("region_label")
            if not label or not REGION_LABEL.match(label):
                raise invalid("region_label", label, "a region label such as 'A' or 'B'")
            code = region_site_code(v["lesion_code"], label)
            if v.get("code") not in (None, code):
                raise invalid("code", v["code"], f"a region of {v['lesion_code']} labelled {label} is {code}")
            v["code"] = code
            if v.get("tissue_status") not in (None, TissueStatus.tumour):
                raise invalid("tissue_status", v["tissue_status"], "a tumour region is tumour tissue")
            if v.get("distance_to_tumour_mm") is not None:
                raise invalid("distance_to_tumour_mm", v["distance_to_tumour_mm"], "only normal tissue has a distance to tumour")
        else:
            if v.get("lesion_code"):
                raise invalid("lesion_code", v["lesion_code"], f"a {kind.value} sample has no lesion")
            if v.get("region_label"):
                raise invalid("region_label", v["region_label"], f"a {kind.value} sample has no region label")
            code = v.get("code") or ""
            prefix = SITE_PREFIX[kind]
            if not code or not code.startswith(prefix) or not code[len(prefix):].isdigit():
                raise invalid("code", code, f"a {kind.value} site code such as {prefix}{'01' if prefix == 'N' else '1'}")
            if v.get("tissue_status") == TissueStatus.tumour:
                raise invalid("tissue_status", "tumour", "tumour tissue is a region of a lesion")
        require_safe("code", v["code"])

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})
        lesion_keys = {(found[r.values["donor_code"]].id, r.values["lesion_code"])
                       for r in rows if r.values.get("lesion_code") and r.values["donor_code"] in found}

        def fetch(batch: list[Any]) -> dict[Any, LesionInfo]:
            statement = select(Lesion.donor_id, Lesion.code, Lesion.id, Lesion.site_code, Lesion.laterality).where(  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                tuple_(Lesion.donor_id, Lesion.code).in_(batch))
            return {(r[0], r[1]): LesionInfo(r[2], r[3], r[4]) for r in res.session.execute(statement)}

        lesions = res.lookup("lesion", lesion_keys, fetch)

        def build(row: Staged) -> None:
            v = row.values
            donor = donor_of(row, found)
            site = site_of(row, res)
            kind = v["kind"]
            premortem = kind == SiteKind.premortem_blood
            if donor.autopsy_id is None and not premortem:
                raise row.fail("donor_code", f"donor {donor.code} has no autopsy (import autopsies first)",
                               expected="a donor with an autopsy")
            if donor.autopsy_status == AutopsyStatus.scheduled and not premortem:
                raise row.fail("donor_code", f"case {donor.case_code} has not started: record death and start first",
                               expected="a started autopsy")
            excised = v["excised_at"]
            if premortem:
                if donor.death_at is not None and excised >= donor.death_at:
                    reason = f"must be before the time of death ({shown_time(donor.death_at)}) for a pre-mortem draw"
                    raise row.fail("excised_at", sentence("excised_at", excised, reason), expected=reason)
            else:
                check_order("death_at", donor.death_at, "excised_at", excised)
            lesion: LesionInfo | None = None
            if kind == SiteKind.tumour_region:
                lesion = lesions.get((donor.id, v["lesion_code"]))
                if lesion is None:
                    raise row.fail("lesion_code", f"donor {donor.code}: lesion {v['lesion_code']!r} not found "
                                   "(import lesions first)", expected="a lesion of this donor")
                if site.code != lesion.site_code and site.parent_code != lesion.site_code:
                    raise row.fail("site_code", f"lesion {v['lesion_code']} is in {lesion.site_code}",
                                   expected=lesion.site_code)
            status = v.get("tissue_status") or (TissueStatus.tumour.value if lesion else TissueStatus.normal.value)
            row.record = {
                "donor_id": donor.id,
                "autopsy_id": donor.autopsy_id,
                "lesion_id": lesion.id if lesion else None,
                "code": v["code"],
                "region_label": v.get("region_label") if lesion else None,
                "kind": kind,
                "tissue_status": status,
                "distance_to_tumour_mm": v.get("distance_to_tumour_mm"),
                "site_code": site.code,
                "laterality": laterality(site, v.get("laterality") or (lesion.laterality if lesion else None)),
                "excised_at": excised,
                "prosector": v.get("prosector") or donor.prosector,
                "gross_description": v.get("gross_description"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "code"))

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(SamplingSite, Donor.code, Lesion.code)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
            .join(Donor, Donor.id == SamplingSite.donor_id)
            .outerjoin(Lesion, Lesion.id == SamplingSite.lesion_id)
        )
        yield from template_rows(self, session, statement, "donor_code", "lesion_code")
