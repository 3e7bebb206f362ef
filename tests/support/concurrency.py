"""A gang of worker processes for concurrency tests: N processes (spawn context, each with its own engine) start a
plan of steps at the same instant and report one :class:`Outcome` per step.

A step names an operation: a function ``op(engine, ctx, **kwargs) -> str | None`` that opens its own transactions
(so an operation may read in one transaction and write from that stale read in another). Operations are looked up
by short name in :data:`OPERATIONS` or given as ``"package.module:function"``, so a test module elsewhere (e.g. the
storage tests: many processes storing into the same box) plugs its own operations in without touching this file.

Every exception an operation raises is classified: a :class:`ConflictError` or :class:`ValidationError` is a clean,
reported refusal; anything else (a raw database error, a deadlock, a timeout) is recorded as ``error`` with its
traceback, which the tests treat as a failure.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import queue as queue_module
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from biobank.db.engine import make_engine, session_scope
from biobank.domain.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from biobank.services import specimens, storage
from biobank.services.auth import get_user

START_TIMEOUT = 60.0  # seconds for every worker to be ready (spawned interpreters import the whole library)


@dataclass(frozen=True)
class Step:
    op: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    worker: int
    index: int
    op: str
    kwargs: dict[str, Any]
    status: str  # ok | conflict | invalid | denied | not_found | error
    detail: str | None = None
    seconds: float = 0.0


@dataclass
class Context:
    """What an operation may use besides its arguments."""

    worker: int
    username: str
    barrier: Any
    rng: random.Random

    def actor(self, session: Any) -> Any:
        return get_user(session, self.username)


Operation = Callable[..., str | None]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


def resolve(op: str) -> Operation:
    if ":" in op:
        module, _, name = op.partition(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    return OPERATIONS[op]


# ---------------------------------------------------------------------------------------- built-in operations


@operation("aliquot")
def op_aliquot(engine: Engine, ctx: Context, *, parent: str, portions: Sequence[float]) -> str:
    with session_scope(engine) as session:
        children = specimens.aliquot(session, actor=ctx.actor(session), parent_code=parent, portions=list(portions))
        return ",".join(c.code for c in children)


@operation("derive")
def op_derive(engine: Engine, ctx: Context, *, parent: str, used: float) -> str:
    with session_scope(engine) as session:
        child = specimens.derive(session, actor=ctx.actor(session), parent_code=parent, material_type="dna",
                                 quantity=100, unit="ng", parent_quantity_used=used)
        return child.code


@operation("correct")
def op_correct(engine: Engine, ctx: Context, *, code: str, reason: str, pause: float = 0.0,
               wait_for_all: bool = False, **changes: Any) -> str:
    """Read the version in one transaction, then correct from that (possibly stale) read in another."""
    with session_scope(engine) as session:
        version = specimens.get_specimen(session, code).version
    if wait_for_all:
        ctx.barrier.wait(START_TIMEOUT)  # everyone has read the same version before anyone writes
    if pause:
        time.sleep(pause)
    with session_scope(engine) as session:
        specimens.correct_specimen(session, actor=ctx.actor(session), code=code, reason=reason,
                                   expected_version=version, **changes)
    return f"from version {version}"


@operation("qc")
def op_qc(engine: Engine, ctx: Context, *, code: str, cellularity: float) -> None:
    with session_scope(engine) as session:
        specimens.record_qc(session, actor=ctx.actor(session), code=code, tumour_cellularity_pct=cellularity)


@operation("store")
def op_store(engine: Engine, ctx: Context, *, codes: Sequence[str], box: str, at: str | None = None) -> str:
    """Store specimens into a (shared) box: at ``at`` or, without it, auto-allocated to the first free run."""
    with session_scope(engine) as session:
        placed = storage.store(session, actor=ctx.actor(session), codes=list(codes), box_code=box, at=at)
        return ",".join(f"{p.code}@{p.position}" for p in placed)


@operation("aliquot_store")
def op_aliquot_store(engine: Engine, ctx: Context, *, parent: str, portions: Sequence[float], box: str) -> str:
    """Aliquot a parent and store the new tubes into a shared box, in one transaction."""
    with session_scope(engine) as session:
        actor = ctx.actor(session)
        children = specimens.aliquot(session, actor=actor, parent_code=parent, portions=list(portions))
        placed = storage.store(session, actor=actor, codes=[c.code for c in children], box_code=box)
        return ",".join(f"{p.code}@{p.position}" for p in placed)


# ------------------------------------------------------------------------------------------------- the gang

_CLEAN = ((ConflictError, "conflict"), (ValidationError, "invalid"), (PermissionDeniedError, "denied"),
          (NotFoundError, "not_found"))


def _classify(exc: BaseException) -> tuple[str, str]:
    for kind, status in _CLEAN:
        if isinstance(exc, kind):
            return status, str(exc)
    return "error", "".join(traceback.format_exception(exc)).strip()


def _worker_main(worker: int, jobs: Any, results: Any, barrier: Any) -> None:
    """Runs in a spawned process: one job = (db_url, username, plan, seed) -> a list of outcomes."""
    while True:
        job = jobs.get()
        if job is None:
            return
        db_url, username, plan, seed = job
        outcomes: list[Outcome] = []
        engine = make_engine(db_url)
        ctx = Context(worker, username, barrier, random.Random(seed * 1000 + worker))
        try:
            barrier.wait(START_TIMEOUT)
            for index, step in enumerate(plan):
                started = time.perf_counter()
                try:
                    detail = resolve(step.op)(engine, ctx, **step.kwargs)
                    status = "ok"
                except Exception as exc:
                    status, detail = _classify(exc)
                outcomes.append(Outcome(worker, index, step.op, dict(step.kwargs), status, detail,
                                        time.perf_counter() - started))
        except Exception as exc:  # a broken barrier or engine: report, never hang the test
            outcomes.append(Outcome(worker, -1, "<worker>", {}, "error", _classify(exc)[1]))
        finally:
            engine.dispose()
        results.put((worker, outcomes))


class Gang:
    """``with Gang(8) as gang: outcomes = gang.run(db_url, "tech", plans)``; processes are reused across runs."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._ctx = mp.get_context("spawn")
        self._barrier = self._ctx.Barrier(size)
        self._results: Any = self._ctx.Queue()
        self._jobs = [self._ctx.Queue() for _ in range(size)]
        self._processes = [
            self._ctx.Process(target=_worker_main, args=(i, self._jobs[i], self._results, self._barrier), daemon=True)
            for i in range(size)
        ]

    def __enter__(self) -> Gang:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()

    def run(self, db_url: str, username: str, plans: Sequence[Sequence[Step]], *, seed: int = 1,
            timeout: float = 120.0) -> list[Outcome]:
        """Give plan ``i`` to worker ``i``; every worker starts at the same moment; wait for all outcomes."""
        if len(plans) != self.size:
            raise ValueError(f"give exactly {self.size} plans (one per worker), got {len(plans)}")
        self._barrier.reset()
        for worker, plan in enumerate(plans):
            self._jobs[worker].put((db_url, username, list(plan), seed))
        collected: dict[int, list[Outcome]] = {}
        deadline = time.monotonic() + timeout
        while len(collected) < self.size:
            try:
                worker, outcomes = self._results.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue_module.Empty:
                missing = sorted(set(range(self.size)) - set(collected))
                raise TimeoutError(f"workers {missing} did not finish within {timeout:.0f} s") from None
            collected[worker] = outcomes
        return [outcome for worker in sorted(collected) for outcome in collected[worker]]


def errors(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Outcomes that are not a success or a clean, reported refusal."""
    return [o for o in outcomes if o.status == "error"]
