"""One specimen as ``biobank specimen show``, the specimen page and ``GET /specimens/{code}`` show it, read with plain
SQL on a DB-API connection (``sqlite3`` or ``psycopg``).

The one implementation of the specimen view (``biobank.queries.core.specimen_detail`` calls it with the driver
connection of its session, inside the session's transaction; ``biobank specimen show`` with a connection of
:mod:`biobank.db.direct`). It imports neither SQLAlchemy, SQLModel nor the table models: SQLAlchemy alone takes about
0.15 s to import and the models most of a second, and a fresh ``biobank specimen show`` process answers within its
0.4 s (issue 21). Four to six statements whatever the
specimen, each small enough for PostgreSQL to plan in a fraction of a millisecond: the specimen with its region,
donor and case; its anatomical site, lesion, entering user, place and consent; its ancestors (derived material
only); its children; the containers above its box and its primary's (stored material only); its custody events with
their users. Each is plain SQL with named parameters (``:name``; sent to psycopg as ``%(name)s``), the same on SQLite and
PostgreSQL; datetimes come back timezone-aware in UTC as :class:`biobank.db.engine.UTCDateTime` gives them (SQLite
stores them as UTC text), booleans as booleans, the quantities and QC figures as floats.

The code is found as :func:`biobank.services.lookup.by_code` finds it (typed, in upper case, then in any letter case
through the ``upper(code)`` index of migration 0018; two codes differing only in case are never guessed between),
with the same :class:`NotFoundError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from biobank.domain.errors import NotFoundError
from biobank.domain.sprec import sprec_code
from biobank.domain.timing import cold_interval, specimen_pmi
from biobank.domain.vocab import ConsentScope

#: Containers above a box deeper than this are not followed (a site/room/freezer/rack/box tree is five deep); a
#: loop in the tree stops where it closes, as ``biobank.queries.storage.lineage_of`` stops.
MAX_CONTAINER_DEPTH = 64
#: Ancestors followed at most (an aliquot of a derivative of a primary is three deep).
MAX_LINEAGE_DEPTH = 1000

_QC = ("tumour_cellularity_pct", "necrosis_pct", "pathology_reviewer", "yield_ng", "a260_280", "rin", "din",
       "dv200_pct", "a260_230", "slide_ref", "extraction_method", "extraction_kit", "elution_volume_ul")
#: Columns read as floats, as timezone-aware UTC datetimes and as booleans (SQLite gives REAL, TEXT and INTEGER).
_FLOATS = frozenset({"quantity", "quantity_remaining", "concentration_ng_ul", "decalcification_hours",
                     "tumour_cellularity_pct", "necrosis_pct", "yield_ng", "a260_280", "rin", "din", "dv200_pct",
                     "a260_230", "elution_volume_ul"})
_DATETIMES = frozenset({"collected_at", "stabilised_at", "fixation_end_at", "death_at", "refrigerated_at",
                        "excised_at", "occurred_at"})
_BOOLEANS = frozenset({"excised_estimated", "research_use", "genomic_sequencing", "model_derivation",
                       "external_sharing", "recontact"})
#: A named parameter (``:name``) of the statements below, for drivers of the ``pyformat`` style (psycopg).
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

#: The specimen with its region, donor and case: four tables, so that PostgreSQL plans it in well under a
#: millisecond (the ten tables of the view in one join took it 12 ms to plan, 0.2 ms to run).
_SPECIMEN = (
    "SELECT s.id, s.code, s.barcode, s.parent_id, s.lineage, s.material_type, s.storage_format, s.status, "
    "s.quantity, s.quantity_remaining, s.unit, s.concentration_ng_ul, s.freeze_thaw_count, s.collected_at, "
    "s.collected_by, s.stabilised_at, s.fixation_end_at, s.fixative, s.decalcification_agent, "
    "s.decalcification_hours, s.notes, s.tumour_cellularity_pct, s.necrosis_pct, s.pathology_reviewer, s.yield_ng, "
    "s.a260_280, s.rin, s.din, s.dv200_pct, s.a260_230, s.slide_ref, s.extraction_method, s.extraction_kit, "
    "s.elution_volume_ul, s.er_status, s.pr_status, s.her2_status, s.version, s.created_by_id, s.donor_id, "
    "d.code AS donor_code, a.case_code, a.death_at, a.refrigerated_at, ss.code AS site_code, ss.kind AS site_kind, "
    "ss.site_code AS anatomical_site, ss.laterality, ss.excised_at, ss.excised_estimated, ss.lesion_id "
    "FROM specimen s "
    "JOIN sampling_site ss ON ss.id = s.sampling_site_id "
    "JOIN donor d ON d.id = s.donor_id "
    "LEFT JOIN autopsy a ON a.donor_id = s.donor_id "
    # the code as typed wins over its upper-case form (both through the unique index on code)
    "WHERE s.code IN (:code, :upper) "
    "ORDER BY CASE WHEN s.code = :code THEN 0 ELSE 1 END "
    "LIMIT 1"
)

#: What else the view shows of the specimen, each row found by a key the first statement read: its anatomical site,
#: lesion, entering user, place (and whether it is checked out), and its donor's withdrawal and governing consent.
_CONTEXT = (
    "SELECT an.code AS anatomical_code, an.label AS anatomical_label, an.category AS anatomical_category, "
    "l.code AS lesion_code, l.kind AS lesion_kind, entered.username AS entered_by, sl.container_id, sl.position, "
    "(SELECT count(*) FROM checkout co WHERE co.specimen_id = :id AND co.returned_at IS NULL) AS open_checkouts, "
    "(SELECT count(*) FROM consent_withdrawal w WHERE w.donor_id = :donor_id) AS withdrawals, "
    "c.id AS consent_id, c.research_use, c.genomic_sequencing, c.model_derivation, c.external_sharing, c.recontact "
    "FROM (SELECT 1 AS one) one "
    "LEFT JOIN anatomical_site an ON an.code = :site_code "
    "LEFT JOIN lesion l ON l.id = :lesion_id "
    "LEFT JOIN user_account entered ON entered.id = :created_by_id "
    "LEFT JOIN specimen_location sl ON sl.specimen_id = :id "
    # the governing consent version: the latest by consent date, then by entry (services.donors.latest_consent)
    "LEFT JOIN consent c ON c.id = (SELECT c2.id FROM consent c2 WHERE c2.donor_id = :donor_id "
    "ORDER BY c2.consented_on DESC, c2.id DESC LIMIT 1)"
)

#: The code in any letter case: reads the ``upper(code)`` expression index (migration 0018).
_ANY_CASE = ("SELECT code FROM specimen WHERE upper(code) = :upper LIMIT 2")

#: The specimen's ancestors, its parent first, each with what the specimen view takes from the primary.
_ANCESTORS = (
    "WITH RECURSIVE chain(id, parent_id, depth) AS ("
    "SELECT id, parent_id, 1 FROM specimen WHERE id = :parent_id "
    "UNION ALL "
    "SELECT p.id, p.parent_id, chain.depth + 1 FROM specimen p JOIN chain ON p.id = chain.parent_id "
    "WHERE chain.depth < :max_depth) "
    "SELECT s.id, s.code, s.parent_id, s.material_type, s.storage_format, s.collected_at, s.stabilised_at, "
    "s.fixation_end_at, s.fixative, sl.container_id "
    "FROM chain JOIN specimen s ON s.id = chain.id LEFT JOIN specimen_location sl ON sl.specimen_id = s.id "
    "ORDER BY chain.depth"
)

_CHILDREN = ("SELECT code, lineage, material_type FROM specimen WHERE parent_id = :id ORDER BY code")

#: Each of two containers (the same one twice when only one is asked for) and the containers above it, nearest first.
_CONTAINERS = (
    "WITH RECURSIVE up(start_id, id, depth) AS ("
    "SELECT id, id, 0 FROM container WHERE id IN (:first, :second) "
    "UNION ALL "
    "SELECT up.start_id, c.parent_id, up.depth + 1 FROM up JOIN container c ON c.id = up.id "
    "WHERE c.parent_id IS NOT NULL AND up.depth < :max_depth) "
    "SELECT up.start_id, c.id, c.code, c.temperature_class "
    "FROM up JOIN container c ON c.id = up.id "
    "ORDER BY up.start_id, up.depth"
)

_CUSTODY = (
    "SELECT e.occurred_at, e.kind, u.username, e.from_location, e.to_location, e.note "
    "FROM custody_event e LEFT JOIN user_account u ON u.id = e.user_id "
    "WHERE e.specimen_id = :id ORDER BY e.occurred_at, e.id"
)


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DATETIMES:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if name in _BOOLEANS:
        return bool(value)
    if name in _FLOATS:
        return float(value)
    return value


def _rows(connection: Any, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``sql`` (named parameters) on a DB-API connection, as dicts of typed values."""
    cursor = connection.cursor()
    try:
        if type(connection).__module__.startswith("sqlite3"):
            cursor.execute(sql, parameters)
        else:
            cursor.execute(_PARAMETER.sub(r"%(\1)s", sql), parameters)
        names = [column[0] for column in cursor.description]
        return [{n: _value(n, v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]
    finally:
        cursor.close()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _typed_code(typed: Any) -> str:
    """A code as typed, without the spaces around it (``biobank.services.lookup.typed_code``)."""
    return str(typed if typed is not None else "").strip()


def _find(connection: Any, typed: Any) -> dict[str, Any]:
    """The specimen row of the code typed in any letter case, else :class:`NotFoundError` naming ``code``."""
    code = _typed_code(typed)
    upper = code.upper()
    rows = _rows(connection, _SPECIMEN, {"code": code, "upper": upper})
    if rows:
        return rows[0]
    matches = [row["code"] for row in _rows(connection, _ANY_CASE, {"upper": upper})]
    if len(matches) == 1:
        rows = _rows(connection, _SPECIMEN, {"code": matches[0], "upper": matches[0]})
        if rows:
            return rows[0]
    raise NotFoundError(f"specimen {code!r} not found", field="code", value=code)


def _containers(connection: Any, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """Per container id: its path (``SITE/ROOM/FRZ-01/R1/BOX-001``, root first) and the MIABIS temperature class it
    sits at (its own or the nearest ancestor's), as ``biobank.queries.storage`` reads them."""
    if not ids:
        return {}
    chains: dict[int, list[tuple[int, str, str | None]]] = {}
    closed: set[int] = set()
    rows = _rows(connection, _CONTAINERS, {"first": ids[0], "second": ids[-1], "max_depth": MAX_CONTAINER_DEPTH})
    for start_id, container_id, code, temperature in (tuple(row.values()) for row in rows):
        chain = chains.setdefault(start_id, [])
        if start_id in closed or any(container_id == seen for seen, _, _ in chain):
            closed.add(start_id)  # a loop in the tree: stop where it closes
            continue
        chain.append((container_id, code, temperature))
    found = {}
    for start_id, chain in chains.items():
        path = "/".join(code for _, code, _ in reversed(chain))
        temperature = next((t for _, _, t in chain if t is not None), None)
        found[start_id] = (path, temperature)
    return found


def specimen_detail(connection: Any, code: str) -> dict[str, Any]:
    """Everything the specimen view and ``specimen show`` print: SPREC, PMI, QC, lineage, custody history, consent.

    ``connection``: a DB-API connection (``sqlite3`` or ``psycopg``), read in the transaction it is in. ``code`` in
    any letter case; :class:`NotFoundError` (field ``code``) when no specimen has it."""
    s = _find(connection, code)
    specimen_id = s["id"]
    more = _rows(connection, _CONTEXT, {
        "id": specimen_id, "donor_id": s["donor_id"], "site_code": s["anatomical_site"], "lesion_id": s["lesion_id"],
        "created_by_id": s["created_by_id"]})[0]
    ancestors = (_rows(connection, _ANCESTORS, {"parent_id": s["parent_id"], "max_depth": MAX_LINEAGE_DEPTH})
                 if s["parent_id"] is not None else [])
    primary = ancestors[-1] if ancestors else s
    children = [tuple(row.values()) for row in _rows(connection, _CHILDREN, {"id": specimen_id})]
    primary_box = ancestors[-1]["container_id"] if ancestors else more["container_id"]
    boxes = _containers(connection, [b for b in dict.fromkeys((more["container_id"], primary_box)) if b is not None])
    events = [tuple(row.values()) for row in _rows(connection, _CUSTODY, {"id": specimen_id})]

    death_at = s["death_at"]
    pmi = specimen_pmi(death_at, primary["collected_at"], primary["stabilised_at"])
    sprec = None
    if s["site_kind"] != "premortem_blood":
        sprec = sprec_code(
            material_type=primary["material_type"],
            storage_format=primary["storage_format"],
            bone=more["anatomical_code"] is not None and more["anatomical_category"] == "bone",
            death_at=death_at,
            collected_at=primary["collected_at"],
            stabilised_at=primary["stabilised_at"],
            fixation_end_at=primary["fixation_end_at"],
            fixative=primary["fixative"],
            temperature=boxes.get(primary_box, ("", None))[1] if primary_box is not None else None,
        )
    cold = cold_interval(s["refrigerated_at"], primary["collected_at"])
    location = None
    if more["container_id"] is not None:
        path = boxes[more["container_id"]][0]
        location = f"{path}:{more['position']}" if more["position"] else path
        if more["open_checkouts"]:
            location += " (checked out)"
    ancestor_codes = [a["code"] for a in reversed(ancestors)]
    lineage = {
        "ancestors": ancestor_codes,
        "children": [{"code": c, "lineage": lin, "material_type": m} for c, lin, m in children],
        "primary": primary["code"],
    }
    scopes = (frozenset(scope.value for scope in ConsentScope if more[scope.value])
              if more["consent_id"] is not None else frozenset())
    return {
        "code": s["code"],
        "barcode": s["barcode"],
        "donor": s["donor_code"],
        "case": s["case_code"],
        "sampling_site": s["site_code"],
        "site_kind": s["site_kind"],
        "anatomical_site": s["anatomical_site"],
        "anatomical_site_label": more["anatomical_label"] if more["anatomical_code"] is not None else None,
        "laterality": s["laterality"],
        "lesion": more["lesion_code"],
        "lesion_kind": more["lesion_kind"],
        "lineage": s["lineage"],
        "parent": ancestor_codes[-1] if ancestor_codes else None,
        "material_type": s["material_type"],
        "storage_format": s["storage_format"],
        "status": s["status"],
        "quantity": s["quantity"],
        "quantity_remaining": s["quantity_remaining"],
        "unit": s["unit"],
        "concentration_ng_ul": s["concentration_ng_ul"],
        "freeze_thaw_count": s["freeze_thaw_count"],
        "collected_at": _iso(s["collected_at"]),
        "collected_by": s["collected_by"],
        "entered_by": more["entered_by"],
        "excised_at": _iso(s["excised_at"]),
        "excised_estimated": s["excised_estimated"],
        "stabilised_at": _iso(s["stabilised_at"]),
        "fixation_end_at": _iso(s["fixation_end_at"]),
        "fixative": s["fixative"],
        "decalcification_agent": s["decalcification_agent"],
        "decalcification_hours": s["decalcification_hours"],
        "pmi_hours": round(pmi.hours, 2) if pmi else None,
        "pmi_basis": pmi.basis.value if pmi else None,
        "pmi": pmi.describe() if pmi else None,
        "cold_interval_hours": round(cold.total_seconds() / 3600, 2) if cold is not None else None,
        "sprec": sprec.code if sprec else None,
        "sprec_version": sprec.version if sprec else None,
        "notes": s["notes"],
        "qc": {name: s[name] for name in _QC},
        "receptors": {"er": s["er_status"], "pr": s["pr_status"], "her2": s["her2_status"]},
        "location": location,
        "version": s["version"],
        "lineage_tree": lineage,
        "consent": {"donor_code": s["donor_code"], "withdrawn": bool(more["withdrawals"]), "scopes": sorted(scopes)},
        "custody": [
            {"at": _iso(at), "kind": kind, "user": user, "from": source, "to": target, "note": note}
            for at, kind, user, source, target, note in events
        ],
    }
