"""``Learner``: a pretrained body and a new head, and the lesson's training calls on them.

The lesson's ``ConvLearner`` (:mod:`visiontune.lesson`, exported as ``visiontune.ConvLearner``) is this
class plus ``interpret()``, which needs the report layer above ``train``:

>>> from visiontune import ConvLearner, ImageClassifierData, tfms_from_model, efficientnet_lite0  # doctest: +SKIP
>>> data = ImageClassifierData.from_paths(PATH, tfms=tfms_from_model(efficientnet_lite0, 224))  # doctest: +SKIP
>>> learn = ConvLearner.pretrained(efficientnet_lite0, data, precompute=True)  # doctest: +SKIP
>>> learn.fit(1e-2, 3)  # doctest: +SKIP

Layer groups: ``[early body, late body, head]``; ``freeze()`` trains the head only, ``unfreeze()`` all;
the BatchNorm policy is :mod:`visiontune.train.freezing`'s. With ``precompute=True`` ``fit`` trains the
head on cached body activations (:mod:`visiontune.train.activations`); ``learn.precompute = False``
trains on augmented images, with the same head; ``learn.cache_early = True`` (partial fine-tuning) trains
the late group and the head on cached maps of the frozen early group (:mod:`visiontune.train.early_maps`).

The learner is a facade; the work is done in ``train/``'s modules: ``freezing``,
``activations``, ``loaders``, ``epoch`` (fit's and lr_find's epochs), ``lr_find``, ``evaluation``,
``task``, ``fit_log``, ``weights``, and ``checkpoint`` through :meth:`Learner.state_dict`.

Under ``torchrun`` (``WORLD_SIZE > 1``) the learner joins the process group itself and trains
data-parallel; ``data.bs`` is the global batch. See :mod:`visiontune.train.distributed` and
``docs/scaling.md``.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..features.cache import ActivationCache
from ..models.backbone import Body, create_body
from ..models.heads import ConcatPool, create_head
from ..models.registry import get_arch
from ..utils.hardware import cpu_supports_bf16
from ..utils.seed import seed_everything
from . import distributed, freezing
from . import lr_find as lr_sweep
from .activations import ActivationStore, split_dataset
from .callbacks import Callback
from .early_maps import EarlyMaps, keep_pretrained
from .epoch import EpochRunner
from .evaluation import (
    average_views,
    head_outputs,
    image_outputs,
    open_item,
    read_outputs,
)
from .fit import fit
from .loaders import (
    TrainImages,
    fed,
    ordered_loader,  # noqa: F401  (kept importable from here)
    view_loader,
)
from .loop import evaluate, predict_outputs
from .lr_find import LR_FIND_MIN_ITERS, LR_FIND_WARMUP  # noqa: F401  (kept importable from here)
from .optim import SGD_Momentum
from .recorder import Recorder
from .task import data_kind, default_metrics, loss_for, start_at_target_mean
from .weights import load_weights, save_weights, writable_models_path


def set_seed(seed: int) -> None:
    """The lesson's seeding: :func:`visiontune.utils.seed.seed_everything`."""
    seed_everything(seed)


def _default_device() -> torch.device:
    return distributed.default_device()  # cuda:LOCAL_RANK under torchrun


class Learner:
    """A pretrained body + a new head, trained with the lesson's recipe. Build it with :meth:`pretrained`.

    The lesson's ``ConvLearner`` (:mod:`visiontune.lesson`) is this class plus ``interpret()``."""

    def __init__(self, data, body: Body, head: nn.Module, *, precompute: bool = False, opt_fn=None,
                 metrics=None, engine: str = "auto", precompute_aug: int = 0, cache_dir=None,
                 cache_dtype: str = "float32", device=None, mixed_precision: str | bool = "auto",
                 models_path=None, verbose: bool = True, compile: bool = False, gpu_aug: bool | str = "auto"):
        distributed.init_distributed()  # no-op unless launched by torchrun with WORLD_SIZE > 1
        self.data = data
        self.body = body
        self.arch = body.arch
        self.head = head
        self.pool = ConcatPool()
        self.model = nn.Sequential(OrderedDict(body=body, pool=self.pool, head=head))
        self.kind = data_kind(data)
        self.crit = loss_for(self.kind)
        self.metrics = list(default_metrics(self.kind) if metrics is None else metrics)
        self.opt_fn = opt_fn or SGD_Momentum(0.9)
        self.engine_kind = engine
        self.precompute_aug = int(precompute_aug)
        self.cache = ActivationCache(cache_dir, dtype=cache_dtype)
        self.device = torch.device(device) if device is not None else _default_device()
        if mixed_precision == "auto":
            mixed_precision = self.device.type == "cuda" or cpu_supports_bf16()
        self.amp = bool(mixed_precision)
        self.channels_last = True  # ~2x faster convolutions on CPU (measured: 2.0 vs 3.7 s per 32-image train step)
        self.verbose = verbose and distributed.is_main_process()  # only rank 0 prints
        self.compile = bool(compile)  # torch.compile the training step's module
        self._loaders = TrainImages.for_device(gpu_aug, self.device)  # the training images' loader (GPU aug, DDP)
        self.sched = Recorder()
        self.history: list[dict] = []
        self.callbacks: list[Callback] = []
        self._bn_freeze = True
        self._n_frozen = 0
        self._warned_precompute_unfreeze = False
        self._store = ActivationStore(self)  # activations, their cache keys and the forward engines
        self._early = EarlyMaps(self)  # the early group's output maps (cache_early)
        self._cache_early = False
        self.keep_early_maps = False  # precompute runs the early group once and keeps its maps for cache_early
        self._epochs = EpochRunner(self, self._store, self._loaders, self._early)  # fit's and lr_find's epochs
        self.models_path = Path(models_path) if models_path else writable_models_path(Path(data.path))
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        distributed.broadcast_module_state(self.model)  # every rank starts from rank 0's head
        self.freeze()
        self._precompute = False
        self.precompute = precompute

    # ---------------------------------------------------------------- construction
    @classmethod
    def pretrained(cls, arch, data, ps=None, xtra_fc=None, xtra_cut: int = 0, precompute: bool = False,
                   opt_fn=None, metrics=None, weights=None, pretrained: bool = True, **kwargs) -> Learner:
        """The lesson's ``ConvLearner.pretrained(arch, data, ps=..., precompute=...)``.

        The head is BatchNorm -> Dropout(``ps``, 0.25 by default) -> Linear: the lesson's "last layer",
        one linear layer over the pooled activations. fastai 0.7's default head also had a 512-unit
        hidden layer; ``xtra_fc=[512], ps=[0.25, 0.5]`` builds that one (``ps`` a number sets every
        dropout, a list one per layer).

        ``weights`` is an optional weights file (safetensors or a state dict ``.pth``) for the body.
        Other keywords: ``engine`` ('auto', 'torch', 'torch-bf16', 'onnxruntime', 'openvino', ...),
        ``precompute_aug`` (K augmented views per training image in the activation cache),
        ``cache_dir``, ``cache_dtype``, ``device``, ``mixed_precision``, ``models_path``, ``compile``,
        ``gpu_aug`` ('auto': on CUDA the workers only decode + pre-size and augmentation runs batched on
        the device, see ``visiontune.transforms.batched``; ``True`` forces it, also on the CPU).
        """
        if xtra_cut:
            raise ValueError("xtra_cut is not supported: visiontune cuts every backbone at its pooling layer")
        if data.c is None or data.c < 1:
            raise ValueError("the data has no classes")
        from ..utils.display import quiet_tqdm_auto

        quiet_tqdm_auto()  # timm's hub client imports tqdm.auto: no "IProgress not found" box in Jupyter
        body = create_body(get_arch(arch), weights=weights, pretrained=pretrained)
        head = create_head(2 * body.num_features, data.c, ps=ps, xtra_fc=xtra_fc, kind=data_kind(data))
        if getattr(data, "is_reg", False):
            start_at_target_mean(head, data.trn_y)
        return cls(data, body, head, precompute=precompute, opt_fn=opt_fn, metrics=metrics, **kwargs)

    # ---------------------------------------------------------------- layer groups / freezing
    def get_layer_groups(self) -> list[list[nn.Module]]:
        return freezing.layer_groups(self.body, self.head)

    def freeze_to(self, n: int) -> None:
        """Freeze layer groups before ``n`` (negative counts from the end); train the rest."""
        self._n_frozen = freezing.freeze_to(self.get_layer_groups(), n)

    def freeze(self) -> None:
        """Train the head only."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group (once ``precompute`` is off: on cached activations only the head trains)."""
        self.freeze_to(0)
        if self.precompute and not self._warned_precompute_unfreeze:
            self._warned_precompute_unfreeze = True
            import warnings

            warnings.warn("unfreeze() while precompute=True: fit still trains only the head, on the cached "
                          "activations. Set learn.precompute = False to train the unfrozen layers.",
                          UserWarning, stacklevel=2)

    def bn_freeze(self, frozen: bool = True) -> None:
        """Keep (True, default) or stop keeping the body's BatchNorm running statistics frozen."""
        self._bn_freeze = bool(frozen)

    @property
    def n_frozen(self) -> int:
        """How many layer groups are frozen (0: all train, 2: the head only)."""
        return self._n_frozen

    @property
    def body_frozen(self) -> bool:
        return self._n_frozen >= 2

    def _set_train_mode(self) -> None:
        freezing.set_train_mode(self.model, self.get_layer_groups(), self._n_frozen, self._bn_freeze)

    # ---------------------------------------------------------------- precompute
    @property
    def precompute(self) -> bool:
        return self._precompute

    @precompute.setter
    def precompute(self, value: bool) -> None:
        if value:
            self.save_fc1()
            self._cache_early = False
        self._precompute = bool(value)

    @property
    def cache_early(self) -> bool:
        """Partial fine-tuning (:mod:`visiontune.train.early_maps`): ``fit`` trains the late group and the head
        on cached output maps of the frozen early group. Setting it freezes the early group (``freeze_to(1)``)
        and turns ``precompute`` off; ``freeze``, ``unfreeze`` or ``precompute = True`` end it."""
        return self._cache_early and self._n_frozen == 1 and not self._precompute

    @cache_early.setter
    def cache_early(self, value: bool) -> None:
        if value:
            self.freeze_to(1)
            keep_pretrained(self._early.parts()[1])
            self._precompute = False
            self._early.get("train")
            self._early.get("valid")
        self._cache_early = bool(value)

    @property
    def _engines(self) -> dict:
        """The forward engines in use (see :class:`~visiontune.train.activations.ActivationStore`)."""
        return self._store.engines

    @property
    def _acts(self) -> dict:
        return self._store.acts

    def activations(self, split: str, view: str = "clean", seed: int = 0) -> np.ndarray:
        """Pooled body activations of ``split`` ('train', 'valid', 'test') for a view, from the cache."""
        return self._store.get(split, view, seed)

    def save_fc1(self) -> None:
        """Compute (or read back) the clean activations of train, validation and test."""
        self._store.precompute_all()

    def _train_act_batches(self, shuffle_seed: int):
        """One epoch of (activations, targets) batches for the head, sampling augmented views."""
        return self._store.train_batches(shuffle_seed)

    # ---------------------------------------------------------------- fit
    def _optimizer(self, lrs, wds):
        first = 2 if self.precompute else self._n_frozen
        return freezing.make_optimizer(self.opt_fn, self.get_layer_groups(), first, lrs, wds)

    @property
    def gpu_aug(self) -> bool:
        return self._loaders.gpu_aug

    @gpu_aug.setter
    def gpu_aug(self, value: bool) -> None:
        self._loaders.gpu_aug = bool(value)

    def _image_trn_dl(self):
        """The training images' loader (see :class:`~visiontune.train.loaders.TrainImages`)."""
        return self._loaders.images(self.data)

    def _fed(self, loader):
        return fed(loader, self.device)

    def _sync_ranks(self) -> None:
        """Every rank continues from rank 0's weights and RNG states (so seeded draws agree)."""
        distributed.sync_random_state()
        distributed.broadcast_module_state(self.model)

    def _run_epoch(self, optimizer, base, mults, it: int, epoch_seed: int, on_batch, progress=None):
        """One epoch of the training step, fit's and lr_find's (see :class:`~visiontune.train.epoch.EpochRunner`)."""
        return self._epochs.run(optimizer, base, mults, it, epoch_seed, self._set_train_mode, on_batch, progress)

    def fit(self, lrs, n_cycle: int, cycle_len: float | None = None, cycle_mult: float = 1, wds=None,
            callbacks: Sequence[Callback] = (), seed: int | None = None, checkpoint=None, resume: dict | None = None):
        """Train for ``n_cycle`` epochs, or ``n_cycle`` SGDR cycles of ``cycle_len * cycle_mult**k`` epochs.

        ``lrs`` (and ``wds``) is a number or one value per layer group. Prints one line per epoch:
        ``[epoch, trn_loss, val_loss, metrics...]``. Returns the per-epoch logs as a :class:`FitLogs`
        list, which a notebook cell does not echo (the epoch lines were printed already).

        ``checkpoint``: a path; after every epoch the full training state (weights, optimizer, schedule
        position, RNG states, callbacks' state) is written there atomically. ``resume``: a state read
        back with :func:`visiontune.train.checkpoint.load_checkpoint`; the fit continues after the
        last completed epoch and ends as the uninterrupted run would.
        """
        return fit(self, lrs, n_cycle, cycle_len=cycle_len, cycle_mult=cycle_mult, wds=wds, callbacks=callbacks,
                   seed=seed, checkpoint=checkpoint, resume=resume)

    # ---------------------------------------------------------------- evaluation / prediction
    def _can_use_cached_body(self) -> bool:
        return self.precompute or self.body_frozen

    def _outputs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs (log-probs for single-label) and targets for 'valid' or 'test', clean view."""
        ds = split_dataset(self.data, split)
        y = np.asarray(self.data.val_y if split == "valid" else np.zeros(len(ds), dtype=np.int64))
        if self._can_use_cached_body():
            return self._head_outputs(self.activations(split)), y
        if self.cache_early and split == "valid":
            return self._early.outputs(split), y
        return self._predict_images(self.data.val_dl if split == "valid" else self.data.test_dl), y

    def _predict_images(self, loader) -> np.ndarray:
        """Model outputs over an ordered loader; under torchrun each rank runs its shard and all get the whole."""
        if distributed.is_distributed():
            loader = distributed.shard_loader(loader)
            out, _ = predict_outputs(self.model, self._fed(loader), self.device, amp=self.amp,
                                     channels_last=self.channels_last)
            return distributed.all_gather_array(out)
        from ..features.engine import run_engine

        # The same forward engine as precompute (ONNX Runtime / OpenVINO / bf16 where available).
        return run_engine(self._store.engine("model", self.model, len(loader.dataset), fp32=True), self._fed(loader))

    def _head_outputs(self, acts: np.ndarray, bs: int = 4096) -> np.ndarray:
        return head_outputs(self.head, acts, self.device, self.data.c, bs)

    def validate(self) -> list[float]:
        """[val_loss, *metrics] on the whole validation set."""
        out, y = self._outputs("valid")
        return evaluate(out, y, self.crit, self.metrics)

    def predict(self, item=None, is_test: bool = False):
        """The lesson's ``learn.predict()``: outputs for the validation set (``is_test=True``: the test set),
        log-probabilities for single-label data.

        Given one image (a path or a PIL image), fastai 2's ``learn.predict(item)``: returns
        ``(class name, class index, probabilities)`` for single-label data, ``(names above 0.5, 0/1 per
        label, probabilities)`` for multi-label, and ``(values, None, values)`` for regression. The image
        goes through the validation transforms, as the validation set's images do.
        """
        if isinstance(item, bool):  # learn.predict(True): the lesson's positional is_test
            item, is_test = None, item
        if item is None:
            return self._outputs("test" if is_test else "valid")[0]
        return self._predict_one(item)

    def _predict_one(self, item):
        img = open_item(item, self.data.val_tfms)
        out = image_outputs(self.model, img, self.data.val_tfms, self.device, self.amp, self.channels_last)
        return read_outputs(out, self.kind, self.data.classes)

    def predict_with_targs(self, is_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return self._outputs("test" if is_test else "valid")

    def TTA(self, n_aug: int = 4, is_test: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Test-time augmentation: the clean view plus ``n_aug`` (0 to 4) augmented views, averaged.

        The views are :mod:`visiontune.imaging.views` (mirror, zoom in, zoom in mirrored, zoom out), the
        ones ``ExportedModel`` and ``visiontune predict --tta`` use: a run's TTA accuracy is what anyone
        holding its export reproduces. Returns (log of the mean probability, targets) for single-label
        data, so that ``accuracy(log_preds, y)`` and ``log_loss(y, np.exp(log_preds))`` work as in the
        lesson; mean probabilities for multi-label and mean values for regression. With a frozen body
        the views' activations come from the cache, so a second call costs milliseconds. ``seed`` is
        kept for compatibility; the views are deterministic.
        """
        from ..imaging.views import tta_views

        split = "test" if is_test else "valid"
        names = tta_views(n_aug)
        clean, y = self._outputs(split)
        views = [clean] + [self._view_outputs(split, name) for name in names[1:]]
        return average_views(views, self.kind), y

    def _view_outputs(self, split: str, name: str) -> np.ndarray:
        if self._can_use_cached_body():
            return self._head_outputs(self.activations(split, f"view-{name}"))
        if self.cache_early and not distributed.is_distributed():  # the early group is frozen: its engine serves
            return self._early.view_outputs(split, view_loader(self.data, split, f"view-{name}", 0))
        return self._predict_images(view_loader(self.data, split, f"view-{name}", 0))

    # ---------------------------------------------------------------- lr finder
    def lr_find(self, start_lr=1e-5, end_lr=10, wds=None, num_it: int | None = None, stop_div: bool = True):
        """Sweep the rate exponentially from ``start_lr`` to ``end_lr``, then restore the model exactly.

        One epoch by default, as in fastai 0.7, but at least :data:`LR_FIND_MIN_ITERS` iterations (fastai
        2's default), on precomputed activations and on images alike: one epoch of a small dataset is
        too few points for a curve (hymenoptera unfrozen: 3 iterations). When the sweep is longer than an
        epoch the data cycles, and the learner says so; ``num_it`` sets the length. Stops early once the
        smoothed loss exceeds 4x its minimum, the minimum being tracked from iteration
        :data:`LR_FIND_WARMUP` on (fastai's rule: a noisy start cannot stop the sweep).
        ``learn.sched.plot()`` shows the curve with the suggested rate.
        """
        self._sync_ranks()
        state = copy.deepcopy(self.model.state_dict())
        rng_state = torch.get_rng_state()
        num_it = lr_sweep.sweep_length(self._epochs.iters_per_epoch(), num_it, self.verbose)
        start = freezing.group_values(start_lr, "start_lr")
        rates = lr_sweep.sweep_multipliers(start, freezing.group_values(end_lr, "end_lr"), num_it)
        optimizer, base = self._optimizer(start, wds)
        self.sched = Recorder(kind="lr_find")
        try:
            lr_sweep.sweep(lambda epoch, it, on_batch: self._run_epoch(optimizer, base, rates, it, epoch, on_batch),
                           self.sched, num_it, stop_div)
        finally:
            self.model.load_state_dict(state)
            torch.set_rng_state(rng_state)
            self._engines.clear()
        if len(self.sched.lrs) >= 2:
            self.sched.suggest()
        self.sched = distributed.broadcast_object(self.sched)  # one answer on every rank: rank 0's
        return self.sched

    # ---------------------------------------------------------------- save / load / data
    def _weights_path(self, name: str) -> Path:
        """``{models_path}/{name}.safetensors`` for any name: dots in it (``224_all.v2``) are part of the name."""
        return self.models_path / f"{name}.safetensors"

    def save(self, name: str) -> Path:
        """Write the model's weights to ``{models_path}/{name}.safetensors`` atomically."""
        path = self._weights_path(name)
        if distributed.is_main_process():  # under torchrun only rank 0 writes; the others wait for the file
            save_weights(self.model, path, {"arch": self.arch.name,
                                            "classes": ",".join(map(str, self.data.classes or []))})
        distributed.barrier()
        return path

    def load(self, name_or_path) -> None:
        """Read weights written by :meth:`save`: a name as given to ``save`` (``learn.load("224_all.v2")`` reads
        ``{models_path}/224_all.v2.safetensors``), or else the path of a weights file. A file that does not
        fit the model, or holds NaN / Inf values, is refused with one line naming it."""
        named = self._weights_path(str(name_or_path))
        path = Path(name_or_path)
        if named.is_file() or not path.is_file():
            path = named
        load_weights(self.model, path, self.device)
        self._acts.clear()

    def state_dict(self) -> dict:
        """The learner's part of a training checkpoint: the weights (on the CPU), the recorded rates and
        losses, how many layer groups are frozen and whether it trains on precomputed activations. As with
        ``nn.Module.state_dict``, weights already on the CPU are shared, not copied."""
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "sched_lrs": list(self.sched.lrs), "sched_losses": list(self.sched.losses),
                "n_frozen": int(self._n_frozen), "precompute": bool(self.precompute)}

    def load_state_dict(self, state: dict) -> None:
        """Put back the weights and the recorded rates and losses of :meth:`state_dict`. Freezing and
        ``precompute`` stay as they are: a fit resumes on a learner set up as the interrupted one was."""
        self.model.load_state_dict(state["model"])
        self.sched.lrs[:] = state.get("sched_lrs", [])
        self.sched.losses[:] = state.get("sched_losses", [])

    def set_data(self, data) -> None:
        """Switch to new data (e.g. bigger images), keeping the weights; recomputes activations if precomputing."""
        if data.c != self.data.c:
            raise ValueError(f"the new data has {data.c} classes, the model {self.data.c}")
        self.data = data
        self._acts.clear()
        self._engines.clear()
        self._early.clear()
        self.freeze()
        if self.precompute:
            self.save_fc1()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(arch={self.arch.name}, classes={self.data.c}, kind={self.kind}, "
                f"precompute={self.precompute}, frozen_groups={self._n_frozen})")
