"""The death call and the case's day (DOMAIN.md §2 "Autopsy", §3): open the case from the call, pre-print its
labels, notify the team, start and end the autopsy; the call checklist; the cases by state with their PMI figures.

The call opens the case with the time of death, where the donor died, who reported it and when, the refrigeration
time when known and who will do the autopsy; the case code is generated (``RAP-<year of death>-<number>``, the
demo's and the import template's form) unless one is given. Later changes of a time already recorded are
corrections: :func:`biobank.services.collection.update_autopsy_times` and :func:`mark_team_notified` refuse them
without a reason and the audit log keeps it.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from biobank.config import get_settings
from biobank.domain.errors import ConflictError, invalid, shown_time
from biobank.domain.timing import case_figures, specimen_pmi, warm_pmi
from biobank.domain.vocab import AutopsyStatus, ConsentScope, SiteKind
from biobank.labels.service import planned_labels, render
from biobank.models import Autopsy, Donor, SamplingSite, Specimen, User
from biobank.models.audit import act_as, audit_reason
from biobank.models.base import utcnow
from biobank.services import collection
from biobank.services.auth import Action, require
from biobank.services.checklist import ChecklistItem
from biobank.services.checks import check_time, require_aware
from biobank.services.donors import consent_state
from biobank.services.inputs import AutopsyOpen, DeathCall
from biobank.services.lookup import typed_code

#: Case codes the tracker makes: ``RAP-2026-007`` (the seventh case whose donor died in 2026, in the lab's zone).
CASE_PREFIX = "RAP"
_GENERATED = re.compile(rf"{CASE_PREFIX}-(\d{{4}})-(\d+)")
#: The states a case goes through, in order.
STATES = (AutopsyStatus.scheduled.value, AutopsyStatus.in_progress.value, AutopsyStatus.complete.value)


def next_case_code(session: Session, death_at: datetime) -> str:
    """The next free generated code of the year the donor died in (lab time zone)."""
    year = death_at.astimezone(get_settings().zone).year
    prefix = f"{CASE_PREFIX}-{year}-"
    taken = session.exec(select(Autopsy.case_code).where(col(Autopsy.case_code).startswith(prefix, autoescape=True))).all()
    numbers = [int(match.group(2)) for code in taken if (match := _GENERATED.fullmatch(code))]
    return f"{prefix}{max(numbers, default=0) + 1:03d}"


def _text(field: str, value: str | None, *, required: str | None = None) -> str | None:
    """Typed text without the spaces around it; None when blank, or an error saying why it is ``required``."""
    text = (value or "").strip()
    if not text and required is not None:
        raise invalid(field, None, f"is required: {required}")
    return text or None


def open_case(session: Session, *, actor: User | None, data: DeathCall) -> Autopsy:
    """Take the death call: open the case (scheduled until the autopsy starts) with the time and place of death, who
    reported it and when (now, unless given), the refrigeration time when known, the prosector and the team.

    The donor becomes deceased. Everything is checked before anything is written: a withdrawn donor, a donor who
    already has a case, a time in the future or before the death is refused naming the field."""
    require(actor, Action.enrol)
    donor_code = _text("donor_code", data.donor_code, required="choose the donor who died")
    if data.death_at is None:
        raise invalid("death_at", None, "is required: when did the donor die?")
    place = _text("death_place", data.death_place, required="where did the donor die?")
    reported_by = _text("death_reported_by", data.death_reported_by, required="who reported the death?")
    reported_at = data.death_reported_at or max(utcnow(), data.death_at)
    case_code = typed_code(data.case_code) or next_case_code(session, data.death_at)
    return collection.open_autopsy(
        session,
        actor=actor,
        data=AutopsyOpen(
            donor_code=donor_code or "",
            case_code=case_code,
            death_at=data.death_at,
            refrigerated_at=data.refrigerated_at,
            institution=_text("institution", data.institution),
            prosector=_text("prosector", data.prosector),
            team=_text("team", data.team),
            death_place=place,
            death_reported_by=reported_by,
            death_reported_at=reported_at,
        ),
    )


def start_autopsy(session: Session, *, actor: User | None, case_code: str, at: datetime | None = None) -> Autopsy:
    """The autopsy starts (now, unless ``at``): the case is in progress and the live board shows it. A start
    already recorded is changed only as a correction, with a reason."""
    require(actor, Action.enrol)
    autopsy = collection.get_autopsy(session, case_code)
    if autopsy.start_at is not None:
        raise ConflictError(
            f"case {autopsy.case_code}: the autopsy started at {shown_time(autopsy.start_at)}; to change that time, "
            "correct it with a reason",
            field="start_at", value=at,
        )
    return collection.update_autopsy_times(session, actor=actor, case_code=autopsy.case_code, start_at=at or utcnow())


def end_autopsy(session: Session, *, actor: User | None, case_code: str, at: datetime | None = None) -> Autopsy:
    """The autopsy ends (now, unless ``at``): the case is complete and the donor's autopsy done."""
    require(actor, Action.enrol)
    autopsy = collection.get_autopsy(session, case_code)
    if autopsy.end_at is not None:
        raise ConflictError(
            f"case {autopsy.case_code}: the autopsy ended at {shown_time(autopsy.end_at)}; to change that time, "
            "correct it with a reason",
            field="end_at", value=at,
        )
    return collection.update_autopsy_times(session, actor=actor, case_code=autopsy.case_code, end_at=at or utcnow())


def mark_team_notified(
    session: Session, *, actor: User | None, case_code: str, at: datetime | None = None, reason: str | None = None
) -> Autopsy:
    """The prosector and the team were told of the case (now, unless ``at``). Changing a time already recorded is a
    correction and needs a reason."""
    require(actor, Action.enrol)
    autopsy = collection.get_autopsy(session, case_code, for_update=True)
    require_aware("team_notified_at", at)
    when = at or max(utcnow(), autopsy.death_at or utcnow())
    check_time("team_notified_at", when, after=[("death_at", autopsy.death_at)])
    recorded = autopsy.team_notified_at
    why = None
    if recorded is not None and recorded != when:
        why = collection.correction_reason(reason, ["team_notified_at"], autopsy)
    act_as(session, actor)
    with audit_reason(session, why) if why else nullcontext():
        autopsy.team_notified_at = when
        session.flush()
    return autopsy


@dataclass(frozen=True)
class PrintedLabels:
    case: str
    data: bytes
    count: int
    zpl: bool

    @property
    def suffix(self) -> str:
        return "zpl" if self.zpl else "pdf"


def print_case_labels(
    session: Session, *, actor: User | None, case_code: str, fmt: str = "cryotube", zpl: bool = False
) -> PrintedLabels:
    """Pre-print the case's labels (the regions of the donor's recorded lesions not yet collected, in the board's
    default formats: :func:`biobank.labels.service.planned_labels`) and record that they were printed."""
    require(actor, Action.enrol)
    autopsy = collection.get_autopsy(session, case_code, for_update=True)
    items = planned_labels(session, autopsy.case_code)
    if not items:
        raise invalid("case", autopsy.case_code, "has every planned region collected already: nothing to pre-print")
    data = render(items, fmt, zpl=zpl)
    act_as(session, actor)
    autopsy.labels_printed_at = utcnow()
    session.flush()
    return PrintedLabels(autopsy.case_code, data, len(items), zpl)


# ------------------------------------------------------------------------------------------------ reads


def call_checklist(session: Session, case_code: str) -> list[ChecklistItem]:
    """The death call's checklist, each item done or missing with a sentence saying what or why: consent in force,
    consent to model derivation and to genomic sequencing, the time of death, refrigeration, labels printed, team
    notified."""
    autopsy = collection.get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    state = consent_state(session, donor)
    items: list[ChecklistItem] = []
    if state.withdrawn:
        consent = (False, "consent was withdrawn: nothing may be collected; stand the team down")
    elif not state.scopes:
        consent = (False, f"no consent recorded for donor {donor.code}: record it before the autopsy")
    elif ConsentScope.research_use not in state.scopes:
        consent = (False, "the consent does not cover research use, which every use of the material needs")
    else:
        consent = (True, "in force: " + ", ".join(s.replace("_", " ") for s in sorted(state.scopes)))
    items.append(ChecklistItem("consent", "Consent in force", *consent))
    models = state.allows(ConsentScope.model_derivation)
    items.append(ChecklistItem(
        "model_derivation", "Consent to model derivation", models,
        "consented: keep fresh or viable tissue for organoids and xenografts" if models
        else "not consented: no living models may be started from this donor's material",
    ))
    sequencing = state.allows(ConsentScope.genomic_sequencing)
    items.append(ChecklistItem(
        "genomic_sequencing", "Consent to genomic sequencing", sequencing,
        "consented: the material may be sequenced" if sequencing
        else "not consented: no sequencing of this donor's material",
    ))
    if autopsy.death_at is not None:
        detail = f"died {shown_time(autopsy.death_at)}" + (f" at {autopsy.death_place}" if autopsy.death_place else "")
        if autopsy.death_reported_by:
            detail += f"; reported by {autopsy.death_reported_by}"
            if autopsy.death_reported_at is not None:
                detail += f" at {shown_time(autopsy.death_reported_at)}"
        items.append(ChecklistItem("death", "Time of death", True, detail))
    else:
        items.append(ChecklistItem("death", "Time of death", False, "not recorded: the PMI clock needs it"))
    warm = warm_pmi(autopsy.death_at, autopsy.refrigerated_at)
    if autopsy.refrigerated_at is not None:
        detail = f"refrigerated {shown_time(autopsy.refrigerated_at)}"
        if warm is not None:
            detail += f", {_hours(warm):.1f} h after death"
        items.append(ChecklistItem("refrigerated", "Refrigeration", True, detail))
    else:
        items.append(ChecklistItem("refrigerated", "Refrigeration", False,
                                   "not recorded: record when the body went into the cold (the warm PMI runs until then)"))
    if autopsy.labels_printed_at is not None:
        items.append(ChecklistItem("labels", "Labels printed", True, f"printed {shown_time(autopsy.labels_printed_at)}"))
    else:
        items.append(ChecklistItem("labels", "Labels printed", False,
                                   "not printed: pre-print the labels of the planned regions"))
    who = ", ".join(part for part in (autopsy.prosector, autopsy.team) if part) or "no prosector or team named"
    if autopsy.team_notified_at is not None:
        items.append(ChecklistItem("team", "Team notified", True, f"notified {shown_time(autopsy.team_notified_at)} ({who})"))
    else:
        items.append(ChecklistItem("team", "Team notified", False, f"not yet: call the prosector and the team ({who})"))
    return items


def _hours(interval: timedelta | None) -> float | None:
    return round(interval.total_seconds() / 3600, 2) if interval is not None else None


def case_rows(session: Session) -> list[dict[str, Any]]:
    """Every case with its state, the call's facts and its PMI figures (warm PMI, PMI at start, last and median
    specimen PMI, specimens past the limit), by state (scheduled, in progress, complete), the latest death first.

    Two queries: the cases, then the primary post-mortem specimens of all of them."""
    settings = get_settings()
    cases = session.exec(select(Autopsy, Donor.code).join(Donor, col(Donor.id) == col(Autopsy.donor_id))).all()
    pmis: dict[int | None, list[timedelta]] = {}
    deaths = {autopsy.id: autopsy.death_at for autopsy, _ in cases}
    for autopsy_id, collected, stabilised in session.exec(
        select(SamplingSite.autopsy_id, Specimen.collected_at, Specimen.stabilised_at)
        .join(SamplingSite, col(SamplingSite.id) == col(Specimen.sampling_site_id))
        .where(Specimen.lineage == "primary", SamplingSite.kind != SiteKind.premortem_blood,
               col(SamplingSite.autopsy_id).is_not(None))
    ).all():
        pmi = specimen_pmi(deaths.get(autopsy_id), collected, stabilised)
        if pmi is not None:
            pmis.setdefault(autopsy_id, []).append(pmi.interval)
    rows: list[dict[str, Any]] = []
    for autopsy, donor_code in cases:
        figures = case_figures(autopsy.death_at, autopsy.start_at, pmis.get(autopsy.id, []),
                               target=settings.pmi_target, limit=settings.pmi_limit)
        rows.append({
            "case": autopsy.case_code,
            "donor": donor_code,
            "status": autopsy.status,
            "death_at": autopsy.death_at,
            "death_place": autopsy.death_place,
            "death_reported_by": autopsy.death_reported_by,
            "refrigerated_at": autopsy.refrigerated_at,
            "start_at": autopsy.start_at,
            "end_at": autopsy.end_at,
            "start_estimated": bool(autopsy.start_estimated),
            "end_estimated": bool(autopsy.end_estimated),
            "prosector": autopsy.prosector,
            "team": autopsy.team,
            "labels_printed_at": autopsy.labels_printed_at,
            "team_notified_at": autopsy.team_notified_at,
            "warm_pmi_hours": _hours(warm_pmi(autopsy.death_at, autopsy.refrigerated_at)),
            "pmi_at_start_hours": _hours(figures.pmi_at_start),
            "last_specimen_pmi_hours": _hours(figures.last_specimen_pmi),
            "median_pmi_hours": _hours(figures.median_pmi),
            "specimens": figures.specimens,
            "specimens_beyond_limit": figures.beyond_limit,
        })
    order = {state: index for index, state in enumerate(STATES)}
    rows.sort(key=lambda r: (order.get(r["status"], len(order)),
                             -r["death_at"].timestamp() if r["death_at"] is not None else 0.0, r["case"]))
    return rows
