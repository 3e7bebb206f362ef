"""Labels from the database: specimens by code, a whole case, or placeholders pre-printed for a planned autopsy.

Pre-printing works because specimen codes are deterministic (:mod:`biobank.domain.codes`): the region ``L01-A`` of donor
``RA-0001`` collected as two snap-frozen pieces becomes ``RA0001-L01A-SF1`` and ``RA0001-L01A-SF2`` whatever else
happens at the table. :func:`planned_labels` prints, for each lesion already recorded for the case's donor, the
regions ``A``, ``B``, ``C`` (by default) in the board's default formats and counts
(:data:`biobank.services.collection.DEFAULT_REGION_FORMATS`), skipping regions already collected: exactly the
codes :func:`~biobank.services.collection.collect_region` generates when those regions are collected with those
formats. Normal tissue, blood and marrow are not pre-printed: their codes depend on the order they are taken in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.domain.codes import primary_specimen_code, region_site_code
from biobank.domain.errors import NotFoundError, invalid
from biobank.domain.vocab import StorageFormat
from biobank.labels.formats import LABEL_FORMATS
from biobank.labels.model import LabelData
from biobank.labels.render import render_pdf, render_zpl
from biobank.models import AnatomicalSite, Autopsy, Donor, Lesion, SamplingSite, Specimen
from biobank.services.collection import DEFAULT_REGION_FORMATS, get_autopsy
from biobank.services.inputs import FormatRequest

#: How a storage format reads on a label (short: a cryo label is 32 mm wide).
FORMAT_TEXT = {
    StorageFormat.fresh: "fresh",
    StorageFormat.snap_frozen: "snap-frozen",
    StorageFormat.oct: "OCT",
    StorageFormat.ffpe: "FFPE",
    StorageFormat.rnalater: "RNAlater",
    StorageFormat.viable_cryo: "viable cryo",
    StorageFormat.frozen: "frozen",
}
DEFAULT_REGIONS = ("A", "B", "C")


def _check_format(fmt: str) -> str:
    if fmt not in LABEL_FORMATS:
        raise invalid("format", fmt, f"choose one of {', '.join(sorted(LABEL_FORMATS))}")
    return fmt


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(get_settings().zone).date().isoformat()


def labels_for(session: Session, codes: Sequence[str]) -> list[LabelData]:
    """One label per specimen code, in the order given; an unknown code is an error naming it."""
    wanted = list(dict.fromkeys(codes))
    if not wanted:
        raise invalid("codes", [], "give at least one specimen code")
    statement = (
        select(Specimen, Donor.code, SamplingSite.code, AnatomicalSite.label)
        .join(Donor, Donor.id == Specimen.donor_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .join(AnatomicalSite, AnatomicalSite.code == SamplingSite.site_code)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(Specimen.code.in_(wanted))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
    )
    found = {row[0].code: row for row in session.exec(statement)}
    missing = [code for code in wanted if code not in found]
    if missing:
        raise NotFoundError(f"specimen {missing[0]!r} not found", field="code", value=missing[0])
    labels = []
    for code in wanted:
        specimen, donor_code, site_code, site_label = found[code]
        labels.append(
            LabelData(
                code=specimen.code,
                donor=donor_code,
                site=f"{site_label} {site_code}",
                storage_format=FORMAT_TEXT.get(StorageFormat(specimen.storage_format), specimen.storage_format),
                date=_day(specimen.collected_at),
            )
        )
    return labels


def case_codes(session: Session, case_code: str) -> list[str]:
    """Every specimen of a case's donor, in the order they were made."""
    autopsy = get_autopsy(session, case_code)
    return list(session.exec(select(Specimen.code).where(Specimen.donor_id == autopsy.donor_id).order_by(Specimen.id)))  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression


def planned_labels(
    session: Session,
    case_code: str,
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    formats: Sequence[FormatRequest] = DEFAULT_REGION_FORMATS,
) -> list[LabelData]:
    """Placeholders for the regions of the case's recorded lesions not yet collected (see the module docstring)."""
    autopsy: Autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    lesions = list(session.exec(select(Lesion).where(Lesion.donor_id == donor.id).order_by(Lesion.code)))
    if not lesions:
        raise invalid("case", case_code, f"donor {donor.code} has no lesions recorded yet: record them to pre-print")
    collected = set(session.exec(select(SamplingSite.code).where(SamplingSite.donor_id == donor.id)))
    site_labels = dict(session.exec(select(AnatomicalSite.code, AnatomicalSite.label)).all())
    day = _day(autopsy.start_at or autopsy.death_at)
    labels = []
    for lesion in lesions:
        for region in regions:
            site_code = region_site_code(lesion.code, region)
            if site_code in collected:
                continue
            sequence: dict[str, int] = {}
            for request in formats:
                for _ in range(request.count):
                    sequence[request.storage_format] = sequence.get(request.storage_format, 0) + 1
                    labels.append(
                        LabelData(
                            code=primary_specimen_code(donor.code, site_code, request.storage_format,
                                                       sequence[request.storage_format]),
                            donor=donor.code,
                            site=f"{site_labels.get(lesion.site_code, lesion.site_code)} {site_code}",
                            storage_format=FORMAT_TEXT[StorageFormat(request.storage_format)],
                            date=day,
                            extra="PLANNED",
                        )
                    )
    return labels


def render(labels: Sequence[LabelData], fmt: str = "cryotube", *, zpl: bool = False) -> bytes:
    """A PDF sheet, or ZPL for a Zebra printer (as UTF-8 bytes)."""
    _check_format(fmt)
    return render_zpl(labels, fmt).encode("utf-8") if zpl else render_pdf(labels, fmt)


def labels_pdf_for(session: Session, codes: Sequence[str], fmt: str = "cryotube") -> bytes:
    """The PDF label sheet for these specimen codes (for a download button)."""
    return render(labels_for(session, codes), fmt)


def planned_labels_pdf(session: Session, case_code: str, fmt: str = "cryotube") -> bytes:
    return render(planned_labels(session, case_code), fmt)
