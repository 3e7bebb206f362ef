"""The REST API scales out (PostgreSQL): two real API processes (``biobank serve --api``) on one database, hammered at
once by threads that send half their requests to each.

- QC written on the same specimens from both processes: every 200 is one audited update and one custody event,
  nothing lost; the specimen's optimistic-lock ``version`` went up by exactly the number of 200s; any refusal is a
  clean 409 problem, never a 500.
- The same ``Idempotency-Key`` sent to both processes at the same instant, then retried: the write happens once;
  every answer is the first response or its replay (``Idempotent-Replayed: true``), because the keys live in the
  database (``api_idempotency_key``), not in a process.
- No double placement: different specimens moved into the same free box position through both processes at once:
  exactly one move succeeds, the others are 409/422 problems, and the position holds one specimen.

Each process is terminated (and checked gone) when the module ends, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from biobank.db.engine import make_engine, session_scope
from biobank.models import AuditLog, Container, CustodyEvent, Specimen, SpecimenLocation, User
from biobank.queries.storage import grid as grid_of
from biobank.queries.storage import open_checkout
from biobank.services import tokens
from tests.support.dbtools import POSTGRES_URL, create_pg_database, drop_pg_database, migrate

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="set BIOBANK_TEST_POSTGRES_URL to run the scale-out proof")

PROCESSES = 2
BOX = "BOX80-001"  # a -80 °C 9x9 box of the demo cohort
PROBLEM = "application/problem+json"
START_TIMEOUT = 40.0  # seconds for a fresh interpreter to import the app and answer


@dataclass
class Cluster:
    url: str
    engine: Engine
    bases: list[str]
    token: str
    tech_id: int
    specimens: list[str]  # tissue, available, for QC
    stored: list[str]  # stored in BOX and not checked out, for moves
    free_positions: list[str]  # free positions of BOX


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"API process on {base} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/api/v1/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"API process on {base} did not answer in {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}")


def _alive(pids: list[int]) -> list[str]:
    """The ``ps`` lines of any of ``pids`` still running (zombies excluded: they were reaped by wait())."""
    out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-p", ",".join(map(str, pids))], capture_output=True,
                         text=True, check=False).stdout
    return [line for line in out.splitlines() if line.split() and line.split()[1][0] != "Z"]


@pytest.fixture(scope="module")
def api_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A migrated PostgreSQL database (its URL) and the base URLs of two ``biobank serve --api`` processes on it."""
    url = create_pg_database()
    processes: list[subprocess.Popen[bytes]] = []
    logs = tmp_path_factory.mktemp("api-logs")
    try:
        migrate(url)
        env = {k: v for k, v in os.environ.items() if k != "BIOBANK_TOKEN"}
        # the per-process limit is not under test here (600/min by default would answer 429 to this hammering)
        env |= {"BIOBANK_DATABASE_URL": url, "BIOBANK_API_RATE_LIMIT_PER_MINUTE": "0"}
        biobank = Path(sys.executable).with_name("biobank")
        bases = []
        for _ in range(PROCESSES):
            port = _free_port()
            log = logs / f"api-{port}.log"
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [str(biobank), "serve", "--api", "--host", "127.0.0.1", "--port", str(port)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            bases.append(f"http://127.0.0.1:{port}")
        for process, base in zip(processes, bases, strict=True):
            _wait_ready(process, base, logs / f"api-{base.rsplit(':', 1)[1]}.log")
        yield url, bases
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        drop_pg_database(url)
        left = _alive([p.pid for p in processes]) if processes else []
        assert not left, f"API processes still running: {left}"


@pytest.fixture(scope="module")
def cluster(api_processes: tuple[str, list[str]]) -> Iterator[Cluster]:
    url, bases = api_processes
    from biobank.demo.cohort import load_demo

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            load_demo(session, donors_count=2, seed=7)
            tech = User(username="scaleout_tech", role="technician")
            session.add(tech)
            session.flush()
            box = session.exec(select(Container).where(Container.code == BOX)).one()  # the demo fills 72 of 81
            placed = session.exec(select(Specimen.id, Specimen.code, SpecimenLocation.position)
                                  .join(SpecimenLocation, col(SpecimenLocation.specimen_id) == Specimen.id)
                                  .where(SpecimenLocation.container_id == box.id, Specimen.status == "available")
                                  .order_by(Specimen.code)).all()
            stored = [code for specimen_id, code, _ in placed if open_checkout(session, specimen_id) is None][:8]
            taken = set(session.exec(select(SpecimenLocation.position).where(SpecimenLocation.container_id == box.id)))
            grid = grid_of(box)
            assert grid is not None
            free = [grid.at_index(i) for i in range(grid.size) if grid.at_index(i) not in taken]
            candidates = session.exec(
                select(Specimen.code).where(Specimen.status == "available", Specimen.material_type == "tissue")
                .order_by(Specimen.code)).all()
            token = tokens.issue_personal_token(session, user=tech, name="scale-out").token
            tech_id = int(tech.id or 0)
        qc = [c for c in candidates if c not in stored][:6]
        assert len(stored) == 8 and len(qc) == 6 and len(free) >= 2, (stored, qc, free)
        yield Cluster(url, engine, bases, token, tech_id, qc, stored, free)
    finally:
        engine.dispose()


def hammer(cluster: Cluster, jobs: list[Callable[[httpx.Client], Any]]) -> list[Any]:
    """Run every job in its own thread, all released at once; job ``i`` talks to process ``i % 2``. Returns what
    each job returned, in order (an exception in a job is re-raised here)."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[httpx.Client], Any]) -> None:
        headers = {"Authorization": f"Bearer {cluster.token}"}
        try:
            with httpx.Client(base_url=cluster.bases[index % len(cluster.bases)], headers=headers,
                              timeout=60) as client:
                barrier.wait(timeout=30)
                results[index] = job(client)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads)
    return results


def assert_clean_refusal(response: httpx.Response, statuses: set[int]) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]


def _state(engine: Engine, codes: list[str], tech_id: int) -> dict[str, tuple[int, int, int]]:
    """Per specimen: (version, audited updates by the technician, QC custody events)."""
    with Session(engine) as session:
        rows = session.exec(select(Specimen.id, Specimen.code, Specimen.version)
                            .where(col(Specimen.code).in_(codes))).all()
        state = {}
        for specimen_id, code, version in rows:
            audited = session.exec(select(func.count()).select_from(AuditLog).where(
                AuditLog.table_name == "specimen", AuditLog.row_id == str(specimen_id), AuditLog.action == "update",
                AuditLog.user_id == tech_id)).one()
            events = session.exec(select(func.count()).select_from(CustodyEvent).where(
                CustodyEvent.specimen_id == specimen_id, CustodyEvent.kind == "qc_recorded")).one()
            state[code] = (int(version), int(audited), int(events))
    return state


def test_qc_written_through_both_processes_at_once_loses_nothing(cluster):
    codes = cluster.specimens[:3]
    before = _state(cluster.engine, codes, cluster.tech_id)
    threads, per_thread = 12, 6

    def writer(worker: int) -> Callable[[httpx.Client], list[tuple[str, int, int, httpx.Response]]]:
        def job(client: httpx.Client) -> list[tuple[str, int, int, httpx.Response]]:
            sent = []
            for step in range(per_thread):
                code = codes[(worker + step) % len(codes)]
                value = worker * per_thread + step  # 0..71: a unique cellularity per request
                sent.append((code, value, worker % 2, client.post(f"/api/v1/specimens/{code}/qc",
                                                                 json={"tumour_cellularity_pct": value})))
            return sent
        return job

    sent = [r for results in hammer(cluster, [writer(w) for w in range(threads)]) for r in results]
    assert len(sent) == threads * per_thread
    ok: Counter[str] = Counter()
    ok_values: dict[str, set[int]] = {code: set() for code in codes}
    by_process: Counter[int] = Counter()
    for code, value, process, response in sent:
        if response.status_code == 200:
            assert response.json()["done"] == [{"code": code, "done": "QC recorded"}]
            ok[code] += 1
            ok_values[code].add(value)
            by_process[process] += 1
        else:
            assert_clean_refusal(response, {409})
    assert sum(ok.values()) > 0 and set(by_process) == {0, 1}  # both processes wrote
    after = _state(cluster.engine, codes, cluster.tech_id)
    for code in codes:
        version, audited, events = after[code]
        version0, audited0, events0 = before[code]
        assert version - version0 == ok[code], (code, version0, version, ok[code])
        assert audited - audited0 == ok[code], (code, audited0, audited, ok[code])  # each 200 audited exactly once
        assert events - events0 == ok[code]
    with Session(cluster.engine) as session:
        final = dict(session.exec(select(Specimen.code, Specimen.tumour_cellularity_pct)
                                  .where(col(Specimen.code).in_(codes))).all())
    for code in codes:  # the last committed write holds, and it was one that answered 200
        if ok[code]:
            assert int(final[code]) in ok_values[code]


def test_one_idempotency_key_sent_to_both_processes_at_once_writes_once(cluster):
    code = cluster.specimens[3]
    threads, retries = 8, 2
    for round_ in range(3):
        key = f"scan-{round_}-{code}"
        body = {"tumour_cellularity_pct": 40 + round_}
        before = _state(cluster.engine, [code], cluster.tech_id)[code]

        def job(client: httpx.Client, body: dict[str, Any] = body, key: str = key) -> list[httpx.Response]:
            answers = []
            for _ in range(1 + retries):  # the first send, at the same instant as the others, then retries
                answers.append(client.post(f"/api/v1/specimens/{code}/qc", json=body,
                                           headers={"Idempotency-Key": key}))
            return answers

        answers = [a for results in hammer(cluster, [job] * threads) for a in results]
        assert [a.status_code for a in answers] == [200] * len(answers), [(a.status_code, a.text) for a in answers]
        first = [a for a in answers if a.headers.get("Idempotent-Replayed") != "true"]
        assert len(first) == 1, f"written {len(first)} times"
        assert all(a.json() == first[0].json() for a in answers)  # every replay is the first response
        version, audited, events = _state(cluster.engine, [code], cluster.tech_id)[code]
        assert (version - before[0], audited - before[1], events - before[2]) == (1, 1, 1)
        with Session(cluster.engine) as session:
            assert session.exec(select(Specimen.tumour_cellularity_pct).where(Specimen.code == code)).one() == \
                body["tumour_cellularity_pct"]
    # the same key with another body, on either process: a clean 409 naming the key
    for base in cluster.bases:
        other = httpx.post(f"{base}/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 99},
                           headers={"Authorization": f"Bearer {cluster.token}", "Idempotency-Key": key}, timeout=30)
        assert_clean_refusal(other, {409})
        assert other.json()["field"] == "Idempotency-Key"


def _holders(engine: Engine, position: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(
            select(Specimen.code).join(SpecimenLocation, col(SpecimenLocation.specimen_id) == Specimen.id)
            .join(Container, col(Container.id) == SpecimenLocation.container_id)
            .where(Container.code == BOX, SpecimenLocation.position == position)).all())


def _positions(engine: Engine, codes: list[str]) -> dict[str, str | None]:
    with Session(engine) as session:
        return dict(session.exec(
            select(Specimen.code, SpecimenLocation.position)
            .join(SpecimenLocation, col(SpecimenLocation.specimen_id) == Specimen.id)
            .where(col(Specimen.code).in_(codes))).all())


def test_moves_of_different_specimens_into_one_free_position_place_exactly_one(cluster):
    paths = httpx.get(f"{cluster.bases[0]}/api/v1/openapi.json", timeout=10).json()["paths"]
    assert "post" in paths.get("/api/v1/specimens/{code}/move", {}), "no POST /api/v1/specimens/{code}/move route"
    movers = cluster.stored[:8]
    for position in cluster.free_positions[-2:]:  # twice: a fresh position each round, every mover tries again
        assert _holders(cluster.engine, position) == []
        before = _positions(cluster.engine, movers)

        def job(client: httpx.Client, code: str, position: str = position) -> tuple[str, httpx.Response]:
            return code, client.post(f"/api/v1/specimens/{code}/move", json={"container": BOX, "position": position})

        results = hammer(cluster, [lambda client, code=code: job(client, code) for code in movers])
        winners = [code for code, response in results if 200 <= response.status_code < 300]
        assert len(winners) == 1, [(code, r.status_code, r.text) for code, r in results]
        won = next(response for code, response in results if code == winners[0]).json()
        assert (won["code"], won["container"], won["position"]) == (winners[0], BOX, position)
        for code, response in results:
            if code not in winners:
                assert_clean_refusal(response, {409, 422})
        assert _holders(cluster.engine, position) == winners
        after = _positions(cluster.engine, movers)
        assert after == before | {winners[0]: position}  # the losers did not move
