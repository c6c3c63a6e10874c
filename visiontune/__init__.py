"""visiontune: from a folder or CSV of labelled photos to an accurate, exported image classifier.

The lesson's names (fastai 0.7, lesson 1) are importable from here:

>>> from visiontune import (ImageClassifierData, get_cv_idxs, tfms_from_model, transforms_side_on,
...     transforms_top_down, plots, ConvLearner, efficientnet_lite0, resnet34, accuracy)
>>> get_cv_idxs(10, val_pct=0.2)
array([3, 6])
"""
__version__ = "0.1.0"

import os as _os
import time as _time

IMPORTED_AT = _time.monotonic()  # the command line counts its start-up from here (cli.seconds_since_process_start)

# Before torch loads its OpenMP runtime: threads that finish a parallel region sleep instead of
# spinning. On a CPU shared with other work, spinning threads that wait for a descheduled peer made
# every op 10-20x slower (measured on a 2-core machine under load: lr_find on a precomputed head
# 16.2 s -> 0.74 s; a forward+backward step of efficientnet_lite0 0.69 -> 0.03 s per image).
# An explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .utils.lazy import lazy_exports as _lazy_exports  # noqa: E402 (after the environment is set)

# The lesson's names load on first use (PEP 562), so that `visiontune --help` and `visiontune predict`
# on an exported model start without importing torch.
_EXPORTS = {
    ".data": ("ImageClassifierData", "get_cv_idxs"),
    ".report.interpret": ("ClassificationInterpretation", "plot_confusion_matrix"),
    ".report.plots": ("plots",),
    # the lesson's front door: ConvLearner (Learner + interpret) and the archs, callable as fastai 0.7's
    ".lesson": ("ConvLearner", "convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "efficientnet_lite1",
                "efficientnet_lite2", "mobilenetv3_large", "resnet18", "resnet34", "resnet50", "resnet101", "resnext50"),
    ".train.metrics": ("accuracy", "accuracy_multi", "accuracy_thresh", "f2", "fbeta", "fbeta_thresh"),
    ".train.optim": ("Adam", "AdamW", "SGD_Momentum"),
    ".transforms": ("CropType", "tfms_from_model", "transforms_basic", "transforms_side_on", "transforms_top_down"),
}
__getattr__, __dir__, __all__ = _lazy_exports(__name__, _EXPORTS)
