"""The ``collection_log`` import (issue 19): a lab's wide log of 205 rows (4 cases, midnight crossings, mixed date
styles, Latin-1, synonyms, qualifiers, units in the header and in cells, notes with fixation and decalcification, a
duplicate row) comes in with one command and a mapping file, every coercion noted; a taken position is refused with
nothing written, and once fixed the file imports; a dry run writes nothing; an upsert of the same log changes nothing;
bad mapping files are errors naming the key; and over generated mappings and logs the import raises nothing but the
project's errors and never writes on error (both databases)."""

from __future__ import annotations

import datetime as dt
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from biobank.cli import app
from biobank.domain.errors import BiobankError, ValidationError
from biobank.imports.kinds.collection_log import run_collection_log
from biobank.imports.mapping import FIELDS, load_mapping, parse_mapping
from biobank.imports.registry import import_kind_names
from biobank.models import Autopsy, Container, Donor, Lesion, SamplingSite, Specimen, SpecimenLocation, User
from tests.support.collection_log import HEADERS, MAPPING, write_log
from tests.support.dbtools import snapshot


def _user(engine, username: str = "tech") -> User:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username=username, role="technician")
        session.add(user)
        session.commit()
        return user


def _state(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every table but the CLI token's (its last use is stamped by each command)."""
    return {k: v for k, v in snapshot(engine).items() if k != "api_token"}


def _cli(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, ["import", "collection_log", *args, "--user", "tech"])


def test_the_kind_is_listed_and_has_no_template():
    assert "collection_log" in import_kind_names()
    result = CliRunner().invoke(app, ["template", "collection_log"])
    assert result.exit_code != 0 and "--map" in result.output


def test_the_log_imports_in_one_command_every_coercion_noted(engine, db_url, tmp_path, monkeypatch):
    from tests.support.cli_auth import isolate_cli_config, sign_in_cli

    _user(engine)
    sign_in_cli(db_url, "tech", isolate_cli_config(tmp_path, monkeypatch))
    runner = CliRunner()
    before = _state(engine)

    # a position taken twice: refused, naming the row and column, and nothing is written
    taken = write_log(tmp_path, taken=True, name="taken.csv")
    refused = _cli(runner, str(taken.path), "--map", str(taken.mapping), "--create-containers")
    assert refused.exit_code == 2, refused.output
    assert f"error: row {taken.taken_row}, Position: box B1 position A1: already holds a specimen" in refused.output
    assert "nothing was written" in refused.output
    assert _state(engine) == before

    # without --create-containers the missing box path is an error naming it
    log = write_log(tmp_path)
    assert log.rows >= 200
    missing = _cli(runner, str(log.path), "--map", str(log.mapping), "--dry-run")
    assert missing.exit_code == 2 and "container path 'LN2-T1/B1': LN2-T1, B1 not found" in missing.output

    dry = _cli(runner, str(log.path), "--map", str(log.mapping), "--create-containers", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert _state(engine) == before

    errors = tmp_path / "report.csv"
    done = _cli(runner, str(log.path), "--map", str(log.mapping), "--create-containers", "--errors", str(errors))
    assert done.exit_code == 0, done.output
    assert f"{log.rows} row(s) read; inserted {log.specimens}" in done.output
    assert "created: 4 donor(s), 4 case(s), 16 lesion(s), 44 sampling site(s)" in done.output
    report = errors.read_text(encoding="utf-8")
    for coercion in (
        "00:50 is earlier than the death (2026-03-14 22:40): read as the next day, 2026-03-15 00:50",  # midnight
        "'LN2' read as snap_frozen ([values.preservation])",                   # the lab's value map
        "'snap-frozen' read as snap_frozen",                                  # a synonym
        "'viable (DMSO)' read as viable_cryo, note 'DMSO'",                    # a qualifier
        "'4 mL' read as 4000 ul",                                              # a unit in the cell
        "unit mg from the header or [units]",                                  # a unit in the header
        "'Rib 6 (R)' read as RIB, right, rib 6",                               # a site label with side and level
        "lesion 'LN': kind not given, recorded as unknown (flagged)",          # a default, flagged
        "autopsy start not given: estimated as the first sample time",         # case 2
        "excision time not given: the earliest stabilisation",                 # case 4, lesion LN
        "decalcification edta 48 h read from the notes",
        "fixation 24 h read from the notes",
        f"same as row {log.duplicate_row - 1} in every mapped column: skipped as a duplicate",
        "container LN2-T1 created as a ln2_tank",
    ):
        assert coercion in report, coercion

    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Donor)).one() == 4
        cases = {a.case_code: a for a in session.exec(select(Autopsy)).all()}
        assert {c: (a.status, a.start_estimated, a.end_estimated) for c, a in cases.items()} == {
            "AUT-01": ("complete", False, False), "AUT-02": ("complete", True, True),
            "AUT-03": ("complete", False, False), "AUT-04": ("complete", False, False)}
        first = cases["AUT-01"]
        start = first.start_at if first.start_at.tzinfo else first.start_at.replace(tzinfo=dt.UTC)
        assert start == dt.datetime(2026, 3, 15, 0, 50, tzinfo=dt.UTC)  # London is on UTC in March
        kinds = sorted({(lesion.kind, lesion.site_code) for lesion in session.exec(select(Lesion)).all()})
        assert kinds == [("metastasis", "FEMUR"), ("metastasis", "RIB"), ("primary", "LIVER"),
                         ("unknown", "LYMPH_NODE_AXILLARY")]
        sites = session.exec(select(SamplingSite)).all()
        assert {s.site_description for s in sites if s.site_code == "RIB"} == {"rib 6"}
        estimated = {(s.code, s.excised_estimated) for s in sites if s.excised_estimated}
        assert estimated == {("L04-A", True)}
        specimens = session.exec(select(Specimen)).all()
        assert len(specimens) == log.specimens
        assert {s.collected_by for s in specimens} == {"JÖ", "M. Brûlé"}
        assert any(s.storage_format == "viable_cryo" and "DMSO" in (s.notes or "") for s in specimens)
        bone = [s for s in specimens if s.storage_format == "ffpe" and s.decalcification_agent == "edta"]
        assert bone and all(s.decalcification_hours == 48 and s.fixation_end_at is not None for s in bone)
        assert any(s.material_type == "whole_blood" and s.quantity == 4000 and s.unit == "ul" for s in specimens)
        assert session.exec(select(func.count()).select_from(SpecimenLocation)).one() == log.specimens
        drawer = session.exec(select(Container).where(Container.code == "FFPE-D1")).one()
        assert drawer.kind == "cassette_drawer"
    after = _state(engine)

    # the same log again: everything is already recorded, nothing changes
    again = _cli(runner, str(log.path), "--map", str(log.mapping), "--create-containers")
    assert again.exit_code == 0, again.output
    assert f"inserted 0, updated 0, unchanged {log.rows - 1}" in again.output
    assert _state(engine) == after


def test_bad_mapping_files_are_errors_naming_the_key(tmp_path):
    good = load_mapping(MAPPING.encode())
    assert good.header_of("quantity") == "Weight (mg)" and good.dayfirst
    assert set(FIELDS) >= set(good.columns.values())
    cases = {
        '[columns]\n"Case" = "cases"\n': ("map.columns", "not a field"),
        '[columns]\n"Case" = "case"\n': ("map.columns", "maps no column to donor"),
        MAPPING + '[extra]\na = 1\n': ("map.extra", "not a key of a mapping file"),
        MAPPING.replace('date_order = "DMY"', 'date_order = "DDM"'): ("map.options.date_order", "DMY, MDY, YMD"),
        MAPPING.replace('"Europe/London"', '"Mars/Olympus"'): ("map.options.timezone", "not a time zone"),
        "\n".join("fixation_hours = '(?P<hrs>1)'" if line.startswith("fixation_hours") else line
                  for line in MAPPING.splitlines()): ("map.patterns", "(?P<hours>...)"),
        MAPPING.replace('"P" = "primary"', '"P" = "primaryy"'): ("map.values", "choose one of"),
        MAPPING + '[units]\n"Weight (mg)" = "stones"\n': ("map.units", "not a unit"),
        "columns = [": ("map", "not a TOML file"),
    }
    for text, (field, words) in cases.items():
        with pytest.raises(ValidationError) as caught:
            load_mapping(text.encode())
        assert (caught.value.field or "").startswith(field) and words in str(caught.value), (text, caught.value)
    with pytest.raises(ValidationError, match="cannot be read"):
        load_mapping(tmp_path / "absent.toml")


# ------------------------------------------------------------------------------- generated mappings and logs

_CELLS = {
    "Case": st.sampled_from(["AUT-1", "AUT-2", "", "bad code!", "x" * 40]),
    "Patient": st.sampled_from(["RA-2001", "RA-2002", "", "nobody here"]),
    "Date of death": st.sampled_from(["01/02/2026", "2026-02-01", "3 Feb 2026", "31/02/2026", "tomorrow", "",
                                      "01/02/2099"]),
    "Time of death": st.sampled_from(["22:00", "07:15", "25:00", "", "noon"]),
    "Fridge": st.sampled_from(["23:00", "", "01/02/2026 23:30", "x"]),
    "Start": st.sampled_from(["", "23:30", "00:30", "21:00"]),
    "Site": st.sampled_from(["Liver", "Femur L", "Rib 6 (R)", "qwerty", "", "Spleen (normal)", "Blood"]),
    "Lesion": st.sampled_from(["P", "M1", "", "LN"]),
    "Region": st.sampled_from(["A", "B", "", "zz9", "a"]),
    "Preservation": st.sampled_from(["LN2", "FFPE", "viable (DMSO)", "Whole blood EDTA", "ice cream", ""]),
    "Excised": st.sampled_from(["", "23:40", "00:40", "junk"]),
    "Into fixative/LN2": st.sampled_from(["", "23:45", "00:45", "01/02/2026 23:50"]),
    "Weight (mg)": st.sampled_from(["50", "4 mL", "", "-3", "2 g", "lots"]),
    "Pieces": st.sampled_from(["", "1", "2", "0", "99"]),
    "Box": st.sampled_from(["", "LN2-T9/BX1", "NOPE", "FRZ/R/B"]),
    "Position": st.sampled_from(["", "A1", "Z99", "A2"]),
    "Notes": st.sampled_from(["", "fixed 24h", "decal EDTA 12 h", "formic 2.5h"]),
}
_GOOD = {"Case": "AUT-1", "Patient": "RA-2001", "Date of death": "2026-02-01", "Time of death": "22:00",
         "Fridge": "23:00", "Start": "", "Site": "Liver", "Lesion": "P", "Region": "A", "Preservation": "LN2",
         "Excised": "23:40", "Into fixative/LN2": "00:45", "Weight (mg)": "50", "Pieces": "1", "Box": "", "Position": "",
         "Notes": ""}
_rows = st.lists(st.one_of(st.just(_GOOD), st.just({**_GOOD, "Region": "B", "Preservation": "FFPE", "Weight (mg)": ""}),
                           st.fixed_dictionaries(_CELLS)), min_size=1, max_size=6)
_mappings = st.fixed_dictionaries({
    "drop": st.sets(st.sampled_from([h for h in _CELLS if h not in ("Case", "Patient", "Site", "Preservation")]),
                    max_size=2),
    "order": st.sampled_from(["DMY", "MDY", "YMD"]),
    "create": st.booleans(),
    "extra_value": st.sampled_from(["", '[values.site]\n"qwerty" = "LIVER"\n', '[values.site]\n"qwerty" = "qwerty"\n']),
})


def _mapping_text(drop: set[str], order: str, extra: str) -> str:
    lines = ["[columns]"]
    names = {"Case": "case", "Patient": "donor", "Date of death": "death_date", "Time of death": "death_time",
             "Fridge": "refrigerated_time", "Start": "autopsy_start", "Site": "site", "Lesion": "lesion",
             "Region": "region", "Preservation": "preservation", "Excised": "excised_time",
             "Into fixative/LN2": "stabilised_time", "Weight (mg)": "quantity", "Pieces": "pieces", "Box": "box",
             "Position": "position", "Notes": "notes"}
    lines += [f'"{h}" = "{f}"' for h, f in names.items() if h not in drop]
    return "\n".join(lines) + f"\n{extra}[patterns]\ndecalcification = '(?i)(?P<agent>EDTA|formic)\\D*(?P<hours>\\d+(?:\\.\\d+)?)\\s*h'\n" \
        f'[options]\ndate_order = "{order}"\n'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, options=_mappings, noise=st.text(string.printable, max_size=5))
def test_generated_mappings_and_logs_raise_only_project_errors_and_never_write_on_error(engine, rows, options, noise):
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == "fuzz")).first()
        if user is None:
            user = User(username="fuzz", role="technician")
            session.add(user)
            session.commit()
        header = list(_CELLS)
        body = "\n".join(",".join('"' + r[h].replace('"', "") + '"' for h in header) for r in rows)
        content = (",".join(header) + "\n" + body + "\n" + (noise.replace("\n", " ") if noise.strip() else "")).encode()
        try:
            mapping = parse_mapping(__import__("tomllib").loads(
                _mapping_text(options["drop"], options["order"], options["extra_value"])))
        except BiobankError:
            return
        counts = [session.exec(select(func.count()).select_from(model)).one()
                  for model in (Donor, Autopsy, Lesion, SamplingSite, Specimen, Container, SpecimenLocation)]
        try:
            report = run_collection_log(session, actor=user, source=content, filename="log.csv", mapping=mapping,
                                        create_containers=options["create"])
        except BiobankError:
            report = None
        after = [session.exec(select(func.count()).select_from(model)).one()
                 for model in (Donor, Autopsy, Lesion, SamplingSite, Specimen, Container, SpecimenLocation)]
        event("imported" if report is not None and report.ok else "refused")
        if report is None or not report.ok:
            assert after == counts
        for error in report.errors if report else []:
            assert error.message and (error.row == 0 or error.row >= 2)
        session.rollback()


def test_headers_are_those_of_the_mapping():
    mapping = load_mapping(MAPPING.encode())
    assert list(mapping.columns) == list(HEADERS)


def test_an_autopsy_upsert_status_follows_its_times(engine):
    """Item 7: a case opened without times, then upserted with its start and end, is complete (not scheduled)."""
    from biobank.db.engine import session_scope
    from biobank.imports.engine import run_import

    user = _user(engine)

    def load(kind: str, text: str, mode: str = "create") -> None:
        with session_scope(engine) as session:
            report = run_import(session, actor=user, kind=kind, source=text.encode(), filename=f"{kind}.csv",
                                mode=mode)
            assert report.ok, report.errors

    load("donors", "code,sex\nRA-3001,female\n")
    load("autopsies", "donor_code,case_code,death_at\nRA-3001,AUT-31,2026-03-01 10:00\n")
    with Session(engine) as session:
        assert session.exec(select(Autopsy.status)).one() == "scheduled"
    load("autopsies", "donor_code,case_code,death_at,start_at\nRA-3001,AUT-31,2026-03-01 10:00,2026-03-01 12:00\n",
         "upsert")
    with Session(engine) as session:
        assert session.exec(select(Autopsy.status)).one() == "in_progress"
    load("autopsies", "donor_code,case_code,death_at,start_at,end_at\n"
         "RA-3001,AUT-31,2026-03-01 10:00,2026-03-01 12:00,2026-03-01 15:00\n", "upsert")
    with Session(engine) as session:
        assert session.exec(select(Autopsy.status)).one() == "complete"


def test_the_import_page_offers_the_collection_log_with_a_mapping_uploader(db_url, engine):
    from tests.support.apptest import assert_no_exception, make_app

    _user(engine)
    at = make_app(db_url, page="import_data")
    at.session_state["username"] = "tech"
    at.run()
    at.selectbox(key="import_kind").set_value("collection_log").run()
    assert_no_exception(at)
    assert any("--suggest-map" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "import_log_confirm"]


def test_the_suggested_mapping_of_the_log_is_a_valid_mapping_file(tmp_path):
    """`--suggest-map` writes a mapping this import reads, naming the same fields as the hand-written one."""
    from biobank.imports.suggest_map import suggest_map

    log = write_log(tmp_path, cases=1)
    text, _unmapped = suggest_map(log.path)
    assert set(load_mapping(text.encode()).columns.values()) == set(load_mapping(log.mapping).columns.values())
