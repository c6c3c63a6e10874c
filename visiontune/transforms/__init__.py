"""Transforms: presets built from the backbone's preprocessing, augmentation (TTA views: visiontune.imaging.views)."""
from .augment import (RandomDihedral, RandomFlip, RandomLighting, RandomRotate, transforms_basic,
                      transforms_side_on, transforms_top_down)
from .core import CropType, ImageTransforms, imagenet_stats, inception_stats, tfms_from_model, tfms_from_stats

__all__ = [
    "tfms_from_model", "tfms_from_stats", "ImageTransforms", "CropType",
    "transforms_basic", "transforms_side_on", "transforms_top_down",
    "RandomRotate", "RandomLighting", "RandomFlip", "RandomDihedral",
    "imagenet_stats", "inception_stats",
]
