"""Batch interpretation of CSV exports (column-wise, polars)."""
