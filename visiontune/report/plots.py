"""The lesson's ``plots(ims, rows=2)``: a grid of images, returned as a matplotlib Figure.

The figure is built with ``matplotlib.figure.Figure`` (no pyplot state, no backend switch), so it is
safe in scripts, threads and headless machines; in Jupyter the returned figure displays itself inline
(``_repr_png_``, no ``%matplotlib inline`` needed), and
``fig.savefig("augs.png")`` writes it.

>>> import numpy as np
>>> fig = plots(np.random.rand(6, 8, 8, 3), rows=2, titles=list("abcdef"))
>>> len(fig.axes)
6
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["plots"]


def _as_hwc(im) -> np.ndarray:
    try:
        import torch

        if isinstance(im, torch.Tensor):
            im = im.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    im = np.asarray(im)
    if im.ndim == 3 and im.shape[0] in (1, 3) and im.shape[-1] not in (1, 3):
        im = np.moveaxis(im, 0, -1)  # CHW -> HWC
    if im.ndim == 3 and im.shape[-1] == 1:
        im = im[..., 0]
    if np.issubdtype(im.dtype, np.floating):
        im = np.clip(im, 0.0, 1.0)
    return im


def plots(ims, rows: int = 1, titles: Sequence | None = None, figsize=(12, 6), maintitle: str | None = None,
          interp: bool = False):
    """Show ``ims`` (HWC images as ``denorm`` gives them, floats in [0, 1] or uint8) in a grid.

    Args:
        ims: an array ``(N, H, W, C)`` or a list of images (CHW tensors are accepted too).
        rows: number of rows; columns are ``ceil(N / rows)``.
        titles: one title per image (class names, probabilities...).
        figsize: figure size in inches.
        maintitle: a title above the grid.
        interp: smooth the pixels when zooming (default: nearest, like fastai 0.7).

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    from ..utils.display import new_figure, plain_text

    ims = [_as_hwc(im) for im in ims]
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if titles is not None and len(titles) != len(ims):
        raise ValueError(f"got {len(titles)} titles for {len(ims)} images")
    cols = max(1, math.ceil(len(ims) / rows))
    fig = new_figure(*figsize)
    if maintitle is not None:
        fig.suptitle(plain_text(maintitle), fontsize=16)
    for i, im in enumerate(ims):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if titles is not None:
            ax.set_title(plain_text(titles[i]), fontsize=16)
        ax.imshow(im, interpolation=None if interp else "none", cmap="gray" if im.ndim == 2 else None)
    return fig
