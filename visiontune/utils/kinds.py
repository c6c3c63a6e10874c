"""The one list of problem kinds: what a model's outputs mean.

- ``'single'``: single-label classification (a LogSoftmax head; probabilities once exported);
- ``'multi'``: multi-label classification (independent sigmoids, the top-down / satellite lesson);
- ``'reg'``: regression (raw values).

Torch-free, so ``ExportedModel`` and the report read it without loading torch.

>>> KINDS
('single', 'multi', 'reg')
"""
from __future__ import annotations

KINDS: tuple[str, ...] = ("single", "multi", "reg")
