"""Import of the freezer layout, storage placements, derived models and their passages: the services' rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import ImportReport, run_import
from biobank.models import User
from biobank.queries import derived as derived_reads
from biobank.queries import storage as storage_reads
from biobank.services import derived, storage
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from tests.support.dbtools import snapshot
from tests.support.factories import by_format, donor_with_material, donor_with_region

LAYOUT = """code,kind,parent_code,name
UH,site,,University Hospital
LAB1,room,UH,
FRZ1,Freezer,LAB1,-80 upright
R1,rack,FRZ1,
BOX1,box 9x9,R1,
BAG1,bag,FRZ1,
CAB1,rt_cabinet,LAB1,
DRAWER1,cassette_drawer,CAB1,
"""


def do_import(engine: Engine, actor: User, kind: str, content: str, **options) -> ImportReport:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return run_import(session, actor=actor, kind=kind, source=content.encode(), filename=f"{kind}.csv", **options)


def refused(engine: Engine, actor: User, kind: str, content: str, **options) -> set[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Import that must be refused as a whole and change nothing; returns the (row, column) of its errors."""
    before = snapshot(engine)
    report = do_import(engine, actor, kind, content, **options)
    assert not report.ok and not report.written
    assert snapshot(engine) == before
    assert all(e.message and e.row for e in report.errors), report.errors
    return {(e.row, e.column) for e in report.errors}


def twice_unchanged(engine: Engine, actor: User, kind: str, content: str) -> None:
    before = snapshot(engine)
    for _ in range(2):
        report = do_import(engine, actor, kind, content, mode="upsert")
        assert report.ok and report.inserted == report.updated == 0 and report.unchanged == report.rows, report.errors
    assert snapshot(engine) == before


@pytest.fixture
def stocked(engine: Engine, tech: User) -> dict[str, str]:
    """The layout imported, and one donor's region in five formats (snap_frozen x2, oct, ffpe, viable_cryo, fresh)."""
    assert do_import(engine, tech, "containers", LAYOUT).ok
    with session_scope(engine) as session:
        made = donor_with_region(session, tech)
        return {fmt: by_format(made, fmt)[0] for fmt in ("snap_frozen", "oct", "ffpe", "viable_cryo", "fresh")}


def test_a_freezer_layout_imports_with_grids_temperatures_and_parents_from_earlier_rows(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "containers", LAYOUT)
    assert report.ok and report.inserted == 8, report.errors
    with session_scope(engine) as session:
        tree = {row["code"]: row for row in storage_reads.tree(session)}
        box = storage_reads.box_view(session, "BOX1")
    assert tree["BOX1"]["path"] == "UH/LAB1/FRZ1/R1/BOX1" and tree["BOX1"]["temperature"] == "-60to-85"
    assert (box["rows"], box["cols"], box["capacity"]) == (9, 9, 81)
    assert tree["DRAWER1"]["temperature"] == "RT" and tree["FRZ1"]["name"] == "-80 upright"
    twice_unchanged(engine, tech, "containers", LAYOUT)


def test_containers_follow_the_kind_rules_and_name_parents_that_exist(engine: Engine, tech: User) -> None:
    content = (
        "code,kind,parent_code\n"
        "UH,site,\n"
        "BOX0,box_9x9,\n"          # only a site stands alone
        "FRZ1,freezer,UH\n"        # a site holds rooms
        "R1,rack,FRZX\n"           # unknown parent
        "BOX2,box_9x9,LAB1\n"      # parent defined later in the file
        "LAB1,room,UH\n"
        "LAB2,roomy,UH\n"          # not a kind
    )
    assert refused(engine, tech, "containers", content) == {
        (3, "parent_code"), (4, "kind"), (5, "parent_code"), (6, "parent_code"), (8, "kind")}


def test_upsert_cannot_move_a_container(engine: Engine, tech: User) -> None:
    do_import(engine, tech, "containers", LAYOUT)
    moved = LAYOUT.replace("BAG1,bag,FRZ1,", "BAG1,bag,R1,")
    assert refused(engine, tech, "containers", moved, mode="upsert") == {(7, "parent_id")}


def test_placements_store_specimens_with_a_custody_event_each(engine: Engine, tech: User, stocked: dict[str, str]) -> None:
    content = (
        "specimen_code,container_code,position,placed_at\n"
        f"{stocked['snap_frozen']},BOX1,a1,2026-03-14 09:00\n"
        f"{stocked['oct']},BOX1, B2 ,2026-03-14 09:00\n"
        f"{stocked['viable_cryo']},BAG1,,\n"
        f"{stocked['ffpe']},DRAWER1,7,2026-03-15 10:00\n"
    )
    report = do_import(engine, tech, "placements", content)
    assert report.ok and report.inserted == 4, report.errors
    with session_scope(engine) as session:
        found = {code: storage_reads.find(session, code) for code in stocked.values() if code != stocked["fresh"]}
    assert found[stocked["snap_frozen"]]["location"] == "UH/LAB1/FRZ1/R1/BOX1:A1"
    assert found[stocked["oct"]]["position"] == "B2"
    assert found[stocked["viable_cryo"]]["location"] == "UH/LAB1/FRZ1/BAG1"
    assert found[stocked["ffpe"]]["location"] == "UH/LAB1/CAB1/DRAWER1:7"
    with engine.connect() as conn:
        events = conn.execute(text(
            "SELECT s.code, e.to_location, e.user_id FROM custody_event e JOIN specimen s ON s.id = e.specimen_id"
            " WHERE e.kind = 'stored' ORDER BY e.id")).all()
    assert [(code, where) for code, where, _ in events] == [
        (stocked["snap_frozen"], "UH/LAB1/FRZ1/R1/BOX1:A1"), (stocked["oct"], "UH/LAB1/FRZ1/R1/BOX1:B2"),
        (stocked["viable_cryo"], "UH/LAB1/FRZ1/BAG1"), (stocked["ffpe"], "UH/LAB1/CAB1/DRAWER1:7")]
    assert {user for _, _, user in events} == {tech.id}
    twice_unchanged(engine, tech, "placements", content)


def test_placements_keep_one_position_one_specimen_and_suitable_temperatures(
    engine: Engine, tech: User, stocked: dict[str, str]
) -> None:
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[stocked["oct"]], box_code="BOX1", at="A1")
    s = stocked
    content = (
        "specimen_code,container_code,position\n"
        f"{s['snap_frozen']},BOX1,A1\n"      # taken by the OCT block
        f"{s['viable_cryo']},BOX1,J1\n"       # not on a 9x9 grid
        f"{s['ffpe']},BOX1,C1\n"              # FFPE does not go to -80
        f"{s['fresh']},BOX1,D1\n"             # fresh tissue is never stored
        "NOPE,BOX1,E1\n"                      # unknown specimen
        f"{s['viable_cryo']}x,R1,\n"          # unknown specimen
    )
    errors = refused(engine, tech, "placements", content)
    assert errors == {(2, "position"), (3, "position"), (4, "container_code"), (5, "container_code"),
                      (6, "specimen_code"), (7, "specimen_code")}
    content = (
        "specimen_code,container_code,position\n"
        f"{s['snap_frozen']},R1,\n"           # a rack holds boxes
        f"{s['viable_cryo']},BAG1,A1\n"       # a bag has no grid
        f"{s['oct']},BOX1,B1\n"               # already stored (create mode)
        f"{s['ffpe']},DRAWER1,\n"             # a grid needs a position
    )
    before = snapshot(engine)
    report = do_import(engine, tech, "placements", content)
    assert snapshot(engine) == before
    assert {(e.row, e.column) for e in report.errors} == {
        (2, "container_code"), (3, "position"), (4, "specimen_code"), (5, "position")}
    assert "upsert" in next(e.message for e in report.errors if e.row == 4)


def test_two_rows_of_one_file_cannot_share_a_position(engine: Engine, tech: User, stocked: dict[str, str]) -> None:
    content = f"specimen_code,container_code,position\n{stocked['snap_frozen']},BOX1,A1\n{stocked['oct']},BOX1,A1\n"
    errors = refused(engine, tech, "placements", content)
    assert errors == {(3, "position")}


DAY0 = date(2026, 3, 14)


@pytest.fixture
def material(engine: Engine, tech: User, death) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death)
        donor_with_material(session, tech, death=death, code="RA-0002", scopes=frozenset({"research_use"}))
        return {key: s.code for key, s in made.items()}


def models_csv(material: dict[str, str]) -> str:
    return (
        "code,kind,source_code,status,initiated_on,established_on,failed_on,host_strain_name,medium,matrix,"
        "growth_properties\n"
        f"ORG-1,organoid,{material['L02-fresh']},growing,{DAY0 + timedelta(days=1)},,,,IntestiCult,None,Embedded 3D\n"
        f"PDX-1,PDX,{material['L01-viable_cryo']},,{DAY0 + timedelta(days=1)},,,NSG,,,\n"
        f"ORG-2,organoid,{material['L01-fresh']},failed,{DAY0 + timedelta(days=1)},,{DAY0 + timedelta(days=20)},,,,\n"
    )


PASSAGES = (
    "model_code,label,parent_label,passaged_on,latency_days,doubling_time_hours,distributed_on,distributed_to\n"
    "PDX-1,P0,,2026-03-15,,,,\n"
    "PDX-1,P1,P0,2026-05-20,66,,,\n"
    "PDX-1,P2,P1,2026-07-01,40,,2026-07-10,Lab of Dr Who\n"
    "PDX-1,P2-B,P1,2026-07-01,,,,\n"
    "ORG-1,P0,,2026-03-15,,52.5,,\n"
    "ORG-2,P0,,2026-03-20,,,,\n"
)


def test_models_with_passages_import_as_a_tree_with_custody_on_the_source(
    engine: Engine, tech: User, material: dict[str, str]
) -> None:
    report = do_import(engine, tech, "models", models_csv(material))
    assert report.ok and report.inserted == 3, report.errors
    report = do_import(engine, tech, "passages", PASSAGES)
    assert report.ok and report.inserted == 6, report.errors
    with session_scope(engine) as session:
        detail = derived_reads.model_detail(session, "PDX-1")
        organoid = derived_reads.model_detail(session, "ORG-1")
    assert detail["passages"] == 4 and detail["newest_passage"] == "P2-B"
    (p0,) = detail["passage_tree"]
    (p1,) = p0["children"]
    assert [(c["label"], c["number"]) for c in p1["children"]] == [("P2", 2), ("P2-B", 2)]
    assert p1["children"][0]["distributed_to"] == "Lab of Dr Who"
    assert (organoid["status"], organoid["matrix"], organoid["growth_properties"]) == ("growing", "none", "embedded_3d")
    with engine.connect() as conn:
        events = conn.execute(text("SELECT note FROM custody_event WHERE kind = 'derived' ORDER BY id")).scalars().all()
    assert events == ["model ORG-1 (organoid) initiated; imported", "model PDX-1 (pdx) initiated; imported",
                      "model ORG-2 (organoid) initiated; imported"]
    twice_unchanged(engine, tech, "models", models_csv(material))
    twice_unchanged(engine, tech, "passages", PASSAGES)


def test_models_need_living_consented_material_and_dates_that_fit_the_status(
    engine: Engine, tech: User, material: dict[str, str]
) -> None:
    with session_scope(engine) as session:
        other = session.execute(text("SELECT code FROM specimen WHERE code LIKE 'RA0002%' AND storage_format = 'fresh'"
                                     " ORDER BY code")).scalars().first()
    content = (
        "code,kind,source_code,status,initiated_on,established_on,failed_on,host_strain_name,medium\n"
        f"M-1,organoid,{material['L02-snap_frozen']},,2026-03-15,,,,\n"   # not living material
        f"M-2,organoid,{other},,2026-03-15,,,,\n"                          # no consent to model derivation
        f"M-3,organoid,{material['L02-fresh']},established,2026-03-15,,,,\n"  # established without the day
        f"M-4,pdx,{material['L02-fresh']},,2026-03-15,,,,\n"              # a PDX names its host strain
        f"M-5,organoid,{material['L02-fresh']},,2026-03-15,,,NSG,\n"      # host strain is PDX-only
        f"M-6,organoid,{material['L02-fresh']},growing,2026-03-15,,2026-03-20,,\n"  # failed_on on a growing model
        f"M-7,organoid,{material['L02-fresh']},,2026-03-01,,,,\n"         # before the source was collected
        f"M-8,organoid,NOPE,,2026-03-15,,,,\n"                            # unknown source
        f"M 9,organoid,{material['L02-fresh']},,2026-03-15,,,,\n"         # unsafe code
    )
    assert refused(engine, tech, "models", content) == {
        (2, "source_code"), (3, "source_code"), (4, "established_on"), (5, "host_strain_name"),
        (6, "host_strain_name"), (7, "failed_on"), (8, "initiated_on"), (9, "source_code"), (10, "code")}


def test_passages_follow_their_model_and_parent(engine: Engine, tech: User, material: dict[str, str]) -> None:
    assert do_import(engine, tech, "models", models_csv(material)).ok
    content = (
        "model_code,label,parent_label,passaged_on,latency_days,doubling_time_hours\n"
        "PDX-1,P0,,2026-03-10,,\n"        # before the model was initiated
        "PDX-1,P1,P0,2026-04-01,,\n"      # its parent was refused
        "PDX-1,P5,PX,2026-04-01,,\n"      # unknown parent
        "ORG-1,P0,,2026-03-20,12,\n"      # latency is for a PDX
        "PDX-1,Q0,,2026-03-20,,30\n"      # doubling time is for a culture
        "ORG-2,P0,,2026-05-01,,\n"        # after the model failed
        "NOPE,P0,,2026-03-20,,\n"         # unknown model
        "ORG-1,P1,P2,2026-04-01,,\n"      # parent given later in the file
        "ORG-1,P2,,2026-03-20,,\n"
    )
    assert refused(engine, tech, "passages", content) == {
        (2, "passaged_on"), (3, "parent_label"), (4, "parent_label"), (5, "latency_days"),
        (6, "doubling_time_hours"), (7, "passaged_on"), (8, "model_code"), (9, "parent_label")}


def test_an_upsert_moves_a_model_only_along_allowed_status_changes_and_establishes_only_after_qc(
    engine: Engine, tech: User, material: dict[str, str]
) -> None:
    do_import(engine, tech, "models", models_csv(material))
    do_import(engine, tech, "passages", PASSAGES)
    header = "code,kind,source_code,initiated_on,status,established_on,failed_on,medium,matrix,growth_properties\n"
    org1 = f"ORG-1,organoid,{material['L02-fresh']},{DAY0 + timedelta(days=1)}"
    growing_to_cryobanked = f"{header}{org1},cryobanked,2026-06-01,,IntestiCult,none,embedded_3d\n"
    failed_to_growing = f"{header}ORG-2,organoid,{material['L01-fresh']},{DAY0 + timedelta(days=1)},growing,,,,,\n"
    established = f"{header}{org1},established,2026-06-01,,IntestiCult,none,embedded_3d\n"
    assert refused(engine, tech, "models", failed_to_growing, mode="upsert") == {(2, "status")}
    assert refused(engine, tech, "models", growing_to_cryobanked, mode="upsert") == {(2, "status")}
    assert refused(engine, tech, "models", established, mode="upsert") == {(2, "status")}
    with session_scope(engine) as session:
        derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code="ORG-1", passage_label="P0", tested_on=date(2026, 4, 1), identity_method="STR", identity_match_pct=95, mycoplasma="negative"))
    report = do_import(engine, tech, "models", established, mode="upsert")
    assert report.ok and report.updated == 1, report.errors
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status, established_on FROM derived_model WHERE code = 'ORG-1'")).one()[0] == "established"


def test_passage_specimens_import_links_each_to_its_passage_and_checks_the_rules(engine, tech, death) -> None:
    """Specimens a passage produced: donor, site and parent from the model's source, passage_id set, a 'derived'
    custody event at the time taken; unknown passages, materials a passage cannot yield, formats the material is
    not kept in, and times before the passage are refused with nothing written."""
    from datetime import date

    from sqlalchemy import text

    from biobank.db.engine import session_scope
    from biobank.services import derived
    from tests.imports.test_import_engine import do_import
    from tests.support.dbtools import snapshot

    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death)
        model = derived.create_model(session, actor=tech, data=ModelCreate(source_code=made["L02-fresh"].code, kind="organoid", initiated_on=date(2026, 3, 15), matrix="matrigel_bme"))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=date(2026, 3, 15)))
        code, source = model.code, made["L02-fresh"].code
    header = "code,model_code,passage_label,material_type,storage_format,quantity,collected_at\n"
    before = snapshot(engine)
    bad = do_import(engine, tech, "passage_specimens", header + "".join([
        f"V-1,{code},P9,cells,viable cryo,1000000 cells,\n",          # no such passage
        f"V-2,{code},P0,plasma,frozen,100 ul,\n",                     # a passage yields no plasma
        f"V-3,{code},P0,cells,FFPE,1000000 cells,\n",                 # cells are not kept in FFPE
        f"V-4,{code},P0,cells,viable cryo,1000000 cells,2026-03-14 10:00\n",  # before the passage day
    ]))
    assert {(e.row, e.column) for e in bad.errors} == {
        (2, "passage_label"), (3, "material_type"), (4, "storage_format"), (5, "collected_at")}
    assert snapshot(engine) == before
    good = do_import(engine, tech, "passage_specimens", header + f"V-5,{code},P0,cells,viable cryo,2e6 cells,\n"
                     f"V-6,{code},P0,tissue,snap frozen,20 mg,2026-03-16 09:30\n")
    assert good.ok, good.errors
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.code, s.lineage, p.code, mp.label, s.material_type, s.quantity, s.unit, s.collected_at, "
            "s.donor_id = p.donor_id, s.sampling_site_id = p.sampling_site_id, e.kind, e.occurred_at = s.collected_at "
            "FROM specimen s JOIN specimen p ON p.id = s.parent_id JOIN model_passage mp ON mp.id = s.passage_id "
            "JOIN custody_event e ON e.specimen_id = s.id WHERE s.code LIKE 'V-%' ORDER BY s.code")).all()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("V-5", "derivative", source, "P0", "cells", 2e6, "cells"),
        ("V-6", "derivative", source, "P0", "tissue", 20.0, "mg"),
    ]
    assert str(rows[0][7])[:16] == "2026-03-15 12:00" and str(rows[1][7])[:16] == "2026-03-16 09:30"
    assert all(r[8] and r[9] and r[10] == "derived" and r[11] for r in rows)


def test_model_qc_imports_judged_by_the_settings_and_refuses_what_the_service_refuses(
    engine: Engine, tech: User, material: dict[str, str]
) -> None:
    """QC rows of tested passages: passed or failed as the settings judge them (a failed row's reasons become its
    notes when it has none); unknown passages, tests before the passage, identity without its method or match, and
    rows that measured nothing are refused with nothing written; a second upsert changes nothing."""
    assert do_import(engine, tech, "models", models_csv(material)).ok
    assert do_import(engine, tech, "passages", PASSAGES).ok
    header = "model_code,passage_label,tested_on,identity_method,identity_match_pct,mycoplasma,mouse_content_pct,notes\n"
    assert refused(engine, tech, "model_qc", header + "".join([
        "PDX-1,P9,2026-06-01,STR,95,negative,,\n",    # no such passage
        "PDX-1,P1,2026-05-01,STR,95,negative,,\n",    # before the passage (2026-05-20)
        "PDX-1,P1,2026-06-01,,95,negative,,\n",       # a match without its method
        "PDX-1,P1,2026-06-02,SNP,,,,\n",              # a method without its match
        "PDX-1,P1,2026-06-03,,,,,\n",                 # nothing measured
    ])) == {(2, "passage_label"), (3, "tested_on"), (4, "identity_method"), (5, "identity_match_pct"), (6, "mycoplasma")}
    good = header + ("PDX-1,P1,2026-06-01,STR,95,negative,5,\n"
                     "PDX-1,P2,2026-07-05,STR,95,positive,,\n"
                     "ORG-1,P0,2026-04-01,SNP,99.5,negative,,checked by core\n")
    report = do_import(engine, tech, "model_qc", good)
    assert report.ok and report.inserted == 3, report.errors
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.code, p.label, q.passed, q.notes FROM model_qc q JOIN model_passage p ON p.id = q.passage_id "
            "JOIN derived_model m ON m.id = p.model_id ORDER BY q.id")).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("PDX-1", "P1", True), ("PDX-1", "P2", False), ("ORG-1", "P0", True)]
    assert "mycoplasma" in rows[1][3] and rows[2][3] == "checked by core" and rows[0][3] is None
    twice_unchanged(engine, tech, "model_qc", good)
