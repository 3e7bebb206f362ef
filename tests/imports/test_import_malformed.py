"""Hypothesis: malformed files never raise an unhandled error and never change the database."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import run_import
from biobank.models import User
from tests.support.dbtools import snapshot
from tests.support.factories import collect, make_case

HEADER = ["code", "parent_code", "donor_code", "sampling_site", "storage_format", "quantity", "collected_at",
          "stabilised_at", "tumour_cellularity_pct"]
GOOD = ["Z-{n}", "", "RA-0001", "L02-A", "snap frozen", "20 mg", "2026-03-14 05:00", "2026-03-14 05:04", "40%"]

#: Each breaks one rule; at least one goes into every file, so no generated file is valid.
BREAKERS = {
    "wrong_type": {5: "twenty"},
    "bad_unit": {5: "20 parsecs"},
    "unknown_parent": {1: "NO-SUCH-PARENT", 2: "", 3: ""},
    "before_death": {6: "2026-03-13 20:00"},
    "stabilised_first": {7: "2026-03-14 04:00"},
    "bad_vocab": {4: "cryo"},
    "over_100": {8: "140"},
    "dst_gap": {6: "2026-03-29 01:30"},
    "unknown_donor": {2: "ZZ-9999"},
    "control_chars": {0: "Z-\x00"},
    "duplicate": {},
}
junk_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def malformed_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=0, max_size=300))
    header = list(HEADER)
    if draw(st.booleans()):
        header.remove(draw(st.sampled_from(["code", "storage_format", "quantity"])))  # a required column missing
    rows = [[cell.format(n=n) for cell in GOOD] for n in range(draw(st.integers(0, 4)))]
    for row in rows:  # random junk in random cells of the otherwise good rows
        if draw(st.integers(0, 3)) == 0:
            row[draw(st.integers(0, len(row) - 1))] = draw(junk_text)
    broken = draw(st.lists(st.sampled_from(sorted(BREAKERS)), min_size=1, max_size=3))
    for index, name in enumerate(broken):
        row = [cell.format(n=100 + index) for cell in GOOD]
        if name == "duplicate":
            row[0] = "Z-DUP"
            rows.append(list(row))
        for position, value in BREAKERS[name].items():
            row[position] = value
        rows.append(row)
    order = draw(st.permutations(range(len(rows))))
    keep = [HEADER.index(name) for name in header]
    lines = [",".join(header)] + [",".join(_quote(rows[i][k]) for k in keep) for i in order]
    data = ("\n".join(lines) + "\n").encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])),
                                           errors="replace")
    if draw(st.integers(0, 5)) == 0:  # garbage bytes in front (never inside a breaking cell)
        data = draw(st.binary(max_size=40)) + data
    return data


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in ',"\n\r') else cell


@pytest.fixture
def case(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=malformed_files(), mode=st.sampled_from(["create", "upsert"]))
def test_malformed_specimen_files_are_reported_and_change_nothing(
    engine: Engine, tech: User, case: None, data: bytes, mode: str
) -> None:
    before = snapshot(engine)
    with session_scope(engine) as session:
        report = run_import(session, actor=tech, kind="specimens", source=data, filename="upload.csv", mode=mode)
    assert not report.ok
    assert report.errors and all(e.message for e in report.errors)
    assert snapshot(engine) == before
