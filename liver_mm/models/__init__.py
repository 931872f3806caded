"""The networks: timm image encoder, clinical-feature MLP and the late-fusion classifier (torch modules only).

Imports: nothing of liver_mm outside ``liver_mm.models`` (no MLflow, no files of the cohort).
"""

from liver_mm.models.encoders import TabularEncoder, create_image_encoder, encoder_out_dim
from liver_mm.models.fusion import (
    IMAGENET_GRAY_MEAN,
    IMAGENET_GRAY_STD,
    FusionClassifier,
    build_fusion_model,
)

__all__ = [
    "IMAGENET_GRAY_MEAN",
    "IMAGENET_GRAY_STD",
    "FusionClassifier",
    "TabularEncoder",
    "build_fusion_model",
    "create_image_encoder",
    "encoder_out_dim",
]
