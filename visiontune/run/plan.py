"""Budget and cost planning: pure functions of measured costs and the clock, testable without data.

The recipe measures (seconds per image of a training step and of an evaluation forward, seconds of
one pass over the training images) and asks these functions what fits; it prints and records what
they chose.

>>> sgdr_cycles(n_epochs_fit=7, max_cycles=3)   # 1 + 2 + 4 epochs
3
>>> plan = plan_unfrozen(n_trn=1000, n_val=200, bs=32, iters_per_epoch=32, seconds_per_image_train=0.05,
...                      seconds_per_image_eval=0.01, available=300.0, n_tta=4, max_cycles=3)
>>> plan["epoch_cost"], plan["tta_cost"], plan["sweep_iters"], plan["cycles"], plan["epochs"]
(52.0, 10.0, 20, 2, 3)
"""
from __future__ import annotations

AUG_VIEWS = 2
"""Augmented views cached per training image where they pay (:func:`default_aug_views`)."""
AUG_VIEWS_BELOW_PER_CLASS = 50
"""Augmented views are cached only when the training images per class are fewer than this."""
TTA_FREE_SECONDS = 10.0
TTA_SHARE = 0.10
"""TTA views (by default) cost at most ``max(TTA_FREE_SECONDS, TTA_SHARE x the run so far)``."""


def sgdr_cycles(n_epochs_fit: int, max_cycles: int) -> int:
    """Largest ``n <= max_cycles`` with ``2**n - 1`` epochs (``cycle_len=1, cycle_mult=2``) ``<= n_epochs_fit``."""
    n = 0
    while n < max_cycles and 2 ** (n + 1) - 1 <= n_epochs_fit:
        n += 1
    return n


def sgdr_cycle_len(n_epochs_fit: int, cycles: int, max_cycles: int) -> int:
    """``cycle_len`` for ``cycles`` SGDR cycles (``cycle_mult=2``: ``cycle_len * (2**cycles - 1)`` epochs): 1,
    or 2 where time (not ``max_cycles``) stopped the cycles and two-epoch cycles fit in ``n_epochs_fit``, so
    the epochs left over lengthen the cycles rather than go unused.

    >>> sgdr_cycle_len(2, 1, 3), sgdr_cycle_len(5, 2, 3), sgdr_cycle_len(6, 2, 3), sgdr_cycle_len(100, 1, 1)
    (2, 1, 2, 1)
    """
    if cycles == 0 or cycles >= max_cycles:
        return 1
    return 2 if 2 * (2 ** cycles - 1) <= n_epochs_fit else 1


def plan_unfrozen(*, n_trn: int, n_val: int, bs: int, iters_per_epoch: int, seconds_per_image_train: float,
                  seconds_per_image_eval: float, available: float, n_tta: int, max_cycles: int,
                  world_size: int = 1, tta_cost: float | None = None, setup_cost: float = 0.0,
                  sweep: bool = True) -> dict:
    """What of steps 6-8 (differential rates, lr_find unfrozen, SGDR) fits in ``available`` seconds.

    An epoch costs a training step per training image and an evaluation per validation image; the
    final TTA costs ``1 + n_tta`` evaluations per validation image; the unfrozen lr_find sweeps a
    quarter of the time (5 to 20 batches, at most two epochs' worth). What remains buys whole SGDR
    cycles (1, 3, 7 ... epochs), lengthened by the epochs left over (:func:`sgdr_cycle_len`). Costs are per image for the whole process group (under torchrun
    each rank takes ``1/world_size`` of the images). ``tta_cost`` replaces the final TTA's estimate where
    the caller knows better; ``setup_cost`` is paid once before the sweep (partial fine-tuning's maps);
    ``sweep=False`` plans no lr_find sweep.
    """
    c_train, c_eval = float(seconds_per_image_train), float(seconds_per_image_eval)
    epoch_cost = n_trn * c_train + n_val * c_eval
    tta_cost = n_val * (1 + n_tta) * c_eval if tta_cost is None else float(tta_cost)
    left = float(available) - float(setup_cost)
    n_sweep = int(min(max(round(0.25 * left / max(bs * c_train, 1e-6)), 5), 20))
    n_sweep = min(n_sweep, max(iters_per_epoch, 5) * 2) if sweep else 0
    sweep_cost = n_sweep * bs * c_train
    n_epochs_fit = int((left - tta_cost - sweep_cost) // max(epoch_cost, 1e-6)) if left > 0 else 0
    cycles = sgdr_cycles(n_epochs_fit, max_cycles)
    cycle_len = sgdr_cycle_len(n_epochs_fit, cycles, max_cycles)
    return {"seconds_per_image_train": c_train, "seconds_per_image_eval": c_eval, "epoch_cost": epoch_cost,
            "sweep_iters": n_sweep, "sweep_cost": sweep_cost, "tta_cost": tta_cost, "available": available,
            "cycles": cycles, "cycle_len": cycle_len, "epochs": cycle_len * (2 ** cycles - 1),
            "world_size": world_size, "setup_cost": float(setup_cost)}


def choose_fine_tuning(full: dict, partial: dict | None) -> dict:
    """Of two :func:`plan_unfrozen` plans, the one to run: ``full`` (every layer group trains, on images)
    unless ``partial`` (the late group and the head, on cached early-group maps) buys more SGDR cycles.
    The chosen plan gets ``"mode"``: 'full', 'partial' or 'none' (no cycle fits either way).

    >>> choose_fine_tuning({"cycles": 0}, {"cycles": 1})["mode"], choose_fine_tuning({"cycles": 1}, {"cycles": 1})["mode"]
    ('partial', 'full')
    >>> choose_fine_tuning({"cycles": 0}, None)["mode"], choose_fine_tuning({"cycles": 0}, {"cycles": 0})["mode"]
    ('none', 'none')
    """
    if partial is not None and partial["cycles"] > full["cycles"]:
        return {**partial, "mode": "partial"}
    extra = {"partial_epoch_cost": partial["epoch_cost"]} if partial is not None and "epoch_cost" in partial else {}
    return {**full, **extra, "mode": "full" if full["cycles"] > 0 else "none"}


def affordable_aug_views(wanted: int, seconds_left: float, train_pass_seconds: float) -> int:
    """Augmented views of the training set to cache: at most a quarter of the time left goes to them.

    >>> affordable_aug_views(4, seconds_left=100.0, train_pass_seconds=10.0)
    2
    """
    return max(0, min(wanted, int(0.25 * seconds_left / max(train_pass_seconds, 1e-3))))


def affordable_tta_views(wanted: int, seconds_left: float, n_val: int, seconds_per_image: float) -> int:
    """TTA views that fit in the time left (each is one forward pass over the validation images).

    >>> affordable_tta_views(4, seconds_left=25.0, n_val=100, seconds_per_image=0.1)
    2
    """
    if seconds_left <= 0:
        return 0
    return max(0, min(wanted, int(seconds_left // max(n_val * seconds_per_image, 1e-6))))



def default_aug_views(images_per_class: float | None, views: int = AUG_VIEWS) -> int:
    """Augmented views of each training image to cache, by default: ``views`` on small data, none on large.

    Each view is one more forward pass over the training images. Measured (docs/benchmarks.md, "Where the
    time goes"): on cifar10_6k (500 images a class) two views took 2/3 of the precompute time for +0.9
    accuracy points (within noise of one run); on hymenoptera (~120 a class) they changed nothing; on small
    fine-grained sets (dog breeds, 2 to 17 images a class) they are what keeps the head from overfitting.
    ``None`` (not known): ``views``.

    >>> default_aug_views(8.3), default_aug_views(122.5), default_aug_views(500), default_aug_views(None)
    (2, 0, 0, 2)
    """
    if images_per_class is None:
        return views
    return views if images_per_class < AUG_VIEWS_BELOW_PER_CLASS else 0


def default_tta_views(wanted: int, seconds_per_view: float, seconds_so_far: float) -> int:
    """TTA views to evaluate, by default: as many of ``wanted`` as cost at most
    ``max(TTA_FREE_SECONDS, TTA_SHARE * seconds_so_far)``, and at least one (the flip, the view that gains most).

    ``seconds_per_view`` is one forward pass over the validation images (measured on the clean view).
    Hymenoptera's 153 validation images (~2 s a view) keep all four views; cifar10_6k's 1,000 (~6 s a
    view) get one: there four views cost 20 s of a 110 s run for +0.5 points.

    >>> default_tta_views(4, seconds_per_view=2.0, seconds_so_far=25.0)
    4
    >>> default_tta_views(4, seconds_per_view=6.0, seconds_so_far=35.0)
    1
    >>> default_tta_views(4, seconds_per_view=6.0, seconds_so_far=300.0)
    4
    >>> default_tta_views(0, seconds_per_view=1.0, seconds_so_far=10.0)
    0
    """
    if wanted <= 0:
        return 0
    cap = max(TTA_FREE_SECONDS, TTA_SHARE * max(seconds_so_far, 0.0))
    return max(1, min(wanted, int(cap // max(seconds_per_view, 1e-6))))
