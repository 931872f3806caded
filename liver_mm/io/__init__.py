"""Reading what a hospital exports: table dialects (CSV, .xlsx), declared code maps, the manifest schema and its
reader, images and DICOM stills/clips, and the class-per-folder importer.

May import: ``liver_mm.stats`` and ``liver_mm.fileio`` only (no torch, no MLflow). Nothing here splits, validates a
cohort as a whole, or makes features.
"""
