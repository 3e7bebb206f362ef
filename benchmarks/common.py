"""What every benchmark shares: figures beside their targets, child processes that report their own peak memory,
and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def figure(name: str, value: float | None, unit: str, *, target: str = "—", met: bool | None = None,
           note: str = "", baseline: float | None = None) -> dict[str, Any]:
    """One line of the results table; ``met`` is None when the figure has no target (context only)."""
    return {"figure": name, "value": value, "unit": unit, "target": target, "met": met, "note": note,
            "baseline": baseline}


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, args: list[str], *, timeout: float = 3600) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; its last stdout line is a JSON object of its measurements."""
    completed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                               cwd=ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        postgres = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        postgres = ""
    import sqlite3

    return {"nproc": os.cpu_count(), "memory_gib": memory_gib, "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "postgres_client": postgres}


def scratch_url(like: str) -> Any:
    """A context manager giving the URL of a fresh, migrated, empty database on the same backend (and server) as
    ``like``, dropped afterwards: for benchmarks that build their own data at their own stated size."""
    import contextlib
    import tempfile
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    @contextlib.contextmanager
    def scratch() -> Any:
        from alembic import command
        from alembic.config import Config

        from biobank.db.engine import dispose_engines

        parsed = make_url(like)
        admin = None
        folder = None
        if parsed.get_backend_name() == "sqlite":
            folder = tempfile.TemporaryDirectory(prefix="biobank-bench-")
            url = f"sqlite:///{Path(folder.name) / 'scratch.db'}"
        else:
            name = f"biobank_scratch_{uuid.uuid4().hex[:8]}"
            admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = parsed.set(database=name).render_as_string(hide_password=False)
        try:
            config = Config(str(ROOT / "alembic.ini"))
            config.set_main_option("script_location", str(ROOT / "migrations"))
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
            config.attributes["configure_logging"] = False
            command.upgrade(config, "head")
            yield url
        finally:
            dispose_engines()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
                admin.dispose()
            if folder is not None:
                folder.cleanup()

    return scratch()


def backend_of(url: str) -> str:
    from sqlalchemy.engine import make_url

    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgresql"
