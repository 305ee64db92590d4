"""From run records to one results table, RESULTS.md, and the regression check of paper claims."""
