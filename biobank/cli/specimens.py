"""Processing commands on ``biobank specimen``: aliquot, derive (extract), qc and dispose, each on one or several codes
or a scanned list (``--from-file``), all or nothing; ``--labels FILE`` prints the new tubes' labels in the same step.

Numbers are taken as typed and read by the services' input models, so a mistyped one is refused in the same words
as on the dashboard ("A260/280 (1.8x) must be a number"), naming the field.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    WhenOption,
    acting_user,
    echo_err,
    emit,
    fail,
    handle_errors,
    read,
    typed_time,
    unit_of_work,
)
from biobank.cli.core import specimen_app
from biobank.domain.scanning import parse_codes

if TYPE_CHECKING:
    from biobank.services.worklist import WorkResult

CodesArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Specimen codes or barcodes, in any letter case (or give --from-file).", show_default=False),
]
FromFileOption = Annotated[
    Path | None,
    typer.Option("--from-file", help="A scanned or pasted list of codes, one per line or separated by spaces or "
                                     "commas ('-' reads standard input).", show_default=False),
]
LabelsOption = Annotated[
    Path | None,
    typer.Option("--labels", help="Write the labels of the new tubes to this PDF in the same step (one file per "
                                  "label stock when they need several: FILE-slide.pdf ...).", show_default=False),
]
LabelStockOption = Annotated[
    str | None,
    typer.Option("--label-stock", help="cryotube, cassette or slide; default: by what was made (slides for sections, "
                                       "cassettes for FFPE blocks, tubes otherwise).", show_default=False),
]


def _number(flag: str, text: str) -> Any:
    """An option whose number is taken as typed (the input model reads it, or names it in its refusal)."""
    return typer.Option(flag, help=text, metavar="NUMBER", show_default=False)


def _scanned(codes: list[str] | None, from_file: Path | None) -> list[str]:
    """The codes given on the command line, then those in the file (or standard input)."""
    texts = list(codes or [])
    if from_file is not None:
        if str(from_file) == "-":
            texts.append(sys.stdin.read())
        else:
            try:
                texts.append(from_file.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError) as exc:
                raise fail(f"--from-file {from_file}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not texts:
        raise fail("give specimen codes or --from-file FILE")
    return texts


def _check_labels(labels: Path | None, stock: str | None) -> None:
    """Before anything is written: the labels go to a .pdf in a folder that exists, on a known stock."""
    if stock is not None:
        from biobank.labels import LABEL_FORMATS  # reportlab: loaded only when labels are asked for

        if stock not in LABEL_FORMATS:
            raise fail(f"--label-stock {stock}: choose one of {', '.join(sorted(LABEL_FORMATS))}")
    if labels is None:
        return
    if labels.suffix.lower() != ".pdf":
        raise fail(f"--labels {labels}: write a .pdf file")
    if not labels.parent.is_dir():
        raise fail(f"--labels {labels}: the folder {labels.parent} does not exist")


def _write_labels(result: WorkResult, labels: Path, stock: str | None) -> list[str]:
    """The new specimens' labels, after the commit: one file, or one per stock when they need several."""
    from biobank.config import get_settings
    from biobank.printables import labels_pdf  # reportlab: loaded when labels are asked for

    groups = {stock: result.new_codes} if stock is not None else result.labels
    written = []
    for fmt, codes in groups.items():
        path = labels if len(groups) == 1 else labels.with_name(f"{labels.stem}-{fmt}{labels.suffix}")
        path.write_bytes(read(labels_pdf, codes=codes, fmt=fmt))
        written.append(f"{path} ({len(codes)} {fmt} label{'s' if len(codes) != 1 else ''}, {get_settings().paper_size})")
    return written


def _process(
    operation: str,
    codes: list[str] | None,
    from_file: Path | None,
    request: dict[str, Any],
    *,
    when: str | None,
    user: str | None,
    as_json: bool,
    labels: Path | None = None,
    stock: str | None = None,
) -> None:
    """Apply ``operation`` to every specimen named, in one unit of work, then print what was done (and the labels)."""
    from biobank.services import worklist  # the services behind processing: loaded when a command processes

    scanned = parse_codes(_scanned(codes, from_file))
    _check_labels(labels, stock)
    at = typed_time("when", when)
    with unit_of_work() as session:
        result = worklist.apply(session, actor=acting_user(session, user), codes=scanned, operation=operation,
                                request=request, at=at)
    written = _write_labels(result, labels, stock) if labels is not None and result.new_codes else []
    rows = [{"code": d.code, "made": ", ".join(d.made), "done": d.note} for d in result.done]
    if result.duplicates:
        echo_err(f"note: scanned more than once, processed once: {', '.join(result.duplicates)}")
    if as_json:
        emit({"operation": operation, "done": [{"code": d.code, "made": list(d.made), "done": d.note} for d in result.done],
              "new_codes": result.new_codes, "duplicates": list(result.duplicates), "labels": written}, as_json=True)
        return
    emit(rows, as_json=False, columns=["code", "made", "done"] if result.new_codes else ["code", "done"])
    for line in written:
        typer.echo(f"labels written to {line}")


def _text(flag: str, text: str) -> Any:
    return typer.Option(flag, help=text, show_default=False)


Typed = str | None  # a value as typed: the input model reads it


@specimen_app.command("aliquot")
@handle_errors
def specimen_aliquot(
    codes: CodesArgument = None,
    from_file: FromFileOption = None,
    count: Annotated[Typed, _number("--count", "How many aliquots of --each from every specimen (default 1).")] = None,
    each: Annotated[Typed, _number("--each", "Quantity of each aliquot, in the specimen's unit.")] = None,
    portions: Annotated[Typed, _text("--portions", "The aliquots' quantities instead, e.g. 10,10,5.")] = None,
    labels: LabelsOption = None,
    stock: LabelStockOption = None,
    when: WhenOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Split every specimen named into the same aliquots (--count N --each Q, or --portions Q1,Q2...); the parents'
    remaining quantities drop by what was taken. All or nothing."""
    request: dict[str, Any] = {"count": count, "portion": each}  # both ways given: the request refuses it
    if portions is not None:
        request["portions"] = [p for p in portions.split(",") if p.strip()] or [portions]
    _process("aliquot", codes, from_file, request, when=when, user=user, as_json=as_json, labels=labels, stock=stock)


@specimen_app.command("derive")
@handle_errors
def specimen_derive(
    material: Annotated[str, _text("--material", "What is made: dna, rna, section, cells, plasma, buffy_coat ...")],
    codes: CodesArgument = None,
    from_file: FromFileOption = None,
    used: Annotated[Typed, _number("--used", "Quantity taken from each parent, in the parent's unit (0 for sections "
                                             "cut from a block).")] = None,
    quantity: Annotated[Typed, _number("--quantity", "Quantity of each new specimen; an extract in ng defaults to its "
                                                     "yield, one in ul to its elution volume.")] = None,
    unit: Annotated[Typed, _text("--unit", "Unit of the new specimen; default ng for DNA and RNA, sections for "
                                           "sections, cells for cells, ul for fluids.")] = None,
    storage_format: Annotated[Typed, _text("--format", "Storage format; default frozen (FFPE for sections of a "
                                                       "block).")] = None,
    method: Annotated[Typed, _text("--method", "Extraction method, e.g. column, magnetic beads.")] = None,
    kit: Annotated[Typed, _text("--kit", "Extraction kit, e.g. 'QIAamp DNA Mini'.")] = None,
    elution: Annotated[Typed, _number("--elution-ul", "Elution volume, µl.")] = None,
    concentration: Annotated[Typed, _number("--concentration", "Concentration, ng/µl.")] = None,
    yield_ng: Annotated[Typed, _number("--yield-ng", "Yield, ng; default concentration × elution volume.")] = None,
    labels: LabelsOption = None,
    stock: LabelStockOption = None,
    when: WhenOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Make new material (DNA, RNA, sections ...) from every specimen named, recording the extraction's method,
    kit, elution volume and concentration; the parents' remaining quantities drop by --used. All or nothing."""
    request = {
        "material_type": material, "unit": unit, "parent_quantity_used": used,
        "quantity": quantity, "storage_format": storage_format, "extraction_method": method, "extraction_kit": kit,
        "elution_volume_ul": elution, "concentration_ng_ul": concentration, "yield_ng": yield_ng,
    }
    _process("derive", codes, from_file, request, when=when, user=user, as_json=as_json, labels=labels, stock=stock)


@specimen_app.command("qc")
@handle_errors
def specimen_qc(
    codes: CodesArgument = None,
    from_file: FromFileOption = None,
    cellularity: Annotated[Typed, _number("--cellularity", "Tumour cellularity, % (pathology review).")] = None,
    necrosis: Annotated[Typed, _number("--necrosis", "Necrosis, % (pathology review).")] = None,
    reviewer: Annotated[Typed, _text("--reviewer", "Who reviewed the pathology.")] = None,
    slide: Annotated[Typed, _text("--slide", "The slide the review was read from.")] = None,
    yield_ng: Annotated[Typed, _number("--yield-ng", "Nucleic-acid yield, ng.")] = None,
    concentration: Annotated[Typed, _number("--concentration", "Concentration, ng/µl.")] = None,
    a260_280: Annotated[Typed, _number("--a260-280", "A260/280 ratio.")] = None,
    a260_230: Annotated[Typed, _number("--a260-230", "A260/230 ratio.")] = None,
    rin: Annotated[Typed, _number("--rin", "RIN (RNA).")] = None,
    din: Annotated[Typed, _number("--din", "DIN (DNA).")] = None,
    dv200: Annotated[Typed, _number("--dv200", "DV200, %.")] = None,
    when: WhenOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Record a pathology review (cellularity, necrosis, reviewer, slide) or nucleic-acid QC (yield, concentration,
    A260/280, A260/230, RIN, DIN, DV200) on every specimen named. All or nothing."""
    request = {
        "tumour_cellularity_pct": cellularity, "necrosis_pct": necrosis, "pathology_reviewer": reviewer,
        "slide_ref": slide, "yield_ng": yield_ng, "concentration_ng_ul": concentration, "a260_280": a260_280,
        "a260_230": a260_230, "rin": rin, "din": din, "dv200_pct": dv200,
    }
    _process("qc", codes, from_file, request, when=when, user=user, as_json=as_json)


@specimen_app.command("dispose")
@handle_errors
def specimen_dispose(
    codes: CodesArgument = None,
    from_file: FromFileOption = None,
    reason: Annotated[str, _text("--reason", "Why they are disposed of (kept in each custody record).")] = "",
    when: WhenOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Dispose of every specimen named, with the reason: each leaves its position and gets a custody event (nothing
    is deleted). All or nothing."""
    _process("dispose", codes, from_file, {"reason": reason}, when=when, user=user, as_json=as_json)
