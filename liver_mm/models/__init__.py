"""The networks: timm image encoder, clinical-feature MLP and the fusion classifiers (torch modules only).

Imports: nothing of liver_mm outside ``liver_mm.models`` (no MLflow, no files of the cohort).
"""

from liver_mm.models.encoders import TabularEncoder, create_image_encoder, encoder_out_dim
from liver_mm.models.film import FiLMFusionClassifier
from liver_mm.models.fusion import (
    FUSION_CLASSES,
    FUSIONS,
    IMAGENET_GRAY_MEAN,
    IMAGENET_GRAY_STD,
    FusionClassifier,
    build_fusion_model,
    effective_fusion,
)
from liver_mm.models.gated import GatedFusionClassifier
from liver_mm.models.late import LateFusionClassifier

__all__ = [
    "FUSIONS",
    "FUSION_CLASSES",
    "IMAGENET_GRAY_MEAN",
    "IMAGENET_GRAY_STD",
    "FiLMFusionClassifier",
    "FusionClassifier",
    "GatedFusionClassifier",
    "LateFusionClassifier",
    "TabularEncoder",
    "build_fusion_model",
    "create_image_encoder",
    "effective_fusion",
    "encoder_out_dim",
]
