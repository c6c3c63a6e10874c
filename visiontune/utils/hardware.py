"""What this machine can run fast, decided at run time (CPU flags differ from machine to machine).

>>> isinstance(cpu_supports_bf16(), bool)
True
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matrix work natively (AVX-512 BF16 or AMX), so bf16 is a speed-up.

    Without it oneDNN emulates bf16, which is several times *slower* than fp32.
    """
    import torch

    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True
    except Exception:  # noqa: BLE001 - private op; absent on some builds
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
