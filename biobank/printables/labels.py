"""Label reprints: new labels for any specimens, or for every specimen in a box in position order (a box whose
labels froze off, or a rack relabelled), on the lab's paper through :mod:`biobank.labels`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from biobank.domain.errors import invalid
from biobank.labels import LABEL_FORMATS, render_pdf, resolve_paper
from biobank.labels.service import labels_for
from biobank.queries import storage as storage_reads


def box_codes(session: Session, box_code: str) -> list[str]:
    """The codes of the specimens in a box, in fill order (A1, A2 ... B1)."""
    return [cell["code"] for cell in storage_reads.box_view(session, box_code)["cells"]]


def reprint_codes(session: Session, *, codes: Sequence[str] = (), box: str | None = None) -> list[str]:
    """What to reprint: the given codes in their order, or every specimen in ``box`` (exactly one of the two)."""
    if bool(codes) == bool(box):
        raise invalid("codes", list(codes), "give specimen codes or a box (exactly one of the two)")
    chosen = list(dict.fromkeys(codes)) if codes else box_codes(session, box or "")
    if not chosen:
        raise invalid("box", box, "is empty: there is nothing to label")
    return chosen


def labels_pdf(
    session: Session, *, codes: Sequence[str] = (), box: str | None = None, fmt: str = "cryotube", skip: int = 0
) -> bytes:
    """A label sheet (``fmt``: cryotube, cassette or slide) for the given specimens or a whole box, on the lab's
    paper; ``skip`` leaves the first cells of a partly used sheet empty."""
    if fmt not in LABEL_FORMATS:
        raise invalid("format", fmt, f"choose one of {', '.join(sorted(LABEL_FORMATS))}")
    cells = LABEL_FORMATS[fmt].sheet_for(resolve_paper()).cells
    if not 0 <= skip < cells:
        raise invalid("skip", skip, f"a {fmt} sheet has {cells} cells: skip 0 to {cells - 1}")
    return render_pdf(labels_for(session, reprint_codes(session, codes=codes, box=box)), fmt, skip=skip)
