"""The built-in synthetic cohort: a clinical table calibrated to the paper's Tables 1-2, B-mode-like frames with
one lesion each, and the manifest that joins them; other acquisition sites (:mod:`.site`) for external
validation. Results on it are always labelled synthetic.

May import: ``liver_mm.io`` (the manifest schema) only.
"""
