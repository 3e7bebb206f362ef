"""Export every specimen to Parquet through the library (``biobank.exports.stream``) against a baseline in the same
run: the same SQL read with a raw DB-API cursor (``fetchmany``; a named server-side cursor on PostgreSQL) and written
with pyarrow. Each measurement runs in its own interpreter, which reports its peak memory (VmHWM).

Both batch by bytes the same way, so the comparison is of the read path alone: the baseline feeds its raw cursor's
``fetchmany`` through the library's ``fetched_batches`` (fetches of about 2 MiB of Arrow data) and
``write_row_groups`` (row groups of ``--batch-mib`` of Arrow data, 32 MiB by default), the library its SQLAlchemy
result's; both keep their Arrow data in the library's ``MEMORY_POOL``. On PostgreSQL each fetch is a
``FETCH FORWARD n`` on a named (server-side) cursor in both.

Of the peak, some 165 MiB is the interpreter with its imports before any row: pyarrow, SQLAlchemy, the models, and
pandas (about 55 MiB), which pyarrow imports on the first ``pa.array`` in both processes.

Targets: library time ≤ 1.5 × baseline time; library peak memory ≤ 300 MiB (whole interpreter, imports included).

    python benchmarks/export_parquet.py --url sqlite:///benchmarks/.data/cohort-20000.db
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import figure, peak_rss_mib, run_child  # noqa: E402

DATASETS = "largest"
TIME_RATIO_TARGET = 1.5
MEMORY_TARGET_MIB = 300


def _library(url: str, out: Path, batch_bytes: int) -> dict[str, Any]:
    from biobank.db.engine import make_engine
    from biobank.exports.stream import export_specimens_parquet

    engine = make_engine(url)
    started = time.perf_counter()
    result = export_specimens_parquet(engine, out, batch_bytes=batch_bytes)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": result.rows, "groups": result.batches}


def _baseline(url: str, out: Path, batch_bytes: int) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from sqlalchemy.engine import make_url

    from biobank.db.engine import make_engine
    from biobank.exports.stream import (
        MEMORY_POOL,
        SCHEMA,
        fetched_batches,
        specimen_export_statement,
        write_row_groups,
    )

    parsed = make_url(url)
    dialect = make_engine(url).dialect
    sql = str(specimen_export_statement().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    started = time.perf_counter()
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(str(parsed.database))
        cursor = conn.cursor()
    else:
        import psycopg

        conn = psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
                               dbname=parsed.database, options="-c timezone=UTC")
        cursor = conn.cursor(name="baseline_export")  # fetchmany(n) is FETCH FORWARD n; itersize is unused
    cursor.execute(sql)
    with pq.ParquetWriter(out, SCHEMA, compression="zstd", memory_pool=MEMORY_POOL) as writer:
        rows, groups = write_row_groups(writer, fetched_batches(cursor.fetchmany), batch_bytes=batch_bytes)
    cursor.close()
    conn.close()
    return {"seconds": time.perf_counter() - started, "rows": rows, "groups": groups}


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["library", "baseline"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    measure = _library if args.child == "library" else _baseline
    result = measure(args.url, Path(args.out), args.batch_bytes)
    result["peak_rss_mib"] = peak_rss_mib()
    result["bytes"] = Path(args.out).stat().st_size
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Parquet export of every specimen: library vs raw cursor.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--specimens", type=int, default=None, help="size of the cohort (for the label only)")
    parser.add_argument("--batch-mib", type=float, default=None,
                        help="Arrow data per row group, MiB (default: the library's BATCH_BYTES, 32 MiB)")
    parser.add_argument("--runs", type=int, default=2, help="alternating runs of each; the fastest counts")
    args = parser.parse_args(argv)
    from biobank.exports.stream import BATCH_BYTES

    batch_bytes = BATCH_BYTES if args.batch_mib is None else int(args.batch_mib * 1024 * 1024)
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as workdir:
        for run in range(args.runs):
            for kind in ("baseline", "library"):
                out = Path(workdir) / f"{kind}-{run}.parquet"
                measured = run_child(Path(__file__), ["--child", kind, "--url", args.url, "--out", str(out),
                                                      "--batch-bytes", str(batch_bytes)])
                out.unlink(missing_ok=True)
                if kind not in best or measured["seconds"] < best[kind]["seconds"]:
                    best[kind] = measured
    library, baseline = best["library"], best["baseline"]
    ratio = library["seconds"] / baseline["seconds"] if baseline["seconds"] else float("inf")
    rows = library["rows"]
    figures = [
        figure("Parquet export of all specimens", round(library["seconds"], 2), "s",
               baseline=round(baseline["seconds"], 2),
               note=f"{rows:,} rows, {rows / library['seconds']:,.0f} rows/s; raw cursor + pyarrow "
                    f"{baseline['seconds']:.2f} s"),
        figure("Parquet export time / raw-cursor baseline", round(ratio, 2), "×", target=f"≤ {TIME_RATIO_TARGET}",
               met=ratio <= TIME_RATIO_TARGET),
        figure("Parquet export peak memory", round(library["peak_rss_mib"], 1), "MiB", target=f"≤ {MEMORY_TARGET_MIB}",
               met=library["peak_rss_mib"] <= MEMORY_TARGET_MIB, baseline=round(baseline["peak_rss_mib"], 1),
               note=f"whole interpreter (VmHWM); baseline {baseline['peak_rss_mib']:.0f} MiB; row groups of "
                    f"{batch_bytes / 1024 / 1024:g} MiB of Arrow data ({library['groups']:,} groups)"),
    ]
    for line in figures:
        print(f"  {line['figure']}: {line['value']} {line['unit']} (target {line['target']})")
    return {"name": "export_parquet", "specimens": args.specimens or rows, "figures": figures}


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(sys.argv[1:])
    else:
        main()
