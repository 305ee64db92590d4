"""Run records: one record.json per run, the only input of RESULTS.md and of the claims checks."""
