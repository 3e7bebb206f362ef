"""Indexes for reads at consortium scale (a million specimens), declared beside the foundation tables and created by
migrations 0007 and 0018. Each names the query it serves; ``benchmarks/overview_speed.py`` measures them.

Migration 0018 also creates, on SQLite only, the FTS5 table ``specimen_code_fts`` (trigram tokenizer) and its
triggers: a virtual table is not a model, so it is not declared here (``biobank.queries.search`` reads it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, func, literal_column

from biobank.models.base import table_of
from biobank.models.core import Autopsy, Donor, Lesion, Specimen
from biobank.models.derived import DerivedModel, ModelPassage
from biobank.models.plans import AnalysisPlan, AnalysisResult
from biobank.models.storage import Container, DistributionOrder

_specimen = table_of(Specimen)

#: ``queries.pmi_distribution``: the PMI histogram reads primary specimens' site and times from this index alone
#: (SQLite scans it instead of the wide specimen rows).
SPECIMEN_PMI_COVER = Index(
    "ix_specimen_pmi_cover",
    _specimen.c.lineage,
    _specimen.c.sampling_site_id,
    _specimen.c.stabilised_at,
    _specimen.c.collected_at,
)


def _upper(name: str, column: Column[str]) -> Index:
    return Index(name, func.upper(column))


#: ``services.lookup.by_code`` / ``stored_code`` (and ``queries.search.resolve_specimen_code``): a code typed in
#: another letter case is found by ``upper(code) = upper(typed)`` through these, not by reading the table.
CODE_UPPER_INDEXES = (
    _upper("ix_specimen_code_upper", _specimen.c.code),
    _upper("ix_donor_code_upper", table_of(Donor).c.code),
    _upper("ix_autopsy_case_code_upper", table_of(Autopsy).c.case_code),
    _upper("ix_lesion_code_upper", table_of(Lesion).c.code),
    _upper("ix_container_code_upper", table_of(Container).c.code),
    _upper("ix_distribution_order_code_upper", table_of(DistributionOrder).c.code),
    _upper("ix_derived_model_code_upper", table_of(DerivedModel).c.code),
    _upper("ix_model_passage_label_upper", table_of(ModelPassage).c.label),
    _upper("ix_analysis_plan_code_upper", table_of(AnalysisPlan).c.code),
    _upper("ix_analysis_result_code_upper", table_of(AnalysisResult).c.code),
)


def _bare_code() -> Any:
    """``replace(replace(replace(upper(code), '-', ''), '_', ''), '.', '')``, as ``queries.search.bare_code_sql``
    writes it (literal characters, so both planners match the query to the index)."""
    empty: Any = literal_column("''")
    expression = func.upper(_specimen.c.code)
    for character in ("'-'", "'_'", "'.'"):
        expression = func.replace(expression, literal_column(character), empty)
    return expression


#: ``queries.search.resolve_specimen_code``: a code typed without its hyphens (``ra0001l01asf1``).
SPECIMEN_CODE_BARE = Index("ix_specimen_code_bare", _bare_code(), _table=_specimen)

#: ``queries.search.similar_codes`` on PostgreSQL: ``LIKE '%x%'``, ``'x%'`` and ``'%x'`` on the bare code through
#: ``pg_trgm`` (SQLite: the FTS5 table of migration 0018).
SPECIMEN_CODE_TRIGRAM = Index(
    "ix_specimen_code_trgm",
    _bare_code().label("bare_code"),
    postgresql_using="gin",
    postgresql_ops={"bare_code": "gin_trgm_ops"},
    _table=_specimen,  # a labelled expression does not name its table by itself
).ddl_if(dialect="postgresql")
