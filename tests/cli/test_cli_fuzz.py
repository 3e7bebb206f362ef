"""Every CLI write command fed hostile values, one parameter at a time, on SQLite and PostgreSQL.

Each command that acts as a user (it takes ``--user``) has a valid call on the demo cohort (:func:`_calls`; a test
fails when a command has neither a call nor a reason in :data:`NOT_FUZZED`, so a new command cannot escape the fuzz).
Each of its values is replaced in turn by hostile input: empty, whitespace, 10,000 characters, unicode and SQL; for
numbers negative, NaN, -inf, 1e309, a huge integer, words; for times 1900, 2099, the second before the epoch, a time
before every death and collection, words. The command must then either exit 0 having stored nothing absurd (no
non-finite number, no blank or overlong text, no time outside 1970 to now), or exit 2 with one line on stderr, no
traceback and no write (every table's row count, the audit log, every specimen's version and every account as
before). Numbers, times and overlong text are never accepted. The outcomes (exit code and message) are the same on
both databases.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlmodel import Session, select
from typer.main import get_command
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli.credentials import TokenFile, database_key
from biobank.config import get_settings
from biobank.db.engine import dispose_engines, make_engine, session_scope
from biobank.demo.cohort import load_demo
from biobank.models import Checkout, Container, DerivedModel, PlanSpecimen, Specimen, SpecimenLocation
from biobank.services import attachments, cases, distribution, donors, planning, sequencing, storage, tokens
from biobank.services.auth import get_user
from biobank.services.inputs import DeathCall, DonorCreate
from tests.support.cli_auth import isolate_cli_config, issue_cli_token
from tests.support.dbtools import BACKENDS, POSTGRES_URL, Templates, create_pg_database, drop_pg_database

runner = CliRunner()

TEXT: dict[str, str] = {
    "empty": "",
    "whitespace": "  \t ",
    "10,000 characters": "x" * 10_000,
    "unicode and SQL": "Ünïcødé 🧬 \u202e x'); DROP TABLE specimen; --",
}
NUMBER: dict[str, str] = {
    "negative": "-1",
    "NaN": "nan",
    "inf": "-inf",
    "1e309": "1e309",
    "huge integer": "9" * 40,
    "words": "twelve",
}
TIME: dict[str, str] = {
    "1900": "1900-01-01T00:00:00+00:00",
    "2099": "2099-01-01T00:00:00+00:00",
    "epoch -1": "1969-12-31T23:59:59+00:00",
}
DAY: dict[str, str] = {"1900": "1900-01-01", "2099": "2099-01-01", "epoch -1": "1969-12-31"}

#: Options whose values are numbers, times or days (everything else is text).
NUMERIC = {"--quantity", "--quantity-used", "--latency-days", "--doubling-hours", "--identity", "--mouse", "--count",
           "--depth", "--days", "--skip", "--each", "--used", "--elution-ul", "--concentration", "--yield-ng",
           "--cellularity", "--necrosis", "--a260-280", "--a260-230", "--rin", "--din", "--dv200", "--age-at-death",
           "--hardy-scale", "--start-days", "--end-days", "--days-before-death", "--line", "--size-mm", "--limit",
           "--reads", "--coverage", "--contamination", "--purity", "--ploidy"}
#: Times (typed in lab time, or with a zone; ``biobank.cli.common.typed_time``).
TIMES = {"--when", "--at", "--death", "--refrigerated", "--reported-at", "--start", "--end", "--started",
         "--completed", "--taken-at"}
DAYS = {"--on"}


@dataclass
class Call:
    """A valid call of one command (as ``user``): the values the fuzz replaces one at a time."""

    path: str
    user: str
    args: list[str]
    #: indexes in ``args`` of values that are not fuzzed (with the reason in a comment where they are set)
    fixed: set[int] = field(default_factory=set)


def _calls(ctx: dict[str, Any]) -> list[Call]:
    """One valid call per write command, in an order where each stays valid after the earlier ones ran."""
    c = ctx
    return [
        Call("users add", "admin", ["newbie", "--role", "technician", "--full-name", "New Person",
                                    "--password", "correct-horse-battery-9"]),
        Call("users reset-password", "admin", ["viewer", "--password", "another-long-phrase-7"]),
        Call("users role", "admin", ["viewer", "pi", "--reason", "joined the analysis group"]),
        Call("users disable", "admin", ["viewer"]),
        Call("users enable", "admin", ["viewer"]),
        Call("users unlock", "admin", ["viewer", "--reason", "called the help desk"]),
        Call("tokens create", "admin", ["nightly", "--user-account", "sequencer", "--days", "30"]),
        Call("tokens revoke", "admin", ["pipeline", "--account", "sequencer"]),
        Call("storage add", "tech", ["BOX-FUZZ", "--kind", "box_9x9", "--parent", "FRZ-01-R2", "--name", "Fuzz box"]),
        Call("storage move", "tech", [c["stored"], "--to", "LNBOX-001", "--at", c["free"], "--when", c["recent"]]),
        Call("storage checkout", "tech", [c["stored2"], "--purpose", "sectioning", "--when", c["recent"]]),
        Call("storage return", "tech", [c["checked_out"], "--note", "back in the box", "--when", c["recent"]]),
        Call("storage store", "tech", [c["unstored"], "--box", "LNBOX-001", "--at", c["free2"], "--when", c["recent"]]),
        Call("distribution create", "pi", ["--study", "PHYLO", "--recipient", "Dr Lee", "--use", "sequencing",
                                           "--purpose", "WGS", "--code", "DO-FUZZ-9"]),
        Call("distribution add", "pi", ["DO-FUZZ-1", c["available"], "--quantity", "1"]),
        Call("distribution approve", "pi", ["DO-FUZZ-2", "--when", c["recent"]]),
        Call("distribution ship", "tech", ["DO-FUZZ-3", "--temperature", "-60to-85", "--tracking", "1Z999",
                                           "--when", c["recent"]]),
        Call("distribution receive", "tech", ["DO-FUZZ-4", "--when", c["recent"]]),
        Call("distribution return", "tech", ["DO-DEMO-001", c["returnable"], "--quantity", "1", "--note", "unused",
                                             "--when", c["recent"]]),
        Call("distribution cancel", "pi", ["DO-FUZZ-5"]),
        Call("distribution close", "tech", ["DO-DEMO-001"]),
        Call("models add", "tech", [c["viable"], "--kind", "organoid", "--on", c["today"], "--quantity-used", "1",
                                    "--medium", "IntestiCult", "--notes", "plated"]),
        Call("models passage", "tech", [c["model"], "--on", c["today"], "--label", "P5", "--vessel", "FLASK-9",
                                        "--notes", "split 1:3"]),
        Call("models qc", "tech", [c["model"], "P4", "--on", c["today"], "--method", "STR", "--identity", "95",
                                   "--mycoplasma", "negative", "--notes", "clean"]),
        Call("models distribute", "tech", [c["model"], "P3", "--to", "Lab of Dr Lee", "--on", c["today"]]),
        Call("models specimens", "tech", [c["model"], "P4", "--material", "tissue", "--format", "viable_cryo",
                                          "--quantity", "1000000", "--unit", "cells", "--count", "2"]),
        Call("models status", "tech", [c["model"], "discontinued", "--on", c["today"], "--note", "stopped"]),
        Call("donors add", "coord", ["--sex", "female", "--age-at-death", "60", "--diagnosis",
                                     "Invasive ductal carcinoma", "--icdo3-topography", "C50.9", "--icdo3-morphology",
                                     "8500/3", "--hardy-scale", "2", "--cause-of-death", "progressive disease"]),
        Call("donors consent", "coord", ["RA-0902", "--scope", "research_use", "--scope", "genomic_sequencing",
                                         "--on", c["today"], "--form-version", "ICF-v3", "--taken-by", "Dr Rao"]),
        Call("donors treatment", "coord", ["RA-0001", "--agents", "letrozole", "--start-days", "400", "--end-days",
                                           "100"]),
        Call("donors event", "coord", ["RA-0001", "--kind", "fracture", "--days-before-death", "30", "--site", "FEMUR",
                                       "--note", "fall at home"]),
        Call("donors lesion", "coord", ["RA-0900", "--site", "LIVER", "--kind", "metastasis", "--size-mm", "23",
                                        "--description", "segment 7 on CT"]),
        Call("donors withdraw", "coord", ["RA-0002", "--requested-by", "next_of_kin", "--reason", "no sequencing",
                                          "--scope", "genomic_sequencing", "--at", c["recent"]]),
        Call("autopsy open", "coord", ["RA-0900", "--death", c["death"], "--place", "City Hospice", "--reported-by",
                                       "Nurse Bell", "--refrigerated", c["refrigerated"], "--prosector", "Dr Okafor"]),
        Call("autopsy start", "tech", [c["scheduled"], "--at", c["recent"]]),
        Call("autopsy notified", "tech", [c["scheduled"], "--at", c["recent"]]),
        Call("autopsy labels", "tech", ["RAP-2026-003", "-o", f"{c['out']}/case-labels.pdf"], fixed={2}),
        Call("autopsy times", "tech", ["RAP-2026-003", "--end", c["recent"]]),
        Call("autopsy end", "tech", [c["scheduled"], "--at", c["recent"]]),
        Call("specimen aliquot", "tech", [c["proc"], "--count", "2", "--each", "1", "--when", c["recent"]]),
        Call("specimen derive", "tech", [c["proc"], "--material", "dna", "--used", "5", "--method", "column",
                                         "--kit", "QIAamp DNA Mini", "--elution-ul", "50", "--concentration", "20",
                                         "--when", c["recent"]]),
        Call("specimen qc", "tech", [c["proc"], "--cellularity", "60", "--necrosis", "10", "--reviewer", "Dr Path",
                                     "--slide", "S-1", "--when", c["recent"]]),
        Call("specimen dispose", "tech", [c["proc"], "--reason", "thawed in transit", "--when", c["recent"]]),
        Call("plan create", "pi", ["PL-FUZZ", "--name", "Fuzz plan", "--purpose", "phylogeny", "--assay",
                                   "wgs", "--depth", "60", "--donor", "RA-0001", "--flow-cell", "NovaSeq X 10B"]),
        Call("plan include", "pi", ["PL-DRAFT", c["includable"], "--role", "tumour", "--reason", "second region",
                                    "--assay", "wgs", "--depth", "90", "--library", "TruSeq DNA PCR-free"]),
        Call("plan flow-cell", "pi", ["PL-DRAFT", "NovaSeq X 25B"]),
        Call("plan exclude", "pi", ["PL-DRAFT", c["in_plan"]]),
        # before approval: the valid calls run one after another at the end, and only a draft takes a declaration
        Call("plan primary-unsampled", "pi", ["PL-DRAFT", "primary resected in 2019, no tissue left at autopsy"]),
        Call("plan approve", "pi", ["PL-DRAFT"]),
        Call("plan submit", "pi", ["PL-DRAFT"]),
        Call("plan amend", "pi", ["PL-SUB", "--reason", "swap a region after QC"]),
        Call("plan cancel", "pi", ["PL-CANCEL", "--reason", "a duplicate of PL-DRAFT"]),
        Call("sequencing run", "tech", ["RUN-FUZZ-2", "--instrument", "NovaSeq X", "--flow-cell", "10B",
                                        "--flow-cell-id", "22FCX", "--centre", "Genomics core",
                                        "--started", c["recent"], "--completed", c["recent"]]),
        Call("sequencing result", "tech", ["PL-SUB", c["to_sequence"], "--run", "RUN-FUZZ", "--reads", "900000000",
                                           "--coverage", "92", "--contamination", "0.5", "--purity", "0.6",
                                           "--ploidy", "2.1", "--file", f"s3://core/run/{c['to_sequence']}.cram:md5:"
                                           "0123456789abcdef0123456789abcdef:1000:cram"]),
        Call("sequencing outcome", "tech", ["PL-SUB", c["sequenced"], "--run", "RUN-FUZZ", "--outcome", "passed",
                                            "--note", "coverage checked by hand"]),
        Call("results import", "pi", ["RA-0001", c["graph"], "--tool", "machina", "--kind", "migration_graph",
                                      "--note", "pmh_sankoff"], fixed={1}),        *[
            Call(f"export {target}", "admin", ["-o", f"{c['out']}/{target}", "--donor", "RA-0001",
                                                *(["--template"] if target == "sarek" else [])], fixed={1})
            for target in ("sarek", "clonal", "machina", "metient", "cbioportal", "phenopackets", "fhir", "tables")
        ],
        Call("models export", "pi", ["-o", f"{c['out']}/cancermodels", "--model", c["model"]], fixed={1}),
        Call("export log", "admin", ["--target", "tables", "--limit", "5"]),
        Call("donors exports", "pi", ["RA-0001"]),
        Call("attach", "tech", [c["returnable"], c["photo"], "--kind", "gross_photo", "--caption", "before sampling",
                                "--target", "specimen", "--taken-at", c["recent"], "--taken-by", "Dr Rao"], fixed={1}),
        Call("attach", "tech", ["--folder", c["photos"], "--kind", "gross_photo", "--caption", "at the table"],
             fixed={1}),
        Call("attachments retract", "tech", [c["attachment"], "--reason", "wrong region in the picture"]),
    ]


#: Commands that act as a user but are not fuzzed here, and why.
NOT_FUZZED: dict[str, str] = {
    "import": "a file's values are fuzzed through the import engine (tests/imports); its KIND and FILE are "
              "covered by tests/cli/test_import_cli.py",
    "restore": "replaces the database: tests/cli/test_cli_dangerous.py",
    "db downgrade": "drops tables: tests/cli/test_cli_dangerous.py",
    "login": "reads a password at a prompt: tests/cli/test_cli_auth.py",
    "logout": "takes no values",
    "whoami": "takes no values",
    "tokens list": "reads only",
    "attachments list": "reads only",
    "attachments get": "reads only (the file it writes: tests/attachments/test_attachments_cli.py)",
}


def _write_commands() -> set[str]:
    found: set[str] = set()

    def walk(command: Any, prefix: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        elif any(p.name == "user" for p in command.params):
            found.add(prefix)

    walk(get_command(app), "")
    return found


def test_every_command_that_acts_as_a_user_is_fuzzed_or_says_why_not() -> None:
    context = dict.fromkeys(("stored", "free", "recent", "stored2", "checked_out", "unstored", "free2", "available",
                             "returnable", "viable", "today", "model", "in_plan", "out", "death", "refrigerated",
                             "scheduled", "proc", "to_sequence", "sequenced", "graph", "includable", "photo",
                             "photos", "attachment"), "X")
    fuzzed = {call.path for call in _calls(context)}
    assert _write_commands() - fuzzed - set(NOT_FUZZED) == set()
    assert set(NOT_FUZZED) & fuzzed == set()
    assert set(NOT_FUZZED) <= _write_commands()


def prepare(session: Session) -> dict[str, Any]:
    """Orders and a plan in the states the calls need, and the material they name (found in the demo cohort)."""
    tech, pi, coord = (get_user(session, name) for name in ("tech", "pi", "coord"))
    death = datetime.now(UTC) - timedelta(hours=3)
    for code in ("RA-0900", "RA-0901", "RA-0902"):
        donors.register_donor(session, actor=coord, data=DonorCreate.build(code=code, sex="female"))
        if code != "RA-0902":
            donors.record_consent(session, actor=coord, donor_code=code, given_by="donor",
                                  consented_on=date(2026, 1, 5), scopes={"research_use", "genomic_sequencing"})
    scheduled = cases.open_case(session, actor=coord, data=DeathCall.build(
        donor_code="RA-0901", death_at=death, death_place="Home", death_reported_by="Daughter"))
    specimens = session.exec(select(Specimen).order_by(Specimen.id)).all()
    located = {row.specimen_id: row for row in session.exec(select(SpecimenLocation)).all()}
    out = set(session.exec(select(Checkout.specimen_id).where(Checkout.returned_at.is_(None))).all())  # type: ignore[union-attr]
    tumour = [s for s in specimens if s.status == "available" and s.material_type == "tissue" and s.code.startswith("RA0001-L")]
    stored = [s for s in tumour if s.id in located and s.id not in out]
    lnbox = session.exec(select(Container).where(Container.code == "LNBOX-001")).one()
    taken = {row.position for row in located.values() if row.container_id == lnbox.id}
    free = [f"{row}{col}" for row in "ABCDEFGHIJ" for col in range(1, 11) if f"{row}{col}" not in taken]
    orders = []
    for number in range(1, 6):
        orders.append(distribution.create_order(session, actor=pi, study="PHYLO", recipient="Dr Lee", use="sequencing",
                                                code=f"DO-FUZZ-{number}"))
    for number, specimen in ((2, stored[-1]), (3, stored[-2]), (4, stored[-3])):
        distribution.add_item(session, actor=pi, order_code=f"DO-FUZZ-{number}", specimen_code=specimen.code,
                              quantity=1)
    for number in (3, 4):
        distribution.approve(session, actor=pi, order_code=f"DO-FUZZ-{number}")
    distribution.ship(session, actor=tech, order_code="DO-FUZZ-4", shipping_temperature="-60to-85")
    loose = stored[-4]  # taken out of its box, so that it can be stored
    storage.release_location(session, loose)
    plan = planning.create_plan(session, actor=pi, code="PL-DRAFT", name="Draft plan", purpose="phylogeny",
                                assay="wgs", donor_codes=["RA-0001"])
    included = session.exec(select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id, PlanSpecimen.included)).all()
    in_plan_ids = {row.specimen_id for row in included}
    recent = datetime.now(UTC) + timedelta(seconds=1)  # after everything prepared here, and not in the future
    sequencer = tokens.create_service_account(session, actor=get_user(session, "admin"), username="sequencer",
                                              role="technician")
    tokens.create_service_token(session, actor=get_user(session, "admin"), account=sequencer.username, name="pipeline")
    blood = next(s for s in specimens if s.code.startswith("RA0001-GB1") and s.material_type == "dna")
    chosen = {s.code: (s.code, row.role, row.reason) for row in included for s in specimens if s.id == row.specimen_id}
    chosen = {code: row for code, row in chosen.items() if row[1] != "germline_normal"}
    chosen[blood.code] = (blood.code, "germline_normal", "blood")
    planning.set_specimens(session, actor=pi, plan_code="PL-DRAFT", selection=list(chosen.values()))
    tumour_ids = {s.id for s in specimens if chosen.get(s.code, ("", ""))[1] == "tumour"}
    sub = _submitted_plan(session, pi, tech, blood, [s for s in specimens if s.id in tumour_ids])
    planning.create_plan(session, actor=pi, code="PL-CANCEL", name="Plan to cancel", purpose="phylogeny",
                         assay="wgs", donor_codes=["RA-0001"])
    viable = next(s for s in specimens if s.storage_format == "viable_cryo" and s.status == "available")
    model = session.exec(select(DerivedModel).where(DerivedModel.status == "cryobanked")).first()
    assert model is not None
    manifest = attachments.attach(session, actor=tech, target="specimen", code="RA0001-L01A-SF1", kind="manifest",
                                  data=b"%PDF-1.4\ntrailer <<>>\n%%EOF\n", filename="manifest.pdf")
    return {"attachment": str(manifest.id),
        "stored": stored[0].code, "stored2": stored[1].code, "free": free[0], "free2": free[1],
        "recent": recent.isoformat(timespec="seconds"), "today": datetime.now(UTC).date().isoformat(),
        "checked_out": next(s.code for s in specimens if s.id in out),
        "unstored": loose.code,
        "available": next(s.code for s in stored[2:-4] if s.id not in in_plan_ids),
        # not the one an order is given (the plan's approval would find it promised to the order)
        "includable": [s.code for s in stored[2:-4] if s.id not in in_plan_ids][1],
        "in_plan": next(s.code for s in specimens if s.id in tumour_ids),
        "returnable": "RA0001-L01A-SF1", "viable": viable.code, "model": model.code,
        "death": death.isoformat(timespec="seconds"),
        "refrigerated": (death + timedelta(hours=1)).isoformat(timespec="seconds"),
        "scheduled": scheduled.case_code, "proc": stored[-5].code, **sub,
    }


def _submitted_plan(session: Session, pi: Any, tech: Any, blood: Specimen, tumours: list[Specimen]) -> dict[str, str]:
    """PL-SUB: a submitted plan of two tumour samples and the blood normal, a run RUN-FUZZ, and one result still
    awaiting its QC verdict. Its status is set directly: two tumour samples break the sampling rules, and its
    samples reserve nothing, so PL-DRAFT's approval (a valid call) finds its material free."""
    planning.create_plan(session, actor=pi, code="PL-SUB", name="Submitted plan", purpose="phylogeny", assay="wgs",
                         donor_codes=["RA-0001"], use_suggestion=False)
    first, second = tumours[:2]
    planning.set_specimens(session, actor=pi, plan_code="PL-SUB", selection=[
        (first.code, "tumour", "region A"), (second.code, "tumour", "region B"), (blood.code, "germline_normal", "blood")])
    now = datetime.now(UTC) - timedelta(minutes=1)
    session.execute(text("UPDATE analysis_plan SET status = 'submitted', approved_by_id = :pi, approved_at = :t, "
                         "submitted_at = :t WHERE code = 'PL-SUB'"), {"pi": pi.id, "t": now})
    sequencing.record_run(session, actor=tech, run_id="RUN-FUZZ", instrument="NovaSeq X")
    sequencing.record_result(session, actor=tech, plan_code="PL-SUB", specimen_code=second.code, run_id="RUN-FUZZ",
                             mean_coverage=80.0, auto_qc=False)
    return {"to_sequence": first.code, "sequenced": second.code}


# --- the database each backend fuzzes -------------------------------------------------------------------------------


class FuzzDatabase:
    """The demo cohort plus the orders and plans the calls need, kept as a template; :meth:`reset` restores it."""

    def __init__(self, backend: str, templates: Templates, workdir: Path, config_dir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.config_dir = config_dir
        if backend == "sqlite":
            self.template_path = workdir / "fuzz-template.db"
            shutil.copyfile(templates.sqlite(), self.template_path)
            self.template_url = f"sqlite:///{self.template_path}"
            self.url = f"sqlite:///{workdir / 'fuzz.db'}"
        else:
            self.template_url = create_pg_database(template=templates.postgres())
            self.url = create_pg_database()
        (workdir / "exports").mkdir()
        graph = workdir / "G.graph"  # a MACHINA migration graph in the site labels of RA-0001's exports
        graph.write_text("Breast_right Liver\nBreast_right Lymph_node\n")
        photo = workdir / "photos" / "RA0001-L01A_before.jpg"  # named by its region, for attach --folder
        photo.parent.mkdir()
        Image.new("RGB", (64, 48), (150, 40, 60)).save(photo, format="JPEG")
        self.context = {**self._prepare(), "out": str(workdir / "exports"), "graph": str(graph),
                        "photo": str(photo), "photos": str(photo.parent)}
        dispose_engines()
        self.reset()

    def _prepare(self) -> dict[str, Any]:
        engine = make_engine(self.template_url)
        try:
            with session_scope(engine) as session:
                load_demo(session, donors_count=3, seed=1)
            with session_scope(engine) as session:
                context = prepare(session)
            for username in ("admin", "tech", "pi", "coord"):
                TokenFile(self.config_dir).put(database_key(self.url), username,
                                               issue_cli_token(self.template_url, username))
        finally:
            engine.dispose()
        return context

    def reset(self) -> None:
        dispose_engines()
        if self.backend == "sqlite":
            shutil.copyfile(self.template_path, self.workdir / "fuzz.db")
        else:
            name = make_url(self.url).database
            admin = make_engine(self.url.replace(f"/{name}", "/postgres"), isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(self.template_url).database}"'))
            finally:
                admin.dispose()

    def close(self) -> None:
        dispose_engines()
        if self.backend != "sqlite":
            drop_pg_database(self.url)
            drop_pg_database(self.template_url)


_TABLES: dict[str, list[str]] = {}


def fingerprint(engine: Engine) -> tuple[Any, ...]:
    """Every table's row count, the last audit row, the sum of specimen versions and each account's role, state and
    password: a write changes one of them. One statement, so the check costs one round trip."""
    key = str(engine.url)
    if key not in _TABLES:
        with engine.connect() as connection:
            _TABLES[key] = sorted(t for t in inspect(connection).get_table_names() if t != "alembic_version")
    counts = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in _TABLES[key])
    with engine.connect() as connection:
        rows = connection.execute(text(
            f"{counts} UNION ALL SELECT 'audit', max(id) FROM audit_log "
            "UNION ALL SELECT 'versions', sum(version) FROM specimen")).all()
        users = connection.execute(text("SELECT role, is_active, password_hash FROM user_account ORDER BY id")).all()
    return tuple(map(tuple, rows)), tuple(map(tuple, users))


#: Times that lie ahead by design: when a token or session expires, until when an account is locked.
AHEAD = {"expires_at", "locked_until"}


def absurdities(engine: Engine) -> list[str]:
    """Stored values no one could have meant: non-finite numbers, blank or overlong text, times outside 1970-now."""
    found: list[str] = []
    latest = datetime.now(UTC) + timedelta(minutes=get_settings().clock_skew_minutes + 1)
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            if table in ("alembic_version", "audit_log"):
                continue
            kinds = {c["name"]: type(c["type"]).__name__.upper() for c in inspector.get_columns(table)}
            for row in connection.execute(text(f"SELECT * FROM {table}")).mappings().all():
                for name, value in row.items():
                    where = f"{table}.{name}={str(value)[:40]!r}"
                    if isinstance(value, str) and kinds[name] in ("DATETIME", "TIMESTAMP", "DATE"):
                        value = (date if kinds[name] == "DATE" else datetime).fromisoformat(value)  # SQLite: text
                    if (isinstance(value, float) and not math.isfinite(value)) or (isinstance(value, str) and (len(value) > 5_000 or (value and not value.strip()))):
                        found.append(where)
                    elif isinstance(value, datetime):
                        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
                        ahead = name in AHEAD
                        if moment < datetime(1970, 1, 1, tzinfo=UTC) or (moment > latest and not ahead):
                            found.append(where)
                    elif isinstance(value, date) and not date(1970, 1, 1) <= value <= latest.date():
                        found.append(where)
    return found


_CLOCK = re.compile(r"\d{2} \w{3} \d{4} \d{2}:\d{2}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}[^ )]*")


def _comparable(message: str, database: FuzzDatabase) -> str:
    """The message without what differs between two runs by design: the clock and the run's own directory."""
    return _CLOCK.sub("<time>", message.replace(str(database.workdir), "<dir>"))


@dataclass(frozen=True)
class Outcome:
    code: int
    message: str


def _hostile(option: str | None) -> dict[str, str]:
    if option in NUMERIC:
        return {**NUMBER, **{k: TEXT[k] for k in ("empty", "10,000 characters", "unicode and SQL")}}
    if option in TIMES:
        return {**TIME, "before death": "2000-01-01 10:00", "words": "yesterday", "empty": "",
                "10,000 characters": TEXT["10,000 characters"]}
    if option in DAYS:
        return {**DAY, "empty": "", "10,000 characters": TEXT["10,000 characters"]}
    return TEXT


def _positions(call: Call) -> Iterator[tuple[int, str | None]]:
    """The index of each value in ``call.args`` and the option it belongs to (None for an argument)."""
    previous: str | None = None
    for index, token in enumerate(call.args):
        if token.startswith("-") and not token.lstrip("-").replace(".", "").isdigit() and len(token) > 1:
            if token.startswith("-6"):
                yield index, previous  # a negative temperature class is a value
            previous = token
            continue
        if index not in call.fixed:
            yield index, previous
        previous = None


def _must_refuse(option: str | None, label: str) -> bool:
    """Hostile numbers, times and days, and overlong text, are never accepted. An empty value of an optional
    option is "not given"; a death or a sequencing run long ago is only refused before the earliest day (it precedes
    nothing: a run's result is refused when the run started before the sample's collection)."""
    if label == "empty" or (option in ("--death", "--started", "--completed") and label == "before death"):
        return False
    return option in NUMERIC | TIMES | DAYS or label == "10,000 characters"


def fuzz(database: FuzzDatabase) -> dict[tuple[str, int, str], Outcome]:
    """Run every hostile variant of every call on ``database``; assert each one's behaviour; return the outcomes."""
    engine = make_engine(database.url)
    outcomes: dict[tuple[str, int, str], Outcome] = {}
    problems: list[str] = []
    try:
        before = fingerprint(engine)
        for call in _calls(database.context):
            for index, option in _positions(call):
                for label, value in _hostile(option).items():
                    args = [*call.path.split(), *call.args[:index], value, *call.args[index + 1:], "--user", call.user]
                    result = runner.invoke(app, args)
                    where = f"{call.path} [{option or 'argument'} {call.args[index][:20]!r} -> {label}]"
                    message = result.stderr.strip()
                    outcomes[(call.path, index, label)] = Outcome(result.exit_code, _comparable(message, database))
                    if result.exception is not None and not isinstance(result.exception, SystemExit):
                        problems.append(f"{where}: {type(result.exception).__name__}: {result.exception}")
                        continue
                    if "Traceback" in result.output:
                        problems.append(f"{where}: a traceback")
                    if result.exit_code == 0:
                        if _must_refuse(option, label):
                            problems.append(f"{where}: accepted")
                        bad = absurdities(engine)
                        if bad:
                            problems.append(f"{where}: stored {bad[:3]}")
                        engine.dispose()
                        database.reset()
                        engine = make_engine(database.url)
                        before = fingerprint(engine)
                        continue
                    if result.exit_code != 2:
                        problems.append(f"{where}: exit {result.exit_code}: {message[:200]}")
                    if len(message.splitlines()) != 1 or not message.startswith("error: "):
                        problems.append(f"{where}: not one line: {message[:300]!r}")
                    if fingerprint(engine) != before:
                        problems.append(f"{where}: refused ({message[:120]}) but wrote")
                        engine.dispose()
                        database.reset()
                        engine = make_engine(database.url)
                        before = fingerprint(engine)
        # and each call itself is valid, so every refusal above was the hostile value's
        for call in _calls(database.context):
            result = runner.invoke(app, [*call.path.split(), *call.args, "--user", call.user])
            if result.exit_code != 0:
                problems.append(f"{call.path}: the valid call failed: {result.stderr.strip()[:300]}")
    finally:
        engine.dispose()
    assert not problems, "\n".join(problems)
    return outcomes


_RESULTS: dict[str, dict[tuple[str, int, str], Outcome]] = {}


@pytest.fixture(scope="module")
def fuzz_runs(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield {"templates": templates, "tmp": tmp_path_factory}


def _run(backend: str, templates: Templates, tmp_path_factory: pytest.TempPathFactory,
         monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int, str], Outcome]:
    if backend not in _RESULTS:
        workdir = tmp_path_factory.mktemp(f"fuzz-{backend}")
        config = isolate_cli_config(workdir, monkeypatch)
        monkeypatch.setenv("BIOBANK_ATTACHMENTS_DIR", str(workdir / "attachments"))  # never ./attachments
        get_settings.cache_clear()
        database = FuzzDatabase(backend, templates, workdir, config)
        try:
            monkeypatch.setenv("BIOBANK_DATABASE_URL", database.url)
            get_settings.cache_clear()
            _RESULTS[backend] = fuzz(database)
        finally:
            database.close()
            get_settings.cache_clear()
    return _RESULTS[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_values_are_refused_in_one_line_with_nothing_written(backend, templates, tmp_path_factory,
                                                                      monkeypatch):
    outcomes = _run(backend, templates, tmp_path_factory, monkeypatch)
    assert len(outcomes) > 500


@pytest.mark.skipif(not POSTGRES_URL, reason="set BIOBANK_TEST_POSTGRES_URL to compare with PostgreSQL")
def test_sqlite_and_postgresql_give_the_same_outcome_for_every_hostile_value(templates, tmp_path_factory,
                                                                              monkeypatch):
    sqlite = _run("sqlite", templates, tmp_path_factory, monkeypatch)
    postgres = _run("postgresql", templates, tmp_path_factory, monkeypatch)
    differ = {key: (sqlite[key], postgres.get(key)) for key in sqlite if sqlite[key] != postgres.get(key)}
    assert not differ, "\n".join(f"{k}: sqlite {a} / postgresql {b}" for k, (a, b) in list(differ.items())[:20])
    assert set(sqlite) == set(postgres)
