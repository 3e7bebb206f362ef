"""Security pass: roles enforced in every write service (found by introspection, so later services are covered too),
no personal identifiers in the schema, SQL only through bound parameters, secrets only from the environment."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlmodel import SQLModel

import biobank.services
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from tests.support.dbtools import snapshot

ROOT = Path(__file__).resolve().parents[2]

#: Public functions that take an ``actor`` but are helpers, never entry points, or serve any role its own records;
#: each says why it needs no role check.
HELPERS: dict[str, str] = {
    "biobank.services.custody.record_event": "writes a custody row on behalf of a service that has already checked",
    "biobank.services.storage.mark_disposed": "what a disposal does, on behalf of storage.dispose or a withdrawal of "
    "consent, each of which has already checked the role (tests/services/test_enrolment.py)",
    "biobank.services.tokens.list_tokens": "any role lists its own tokens; only an administrator sees others' "
    "(tests/services/test_tokens.py)",
    "biobank.services.tokens.revoke_token": "any role revokes its own tokens; another's needs an administrator "
    "(tests/services/test_tokens.py)",
    "biobank.services.attachments.list_attachments": "a read: every signed-in role sees what it may (identified kinds "
    "for administrators and PIs, nothing of a withdrawn donor but for administrators; tests/attachments)",
    "biobank.services.attachments.donor_attachments": "a read, under the same visibility as list_attachments "
    "(tests/attachments)",
    "biobank.services.attachments.read_attachment": "a read, under the same visibility as list_attachments "
    "(tests/attachments)",
}


def write_services() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function in biobank/services/ that takes a session and a keyword-only ``actor``."""
    for module_info in pkgutil.iter_modules(biobank.services.__path__, "biobank.services."):
        module = importlib.import_module(module_info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue
            parameters = inspect.signature(function).parameters
            actor = parameters.get("actor")
            if actor is None or actor.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            qualified = f"{module.__name__}.{name}"
            if qualified not in HELPERS:
                yield qualified, function


SERVICES = sorted(write_services())


def _dummy(parameter: inspect.Parameter) -> Any:
    """Something of roughly the right shape: the role check comes first, so the values are never looked at."""
    annotation = str(parameter.annotation)
    if parameter.name == "username":
        return "admin"  # an account that exists, so "may change your own account" paths reach the role check
    if "datetime" in annotation:
        return datetime(2026, 1, 1, tzinfo=UTC)
    if "date" in annotation:
        return date(2026, 1, 1)
    if "Sequence" in annotation or "list" in annotation:
        return []
    if "set" in annotation:
        return set()
    if "bool" in annotation:
        return True
    if "float" in annotation or "int" in annotation:
        return 1
    return "X"


def test_the_introspection_finds_the_foundation_write_services():
    names = {name.rsplit(".", 1)[1] for name, _ in SERVICES}
    expected = {"register_donor", "record_consent", "withdraw_consent", "open_autopsy", "collect_region", "aliquot",
                "derive", "record_qc", "dispose", "correct_specimen", "add_user", "set_active", "set_password"}
    assert expected <= names, expected - names


@pytest.mark.parametrize("name", [name for name, _ in SERVICES])
def test_a_viewer_is_refused_by_every_write_service(name, engine, viewer, admin):
    function = dict(SERVICES)[name]
    kwargs = {
        p.name: _dummy(p)
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("session", "actor") and p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    before = snapshot(engine)
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        function(session, actor=viewer, **kwargs)
    assert snapshot(engine) == before


# ------------------------------------------------------------------------------------- personal identifiers

PERSONAL = re.compile(
    r"(^|_)(first_?name|last_?name|surname|forename|given_name|family_name|full_name|maiden_name|patient_name"
    r"|donor_name|birth|dob|address|postcode|zip_?code|mrn|nhs|hospital_number|phone|telephone|mobile|email|ssn"
    r"|social_security|insurance_number)($|_)",
    re.IGNORECASE,
)
#: Staff accounts, not donors.
ALLOWED_PERSONAL = {("user_account", "full_name"), ("user_account", "username")}


def _personal_columns(tables: dict[str, list[str]]) -> list[tuple[str, str]]:
    found = []
    for table, columns in tables.items():
        about_donor = table == "donor" or "donor_id" in columns
        for column in columns:
            if (table, column) in ALLOWED_PERSONAL:
                continue
            if PERSONAL.search(column) or (about_donor and column.lower() in {"name", "initials"}):
                found.append((table, column))
    return found


def test_no_table_holds_a_personal_identifier(engine):
    inspector = sa_inspect(engine)
    in_database = {t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()}
    in_models = {t.name: [c.name for c in t.columns] for t in SQLModel.metadata.tables.values()}
    assert _personal_columns(in_database) == []
    assert _personal_columns(in_models) == []


def test_the_personal_identifier_scan_would_catch_one():
    assert _personal_columns({"donor": ["id", "code", "name", "date_of_birth"], "lesion": ["donor_id", "nhs_number"],
                              "storage_box": ["name"]}) == [("donor", "name"), ("donor", "date_of_birth"),
                                                            ("lesion", "nhs_number")]


# ----------------------------------------------------------------------------------------- bound parameters

#: Where SQL text may be assembled: DDL helpers and migrations build trigger DDL from code constants.
SQL_BUILDERS_ALLOWED = {"biobank/db/ddl.py"}
#: Interpolated expressions that are identifiers or keywords chosen by code, never user data (file -> sources).
SAFE_INTERPOLATIONS: dict[str, set[str]] = {
    "biobank/db/engine.py": {"mode"},  # BEGIN IMMEDIATE/DEFERRED from an execution option set in code
    # a database name quoted by the dialect's identifier preparer; a column list of psycopg sql.Identifier parts
    "benchmarks/synthetic.py": {"name", "column_list"},
    # the driver's placeholder ('?' or '%s') chosen from the dialect; JSON array positions (integers) of a batch;
    # the target table and its columns, from the metadata, quoted by the dialect's identifier preparer
    "biobank/db/bulk.py": {"marker", "selected", "target"},
    # a bulk insert's audit rows: a table and its columns from the SQLModel metadata, a WHERE chosen in code
    # (biobank.db.bulk.id_filter; the ids themselves are bound parameters)
    "biobank/models/audit.py": {"changes", "table.name", "where"},
    # the imported specimens' custody events: a WHERE chosen in code, the ids bound
    "biobank/imports/kinds/specimens.py": {"where"},
    "biobank/imports/kinds/derived.py": {"where"},
    # a scratch database name made from a uuid in the code
    "benchmarks/common.py": {"name", "make_url(url).database"},
    # a constant column list and a benchmark table/database name chosen in code
    "benchmarks/import_speed.py": {"', '.join(RAW_COLUMNS)", "name"},
    # the FTS5 table and its insert trigger (constants), the bare-code expression compiled from code (no value in it)
    "biobank/queries/search.py": {"FTS_INSERT_TRIGGER", "FTS_TABLE", "bare"},
}
SQL_CALLS = {"exec_driver_sql", "execute", "executemany", "executescript", "copy"}


def _sql_sources() -> list[Path]:
    return sorted(p for pattern in ("biobank/**/*.py", "dashboards/**/*.py", "benchmarks/**/*.py")
                  for p in ROOT.glob(pattern))


def _is_built(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def _interpolations(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp):
        return [part for side in (node.left, node.right)
                for part in (_interpolations(side) if _is_built(side) else
                             [] if isinstance(side, ast.Constant) else [side])]
    if isinstance(node, ast.Call):
        return [*node.args, *(k.value for k in node.keywords)]
    return []


def _safe(expression: ast.AST, allowed: set[str]) -> bool:
    """Numbers forced by int()/float(), identifiers quoted by the dialect's preparer, or whitelisted names."""
    if isinstance(expression, ast.Constant):
        return True
    if isinstance(expression, ast.Call):
        func = expression.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in {"int", "float", "quote", "quote_identifier", "format_table", "format_column", "Identifier"}:
            return True
        # ", ".join(<safe element> for ... in ...): a list of quoted identifiers or placeholders
        if called == "join" and len(expression.args) == 1 and isinstance(expression.args[0], ast.GeneratorExp | ast.ListComp):
            return _safe(expression.args[0].elt, allowed)
    return ast.unparse(expression) in allowed


def unsafe_sql(path: Path, source: str) -> list[str]:
    relative = path.relative_to(ROOT).as_posix() if path.is_absolute() else str(path)
    if relative in SQL_BUILDERS_ALLOWED:
        return []
    tree = ast.parse(source)
    text_names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and node.module in {"sqlalchemy", "sqlmodel", "sqlalchemy.sql", "sqlalchemy.sql.expression"}
                  for alias in node.names if alias.name == "text"}
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    problems = []
    allowed = SAFE_INTERPOLATIONS.get(relative, set())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_text = (isinstance(func, ast.Name) and func.id in text_names) or (
            isinstance(func, ast.Attribute) and func.attr == "text" and isinstance(func.value, ast.Name)
            and func.value.id in {"sa", "sqlalchemy"})
        is_sql_call = isinstance(func, ast.Attribute) and func.attr in SQL_CALLS
        if not (is_text or is_sql_call):
            continue
        argument = node.args[0]
        candidates = assigned.get(argument.id, []) if isinstance(argument, ast.Name) else [argument]
        for candidate in candidates:
            if not _is_built(candidate):
                continue
            for expression in _interpolations(candidate):
                if not _safe(expression, allowed):
                    problems.append(f"{relative}:{node.lineno}: SQL built from {ast.unparse(expression)!r}")
    return problems


def test_sql_is_only_ever_built_with_bound_parameters():
    problems = [p for path in _sql_sources() for p in unsafe_sql(path, path.read_text(encoding="utf-8"))]
    assert problems == [], "\n".join(problems)


def test_the_sql_scan_would_catch_an_interpolated_value():
    bad = (
        "from sqlalchemy import text\n"
        "def f(conn, code):\n"
        "    conn.execute(text(f\"SELECT * FROM donor WHERE code = '{code}'\"))\n"
        "    sql = 'SELECT * FROM specimen WHERE code = ' + code\n"
        "    conn.execute(text(sql))\n"
        "    conn.exec_driver_sql('DELETE FROM x WHERE id = %s' % code)\n"
        "    conn.execute(text('SELECT * FROM donor WHERE code = :code'), {'code': code})\n"
        "    conn.exec_driver_sql(f'PRAGMA busy_timeout={int(code)}')\n"
    )
    problems = unsafe_sql(Path("biobank/example.py"), bad)
    assert sorted(p.split(":")[1] for p in problems) == ["3", "5", "6"], problems


# ----------------------------------------------------------------------------------------------- secrets

PASSWORD_IN_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^:/@\s'\"]+:(?P<password>[^@\s'\"]+)@")
PLACEHOLDER = re.compile(r"^(\$\{?\w+\}?|<[^>]+>|\*+|PASSWORD|password|pass|secret|\.\.\.)$")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def test_no_database_password_or_cookie_secret_is_committed():
    problems = []
    for path in _tracked_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("tests/") or path.suffix in {".png", ".pdf", ".db", ".parquet", ".xlsx"}:
            continue
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for match in PASSWORD_IN_URL.finditer(content):
            if not PLACEHOLDER.match(match.group("password")):
                problems.append(f"{relative}: database URL with a password")
        if re.search(r"cookieSecret\s*=\s*[\"'][^\"'$<]", content) or re.search(
            r"STREAMLIT_SERVER_COOKIE_SECRET\s*=\s*[\"']?[A-Za-z0-9+/]{8,}", content
        ):
            problems.append(f"{relative}: a literal cookie secret")
    assert problems == [], problems
    assert not (ROOT / ".streamlit" / "secrets.toml").exists() or ".streamlit/secrets.toml" not in {
        p.relative_to(ROOT).as_posix() for p in _tracked_files()
    }


def test_secrets_files_are_ignored_by_git():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and ".streamlit/secrets.toml" in ignored


def test_the_dashboard_server_takes_its_secrets_from_the_environment(monkeypatch):
    """``biobank serve`` hands the environment (cookie secret, database URL, PGPASSWORD) to Streamlit unchanged."""
    import biobank.cli.core as core

    seen: dict[str, Any] = {}

    def fake_execve(path, command, env):
        seen["path"], seen["env"], seen["command"] = path, env, command

    monkeypatch.setenv("STREAMLIT_SERVER_COOKIE_SECRET", "from-the-environment")
    monkeypatch.setattr(core.os, "execve", fake_execve)
    core.serve(port=8599, host="127.0.0.1", headless=True)
    assert seen["command"][1:4] == ["-m", "streamlit", "run"]
    assert seen["env"]["STREAMLIT_SERVER_COOKIE_SECRET"] == "from-the-environment"
    assert not any("cookie" in part.lower() for part in seen["command"])


# ------------------------------------------------------------------------------------------------- exports

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _names_in(name: str, content: bytes) -> set[str]:
    """Column names (CSV/TSV headers, JSON keys, Parquet fields) of one exported file, camelCase made snake_case."""
    import io
    import json

    names: set[str] = set()
    if name.endswith((".csv", ".tsv", ".txt")):
        text = content.decode("utf-8")
        for line in text.splitlines():
            if line.startswith("#"):  # cBioPortal's metadata header lines: display names of the columns
                names.update(re.split(r"[\t,]", line.lstrip("#")))
                continue
            names.update(re.split(r"[\t,]", line))
            break
    elif name.endswith(".json"):
        def walk(node: Any) -> None:
            if isinstance(node, dict):
                names.update(node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
        walk(json.loads(content))
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        names.update(pq.read_schema(io.BytesIO(content)).names)
    return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", n.strip().strip('"')).lower() for n in names if n.strip()}


#: Columns about the institution, not a donor: CancerModels.org's sharing contact (whom to ask for the models) and
#: the country of the FHIR Organizations that hold the collection (MIABIS needs it); Patients are checked apart.
INSTITUTIONAL = {("sharing.csv", "email"), ("bundle.json", "address")}
PATIENT_IDENTIFYING = ("name", "address", "telecom", "birthDate", "contact", "photo")


def _leaks(files: dict[str, bytes], deaths: list[datetime]) -> list[str]:
    found = []
    for name, content in files.items():
        for column in sorted(_names_in(name, content)):
            # A bare "name" is allowed: ontology resources (phenopackets) and cancer models (CancerModels.org) have one;
            # so is the email of CancerModels.org's sharing sheet (whom to ask for the models: staff, not a donor).
            if (PERSONAL.search(column) or column == "initials") and (name, column) not in INSTITUTIONAL:
                found.append(f"{name}: column {column!r}")
        if name == "bundle.json":  # the FHIR Patient resources themselves: no name, address, contact or birth date
            import json

            for entry in json.loads(content).get("entry", []):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == "Patient":
                    found += [f"{name}: Patient.{key}" for key in PATIENT_IDENTIFYING if key in resource]
        if name.endswith(".xlsx"):
            continue  # the same sheets are written as CSV and scanned there
        if name.endswith(".parquet"):
            import io

            import pyarrow.parquet as pq

            text = pq.read_table(io.BytesIO(content)).to_pandas().to_csv()
        else:
            text = content.decode("utf-8", errors="replace")
        for death in deaths:
            for stamp in {death.date().isoformat(), death.astimezone(UTC).date().isoformat()}:
                if stamp in text:
                    found.append(f"{name}: the death date {stamp}")
    return found


def test_the_export_scan_would_catch_a_name_column_or_a_death_date():
    death = datetime(2025, 3, 14, 2, 0, tzinfo=UTC)
    files = {"donors.csv": b"donor_code,lastName,age\nRA-0001,X,61\n",
             "bundle.json": b'{"resource": {"deceasedDateTime": "2025-03-14T02:00:00Z"}}'}
    assert _leaks(files, [death]) == ["donors.csv: column 'last_name'", "bundle.json: the death date 2025-03-14"]
    patient = b'{"entry": [{"resource": {"resourceType": "Patient", "address": [{"city": "X"}]}}]}'
    assert _leaks({"bundle.json": patient}, [death]) == ["bundle.json: Patient.address"]


def test_no_export_target_writes_a_personal_identifier_or_a_death_date(engine, tmp_path):
    """Every export target on a 2-donor demo (a plan for the sequencing targets), the cancer-models sheets and the
    streamed Parquet export: no column named like a personal identifier, no donor's death date in any file."""
    from sqlalchemy import text
    from sqlmodel import Session, select

    from biobank.demo.cohort import load_demo
    from biobank.exports import cancermodels, service
    from biobank.exports.stream import export_specimens_parquet
    from biobank.models import Autopsy, User
    from biobank.services import planning

    with session_scope(engine) as session:  # a past "now": no death falls on today, the date files are made
        load_demo(session, donors_count=2, seed=7, now=datetime(2025, 6, 1, 12, 0, tzinfo=UTC))
    with Session(engine, expire_on_commit=False) as session:
        pi = session.exec(select(User).where(User.username == "pi")).one()
        deaths = [a.death_at for a in session.exec(select(Autopsy)).all()]
    assert len(deaths) == 2
    with session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code="WGS-1", name="Multiregional WGS", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"])
    leaks: list[str] = []
    with Session(engine) as session:
        for target in service.TARGETS:
            if target == "metient":
                codes = session.execute(text(
                    "SELECT code FROM specimen WHERE code LIKE 'RA0001-L0%-SF1' AND lineage = 'primary' ORDER BY code"
                )).scalars().all()
                files = service.export_files(session, actor=pi, target=target, specimen_codes=codes)
            elif target in service.SEQUENCING_TARGETS:  # sarek: the template (no input files here)
                files = service.export_files(session, actor=pi, target=target, plan_code="WGS-1",
                                             template=target == "sarek")
            else:
                files = service.export_files(session, actor=pi, target=target)
            assert files, target
            leaks += [f"{target}: {leak}" for leak in _leaks(files, deaths)]
        _, paths = cancermodels.export_models(session, tmp_path / "models", include_unestablished=True)
        leaks += [f"cancermodels: {leak}" for leak in _leaks({p.name: p.read_bytes() for p in paths}, deaths)]
    parquet = tmp_path / "specimens.parquet"
    export_specimens_parquet(engine, parquet)
    leaks += [f"parquet: {leak}" for leak in _leaks({"specimens.parquet": parquet.read_bytes()}, deaths)]
    assert leaks == [], "\n".join(leaks)
