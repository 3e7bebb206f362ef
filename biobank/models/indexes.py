"""Indexes for reads at consortium scale (a million specimens), declared beside the foundation tables and created by
migration 0007. Each names the query it serves; ``benchmarks/overview_speed.py`` measures them."""

from __future__ import annotations

from sqlalchemy import Index

from biobank.models.base import table_of
from biobank.models.core import Specimen

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
