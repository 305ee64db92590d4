"""Run records: one record.json per run, the only input of RESULTS.md and of the claims checks."""

from optrepro.records.table import load_history, load_records

__all__ = ["load_history", "load_records"]
