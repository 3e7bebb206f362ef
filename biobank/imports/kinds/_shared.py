"""Helpers several kinds share: template rows for an export, the receptor columns, running a rule per row
(:func:`each`), the donor and anatomical-site lookups, a row's reference to a stored specimen or model
(:func:`known`), defaults, attaching the current table rows for an upsert, the parent ids of rows whose parent is in
the same file (:func:`stored_ids`, :func:`link_pending`), and a specimen row's quantities."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import func, select
from sqlmodel import Session

from biobank.domain.errors import BiobankError, invalid
from biobank.domain.fields import field_label
from biobank.domain.sites import unknown_site
from biobank.domain.vocab import Laterality, ReceptorStatus
from biobank.imports.columns import Column, vocab_col
from biobank.imports.spec import Kind, Resolver, RowFailed, Staged
from biobank.models import AnatomicalSite, Autopsy, ConsentWithdrawal, CustodyEvent, Donor
from biobank.models.audit import database_audits, record_inserted
from biobank.models.base import table_of
from biobank.services.inputs import check_quantity

RECEPTORS = ("er_status", "pr_status", "her2_status")
T = TypeVar("T")


@contextmanager
def custody_audited(session: Session) -> Iterator[None]:
    """Audit rows (one per row, as the application's hook writes them) for the custody events written inside: a
    kind's ``after_insert`` writes them with plain SQL, which the hook does not see. PostgreSQL's triggers audit them
    already; elsewhere the events written meanwhile in this transaction (ids above the largest before) are audited
    here."""
    if database_audits(session.connection()):
        yield
        return
    table = table_of(CustodyEvent)
    before = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    yield
    ids = session.execute(select(table.c.id).where(table.c.id > before).order_by(table.c.id)).scalars().all()
    record_inserted(session, table, ids)


def template_rows(kind: Kind, session: Session, statement: Any, *names: str) -> Iterator[dict[str, Any]]:
    """The rows of ``statement`` (a table row, then the codes the template names ``names``) in ``kind``'s columns, in
    the order they were stored."""
    for obj, *codes in session.execute(statement.order_by(kind.table.c.id)):
        row = {col.name: getattr(obj, col.name, None) for col in kind.columns}
        row.update(zip(names, codes, strict=True))
        yield row


def receptor_cols(what: str) -> tuple[Column, ...]:
    return tuple(
        vocab_col(name, ReceptorStatus, f"{label} status {what}")
        for name, label in zip(RECEPTORS, ("ER", "PR", "HER2"), strict=True)
    )


def each(rows: list[Staged], handle: Callable[[Staged], None]) -> None:
    """Run ``handle`` per row; a rule broken in one row becomes that row's error, the others go on."""
    for row in rows:
        try:
            handle(row)
        except RowFailed:
            row.record = None
        except BiobankError as exc:
            row.record = None
            column = (exc.field or "").split(".")[-1]
            row.error(column, str(exc), value=exc.value)


# ------------------------------------------------------------------------------------------------ shared lookups


class DonorInfo(NamedTuple):
    id: int
    code: str
    status: str
    withdrawn: bool
    autopsy_id: int | None
    case_code: str | None
    death_at: datetime | None
    autopsy_status: str | None
    prosector: str | None


def donors(res: Resolver, codes: set[Any]) -> dict[str, DonorInfo]:
    def fetch(batch: list[Any]) -> dict[str, DonorInfo]:
        statement = (
            select(  # type: ignore[call-overload,misc]  # SQLModel types the column as its Python value, not a SQL expression
                Donor.id, Donor.code, Donor.status, ConsentWithdrawal.id, Autopsy.id, Autopsy.case_code,
                Autopsy.death_at, Autopsy.status, Autopsy.prosector,
            )
            .outerjoin(ConsentWithdrawal, ConsentWithdrawal.donor_id == Donor.id)
            .outerjoin(Autopsy, Autopsy.donor_id == Donor.id)
            .where(Donor.code.in_(batch))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
        )
        return {
            r[1]: DonorInfo(r[0], r[1], r[2], r[3] is not None, r[4], r[5], r[6], r[7], r[8])
            for r in res.session.execute(statement)
        }

    return res.lookup("donor", codes, fetch)


def donor_of(row: Staged, found: dict[str, DonorInfo], column: str = "donor_code", *, unwithdrawn: bool = True) -> DonorInfo:
    code = row.values[column]
    donor = found.get(code)
    if donor is None:
        raise row.fail(column, f"donor {code!r} not found (import donors first)", expected="a registered donor code")
    if unwithdrawn and donor.withdrawn:
        raise row.fail(column, f"donor {code}: consent was withdrawn; nothing new can be recorded",
                       expected="a donor who has not withdrawn")
    return donor


def known(row: Staged, found: Mapping[Any, T], column: str, what: str) -> T:
    """What ``found`` holds for the code in the row's ``column``; the row fails when it names no stored ``what``
    (a specimen, a model: import those first)."""
    code = row.values[column]
    hit = found.get(code)
    if hit is None:
        raise row.fail(column, f"{what} {code!r} not found (import {what}s first)", expected=f"an existing {what} code")
    return hit


class SiteInfo(NamedTuple):
    code: str
    category: str
    laterality_applies: bool
    parent_code: str | None


def anatomical_sites(res: Resolver) -> dict[str, SiteInfo]:
    cached = res.state.get("anatomical_sites")
    if cached is None:
        rows = res.session.execute(
            select(AnatomicalSite.code, AnatomicalSite.category, AnatomicalSite.laterality_applies,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                   AnatomicalSite.parent_code)
        )
        cached = {r[0]: SiteInfo(*r) for r in rows}
        res.state["anatomical_sites"] = cached
    return cached


def site_of(row: Staged, res: Resolver, column: str = "site_code") -> SiteInfo:
    code = row.values.get(column)
    sites = anatomical_sites(res)
    site = sites.get(str(code)) or sites.get(str(code).upper().replace(" ", "_"))
    if site is None:
        raise row.fail(column, f"{field_label(column)} ({code}): {unknown_site(code)}",
                       expected="an anatomical-site code such as LIVER or VERTEBRA_T12")
    return site


def laterality(site: SiteInfo, given: str | None) -> str:
    """As the collection service does: unknown where laterality applies, else not applicable."""
    if given is not None:
        return given
    return Laterality.unknown.value if site.laterality_applies else Laterality.not_applicable.value


def with_defaults(row: Staged, defaults: dict[str, Any]) -> dict[str, Any]:
    return {name: (row.values.get(name) if row.values.get(name) is not None else default)
            for name, default in defaults.items()}


def existing_by(res: Resolver, kind: Kind, rows: list[Staged], columns: tuple[str, ...]) -> None:
    """Attach each built row's current table row with the same natural key ``columns``, one query per 500 keys: an
    ``..._id`` column is the id the row resolved (its record), any other the row's own value."""
    keys = {
        row: tuple(row.record[c] if c.endswith("_id") else row.values[c] for c in columns)
        for row in rows
        if row.record is not None
    }
    found = res.rows_by(kind.table, columns, list(set(keys.values())))
    for row, k in keys.items():
        row.existing = found.get(k)


def stored_ids(rows: list[Staged], in_file: dict[Any, Any], key: Callable[[Staged], Any]) -> None:
    """Give the in-file entry (``key``) of each row already in the table the id it is stored under."""
    for row in rows:
        if row.existing is not None and row.record is not None:
            in_file[key(row)] = in_file[key(row)]._replace(id=row.existing["id"])


def link_pending(rows: list[Staged], column: str, found: Mapping[Any, Any], parent: Callable[[Staged], Any]) -> None:
    """Fill ``column`` of each row still waiting for it with the id of its ``parent`` (a key of ``found``) once that
    parent is stored; a row whose parent is new in this file keeps waiting until the parent is inserted."""
    for row in rows:
        if row.record is not None and column in row.pending:
            info = found.get(parent(row))
            if info is not None and info.id is not None:
                row.record[column] = info.id
                del row.pending[column]


# -------------------------------------------------------------------------------------------------- specimen rows


def specimen_quantities(row: Staged, *, positive: bool) -> None:
    """A specimen row's quantity with its unit (from the cell or the unit column, which must agree) and what is left
    (in the same unit, at most the quantity), as ``_quantity``, ``_unit`` and ``_remaining`` in its values."""
    v = row.values
    amount, unit = v["quantity"]
    given_unit = v.get("unit")
    if unit is None:
        if given_unit is None:
            raise invalid("quantity", amount, "give the unit in the cell ('50 mg') or in the unit column")
        unit = given_unit
    elif given_unit is not None and given_unit != unit:
        raise invalid("quantity", row.raw.get("quantity"), f"is in {unit} but the unit column says {given_unit}")
    check_quantity("quantity", amount, unit, allow_zero=not positive)
    remaining = v.get("quantity_remaining")
    if remaining is not None:
        if remaining[1] not in (None, unit):
            raise invalid("quantity_remaining", row.raw.get("quantity_remaining"), f"must be in {unit}, as the quantity")
        if remaining[0] > amount + 1e-9:
            raise invalid("quantity_remaining", remaining[0], f"cannot be more than the quantity ({amount:g} {unit})")
    v["_quantity"], v["_unit"] = amount, unit
    v["_remaining"] = amount if remaining is None else remaining[0]
