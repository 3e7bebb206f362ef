"""Run every benchmark present on SQLite and PostgreSQL, write ``benchmarks/results/<name>.json`` and regenerate the
results table in ``docs/performance.md``.

A benchmark is a module ``benchmarks/*_speed.py`` or ``benchmarks/export_*.py`` with ``main(argv) -> dict``; it is
called as ``main(["--url", URL, "--specimens", N])`` on a synthetic cohort of N specimens and returns
``{"name": ..., "figures": [benchmarks.common.figure(...), ...]}``. A module-level ``DATASETS = "largest"`` runs it
on the largest cohort only (default: on every cohort of the scale).

    python benchmarks/run_all.py                    # full: cohorts of 10,000 and 1,000,000 specimens
    python benchmarks/run_all.py --scale quick      # cohorts of 2,000 and 20,000 specimens
    python benchmarks/run_all.py --scale million    # the consortium-scale cohort of 1,000,000 only
    python benchmarks/run_all.py --specimens 5000,50000 --only overview_speed --backends sqlite
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import synthetic  # noqa: E402
from benchmarks.common import figure, machine  # noqa: E402

BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
DATA = BENCHMARKS / ".data"
DOC = ROOT / "docs" / "performance.md"
SCALES = {"quick": [2_000, 20_000], "full": [10_000, 1_000_000], "million": [1_000_000]}
START, END = "<!-- results:start -->", "<!-- results:end -->"


def discover(only: set[str] | None = None) -> list[ModuleType]:
    paths = sorted({*BENCHMARKS.glob("*_speed.py"), *BENCHMARKS.glob("export_*.py")})
    modules = []
    for path in paths:
        if only and path.stem not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if callable(getattr(module, "main", None)):
            modules.append(module)
    return modules


def _cohort(backend: str, specimens: int, postgres: str | None, rebuild: bool) -> tuple[str, dict[str, Any]]:
    url = synthetic.cohort_url(backend, specimens, postgres=postgres, data_dir=DATA)
    sidecar = DATA / f"cohort-{backend}-{specimens}.json"
    built = synthetic.ensure_cohort(url, specimens, rebuild=rebuild, log=lambda m: print(f"    {m}", flush=True))
    if not built["reused"]:
        DATA.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(json.dumps(built))
    elif sidecar.exists():
        built = {**json.loads(sidecar.read_text()), "reused": True}
    return url, built


def run(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    scales = [int(s) for s in args.specimens.split(",")] if args.specimens else SCALES[args.scale]
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not args.postgres:
        print("no PostgreSQL URL (--postgres or BIOBANK_TEST_POSTGRES_URL): PostgreSQL skipped", file=sys.stderr)
        backends.remove("postgresql")
    modules = discover(set(args.only.split(",")) if args.only else None)
    results: dict[str, list[dict[str, Any]]] = {}
    for backend in backends:
        for specimens in scales:
            print(f"\n== {backend}, {specimens:,} specimens", flush=True)
            url, built = _cohort(backend, specimens, args.postgres, args.rebuild)
            if "rows_per_second" in built:
                results.setdefault("synthetic", []).append({
                    "backend": backend, "specimens": specimens,
                    "figures": [figure(f"Synthetic cohort bulk load, {specimens:,} specimens",
                                       round(built["rows_per_second"]), "rows/s",
                                       note=f"{built['rows']:,} rows in {built['seconds']:.0f} s (Core executemany / "
                                            f"COPY, every constraint and trigger on)")],
                })
            for module in modules:
                if getattr(module, "DATASETS", "all") == "largest" and specimens != max(scales):
                    continue
                name = module.__name__.rsplit(".", 1)[1]
                print(f"  -- {name}", flush=True)
                started = time.perf_counter()
                try:
                    outcome = module.main(["--url", url, "--specimens", str(specimens)])
                except Exception as exc:  # a broken benchmark is reported, the others still run
                    outcome = {"figures": [figure(f"{name} failed", None, "", met=False, note=f"{type(exc).__name__}: {exc}")]}
                    print(f"     FAILED: {exc}", file=sys.stderr)
                results.setdefault(name, []).append({
                    "backend": backend, "specimens": specimens, "seconds": round(time.perf_counter() - started, 1),
                    "figures": outcome["figures"],
                })
    return results


def _value(f: dict[str, Any]) -> str:
    value = f["value"]
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 1000:
        value = round(value)
    return f"{value:,} {f['unit']}".strip() if isinstance(value, int) else f"{value} {f['unit']}".strip()


def _met(f: dict[str, Any]) -> str:
    return {True: "met", False: "**missed**", None: "—"}[f["met"]]


def table(all_results: dict[str, dict[str, Any]]) -> str:
    lines = ["| benchmark | database | specimens | figure | value | target | met |",
             "|---|---|---:|---|---:|---|---|"]
    for name in sorted(all_results):
        for entry in all_results[name]["runs"]:
            for f in entry["figures"]:
                lines.append(f"| {name} | {entry['backend']} | {entry['specimens']:,} | {f['figure']} | {_value(f)} | "
                             f"{f['target']} | {_met(f)} |")
    notes = [f"- **{name}** ({entry['backend']}, {entry['specimens']:,}): {f['figure']}: {f['note']}"
             for name in sorted(all_results) for entry in all_results[name]["runs"] for f in entry["figures"]
             if f.get("note")]
    return "\n".join([*lines, "", "Notes:", "", *notes])


def write(results: dict[str, list[dict[str, Any]]], command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for name, runs in results.items():
        path = RESULTS / f"{name}.json"
        # A run on one database or scale replaces only its own lines; the others' stay.
        kept = json.loads(path.read_text())["runs"] if path.exists() else []
        fresh = {(r["backend"], r["specimens"]) for r in runs}
        merged = [r for r in kept if (r["backend"], r["specimens"]) not in fresh] + runs
        merged.sort(key=lambda r: (r["backend"] != "sqlite", r["specimens"]))
        for run in runs:
            run["command"], run["at"] = command, stamp
        path.write_text(json.dumps({"name": name, "machine": info, "runs": merged}, indent=2) + "\n")
    everything = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    header = [
        f"Generated by `benchmarks/run_all.py` at {stamp}.",
        "",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB memory, shared with other work;"
        f" Python {info['python']}, SQLite {info['sqlite']}, {info['postgres_client']}",
        "- commands: " + ", ".join(sorted({f"`{run.get('command', '?')}`" for r in everything.values()
                                           for run in r["runs"]})),
        "",
    ]
    block = "\n".join([START, *header, table(everything), END])
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Performance\n\n" + START + "\n" + END + "\n"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark on SQLite and PostgreSQL.")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                        help="quick: 2,000 and 20,000 specimens; full: 10,000 and 1,000,000; million: 1,000,000 only")
    parser.add_argument("--specimens", help="comma-separated cohort sizes (overrides --scale)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("BIOBANK_TEST_POSTGRES_URL"),
                        help="server URL; cohorts go into databases biobank_bench_<N> on it")
    parser.add_argument("--only", help="comma-separated benchmark names (module names)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached cohorts")
    args = parser.parse_args(argv)
    command = "python benchmarks/run_all.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = run(args)
    write(results, command.strip())
    print(f"\nresults in {RESULTS.relative_to(ROOT)}/, table in {DOC.relative_to(ROOT)}")
    for name, runs in results.items():
        for entry in runs:
            for f in entry["figures"]:
                print(f"{name:16} {entry['backend']:10} {entry['specimens']:>9,}  {f['figure']}: {_value(f)}"
                      f"  target {f['target']}  {_met(f)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
