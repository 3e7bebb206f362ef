"""Demo organoids and PDX lines (called at the end of :func:`biobank.demo.cohort.load_demo`): for consenting donors,
models from viable cryopreserved tumour specimens, passages up to P3-P5 with a split line, QC, frozen vials and
xenograft tissue, and a few failures. Built through the services, deterministic for a seed."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlmodel import Session, select

from biobank.models import Autopsy, ConsentWithdrawal, DerivedModel, Donor, SamplingSite, Specimen, User
from biobank.services import derived
from biobank.services.donors import consent_state
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate

HOSTS = (
    ("NSG", "NOD.Cg-Prkdcscid Il2rgtm1Wjl/SzJ"),
    ("NOG", "NOD.Cg-Prkdcscid Il2rgtm1Sug/JicTac"),
)
ENGRAFTMENT = {"BREAST": ("mammary fat pad", "orthotopic")}


def _sources(session: Session) -> list[tuple[Donor, date, list[Specimen]]]:
    """Per consenting, completed donor: the viable tumour specimens, in code order."""
    withdrawn = set(session.exec(select(ConsentWithdrawal.donor_id)).all())
    rows = session.exec(
        select(Donor, Autopsy.death_at)
        .join(Autopsy, Autopsy.donor_id == Donor.id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(Autopsy.status == "complete")
        .order_by(Donor.code)
    ).all()
    result = []
    for donor, death_at in rows:
        if donor.id in withdrawn or not consent_state(session, donor).allows("model_derivation"):
            continue
        specimens = list(
            session.exec(
                select(Specimen)
                .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
                .where(
                    Specimen.donor_id == donor.id,
                    Specimen.storage_format.in_(["viable_cryo", "fresh"]),  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
                    SamplingSite.kind == "tumour_region",
                    Specimen.status == "available",
                )
                .order_by(Specimen.code)
            ).all()
        )
        if specimens and death_at is not None:
            result.append((donor, death_at.date(), specimens))
    return result


def load_demo_models(session: Session, *, tech: User, seed: int = 7, max_donors: int = 6) -> int:
    """Create the demo models; returns how many."""
    rng = random.Random(seed * 31 + 4)
    made = 0
    for _donor, death_day, specimens in _sources(session)[:max_donors]:
        for index, source in enumerate(specimens[:2]):
            kind = "organoid" if index == 0 or rng.random() < 0.4 else "pdx"
            site = session.get(SamplingSite, source.sampling_site_id)
            assert site is not None
            start = death_day + timedelta(days=1)
            if kind == "pdx":
                host, nomenclature = rng.choice(HOSTS)
                place, how = ENGRAFTMENT.get(site.site_code, ("subcutaneous flank", "heterotopic"))
                model = derived.create_model(
                    session,
                    actor=tech,
                    data=ModelCreate(source_code=source.code, kind="pdx", initiated_on=start, quantity_used=round(source.quantity_remaining * 0.3), host_strain_name=host, host_strain_nomenclature=nomenclature, engraftment_site=place, engraftment_type=how, tumour_preparation=rng.choice(["fragment", "fragment", "cell_suspension"])),
                )
            else:
                model = derived.create_model(
                    session,
                    actor=tech,
                    data=ModelCreate(source_code=source.code, kind="organoid", initiated_on=start, quantity_used=round(source.quantity_remaining * 0.3), medium=rng.choice(
                        ["Advanced DMEM/F12 + R-spondin, Noggin, EGF", "breast organoid medium (Sachs 2018)"]
                    ), matrix=rng.choice(["matrigel_bme", "matrigel_bme", "collagen"]), growth_properties="embedded_3d"),
                )
            made += 1
            _grow(session, rng, tech, model, start)
    return made


def _grow(session: Session, rng: random.Random, tech: User, model: DerivedModel, start: date) -> None:
    """A model's life: it fails early, keeps growing, or is established (and then perhaps cryobanked)."""
    pdx = model.kind == "pdx"
    fate = rng.choices(
        ["failed", "growing", "established"], weights=[0.25, 0.15, 0.6] if not pdx else [0.35, 0.15, 0.5]
    )[0]
    step = (lambda: rng.randint(45, 110)) if pdx else (lambda: rng.randint(10, 21))

    def move(status: str, on: date, note: str | None = None) -> None:
        derived.set_status(session, actor=tech, model_code=model.code, status=status, on=on, note=note)

    day = start
    label = derived.record_passage(
        session,
        actor=tech,
        data=PassageCreate(model_code=model.code, passaged_on=day, mouse_or_vessel_id=f"M-{rng.randint(100, 999)}"
        if pdx
        else f"W24-{rng.choice('ABCD')}{rng.randint(1, 6)}"),
    ).label
    move("growing", day + timedelta(days=3))
    if fate == "failed":
        if rng.random() < 0.5:
            day += timedelta(days=step())
            label = _passage(session, rng, tech, model, label, day)
        move(
            "failed",
            day + timedelta(days=7),
            rng.choice(
                [
                    "no engraftment after 6 months" if pdx else "no outgrowth",
                    "fibroblast overgrowth",
                    "lymphoma outgrowth (EBV)" if pdx else "contamination",
                ]
            ),
        )
        return
    last = rng.randint(3, 5) if fate == "established" else rng.randint(1, 2)
    split_at = 2 if rng.random() < 0.5 and last >= 3 else None
    for number in range(1, last + 1):
        day += timedelta(days=step())
        label = _passage(session, rng, tech, model, label, day)
        if number in (1, last) or number == 3:
            derived.record_model_qc(
                session,
                actor=tech,
                data=ModelQCCreate(model_code=model.code, passage_label=label, tested_on=day + timedelta(days=5), identity_method=rng.choice(["STR", "SNP"]), identity_match_pct=round(rng.uniform(86, 99.5), 1), mycoplasma="negative", mouse_content_pct=round(rng.uniform(3, 35), 1) if pdx else None, histology_concordant=True if number == last else None, not_mouse_or_ebv_origin=True if pdx and number == last else None),
            )
    if split_at is not None:  # a sub-line from the same parent passage: P2-B beside P2
        base = derived.get_passage(session, model, f"P{split_at - 1}")
        derived.record_passage(
            session,
            actor=tech,
            data=PassageCreate(model_code=model.code, parent_label=base.label, passaged_on=base.passaged_on + timedelta(days=step()), notes="sub-line split for drug screening"),
        )
    if fate == "growing":
        return
    established_on = day + timedelta(days=7)
    move("established", established_on)
    # What the established model banks: (material, format, quantity, unit, how many) from its last passage.
    banked: list[tuple[str, str, float, str, int]] = (
        [("tissue", "snap_frozen", rng.choice([40, 60, 80]), "mg", 2), ("tissue", "viable_cryo", 50, "mg", 1)]
        if pdx
        else [("cells", "viable_cryo", 1_000_000, "cells", 3)]
    )
    for material, storage_format, quantity, unit, count in banked:
        derived.passage_specimens(
            session,
            actor=tech,
            model_code=model.code,
            passage_label=label,
            material_type=material,
            storage_format=storage_format,
            quantity=quantity,
            unit=unit,
            count=count,
        )
    if rng.random() < 0.5:
        move("cryobanked", established_on + timedelta(days=14))


def _passage(
    session: Session, rng: random.Random, tech: User, model: DerivedModel, parent: str, day: date
) -> str:
    pdx = model.kind == "pdx"
    return derived.record_passage(
        session,
        actor=tech,
        data=PassageCreate(model_code=model.code, passaged_on=day, parent_label=parent, mouse_or_vessel_id=f"M-{rng.randint(100, 999)}" if pdx else f"T75-{rng.randint(1, 40)}", latency_days=rng.randint(40, 110) if pdx else None, doubling_time_hours=None if pdx else round(rng.uniform(40, 120), 1)),
    ).label
