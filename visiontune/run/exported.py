"""A finished run folder back to a model: ``load_run_model`` (the trained network, without the data) and
``export_run`` (its ONNX / TorchScript export with ``model.json``, the TTA views the run measured with).
"""
from __future__ import annotations

from pathlib import Path

from ..imaging.views import tta_views
from ..train import weights as train_weights

__all__ = ["export_run", "load_run_model"]


def _read_run_json(path: Path, expect: type = dict):
    from .folder import _read_json

    return _read_json(path, expect)


def load_run_model(run_dir, weights: str = "best.safetensors"):
    """The trained ``nn.Sequential(body, pool, head)`` of a run folder, rebuilt without its data.

    Returns (model, preprocessing dict, classes, kind).
    """
    from collections import OrderedDict

    from torch import nn

    from ..models import ConcatPool, create_body, create_head, get_arch

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    for name in ("config.json", "preprocessing.json", weights):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} has no {name}: is it a finished visiontune train run?")
    cfg = _read_run_json(run_dir / "config.json")
    pre = _read_run_json(run_dir / "preprocessing.json")
    if not isinstance(pre.get("classes"), list) or not pre["classes"] or "arch" not in cfg:
        raise ValueError(f"{run_dir}: preprocessing.json has no class list or config.json no arch (damaged?); "
                         "train the run again")
    classes, kind = list(pre["classes"]), pre.get("kind", "single")
    body = create_body(get_arch(cfg["arch"]), weights=None, pretrained=False)
    head = create_head(2 * body.num_features, len(classes), ps=cfg.get("ps"), xtra_fc=None, kind=kind)
    model = nn.Sequential(OrderedDict(body=body, pool=ConcatPool(), head=head))
    # damaged, non-finite (NaN / Inf) or mismatching weights: one line naming the file (and the tensor)
    train_weights.load_state_checked(model, train_weights.read_weights(run_dir / weights, "cpu"), run_dir / weights)
    return model.eval(), pre, classes, kind


def export_run(run_dir, fmt: str = "onnx", out_dir=None) -> Path:
    """Export a run's kept weights (``best.safetensors``) as ONNX or TorchScript + ``model.json``."""
    from ..infer.export import export_model

    model, pre, classes, kind = load_run_model(run_dir)
    try:  # the views the run's TTA accuracy was measured with, so predict --tta reproduces it
        n_views = int(((_read_run_json(Path(run_dir) / "progress.json").get("final") or {}).get("tta_views")))
        views = tta_views(n_views) if n_views > 0 else None
    except (ValueError, TypeError, OSError):
        views = None  # an older or unfinished run: predict --tta averages every view
    return export_model(model, Path(out_dir) if out_dir else Path(run_dir), preprocessing=pre, classes=classes,
                        kind=kind, fmt=fmt, tta_views=views)
