"""Labels from the database: printed codes scan back, and pre-printed codes are the ones collection creates."""

from __future__ import annotations

from datetime import timedelta

import pypdfium2 as pdfium
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError
from biobank.labels import service
from biobank.models import User
from biobank.services import collection
from biobank.services.collection import DEFAULT_REGION_FORMATS
from biobank.services.inputs import RegionCollect
from tests.conftest import DEATH
from tests.labels.test_labels_render import decode_page
from tests.support.factories import collect, make_case


def scanned(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    return [text for page in doc for text, _x, _y in decode_page(page)]


def test_labels_for_specimens_decode_back_to_their_codes(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)
    with Session(engine) as session:
        labels = service.labels_for(session, codes)
        pdf = service.labels_pdf_for(session, codes, "cryotube")
    assert [label.code for label in labels] == codes
    assert labels[0].donor == "RA-0001" and "L02-A" in labels[0].site and labels[0].date == "2026-03-14"
    assert sorted(scanned(pdf)) == sorted(codes)


def test_unknown_code_is_named(engine: Engine, tech: User) -> None:
    with Session(engine) as session, pytest.raises(NotFoundError, match="NOPE"):
        service.labels_for(session, ["NOPE"])


def test_a_pre_printed_code_is_the_code_created_at_collection(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        case = make_case(session, tech)
    with Session(engine) as session:
        planned = service.planned_labels(session, case)
        pdf = service.render(planned, "cassette")
    codes = [label.code for label in planned]
    assert len(codes) == len(set(codes)) == 2 * 3 * sum(f.count for f in DEFAULT_REGION_FORMATS)
    assert all(label.extra == "PLANNED" for label in planned)
    assert sorted(scanned(pdf)) == sorted(codes)
    with session_scope(engine) as session:
        made = collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code=case, kind="tumour_region", site_code="LIVER", lesion_code="L02", region_label="B", excised_at=DEATH + timedelta(hours=3), formats=DEFAULT_REGION_FORMATS),
        )
        collected = [s.code for s in made.specimens]
    assert collected == [code for code in codes if code.startswith("RA0001-L02B-")]
    with Session(engine) as session:
        remaining = [label.code for label in service.planned_labels(session, case)]
    assert not set(collected) & set(remaining) and len(remaining) == len(codes) - len(collected)


def test_zpl_carries_each_code(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)
    with Session(engine) as session:
        zpl = service.render(service.labels_for(session, codes), "slide", zpl=True).decode()
    assert zpl.count("^XA") == len(codes) and all(f"^FD{code}^FS" in zpl for code in codes)
