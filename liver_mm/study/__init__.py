"""The stepwise study: the Hydra sweep of arms (and folds), resume, the comparison of arms and the report; and the
external validation of a finished study on another cohort (``liver-mm evaluate``: :mod:`.external`).

Imports: ``liver_mm.{training, tracking, serve, cohort, features, stats}`` and ``liver_mm.figures``; never ``cli``.
"""
