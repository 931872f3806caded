"""The stepwise study: the Hydra sweep of arms (and folds), resume, the comparison of arms and the report.

Imports: ``liver_mm.{training, tracking, data, stats}`` and ``liver_mm.figures``; never ``cli``.
"""
