"""Cases, donors, specimen lineage and custody, storage and derived models to read.

Every route reads through the query the command line prints (``biobank autopsy list`` / ``summary``, ``donors
show``, ``specimen show``, ``storage tree`` / ``show``, ``models list`` / ``show``), under the consent rule: what
belongs to a donor in :func:`biobank.queries.core.hidden_donors` is left out of lists, and a record of one is a 404
(the same problem as an unknown code) for anyone but an administrator. In a box, a specimen of such a donor shows as
an occupied position with every other value null (no code, no donor).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlmodel import Session, col, select

from biobank.api.common import Token, acting, hidden_or_missing, jsonable, problems
from biobank.domain.errors import invalid
from biobank.models import DerivedModel, ModelPassage, Specimen
from biobank.queries import cohort as cohort_reads
from biobank.queries import core as core_reads
from biobank.queries import derived as model_reads
from biobank.queries import storage as storage_reads
from biobank.services import cases
from biobank.services.donors import get_donor

router = APIRouter()

#: What ``GET /donors/{code}`` leaves out of :func:`biobank.queries.core.donor_detail`, as the de-identified exports
#: do: the date of death (an absolute date of the person; the case's times are ``GET /cases/{case}``).
IDENTIFYING = ("death_at",)
#: Kept of the withdrawal: who asked (a role such as ``next_of_kin``), not when (a date) nor the free-text reason.
WITHDRAWAL_KEPT = ("requested_by",)
#: Kept of each consent: who gave it (a role), not the date nor the signed document's reference.
CONSENT_KEPT = ("given_by",)
#: What a box shows of a position holding a specimen of a hidden donor: only that the position is taken.
WITHHELD_KEPT = ("position", "row", "col")


def _hidden(session: Session, role: str | None) -> set[str]:
    return core_reads.hidden_donors(session, role)


def deidentified(detail: dict[str, Any]) -> dict[str, Any]:
    """A donor's detail without identifying values: no date of death, no consent or withdrawal dates, no document
    reference, no free-text withdrawal reason (the donor record itself holds no name or birth date)."""
    shown = {key: value for key, value in detail.items() if key not in IDENTIFYING}
    withdrawal = detail.get("withdrawal")
    shown["withdrawal"] = {k: withdrawal[k] for k in WITHDRAWAL_KEPT} if withdrawal else None
    shown["consents"] = [{k: consent[k] for k in CONSENT_KEPT} for consent in detail.get("consents", [])]
    return shown


# --- cases --------------------------------------------------------------------------------------------------------


@router.get("/cases", tags=["cases"], responses=problems(422), summary="Cases with their PMI figures")
def list_cases(
    token: Token,
    state: Annotated[str | None, Query(description="scheduled, in_progress or complete (default: all).")] = None,
) -> list[dict[str, Any]]:
    """Every case as `biobank autopsy list --json`: state, the call's facts, times (with `start_estimated` /
    `end_estimated`) and PMI figures, by state then the latest death first. Cases of a donor who withdrew consent
    are shown to an administrator only."""
    if state is not None and state not in cases.STATES:
        raise invalid("state", state, f"choose one of {', '.join(cases.STATES)}")
    with acting(token) as (session, user):
        hidden = _hidden(session, user.role)
        rows = cases.case_rows(session)
    return jsonable([r for r in rows if r["donor"] not in hidden and (state is None or r["status"] == state)])


@router.get("/cases/{case_code}", tags=["cases"], responses=problems(404), summary="One case and its PMI figures")
def show_case(token: Token, case_code: Annotated[str, Path(description="Case code.")]) -> dict[str, Any]:
    """As `biobank autopsy summary --json`: times and whether start and end are estimated, warm PMI, PMI at start,
    last-specimen and median PMI, share within target, specimens past the limit, specimens by format, sampling
    sites by kind, lesions. An unknown case (or one of a donor who withdrew consent, for anyone but an
    administrator) is a 404 naming `case`."""
    with acting(token) as (session, user):
        data = core_reads.autopsy_summary(session, case_code)
        if data["donor"] in _hidden(session, user.role):
            raise hidden_or_missing(case_code, "autopsy", field="case")
    return jsonable(data)


# --- donors -------------------------------------------------------------------------------------------------------


@router.get("/donors/{code}", tags=["donors"], responses=problems(404), summary="One donor (de-identified)")
def show_donor(token: Token, code: Annotated[str, Path(description="Donor code.")]) -> dict[str, Any]:
    """As `biobank donors show --json` (diagnosis, receptors, consent scopes, treatment lines), de-identified: no
    date of death, no consent or withdrawal dates, no consent document reference, no withdrawal reason. A donor who
    withdrew consent is a 404 naming `donor` for anyone but an administrator."""
    with acting(token) as (session, user):
        data = core_reads.donor_detail(session, code)
        if data["code"] in _hidden(session, user.role):
            raise hidden_or_missing(code, "donor", field="donor")
    return jsonable(deidentified(data))


@router.get("/donors/{code}/lesions", tags=["donors"], responses=problems(404), summary="A donor's lesions")
def donor_lesions(token: Token, code: Annotated[str, Path(description="Donor code.")]) -> list[dict[str, Any]]:
    """The donor's lesions as the donor page lists them: code (`lesion`), anatomical site, laterality, kind, bone
    phenotype, size, imaging response, ER status and `regions`, the sampling sites taken from it so far
    (comma-separated, `none` before any). A donor who withdrew consent is a 404 naming `donor` for anyone but an
    administrator."""
    with acting(token) as (session, user):
        donor = get_donor(session, code)
        if donor.code in _hidden(session, user.role):
            raise hidden_or_missing(code, "donor", field="donor")
        return jsonable(cohort_reads.donor_lesions(session, donor.code))


# --- specimens: lineage and custody -------------------------------------------------------------------------------


def _descendants(session: Session, code: str) -> list[dict[str, Any]]:
    """Everything made from the specimen (aliquots, derivatives, passage material), depth first by code, one query
    per generation."""
    root = session.exec(select(Specimen).where(Specimen.code == code)).one()
    by_parent: dict[int | None, list[Specimen]] = {}
    frontier = [root.id]
    while frontier:
        rows = session.exec(
            select(Specimen).where(col(Specimen.parent_id).in_(frontier)).order_by(col(Specimen.code))
        ).all()
        for row in rows:
            by_parent.setdefault(row.parent_id, []).append(row)
        frontier = [row.id for row in rows]
    passage_ids = {row.passage_id for children in by_parent.values() for row in children if row.passage_id}
    passages: dict[int | None, tuple[str, str]] = {}
    if passage_ids:
        passages = {
            pid: (model, label) for pid, model, label in session.exec(
                select(ModelPassage.id, DerivedModel.code, ModelPassage.label)
                .join(DerivedModel, col(DerivedModel.id) == col(ModelPassage.model_id))
                .where(col(ModelPassage.id).in_(passage_ids))
            ).all()
        }
    result: list[dict[str, Any]] = []

    def walk(parent: Specimen, depth: int) -> None:
        for child in by_parent.get(parent.id, []):
            model, label = passages.get(child.passage_id, (None, None)) if child.passage_id else (None, None)
            result.append({"code": child.code, "parent": parent.code, "depth": depth, "lineage": child.lineage,
                           "material_type": child.material_type, "storage_format": child.storage_format,
                           "status": child.status, "model": model, "passage": label})
            walk(child, depth + 1)

    walk(root, 1)
    return result


@router.get("/specimens/{code}/lineage", tags=["specimens"], responses=problems(404),
            summary="A specimen's parents and descendants")
def specimen_lineage(token: Token, code: Annotated[str, Path(description="Specimen code.")]) -> dict[str, Any]:
    """The lineage of `biobank specimen show --json` (`primary`, `ancestors` root first, `parent`, the direct
    `children`), with every `descendant` (aliquots, derivatives and what model passages produced, depth first, each
    with its `parent` and `depth`, and the `model` and `passage` that produced it if any) and the derived `models`
    grown from the specimen or any descendant (rows of `biobank models list --json`). A specimen of a donor who
    withdrew consent is a 404 naming `code` for anyone but an administrator."""
    with acting(token) as (session, user):
        data = core_reads.specimen_detail(session, code)
        if data["donor"] in _hidden(session, user.role):
            raise hidden_or_missing(code, "specimen")
        tree = data["lineage_tree"]
        descendants = _descendants(session, data["code"])
        made = {data["code"], *(d["code"] for d in descendants)}
        models = [m for m in model_reads.model_rows(session, donor_code=data["donor"]) if m["source"] in made]
    return jsonable({
        "code": data["code"], "donor": data["donor"], "lineage": data["lineage"], "primary": tree["primary"],
        "ancestors": tree["ancestors"], "parent": data["parent"], "children": tree["children"],
        "descendants": descendants, "models": models,
    })


@router.get("/specimens/{code}/custody", tags=["specimens"], responses=problems(404),
            summary="A specimen's chain of custody")
def specimen_custody(token: Token, code: Annotated[str, Path(description="Specimen code.")]) -> list[dict[str, Any]]:
    """The custody events of `biobank specimen show --json`, oldest first: `at`, `kind`, `user`, `from`, `to`,
    `note`. A specimen of a donor who withdrew consent is a 404 naming `code` for anyone but an administrator."""
    with acting(token) as (session, user):
        data = core_reads.specimen_detail(session, code)
        if data["donor"] in _hidden(session, user.role):
            raise hidden_or_missing(code, "specimen")
    return jsonable(data["custody"])


# --- storage ------------------------------------------------------------------------------------------------------


@router.get("/storage", tags=["storage"], responses=problems(), summary="The storage tree")
def storage_tree(token: Token) -> list[dict[str, Any]]:
    """Every container in tree order, as `biobank storage tree --json`: kind, name, depth, path, parent,
    temperature (inherited down the tree), capacity and how many specimens sit directly in it (counts only)."""
    with acting(token) as (session, _user):
        return jsonable(storage_reads.tree(session))


@router.get("/storage/{code}", tags=["storage"], responses=problems(404), summary="One container and its positions")
def storage_show(token: Token, code: Annotated[str, Path(description="Container code.")]) -> dict[str, Any]:
    """As `biobank storage show --json`: kind, path, temperature, grid and fill, and for a box every occupied
    position with its specimen (format, material, status, donor, quantity left). A position holding a specimen of a
    donor who withdrew consent shows, to anyone but an administrator, as taken with every other value null. An
    unknown container is a 404 naming `container`."""
    with acting(token) as (session, user):
        view = storage_reads.box_view(session, code)
        hidden = _hidden(session, user.role)
    view["cells"] = [
        cell if cell["donor"] not in hidden else {k: (v if k in WITHHELD_KEPT else None) for k, v in cell.items()}
        for cell in view["cells"]
    ]
    return jsonable(view)


# --- derived models -----------------------------------------------------------------------------------------------


@router.get("/models", tags=["models"], responses=problems(422), summary="Derived models")
def list_models(
    token: Token,
    donor: Annotated[str | None, Query(description="Only this donor's models.")] = None,
    status: Annotated[str | None, Query(description="Only models with this status.")] = None,
    kind: Annotated[str | None, Query(description="Only organoid, pdx or cell_line.")] = None,
) -> list[dict[str, Any]]:
    """Organoids, PDX and cell lines as `biobank models list --json`: site, source specimen, newest passage, QC.
    Models of a donor who withdrew consent are shown to an administrator only. A status or kind outside the
    vocabulary is a 422 naming it."""
    with acting(token) as (session, user):
        hidden = _hidden(session, user.role)
        rows = model_reads.model_rows(session, donor_code=donor, status=status, kind=kind)
    return jsonable([r for r in rows if r["donor"] not in hidden])


@router.get("/models/{code}", tags=["models"], responses=problems(404), summary="One model, its passages and QC")
def show_model(token: Token, code: Annotated[str, Path(description="Model code.")]) -> dict[str, Any]:
    """As `biobank models show --json`: the model's lineage (donor, lesion, region, source specimen), culture or
    host details, QC requirements met, and the passage tree with each passage's QC and the specimens it produced.
    A model of a donor who withdrew consent is a 404 naming `model` for anyone but an administrator."""
    with acting(token) as (session, user):
        data = model_reads.model_detail(session, code)
        if data["donor"] in _hidden(session, user.role):
            raise hidden_or_missing(code, "model", field="model")
    return jsonable(data)
