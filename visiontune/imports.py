"""The lesson's ``from fastai.imports import *``: one line for a notebook.

``from visiontune.imports import *`` gives the names the notes' cells use as written: ``np``, ``pd``,
``plt``, ``PIL`` (``PIL.Image.open``), ``os``, ``re``, ``glob``, ``math``, ``Path``, scikit-learn's
``metrics`` (``metrics.log_loss``), and visiontune's lesson names (``ImageClassifierData``,
``ConvLearner``, ``tfms_from_model``, ``transforms_side_on``, ``get_cv_idxs``, ``accuracy``, ``f2``,
``plots``, the architectures, ``ClassificationInterpretation``, ``plot_confusion_matrix`` ...).

It is meant for notebooks and scripts. Inside the package star imports are not used.

>>> import visiontune.imports as vi
>>> sorted(n for n in ("np", "pd", "plt", "PIL", "metrics") if n in vi.__all__)
['PIL', 'metrics', 'np', 'pd', 'plt']
"""
import glob
import math
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import PIL
import PIL.Image
from sklearn import metrics

from . import (Adam, AdamW, ConvLearner, CropType, ImageClassifierData, SGD_Momentum, accuracy, accuracy_multi,
               accuracy_thresh, f2, fbeta, fbeta_thresh, convnext_tiny, efficientnet_b0, efficientnet_lite0, efficientnet_lite1,
               efficientnet_lite2, get_cv_idxs, mobilenetv3_large, plots, resnet18, resnet34, resnet50, resnet101,
               resnext50, tfms_from_model, transforms_basic, transforms_side_on, transforms_top_down)
from .report.interpret import ClassificationInterpretation, plot_confusion_matrix
from .utils.display import quiet_tqdm_auto as _quiet_tqdm_auto

_quiet_tqdm_auto()  # a notebook without ipywidgets: text progress bars, no red "IProgress not found" box

__all__ = [
    "glob", "math", "os", "re", "Path", "plt", "np", "pd", "PIL", "metrics",
    "Adam", "AdamW", "ConvLearner", "CropType", "ImageClassifierData", "SGD_Momentum", "accuracy", "accuracy_multi",
    "accuracy_thresh", "f2", "fbeta", "fbeta_thresh", "convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "efficientnet_lite1",
    "efficientnet_lite2", "get_cv_idxs", "mobilenetv3_large", "plots", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnext50", "tfms_from_model", "transforms_basic", "transforms_side_on", "transforms_top_down",
    "ClassificationInterpretation", "plot_confusion_matrix",
]
