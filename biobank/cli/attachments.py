"""``biobank attach`` and ``biobank attachments``: photos and documents on records (issue 22).

``biobank attach CODE FILE --kind gross_photo`` attaches one file (the record found from its code: a specimen, a
sampling site, a lesion, a case, then a donor, unless ``--target`` says which); ``biobank attach --folder DIR --kind
gross_photo`` attaches every file of a folder to the specimen or region its name starts with, all or nothing.
``biobank attachments CODE`` lists a record's attachments, ``attachments get ID -o FILE`` writes one out (its hash
checked), ``attachments retract ID --reason`` retracts one (nothing is deleted). The rules are the service's
(:mod:`biobank.services.attachments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from biobank.cli.common import (
    TIME_HELP,
    JsonOption,
    UserOption,
    acting_user,
    emit,
    handle_errors,
    typed_time,
    unit_of_work,
)
from biobank.config import get_settings
from biobank.domain.errors import BiobankError, ConflictError, NotFoundError, ValidationError, invalid
from biobank.services import attachments as service

LIST_COLUMNS = ["id", "target", "code", "kind", "filename", "media_type", "size_bytes", "taken_at", "taken_by",
                "caption", "state", "created_by"]


class _ListByDefault(TyperGroup):
    """``biobank attachments CODE`` is ``biobank attachments list CODE``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


attachments_app = typer.Typer(
    cls=_ListByDefault,
    help="Photos and documents attached to records: list (the default: 'attachments CODE'), get, retract.",
    no_args_is_help=True,
)

KindOption = Annotated[str, typer.Option("--kind", help=f"What the file is: {', '.join(service.KINDS)}.")]
TargetOption = Annotated[
    str | None,
    typer.Option("--target", help=f"What CODE names: {', '.join(service.TARGETS)} (default: the first of specimen, "
                 "sampling site, lesion, case, donor with that code)."),
]


def _read_file(path: Path, field: str = "file") -> bytes:
    """The file's bytes; a missing, unreadable or too large file is an error naming it."""
    try:
        if not path.is_file():
            raise invalid(field, str(path), "is not a file")
        limit = get_settings().attachment_max_bytes
        size = path.stat().st_size
        if size > limit:
            raise invalid(field, str(path), f"is {size:,} bytes; at most {limit:,} may be attached")
        return path.read_bytes()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise invalid(field, str(path), f"cannot be read ({reason})") from None


def _shown(info: service.AttachmentInfo) -> dict[str, Any]:
    return info.as_dict()


@handle_errors
def attach(
    code: Annotated[str | None, typer.Argument(help="The record's code (specimen, region 'RA-0001:L01-A', lesion "
                                               "'RA-0001:L01', case, donor...).")] = None,
    file: Annotated[Path | None, typer.Argument(help="The photo (JPEG, PNG, TIFF, WebP) or document (PDF).")] = None,
    kind: KindOption = "",
    caption: Annotated[str | None, typer.Option("--caption", help="What the picture shows (at most 500 "
                                                "characters).")] = None,
    target: TargetOption = None,
    taken_at: Annotated[str | None, typer.Option("--taken-at", help=f"When it was taken ({TIME_HELP}).")] = None,
    taken_by: Annotated[str | None, typer.Option("--taken-by", help="Who took it.")] = None,
    folder: Annotated[Path | None, typer.Option(
        "--folder", help="Attach every file of this folder to the specimen or region its name starts with "
        "(RA0001-L01A-SF1_x.jpg, RA0001-L02B.jpg); all or nothing.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --folder: show which file would go where, "
                                          "attach nothing.")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach a photo or document to a record, or every file of a folder to the specimens and regions its names start with.

    Technicians and administrators. The content decides what the file is (not its name); an image is decoded, and
    re-encoded without its EXIF (GPS, device, time)."""
    when = typed_time("taken_at", taken_at)
    if folder is not None:
        if code is not None or file is not None:
            raise invalid("folder", str(folder), "is given with CODE FILE: attach one file or a folder, not both")
        _attach_folder(folder, kind=kind, caption=caption, taken_at=when, taken_by=taken_by, dry_run=dry_run,
                       user=user, as_json=as_json)
        return
    if code is None or file is None:
        raise ValidationError("give CODE and FILE (or --folder DIR)", field="file")
    data = _read_file(file)
    with unit_of_work() as session:
        actor = acting_user(session, user)
        record = service.find_target(session, target, code)
        info = service.attach(session, actor=actor, target=record.target, code=record.code, data=data,
                              filename=file.name, kind=kind, caption=caption, taken_at=when, taken_by=taken_by)
    emit(_shown(info), as_json=as_json,
         text=f"attachment {info.id}: {info.filename} ({info.media_type}, {info.size_bytes:,} bytes) attached to "
              f"{info.target.replace('_', ' ')} {info.code}")


def _folder_files(folder: Path) -> list[Path]:
    try:
        if not folder.is_dir():
            raise invalid("folder", str(folder), "is not a folder")
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise invalid("folder", str(folder), f"cannot be read ({reason})") from None


def _attach_folder(folder: Path, *, kind: str, caption: str | None, taken_at: Any, taken_by: str | None,
                   dry_run: bool, user: str | None, as_json: bool) -> None:
    files = _folder_files(folder)
    if not files:
        raise invalid("folder", str(folder), "holds no files")
    report: list[dict[str, Any]] = []
    with unit_of_work() as session:
        actor = acting_user(session, user)
        matched = [(path, service.match_file_name(session, path.name)) for path in files]
        unmatched = [path.name for path, record in matched if record is None]
        if dry_run:
            report = [{"file": p.name, "target": r.target if r else None, "code": r.code if r else None}
                      for p, r in matched]
            emit({"attached": [], "plan": report, "unmatched": unmatched}, as_json=as_json, text=_plan_text(report))
            return
        if unmatched:
            raise NotFoundError(
                f"{len(unmatched)} of {len(files)} file name(s) start with no specimen or region code: "
                f"{_names(unmatched)}; nothing was attached", field="folder", value=unmatched)
        for path, record in matched:
            assert record is not None
            try:
                info = service.attach(session, actor=actor, target=record.target, code=record.code,
                                      data=_read_file(path), filename=path.name, kind=kind, caption=caption,
                                      taken_at=taken_at, taken_by=taken_by)
            except BiobankError as exc:
                raise type(exc)(f"{path.name}: {exc}; nothing was attached", field=exc.field,
                                value=exc.value) from None
            report.append({"file": path.name, "id": info.id, "target": info.target, "code": info.code,
                           "media_type": info.media_type, "size_bytes": info.size_bytes})
    emit({"attached": report, "unmatched": []}, as_json=as_json, text=None if as_json else _done_text(report))


def _names(names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _plan_text(plan: list[dict[str, Any]]) -> str:
    lines = [f"{row['file']}  ->  " + (f"{row['target'].replace('_', ' ')} {row['code']}" if row["code"]
                                       else "(matches nothing)") for row in plan]
    return "\n".join([*lines, "(dry run: nothing was attached)"])


def _done_text(report: list[dict[str, Any]]) -> str:
    lines = [f"{row['file']}  ->  {row['target'].replace('_', ' ')} {row['code']} (attachment {row['id']})"
             for row in report]
    return "\n".join([*lines, f"{len(report)} file(s) attached"])


@attachments_app.command("list")
@handle_errors
def attachments_list(
    code: Annotated[str, typer.Argument(help="The record's code.")],
    target: TargetOption = None,
    under: Annotated[bool, typer.Option("--all", help="CODE is a donor: everything attached anywhere under it "
                                        "(case, lesions, regions, specimens, models).")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """The attachments of a record that you may see (consent forms and pathology reports: administrators and PIs)."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        if under:
            infos = service.donor_attachments(session, actor=actor, donor_code=code)
        else:
            record = service.find_target(session, target, code)
            infos = service.list_attachments(session, actor=actor, target=record.target, code=record.code)
    rows = [_shown(info) for info in infos]
    emit(rows, as_json=as_json, columns=LIST_COLUMNS)


@attachments_app.command("get")
@handle_errors
def attachments_get(
    attachment_id: Annotated[str, typer.Argument(metavar="ID", help="The attachment's number.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    thumbnail: Annotated[bool, typer.Option("--thumbnail", help="The thumbnail (JPEG) instead.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output file if it exists.")] = False,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write an attachment (or its thumbnail) to a file; its SHA-256 is checked first."""
    if output.exists() and not overwrite:
        raise ConflictError(f"output={str(output)!r}: already exists (choose another name or pass --overwrite)",
                            field="output", value=str(output))
    with unit_of_work() as session:
        actor = acting_user(session, user)
        info, data = service.read_attachment(session, actor=actor, attachment_id=_number(attachment_id),
                                             thumbnail=thumbnail)
    try:
        output.write_bytes(data)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise invalid("output", str(output), f"cannot be written ({reason})") from None
    emit({**_shown(info), "written": str(output), "bytes": len(data)}, as_json=as_json,
         text=f"attachment {info.id} ({info.filename}{', thumbnail' if thumbnail else ''}): {len(data):,} bytes "
              f"written to {output} (SHA-256 checked)")


@attachments_app.command("retract")
@handle_errors
def attachments_retract(
    attachment_id: Annotated[str, typer.Argument(metavar="ID", help="The attachment's number.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is retracted (kept in the audit trail).")],
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retract an attachment (technicians and administrators); it stays stored, audited, and listed to admins."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        info = service.retract(session, actor=actor, attachment_id=_number(attachment_id), reason=reason)
    emit(_shown(info), as_json=as_json, text=f"attachment {info.id} ({info.filename}) retracted")


def _number(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or len(value) > 18:
        raise invalid("attachment", text, "is not an attachment number")
    return int(value)
