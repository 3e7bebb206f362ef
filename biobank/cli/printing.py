"""``biobank print ...``: pick lists, box maps, shipment manifests and label reprints as PDF, on the lab's paper
(``BIOBANK_PAPER_SIZE``: A4 or Letter)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import fail, handle_errors, read
from biobank.config import get_settings
from biobank.printables import box_map_pdf, labels_pdf, manifest_pdf, pick_list_pdf

print_app = typer.Typer(
    help="Printable PDFs on the lab's paper (BIOBANK_PAPER_SIZE): pick lists, box maps, manifests, labels.",
    no_args_is_help=True,
)

OutputOption = Annotated[Path, typer.Option("-o", "--output", help="PDF file to write.")]


def _check(output: Path) -> None:
    if output.suffix.lower() != ".pdf":
        raise fail(f"output={str(output)!r}: write a .pdf file")


def _write(output: Path, data: bytes, what: str) -> None:
    output.write_bytes(data)
    typer.echo(f"wrote {what} to {output} ({get_settings().paper_size})")


@print_app.command("pick-list")
@handle_errors
def print_pick_list(
    output: OutputOption,
    order: Annotated[str | None, typer.Option("--order", help="Distribution order code: its items.")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Analysis plan code: its included specimens.")] = None,
) -> None:
    """A pick list sorted by freezer, rack, box and position, with a box to tick for each specimen."""
    _check(output)
    if bool(order) == bool(plan):
        raise fail("give --order CODE or --plan CODE (exactly one)")
    _write(output, read(pick_list_pdf, order=order, plan=plan), f"the pick list of {order or plan}")


@print_app.command("box-map")
@handle_errors
def print_box_map(
    box: Annotated[str, typer.Argument(help="Box (or bag, drawer, slide box) code.")],
    output: OutputOption,
) -> None:
    """A box drawn as its grid (rows and columns labelled, each specimen's code in its cell), then its contents."""
    _check(output)
    _write(output, read(box_map_pdf, box), f"the map of {box}")


@print_app.command("manifest")
@handle_errors
def print_manifest(
    order: Annotated[str, typer.Argument(help="Distribution order code.")],
    output: OutputOption,
) -> None:
    """The shipment manifest of an order: recipient, purpose, items and quantities, consent note, signatures."""
    _check(output)
    _write(output, read(manifest_pdf, order), f"the manifest of {order}")


@print_app.command("labels")
@handle_errors
def print_labels(
    output: OutputOption,
    codes: Annotated[list[str] | None, typer.Argument(help="Specimen codes.")] = None,
    box: Annotated[str | None, typer.Option("--box", help="Every specimen in this box, in position order.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="cryotube, cassette or slide.")] = "cryotube",
    skip: Annotated[int, typer.Option("--skip", help="Cells of a partly used first sheet to leave empty.")] = 0,
) -> None:
    """Reprint labels for specimens, or for every specimen in a box."""
    _check(output)
    if bool(codes) == bool(box):
        raise fail("give specimen codes or --box BOX (exactly one)")
    data = read(labels_pdf, codes=codes or (), box=box, fmt=fmt, skip=skip)
    _write(output, data, f"{fmt} labels" + (f" of box {box}" if box else f" of {len(codes or [])} specimen(s)"))


__all__ = ["print_app"]
