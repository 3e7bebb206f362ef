"""Donors, their consents and their lines of treatment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from biobank.domain.codes import DONOR_CODE, require_safe
from biobank.domain.errors import invalid
from biobank.domain.vocab import ConsentGiver, DonorStatus, Response, Sex, TreatmentCategory, TreatmentIntent
from biobank.imports.columns import bool_col, date_col, int_col, text_col, vocab_col
from biobank.imports.kinds._shared import (
    donor_of,
    donors,
    each,
    existing_by,
    receptor_cols,
    site_of,
    template_rows,
    with_defaults,
)
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import Consent, Donor, TreatmentLine
from biobank.models.base import table_of
from biobank.services.inputs import ConsentCreate, DonorCreate, TreatmentLineCreate

# ---------------------------------------------------------------------------------------------------------- donors


class Donors(Kind):
    name = "donors"
    input_model = DonorCreate
    noun = "donor"
    title = "Donors"
    help = "One row per donor: a pseudonymous code, never a name, address, birth date or hospital number."
    table = table_of(Donor)
    order = 10
    key = ("code",)
    columns = (
        text_col("code", "Pseudonymous donor code such as RA-0001 (letters, optional '-', digits)", required=True,
                 model=DonorCreate),
        vocab_col("sex", Sex, "MIABIS sex (empty: unknown)"),
        int_col("age_at_death", "Age at death in years", model=DonorCreate),
        text_col("primary_diagnosis", "Primary diagnosis as free text", model=DonorCreate),
        text_col("primary_site_code", "Anatomical-site code of the primary (e.g. BREAST)", model=DonorCreate),
        text_col("icdo3_topography", "ICD-O-3 topography, e.g. C50.9", model=DonorCreate),
        text_col("icdo3_morphology", "ICD-O-3 morphology, e.g. 8500/3", model=DonorCreate),
        int_col("diagnosis_days_before_death", "Days from first diagnosis to death", model=DonorCreate),
        *receptor_cols("at diagnosis"),
        text_col("cause_of_death", "Cause of death", model=DonorCreate),
        int_col("hardy_scale", "Hardy scale 0-4", model=DonorCreate),
        vocab_col("status", DonorStatus, "Donor status (empty: enrolled); a withdrawal of consent is recorded as "
                  "such, not imported"),
    )

    def check(self, row: Staged) -> None:
        code = row.values["code"]
        require_safe("code", code)
        if not DONOR_CODE.match(code):
            raise invalid("code", code, "a pseudonymous code such as 'RA-0001' (letters, optional '-', digits)")
        if row.values.get("status") == DonorStatus.withdrawn:
            raise invalid("status", "withdrawn", "is not imported: record the withdrawal of consent itself")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        def build(row: Staged) -> None:
            site = row.values.get("primary_site_code")
            if site is not None:
                row.values["primary_site_code"] = site_of(row, res, "primary_site_code").code
            row.record = with_defaults(row, {
                "code": None, "sex": Sex.unknown.value, "age_at_death": None, "primary_diagnosis": None,
                "primary_site_code": None, "icdo3_topography": None, "icdo3_morphology": None,
                "diagnosis_days_before_death": None, "er_status": None, "pr_status": None, "her2_status": None,
                "cause_of_death": None, "hardy_scale": None, "status": DonorStatus.enrolled.value,
            })

        each(rows, build)
        existing_by(res, self, rows, ("code",))
        for row in rows:
            if row.existing is not None and row.existing["status"] == DonorStatus.withdrawn and row.record:
                row.record["status"] = DonorStatus.withdrawn.value  # a withdrawal is never undone by an import

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        yield from template_rows(self, session, select(Donor))


# -------------------------------------------------------------------------------------------------------- consents

SCOPES = ("research_use", "genomic_sequencing", "model_derivation", "external_sharing", "recontact")


class Consents(Kind):
    name = "consents"
    noun = "consent"
    title = "Consents"
    help = "One row per consent; a scope left empty is not consented to."
    table = table_of(Consent)
    order = 20
    key = ("donor_code", "consented_on", "given_by")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True, model=ConsentCreate),
        vocab_col("given_by", ConsentGiver, "Who consented", required=True),
        date_col("consented_on", "Date of the consent", required=True),
        bool_col("research_use", "Research use (yes/no)"),
        bool_col("genomic_sequencing", "Genomic sequencing including germline (yes/no)"),
        bool_col("model_derivation", "Derivation of organoids and xenografts (yes/no)"),
        bool_col("external_sharing", "Data sharing outside the institution (yes/no)"),
        bool_col("recontact", "Recontact of the family (yes/no)"),
        text_col("document_ref", "Reference of the signed form", model=ConsentCreate),
    )

    def check(self, row: Staged) -> None:
        ConsentCreate.check_fields(row.values)  # as recording a consent does: no consent dated in the future

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            row.record = {
                "donor_id": donor.id,
                "given_by": row.values["given_by"],
                "consented_on": row.values["consented_on"],
                **{scope: bool(row.values.get(scope)) for scope in SCOPES},
                "document_ref": row.values.get("document_ref"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "consented_on", "given_by"))

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Consent, Donor.code).join(Donor, Donor.id == Consent.donor_id)  # type: ignore[call-overload]  # SQLModel columns typed as their Python values
        yield from template_rows(self, session, statement, "donor_code")


# ------------------------------------------------------------------------------------------------ treatment lines


class TreatmentLines(Kind):
    name = "treatment_lines"
    noun = "treatment line"
    title = "Treatment lines"
    help = "One row per line of treatment; times are days before death."
    table = table_of(TreatmentLine)
    order = 30
    key = ("donor_code", "line_number")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True, model=TreatmentLineCreate),
        int_col("line_number", "Line number, from 1", required=True, model=TreatmentLineCreate),
        text_col("agents", "Agents, e.g. 'letrozole + palbociclib'", required=True, model=TreatmentLineCreate),
        vocab_col("category", TreatmentCategory, "Kind of treatment (empty: other)"),
        vocab_col("intent", TreatmentIntent, "Intent (empty: unknown)"),
        int_col("start_days_before_death", "Start, in days before death", required=True, model=TreatmentLineCreate),
        int_col("end_days_before_death", "End, in days before death (empty: ongoing at death)",
                model=TreatmentLineCreate),
        vocab_col("best_response", Response, "Best response (empty: unknown)"),
    )

    def check(self, row: Staged) -> None:
        start, end = row.values["start_days_before_death"], row.values.get("end_days_before_death")
        if end is not None and not 0 <= end <= start:
            raise invalid("end_days_before_death", end, f"must lie between 0 and the start ({start} days before death)")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found, unwithdrawn=False)
            row.record = {
                "donor_id": donor.id,
                **with_defaults(row, {
                    "line_number": None, "agents": None, "category": TreatmentCategory.other.value,
                    "intent": TreatmentIntent.unknown.value, "start_days_before_death": None,
                    "end_days_before_death": None, "best_response": Response.unknown.value,
                }),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "line_number"))

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(TreatmentLine, Donor.code).join(Donor, Donor.id == TreatmentLine.donor_id)  # type: ignore[call-overload]  # SQLModel columns typed as their Python values
        yield from template_rows(self, session, statement, "donor_code")
