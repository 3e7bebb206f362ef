"""Spreadsheet import: :mod:`.read` streams raw rows, :mod:`.coerce` turns raw cells into typed values."""
