"""Turning a trained model's outputs into answers: the head over cached activations, one image through
the validation transforms, a single image's outputs read per data kind, and the TTA views' average.

>>> import numpy as np
>>> read_outputs(np.log(np.array([0.2, 0.8])), "single", ["ants", "bees"])[:2]
('bees', 1)
>>> np.exp(average_views([np.log(np.array([[0.2, 0.8]])), np.log(np.array([[0.4, 0.6]]))], "single")).round(3)
array([[0.3, 0.7]])
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .loop import autocast_context


@torch.no_grad()
def head_outputs(head: nn.Module, acts: np.ndarray, device: torch.device, n_out: int, bs: int = 4096) -> np.ndarray:
    """The head's outputs over pooled activations, ``bs`` rows at a time."""
    head.eval()
    outs = [head(torch.from_numpy(np.array(acts[i:i + bs], dtype=np.float32)).to(device)).float().cpu().numpy()
            for i in range(0, len(acts), bs)]
    return np.concatenate(outs) if outs else np.zeros((0, n_out), np.float32)


def open_item(item, val_tfms):
    """A path (decoded as the validation set's images are) or a PIL image, as an RGB image."""
    from PIL import Image

    if isinstance(item, (str, os.PathLike)):
        from ..imaging.decode import load_image

        return load_image(item, target_size=getattr(val_tfms, "min_side", None))
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    raise TypeError(f"learn.predict takes an image file path or a PIL image (or nothing, for the validation "
                    f"set), not {type(item).__name__}")


def image_outputs(model: nn.Module, img, val_tfms, device: torch.device, amp: bool, channels_last: bool) -> np.ndarray:
    """The model's outputs for one image, through the validation transforms."""
    x = val_tfms.normalize(val_tfms(img)).unsqueeze(0).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad(), autocast_context(device, amp):
        return model(x).float().cpu().numpy()[0]


def read_outputs(out: np.ndarray, kind: str, classes):
    """fastai 2's ``predict`` answer for one image's outputs: ``(class name, class index, probabilities)``
    (single-label log-probs), ``(names above 0.5, 0/1 per label, probabilities)`` (multi-label) or
    ``(values, None, values)`` (regression)."""
    classes = list(classes or [])
    if kind == "single":
        probs = np.exp(out)
        idx = int(probs.argmax())
        return (classes[idx] if classes else idx), idx, probs
    if kind == "multi":
        hits = (out > 0.5).astype(np.int64)
        return [c for c, h in zip(classes, hits) if h], hits, out
    return out, None, out


def average_views(views: list[np.ndarray], kind: str) -> np.ndarray:
    """The TTA average: the log of the mean probability for single-label log-probs, else the mean."""
    if kind == "single":
        probs = np.mean([np.exp(v) for v in views], axis=0)
        return np.log(np.clip(probs, 1e-12, None))
    return np.mean(views, axis=0)
