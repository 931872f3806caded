"""A cohort as a study uses it: validation (manifest, images, labs), labels, leakage groups, the train/dev/test
split, cross-validation folds, and preparing a validated, split cohort for a run (:mod:`.prepare`).

May import: ``liver_mm.io``, ``liver_mm.synth`` (the built-in cohort), ``liver_mm.stats``, ``liver_mm.fileio``.
"""
