"""The one weights digest: names a module's current weights in cache keys and checks.

The activation cache, the on-disk engine exports and the multi-process checks all name weights
with this digest, so two places can never disagree on whether weights changed.

>>> import torch
>>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
>>> _ = b.load_state_dict(a.state_dict())
>>> weights_digest(a) == weights_digest(b), len(weights_digest(a))
(True, 16)
>>> with torch.no_grad():
...     _ = b.weight.add_(1)
>>> weights_digest(a) == weights_digest(b)
False
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_digest(module: nn.Module) -> str:
    """16 hex digits of SHA-256 over every state-dict entry's name and exact bytes (dtype-agnostic)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
