"""``biobank results``: import the outputs of CONIPHER, MACHINA and Metient for a donor, list and show them.

The formats read are described in :mod:`biobank.services.results`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_json,
    handle_errors,
    read,
    unit_of_work,
)
from biobank.domain.errors import invalid
from biobank.queries import results as result_reads
from biobank.services import results as result_service

results_app = typer.Typer(
    help="Phylogeny and migration results (CONIPHER, MACHINA, Metient) imported for a donor, drawn on its body map.",
    no_args_is_help=True,
)

LIST_COLUMNS = ["code", "tool", "kind", "file_name", "plan", "sites", "migrations", "clones", "imported_at", "imported_by"]


def _read_file(path: Path, field: str) -> bytes:
    """The file's bytes; a missing or unreadable file is an error naming it (nothing is written)."""
    try:
        if not path.is_file():
            raise invalid(field, str(path), "is not a file")
        size = path.stat().st_size
        if size > result_service.MAX_BYTES:
            raise invalid(field, str(path), f"is {size:,} bytes; at most {result_service.MAX_BYTES:,}")
        return path.read_bytes()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL in the path, no permission
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise invalid(field, str(path), f"cannot be read ({reason})") from None


@results_app.command("import")
@handle_errors
def results_import(
    donor: Annotated[str, typer.Argument(help="Donor code.")],
    file: Annotated[Path, typer.Argument(help="The tool's output (allTrees.txt, G-*.graph, T-*.tree ...).")],
    tool: Annotated[str, typer.Option(help="conipher, metient or machina.")],
    kind: Annotated[str, typer.Option(help="clone_tree or migration_graph.")],
    plan: Annotated[str | None, typer.Option(help="The analysis plan the result belongs to.")] = None,
    labeling: Annotated[
        Path | None,
        typer.Option(help="MACHINA/Metient clone tree: its vertex labelling (T-*.labeling). CONIPHER: its "
                     "clusterInfo.txt (clones per sample)."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the result (at most 500 characters).")] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a tool's result for a donor (PI). A malformed file is refused naming its line; nothing is written."""
    content = _read_file(file, "file")
    companion = _read_file(labeling, "labeling") if labeling is not None else None
    with unit_of_work() as session:
        actor = acting_user(session, user)
        result = result_service.import_result(
            session, actor=actor, donor_code=donor, tool=tool, kind=kind, file_name=file.name, content=content,
            plan_code=plan, note=note, companion_name=labeling.name if labeling is not None else None,
            companion=companion,
        )
        session.flush()
        detail = result_reads.get_result(session, result.code)
    detail.pop("content", None)
    emit(
        detail,
        as_json=as_json,
        text=f"result {detail['code']} imported for {detail['donor']}: {detail['tool']} {detail['kind']}, "
        f"{detail['sites']} site(s), {detail['migrations']} migration(s), {detail['clones']} clone(s)",
    )


@results_app.command("list")
@handle_errors
def results_list(
    donor: Annotated[str, typer.Argument(help="Donor code.")],
    as_json: JsonOption = False,
) -> None:
    """The donor's imported results, newest first."""
    rows = read(result_reads.list_results, donor)
    emit(rows, as_json=as_json, columns=LIST_COLUMNS)


@results_app.command("show")
@handle_errors
def results_show(
    code: Annotated[str, typer.Argument(help="Result code, e.g. RES-0001.")],
    as_json: JsonOption = False,
) -> None:
    """One result: what was read from it (migrations between sites, clones) and its file's checksum."""
    detail = read(result_reads.get_result, code)
    if as_json:
        emit_json(detail)
        return
    parsed = detail["parsed"]
    edges = [
        {"source": e["source"], "target": e["target"], "count": e.get("count", 1), "clones": ";".join(e.get("clones", []))}
        for e in parsed.get("edges", [])
    ]
    presence = [{"clone": p["clone"], "site": p["site"], "sample": p.get("sample"), "value": p.get("value")}
                for p in parsed.get("presence", [])]
    tables = [(edges, ["source", "target", "count", "clones"])]
    if presence:
        tables.append((presence, ["clone", "site", "sample", "value"]))
    emit(detail, as_json=False, skip=("content",), tables=tables)
