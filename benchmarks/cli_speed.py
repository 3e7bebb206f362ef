"""How long the command line takes to start and answer (issue 21, items 5 and 8): the wall time of ``biobank --help``,
of ``biobank specimen show CODE`` for a specimen of the cohort, and of the same command with a mistyped code (one
line, exit code 2), each as a fresh process the way a person runs it, beside baselines taken in the same run: the
bare interpreter (``python -c pass``), the import of what the lookup itself needs (the command line's modules, the
bare driver connection ``biobank.db.direct``, the plain-SQL read ``biobank.queries.specimen_view`` and the database
driver), the import of the ORM reads the command went through before (``biobank.queries.core``: the table models,
SQLAlchemy, SQLModel and the settings), and the same lookups done in this process on one connection
(``specimen_view.specimen_detail``, found and not found), so the command line's own overhead is visible.

Each process runs once untimed (a warm-up: the disk cache, and the bytecode, written under a temporary
``PYTHONPYCACHEPREFIX`` as an installed package has it), then ``--runs`` times; the median counts. The processes'
CPU time (user + system) is noted beside the wall time: on a shared machine the wall time also holds the wait for a
CPU. Read-only: the database is only read (SELECTs; the in-process lookups are rolled back).

Targets (at 1,000,000 specimens): ``specimen show`` ≤ 0.4 s, found or mistyped; the lookup itself ≤ 10 ms.

    python benchmarks/cli_speed.py --url sqlite:////tmp/cohort.db --specimens 20000
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import backend_of, figure  # noqa: E402

DATASETS = "all"
TARGET_AT = 1_000_000
#: ``biobank specimen show``, found or mistyped (seconds, a fresh process).
SHOW_TARGET_S = 0.4
#: The lookup alone, in a process that has everything imported (milliseconds).
QUERY_TARGET_MS = 10.0


def _script() -> list[str]:
    """The installed ``biobank`` script beside this interpreter (else the same entry point through ``-c``)."""
    script = Path(sys.executable).with_name("biobank")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from biobank.cli import main; main()"]


def _environment(url: str, pycache: str, home: str) -> dict[str, str]:
    """The command's environment: this database, no token or user from the caller's shell, a token folder of its own,
    and bytecode cached (under ``pycache``) as an installed package has it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BIOBANK_TOKEN", "BIOBANK_USER", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")}
    env.update({"BIOBANK_DATABASE_URL": url, "PYTHONPYCACHEPREFIX": pycache, "BIOBANK_CONFIG_DIR": home})
    return env


Check = Callable[[subprocess.CompletedProcess[str]], None]


Timing = tuple[list[float], list[float]]


def timed_processes(commands: list[tuple[list[str], Check]], env: dict[str, str], runs: int) -> list[Timing]:
    """Wall and CPU seconds of each command, run once untimed, then ``runs`` rounds of one run of each in turn (so
    a change in the machine's load weighs on every command alike); ``check`` refuses a wrong outcome."""
    for command, check in commands:
        check(subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300))
    timings: list[Timing] = [([], []) for _ in commands]
    for _ in range(runs):
        for (command, check), (walls, cpus) in zip(commands, timings, strict=True):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            check(done)
    return timings


def _exits(code: int, shows: str) -> Check:
    def check(done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != code or shows not in done.stdout + done.stderr:
            raise RuntimeError(f"{' '.join(map(str, done.args))[-200:]}: exit {done.returncode}, expected {code} "
                               f"showing {shows!r}:\n{done.stdout[-1000:]}{done.stderr[-2000:]}")
    return check


def pick_codes(url: str) -> tuple[str, str]:
    """A specimen of the cohort (the middle one by id) and a mistyped code no specimen has (a digit dropped)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            middle = conn.execute(text("SELECT max(id) / 2 FROM specimen")).scalar_one()
            code = conn.execute(text("SELECT code FROM specimen WHERE id >= :id ORDER BY id LIMIT 1"),
                                {"id": middle or 0}).scalar_one()
            digit = next(i for i, c in enumerate(code) if c.isdigit())
            typo = code[:digit] + code[digit + 1:]
            taken = conn.execute(text("SELECT count(*) FROM specimen WHERE upper(code) = upper(:typo)"),
                                 {"typo": typo}).scalar_one()
            if taken:
                raise RuntimeError(f"the mistyped code {typo!r} is a specimen's code")
    finally:
        engine.dispose()
    return code, typo


def in_process(url: str, code: str, typo: str, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds of ``specimen_detail`` for ``code`` and for the not-found ``typo``, in this process on one
    connection of ``biobank.db.direct`` (one read transaction, rolled back), after one untimed call of each."""
    from biobank.db.direct import reading
    from biobank.domain.errors import NotFoundError
    from biobank.queries.specimen_view import specimen_detail

    with reading(url) as connection:

        def show() -> None:
            assert specimen_detail(connection, code)["code"] == code

        def mistyped() -> None:
            try:
                specimen_detail(connection, typo)
            except NotFoundError:
                return
            raise RuntimeError(f"{typo!r} was found")

        timings = []
        for lookup in (show, mistyped):
            lookup()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                lookup()
                times.append((time.perf_counter() - started) * 1000)
            timings.append(times)
    return timings[0], timings[1]


def _runs(values: list[float], unit: str = "s") -> str:
    shown = ", ".join(f"{v:.3f}" if unit == "s" else f"{v:.2f}" for v in values)
    return f"median of {len(values)}: {shown}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Time biobank --help and biobank specimen show as fresh processes.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--specimens", type=int, required=True, help="specimens in the cohort (for the target)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each process after one warm-up")
    args = parser.parse_args(argv)

    code, typo = pick_codes(args.url)
    at_scale = args.specimens >= TARGET_AT
    n = f"{args.specimens:,} specimens, {backend_of(args.url)}"
    biobank = _script()
    with tempfile.TemporaryDirectory(prefix="cli-speed-") as scratch:
        env = _environment(args.url, str(Path(scratch) / "pycache"), str(Path(scratch) / "config"))
        ok = _exits(0, "")
        driver = "sqlite3" if backend_of(args.url) == "sqlite" else "psycopg"
        needs = f"import biobank.cli, biobank.cli.core, biobank.db.direct, biobank.queries.specimen_view, {driver}"
        bare, floor, orm, helps, shows, typos = timed_processes([
            ([sys.executable, "-c", "pass"], ok),
            ([sys.executable, "-c", needs], ok),
            ([sys.executable, "-c", "import biobank.queries.core"], ok),
            ([*biobank, "--help"], _exits(0, "specimen")),
            ([*biobank, "specimen", "show", code], _exits(0, f"code                   {code}")),
            ([*biobank, "specimen", "show", typo], _exits(2, f"specimen {typo!r} not found")),
        ], env, args.runs)
    query_ms, typo_ms = in_process(args.url, code, typo, max(args.runs, 20))

    bare_s, floor_s = statistics.median(bare[0]), statistics.median(floor[0])
    query_s = statistics.median(query_ms) / 1000

    def cpu(timing: Timing) -> str:
        return f"CPU {statistics.median(timing[1]):.3f} s"

    def process_line(name: str, timing: Timing, target: float | None, note: str) -> dict[str, Any]:
        median = statistics.median(timing[0])
        return figure(name, round(median, 3), "s",
                      target=f"≤ {target:g} s at 1 M" if target is not None and at_scale else "—",
                      met=(median <= target) if target is not None and at_scale else None,
                      baseline=round(bare_s, 3), note=f"{_runs(timing[0])} ({cpu(timing)}); {note}")

    beside = (f"bare interpreter {bare_s:.3f} s; importing what the lookup needs (the command line, "
              f"biobank.db.direct, biobank.queries.specimen_view, {driver}) {floor_s:.3f} s ({cpu(floor)}); importing "
              f"the ORM reads it used before (biobank.queries.core) {statistics.median(orm[0]):.3f} s ({cpu(orm)})")
    figures = [
        process_line(f"biobank specimen show CODE (a fresh process), {n}", shows, SHOW_TARGET_S,
                     f"{beside}; the lookup in-process {query_s * 1000:.2f} ms"),
        process_line(f"biobank specimen show TYPO (not found: one line, exit 2), {n}", typos, SHOW_TARGET_S,
                     f"{beside}; the not-found lookup in-process {statistics.median(typo_ms):.2f} ms"),
        process_line(f"biobank --help (a fresh process), {n}", helps, None,
                     f"bare interpreter {bare_s:.3f} s: no command module, no database layer imported"),
        figure(f"python -c pass (the bare interpreter, baseline), {n}", round(bare_s, 3), "s",
               note=f"{_runs(bare[0])} ({cpu(bare)})"),
        figure(f"python -c '{needs}' (what the lookup needs, baseline), {n}", round(floor_s, 3),
               "s", note=f"{_runs(floor[0])} ({cpu(floor)}): Typer, the command line's modules, the bare connection, "
                         "the plain-SQL read, the driver"),
        figure(f"python -c 'import biobank.queries.core' (the ORM reads show used before, baseline), {n}",
               round(statistics.median(orm[0]), 3), "s",
               note=f"{_runs(orm[0])} ({cpu(orm)}): SQLAlchemy, SQLModel, the table models, the settings"),
        figure(f"specimen_detail in-process (the query behind specimen show), {n}",
               round(statistics.median(query_ms), 2), "ms",
               target=f"≤ {QUERY_TARGET_MS:g} ms at 1 M" if at_scale else "—",
               met=(statistics.median(query_ms) <= QUERY_TARGET_MS) if at_scale else None,
               note=f"{_runs(query_ms, 'ms')}; code {code}"),
        figure(f"specimen_detail of a mistyped code in-process (not found), {n}", round(statistics.median(typo_ms), 2),
               "ms", note=f"{_runs(typo_ms, 'ms')}; typed {typo}"),
    ]
    for line in figures:
        print(f"  {line['figure']}: {line['value']} {line['unit']} (target {line['target']}"
              f"{'' if line['met'] is None else ', met' if line['met'] else ', MISSED'}) {line['note']}")
    return {"name": "cli_speed", "specimens": args.specimens, "figures": figures}


if __name__ == "__main__":
    main()
