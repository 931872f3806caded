"""The one place that talks to MLflow: store and experiment, runs and params, artifacts, models, the study registry.

Imports: ``liver_mm.{data, models, serve, stats}`` and ``liver_mm.figures``; never ``training``, ``study`` or ``cli``.
"""
