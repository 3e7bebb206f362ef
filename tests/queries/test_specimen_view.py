"""The specimen view read with plain SQL on a bare driver connection (``biobank.db.direct``,
``biobank.queries.specimen_view``, issue 21):
for every specimen of the demo cohort it answers exactly what the ORM reads of the services answer (the same keys in
the same order, the same values and types: JSON-identical), derived material, a withdrawn donor's, pre-mortem blood,
stored, checked-out and unstored specimens among them; a code in any letter case is found as ``get_specimen`` finds
it, and a missing one is the same error; ``biobank specimen show`` prints, text and ``--json``, what it printed from
the ORM's answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.direct import reading
from biobank.domain.errors import NotFoundError
from biobank.domain.sprec import sprec_code
from biobank.domain.timing import cold_interval, specimen_pmi
from biobank.models import AnatomicalSite, Autopsy, Checkout, Donor, Lesion, SamplingSite, Specimen, User
from biobank.queries import core, specimen_view
from biobank.queries import storage as storage_reads
from biobank.services.custody import history
from biobank.services.donors import consent_state
from biobank.services.specimens import get_specimen

pytestmark = pytest.mark.demo(6)  # six donors: the fifth (RA-0005) withdrew consent

runner = CliRunner()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def orm_detail(session: Session, code: str) -> dict[str, Any]:
    """The specimen view as the ORM reads it through the services (the reads ``queries.core.specimen_detail`` made
    before the Core read): the reference the Core read must match."""
    specimen = get_specimen(session, code)
    site = session.get(SamplingSite, specimen.sampling_site_id)
    donor = session.get(Donor, specimen.donor_id)
    assert site is not None and donor is not None
    autopsy = session.exec(select(Autopsy).where(Autopsy.donor_id == donor.id)).first()
    anatomical = session.get(AnatomicalSite, site.site_code)
    lesion = session.get(Lesion, site.lesion_id) if site.lesion_id else None
    ancestors = []
    current = specimen
    while current.parent_id is not None:
        parent = session.get(Specimen, current.parent_id)
        assert parent is not None
        ancestors.append(parent.code)
        current = parent
    children = session.exec(select(Specimen.code, Specimen.lineage, Specimen.material_type)
                            .where(Specimen.parent_id == specimen.id).order_by(Specimen.code)).all()
    lineage = {"ancestors": list(reversed(ancestors)),
               "children": [{"code": c, "lineage": lin, "material_type": m} for c, lin, m in children],
               "primary": current.code}
    primary = current
    death_at = autopsy.death_at if autopsy else None
    pmi = specimen_pmi(death_at, primary.collected_at, primary.stabilised_at)
    sprec = None
    if site.kind != "premortem_blood":
        sprec = sprec_code(
            material_type=primary.material_type, storage_format=primary.storage_format,
            bone=anatomical is not None and anatomical.category == "bone", death_at=death_at,
            collected_at=primary.collected_at, stabilised_at=primary.stabilised_at,
            fixation_end_at=primary.fixation_end_at, fixative=primary.fixative,
            temperature=storage_reads.storage_temperature(session, primary),
        )
    events = history(session, specimen.id)  # type: ignore[arg-type]
    named = {e.user_id for e in events} | {specimen.created_by_id}
    users = dict(session.exec(select(User.id, User.username).where(col(User.id).in_([i for i in named if i is not None]))).all())
    consent = consent_state(session, donor)
    cold = cold_interval(autopsy.refrigerated_at if autopsy else None, primary.collected_at)
    return {
        "code": specimen.code, "barcode": specimen.barcode, "donor": donor.code,
        "case": autopsy.case_code if autopsy else None, "sampling_site": site.code, "site_kind": site.kind,
        "anatomical_site": site.site_code, "anatomical_site_label": anatomical.label if anatomical else None,
        "laterality": site.laterality, "lesion": lesion.code if lesion else None,
        "lesion_kind": lesion.kind if lesion else None, "lineage": specimen.lineage,
        "parent": lineage["ancestors"][-1] if lineage["ancestors"] else None,
        "material_type": specimen.material_type, "storage_format": specimen.storage_format,
        "status": specimen.status, "quantity": specimen.quantity, "quantity_remaining": specimen.quantity_remaining,
        "unit": specimen.unit, "concentration_ng_ul": specimen.concentration_ng_ul,
        "freeze_thaw_count": specimen.freeze_thaw_count, "collected_at": _iso(specimen.collected_at),
        "collected_by": specimen.collected_by,
        "entered_by": users.get(specimen.created_by_id) if specimen.created_by_id is not None else None,
        "excised_at": _iso(site.excised_at), "excised_estimated": site.excised_estimated,
        "stabilised_at": _iso(specimen.stabilised_at), "fixation_end_at": _iso(specimen.fixation_end_at),
        "fixative": specimen.fixative, "decalcification_agent": specimen.decalcification_agent,
        "decalcification_hours": specimen.decalcification_hours,
        "pmi_hours": round(pmi.hours, 2) if pmi else None, "pmi_basis": pmi.basis.value if pmi else None,
        "pmi": pmi.describe() if pmi else None,
        "cold_interval_hours": round(cold.total_seconds() / 3600, 2) if cold is not None else None,
        "sprec": sprec.code if sprec else None, "sprec_version": sprec.version if sprec else None,
        "notes": specimen.notes,
        "qc": {
            "tumour_cellularity_pct": specimen.tumour_cellularity_pct, "necrosis_pct": specimen.necrosis_pct,
            "pathology_reviewer": specimen.pathology_reviewer, "yield_ng": specimen.yield_ng,
            "a260_280": specimen.a260_280, "rin": specimen.rin, "din": specimen.din,
            "dv200_pct": specimen.dv200_pct, "a260_230": specimen.a260_230, "slide_ref": specimen.slide_ref,
            "extraction_method": specimen.extraction_method, "extraction_kit": specimen.extraction_kit,
            "elution_volume_ul": specimen.elution_volume_ul,
        },
        "receptors": {"er": specimen.er_status, "pr": specimen.pr_status, "her2": specimen.her2_status},
        "location": storage_reads.location_label(session, specimen),
        "version": specimen.version,
        "lineage_tree": lineage,
        "consent": asdict(consent) | {"scopes": sorted(consent.scopes)},
        "custody": [{"at": _iso(e.occurred_at), "kind": e.kind, "user": users.get(e.user_id),
                     "from": e.from_location, "to": e.to_location, "note": e.note} for e in events],
    }


def deferred(engine: Engine) -> Engine:
    """The engine reading without SQLite's write lock, so that a session and a connection read side by side."""
    return engine.execution_options(sqlite_begin="DEFERRED")


@contextmanager
def bare(engine: Engine) -> Iterator[Any]:
    """A driver connection to the engine's database as ``biobank specimen show`` opens it (``biobank.db.direct``)."""
    with reading(engine.url.render_as_string(hide_password=False)) as connection:
        assert type(connection).__module__.split(".")[0] in ("sqlite3", "psycopg")
        yield connection


def same(data: dict[str, Any]) -> str:
    """JSON as the command line and the API print it: key order and types (true vs 1, 5.0 vs 5) count."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def test_every_demo_specimen_reads_as_the_orm_reads_it(engine):
    with Session(deferred(engine)) as session, bare(engine) as connection:
        codes = session.exec(select(Specimen.code).order_by(Specimen.code)).all()
        seen: dict[str, int] = {}
        for code in codes:
            expected = orm_detail(session, code)
            got = specimen_view.specimen_detail(connection, code)
            assert same(got) == same(expected), code
            assert list(got) == list(expected)
            for kind, hit in [
                ("derived", got["parent"] is not None),
                ("aliquot of a derivative", len(got["lineage_tree"]["ancestors"]) >= 2),
                ("with children", bool(got["lineage_tree"]["children"])),
                ("withdrawn donor", got["consent"]["withdrawn"]),
                ("premortem blood", got["site_kind"] == "premortem_blood"),
                ("stored", got["location"] is not None),
                ("not stored", got["location"] is None),
                ("checked out", (got["location"] or "").endswith("(checked out)")),
                ("with SPREC", got["sprec"] is not None),
                ("with custody", bool(got["custody"])),
                ("estimated excision", bool(got["excised_estimated"])),
                ("lesion", got["lesion"] is not None),
                ("no lesion", got["lesion"] is None),
            ]:
                seen[kind] = seen.get(kind, 0) + bool(hit)
    missing = sorted(kind for kind, n in seen.items() if n == 0 and kind != "estimated excision")  # next test
    assert missing == [], f"the demo cohort has no specimen {missing}: {seen}"
    assert len(codes) > 100


def test_an_estimated_excision_reads_as_a_boolean(engine):
    """The demo records every excision time as known: one marked estimated, then read both ways."""
    with Session(engine) as session:
        site = session.exec(select(SamplingSite).where(SamplingSite.kind != "premortem_blood")
                            .order_by(SamplingSite.code)).first()
        assert site is not None
        site.excised_estimated = True
        session.add(site)
        session.commit()
        code = session.exec(select(Specimen.code).where(Specimen.sampling_site_id == site.id)).first()
        assert code is not None
    with Session(deferred(engine)) as session, bare(engine) as connection:
        got = specimen_view.specimen_detail(connection, code)
        assert got["excised_estimated"] is True
        assert same(got) == same(orm_detail(session, code))


def test_a_checked_out_specimen_says_so(engine):
    with Session(deferred(engine)) as session, bare(engine) as connection:
        code = session.exec(select(Specimen.code).join(Checkout, col(Checkout.specimen_id) == col(Specimen.id))
                            .where(col(Checkout.returned_at).is_(None))).first()
        assert code is not None, "the demo has a specimen out on a bench"
        got = specimen_view.specimen_detail(connection, code)
        assert got["location"].endswith(" (checked out)")
        assert same(got) == same(orm_detail(session, code))


def test_a_code_in_any_letter_case_with_spaces_is_found(engine):
    with Session(deferred(engine)) as session, bare(engine) as connection:
        code = session.exec(select(Specimen.code).where(col(Specimen.parent_id).is_not(None)).order_by(Specimen.code)).first()
        assert code is not None
        for typed in (code.lower(), f"  {code.swapcase()} ", code.title()):
            assert same(specimen_view.specimen_detail(connection, typed)) == same(orm_detail(session, typed))


def test_a_code_stored_in_mixed_case_is_found_in_any_case_but_never_guessed_between_two(engine):
    """The third step of ``by_code``: ``upper(code)`` through its index; two codes differing only in case are not
    found (neither is guessed), as ``get_specimen`` answers."""
    with Session(engine) as session:
        first, second = session.exec(select(Specimen).where(col(Specimen.parent_id).is_(None))
                                     .order_by(Specimen.code).limit(2)).all()
        mixed = first.code[:3].lower() + first.code[3:]
        second_id = second.id
        first.code = mixed
        session.add(first)
        session.commit()
    with Session(deferred(engine)) as session, bare(engine) as connection:
        typed = mixed.swapcase()
        got = specimen_view.specimen_detail(connection, typed)
        assert got["code"] == mixed
        assert same(got) == same(orm_detail(session, typed))
    with Session(engine) as session:
        other = session.get(Specimen, second_id)
        assert other is not None
        other.code = mixed[:1] + mixed[1:].upper()  # 'rA0001-...' beside 'ra0001-...'
        session.add(other)
        session.commit()
    with Session(deferred(engine)) as session, bare(engine) as connection:
        typed = mixed.upper()
        with pytest.raises(NotFoundError) as expected:
            get_specimen(session, typed)
        with pytest.raises(NotFoundError) as got_error:
            specimen_view.specimen_detail(connection, typed)
        assert str(got_error.value) == str(expected.value)
        assert specimen_view.specimen_detail(connection, mixed)["code"] == mixed  # as stored: found


@pytest.mark.parametrize("typed", ["RA0001-L99A-SF1", "  ra0001-l02a-sf ", "", "nothing'here"])
def test_a_missing_code_is_the_error_get_specimen_raises(engine, typed):
    with Session(deferred(engine)) as session, bare(engine) as connection:
        with pytest.raises(NotFoundError) as expected:
            get_specimen(session, typed)
        with pytest.raises(NotFoundError) as got:
            specimen_view.specimen_detail(connection, typed)
    assert (str(got.value), got.value.field, got.value.value) == (
        str(expected.value), expected.value.field, expected.value.value)
    assert str(got.value) == f"specimen {typed.strip()!r} not found"


def test_queries_core_reads_through_the_same_function(engine):
    with Session(deferred(engine)) as session, bare(engine) as connection:
        codes = session.exec(select(Specimen.code).order_by(Specimen.code).limit(5)).all()
        for code in codes:
            assert same(core.specimen_detail(session, code)) == same(specimen_view.specimen_detail(connection, code))


def test_core_sees_what_its_session_has_not_written_yet(engine):
    """As any ORM query would: the session's pending changes are flushed before the read."""
    with Session(engine) as session:
        specimen = session.exec(select(Specimen).order_by(Specimen.code)).first()
        assert specimen is not None
        specimen.notes = "moved to the cold room"
        assert core.specimen_detail(session, specimen.code)["notes"] == "moved to the cold room"
        session.rollback()


def _codes_to_show(engine) -> list[str]:
    """A derived specimen with custody, a withdrawn donor's, a pre-mortem draw, a stored and an unstored one."""
    with Session(deferred(engine)) as session, bare(engine) as connection:
        details = [specimen_view.specimen_detail(connection, c)
                   for c in session.exec(select(Specimen.code).order_by(Specimen.code)).all()]
    picks = [
        lambda d: d["parent"] is not None and d["custody"],
        lambda d: d["consent"]["withdrawn"],
        lambda d: d["site_kind"] == "premortem_blood",
        lambda d: d["location"] is not None and d["excised_estimated"] is False,
        lambda d: d["location"] is None,
    ]
    return [next(d["code"] for d in details if pick(d)) for pick in picks]


def test_specimen_show_prints_what_it_printed_from_the_orm(engine, monkeypatch):
    codes = _codes_to_show(engine)
    with Session(engine) as session:
        expected = {code: orm_detail(session, code) for code in codes}
    for code in codes:
        for flags in ([], ["--json"]):
            shown = runner.invoke(app, ["specimen", "show", code.lower(), *flags])
            with monkeypatch.context() as patched:
                patched.setattr(specimen_view, "specimen_detail", lambda _connection, _code, c=code: expected[c])
                reference = runner.invoke(app, ["specimen", "show", code, *flags])
            assert (shown.exit_code, reference.exit_code) == (0, 0), shown.output + reference.output
            assert shown.output == reference.output, (code, flags)
    missing = runner.invoke(app, ["specimen", "show", "RA0001-L99A-SF1"])
    assert missing.exit_code == 2
    assert missing.output == "error: specimen 'RA0001-L99A-SF1' not found\n"
