"""Run an exported model (``model.onnx`` / ``model.pt`` + ``model.json``) on images.

>>> from visiontune.infer.exported import ExportedModel           # doctest: +SKIP
>>> m = ExportedModel.load("runs/ants/model.json")                 # doctest: +SKIP
>>> probs = m.predict_images(["ant.jpg", "bee.jpg"], tta=True)     # (2, len(m.classes))  # doctest: +SKIP

Preprocessing (the same as the validation transforms): decode to RGB with EXIF orientation applied
(:func:`visiontune.imaging.decode.open_image`, at full size: a path and the same image opened with PIL
give identical outputs),
resize the short side to ``int(input_size / crop_pct)`` with the stored interpolation,
centre-crop ``input_size`` x ``input_size`` (one resize of the crop's source box), scale to [0, 1], subtract
``mean`` and divide by ``std``: the learner's validation transform, :mod:`visiontune.imaging.views`.
An image whose long side exceeds :data:`MAX_ASPECT` times its short side (a 1 x 30000 strip) is
first centre-cropped along its long side to that ratio, so that resizing it stays small; only the
centre survives the crops anyway. Other images are unaffected (the snippet below skips this step).

Test-time augmentation (``tta=True``) averages the outputs of the deterministic views of
:mod:`visiontune.imaging.views` that model.json's ``tta_views`` names (the ones the run's TTA accuracy
was measured with; all five when absent):

0. the centre crop (the plain prediction);
1. its horizontal flip;
2. a zoom-in: the short side resized :data:`TTA_ZOOM` times larger, then centre-cropped;
3. the horizontal flip of the zoom-in;
4. a zoom-out: the short side resized to exactly ``input_size`` (the whole short side visible), centre-cropped.

Without visiontune, an exported ONNX model runs with only onnxruntime, numpy and Pillow::

    import json, pathlib
    import numpy as np
    import onnxruntime as ort
    from PIL import Image, ImageOps

    def run(json_path, image_paths):
        meta = json.loads(pathlib.Path(json_path).read_text())
        sess = ort.InferenceSession(str(pathlib.Path(json_path).with_name(meta["file"])),
                                    providers=["CPUExecutionProvider"])
        size = meta["input_size"]
        short = max(size, int(size / meta["crop_pct"] + 1e-9))
        resample = getattr(Image.Resampling, meta["interpolation"].upper())
        batch = []
        for p in image_paths:
            im = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
            w, h = im.size
            nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
            left, top = round((nw - size) / 2), round((nh - size) / 2)  # the centre crop's box, scaled back
            box = (left * w / nw, top * h / nh, (left + size) * w / nw, (top + size) * h / nh)
            im = im.resize((size, size), resample, box=box)
            x = np.asarray(im, dtype=np.float32) / 255.0
            x = (x - np.array(meta["mean"], np.float32)) / np.array(meta["std"], np.float32)
            batch.append(x.transpose(2, 0, 1))
        probs = sess.run([meta["output_name"]], {meta["input_name"]: np.stack(batch)})[0]
        return [dict(zip(meta["classes"], row.tolist())) for row in probs]

(``kind == "single"``: each row holds class probabilities summing to 1; ``"multi"``: independent
sigmoid probabilities; ``"reg"``: raw values.)
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

from visiontune.imaging.views import TTA_ZOOM, VIEW_NAMES, clean_short_side, view_image  # noqa: F401 (TTA_ZOOM: API)
from visiontune.utils.kinds import KINDS

MODEL_SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript"}
REQUIRED_KEYS = ("format", "file", "input_size", "mean", "std", "interpolation", "crop_pct", "classes", "kind")
TTA_VIEWS = VIEW_NAMES  # every view; model.json's "tta_views" names the ones predict --tta averages

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class UnreadableImageWarning(UserWarning):
    """Some images given to ``predict_images`` could not be read; their output rows are NaN."""


try:
    from visiontune.imaging.aspect import MAX_ASPECT, limit_aspect
    from visiontune.imaging.decode import open_image
    from visiontune.imaging.limits import ImageLoadError as _ImageLoadError
    from visiontune.utils.errors import first_line
except ImportError:  # pragma: no cover - the standalone copy of this module (no caps, no aspect bound)
    _ImageLoadError = OSError
    MAX_ASPECT = None

    def limit_aspect(im: Image.Image) -> Image.Image:
        return im

    def open_image(image) -> Image.Image:
        if isinstance(image, Image.Image):
            return ImageOps.exif_transpose(image).convert("RGB")
        with Image.open(image) as im:
            return ImageOps.exif_transpose(im).convert("RGB")

    def first_line(e: BaseException) -> str:
        return (str(e).strip().splitlines() or [""])[0][:200]
_UNREADABLE = (_ImageLoadError, OSError)


def _resample(name: str):
    try:
        return _RESAMPLE[name.lower()]
    except KeyError:
        raise ValueError(f"Invalid interpolation {name!r}. Only {', '.join(_RESAMPLE)} are supported.") from None


def open_rgb(image, target_size: int | None = None) -> Image.Image:
    """An RGB PIL image from a path or a PIL image: :func:`visiontune.imaging.decode.open_image`, the one
    decode path (raster formats only, regular files only, caps, EXIF orientation). Paths are decoded at
    full size, never in draft mode, so a path and the same file opened with PIL give identical pixels;
    ``target_size`` is accepted for compatibility and ignored."""
    return open_image(image)


@dataclass
class ExportedModel:
    """An exported classifier or regressor with the preprocessing it needs.

    Load with :meth:`load`; ``classes``, ``kind``, ``input_size``, ``mean``, ``std``,
    ``interpolation``, ``crop_pct`` come from the JSON beside the model.
    """

    path: Path
    fmt: str
    classes: list[str]
    kind: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    meta: dict = field(repr=False)
    _run: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    unreadable: list = field(default_factory=list, repr=False)  # (path, reason) of the last predict_images call

    # -- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> "ExportedModel":
        """Load from ``model.json``, from the model file beside it, or from a folder holding ``model.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / "model.json"
        json_path = path if path.suffix == ".json" else path.with_suffix(".json")
        if not json_path.is_file():
            raise FileNotFoundError(f"no model description {json_path} (export writes it beside the model file)")
        meta = _read_meta(json_path)
        model_path = json_path.with_name(meta["file"]) if path.suffix == ".json" else path
        if not model_path.is_file():
            raise FileNotFoundError(f"model file {model_path} named by {json_path} does not exist")
        fmt = meta["format"]
        try:
            if fmt == "onnx":
                run, io_info = _onnx_runner(model_path, meta.get("input_name"), meta.get("output_name"))
            else:
                run, io_info = _torchscript_runner(model_path), None
        except Exception as e:  # a corrupt file, or something else (e.g. a pickle) under the model's name
            what = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[fmt]
            raise ValueError(f"cannot load {model_path} as {what} model: the file is corrupt or not {what} "
                             f"export ({type(e).__name__}: {first_line(e)}). It was not unpickled; export the model "
                             "again.") from None
        _check_model(run, io_info, model_path, json_path, meta)
        return cls(
            path=model_path,
            fmt=fmt,
            classes=list(meta["classes"]),
            kind=meta["kind"],
            input_size=int(meta["input_size"]),
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            interpolation=meta["interpolation"],
            crop_pct=float(meta["crop_pct"]),
            meta=meta,
            _run=run,
        )

    # -- preprocessing ----------------------------------------------------------------------------------------
    @property
    def resize_size(self) -> int:
        """The short side before the centre crop: ``int(input_size / crop_pct)`` (at least ``input_size``)."""
        return clean_short_side(self.input_size, self.crop_pct)

    @property
    def tta_views(self) -> tuple[str, ...]:
        """The views ``tta=True`` averages: model.json's ``tta_views`` (what the run's TTA accuracy used),
        else all of :data:`TTA_VIEWS`."""
        names = tuple((self.meta or {}).get("tta_views") or VIEW_NAMES)
        unknown = [n for n in names if n not in VIEW_NAMES]
        if unknown or not names or names[0] != "center":
            raise ValueError(f"model.json: tta_views must start with 'center' and name views among "
                             f"{', '.join(VIEW_NAMES)}; got {list(names)}")
        return names

    def _to_array(self, im: Image.Image) -> np.ndarray:
        x = np.asarray(im, dtype=np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def views(self, image, tta: bool = False) -> list[np.ndarray]:
        """The normalised CHW float32 arrays fed to the model: the clean view, or every view in
        :attr:`tta_views` (:mod:`visiontune.imaging.views`, the learner's own)."""
        im = open_image(image)  # the same decode for a path and a PIL image
        names = self.tta_views if tta else ("center",)
        return [self._to_array(view_image(im, name, sz=self.input_size, crop_pct=self.crop_pct,
                                          interpolation=self.interpolation)) for name in names]

    def preprocess(self, images: Sequence) -> np.ndarray:
        """A normalised float32 NCHW batch (centre views) for a list of paths or PIL images."""
        return np.stack([self.views(im)[0] for im in images])

    # -- prediction -------------------------------------------------------------------------------------------
    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """Model outputs for a normalised float32 NCHW batch: probabilities ('single', 'multi') or values ('reg')."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (self.input_size, self.input_size):
            raise ValueError(f"expected a batch of shape (N, 3, {self.input_size}, {self.input_size}), got {x.shape}")
        return np.asarray(self._run(x), dtype=np.float32)

    def predict_images(self, images: Sequence, tta: bool = False, batch_size: int = 32,
                       strict: bool = False) -> np.ndarray:
        """Outputs (n_images, n_classes) for paths or PIL images; ``tta=True`` averages the five TTA views.

        A file that cannot be read (missing, truncated, not an image, too many pixels...) does not stop
        the others: its row is NaN, one :class:`UnreadableImageWarning` names every such file and its
        reason, and ``self.unreadable`` lists ``(path, reason)``. ``strict=True`` raises the error instead.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        images = list(images)
        n_views = len(self.tta_views) if tta else 1
        per_batch = max(1, batch_size // n_views)
        rows: list[np.ndarray | None] = [None] * len(images)
        self.unreadable = []
        for i in range(0, len(images), per_batch):
            chunk, ok = [], []
            for j in range(i, min(i + per_batch, len(images))):
                try:
                    chunk.extend(self.views(images[j], tta=tta))
                    ok.append(j)
                except _UNREADABLE as e:
                    if strict:
                        raise
                    self.unreadable.append((str(images[j]), getattr(e, "reason", None) or str(e)))
            if not ok:
                continue
            y = self.predict_batch(np.stack(chunk)).reshape(len(ok), n_views, -1).mean(axis=1)
            for j, row in zip(ok, y):
                rows[j] = row
        if self.unreadable:
            warnings.warn(f"visiontune: {len(self.unreadable)} of {len(images)} image(s) could not be read; "
                          "their rows are NaN (strict=True makes this an error):\n"
                          + "\n".join(f"  {p}: {r}" for p, r in self.unreadable[:100]),
                          UnreadableImageWarning, stacklevel=2)
        width = next((len(r) for r in rows if r is not None), len(self.classes))
        out = np.full((len(images), width), np.nan, dtype=np.float32)
        for j, r in enumerate(rows):
            if r is not None:
                out[j] = r
        return out


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _read_meta(json_path: Path) -> dict:
    """``model.json``'s contents, with every value ``ExportedModel`` uses checked (ValueError naming the file)."""
    raw = json_path.read_bytes()
    try:
        meta = json.loads(raw.decode("utf-8-sig"))  # utf-8-sig: a BOM written by an editor is fine
    except UnicodeDecodeError as e:
        reason = f"not UTF-8 text (byte {e.start})"
    except json.JSONDecodeError as e:
        reason = "the file is empty" if not raw.strip() else f"invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
    except (ValueError, RecursionError) as e:
        reason = f"invalid JSON ({type(e).__name__})"
    else:
        reason = None
    if reason is not None:
        raise ValueError(f"cannot read {json_path}: {reason} (damaged? export again)")
    if not isinstance(meta, dict):
        raise ValueError(f"cannot read {json_path}: it holds a JSON {type(meta).__name__}, not an object with the "
                         "model's description (damaged? export again)")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{json_path} is missing {', '.join(missing)}")

    def bad(key: str, want: str):
        raise ValueError(f"invalid {key} in {json_path}: {_short(meta[key])} (must be {want}); export the model again")

    fmt = meta["format"]
    if not isinstance(fmt, str) or fmt not in ("onnx", "torchscript"):
        raise ValueError(f"Invalid format {_short(fmt)} in {json_path}. Only onnx, torchscript are supported.")
    name = meta["file"]
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or Path(name).name != name \
            or "\\" in name:
        raise ValueError(f"Invalid name {_short(name)} for the model file in {json_path}: it must be the name of a "
                         "file beside it (export writes model.onnx or model.pt); export the model again")
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        bad("classes", "a non-empty list of class names (strings)")
    if len(set(classes)) != len(classes):
        seen: set = set()
        dup = next(c for c in classes if c in seen or seen.add(c))
        bad("classes", f"unique names; {_short(dup)} is repeated")
    if meta["kind"] not in KINDS:
        bad("kind", f"one of {', '.join(KINDS)}")
    size = meta["input_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        bad("input_size", "a positive integer, the model's input width and height")
    if not _is_number(meta["crop_pct"]) or not 0 < meta["crop_pct"] <= 1:
        bad("crop_pct", "a number in (0, 1]")
    for key in ("mean", "std"):
        v = meta[key]
        if not isinstance(v, list) or len(v) != 3 or not all(_is_number(x) for x in v):
            bad(key, "a list of 3 finite numbers, one per RGB channel")
    if any(x == 0 for x in meta["std"]):
        bad("std", "non-zero: the image is divided by it")
    interp = meta["interpolation"]
    if not isinstance(interp, str) or interp.lower() not in _RESAMPLE:
        raise ValueError(f"Invalid interpolation {_short(interp)} in {json_path}. Only {', '.join(_RESAMPLE)} are "
                         "supported.")
    for key in ("input_name", "output_name"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            bad(key, "the name of the ONNX graph's input / output, a string")
    return meta


def _check_model(run, io_info, model_path: Path, json_path: Path, meta: dict) -> None:
    """Fail at load time when the model file and ``model.json`` disagree (input names and size, output width)."""
    n, size = len(meta["classes"]), meta["input_size"]
    again = "the model file and its model.json do not belong together; export the model again"
    width = None
    if io_info is not None:  # ONNX: names and static shapes from the graph
        input_name, inputs, output_name, outputs = io_info
        for what, name, known in (("input", input_name, inputs), ("output", output_name, outputs)):
            if name not in known:
                raise ValueError(f"{json_path} names the {what} {name!r} but {model_path} has "
                                 f"{', '.join(map(repr, known)) or 'none'}; {again}")
        in_shape, out_shape = inputs[input_name], outputs[output_name]
        if in_shape and (len(in_shape) != 4 or any(isinstance(d, int) and d != w
                                                      for d, w in zip(in_shape[1:], (3, size, size)))):
            shown = "x".join(str(d) if isinstance(d, int) else "?" for d in in_shape)
            raise ValueError(f"{model_path} takes inputs of shape {shown}, but {json_path} says input_size {size} "
                             f"(Nx3x{size}x{size}); {again}")
        if out_shape and all(isinstance(d, int) and d > 0 for d in out_shape[1:]):
            width = int(np.prod(out_shape[1:], dtype=np.int64))
    if width is None:  # a dynamic output shape, or TorchScript: run one tiny batch
        try:
            y = np.asarray(run(np.zeros((1, 3, size, size), np.float32)))
        except Exception as e:  # noqa: BLE001 - whatever the runtime raises, say which files disagree
            raise ValueError(f"cannot run {model_path} on a 1x3x{size}x{size} batch as {json_path} describes "
                             f"({type(e).__name__}: {first_line(e)}); {again}") from None
        if y.ndim < 1 or y.shape[0] != 1:
            raise ValueError(f"{model_path} returned shape {tuple(y.shape)} for 1 image, not one row per image; "
                             "export the model again")
        width = int(np.prod(y.shape[1:], dtype=np.int64))
    if width != n:
        names = ", ".join(meta["classes"][:5]) + (", ..." if n > 5 else "")
        raise ValueError(f"{model_path} outputs {width} value(s) per image but {json_path} names {n} class(es) "
                         f"({names}); {again}")


def _onnx_runner(model_path: Path, input_name: str | None, output_name: str | None):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: list(i.shape or []) for i in sess.get_inputs()}
    outputs = {o.name: list(o.shape or []) for o in sess.get_outputs()}
    input_name = input_name or next(iter(inputs), None)
    output_name = output_name or next(iter(outputs), None)

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run([output_name], {input_name: x})[0]

    return run, (input_name, inputs, output_name, outputs)


def _torchscript_runner(model_path: Path):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation notices
        module = torch.jit.load(str(model_path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run
