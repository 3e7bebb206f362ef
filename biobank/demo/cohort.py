"""A deterministic demo cohort a PI would recognise: breast cancer metastatic to bone, liver, lung and brain,
plus a few other primaries; multiregional sampling under a running clock; built through the services so every rule
holds. The same seed always gives the same rows (apart from the one case still in progress, which is placed
relative to now so the live board has a running clock)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.db.engine import sqlite_statistics
from biobank.domain.errors import ConflictError, PermissionDeniedError
from biobank.domain.vocab import ConsentScope, Fixative, Role, SiteKind, StorageFormat
from biobank.models import Donor, Specimen, User
from biobank.services import collection, donors, specimens, users
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect

#: Demo accounts (shown on the sign-in page in demo mode only).
DEMO_ACCOUNTS: tuple[tuple[str, str, str, str], ...] = (
    ("admin", Role.admin, "demo-manager-2026", "Lab administrator"),
    ("tech", Role.technician, "demo-bench-2026", "Autopsy technician"),
    ("coord", Role.coordinator, "demo-consent-2026", "Programme coordinator"),
    ("pi", Role.pi, "demo-cohort-2026", "Principal investigator"),
    ("viewer", Role.viewer, "demo-reader-2026", "Read-only collaborator"),
)


@dataclass(frozen=True)
class Primary:
    diagnosis: str
    site: str
    topography: str
    morphology: str
    sex: str
    weight: float


PRIMARIES = (
    Primary("Invasive ductal carcinoma of breast", "BREAST", "C50.9", "8500/3", "female", 0.62),
    Primary("Invasive lobular carcinoma of breast", "BREAST", "C50.9", "8520/3", "female", 0.13),
    Primary("Adenocarcinoma of prostate", "PROSTATE", "C61.9", "8140/3", "male", 0.1),
    Primary("Pancreatic ductal adenocarcinoma", "PANCREAS", "C25.9", "8500/3", "male", 0.08),
    Primary("Lung adenocarcinoma", "LUNG", "C34.9", "8140/3", "female", 0.07),
)

#: Metastatic sites by primary, with a relative frequency and whether the lesion is bone.
MET_SITES = {
    "BREAST": [
        ("VERTEBRA_T12", 0.8), ("VERTEBRA_L3", 0.6), ("RIB", 0.5), ("PELVIS", 0.5), ("FEMUR", 0.3), ("SKULL", 0.2),
        ("LIVER", 0.75), ("LUNG", 0.5), ("BRAIN", 0.25), ("LYMPH_NODE", 0.5), ("PLEURA", 0.3), ("ADRENAL", 0.15),
    ],
    "PROSTATE": [("VERTEBRA_L3", 0.9), ("PELVIS", 0.8), ("RIB", 0.5), ("FEMUR", 0.4), ("LIVER", 0.3), ("LYMPH_NODE", 0.7)],
    "PANCREAS": [("LIVER", 0.95), ("PERITONEUM", 0.7), ("LUNG", 0.4), ("LYMPH_NODE", 0.6)],
    "LUNG": [("BRAIN", 0.6), ("ADRENAL", 0.5), ("VERTEBRA_T12", 0.5), ("LIVER", 0.4), ("LYMPH_NODE", 0.6)],
}

BREAST_TREATMENTS = [
    ("letrozole", "endocrine"),
    ("palbociclib + fulvestrant", "cdk46_inhibitor"),
    ("everolimus + exemestane", "mtor_inhibitor"),
    ("alpelisib + fulvestrant", "pi3k_inhibitor"),
    ("capecitabine", "chemotherapy"),
    ("paclitaxel", "chemotherapy"),
    ("eribulin", "chemotherapy"),
]
HER2_TREATMENTS = [("trastuzumab + pertuzumab + docetaxel", "her2_targeted"), ("trastuzumab emtansine (T-DM1)", "her2_targeted")]
OTHER_TREATMENTS = {
    "PROSTATE": [("enzalutamide", "endocrine"), ("docetaxel", "chemotherapy"), ("cabazitaxel", "chemotherapy")],
    "PANCREAS": [("FOLFIRINOX", "chemotherapy"), ("gemcitabine + nab-paclitaxel", "chemotherapy")],
    "LUNG": [("osimertinib", "other"), ("carboplatin + pemetrexed + pembrolizumab", "chemotherapy")],
}
NORMAL_TISSUES = ["LIVER", "LUNG", "KIDNEY", "SPLEEN", "SKELETAL_MUSCLE", "HEART", "SKIN"]


def _weighted(rng: random.Random, primaries: tuple[Primary, ...]) -> Primary:
    return rng.choices(primaries, weights=[p.weight for p in primaries])[0]


def _pick_sites(rng: random.Random, primary_site: str) -> list[str]:
    options = MET_SITES[primary_site]
    chosen = [site for site, p in options if rng.random() < p]
    if len(chosen) < 3:
        chosen += [site for site, _ in rng.sample(options, 3) if site not in chosen]
    return chosen[:8]


def _is_bone(site: str) -> bool:
    return site.startswith(("VERTEBRA", "RIB", "PELVIS", "FEMUR", "SKULL", "HUMERUS"))


def is_empty(session: Session) -> bool:
    return session.exec(select(func.count()).select_from(Donor)).one() == 0


def has_users(session: Session) -> bool:
    return session.exec(select(User.id).limit(1)).first() is not None


def require_demo_mode() -> None:
    """The demo accounts' passwords are published: they are created only where demo mode says this is a demo."""
    if not get_settings().demo_mode:
        raise PermissionDeniedError(
            "the demo cohort loads only in demo mode (BIOBANK_DEMO_MODE=true): its accounts' passwords are published",
            field="demo_mode",
        )


def ensure_demo_users(session: Session) -> dict[str, User]:
    """The demo accounts, created if missing (the first is an admin, which bootstraps the rest)."""
    accounts: dict[str, User] = {}
    admin: User | None = session.exec(select(User).where(User.username == "admin")).first()
    for username, role, password, full_name in DEMO_ACCOUNTS:
        existing = session.exec(select(User).where(User.username == username)).first()
        if existing is None:
            existing = users.add_user(
                session, actor=admin, username=username, role=str(role), password=password, full_name=full_name
            )
        if username == "admin":
            admin = existing
        accounts[username] = existing
    return accounts


def load_demo(session: Session, *, donors_count: int = 12, seed: int = 7, now: datetime | None = None) -> dict[str, int]:
    """Load the demo cohort into an empty database; returns counts. Refuses a database that already has donors or
    any user account (the demo accounts' passwords are published). The command line also requires demo mode
    (:func:`require_demo_mode`)."""
    if not is_empty(session):
        raise ConflictError("the database already holds donors: the demo cohort loads only into an empty database")
    if has_users(session):  # the demo accounts, with their published passwords, never join real ones
        raise ConflictError(
            "the database already has user accounts: the demo cohort loads only into an empty database"
        )
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    accounts = ensure_demo_users(session)
    tech, admin = accounts["tech"], accounts["admin"]
    base = datetime(2024, 2, 1, tzinfo=UTC)
    withdrawn_index = 4 if donors_count > 5 else None  # never the donor whose autopsy is in progress (the last)
    for index in range(donors_count):
        in_progress = index == donors_count - 1 and donors_count > 1
        if in_progress:
            death_at = (now - timedelta(hours=4, minutes=10)).replace(second=0, microsecond=0)
        else:
            death_at = base + timedelta(days=index * 55 + rng.randint(0, 40), hours=rng.randint(0, 23), minutes=rng.choice([0, 15, 30, 45]))
        _donor(session, rng, tech, admin, index, death_at, in_progress, withdrawn=index == withdrawn_index)
    session.flush()
    from biobank.demo.derived import load_demo_models

    load_demo_models(session, tech=tech, seed=seed)
    from biobank.demo.storage import place_demo_specimens  # storage and distribution (issue 3)

    place_demo_specimens(session, accounts, now=now)
    session.flush()
    sqlite_statistics(session.connection())  # planner statistics for the cohort just loaded (SQLite)
    return {
        "donors": session.exec(select(func.count()).select_from(Donor)).one(),
        "specimens": session.exec(select(func.count()).select_from(Specimen)).one(),
    }


def _donor(
    session: Session,
    rng: random.Random,
    tech: User,
    admin: User,
    index: int,
    death_at: datetime,
    in_progress: bool,
    *,
    withdrawn: bool,
) -> None:
    primary = _weighted(rng, PRIMARIES) if index > 0 else PRIMARIES[0]
    code = f"RA-{index + 1:04d}"
    her2 = primary.site == "BREAST" and rng.random() < 0.2
    er = "negative" if primary.site != "BREAST" or rng.random() < 0.2 else "positive"
    donors.register_donor(
        session,
        actor=tech,
        data=DonorCreate(code=code, sex=primary.sex, age_at_death=rng.randint(38, 82), primary_diagnosis=primary.diagnosis, primary_site_code=primary.site, icdo3_topography=primary.topography, icdo3_morphology=primary.morphology, diagnosis_days_before_death=rng.randint(700, 4000), er_status=er if primary.site == "BREAST" else None, pr_status=(er if rng.random() < 0.8 else "negative") if primary.site == "BREAST" else None, her2_status=("positive" if her2 else "negative") if primary.site == "BREAST" else None, cause_of_death="Progressive metastatic disease", hardy_scale=rng.choice([2, 3, 4])),
    )
    scopes = {ConsentScope.research_use, ConsentScope.genomic_sequencing}
    if rng.random() < 0.8:
        scopes.add(ConsentScope.model_derivation)
    if rng.random() < 0.6:
        scopes.add(ConsentScope.external_sharing)
    if rng.random() < 0.5:
        scopes.add(ConsentScope.recontact)
    donors.record_consent(
        session,
        actor=tech,
        donor_code=code,
        given_by="donor",
        consented_on=(death_at - timedelta(days=rng.randint(30, 400))).date(),
        scopes={s.value for s in scopes},
        document_ref=f"ICF-v3.{rng.randint(0, 2)}",
    )
    _treatments(session, rng, tech, code, primary, her2)

    refrigerated = death_at + timedelta(minutes=rng.randint(30, 150))
    # PMIs mostly 2-8 h, about one case in six starts late and runs beyond the limit.
    late = rng.random() < 0.17
    start = death_at + timedelta(minutes=rng.randint(300, 420) if late else rng.randint(80, 230))
    if in_progress:  # the running case started 1.5 h after death and its last region was taken minutes ago
        start = death_at + timedelta(minutes=90)
    case_code = f"RAP-{death_at.year}-{index + 1:03d}"
    collection.open_autopsy(
        session,
        actor=tech,
        data=AutopsyOpen(donor_code=code, case_code=case_code, death_at=death_at, refrigerated_at=refrigerated, start_at=start, end_at=None, institution="University Hospital, Department of Pathology", prosector=rng.choice(["Dr A. Okafor", "Dr M. Lindqvist", "Dr S. Rao"]), team="Rapid autopsy team"),
    )
    clock = start + timedelta(minutes=rng.randint(5, 15))

    def tick(minutes: tuple[int, int] = (4, 11)) -> datetime:
        nonlocal clock
        clock += timedelta(minutes=rng.randint(*minutes))
        return clock

    if rng.random() < 0.4:
        collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code=case_code, kind=SiteKind.premortem_blood, site_code="BLOOD", excised_at=death_at - timedelta(days=rng.randint(3, 20), hours=rng.randint(0, 8)), formats=[FormatRequest(StorageFormat.frozen, 500, "ul", count=2, material_type="plasma")]),
        )
    excised = tick((0, 3))
    blood = collection.collect_region(
        session, actor=tech, data=RegionCollect(case_code=case_code, kind=SiteKind.germline_blood, site_code="BLOOD", excised_at=excised, formats=[FormatRequest(StorageFormat.frozen, 1000, "ul", count=2, stabilised_at=excised + timedelta(minutes=20))]),
    )
    buffy = specimens.derive(session, actor=tech, parent_code=blood.specimens[0].code, material_type="buffy_coat",
                             quantity=300, unit="ul", parent_quantity_used=1000, at=excised + timedelta(hours=1))
    dna_ng, dna_concentration = rng.randint(8000, 25000), round(rng.uniform(40, 180), 1)
    dna_a260_280, dna_din = round(rng.uniform(1.8, 1.95), 2), round(rng.uniform(7.5, 9.4), 1)
    if not in_progress:  # the running case's DNA is extracted in two days: not yet
        dna = specimens.derive(session, actor=tech, parent_code=buffy.code, material_type="dna", quantity=dna_ng,
                               unit="ng", parent_quantity_used=200, concentration_ng_ul=dna_concentration,
                               at=excised + timedelta(days=2))
        specimens.record_qc(session, actor=tech, code=dna.code, yield_ng=dna.quantity, a260_280=dna_a260_280,
                            din=dna_din, at=excised + timedelta(days=3))

    lesion_sites = [primary.site, *_pick_sites(rng, primary.site)]
    primary_kind = "primary" if rng.random() < 0.7 else "local_recurrence"
    model_consent = True
    bone_marrow_done = False
    for number, site in enumerate(lesion_sites, start=1):
        kind = primary_kind if number == 1 else ("lymph_node" if site == "LYMPH_NODE" else "metastasis")
        bone = _is_bone(site)
        laterality = None
        if site in ("BREAST", "LUNG", "FEMUR", "ADRENAL", "KIDNEY", "PLEURA"):
            laterality = rng.choice(["left", "right"])
        lesion_code = f"L{number:02d}"
        collection.add_lesion(
            session, actor=tech, data=LesionCreate(donor_code=code, code=lesion_code, site_code=site, kind=kind, laterality=laterality, bone_phenotype=rng.choice(["osteolytic", "osteolytic", "osteoblastic", "mixed"]) if bone else None, size_mm=round(rng.uniform(8, 65), 0), imaging_response=rng.choice(["progressing", "progressing", "stable", "responding", "unknown"]), er_status=("negative" if rng.random() < 0.25 else "positive") if primary.site == "BREAST" else None),
        )
        if in_progress and number > 3:
            continue  # the running case has not reached these lesions yet
        regions = 3 if number == 1 or (site == "LIVER" and rng.random() < 0.5) else 2
        if rng.random() < 0.15:
            regions = 1
        for r in range(regions):
            label = "ABCDEFGH"[r]
            excised = tick()
            stab = excised + timedelta(minutes=rng.randint(2, 14))
            fixed_for = timedelta(hours=rng.choice([18, 24, 30, 48, 60]))
            fix_end = None if in_progress else stab + fixed_for  # the running case's blocks are still in fixative
            formats = [FormatRequest(StorageFormat.snap_frozen, rng.choice([30, 50, 80]), "mg", count=2 if r == 0 else 1, stabilised_at=stab)]
            if bone:
                agent = rng.choices(["edta", "formic_acid", "hydrochloric_acid"], weights=[0.6, 0.3, 0.1])[0]
                hours = {"edta": rng.choice([72, 96, 120]), "formic_acid": rng.choice([12, 24]), "hydrochloric_acid": 4}[agent]
                formats.append(FormatRequest(StorageFormat.ffpe, 1, "blocks", stabilised_at=stab, fixative=Fixative.nbf,
                                             fixation_end_at=fix_end, decalcification_agent=agent, decalcification_hours=hours))
            else:
                formats.append(FormatRequest(StorageFormat.oct, 1, "blocks", stabilised_at=stab))
                formats.append(FormatRequest(StorageFormat.ffpe, 1, "blocks", stabilised_at=stab, fixative=Fixative.nbf,
                                             fixation_end_at=fix_end))
                if r == 0:
                    formats.append(FormatRequest(StorageFormat.rnalater, 30, "mg", stabilised_at=stab + timedelta(minutes=1)))
            if model_consent and r == 0 and rng.random() < 0.6:
                formats.append(FormatRequest(StorageFormat.viable_cryo, 100, "mg", stabilised_at=stab + timedelta(minutes=rng.randint(5, 25))))
            collected = collection.collect_region(
                session, actor=tech, data=RegionCollect(case_code=case_code, kind=SiteKind.tumour_region, site_code=site, lesion_code=lesion_code, region_label=label, excised_at=excised, formats=formats, gross_description=rng.choice(["firm white tumour", "haemorrhagic nodule", "tan-grey, gritty", "necrotic centre"])),
            )
            _qc(session, rng, tech, collected.specimens, in_progress)
        if bone and not bone_marrow_done and not in_progress:
            bone_marrow_done = True
            excised = tick()
            collection.collect_region(
                session, actor=tech, data=RegionCollect(case_code=case_code, kind=SiteKind.bone_marrow, site_code="BONE_MARROW", excised_at=excised, formats=[FormatRequest(StorageFormat.viable_cryo, 1000, "ul", count=2, stabilised_at=excised + timedelta(minutes=30))]),
            )
    met_organs = {s for s in lesion_sites[1:] if s in NORMAL_TISSUES}
    normals = sorted(met_organs) + [t for t in rng.sample(NORMAL_TISSUES, 3) if t not in met_organs]
    for tissue in normals[: (2 if in_progress else 5)]:
        excised = tick()
        adjacent = tissue in met_organs and rng.random() < 0.5
        collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code=case_code, kind=SiteKind.normal_tissue, site_code=tissue, excised_at=excised, tissue_status="adjacent_normal" if adjacent else "normal", distance_to_tumour_mm=float(rng.choice([8, 12, 15, 25])) if adjacent else float(rng.choice([40, 60, 100])) if tissue in met_organs else None, formats=[
                FormatRequest(StorageFormat.snap_frozen, 50, "mg", stabilised_at=excised + timedelta(minutes=rng.randint(3, 12))),
                FormatRequest(StorageFormat.ffpe, 1, "blocks", stabilised_at=excised + timedelta(minutes=5), fixative=Fixative.nbf,
                              fixation_end_at=None if in_progress else excised + timedelta(hours=24)),
            ]),
        )
    if not in_progress:
        collection.update_autopsy_times(session, actor=tech, case_code=case_code, end_at=max(clock + timedelta(minutes=20), start + timedelta(hours=3)))
    if withdrawn:
        donors.withdraw_consent(
            session, actor=admin, donor_code=code, requested_by="next_of_kin",
            withdrawn_at=death_at + timedelta(days=rng.randint(60, 120)),
            reason="Family asked that the material no longer be used for research",
        )


def _qc(session: Session, rng: random.Random, tech: User, made: list[Specimen], in_progress: bool) -> None:
    """Pathology review on the FFPE/OCT block, DNA and RNA from the first snap-frozen piece, an aliquot now and then."""
    if in_progress:
        return
    cellularity = float(rng.choice([10, 15, 25, 35, 40, 50, 60, 70, 80, 90]))
    for specimen in made:
        if specimen.storage_format in (StorageFormat.ffpe, StorageFormat.oct):
            specimens.record_qc(session, actor=tech, code=specimen.code, tumour_cellularity_pct=cellularity,
                                necrosis_pct=float(rng.choice([0, 5, 10, 20, 40])), pathology_reviewer="Dr P. Nguyen",
                                at=specimen.collected_at + timedelta(days=rng.randint(3, 9)))
    frozen = [s for s in made if s.storage_format == StorageFormat.snap_frozen]
    if not frozen:
        return
    first = frozen[0]
    specimens.record_qc(session, actor=tech, code=first.code, tumour_cellularity_pct=cellularity,
                        at=first.collected_at + timedelta(days=5))
    when = first.collected_at + timedelta(days=rng.randint(10, 60))
    dna = specimens.derive(session, actor=tech, parent_code=first.code, material_type="dna", quantity=float(rng.randint(1500, 9000)),
                           unit="ng", parent_quantity_used=round(first.quantity * 0.4), concentration_ng_ul=round(rng.uniform(15, 120), 1), at=when)
    specimens.record_qc(session, actor=tech, code=dna.code, yield_ng=dna.quantity, a260_280=round(rng.uniform(1.7, 2.05), 2),
                        din=round(rng.uniform(5.0, 9.2), 1), at=when + timedelta(days=1))
    if rng.random() < 0.6:
        rna = specimens.derive(session, actor=tech, parent_code=first.code, material_type="rna", quantity=float(rng.randint(500, 4000)),
                               unit="ng", parent_quantity_used=round(first.quantity_remaining * 0.5), concentration_ng_ul=round(rng.uniform(10, 90), 1), at=when)
        specimens.record_qc(session, actor=tech, code=rna.code, yield_ng=rna.quantity, rin=round(rng.uniform(3.5, 8.8), 1),
                            a260_280=round(rng.uniform(1.9, 2.1), 2), at=when + timedelta(days=1))
    if len(frozen) > 1 and rng.random() < 0.3 and frozen[1].quantity >= 40:
        specimens.aliquot(session, actor=tech, parent_code=frozen[1].code, portions=[10, 10], at=when)


def _treatments(session: Session, rng: random.Random, tech: User, code: str, primary: Primary, her2: bool) -> None:
    if primary.site == "BREAST":
        pool = (HER2_TREATMENTS + BREAST_TREATMENTS[4:]) if her2 else BREAST_TREATMENTS
    else:
        pool = OTHER_TREATMENTS[primary.site]
    lines = rng.randint(2, min(5, len(pool)))
    start = rng.randint(900, 1800)
    for number, (agents, category) in enumerate(pool[:lines], start=1):
        length = rng.randint(90, 420)
        end = max(start - length, 5)
        donors.add_treatment_line(
            session, actor=tech, donor_code=code, line_number=number, agents=agents, category=category,
            intent="palliative" if number > 1 else rng.choice(["adjuvant", "palliative"]),
            start_days_before_death=start, end_days_before_death=end,
            best_response=rng.choice(["partial", "stable", "stable", "progressive"]) if number < lines else "progressive",
        )
        start = max(end - rng.randint(5, 40), 0)
        if start <= 5:
            break
    if primary.site in ("BREAST", "PROSTATE"):
        donors.add_treatment_line(
            session, actor=tech, donor_code=code, line_number=number + 1, agents=rng.choice(["zoledronic acid", "denosumab"]),
            category="bone_targeted", intent="palliative", start_days_before_death=rng.randint(300, 800),
            end_days_before_death=rng.randint(10, 60), best_response="not_evaluable",
        )
        if rng.random() < 0.5:
            donors.add_treatment_line(
                session, actor=tech, donor_code=code, line_number=number + 2, agents="stereotactic radiotherapy 8 Gy x 1",
                category="radiotherapy", intent="palliative", start_days_before_death=rng.randint(60, 200),
                end_days_before_death=None, best_response="stable",
            )
        if rng.random() < 0.5:
            donors.add_clinical_event(session, actor=tech, donor_code=code, kind=rng.choice(["fracture", "spinal_cord_compression", "hypercalcaemia"]),
                                      days_before_death=rng.randint(20, 400), site_code=rng.choice(["VERTEBRA_T12", "FEMUR", None]))


__all__ = ["DEMO_ACCOUNTS", "date", "ensure_demo_users", "has_users", "is_empty", "load_demo", "require_demo_mode"]
