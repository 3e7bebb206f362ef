"""The REST API's speed on a synthetic cohort, each figure beside a raw SQL baseline of the same read taken in the
same run: list 1,000 specimens (four donors of 250: ``GET /api/v1/specimens?donor=..&limit=500``, two pages, the
second through ``next_cursor``), fetch one specimen (``GET /api/v1/specimens/{code}``) and record QC (``POST
/api/v1/specimens/{code}/qc``): p50, p99 and requests per second.

The API is a real process (``biobank serve --api``: uvicorn, one worker, on 127.0.0.1) on the cohort's database,
with the per-process rate limit off (``BIOBANK_API_RATE_LIMIT_PER_MINUTE=0``); the client is httpx with a kept-alive
connection, one request at a time, in this process. The baseline runs the same SELECT by hand (SQLAlchemy ``text()``
on a pooled connection of the same database: no HTTP, no token check, no consent rule, no JSON), and for QC the same
write by hand (lock the row, update it, add its custody event, commit: no service rules, no audit on SQLite).

Targets (at 1,000,000 specimens): the list of 1,000 ≤ 50 ms p50, one specimen ≤ 10 ms p50. The QC posts change the
cohort a little (a pathology value, a version and a custody event on a few tissue specimens); nothing else reads those.

    python benchmarks/api_speed.py                           # both databases, the 1,000,000-specimen cohort
    python benchmarks/api_speed.py --scale quick             # 20,000 specimens
    python benchmarks/api_speed.py --specimens 5000 --backends sqlite
    python benchmarks/api_speed.py --url sqlite:///benchmarks/.data/cohort-20000.db --specimens 20000  # (run_all)
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import bindparam, insert, select, text, update  # noqa: E402
from sqlalchemy.engine import Connection, Engine, make_url  # noqa: E402

from benchmarks import synthetic  # noqa: E402
from benchmarks.common import backend_of, figure  # noqa: E402

DATASETS = "all"
SCALES = {"quick": 20_000, "full": 1_000_000}
TARGET_AT = 1_000_000
LIST_TARGET_MS = 50.0
ONE_TARGET_MS = 10.0
LIST_SIZE = 1000
PAGE = 500  # the API's MAX_LIMIT
DATA = ROOT / "benchmarks" / ".data"
START_TIMEOUT = 60.0

#: The SELECT behind the specimen list (biobank.queries.specimens._list_statement), by hand.
LIST_SQL = """
SELECT s.code, d.code AS donor, a.case_code, ss.site_code, an.label, ss.code AS sampling_site, s.storage_format,
       s.material_type, s.quantity_remaining, s.quantity, s.unit, s.status, l.container_id, l.position,
       s.collected_at
FROM specimen s
JOIN donor d ON d.id = s.donor_id
JOIN sampling_site ss ON ss.id = s.sampling_site_id
LEFT JOIN anatomical_site an ON an.code = ss.site_code
LEFT JOIN autopsy a ON a.donor_id = s.donor_id
LEFT JOIN specimen_location l ON l.specimen_id = s.id
WHERE d.code IN (:d0, :d1, :d2, :d3) AND s.code > :after
ORDER BY s.code
LIMIT :limit
"""
#: One specimen with its donor, site and case, then its chain of custody: what the specimen view reads, by hand.
ONE_SQL = """
SELECT s.*, d.code AS donor, ss.code AS sampling_site, ss.site_code, a.case_code, a.death_at
FROM specimen s
JOIN donor d ON d.id = s.donor_id
JOIN sampling_site ss ON ss.id = s.sampling_site_id
LEFT JOIN autopsy a ON a.donor_id = s.donor_id
WHERE s.code = :code
"""
CUSTODY_SQL = "SELECT * FROM custody_event WHERE specimen_id = :id ORDER BY occurred_at, id"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(function: Callable[[int], Any], runs: int, warmup: int = 5) -> tuple[list[float], float]:
    """Latencies (ms) of ``runs`` calls after ``warmup`` untimed ones, and the wall time (s) of the timed calls."""
    for i in range(warmup):
        function(i)
    latencies = []
    started = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        function(warmup + i)
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, time.perf_counter() - started


def summary(latencies: list[float], wall: float, units: int = 1) -> dict[str, float]:
    return {"p50": statistics.median(latencies), "p99": percentile(latencies, 99),
            "rps": len(latencies) * units / wall if wall else 0.0}


# --- the API process --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_process(url: str) -> Iterator[str]:
    """A ``biobank serve --api`` process on ``url`` (its base URL), terminated at the end whatever happens."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "BIOBANK_TOKEN"}
    env |= {"BIOBANK_DATABASE_URL": url, "BIOBANK_API_RATE_LIMIT_PER_MINUTE": "0"}
    biobank = Path(sys.executable).with_name("biobank")
    command = [str(biobank), "serve", "--api", "--host", "127.0.0.1", "--port", str(port)] if biobank.exists() else [
        sys.executable, "-m", "uvicorn", "biobank.api:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the API process exited with {process.returncode}: "
                                       f"{log.read().decode(errors='replace')[-2000:]}")
                try:
                    if httpx.get(f"{base}/api/v1/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API process did not answer in {START_TIMEOUT:g} s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


# --- the data measured ------------------------------------------------------------------------------------------


def bench_token(engine: Engine) -> str:
    """A personal token of the synthetic loader's account (an administrator)."""
    from sqlmodel import Session
    from sqlmodel import select as sm_select

    from biobank.models import User
    from biobank.services import tokens

    with Session(engine) as session:
        user = session.exec(sm_select(User).where(User.username == synthetic.BENCH_USER)).one()
        issued = tokens.issue_personal_token(session, user=user, name="api-speed", days=1)
        session.commit()
        return issued.token


def choose(conn: Connection, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Four donors whose specimens make 1,000 (from the middle of the cohort, consent not withdrawn), codes of
    specimens spread over the whole cohort, and tissue specimens for QC."""
    counts = list(conn.execute(text(
        "SELECT d.code, count(*) FROM donor d JOIN specimen s ON s.donor_id = d.id "
        "WHERE d.status <> 'withdrawn' GROUP BY d.code ORDER BY d.code")).all())
    middle = len(counts) // 2
    donors: list[str] = []
    total = 0
    for code, n in counts[middle:] + counts[:middle]:
        if total + n <= LIST_SIZE:
            donors.append(code)
            total += n
        if total == LIST_SIZE or len(donors) == 4:
            break
    while len(donors) < 4:  # a cohort of fewer donors: repeat one (the IN list keeps its four parameters)
        donors.append(donors[-1])
    low, high = conn.execute(text("SELECT min(id), max(id) FROM specimen")).one()
    ids = sorted({rng.randint(low, high) for _ in range(600)})
    codes = list(conn.execute(text("SELECT code FROM specimen WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True)), {"ids": ids}).scalars())
    rng.shuffle(codes)
    tissue = list(conn.execute(text(
        "SELECT s.code FROM specimen s JOIN donor d ON d.id = s.donor_id WHERE d.code = :d AND "
        "s.material_type = 'tissue' AND s.storage_format = 'snap_frozen' ORDER BY s.code LIMIT 50"),
        {"d": donors[0]}).scalars())
    return donors, codes, tissue


def measure(url: str, specimens: int, runs: int) -> dict[str, dict[str, Any]]:
    from biobank.db.engine import make_engine
    from biobank.models import CustodyEvent, Specimen

    engine = make_engine(url)
    rng = random.Random(20)
    try:
        token = bench_token(engine)
        with engine.connect() as conn:
            donors, codes, tissue = choose(conn, rng)
        params = {f"d{i}": d for i, d in enumerate(donors)}
        results: dict[str, dict[str, Any]] = {}

        # --- raw SQL baselines, on the same database, in this run ---
        with engine.connect() as conn:
            list_sql, one_sql, custody_sql = text(LIST_SQL), text(ONE_SQL), text(CUSTODY_SQL)

            def raw_list(_: int) -> int:
                rows = conn.execute(list_sql, params | {"after": "", "limit": PAGE + 1}).all()
                rest = conn.execute(list_sql, params | {"after": rows[PAGE - 1][0], "limit": PAGE + 1}).all() \
                    if len(rows) > PAGE else []
                return len(rows[:PAGE]) + len(rest)

            listed = raw_list(0)
            conn.rollback()

            def raw_one(i: int) -> None:
                row = conn.execute(one_sql, {"code": codes[i % len(codes)]}).mappings().one()
                conn.execute(custody_sql, {"id": row["id"]}).all()

            raw = {"list": summary(*timed(raw_list, runs)), "one": summary(*timed(raw_one, runs))}
            conn.rollback()
        specimen, custody = Specimen.__table__, CustodyEvent.__table__  # type: ignore[attr-defined]
        postgres = backend_of(url) == "postgresql"
        with engine.connect() as conn:
            user_id = conn.execute(text("SELECT id FROM user_account WHERE username = :u"),
                                   {"u": synthetic.BENCH_USER}).scalar_one()

        def raw_qc(i: int) -> None:
            from biobank.models.base import utcnow

            code = tissue[i % len(tissue)]
            with engine.begin() as conn:
                locked = select(specimen.c.id).where(specimen.c.code == code)
                specimen_id = conn.execute(locked.with_for_update() if postgres else locked).scalar_one()
                conn.execute(update(specimen).where(specimen.c.id == specimen_id).values(
                    tumour_cellularity_pct=float(20 + i % 70), version=specimen.c.version + 1))
                conn.execute(insert(custody).values(specimen_id=specimen_id, kind="qc_recorded", occurred_at=utcnow(),
                                                    user_id=user_id, note="raw baseline"))

        raw["qc"] = summary(*timed(raw_qc, runs))

        # --- the API, a real process ---
        with api_process(url) as base, httpx.Client(base_url=base, timeout=60,
                                                    headers={"Authorization": f"Bearer {token}"}) as client:
            query = [("donor", d) for d in donors]
            pages: list[float] = []

            def api_list(_: int) -> int:
                t0 = time.perf_counter()
                first = client.get("/api/v1/specimens", params=[*query, ("limit", PAGE)])
                first.raise_for_status()
                pages.append((time.perf_counter() - t0) * 1000)
                body = first.json()
                count = len(body["items"])
                while body["next_cursor"] is not None:
                    t0 = time.perf_counter()
                    page = client.get("/api/v1/specimens",
                                      params=[*query, ("limit", PAGE), ("cursor", body["next_cursor"])])
                    page.raise_for_status()
                    pages.append((time.perf_counter() - t0) * 1000)
                    body = page.json()
                    count += len(body["items"])
                return count

            api_listed = api_list(0)
            if api_listed != listed:
                raise RuntimeError(f"the API listed {api_listed} specimens, the raw SELECT {listed}")

            def api_one(i: int) -> None:
                client.get(f"/api/v1/specimens/{codes[i % len(codes)]}").raise_for_status()

            def api_qc(i: int) -> None:
                code = tissue[i % len(tissue)]
                client.post(f"/api/v1/specimens/{code}/qc",
                            json={"tumour_cellularity_pct": 20 + i % 70}).raise_for_status()

            pages.clear()
            api = {"list": summary(*timed(api_list, runs)), "one": summary(*timed(api_one, runs)),
                   "qc": summary(*timed(api_qc, runs))}
            api["list"]["page_p50"] = statistics.median(pages)
        for name in ("list", "one", "qc"):
            results[name] = {"api": api[name], "raw": raw[name]}
        results["list"]["count"] = listed
        results["list"]["donors"] = donors
        return results
    finally:
        engine.dispose()


# --- figures ----------------------------------------------------------------------------------------------------

LABELS = {
    "list": "list 1,000 specimens of 4 donors (2 pages of 500)",
    "one": "one specimen (GET /specimens/{code})",
    "qc": "record QC (POST /specimens/{code}/qc)",
}
TARGETS = {"list": LIST_TARGET_MS, "one": ONE_TARGET_MS}


def figures_of(results: dict[str, dict[str, Any]], specimens: int, runs: int) -> list[dict[str, Any]]:
    at_target_scale = specimens >= TARGET_AT
    out = []
    for name in ("list", "one", "qc"):
        api, raw = results[name]["api"], results[name]["raw"]
        target = TARGETS.get(name)
        extra = f"; one page p50 {api['page_p50']:.1f} ms" if name == "list" else ""
        note = (f"{runs} sequential requests to one uvicorn process after 5 warm-ups; raw SQL baseline p50 "
                f"{raw['p50']:.2f} ms, p99 {raw['p99']:.2f} ms, {raw['rps']:,.0f}/s{extra}")
        out.append(figure(f"API {LABELS[name]}, p50", round(api["p50"], 2), "ms",
                          target=f"≤ {target:g} ms at 1 M" if target and at_target_scale else "—",
                          met=(api["p50"] <= target) if target and at_target_scale else None,
                          note=note, baseline=round(raw["p50"], 2)))
        out.append(figure(f"API {LABELS[name]}, p99", round(api["p99"], 2), "ms", baseline=round(raw["p99"], 2)))
        out.append(figure(f"API {LABELS[name]}, requests per second", round(api["rps"], 1), "req/s",
                          baseline=round(raw["rps"], 1)))
    return out


def report(backend: str, specimens: int, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{backend}, {specimens:,} specimens (list: {results['list']['count']} specimens of donors "
          f"{', '.join(results['list']['donors'])})")
    print(f"  {'operation':52} {'API p50':>9} {'p99':>9} {'req/s':>8}   {'raw p50':>9} {'p99':>9} {'/s':>8}  target")
    for name in ("list", "one", "qc"):
        api, raw = results[name]["api"], results[name]["raw"]
        target = TARGETS.get(name)
        verdict = "—"
        if target:
            verdict = f"≤ {target:g} ms p50: " + ("met" if api["p50"] <= target else "MISSED") + (
                "" if specimens >= TARGET_AT else " (target is at 1 M)")
        print(f"  {LABELS[name]:52} {api['p50']:7.2f}ms {api['p99']:7.2f}ms {api['rps']:8.1f}   "
              f"{raw['p50']:7.2f}ms {raw['p99']:7.2f}ms {raw['rps']:8.1f}  {verdict}")
    print(f"  (one page of 500 through the API: p50 {results['list']['api']['page_p50']:.2f} ms)", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="measure this cohort's database (as run_all.py passes it); default: build or "
                                      "reuse the synthetic cohort of --specimens on each of --backends")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                        help="quick: 20,000 specimens; full: 1,000,000 (the other benchmarks' scale)")
    parser.add_argument("--specimens", type=int, help="cohort size (overrides --scale)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("BIOBANK_TEST_POSTGRES_URL"),
                        help="server URL; the cohort goes into database biobank_bench_<N> on it")
    parser.add_argument("--runs", type=int, default=200, help="timed requests per operation")
    args = parser.parse_args(argv)
    specimens = args.specimens or SCALES[args.scale]
    if args.url:
        targets = [(backend_of(args.url), args.url)]
    else:
        targets = []
        for backend in [b for b in args.backends.split(",") if b]:
            if backend == "postgresql" and not args.postgres:
                print("no PostgreSQL URL (--postgres or BIOBANK_TEST_POSTGRES_URL): PostgreSQL skipped",
                      file=sys.stderr)
                continue
            url = synthetic.cohort_url(backend, specimens, postgres=args.postgres, data_dir=DATA)
            started = time.perf_counter()
            synthetic.ensure_cohort(url, specimens, log=lambda m: print(f"  {m}", flush=True))
            print(f"  {backend} cohort ready in {time.perf_counter() - started:.0f} s "
                  f"({make_url(url).render_as_string(hide_password=True)})", flush=True)
            targets.append((backend, url))
    figures: list[dict[str, Any]] = []
    for backend, url in targets:
        results = measure(url, specimens, args.runs)
        report(backend, specimens, results)
        figures += figures_of(results, specimens, args.runs)
    return {"name": "api_speed", "specimens": specimens, "figures": figures}


if __name__ == "__main__":
    main()
