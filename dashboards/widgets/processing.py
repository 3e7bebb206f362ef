"""Processing forms shared by the specimen view and the work-list page: aliquot, extract DNA/RNA, pathology review,
nucleic-acid QC and disposal, each one service call on every specimen given (all or nothing), and the result with
one-click labels for the new tubes.

Numbers are text boxes: what was typed goes to the services' input models as typed, so an empty, negative,
non-numeric or out-of-range value is refused in words naming the field, and a refused submit keeps every widget as
it was (the widgets are keyed; only a success clears them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.fields import form_label
from biobank.domain.vocab import MaterialType, QuantityUnit
from biobank.models import User
from biobank.services import worklist
from biobank.services.auth import Action, can
from biobank.services.inputs import (
    DEFAULT_UNITS,
    MAX_PIECES,
    DeriveRequest,
    DisposeRequest,
    SpecimenQC,
    limits,
)
from biobank.services.specimens import DERIVABLE, EXTRACTS
from biobank.services.worklist import WorkResult
from dashboards.data import core as data
from dashboards.data import specimens as data_specimens
from dashboards.shell import links
from dashboards.shell.actions import labelled, run_write, show_flash
from dashboards.shell.session import current_user

#: session_state key (under a page's prefix) of the last result, shown until the next one
LAST = "last"
#: session_state key (under a page's prefix) of the form whose widgets to empty at the top of the next run
CLEAR = "clear"


@dataclass(frozen=True)
class Form:
    """One processing form: its tab title, the work-list operation it runs, its button and its past tense."""

    title: str
    operation: str
    button: str
    done: str


FORMS: dict[str, Form] = {
    "aliquot": Form("Aliquot", "aliquot", "Make aliquots", "aliquoted"),
    "extract": Form("Extract DNA/RNA", "derive", "Record extraction", "extracted"),
    "review": Form("Pathology review", "qc", "Record review", "reviewed"),
    "nucleic_qc": Form("Nucleic-acid QC", "qc", "Record QC", "QC recorded"),
    "dispose": Form("Dispose", "dispose", "Dispose of", "disposed of"),
}
#: What each QC form records.
REVIEW_FIELDS = ("tumour_cellularity_pct", "necrosis_pct")
NUCLEIC_FIELDS = ("yield_ng", "concentration_ng_ul", "a260_280", "a260_230", "rin", "din", "dv200_pct")
UNIT_LABELS = {QuantityUnit.mg: "mg", QuantityUnit.ul: "µl", QuantityUnit.ng: "ng", QuantityUnit.cells: "cells",
               QuantityUnit.sections: "sections", QuantityUnit.blocks: "blocks"}


def key(prefix: str, form: str, name: str) -> str:
    return f"{prefix}_{form}_{name}"


def clear_done(prefix: str) -> None:
    """Empty the widgets of the form that just succeeded, and the other keys it named (call at the top of the page,
    before any widget)."""
    cleared = st.session_state.pop(f"{prefix}_{CLEAR}", None)
    if cleared is None:
        return
    form, also = cleared
    stem = f"{prefix}_{form}_"
    for name in [k for k in st.session_state if isinstance(k, str) and (k.startswith(stem) or k in also)]:
        if isinstance(st.session_state[name], str):
            st.session_state[name] = ""  # set, not deleted: the browser is told, and shows the box empty
        elif isinstance(st.session_state[name], datetime):
            del st.session_state[name]  # :func:`when` sets it to now again


def _range(model: type, name: str) -> str:
    """The range a number box accepts, for its help."""
    bounds = limits(model, name)
    low = "more than" if bounds.exclusive_minimum else "at least"
    parts = [f"{low} {bounds.minimum:g}" if bounds.minimum is not None else "",
             f"at most {bounds.maximum:,g}" if bounds.maximum is not None else ""]
    return ", ".join(p for p in parts if p)


def number(model: type, name: str, prefix: str, form: str, *, label: str | None = None, into: Any = st) -> str:
    """A number typed as text (kept as typed; the input model reads it); empty means not given."""
    return into.text_input(label or form_label(name), key=key(prefix, form, name), help=_range(model, name) or None,
                           placeholder="—")


def text(model: type, name: str, prefix: str, form: str, *, label: str | None = None, into: Any = st) -> str:
    """Text as typed. Its length is not capped in the browser (a paste would be cut without a word): the service
    refuses text too long for its column, naming the field."""
    most = limits(model, name).max_length
    return into.text_input(label or form_label(name), key=key(prefix, form, name),
                           help=f"at most {most:,} characters" if most else None)


def when(prefix: str, form: str, *, into: Any = st) -> datetime | None:
    """When it was done, in the lab's zone (default: now, as the form was opened); None: now."""
    settings = get_settings()
    name = key(prefix, form, "at")
    if name not in st.session_state:
        st.session_state[name] = datetime.now(settings.zone).replace(second=0, microsecond=0, tzinfo=None)
    typed = into.datetime_input(f"When ({settings.timezone})", key=name, step=60, format="YYYY-MM-DD")
    return typed.replace(tzinfo=settings.zone).astimezone(UTC) if typed is not None else None


def fields(form: str, prefix: str, *, unit: str | None = None, material: str | None = None) -> dict[str, Any]:
    """The widgets of ``form`` (keyed under ``prefix``), and what was typed in them as the operation's request.
    ``unit`` and ``material`` describe the specimen(s) processed when they are known (one specimen, or a list of
    one kind)."""
    shown_unit = UNIT_LABELS.get(unit, unit) if unit else "the specimen's unit"
    if form == "aliquot":
        a, b = st.columns(2)
        count = a.text_input("Aliquots", key=key(prefix, form, "count"), placeholder="1",
                             help=f"How many aliquots from each specimen, 1 to {MAX_PIECES}")
        portion = b.text_input(f"Quantity each ({shown_unit})", key=key(prefix, form, "portion"), placeholder="—")
        portions = st.text_input("Or different quantities, e.g. 10, 10, 5", key=key(prefix, form, "portions"))
        if portions.strip():
            return {"portions": [p for p in portions.replace(";", ",").split(",") if p.strip()] or [portions]}
        return {"count": count, "portion": portion}
    if form == "extract":
        offered = sorted(DERIVABLE.get(material, set()) if material else set().union(*DERIVABLE.values()),
                         key=lambda m: [v.value for v in MaterialType].index(m))
        a, b = st.columns(2)
        default = MaterialType.dna.value if MaterialType.dna.value in offered else (offered[0] if offered else None)
        made = a.selectbox("Material made", offered, index=offered.index(default) if default else None,
                           key=key(prefix, form, "material_type"), format_func=lambda m: str(m).replace("_", " "))
        used = b.text_input(f"Quantity used from each parent ({shown_unit})", key=key(prefix, form, "parent_quantity_used"),
                            placeholder="—")
        request: dict[str, Any] = {"material_type": made, "parent_quantity_used": used}
        if made in EXTRACTS:
            c, d = st.columns(2)
            request["extraction_method"] = text(DeriveRequest, "extraction_method", prefix, form, into=c)
            request["extraction_kit"] = text(DeriveRequest, "extraction_kit", prefix, form, into=d)
            e, f, g = st.columns(3)
            request["elution_volume_ul"] = number(DeriveRequest, "elution_volume_ul", prefix, form, into=e)
            request["concentration_ng_ul"] = number(DeriveRequest, "concentration_ng_ul", prefix, form, into=f)
            request["yield_ng"] = number(DeriveRequest, "yield_ng", prefix, form, into=g,
                                         label="Yield (ng; blank: concentration × elution volume)")
        units = [u.value for u in QuantityUnit]
        fallback = DEFAULT_UNITS.get(str(made), units[0])
        h, i = st.columns(2)
        request["unit"] = h.selectbox("Kept in", units, index=units.index(fallback), key=key(prefix, form, f"unit_{made}"),
                                      format_func=lambda u: UNIT_LABELS.get(u, u))
        request["quantity"] = i.text_input("Quantity (blank: the yield in ng, the elution volume in µl)",
                                           key=key(prefix, form, "quantity"), placeholder="—")
        if made == MaterialType.section:
            st.caption("Sections of an FFPE block stay FFPE; everything else is kept frozen.")
        return request
    if form == "review":
        a, b = st.columns(2)
        request = {name: number(SpecimenQC, name, prefix, form, into=column)
                   for name, column in zip(REVIEW_FIELDS, (a, b), strict=True)}
        c, d = st.columns(2)
        request["pathology_reviewer"] = text(SpecimenQC, "pathology_reviewer", prefix, form, into=c)
        request["slide_ref"] = text(SpecimenQC, "slide_ref", prefix, form, into=d)
        return request
    if form == "nucleic_qc":
        columns = st.columns(4) + st.columns(4)
        return {name: number(SpecimenQC, name, prefix, form, into=column)
                for name, column in zip(NUCLEIC_FIELDS, columns, strict=False)}
    if form == "dispose":
        reason = text(DisposeRequest, "reason", prefix, form, label="Why is it disposed of? (kept in the custody record)")
        return {"reason": reason}
    raise ValueError(f"no processing form {form!r}")


def submit(form: str, prefix: str, codes: Callable[[], Sequence[str]] | Sequence[str], request: dict[str, Any],
           at: datetime | None, *, flash: str, disabled: bool = False, clear: Sequence[str] = ()) -> None:
    """The form's button: the operation on every code in one unit of work; on success the result is kept for
    :func:`show_result` and the form emptied (with the widgets ``clear`` names), on a refusal the message shows here
    and every widget keeps its value."""
    spec = FORMS[form]
    if not st.button(spec.button, key=key(prefix, form, "go"), type="primary", disabled=disabled):
        return

    def apply(session: Session, actor: User | None) -> WorkResult:
        return worklist.apply(session, actor=actor, codes=list(codes() if callable(codes) else codes),
                              operation=spec.operation, request=request, at=at)

    def keep(result: WorkResult) -> None:
        st.session_state[f"{prefix}_{LAST}"] = {
            "title": spec.title, "done": [(d.code, list(d.made), d.note) for d in result.done],
            "labels": result.labels, "duplicates": list(result.duplicates),
        }
        st.session_state[f"{prefix}_{CLEAR}"] = (form, tuple(clear))

    def message(result: WorkResult) -> str:
        n = len(result.done)
        made = f"; {len(result.new_codes)} new specimen{'s' if len(result.new_codes) != 1 else ''}" if result.new_codes else ""
        return f"{n} specimen{'s' if n != 1 else ''} {spec.done}{made}"

    run_write(apply, flash=flash, success=message, on_success=keep, error=labelled(spec.title.lower()))


def show_result(prefix: str) -> None:
    """What the last operation did, with the labels of the new tubes one click away (one button per label stock)."""
    last = st.session_state.get(f"{prefix}_{LAST}")
    if not last:
        return
    url = data.url()
    with st.container(border=True):
        st.markdown(f"**Last: {last['title'].lower()}**")
        if last["duplicates"]:
            st.caption("Scanned more than once, processed once: " + ", ".join(last["duplicates"]))
        rows = [{"specimen": links.url("specimen", code), "made": ", ".join(made), "done": note}
                for code, made, note in last["done"]]
        st.dataframe(rows, hide_index=True, width="stretch", key=f"{prefix}_last_table",
                     column_config={"specimen": st.column_config.LinkColumn("Specimen", display_text=r"\?specimen=(.+)$")})
        columns = st.columns(max(len(last["labels"]), 1))
        for column, (stock, codes) in zip(columns, last["labels"].items(), strict=False):
            column.download_button(
                f"Labels for the new tubes ({len(codes)} {stock}, PDF)",
                lambda codes=codes, stock=stock: data_specimens.selection_labels_pdf(url, codes, stock),
                f"labels-new-{stock}.pdf", "application/pdf", key=f"{prefix}_labels_{stock}", on_click="ignore",
                type="primary",
            )


SPECIMEN = "specimen_processing"
SPECIMEN_FLASH = "specimen_processing_flash"
#: Statuses after which nothing more is done to a specimen.
GONE = frozenset({"disposed", "distributed"})


def processing_section(detail: dict[str, Any]) -> None:
    """The specimen view's processing forms (aliquot, extract, review, QC, dispose) for those who enter data."""
    with data.read_session() as session:
        may_enter = can(current_user(session), Action.enter)
    if not may_enter:
        return
    clear_done(SPECIMEN)
    st.subheader("Processing")
    show_flash(SPECIMEN_FLASH)
    show_result(SPECIMEN)
    code = detail["code"]
    if detail["status"] in GONE:
        st.caption(f"{code} is {detail['status']}: nothing more can be done to it.")
        return
    for tab, form in zip(st.tabs([f.title for f in FORMS.values()]), FORMS, strict=True):
        with tab:
            request = fields(form, SPECIMEN, unit=detail["unit"], material=detail["material_type"])
            at = when(SPECIMEN, form)
            submit(form, SPECIMEN, [code], request, at, flash=SPECIMEN_FLASH)


def unit_of(rows: Sequence[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """The unit and material shared by every specimen of a list (None where they differ)."""
    units = {u for u, _ in rows}
    materials = {m for _, m in rows}
    return (units.pop() if len(units) == 1 else None), (materials.pop() if len(materials) == 1 else None)


__all__ = ["FORMS", "clear_done", "fields", "processing_section", "show_result", "submit", "unit_of", "when"]
