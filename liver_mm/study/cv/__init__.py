"""Cross-validated studies: the fold runs, pooled tables and the CV report."""
