"""``biobank print ...`` end to end on a migrated database: the PDFs hold the right codes in the right order, on
the paper the lab set; refusals exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.labels import LABEL_FORMATS, PAGE_SIZES_MM
from biobank.models import User
from tests.labels.test_labels_render import check_sheets
from tests.printables.reading import in_order, page_sizes_mm, text
from tests.queries.test_specimen_list import A, B, stock

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def bank(engine: Engine, tech: User, pi: User) -> Engine:
    with session_scope(engine) as session:
        stock(session, tech, pi)
    return engine


def test_a_pick_list_for_an_order_and_for_a_plan(db_url, bank, tmp_path: Path):
    order_pdf, plan_pdf = tmp_path / "order.pdf", tmp_path / "plan.pdf"
    code, out = run("print", "pick-list", "--order", "DO-1", "-o", str(order_pdf))
    assert code == 0, out
    assert out.strip() == f"wrote the pick list of DO-1 to {order_pdf} (A4)"
    printed = text(order_pdf.read_bytes())
    assert in_order(printed, [f"{B}VC1", f"{A}SF1"]) == [f"{A}SF1", f"{B}VC1"]  # FRZ1 before LN1
    code, out = run("print", "pick-list", "--plan", "WGS-1", "--output", str(plan_pdf))
    assert code == 0, out
    assert f"{A}SF1" in text(plan_pdf.read_bytes()) and "tumour" in text(plan_pdf.read_bytes())


def test_a_box_map_and_a_manifest(db_url, bank, tmp_path: Path):
    box_pdf, manifest = tmp_path / "box.pdf", tmp_path / "manifest.pdf"
    code, out = run("print", "box-map", "LNBOX1", "-o", str(box_pdf))
    assert code == 0, out
    assert in_order(text(box_pdf.read_bytes()), [f"{A}VC1", f"{B}VC1"]) == [f"{B}VC1", f"{A}VC1"]  # A2, A10
    code, out = run("print", "manifest", "DO-1", "-o", str(manifest))
    assert code == 0, out
    printed = text(manifest.read_bytes())
    assert "Shipment manifest: order DO-1" in printed and "Dr Lee, Crick" in printed and "Received by" in printed


def test_labels_for_codes_or_a_whole_box_on_the_paper_the_lab_set(db_url, bank, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BIOBANK_PAPER_SIZE", "Letter")
    get_settings.cache_clear()
    by_code, by_box = tmp_path / "codes.pdf", tmp_path / "box.pdf"
    code, out = run("print", "labels", f"{A}FF1", f"{B}FF1", "--format", "cassette", "-o", str(by_code))
    assert code == 0 and out.strip() == f"wrote cassette labels of 2 specimen(s) to {by_code} (Letter)", out
    check_sheets(by_code.read_bytes(), LABEL_FORMATS["cassette"], [f"{A}FF1", f"{B}FF1"], paper="Letter")
    code, out = run("print", "labels", "--box", "BOX1", "-o", str(by_box))
    assert code == 0, out
    assert page_sizes_mm(by_box.read_bytes()) == [PAGE_SIZES_MM["Letter"]]
    check_sheets(by_box.read_bytes(), LABEL_FORMATS["cryotube"], [f"{A}SF1", f"{A}SF2"], paper="Letter")
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pick-list", "-o", "x.pdf"], "exactly one"),
        (["pick-list", "--order", "DO-1", "--plan", "WGS-1", "-o", "x.pdf"], "exactly one"),
        (["pick-list", "--order", "DO-9", "-o", "x.pdf"], "DO-9"),
        (["box-map", "NOPE", "-o", "x.pdf"], "NOPE"),
        (["box-map", "R1", "-o", "x.pdf"], "holds containers"),
        (["box-map", "BOX1", "-o", "x.png"], "write a .pdf file"),
        (["manifest", "DO-9", "-o", "x.pdf"], "DO-9"),
        (["labels", "-o", "x.pdf"], "exactly one"),
        (["labels", f"{A}SF1", "--box", "BOX1", "-o", "x.pdf"], "exactly one"),
        (["labels", "--box", "BAG1", "-o", "x.pdf"], "nothing to label"),
        (["labels", f"{A}SF1", "--format", "tube", "-o", "x.pdf"], "cryotube"),
    ],
)
def test_refusals_exit_2_with_one_line_and_write_nothing(db_url, bank, tmp_path: Path, monkeypatch, args, message):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    code, out = run("print", *args)
    assert code == 2, out
    assert out.startswith("error: ") and message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    assert not list(out_dir.iterdir())


def test_every_print_command_has_help():
    code, out = run("print", "--help")
    assert code == 0
    for command in ("pick-list", "box-map", "manifest", "labels"):
        assert command in out
        code, help_text = run("print", command, "--help")
        assert code == 0 and "-o" in help_text, command
