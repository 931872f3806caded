"""The cohort on disk: manifest schema and reading, validation, images, crops, split, CV folds, synthetic data.

Imports: ``liver_mm.stats`` only (no torch, no MLflow); pandas / numpy / scikit-learn / Pillow.
"""
