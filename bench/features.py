"""The feature engine, measured: precompute speed per engine, where the time goes, augmented
activations, and cached TTA (issue 4).

    python bench/features.py                       # ../shared/datasets/hymenoptera, 224 px, efficientnet_lite0
    python bench/features.py DATA --tiny           # a few images at 64 px: checks the harness

All in one run:

1. images/s end to end, from JPEG files to cached activations (train + validation), for each
   available engine (``ConvLearner.pretrained(..., engine=kind)``, an empty cache each; the engine's
   export / compile time is included), and for a naive baseline: PyTorch eager fp32, contiguous,
   single-process PIL decoding (a plain loop: open, resize, centre crop, tensor, model; batches of 32).
2. where the time goes: for each engine, the pipeline's wait for the loader (decode + transform in
   worker processes), the forward pass and the write (from ``run_engine(timings=...)``); and the
   single-process cost per image of decode, transform and forward, visiontune against naive.
3. the pure forward rate of each engine on one batch (``measure_engines``), against the best and
   against the machine's limit (matrix-multiply rate / FLOPs).
4. augmented activations: head-only accuracy and validation loss after ``fit(1e-2, 3)`` with
   ``precompute_aug=4`` against ``precompute_aug=0`` (same head epochs; mean over seeds).
5. cached TTA: the first ``learn.TTA()`` (computes the views' activations) against the second
   (cached), a new learner reading the cache from disk, and agreement with a cold cache and with
   an uncached pass of the full model.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SECTION = "features"
ARCH = "efficientnet_lite0"


# ----------------------------------------------------------------------------------------- helpers
def make_data(cfg):
    import visiontune as vt

    return vt.ImageClassifierData.from_paths(
        cfg.data, bs=32, val_name=cfg.valid,
        tfms=vt.tfms_from_model(vt.efficientnet_lite0, cfg.size, aug_tfms=vt.transforms_side_on, max_zoom=1.1))


class _Timed:
    """Wrap ``visiontune.features.engine.run_engine`` so every call adds its timings to one dict."""

    def __init__(self):
        import visiontune.features.engine as eng

        self.eng = eng
        self.orig = eng.run_engine
        self.timings: dict = {}

    def __enter__(self):
        orig, acc = self.orig, self.timings

        def timed(engine, loader, out=None, dtype=None, progress=False, timings=None):
            kw = {} if dtype is None else {"dtype": dtype}
            return orig(engine, loader, out=out, progress=progress, timings=acc, **kw)

        self.eng.run_engine = timed
        return self

    def __exit__(self, *exc):
        self.eng.run_engine = self.orig


def end_to_end(cfg, data, kind: str, work: Path, export_cached: bool = False) -> dict:
    """Train + validation activations into an empty activation cache. The ONNX export cache
    (``$VISIONTUNE_CACHE/engines``) is empty too, unless ``export_cached``: then it holds the export
    the previous call for this kind wrote, as it would for any later run with the same backbone."""
    import os

    import visiontune as vt
    from visiontune.features.engine import clear_engine_cache

    clear_engine_cache()
    engines_home = work / f"home-{kind}"
    if not export_cached:
        shutil.rmtree(engines_home, ignore_errors=True)
    before = os.environ.get("VISIONTUNE_CACHE")
    os.environ["VISIONTUNE_CACHE"] = str(engines_home)  # for this measurement only: restored below
    cache = work / f"cache-e2e-{kind}"
    try:
        learn = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, engine=kind, cache_dir=cache, verbose=False)
        with _Timed() as t:
            t0 = time.perf_counter()
            learn.precompute = True  # clean activations of train + validation into the empty cache
            secs = time.perf_counter() - t0
    finally:
        if before is None:
            os.environ.pop("VISIONTUNE_CACHE", None)
        else:
            os.environ["VISIONTUNE_CACHE"] = before
    used = next(iter(learn._engines.values())).kind if learn._engines else kind
    n = len(data.trn_ds) + len(data.val_ds)
    tm = t.timings
    run_s = tm.get("total_s", secs)
    shutil.rmtree(cache, ignore_errors=True)
    label = kind + (" (ONNX export cached)" if export_cached else "")
    return {"kind": label, "engine_used": used if used != kind else label, "img_per_s": n / secs, "seconds": secs, "n": n,
            "build_s": max(secs - run_s, 0.0), "load_s": tm.get("load_s"), "forward_s": tm.get("forward_s"),
            "write_s": tm.get("write_s")}


def naive(cfg, files: list[Path]) -> dict:
    """PyTorch eager fp32, contiguous, single-process PIL: open -> resize -> centre crop -> tensor -> model."""
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    import visiontune as vt
    from visiontune.models.backbone import create_body
    from visiontune.models.heads import ConcatPool

    pp = vt.efficientnet_lite0.preprocessing
    mean = torch.tensor(pp.mean).view(3, 1, 1)
    std = torch.tensor(pp.std).view(3, 1, 1)
    model = nn.Sequential(create_body(vt.efficientnet_lite0), ConcatPool()).eval()
    size = cfg.size
    with torch.no_grad():  # warm-up outside the clock (first-call set-up), generous to the baseline
        model(torch.zeros(2, 3, size, size))
    decode_s = transform_s = forward_s = 0.0
    batch, outs = [], []
    t_all = time.perf_counter()
    for i, f in enumerate(files):
        t0 = time.perf_counter()
        im = Image.open(f).convert("RGB")
        t1 = time.perf_counter()
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        batch.append((x - mean) / std)
        t2 = time.perf_counter()
        decode_s += t1 - t0
        transform_s += t2 - t1
        if len(batch) == 32 or i == len(files) - 1:
            t3 = time.perf_counter()
            with torch.no_grad():
                outs.append(model(torch.stack(batch)).numpy())
            forward_s += time.perf_counter() - t3
            batch = []
    secs = time.perf_counter() - t_all
    n = len(files)
    return {"kind": "naive (eager fp32, 1 process)", "img_per_s": n / secs, "seconds": secs, "n": n,
            "decode_ms": 1000 * decode_s / n, "transform_ms": 1000 * transform_s / n, "forward_ms": 1000 * forward_s / n}


def single_process_costs(cfg, data, kind: str) -> dict:
    """visiontune's own per-image costs in one process: draft-mode decode, validation transform, engine forward."""
    import torch

    from visiontune.features.engine import create_engine
    from visiontune.models.backbone import create_body
    from visiontune.models.heads import ConcatPool
    import visiontune as vt

    ds = data.fix_dl.dataset
    n = len(ds)
    decode_s = transform_s = 0.0
    xs = []
    for i in range(n):
        t0 = time.perf_counter()
        im = ds.get_x(i)
        t1 = time.perf_counter()
        xs.append(ds.transform(im))
        transform_s += time.perf_counter() - t1
        decode_s += t1 - t0
    module = torch.nn.Sequential(create_body(vt.efficientnet_lite0), ConcatPool()).eval()
    engine = create_engine(module, kind, example_input_shape=(1, 3, cfg.size, cfg.size), n_images=n)
    norm = data.val_tfms.normalize
    engine(norm(torch.stack(xs[:32])))  # warm-up
    t0 = time.perf_counter()
    for i in range(0, n, 32):
        engine(norm(torch.stack(xs[i:i + 32])))
    forward_s = time.perf_counter() - t0
    engine.close()
    return {"kind": f"visiontune, {kind}", "decode_ms": 1000 * decode_s / n, "transform_ms": 1000 * transform_s / n,
            "forward_ms": 1000 * forward_s / n, "n": n}


def pure_forward(cfg) -> tuple[dict, dict, str, float]:
    import torch
    from torch import nn

    import visiontune as vt
    from visiontune.features.engine import clear_engine_cache, create_engine, measure_engines
    from visiontune.models.backbone import create_body
    from visiontune.models.heads import ConcatPool

    clear_engine_cache()
    module = nn.Sequential(create_body(vt.efficientnet_lite0), ConcatPool()).eval()
    flops = C.forward_flops(module, (1, 3, cfg.size, cfg.size))
    batch = torch.randn(32, 3, cfg.size, cfg.size)
    build: dict = {}
    rates = measure_engines(module, batch, kinds=cfg.engines, repeats=cfg.repeats, build_s=build)
    auto = create_engine(module, "auto", example_input_shape=(1, 3, cfg.size, cfg.size), n_images=cfg.n_images)
    auto_kind = auto.kind
    auto.close()
    return rates, build, auto_kind, flops


HEAD_FITS = [  # (label, lr, n_cycle, fit keywords); the first is the lesson's first head fit, the headline
    ("fit(1e-2, 3)", 1e-2, 3, {}),
    ("fit(1e-2, 3, cycle_len=1)", 1e-2, 3, {"cycle_len": 1}),
    ("fit(3e-3, 3, cycle_len=1)", 3e-3, 3, {"cycle_len": 1}),
    ("fit(1e-2, 10)", 1e-2, 10, {}),
]


def make_dog_data(cfg):
    """dog_breeds_sample (120 breeds, 2 to 17 photos each) with the lesson's 20% validation split."""
    import visiontune as vt

    labels = cfg.k_data / "labels.csv"
    n = sum(1 for _ in labels.open()) - 1
    return vt.ImageClassifierData.from_csv(
        cfg.k_data, "train", labels, bs=32, val_idxs=vt.get_cv_idxs(n, seed=42), suffix=".jpg",
        tfms=vt.tfms_from_model(vt.efficientnet_lite0, cfg.size, aug_tfms=vt.transforms_side_on, max_zoom=1.1))


def augmented(cfg, data, work: Path, dataset: str, fits=HEAD_FITS, main_dataset: bool = True) -> tuple[list[dict], object]:
    """Head-only fits on K=0 and K=cfg.k caches (one cache of views, read by every fit), per seed.
    On the main dataset the headline fit's learners are kept for TTA (see :func:`augmented_tta`)."""
    import numpy as np

    import visiontune as vt
    from visiontune.train.learner import set_seed

    cache = work / f"cache-aug-{dataset}"
    rows, keep = [], None
    for label, lr, n_cycle, kw in fits:
        for k in (0, cfg.k):
            for seed in cfg.seeds:
                set_seed(seed)
                learn = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, precompute=True, precompute_aug=k,
                                                  cache_dir=cache, verbose=False)
                t0 = time.perf_counter()
                logs = learn.fit(lr, n_cycle, seed=seed, **kw)
                fit_s = time.perf_counter() - t0
                last = logs[-1]
                row = {"dataset": dataset, "fit": label, "K": k, "seed": seed, "val_loss": float(last["val_loss"]),
                       "accuracy": float(last.get("accuracy", np.nan)), "fit_s": fit_s}
                if label == fits[0][0] and main_dataset:
                    row["learner"] = learn  # for TTA, after cached_tta
                    if k == 0 and keep is None:
                        keep = learn
                rows.append(row)
    return rows, keep


def augmented_tta(rows: list[dict]) -> None:
    """TTA accuracy and loss of every head of :func:`augmented` (after :func:`cached_tta`: the views are cached)."""
    import numpy as np

    for r in rows:
        if "learner" not in r:
            continue
        lp, y = r.pop("learner").TTA()
        r["tta_accuracy"] = float((lp.argmax(1) == y).mean())
        r["tta_loss"] = float(-np.mean(lp[np.arange(len(y)), y]))


def cached_tta(cfg, data, learn, work: Path) -> dict:
    import numpy as np

    import visiontune as vt

    state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    t0 = time.perf_counter()
    lp1, y = learn.TTA()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    lp2, _ = learn.TTA()
    second = time.perf_counter() - t0

    # a new learner on the same (now warm) disk cache: a later run, same data and weights
    warm = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, precompute=True, cache_dir=learn.cache.root,
                                     verbose=False)
    warm.model.load_state_dict(state)
    t0 = time.perf_counter()
    lp_disk, _ = warm.TTA()
    disk = time.perf_counter() - t0

    # a cold cache: everything recomputed
    cold = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, precompute=True, cache_dir=work / "cache-cold",
                                     verbose=False)
    cold.model.load_state_dict(state)
    lp_cold, _ = cold.TTA()

    # no cache at all: the full model over the augmented images (unfrozen body, precompute off)
    full = vt.ConvLearner.pretrained(vt.efficientnet_lite0, data, precompute=False, cache_dir=work / "cache-none",
                                     verbose=False)
    full.model.load_state_dict(state)
    full.unfreeze()
    t0 = time.perf_counter()
    lp_full, _ = full.TTA()
    uncached = time.perf_counter() - t0

    def cmp(a, b):
        pa, pb = np.exp(a), np.exp(b)
        return float(np.abs(pa - pb).max()), float((pa.argmax(1) == pb.argmax(1)).mean())

    acc = float((np.exp(lp2).argmax(1) == y).mean())
    return {"first_s": first, "second_s": second, "disk_s": disk, "uncached_s": uncached,
            "speedup": first / max(second, 1e-9), "speedup_vs_uncached": uncached / max(second, 1e-9),
            "repeat": cmp(lp1, lp2), "disk": cmp(lp2, lp_disk), "cold": cmp(lp2, lp_cold), "uncached": cmp(lp2, lp_full),
            "tta_accuracy": acc, "n_valid": len(y)}


# ----------------------------------------------------------------------------------------- report
def render(res: dict, facts: dict, ceiling: dict, cfg, cmdline: str) -> str:
    F = C.fmt
    e2e, nv = res["e2e"], res["naive"]
    best_e2e = max((r["img_per_s"] for r in e2e if "cached" not in r["kind"]), default=None)
    best_e2e_cached = max((r["img_per_s"] for r in e2e if "cached" in r["kind"]), default=None)
    rows = []
    for r in e2e:
        parts = [r.get("load_s"), r.get("forward_s"), r.get("write_s"), r.get("build_s")]
        tot = r["seconds"]
        share = " / ".join("n/a" if p is None else f"{p / tot:.0%}" for p in parts)
        name = r["kind"] + ("" if r["engine_used"] == r["kind"] else f" (ran {r['engine_used']})")
        rows.append([name, F(r["img_per_s"]), F(r["seconds"]), share, f"{r['img_per_s'] / nv['img_per_s']:.1f}x"])
    rows.append([nv["kind"], F(nv["img_per_s"]), F(nv["seconds"]),
                 f"decode {nv['decode_ms']:.1f} ms, transform {nv['transform_ms']:.1f} ms, forward "
                 f"{nv['forward_ms']:.1f} ms per image", "1.0x"])

    cost_rows = []
    for r in [res["costs"], nv]:
        tot = r["decode_ms"] + r["transform_ms"] + r["forward_ms"]
        cost_rows.append([r["kind"], f"{r['decode_ms']:.1f} ({r['decode_ms'] / tot:.0%})",
                          f"{r['transform_ms']:.1f} ({r['transform_ms'] / tot:.0%})",
                          f"{r['forward_ms']:.1f} ({r['forward_ms'] / tot:.0%})", f"{tot:.1f}"])

    rates, build, auto_kind, flops = res["forward"]
    best = max(rates.values()) if rates else None
    limit = ceiling["best"] * 1e9 / flops
    fwd_rows = [[k + (" (auto)" if k == auto_kind else ""), F(v), f"{v / best:.0%}", f"{v / limit:.1%}", F(build.get(k))]
                for k, v in sorted(rates.items(), key=lambda kv: -kv[1])]

    aug_rows = []
    import numpy as np

    headline = [r for r in res["aug"] if r["fit"] == HEAD_FITS[0][0] and r["dataset"] == res["aug"][0]["dataset"]]
    for k in sorted({r["K"] for r in headline}):
        rs = [r for r in headline if r["K"] == k]
        aug_rows.append([f"precompute_aug={k}", f"{np.mean([r['accuracy'] for r in rs]):.3f}",
                         f"{np.mean([r['val_loss'] for r in rs]):.4f}",
                         f"{np.mean([r.get('tta_accuracy', np.nan) for r in rs]):.3f}",
                         f"{np.mean([r.get('tta_loss', np.nan) for r in rs]):.4f}",
                         ", ".join(f"{r['accuracy']:.3f}/{r['val_loss']:.3f}" for r in rs),
                         F(float(np.mean([r["fit_s"] for r in rs])))])
    sweep_rows, verdicts = [], {}
    for c in C.k_comparison(res["aug"], cfg.k):
        acc, loss = c["accuracy"], c["val_loss"]
        both = acc[1] >= acc[0] and loss[1] < loss[0]
        verdicts.setdefault(c["dataset"], []).append(c["better"])
        sweep_rows.append([c["dataset"], f"`{c['fit']}`", f"{acc[0]:.4f} / {loss[0]:.4f}", f"{acc[1]:.4f} / {loss[1]:.4f}",
                           f"{acc[1] - acc[0]:+.4f}", f"{loss[1] - loss[0]:+.4f}",
                           "both better" if both else "yes" if c["better"] else "no"])
    verdict_lines = [f"- {d}: K={cfg.k} raises accuracy or lowers loss in {sum(v)} of {len(v)} head schedules."
                     for d, v in verdicts.items()]
    t = res["tta"]
    tta_rows = [
        ["first `learn.TTA()` (computes the 4 views' activations)", F(t["first_s"]), "", ""],
        ["second `learn.TTA()` (cached)", F(t["second_s"]), f"{t['repeat'][0]:.2g}", f"{t['repeat'][1]:.1%}"],
        ["new learner, cache warm on disk", F(t["disk_s"]), f"{t['disk'][0]:.2g}", f"{t['disk'][1]:.1%}"],
        ["new learner, cold cache (recomputed)", "", f"{t['cold'][0]:.2g}", f"{t['cold'][1]:.1%}"],
        ["no cache: full model over the augmented images", F(t["uncached_s"]), f"{t['uncached'][0]:.2g}",
         f"{t['uncached'][1]:.1%}"],
    ]
    goal_e2e = best_e2e / nv["img_per_s"] if best_e2e else None
    auto_rate = rates.get(auto_kind)
    lines = [
        *C.section_head("Feature engine: precompute, augmented activations, cached TTA", cfg.tiny,
                        f"Dataset `{cfg.data_label}` ({res['n_train']} train + {res['n_valid']} validation images), "
                        f"{cfg.size} px, efficientnet_lite0 with the packaged ImageNet weights.", cmdline, facts, ceiling),
        "### End to end: JPEG files to cached activations (train + validation)",
        "",
        C.md_table(["engine", "images/s", "seconds", "loader wait / forward / write / engine build", "vs naive"], rows),
        "",
        f"- best end to end, first run on this machine (the engine exported and compiled inside the clock): "
        f"{F(best_e2e)} images/s, **{goal_e2e:.1f}x** the naive baseline (goal: at least 5x)." if goal_e2e else "",
        f"- best end to end with the ONNX export already on disk (every later run with the same backbone, "
        f"whatever the data): {F(best_e2e_cached)} images/s, **{best_e2e_cached / nv['img_per_s']:.1f}x** the naive "
        f"baseline." if best_e2e_cached else "",
        "- the shares are of the wall time; the loader wait is time the forward pass waited for decoding and "
        "transforms (clean passes decode in a pool of threads, two batches ahead; the engine normalises the uint8 "
        "batches itself). Engine build is the ONNX export (read from `$VISIONTUNE_CACHE/engines` when cached) and "
        "compile, included in the end-to-end time (`torch.compile` compiles on its first batch, so its "
        "compile time shows under forward).",
        "",
        "### Where the time goes, per image, one process",
        "",
        C.md_table(["pipeline", "decode ms", "transform ms", "forward ms", "total ms"], cost_rows),
        "",
        "- visiontune decodes JPEGs in draft mode straight to near the target size and keeps uint8 until the batch; "
        "the naive loop decodes at full size and converts each image to float.",
        "",
        "### Pure forward rate (one batch of 32, best of "
        f"{cfg.repeats}), per engine",
        "",
        C.md_table(["engine", "images/s", "vs best", "fraction of limit", "build + first call s"], fwd_rows),
        "",
        f"- `'auto'` picks `{auto_kind}` here: {auto_rate / best:.0%} of the best engine's rate (goal: at least 80%)."
        if auto_rate and best else f"- `'auto'` picks `{auto_kind}` here.",
        f"- limit: {ceiling['best']:.0f} GFLOP/s / {flops / 1e9:.2f} GFLOP per image = {limit:.0f} images/s.",
        "",
        f"### Augmented activations (K={cfg.k}) against none (K=0): head only, `fit(1e-2, {cfg.head_epochs})`",
        "",
        C.md_table(["cache", "accuracy (mean)", "validation loss (mean)", "TTA accuracy (mean)", "TTA loss (mean)",
                    "per seed: accuracy/loss", "fit s"], aug_rows),
        "",
        f"- seeds {list(cfg.seeds)}; each seed starts both runs from the same head initialisation and the same "
        "head epochs. K augmented views of every training image are cached once; each head epoch samples one "
        "view per image (clean or augmented).",
        "",
        f"#### K={cfg.k} against K=0 over several head schedules (mean of the seeds above)",
        "",
        C.md_table(["dataset", "head fit", "K=0 accuracy / loss", f"K={cfg.k} accuracy / loss", "accuracy change",
                    "loss change", "goal met (accuracy up or loss down)"], sweep_rows),
        "",
        *verdict_lines,
        "- the views are `transforms_side_on` with `max_zoom=1.1` (the lesson's); dog_breeds_sample is split "
        "with `get_cv_idxs(n, seed=42)` (800 train, 200 validation, 120 breeds).",
        "",
        "### Cached TTA (4 augmented views + the clean one, validation set)",
        "",
        C.md_table(["call", "seconds", "max abs prob. difference vs cached", "same predicted class"], tta_rows),
        "",
        f"- speed-up of the cached call: **{t['speedup']:.0f}x** over the first call, "
        f"{t['speedup_vs_uncached']:.0f}x over an uncached pass of the full model; TTA accuracy {t['tta_accuracy']:.3f}.",
        "- differences with the uncached pass come from the engine (ONNX / OpenVINO) against eager PyTorch "
        "on the same augmented images; see the tolerance in `visiontune/features/engine.py`.",
    ]
    return "\n".join(line for line in lines if line is not None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, nargs="?", default=C.HYMENOPTERA)
    ap.add_argument("--valid", default="val")
    ap.add_argument("--size", type=int, default=None, help="default 224 (tiny: 64)")
    ap.add_argument("--engines", default=None,
                    help="comma-separated engine kinds (default: every available one; tiny: all but torch-compile)")
    ap.add_argument("--k", type=int, default=4, help="augmented views per training image")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated seeds for the K comparison (default 0,...,7; tiny: 0)")
    ap.add_argument("--k-data", type=Path, default=C.DOG_BREEDS,
                    help="a second dataset for the K comparison (a CSV layout: train/ + labels.csv; default "
                         "dog_breeds_sample; skipped with --tiny or when missing)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help=C.OUT_HELP)
    ap.add_argument("--json", type=Path, default=None)
    cfg = ap.parse_args(argv)
    cfg.size = cfg.size or (64 if cfg.tiny else 224)
    cfg.seeds = [int(s) for s in (cfg.seeds or ("0" if cfg.tiny else "0,1,2,3,4,5,6,7")).split(",")]
    if cfg.tiny or cfg.k_data is not None and not cfg.k_data.is_dir():
        cfg.k_data = None
    cfg.head_epochs = 3
    cfg.repeats = 2 if cfg.tiny else 3
    cfg.data_label = str(cfg.data)
    from visiontune.features.engine import available_engines

    if cfg.engines:
        cfg.engines = cfg.engines.split(",")
    else:
        cfg.engines = [k for k in available_engines() if not (cfg.tiny and k == "torch-compile")]
    cmdline = C.command_line()
    cfg.out = C.resolve_out(cfg.out, cfg.tiny)
    work = Path(tempfile.mkdtemp(prefix="vt-feat-"))
    try:
        if cfg.tiny:
            cfg.data = C.make_tiny_dataset(cfg.data.resolve(), work / "data", per_class=8, splits=("train", cfg.valid))
        facts = C.machine_facts()
        ceiling = C.machine_ceiling(tiny=cfg.tiny)
        data = make_data(cfg)
        cfg.n_images = len(data.trn_ds) + len(data.val_ds)
        files = [Path(data.path) / f for f in [*data.trn_ds.fnames, *data.val_ds.fnames]]
        for f in files:  # warm the page cache so the first contender pays no disk reads
            f.read_bytes()
        res: dict = {"n_train": len(data.trn_ds), "n_valid": len(data.val_ds)}
        print("naive baseline", flush=True)
        res["naive"] = naive(cfg, files)
        print(f"  {res['naive']['img_per_s']:.1f} img/s", flush=True)
        res["e2e"] = []
        for kind in cfg.engines:
            print(f"end to end: {kind}", flush=True)
            for export_cached in ((False, True) if kind in ("openvino", "onnxruntime") else (False,)):
                r = end_to_end(cfg, data, kind, work, export_cached=export_cached)
                res["e2e"].append(r)
                print(f"  {r['kind']}: {r['img_per_s']:.1f} img/s ({r['seconds']:.1f} s, build {r['build_s']:.1f} s)",
                      flush=True)
        print("pure forward rates", flush=True)
        res["forward"] = pure_forward(cfg)
        print(f"  {res['forward'][0]}, auto = {res['forward'][2]}", flush=True)
        best_kind = max(res["forward"][0], key=res["forward"][0].get) if res["forward"][0] else "torch"
        print(f"single-process costs ({res['forward'][2]})", flush=True)
        res["costs"] = single_process_costs(cfg, data, res["forward"][2] if res["forward"][2] in cfg.engines else best_kind)
        print(f"augmented activations K={cfg.k} vs 0", flush=True)
        res["aug"], learn = augmented(cfg, data, work, "tiny" if cfg.tiny else Path(cfg.data).resolve().name,
                                      HEAD_FITS[:1] if cfg.tiny else HEAD_FITS)
        if cfg.k_data is not None:
            print(f"augmented activations K={cfg.k} vs 0 on {cfg.k_data.name}", flush=True)
            dog_rows, _ = augmented(cfg, make_dog_data(cfg), work, cfg.k_data.name, main_dataset=False)
            res["aug"] += dog_rows
        for r in res["aug"]:
            print(f"  {r['dataset']} {r['fit']} K={r['K']} seed {r['seed']}: accuracy {r['accuracy']:.3f}, "
                  f"val loss {r['val_loss']:.4f}", flush=True)
        print("cached TTA", flush=True)
        res["tta"] = cached_tta(cfg, data, learn, work)
        print(f"  first {res['tta']['first_s']:.2f} s, second {res['tta']['second_s']:.4f} s", flush=True)
        augmented_tta(res["aug"])
        for r in res["aug"]:
            if "tta_accuracy" in r:
                print(f"  K={r['K']} seed {r['seed']}: TTA accuracy {r['tta_accuracy']:.3f}, "
                      f"TTA loss {r['tta_loss']:.4f}")
        payload = {"facts": facts, "ceiling": ceiling, "command": cmdline, "tiny": cfg.tiny, "results": res}
        json_path = cfg.json or (C.REPO / "bench" / "results" / f"features{'_tiny' if cfg.tiny else ''}.json")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        C.write_json(json_path, payload)
        C.update_section(cfg.out, SECTION, render(res, facts, ceiling, cfg, cmdline))
        print(f"wrote {cfg.out} ({SECTION}) and {json_path}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
