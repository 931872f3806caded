"""The served model: bundle on disk, request parsing and checks, batched inference, the MLflow pyfunc.

Imports: ``liver_mm.{data, models, stats}`` and the leaf ``liver_mm.fileio``; mlflow (it is the served model).
"""
