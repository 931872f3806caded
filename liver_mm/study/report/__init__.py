"""The study's report: results-first markdown, its HTML rendering, tables and the case gallery."""
