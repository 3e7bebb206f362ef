"""Results of the phylogeny and migration tools, imported for a donor and read back onto the donor's body map.

A PI (``Action.plan``: who drafts the study also brings its results back) imports one tool output per call; the file
is kept as given (UTF-8 text, at most :data:`MAX_BYTES`, with its SHA-256) and what was read from it is stored as
``parsed`` JSON for drawing. A malformed file is a :class:`ValidationError` naming the file, the line and what was
expected, and nothing is written. A donor whose consent was withdrawn is refused (their material is blocked from
analysis). Formats accepted, read from each tool's source:

- **CONIPHER** (McGranahanLab/CONIPHER, ``conipher_treebuilding``), kind ``clone_tree`` only:
  ``allTrees.txt`` (``### N trees``, then per tree a ``# tree k`` line and its edges ``parent<TAB>child`` as
  cluster ids; the first tree, CONIPHER's default, is read and the number of alternatives kept), or a bare
  ``parent child`` edge list of the same tree. Optionally its ``clusterInfo.txt`` as the companion file: a
  tab-separated table with a header holding ``clusterID`` and ``SAMPLE`` and one of ``clone_proportions_default``
  or ``meanCCF``; a clone counts as present in a sample when that value is above 0. ``SAMPLE`` is the sample as our
  CONIPHER export names it (``conipher_sample_id`` of the specimen code), the specimen code or the region code.
- **MACHINA** (raphael-group/machina, ``MigrationGraph::write``) and **Metient** (metient 1.0.0,
  ``plotting_util.write_migration_graph``, which writes MACHINA's format), kind ``migration_graph``: ``G-*.graph``,
  one migration per line ``source_site target_site`` (space or tab separated; a repeated line is another migration
  on the same route). Two optional columns extend it: a third, ``clones`` (``;``-separated labels of the clones
  that migrated, numbers included), and a fourth, ``count`` (a whole number of migrations, 1 when absent), e.g.
  ``Breast_left Liver 3;5 2``. A route may run both ways (reseeding), so a cycle is no error; a site migrating to
  itself is. A ``source target ...`` header line and ``#`` comment lines are skipped; a comma-separated file with
  the same columns is read too. Metient's pickle output is never read (unpickling an uploaded file runs its code):
  save its graph with ``write_migration_graph`` first.
- MACHINA and Metient, kind ``clone_tree``: the clone tree ``T-*.tree`` (``u v`` per edge) with its vertex
  labelling ``T-*.labeling`` (``vertex site`` per line, Metient's ``write_tree_vertex_labeling`` writes the same)
  as the companion file (required). Every vertex must be labelled; each tree edge whose ends sit at two sites is a
  migration of the child clone, so the migration edges and the clones present at each site come out of it too.

Site labels are the ones our exports wrote (:class:`~biobank.exports.formats._common.SiteLabeller`: the anatomical
site's label made safe, with the side when lateral). A label may also be a region code, a specimen code (MACHINA's
sample labels), CONIPHER's form of a specimen code, or an anatomical site code when the donor has that site on one
side only. Each maps back to one of the donor's sampled sites; any other label is an error naming its line.

``parsed`` holds: ``format`` (what was read), ``sites`` (the donor's sites named by the file: ``key`` = the export
label, ``site_code``, ``laterality``, ``label``, ``regions``), ``edges`` (``source``/``target`` site keys with their
``source_site_code``/``target_site_code``, the ``clones`` that migrated and the ``count`` of migrations), ``clones``,
``tree`` (``parent``/``child``, clone trees), ``presence`` (``clone``, ``site``, ``sample``, ``value``) and
``alternative_trees`` (CONIPHER).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from biobank.domain.errors import ConflictError, ConsentError, ValidationError, invalid
from biobank.domain.vocab import DonorStatus
from biobank.exports.formats._common import SIDED, SiteLabeller
from biobank.exports.formats.clonal import conipher_sample_id
from biobank.models import AnalysisPlan, AnatomicalSite, Donor, SamplingSite, Specimen, User
from biobank.models.audit import add_as
from biobank.models.plans import AnalysisResult, PlanDonor, ResultKind, ResultTool
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum
from biobank.services.donors import get_donor, withdrawal_of
from biobank.services.lookup import by_code

#: Largest file accepted (bytes): tool outputs for one patient are a few kilobytes.
MAX_BYTES = 2_000_000
#: Longest note kept (``analysis_result.note``).
NOTE_LENGTH = 500
CODE_PREFIX = "RES-"

_HEADER_WORDS = frozenset({"source", "src", "from", "parent", "vertex", "node"})


class ResultFileError(ValidationError):
    """A tool output that cannot be read: names the file, the line and what was expected."""


def _error(file_name: str, line: int | None, reason: str) -> ResultFileError:
    where = f"{file_name}, line {line}" if line is not None else file_name
    return ResultFileError(f"{where}: {reason}", field="file", value=file_name, row=line, reason=reason)


@dataclass
class DonorSites:
    """The donor's sampled sites and every label a tool file may use for one of them."""

    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)

    def add_alias(self, alias: str, key: str) -> None:
        if not alias:
            return
        current = self.aliases.get(alias)
        if current is None:
            self.aliases[alias] = key
        elif current != key:
            self.ambiguous.setdefault(alias, [current]).append(key)

    def resolve(self, label: str, file_name: str, line: int, what: str = "site") -> str:
        """The site key for a label in the file, or an error naming the line."""
        for candidate in (label, label.upper(), label.lower()):
            if candidate in self.ambiguous:
                raise _error(file_name, line, f"{what} {label!r} names more than one sampled site "
                             f"({', '.join(sorted(set(self.ambiguous[candidate])))}): use the export's site label")
            if candidate in self.aliases:
                return self.aliases[candidate]
        folded = {a.lower(): k for a, k in self.aliases.items()}
        if label.lower() in folded:
            return folded[label.lower()]
        known = ", ".join(sorted(self.sites)[:8]) or "none"
        raise _error(file_name, line, f"{what} {label!r} is not a sampled site of this donor (the donor's sites: "
                     f"{known}; a region or specimen code works too)")


def donor_sites(session: Session, donor: Donor) -> DonorSites:
    """The donor's sampling sites keyed by the site label our MACHINA/Metient/CONIPHER exports write, with the
    aliases (region codes, specimen codes, CONIPHER sample ids, site codes) that point at them. Two queries."""
    rows = session.execute(
        sa_select(col(SamplingSite.id), col(SamplingSite.code), col(SamplingSite.site_code),
               col(SamplingSite.laterality), col(AnatomicalSite.label))
        .join(AnatomicalSite, col(AnatomicalSite.code) == col(SamplingSite.site_code))
        .where(col(SamplingSite.donor_id) == donor.id)
        .order_by(col(SamplingSite.code))
    ).all()
    specimens: dict[int, list[str]] = defaultdict(list)
    for site_id, code in session.exec(
        select(Specimen.sampling_site_id, Specimen.code).where(Specimen.donor_id == donor.id).order_by(col(Specimen.code))
    ).all():
        if site_id is not None:
            specimens[int(site_id)].append(str(code))
    # The export labels sites in specimen-code order: keep that order so a rare label collision gets the same suffix.
    ordered = sorted(rows, key=lambda r: (specimens.get(int(r[0]), ["~"])[0], r[1]))
    labeller = SiteLabeller()
    out = DonorSites()
    by_code: dict[str, set[str]] = defaultdict(set)
    for site_id, region, site_code, laterality, label in ordered:
        key = labeller.label({"site_code": site_code, "site_label": label, "laterality": laterality})
        side = laterality if laterality in SIDED else None
        entry = out.sites.setdefault(key, {
            "key": key, "site_code": site_code, "laterality": side,
            "label": label + (f" ({side})" if side else ""), "regions": [],
        })
        entry["regions"].append(region)
        by_code[site_code].add(key)
        out.add_alias(key, key)
        out.add_alias(region, key)
        for specimen in specimens.get(int(site_id), []):
            out.add_alias(specimen, key)
            out.add_alias(conipher_sample_id(specimen), key)
    for site_code, keys in by_code.items():
        if len(keys) == 1:
            out.add_alias(site_code, next(iter(keys)))
        else:
            out.ambiguous.setdefault(site_code, sorted(keys))
    return out


def _text(file_name: str, content: bytes) -> str:
    if not content or not content.strip():
        raise _error(file_name, None, "the file is empty")
    if len(content) > MAX_BYTES:
        raise _error(file_name, None, f"is {len(content):,} bytes; at most {MAX_BYTES:,} (a tool's text output)")
    if b"\x00" in content:
        raise _error(file_name, None, "is a binary file; expected the tool's text output (UTF-8)")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _error(file_name, None, f"is not UTF-8 text (byte {exc.start}); expected the tool's text output") from None


def _fields(line: str) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    if "," in line and not re.search(r"\s", line.strip()):
        return [f.strip() for f in line.split(",")]
    return line.split()


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every line that is not blank and not a ``#`` comment."""
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield n, _fields(line)


def _is_header(fields: list[str]) -> bool:
    return bool(fields) and fields[0].lower() in _HEADER_WORDS


def _site_entry(sites: DonorSites, key: str) -> dict[str, Any]:
    return sites.sites[key]


def _add_edge(edges: dict[tuple[str, str], dict[str, Any]], sites: DonorSites, source: str, target: str,
              clones: list[str], count: int) -> None:
    edge = edges.setdefault((source, target), {
        "source": source, "target": target,
        "source_site_code": sites.sites[source]["site_code"], "target_site_code": sites.sites[target]["site_code"],
        "clones": [], "count": 0,
    })
    edge["count"] += count
    edge["clones"] = list(dict.fromkeys([*edge["clones"], *clones]))


def parse_migration_graph(text: str, file_name: str, sites: DonorSites) -> dict[str, Any]:
    """A MACHINA/Metient migration graph: ``source target [clones] [count]`` per line."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    first = True
    for n, fields in _lines(text):
        if first and _is_header(fields):
            first = False
            continue
        first = False
        if not 2 <= len(fields) <= 4:
            raise _error(file_name, n, f"has {len(fields)} column(s); expected 'source target' (then optionally "
                         "clones and count), as MACHINA and Metient write a migration graph")
        source = sites.resolve(fields[0], file_name, n, "source site")
        target = sites.resolve(fields[1], file_name, n, "target site")
        if source == target:
            raise _error(file_name, n, f"migrates from {fields[0]!r} to the same site; a migration graph joins two "
                         "different sites")
        count = 1
        if len(fields) == 4:
            if not re.fullmatch(r"\d+", fields[3]):
                raise _error(file_name, n, f"count {fields[3]!r} is not a whole number of migrations")
            count = int(fields[3])
        clones = [c for c in (s.strip() for s in re.split(r"[;|]", fields[2])) if c] if len(fields) > 2 else []
        if count < 1:
            raise _error(file_name, n, "count must be at least 1")
        _add_edge(edges, sites, source, target, clones, count)
    if not edges:
        raise _error(file_name, None, "has no migrations; expected lines 'source_site target_site'")
    used = list(dict.fromkeys(k for e in edges.values() for k in (e["source"], e["target"])))
    clones = list(dict.fromkeys(c for e in edges.values() for c in e["clones"]))
    return {
        "format": "migration graph (source target [clones] [count])",
        "sites": [_site_entry(sites, k) for k in used],
        "edges": list(edges.values()),
        "clones": clones,
        "tree": [],
        "presence": [],
    }


def _tree_blocks(text: str, file_name: str) -> tuple[list[tuple[int, list[str]]], int]:
    """The first tree's edge lines and how many trees the file holds (CONIPHER's ``allTrees.txt`` has ``# tree k``
    blocks; a bare edge list is one tree)."""
    trees = 0
    lines: list[tuple[int, list[str]]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("###"):
            continue
        if re.fullmatch(r"#\s*tree\s+\d+", line, flags=re.IGNORECASE):
            trees += 1
            continue
        if line.startswith("#"):
            continue
        if trees <= 1:
            lines.append((n, _fields(line)))
    return lines, max(trees, 1)


def parse_tree(text: str, file_name: str) -> tuple[list[dict[str, str]], int]:
    """A rooted clone tree (``parent child`` per edge): each vertex one parent, one root, no cycle."""
    lines, trees = _tree_blocks(text, file_name)
    edges: list[dict[str, str]] = []
    parent_of: dict[str, tuple[str, int]] = {}
    for i, (n, fields) in enumerate(lines):
        if i == 0 and _is_header(fields):
            continue
        if len(fields) != 2:
            raise _error(file_name, n, f"has {len(fields)} column(s); expected 'parent child' (one edge of the "
                         "clone tree)")
        parent, child = fields
        if parent == child:
            raise _error(file_name, n, f"clone {parent!r} is its own parent")
        if child in parent_of:
            raise _error(file_name, n, f"clone {child!r} has a second parent ({parent!r}; line {parent_of[child][1]} "
                         f"gave {parent_of[child][0]!r}); a clone tree gives each clone one parent")
        parent_of[child] = (parent, n)
        edges.append({"parent": parent, "child": child})
    if not edges:
        raise _error(file_name, None, "has no edges; expected lines 'parent child' of a clone tree")
    vertices = list(dict.fromkeys(v for e in edges for v in (e["parent"], e["child"])))
    roots = [v for v in vertices if v not in parent_of]
    if not roots:
        raise _error(file_name, None, "has a cycle and no root clone; a clone tree has one root")
    if len(roots) > 1:
        raise _error(file_name, None, f"has {len(roots)} root clones ({', '.join(roots[:5])}); a clone tree has one")
    for v in vertices:  # every vertex must reach the root: otherwise it sits on a cycle
        seen = {v}
        u = v
        while u in parent_of:
            u, line = parent_of[u]
            if u in seen:
                raise _error(file_name, line, f"clone {u!r} descends from itself (a cycle); a clone tree has none")
            seen.add(u)
    return edges, trees


def parse_labeling(text: str, file_name: str, sites: DonorSites, vertices: list[str]) -> dict[str, str]:
    """A vertex labelling (``vertex site`` per line) of every tree vertex, to site keys."""
    labels: dict[str, str] = {}
    known = set(vertices)
    first = True
    for n, fields in _lines(text):
        if first and _is_header(fields):
            first = False
            continue
        first = False
        if len(fields) != 2:
            raise _error(file_name, n, f"has {len(fields)} column(s); expected 'vertex site' (a vertex labelling)")
        vertex, label = fields
        if vertex not in known:
            raise _error(file_name, n, f"vertex {vertex!r} is not in the clone tree")
        if vertex in labels:
            raise _error(file_name, n, f"vertex {vertex!r} is labelled twice")
        labels[vertex] = sites.resolve(label, file_name, n)
    missing = [v for v in vertices if v not in labels]
    if missing:
        raise _error(file_name, None, f"labels no site for vertex(es) {', '.join(missing[:5])}; every vertex of the "
                     "clone tree needs one")
    return labels


def parse_labelled_tree(tree_text: str, tree_name: str, labeling_text: str, labeling_name: str,
                        sites: DonorSites) -> dict[str, Any]:
    """A MACHINA/Metient clone tree with its vertex labelling: the tree, the migrations it implies and the clones
    at each site."""
    tree, _ = parse_tree(tree_text, tree_name)
    vertices = list(dict.fromkeys(v for e in tree for v in (e["parent"], e["child"])))
    where = parse_labeling(labeling_text, labeling_name, sites, vertices)
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for e in tree:
        source, target = where[e["parent"]], where[e["child"]]
        if source != target:
            _add_edge(edges, sites, source, target, [e["child"]], 1)
    parents = {e["parent"] for e in tree}
    presence = [{"clone": v, "site": where[v], "sample": None, "value": 1.0} for v in vertices if v not in parents]
    used = list(dict.fromkeys(where[v] for v in vertices))
    return {
        "format": "clone tree (parent child) with vertex labelling (vertex site)",
        "sites": [_site_entry(sites, k) for k in used],
        "edges": list(edges.values()),
        "clones": vertices,
        "tree": tree,
        "presence": presence,
    }


def parse_cluster_info(text: str, file_name: str, sites: DonorSites, clones: list[str]) -> list[dict[str, Any]]:
    """CONIPHER's ``clusterInfo.txt``: the clones of the tree present (value > 0) in each sample."""
    lines = [(n, raw.split("\t")) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not lines:
        raise _error(file_name, None, "the file is empty")
    header_line, header = lines[0]
    header = [h.strip() for h in header]
    lowered = [h.lower() for h in header]
    clone_col = next((lowered.index(c) for c in ("clusterid", "clone", "cluster") if c in lowered), None)
    sample_col = next((lowered.index(c) for c in ("sample", "region") if c in lowered), None)
    value_col = next((lowered.index(c) for c in ("clone_proportions_default", "meanccf", "ccf") if c in lowered), None)
    if clone_col is None or sample_col is None or value_col is None:
        raise _error(file_name, header_line, "expected a tab-separated header with clusterID, SAMPLE and "
                     "clone_proportions_default or meanCCF (CONIPHER's clusterInfo.txt)")
    in_tree = set(clones)
    presence: dict[tuple[str, str], dict[str, Any]] = {}
    for n, cells in lines[1:]:
        if len(cells) != len(header):
            raise _error(file_name, n, f"has {len(cells)} column(s); the header has {len(header)}")
        clone, sample, raw_value = cells[clone_col].strip(), cells[sample_col].strip(), cells[value_col].strip()
        if clone not in in_tree:
            continue  # CONIPHER lists the clusters it left out of the tree too
        if raw_value in ("", "NA", "NaN"):
            continue
        try:
            value = float(raw_value)
        except ValueError:
            raise _error(file_name, n, f"{header[value_col]} {raw_value!r} is not a number") from None
        if value <= 0:
            continue
        key = sites.resolve(sample, file_name, n, "sample")
        entry = presence.setdefault((clone, key), {"clone": clone, "site": key, "sample": sample, "value": value})
        entry["value"] = max(entry["value"], value)
    return list(presence.values())


def parse_conipher(text: str, file_name: str, sites: DonorSites, companion: tuple[str, str] | None
                   ) -> dict[str, Any]:
    tree, trees = parse_tree(text, file_name)
    clones = list(dict.fromkeys(v for e in tree for v in (e["parent"], e["child"])))
    presence = parse_cluster_info(companion[1], companion[0], sites, clones) if companion else []
    used = list(dict.fromkeys(p["site"] for p in presence))
    return {
        "format": "CONIPHER clone tree (allTrees.txt, first tree)" + (" with clusterInfo.txt" if companion else ""),
        "sites": [_site_entry(sites, k) for k in used],
        "edges": [],
        "clones": clones,
        "tree": tree,
        "presence": presence,
        "alternative_trees": trees - 1,
    }


def parse_result(tool: str, kind: str, file_name: str, text: str, sites: DonorSites,
                 companion: tuple[str, str] | None = None) -> dict[str, Any]:
    """What the tool's file says, in the ``parsed`` form (see the module docstring)."""
    if tool == ResultTool.conipher:
        if kind != ResultKind.clone_tree:
            raise invalid("kind", kind, "CONIPHER builds clone trees: import it as clone_tree")
        return parse_conipher(text, file_name, sites, companion)
    if kind == ResultKind.migration_graph:
        if companion is not None:
            raise invalid("labeling", companion[0], "is only read with a clone tree (kind clone_tree)")
        return parse_migration_graph(text, file_name, sites)
    if companion is None:
        raise invalid("labeling", None, f"is needed: a {tool} clone tree is read with its vertex labelling "
                      "(T-*.labeling, 'vertex site' per line)")
    return parse_labelled_tree(text, file_name, companion[1], companion[0], sites)


def next_result_code(session: Session) -> str:
    codes = session.exec(select(AnalysisResult.code).where(col(AnalysisResult.code).like(f"{CODE_PREFIX}%"))).all()
    numbers = [int(c[len(CODE_PREFIX):]) for c in codes if c[len(CODE_PREFIX):].isdigit()]
    return f"{CODE_PREFIX}{max(numbers, default=0) + 1:04d}"


def _file_name(name: str, field_name: str = "file_name") -> str:
    cleaned = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not cleaned:
        raise invalid(field_name, name, "give the file's name")
    if len(cleaned) > 200:
        raise invalid(field_name, name, f"is {len(cleaned)} characters long; at most 200")
    return cleaned


def import_result(
    session: Session,
    *,
    actor: User | None,
    donor_code: str,
    tool: str,
    kind: str,
    file_name: str,
    content: bytes,
    plan_code: str | None = None,
    note: str | None = None,
    companion_name: str | None = None,
    companion: bytes | None = None,
) -> AnalysisResult:
    """Import one tool output for a donor (PI: ``Action.plan``); ``companion`` is the second file some formats
    take (MACHINA/Metient clone tree: its vertex labelling; CONIPHER: ``clusterInfo.txt``). Everything is checked
    before the one row is written."""
    require(actor, Action.plan)
    check_enum("tool", tool, ResultTool)
    check_enum("kind", kind, ResultKind)
    name = _file_name(file_name)
    text = _text(name, content)
    donor = get_donor(session, donor_code)
    if donor.status == DonorStatus.withdrawn or withdrawal_of(session, donor.id) is not None:
        raise ConsentError(f"donor {donor.code}: consent was withdrawn; the donor's material is blocked from "
                           "analysis, so no result is imported", field="donor", value=donor.code)
    plan: AnalysisPlan | None = None
    if plan_code is not None and plan_code.strip():
        plan = by_code(session, AnalysisPlan, AnalysisPlan.code, plan_code, what="analysis plan", field="plan")
        in_plan = session.exec(
            select(PlanDonor.id).where(PlanDonor.plan_id == plan.id, PlanDonor.donor_id == donor.id)
        ).first()
        if in_plan is None:
            raise invalid("plan", plan.code, f"does not include donor {donor.code}")
    if note is not None:
        note = note.strip() or None
        if note is not None and len(note) > NOTE_LENGTH:
            raise invalid("note", note, f"is {len(note):,} characters long; at most {NOTE_LENGTH}")
    second: tuple[str, str] | None = None
    if companion is not None:
        second_name = _file_name(companion_name or "companion", "labeling")
        second = (second_name, _text(second_name, companion))
    parsed = parse_result(tool, kind, name, text, donor_sites(session, donor), second)
    if second is not None:
        parsed["companion"] = {"file_name": second[0], "sha256": hashlib.sha256(companion or b"").hexdigest(),
                               "content": second[1]}
    code = next_result_code(session)
    if session.exec(select(func.count()).select_from(AnalysisResult).where(AnalysisResult.code == code)).one():
        raise ConflictError(f"result code {code} is taken: try again", field="code", value=code)
    assert donor.id is not None
    return add_as(session, actor, AnalysisResult(
        code=code, donor_id=donor.id, plan_id=plan.id if plan else None, tool=str(tool), kind=str(kind),
        file_name=name, sha256=hashlib.sha256(content).hexdigest(), content=text, parsed=parsed, note=note,
    ))
