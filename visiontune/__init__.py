"""visiontune: from a folder or CSV of labelled photos to an accurate, exported image classifier.

The lesson's names (fastai 0.7, lesson 1) are importable from here:

>>> from visiontune import (ImageClassifierData, get_cv_idxs, tfms_from_model, transforms_side_on,
...     transforms_top_down, plots, ConvLearner, efficientnet_lite0, resnet34, accuracy)
>>> get_cv_idxs(10, val_pct=0.2)
array([3, 6])
"""
__version__ = "0.1.0"

import os as _os

# Before torch loads its OpenMP runtime: threads that finish a parallel region sleep instead of
# spinning. On a CPU shared with other work, spinning threads that wait for a descheduled peer made
# every op 10-20x slower (measured on a 2-core machine under load: lr_find on a precomputed head
# 16.2 s -> 0.74 s; a forward+backward step of efficientnet_lite0 0.69 -> 0.03 s per image).
# An explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .data import ImageClassifierData, get_cv_idxs
from .models import (
    convnext_tiny,
    efficientnet_b0,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    mobilenetv3_large,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnext50,
)
from .report.plots import plots
from .train.learner import ConvLearner
from .train.metrics import accuracy, accuracy_multi, accuracy_thresh
from .train.optim import Adam, AdamW, SGD_Momentum
from .transforms import CropType, tfms_from_model, transforms_basic, transforms_side_on, transforms_top_down

__all__ = [
    "Adam", "AdamW", "ConvLearner", "CropType", "ImageClassifierData", "SGD_Momentum", "accuracy", "accuracy_multi",
    "accuracy_thresh", "convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "efficientnet_lite1",
    "efficientnet_lite2", "get_cv_idxs", "mobilenetv3_large", "plots", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnext50", "tfms_from_model", "transforms_basic", "transforms_side_on", "transforms_top_down",
]
