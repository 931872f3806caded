"""Why the model says what it says: Grad-CAM of the image branch, permutation importance of the labs, their figures.

Imports: serve, data, models, stats, figures, fileio, runtime (never training, tracking, study or cli).
"""

from liver_mm.explain.gradcam import gradcam_maps, last_conv
from liver_mm.explain.importance import feature_groups, permutation_importance
from liver_mm.explain.network import probabilities, tabular_predictor
from liver_mm.explain.run import explain_run, select_cases

__all__ = ["explain_run", "feature_groups", "gradcam_maps", "last_conv", "permutation_importance", "probabilities",
           "select_cases", "tabular_predictor"]
