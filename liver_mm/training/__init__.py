"""One model's training: cohort and features, DataModule, LightningModule, fit, evaluation, one tracked run.

Imports: ``liver_mm.{tracking, data, models, stats}``, ``liver_mm.serve.bundle`` and ``liver_mm.figures``; never ``study`` or ``cli``.
"""
