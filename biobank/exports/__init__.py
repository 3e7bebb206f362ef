"""Exports for analysis pipelines and data exchange (DOMAIN.md §6).

The pure file writers live in :mod:`biobank.exports.formats`, one module per target; they take already-queried
pandas DataFrames and never touch the database.
"""
