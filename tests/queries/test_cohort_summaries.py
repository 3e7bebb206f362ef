"""The maintained cohort summaries (migration 0019) equal the full computation from the base tables, after a seeded
random sequence of writes (new material, aliquots, QC, disposals, status changes, corrections of the time of death and
of collection and stabilisation that move PMIs, a savepoint rolled back) and after the synthetic loader's bulk insert;
and every cohort figure read from them equals the figure computed from the base tables, with and without filters."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from benchmarks.synthetic import build
from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.timing import PMI_BANDS
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    CasePmiSummary,
    CohortSummary,
    Donor,
    PmiBinSummary,
    SamplingSite,
    SiteSummary,
    Specimen,
    SpecimenPmi,
    User,
)
from biobank.queries import cohort as q
from biobank.queries.cohort import IN_STOCK, CohortFilter
from biobank.queries.core import pmi_hours_expr
from biobank.services import collection, specimens, storage

FILTERS = (CohortFilter(), CohortFilter(pmi_band="0-4 h"), CohortFilter(pmi_band="4-6 h"), CohortFilter(pmi_band="12+ h"))


def _band(hours: float | None, postmortem: bool) -> str:
    if not postmortem or hours is None:
        return ""
    return next((label for label, low, high in PMI_BANDS if low <= hours < high), "")


def reference(session: Session) -> list[dict[str, Any]]:
    """Every specimen as the figures read it, computed from specimen, sampling_site and autopsy (the old way)."""
    statement = (
        select(Specimen.id, Specimen.donor_id, Specimen.sampling_site_id, SamplingSite.autopsy_id, SamplingSite.site_code,
               SamplingSite.kind, Specimen.lineage, Specimen.storage_format, Specimen.unit, Specimen.status,
               Specimen.quantity_remaining, pmi_hours_expr(), Specimen.stabilised_at)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]
        .join(Autopsy, Autopsy.id == SamplingSite.autopsy_id, isouter=True)  # type: ignore[arg-type]
    )
    rows = []
    for sid, donor, site, autopsy, code, kind, lineage, fmt, unit, status, qty, hours, stabilised in session.exec(statement).all():
        post = kind != "premortem_blood"
        rows.append({
            "specimen_id": sid, "donor_id": donor, "sampling_site_id": site, "autopsy_id": autopsy, "site_code": code,
            "postmortem": post, "lineage": lineage, "storage_format": fmt, "unit": unit, "status": status,
            "quantity_remaining": qty, "hours": hours,
            "basis": None if hours is None else ("stabilised" if stabilised is not None else "excised"),
            "band": _band(hours, post),
            "pmi_bin": math.floor(hours / 0.5) if post and lineage == "primary" and hours is not None else None,
        })
    return rows


def _stored(session: Session, model: Any, keys: tuple[str, ...], values: tuple[str, ...]) -> dict[tuple, tuple]:
    out = {}
    for row in session.exec(select(model)).all():
        if getattr(row, "specimens", 1) == 0:
            continue
        out[tuple(getattr(row, k) for k in keys)] = tuple(getattr(row, v) for v in values)
    return out


def assert_summaries_exact(session: Session) -> None:
    ref = reference(session)
    assert ref, "no material to compare"
    stored = {r.specimen_id: r for r in session.exec(select(SpecimenPmi)).all()}
    assert set(stored) == {r["specimen_id"] for r in ref}
    for r in ref:
        row = stored[r["specimen_id"]]
        for column, value in r.items():
            got = getattr(row, column)
            if column in ("hours", "quantity_remaining") and value is not None:
                assert got == pytest.approx(value, abs=1e-9), (column, r)
            else:
                assert got == value, (column, r, got)
    # the three summaries: nonzero rows equal the grouping of the reference rows
    cohort_keys = ("donor_id", "site_code", "postmortem", "lineage", "storage_format", "unit", "status", "band")
    expected_cohort: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    expected_sites: Counter[tuple] = Counter()
    expected_bins: Counter[tuple] = Counter()
    for r in ref:
        cell = expected_cohort[tuple(r[k] for k in cohort_keys)]
        cell[0] += 1
        cell[1] += r["quantity_remaining"]
        expected_sites[(r["sampling_site_id"], r["donor_id"], r["site_code"], r["postmortem"], r["band"])] += 1
        if r["pmi_bin"] is not None:
            expected_bins[(r["donor_id"], r["pmi_bin"])] += 1
    got_cohort = _stored(session, CohortSummary, cohort_keys, ("specimens", "quantity_remaining"))
    assert set(got_cohort) == set(expected_cohort)
    for key, (n, qty) in expected_cohort.items():
        assert got_cohort[key][0] == n and got_cohort[key][1] == pytest.approx(qty, abs=1e-6), key
    site_keys = ("sampling_site_id", "donor_id", "site_code", "postmortem", "band")
    assert {k: v[0] for k, v in _stored(session, SiteSummary, site_keys, ("specimens",)).items()} == dict(expected_sites)
    assert {k: v[0] for k, v in _stored(session, PmiBinSummary, ("donor_id", "pmi_bin"), ("specimens",)).items()} == dict(expected_bins)
    # the per-case bins (0022): count, sum, least and greatest of the hours of each case x bin x donor
    case_bins: dict[tuple, list[float]] = defaultdict(list)
    for r in ref:
        if r["pmi_bin"] is not None:
            case_bins[(r["autopsy_id"], r["pmi_bin"], r["donor_id"])].append(r["hours"])
    got_bins = _stored(session, CasePmiSummary, ("autopsy_id", "pmi_bin", "donor_id"),
                       ("specimens", "hours_sum", "hours_min", "hours_max"))
    assert set(got_bins) == set(case_bins)
    for key, hours in case_bins.items():
        n, total, low, high = got_bins[key]
        assert n == len(hours) and total == pytest.approx(sum(hours), abs=1e-6), key
        assert low == pytest.approx(min(hours), abs=1e-9) and high == pytest.approx(max(hours), abs=1e-9), key
    for f in FILTERS:
        assert_figures(session, ref, f)


def assert_figures(session: Session, ref: list[dict[str, Any]], f: CohortFilter) -> None:
    """Each figure read from the summaries equals the same figure computed in Python from the reference rows."""
    kept = [r for r in ref if not f.pmi_band or r["band"] == f.pmi_band]
    labels = dict(session.exec(select(AnatomicalSite.code, AnatomicalSite.label)).all())
    donors = dict(session.exec(select(Donor.id, Donor.code)).all())
    counts = q.cohort_counts(session, f)
    assert counts["specimens"] == len(kept)
    assert counts["primary_specimens"] == sum(r["lineage"] == "primary" for r in kept)
    assert counts["in_stock"] == sum(r["status"] in IN_STOCK for r in kept)
    assert counts["sampling_sites"] == len({r["sampling_site_id"] for r in kept})
    assert counts["donors"] == len(donors)

    binned = Counter(r["pmi_bin"] for r in kept if r["pmi_bin"] is not None)
    assert q.pmi_histogram(session, f) == [{"pmi_hours": b * 0.5, "specimens": n} for b, n in sorted(binned.items())]
    hourly = Counter(math.floor(r["hours"] / 1.0) for r in kept if r["pmi_bin"] is not None)
    assert q.pmi_histogram(session, f, bin_hours=1.0) == [{"pmi_hours": float(b), "specimens": n} for b, n in sorted(hourly.items())]
    assert q.pmi_histogram(session, f, bin_hours=0.25) == [
        {"pmi_hours": b * 0.25, "specimens": n}
        for b, n in sorted(Counter(math.floor(r["hours"] / 0.25) for r in kept if r["pmi_bin"] is not None).items())
    ]

    per_format_site = Counter((r["storage_format"], labels[r["site_code"]]) for r in kept)
    assert sorted((x["storage_format"], x["site"], x["specimens"]) for x in q.format_site_matrix(session, f)) == sorted(
        (fmt, s, n) for (fmt, s), n in per_format_site.items())

    stock: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for r in kept:
        cell = stock[(r["storage_format"], r["unit"])]
        cell[0] += 1
        if r["status"] in IN_STOCK:
            cell[1] += 1
            cell[2] += r["quantity_remaining"]
    got_stock = q.stock_by_format(session, f)
    assert [(x["storage_format"], x["unit"], x["specimens"], x["in_stock"]) for x in got_stock] == [
        (fmt, unit, c[0], c[1]) for (fmt, unit), c in sorted(stock.items())]
    for x in got_stock:
        assert x["quantity_remaining"] == pytest.approx(stock[(x["storage_format"], x["unit"])][2], abs=0.0051)

    sites: dict[tuple, set[int]] = defaultdict(set)
    for r in kept:
        if r["postmortem"]:
            sites[(donors[r["donor_id"]], labels[r["site_code"]])].add(r["sampling_site_id"])
    assert sorted((x["donor"], x["site"], x["sampling_sites"]) for x in q.donor_site_matrix(session, f)) == sorted(
        (d, s, len(ids)) for (d, s), ids in sites.items())
    page, page_donors, total = q.donor_site_page(session, f, limit=1, offset=0)
    assert total == len({d for d, _ in sites}) and len(page_donors) == min(1, total)
    assert all(x["donor"] in page_donors for x in page)

    overview = q.cohort_overview(session, f)  # the page's one pass gives the same figures
    assert overview["counts"] == counts
    assert sorted(overview["format_sites"], key=str) == sorted(q.format_site_matrix(session, f), key=str)
    assert [{**x, "quantity_remaining": None} for x in overview["stock"]] == [{**x, "quantity_remaining": None} for x in got_stock]
    for x, y in zip(overview["stock"], got_stock, strict=True):
        assert x["quantity_remaining"] == pytest.approx(y["quantity_remaining"], abs=0.0101)

    settings = get_settings()
    cases: dict[int, list[float]] = defaultdict(list)
    for r in kept:
        if r["pmi_bin"] is not None:
            cases[r["autopsy_id"]].append(r["hours"])
    case_codes = dict(session.exec(select(Autopsy.id, Autopsy.case_code)).all())
    got_cases = {c["case"]: c for c in q.case_pmi_summary(session, f)}
    assert set(got_cases) == {case_codes[a] for a in cases}
    for autopsy, hours in cases.items():
        c = got_cases[case_codes[autopsy]]
        assert c["specimens"] == len(hours)
        assert c["min_pmi_h"] == round(min(hours), 2) and c["max_pmi_h"] == round(max(hours), 2)
        assert c["mean_pmi_h"] == pytest.approx(sum(hours) / len(hours), abs=0.0051)
        assert c["within_target"] == round(sum(h <= settings.pmi_target_hours for h in hours) / len(hours), 3)
        assert c["past_limit"] == sum(h > settings.pmi_limit_hours for h in hours)


def _random_writes(engine: Any, admin: Any, rng: random.Random, steps: int) -> Counter[str]:
    done: Counter[str] = Counter()
    for _ in range(steps):
        with session_scope(engine) as session:
            codes = list(session.exec(select(Specimen.code).order_by(Specimen.code)).all())
            cases = list(session.exec(select(Autopsy.case_code).where(Autopsy.death_at.is_not(None)).order_by(Autopsy.case_code)).all())  # type: ignore[union-attr]
            code, case = rng.choice(codes), rng.choice(cases)
            op = rng.choice(["aliquot", "dispose", "status", "qc", "collected", "stabilised", "death", "site", "rollback"])
            savepoint = session.begin_nested()
            try:
                specimen = session.exec(select(Specimen).where(Specimen.code == code)).one()
                if op == "aliquot":
                    specimens.aliquot(session, actor=admin, parent_code=code, portions=[0.1])
                elif op == "dispose":
                    storage.dispose(session, actor=admin, code=code, reason="random test")
                elif op == "status":
                    specimen.status = rng.choice(["available", "reserved", "in_use", "depleted", "distributed"])
                    session.add(specimen)
                elif op == "qc":
                    specimens.correct_specimen(session, actor=admin, code=code, reason="re-weighed",
                                               quantity_remaining=round(specimen.quantity_remaining * rng.random(), 3))
                elif op == "collected":
                    specimens.correct_specimen(session, actor=admin, code=code, reason="clock was wrong",
                                               collected_at=specimen.collected_at - timedelta(minutes=rng.randint(1, 300)))
                elif op == "stabilised":
                    specimens.correct_specimen(session, actor=admin, code=code, reason="clock was wrong",
                                               stabilised_at=None if rng.random() < 0.3 else specimen.collected_at + timedelta(minutes=rng.randint(0, 600)))
                elif op == "death":
                    autopsy = session.exec(select(Autopsy).where(Autopsy.case_code == case)).one()
                    assert autopsy.death_at is not None
                    autopsy.death_at = autopsy.death_at - timedelta(minutes=rng.randint(-120, 240))
                    session.add(autopsy)
                elif op == "site":
                    site = session.get(SamplingSite, specimen.sampling_site_id)
                    assert site is not None
                    site.site_code = rng.choice(["LIVER", "LUNG", "BONE_SPINE", site.site_code])
                    session.add(site)
                else:  # a write rolled back leaves the summaries as they were
                    specimen.status = "depleted"
                    session.add(specimen)
                    session.flush()
                    raise RuntimeError("rolled back on purpose")
                session.flush()
                savepoint.commit()
                done[op] += 1
            except Exception:  # a write the rules refuse (or the one rolled back on purpose): nothing of it stays
                savepoint.rollback()
                done[f"{op} refused"] += 1
    return done


@pytest.mark.demo(2)
def test_the_summaries_equal_the_full_computation_after_random_writes(engine):
    with Session(engine, expire_on_commit=False) as session:
        admin = session.exec(select(User).where(User.role == "admin").limit(1)).one()
        assert_summaries_exact(session)
    done = _random_writes(engine, admin, random.Random(21), 60)
    assert {op for op in done if "refused" not in op} >= {
        "aliquot", "dispose", "status", "qc", "collected", "stabilised", "death", "site"}, done
    assert done["rollback refused"] >= 1
    with Session(engine) as session:
        assert_summaries_exact(session)
        band = CohortFilter(diagnoses=tuple(session.exec(select(Donor.primary_diagnosis).limit(1)).all()))  # type: ignore[arg-type]
        assert q.cohort_counts(session, band)["donors"] >= 1


@pytest.mark.demo(1)
def test_the_summaries_equal_the_full_computation_after_the_synthetic_loader(engine):
    build(engine, 2000)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(SpecimenPmi)).one() >= 2000
        assert_summaries_exact(session)


def test_collection_and_an_import_are_counted_in_the_writers_own_transaction(engine, tech):
    from biobank.imports.engine import run_import
    from tests.support.factories import collect, make_case

    with session_scope(engine) as session:
        make_case(session, tech)
        made = collect(session, tech, after_death=5.0)
        # before the commit, in the writer's own transaction
        assert session.exec(select(func.sum(CohortSummary.specimens))).one() == len(made)
        assert q.pmi_histogram(session, CohortFilter(pmi_band="4-6 h"))
    content = ("code,donor_code,sampling_site,storage_format,quantity,collected_at,collected_by\n"
               "X-1,RA-0001,L02-A,LN2,50 mg,2026-03-14 05:00,AB\n")
    with session_scope(engine) as session:
        report = run_import(session, actor=tech, kind="specimens", source=content.encode(), filename="s.csv")
        assert report.ok, report.errors
    with Session(engine) as session:
        assert session.exec(select(SpecimenPmi.specimen_id).join(Specimen, Specimen.id == SpecimenPmi.specimen_id)  # type: ignore[arg-type]
                            .where(Specimen.code == "X-1")).one()
        assert_summaries_exact(session)
        death = session.exec(select(Autopsy.death_at).where(Autopsy.case_code == "RAP-1")).one()
    assert death is not None
    with session_scope(engine) as session:
        collection.update_autopsy_times(session, actor=tech, case_code="RAP-1", death_at=death - timedelta(hours=3),
                                        reason="death certificate")
    with Session(engine) as session:
        assert_summaries_exact(session)
        assert not q.pmi_histogram(session, CohortFilter(pmi_band="4-6 h"))


def test_the_generation_moves_with_what_the_figures_read_and_not_with_a_sign_in(engine, db_url, tech):
    from dashboards.data import cohort as data_cohort
    from dashboards.data import core as data
    from tests.support.factories import collect, make_case

    with session_scope(engine) as session:
        make_case(session, tech)
        code = collect(session, tech)[0]
    with Session(engine) as session:
        before = q.generation(session)
    with session_scope(engine) as session:  # a sign-in: the user's row only
        user = session.exec(select(User).where(User.username == tech.username)).one()
        user.failed_signins = 0
        user.full_name = "T. Tech"
        session.add(user)
    with Session(engine) as session:
        assert q.generation(session) == before
    data.clear_caches()
    data_cohort.cohort.clear()  # type: ignore[attr-defined]
    shown = data_cohort.cohort(db_url, CohortFilter())
    assert shown["counts"]["in_stock"] == shown["counts"]["specimens"]
    data.clear_caches()  # what every write and sign-in does: the cohort's figures stay cached, and right
    assert data_cohort.cohort(db_url, CohortFilter())["counts"] == shown["counts"]
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=code, reason="thawed")
    with Session(engine) as session:
        assert q.generation(session) > before
    again = data_cohort.cohort(db_url, CohortFilter())  # the write moved the generation: a fresh read
    assert again["counts"]["in_stock"] == shown["counts"]["in_stock"] - 1
    page = data_cohort.donor_sites_page(db_url, CohortFilter(), 1)
    assert page["total"] == 1 and page["donors"] == ["RA-0001"] and not page["rows"].empty


@pytest.mark.demo(2)
def test_the_cohort_page_draws_one_page_of_donors_and_says_how_many_in_all(db_url, monkeypatch):
    from dashboards.data import cohort as data_cohort
    from tests.support.apptest import assert_no_exception, make_app

    monkeypatch.setattr(data_cohort, "DONORS_PER_PAGE", 1)
    at = make_app(db_url, page="cohort")
    at.session_state["username"] = "pi"
    at.run()
    assert_no_exception(at)
    assert any(n.label == "Page (of 2)" for n in at.number_input)
    assert any("Donors 1–1 of 2 with sampling sites" in c.value for c in at.caption)
    at.number_input[0].set_value(2).run()
    assert_no_exception(at)
    assert any("Donors 2–2 of 2" in c.value for c in at.caption)
