"""The export log: every export is recorded with who made it, when, its target, the selection as asked, the donors
and the number of specimens it carried, and each file's name, size and SHA-256.

Why: after a withdrawal of consent the programme must tell everyone who received the donor's data
(:func:`donor_exports`), and a file found somewhere can be matched to the export that made it by its SHA-256.
The record is written in the caller's unit of work, so an export and its record commit together; an export
refused (consent, a plan's rules, a target's own checks) records nothing. The log is append-only (migration 0012)
and read by administrators and PIs (``Action.read_export_log``). A withdrawn donor's exports stay listed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from biobank.db.bulk import insert_rows
from biobank.domain.errors import PermissionDeniedError, invalid
from biobank.models import DerivedModel, Donor, ExportDonor, ExportRecord, Specimen, User
from biobank.models.audit import act_as, record_inserted
from biobank.models.base import pk, table_of, utcnow
from biobank.services.auth import Action, require
from biobank.services.donors import get_donor

#: Targets the log knows: the planner's (:data:`biobank.exports.service.TARGETS`) and the CancerModels.org sheets.
CANCERMODELS = "cancermodels"
#: The longest target name (``export_record.target``).
TARGET_LENGTH = 32
#: The most records one read returns.
MAX_LIMIT = 10_000


def file_entries(files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """``[{"name", "bytes", "sha256"}]`` for each file, in the export's order."""
    return [
        {"name": name, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for name, content in files.items()
    ]


def recorder(actor: User | None, target: str) -> User:
    """The user an export is recorded for: refused without one (check it before writing any file)."""
    if actor is None:
        raise PermissionDeniedError(f"{target} export: no user is signed in, and every export records who made it",
                                    field="user")
    return actor


def record_export(
    session: Session,
    *,
    actor: User | None,
    target: str,
    selection: Mapping[str, Any],
    donor_codes: Sequence[str],
    specimen_count: int,
    files: Mapping[str, bytes],
) -> int:
    """Record one export in the caller's transaction; returns the record's id.

    ``donor_codes``: every donor whose data the files carry (stored codes); ``selection``: what was asked (plan,
    donors, specimens, options), kept as given. The caller has checked that ``actor`` may make the export; the log
    only needs to know who did, so an export without a signed-in user is refused here.
    """
    actor = recorder(actor, target)
    codes = list(dict.fromkeys(donor_codes))
    ids = dict(session.exec(select(Donor.code, Donor.id).where(col(Donor.code).in_(codes))).all()) if codes else {}
    missing = [code for code in codes if code not in ids]
    if missing:
        raise invalid("donor", missing[0], "is not a donor of this database; the export cannot be recorded")
    act_as(session, actor)
    record = ExportRecord(
        exported_at=utcnow(), user_id=pk(actor), target=target, selection=dict(selection), donor_count=len(codes),
        specimen_count=specimen_count, files=file_entries(files),
    )
    session.add(record)
    session.flush()
    record_id = pk(record)
    if codes:
        table = table_of(ExportDonor)
        columns = insert_rows(session, table, [{"export_record_id": record_id, "donor_id": ids[c]} for c in codes])
        new_ids = session.exec(
            select(ExportDonor.id).where(ExportDonor.export_record_id == record_id).order_by(col(ExportDonor.id))
        ).all()
        record_inserted(session, table, [int(i) for i in new_ids if i is not None], columns=columns)
    return record_id


def models_carried(session: Session, model_codes: Sequence[str]) -> tuple[list[str], int]:
    """The donors (codes) and the number of patient specimens behind the derived models ``model_codes``: what a
    CancerModels.org submission of those models carries."""
    if not model_codes:
        return [], 0
    rows = session.exec(
        select(Donor.code, Specimen.id)
        .select_from(DerivedModel)
        .join(Specimen, col(Specimen.id) == col(DerivedModel.source_specimen_id))
        .join(Donor, col(Donor.id) == col(Specimen.donor_id))
        .where(col(DerivedModel.code).in_(list(model_codes)))
    ).all()
    return sorted({code for code, _ in rows}), len({specimen for _, specimen in rows})


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", limit, f"must be a whole number from 1 to {MAX_LIMIT:,}")
    return limit


def _target(target: str | None) -> str | None:
    """A target to filter on, as the log stores it; which targets exist is the caller's to check (the export
    service records through this module, so it cannot be asked here)."""
    if target is None or not target.strip():
        return None
    wanted = target.strip().lower()
    if len(wanted) > TARGET_LENGTH or not wanted.isidentifier():
        raise invalid("target", target, "is not an export target")
    return wanted


def export_log(
    session: Session,
    *,
    actor: User | None,
    limit: int | None = 100,
    target: str | None = None,
    donor_code: str | None = None,
) -> list[dict[str, Any]]:
    """The recorded exports, newest first (at most ``limit``; None: all), of one ``target`` and/or carrying one
    donor when given: plain dicts with who (user name), when, the target, the selection, the counts, the files and
    the codes of the donors carried. Administrators and PIs only."""
    require(actor, Action.read_export_log)
    limit = _limit(limit)
    wanted = _target(target)
    statement = (
        select(ExportRecord, User.username)
        .join(User, col(User.id) == col(ExportRecord.user_id))
        .order_by(col(ExportRecord.exported_at).desc(), col(ExportRecord.id).desc())
    )
    if wanted is not None:
        statement = statement.where(ExportRecord.target == wanted)
    if donor_code is not None:
        donor = get_donor(session, donor_code)
        carried = select(ExportDonor.export_record_id).where(ExportDonor.donor_id == donor.id)
        statement = statement.where(col(ExportRecord.id).in_(carried))
    if limit is not None:
        statement = statement.limit(limit)
    found = session.exec(statement).all()
    donors = _donors_of(session, [pk(record) for record, _ in found])
    return [
        {
            "id": record.id,
            "exported_at": record.exported_at,
            "user": username,
            "target": record.target,
            "selection": record.selection,
            "donor_count": record.donor_count,
            "specimen_count": record.specimen_count,
            "files": record.files,
            "donors": donors.get(pk(record), []),
        }
        for record, username in found
    ]


def _donors_of(session: Session, record_ids: Sequence[int]) -> dict[int, list[str]]:
    if not record_ids:
        return {}
    rows = session.exec(
        select(ExportDonor.export_record_id, Donor.code)
        .join(Donor, col(Donor.id) == col(ExportDonor.donor_id))
        .where(col(ExportDonor.export_record_id).in_(list(record_ids)))
        .order_by(col(Donor.code))
    ).all()
    out: dict[int, list[str]] = {}
    for record_id, code in rows:
        out.setdefault(record_id, []).append(code)
    return out


def donors_in_log(session: Session, *, actor: User | None) -> list[str]:
    """The codes of every donor some recorded export carried (withdrawn ones too), for a filter."""
    require(actor, Action.read_export_log)
    return list(session.exec(
        select(Donor.code).where(col(Donor.id).in_(select(ExportDonor.donor_id))).order_by(col(Donor.code))
    ).all())


def donor_exports(session: Session, *, actor: User | None, donor_code: str) -> list[dict[str, Any]]:
    """Every recorded export that carried the donor (typed in any letter case), newest first: the recipients to tell
    after a withdrawal of consent. Administrators and PIs only; a withdrawn donor's exports are listed all the same."""
    require(actor, Action.read_export_log)
    return export_log(session, actor=actor, limit=None, donor_code=donor_code)


__all__ = [
    "CANCERMODELS",
    "donor_exports",
    "donors_in_log",
    "export_log",
    "file_entries",
    "models_carried",
    "record_export",
    "recorder",
]


def export_models_recorded(
    session: Session,
    *,
    actor: User | None,
    directory: Path,
    model_codes: Sequence[str] | None = None,
    include_unestablished: bool = False,
    submitter: Any = None,
) -> tuple[Any, list[Path]]:
    """The CancerModels.org submission of the chosen models (:func:`biobank.exports.cancermodels.export_models`),
    recorded in the export log in the caller's unit of work. A submission to an external public catalogue hands
    the donors' data on, so it needs ``Action.export`` (PIs and admins), like every other export."""
    from biobank.exports import cancermodels

    require(actor, Action.export)
    actor = recorder(actor, CANCERMODELS)
    result, paths = cancermodels.export_models(
        session, directory, model_codes=model_codes, include_unestablished=include_unestablished, submitter=submitter
    )
    carried, specimens = models_carried(session, result.models)
    record_export(
        session,
        actor=actor,
        target=CANCERMODELS,
        selection={"model_codes": list(model_codes or []), "all_statuses": include_unestablished},
        donor_codes=carried,
        specimen_count=specimens,
        files={p.name: p.read_bytes() for p in paths},
    )
    return result, paths
