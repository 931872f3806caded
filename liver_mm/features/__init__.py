"""Model inputs made from a prepared cohort: tumour crops (and their cache), clinical features fitted on the
training split, and the clinical fibrosis scores (FIB-4, APRI).

May import: ``liver_mm.io``, ``liver_mm.cohort``, ``liver_mm.stats``.
"""
