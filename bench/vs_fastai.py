"""Time to accuracy: visiontune against fastai 2 on one folder dataset, in one run, on one machine.

    python bench/vs_fastai.py ../shared/datasets/hymenoptera --train train --valid val
    python bench/vs_fastai.py DATA --tiny          # a handful of images, one epoch: checks the harness

Contenders, each in its own fresh process (so its peak memory is its own):

* ``fastai``: ``ImageDataLoaders.from_folder`` with ``Resize(size)`` + ``aug_transforms(size=size)``
  (+ ``Normalize`` with mean = std = 0.5, the backbone's statistics, since fastai adds none for an
  architecture it does not know), ``vision_learner`` on timm's ``tf_efficientnet_lite0`` with the
  packaged ImageNet weights (the same file visiontune loads), ``fine_tune(3)``, then ``tta()``;
* ``visiontune`` (``visiontune train DATA --out RUN``, default settings), ``visiontune --fast``, and
  ``visiontune --budget S`` with ``S`` = fastai's training time x ``--budget-fraction`` (1/10).

Timing, two clocks for every contender:

* **train**: from the data to a trained model. fastai: ``fine_tune`` alone (data loaders and model
  built before the clock starts). visiontune: the recipe's own laps in ``progress.json``
  (``timings``): building the data and the model, precompute, lr_find and every fit; not the
  evaluation (TTA), the export or the report. Conservative for visiontune: its clock includes
  scanning the folder and building the model, fastai's does not.
* **whole process**: the contender's process from start to exit: Python start-up, imports, and for
  fastai the loaders, ``fine_tune`` and ``tta()``; for visiontune everything ``visiontune train``
  does, TTA, export and report included.

Each visiontune run gets an empty ``VISIONTUNE_CACHE`` (no cached activations, no cached ONNX
export), so nothing is reused from earlier runs. Peak memory is the
peak resident set of the contender's process tree (``wait4``), in MB.

Writes the table to the ``vs_fastai`` section of ``docs/benchmarks.md`` (``--out``) and the raw
numbers to ``--json`` (default: ``bench/results/vs_fastai.json``).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SECTION = "vs_fastai"
ARCH = "efficientnet_lite0"
# laps that are not the recipe's training: the process's start-up (Python, imports) and what comes after
AFTER_TRAINING = ("startup", "evaluate_tta", "export", "report")


# ============================================================================ fastai contender (own process)
def fastai_arch(pretrained: bool = True):
    """timm's tf_efficientnet_lite0 with the packaged ImageNet weights (never downloads).

    fastai's ``vision_learner`` calls ``arch(pretrained=...)``, then cuts the model before its last
    child that pools (``cut=-2``: before ``global_pool`` and ``classifier``) and adds its own head.
    """
    from visiontune.models.backbone import create_imagenet_model

    model, _source = create_imagenet_model(ARCH, pretrained=pretrained)
    return model


def run_fastai(args) -> dict:
    import numpy as np
    import torch
    from fastai.vision.all import (ImageDataLoaders, Normalize, Resize, accuracy, aug_transforms, set_seed,
                                   vision_learner)

    set_seed(args.seed, reproducible=False)
    t_start = time.perf_counter()
    size = args.size
    dls = ImageDataLoaders.from_folder(
        args.data, train=args.train, valid=args.valid, item_tfms=Resize(size),
        batch_tfms=[*aug_transforms(size=size), Normalize.from_stats([0.5] * 3, [0.5] * 3)],
        bs=args.fastai_bs, seed=args.seed, **({} if args.fastai_workers is None else {"num_workers": args.fastai_workers}))
    learn = vision_learner(dls, fastai_arch, metrics=accuracy, cut=-2)
    body_out = learn.model[0](torch.zeros(1, 3, size, size)).shape[1]
    assert body_out == 1280, f"fastai's cut gave {body_out} channels, expected 1280"
    t_built = time.perf_counter()
    with learn.no_bar():
        t0 = time.perf_counter()
        learn.fine_tune(args.epochs, freeze_epochs=1)
        train_s = time.perf_counter() - t0
        preds, targs = learn.get_preds()
        t1 = time.perf_counter()
        tta_preds, tta_targs = learn.tta()
        tta_s = time.perf_counter() - t1
    p = preds.numpy().astype(np.float64)
    y = targs.numpy()
    tp = tta_preds.numpy().astype(np.float64)
    return {
        "contender": "fastai",
        "train_s": train_s,
        "setup_s": t_built - t_start,
        "tta_s": tta_s,
        "accuracy": float((p.argmax(1) == y).mean()),
        "tta_accuracy": float((tp.argmax(1) == tta_targs.numpy()).mean()),
        "log_loss": log_loss(p, y),
        "tta_log_loss": log_loss(tp, tta_targs.numpy()),
        "n_train": len(dls.train_ds),
        "n_valid": len(dls.valid_ds),
        "torch_threads": torch.get_num_threads(),
        "fastai_epochs": f"fine_tune({args.epochs}, freeze_epochs=1), bs={args.fastai_bs}",
    }


def log_loss(probs, y) -> float:
    import numpy as np

    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-15, 1.0)
    probs = probs / probs.sum(1, keepdims=True)
    return float(-np.mean(np.log(probs[np.arange(len(y)), np.asarray(y, dtype=int)])))


# ============================================================================ visiontune contender
def visiontune_cmd(data: Path, run_dir: Path, args, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "visiontune.cli", "train", str(data), "--out", str(run_dir)]
    if args.valid != "valid":
        cmd += ["--val-name", args.valid]
    if args.size != 224:
        cmd += ["--size", str(args.size)]
    return cmd + list(args.vt_args) + extra


def read_run(run_dir: Path) -> dict:
    """Accuracy, TTA accuracy and log loss of a ``visiontune train`` run folder.

    ``progress.json``'s ``final`` block holds the kept model's accuracy, TTA accuracy and
    validation loss (NLL of the single view = its log loss); ``val_predictions.csv`` (per-image
    probabilities of the single view, plus the TTA class) is scored independently as a check.
    """
    out: dict = {}
    prog = run_dir / "progress.json"
    if prog.is_file():
        try:
            progress = json.loads(prog.read_text())
        except ValueError:
            progress = {}
        final = progress.get("final") or {}
        out["kept_phase"] = (progress.get("best") or {}).get("phase")
        out["skipped_steps"] = [f"{x.get('step')}: {x.get('reason')}" if isinstance(x, dict) else str(x)
                                for x in progress.get("skipped") or []]
        for src, dst in (("accuracy", "accuracy"), ("tta_accuracy", "tta_accuracy"), ("val_loss", "log_loss"),
                         ("tta_views", "tta_views"), ("seconds", "recipe_seconds")):
            if final.get(src) is not None:
                out[dst] = float(final[src])
        timings = progress.get("timings") or {}
        if timings:
            out["timings"] = timings
            out["recipe_train_s"] = float(sum(v for k, v in timings.items() if k not in AFTER_TRAINING))
    preds = run_dir / "val_predictions.csv"
    if preds.is_file():
        acc, ll, tta_acc, n = _score_predictions(preds)
        # csv_log_loss is only a cross-check: the file rounds probabilities to 7 decimals, so a confident
        # mistake reads as p = 0 (clipped to 1e-15); progress.json's val_loss comes from the log-probs.
        out["csv_accuracy"], out["csv_log_loss"], out["n_valid"] = acc, ll, n
        if tta_acc is not None:
            out["csv_tta_accuracy"] = tta_acc
        out.setdefault("accuracy", acc)
        out.setdefault("log_loss", ll)
        if tta_acc is not None:
            out.setdefault("tta_accuracy", tta_acc)
    return out


def _score_predictions(path: Path) -> tuple[float, float, float | None, int]:
    """(accuracy, log loss, TTA accuracy or None, n) of a ``val_predictions.csv`` (single-label)."""
    import numpy as np

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return float("nan"), float("nan"), None, 0
    pcols = [c for c in rows[0] if c.startswith("p_")]
    classes = [c[2:] for c in pcols]
    probs = np.array([[float(r[c]) for c in pcols] for r in rows])
    y = np.array([classes.index(r["target"]) if r["target"] in classes else int(r["target"]) for r in rows])
    tta_acc = None
    if "tta_pred" in rows[0]:
        tta_acc = float(np.mean([r["tta_pred"] == r["target"] for r in rows]))
    return float((probs.argmax(1) == y).mean()), log_loss(probs, y), tta_acc, len(rows)


# ============================================================================ orchestration
def _ratio(t, ref) -> str | None:
    if not ref or not t:
        return None
    return f"1/{ref / t:.1f}" if t < ref else f"{t / ref:.2f}x"


def contender_rows(results: list[dict], fastai: dict | None) -> list[list]:
    rows = []
    for r in results:
        t, w = r.get("train_s"), r.get("wall_s")
        if r["contender"] == "fastai":
            ratio = whole_ratio = "1"
        else:
            ratio = _ratio(t, (fastai or {}).get("train_s"))
            whole_ratio = _ratio(w, (fastai or {}).get("wall_s"))
        status = "" if r.get("rc", 0) == 0 else f" (failed: rc {r.get('rc')})"
        rows.append([
            r["contender"] + status, C.fmt(t), ratio, C.fmt(r.get("accuracy")), C.fmt(r.get("tta_accuracy")),
            C.fmt(r.get("log_loss")), C.fmt(r.get("peak_rss_mb")), C.fmt(w), whole_ratio,
        ])
    return rows


def render(results: list[dict], facts: dict, args, cmdline: str) -> str:
    fastai = next((r for r in results if r["contender"] == "fastai" and r.get("rc", 0) == 0), None)
    lines = [
        *C.section_head("visiontune vs fastai 2: time to accuracy", args.tiny,
                        f"Dataset `{args.data_label}` (train `{args.train}`, validation `{args.valid}`), {args.size} px, "
                        "efficientnet_lite0 with the packaged ImageNet weights for every contender.", cmdline, facts),
        C.md_table(["contender", "train s", "train vs fastai", "accuracy", "TTA accuracy", "log loss",
                    "peak RSS MB", "whole process s", "whole vs fastai"], contender_rows(results, fastai)),
        "",
        "- fastai: `train s` is `fine_tune` alone (loaders and model built before the clock starts); "
        "`whole process s` adds Python start-up, imports, building the loaders and model, and `tta()` "
        "(4 augmented passes blended with the plain predictions, fastai's default). `log loss` is on the plain "
        "(non-TTA) predictions.",
        "- visiontune: `train s` is the recipe's training laps from `progress.json` (building the data and "
        "model, precompute, lr_find, every fit); `whole process s` is the whole `visiontune train` command "
        "(start-up, imports, training, TTA, export and report), with an empty cache. Accuracy, TTA accuracy "
        "and log loss (the validation NLL of the single view) come from the run folder (`progress.json`, "
        "checked against `val_predictions.csv`).",
        "- `peak RSS MB`: the largest resident set of the contender's process or any of its worker processes.",
    ]
    for r in results:
        if r.get("command"):
            note = ""
            if r.get("kept_phase"):
                note += f"; kept the weights of phase `{r['kept_phase']}`"
            if r.get("skipped_steps"):
                note += "; skipped: " + "; ".join(r["skipped_steps"])
            if r.get("timings"):
                note += "; laps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if v >= 0.05)
            lines.append(f"- `{r['contender']}` ran: `{r['command']}`{note}")
    goals = goal_lines(results, fastai)
    if goals:
        lines += ["", "Goals (issue 6), measured in this run:", ""] + goals
    return "\n".join(lines)


def goal_lines(results, fastai) -> list[str]:
    if not fastai:
        return []
    out = []
    by = {r["contender"]: r for r in results}
    d = by.get("visiontune")
    f = by.get("visiontune --fast")

    def ok(x):
        return "met" if x else "NOT met"

    def clocks(r, div) -> str:
        parts = [f"train {r['train_s']:.1f} s vs fastai/{div} = {fastai['train_s'] / div:.1f} s: "
                 f"**{ok(r['train_s'] <= fastai['train_s'] / div)}**"]
        if r.get("wall_s") and fastai.get("wall_s"):
            parts.append(f"whole process {r['wall_s']:.1f} s vs fastai's whole process/{div} = "
                         f"{fastai['wall_s'] / div:.1f} s: **{ok(r['wall_s'] <= fastai['wall_s'] / div)}**")
        return "; ".join(parts)

    if d and d.get("tta_accuracy") is not None and d.get("train_s"):
        acc = d.get("tta_accuracy")
        out.append(f"- default recipe: TTA accuracy {acc:.3f} vs fastai's {fastai['tta_accuracy']:.3f} "
                   f"(**{ok(acc >= fastai['tta_accuracy'])}**); {clocks(d, 10)}")
    if f and f.get("accuracy") is not None and f.get("train_s"):
        acc = f["accuracy"]
        out.append(f"- `--fast`: accuracy {acc:.3f} (single view) vs fastai's {fastai['accuracy']:.3f} "
                   f"(**{ok(acc >= fastai['accuracy'])}**); {clocks(f, 20)}")
    return out


def warm_page_cache(data: Path) -> None:
    """Read every file once so the first contender does not pay for a cold disk."""
    for p in data.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def run_contender_fastai(args, data: Path, work: Path) -> dict:
    out_json = work / "fastai.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), str(data), "--train", args.train, "--valid", args.valid,
           "--size", str(args.size), "--epochs", str(args.epochs), "--fastai-bs", str(args.fastai_bs),
           "--seed", str(args.seed), "--_fastai-worker", str(out_json)]
    if args.fastai_workers is not None:
        cmd += ["--fastai-workers", str(args.fastai_workers)]
    m = C.run_measured(cmd, work / "fastai.log", timeout=args.timeout)
    res = {"contender": "fastai", **m}
    if m["rc"] == 0 and out_json.is_file():
        res.update(C.read_json(out_json))
    else:
        res["error"] = C.tail(work / "fastai.log")
        print(f"fastai failed (rc {m['rc']}):\n{res['error']}", file=sys.stderr)
    res["command"] = "fastai: from_folder + vision_learner + " + (res.get("fastai_epochs") or f"fine_tune({args.epochs})")
    return res


def vt_data_view(data: Path, args, work: Path) -> Path:
    """``visiontune train`` reads DATA/train: link other training folder names into a view folder."""
    if args.train == "train":
        return data
    view = work / "vt-data"
    view.mkdir(parents=True, exist_ok=True)
    for name, target in (("train", args.train), (args.valid, args.valid)):
        link = view / name
        if not link.exists():
            link.symlink_to(data / target, target_is_directory=True)
    return view


def run_contender_vt(name: str, extra: list[str], args, data: Path, work: Path) -> dict:
    slug = name.replace(" ", "_").replace("-", "")
    run_dir = work / f"run_{slug}"
    cache = work / f"cache_{slug}"
    cmd = visiontune_cmd(vt_data_view(data, args, work), run_dir, args, extra)
    env = {"VISIONTUNE_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    m = C.run_measured(cmd, work / f"{slug}.log", env=env, timeout=args.timeout, cwd=str(C.REPO))
    shown = ["visiontune", "train", "DATA", "--out", "RUN", *cmd[cmd.index("train") + 4:]]
    res = {"contender": name, **m, "train_s": m["wall_s"], "command": " ".join(shown)}
    if m["rc"] == 0:
        res.update(read_run(run_dir))
        res["train_s"] = res.get("recipe_train_s", m["wall_s"])
    else:
        res["error"] = C.tail(work / f"{slug}.log")
        print(f"{name} failed (rc {m['rc']}):\n{res['error']}", file=sys.stderr)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="dataset folder: DATA/<train>/<class>/*, DATA/<valid>/<class>/*")
    ap.add_argument("--train", default="train")
    ap.add_argument("--valid", default="val")
    ap.add_argument("--size", type=int, default=None, help="image size (default 224; tiny: 64)")
    ap.add_argument("--epochs", type=int, default=None, help="fastai fine_tune epochs (default 3; tiny: 1)")
    ap.add_argument("--fastai-bs", type=int, default=None, help="fastai batch size (default 64, its own default; tiny: 4)")
    ap.add_argument("--fastai-workers", type=int, default=None,
                    help="fastai loader workers (default: fastai's own, one per core; tiny: 0)")
    ap.add_argument("--budget-fraction", type=float, default=0.1, help="visiontune --budget = fastai's time x this")
    ap.add_argument("--tiny", action="store_true", help="a handful of images, one epoch, 64 px: checks the harness")
    ap.add_argument("--tiny-per-class", type=int, default=4)
    ap.add_argument("--skip-fastai", action="store_true", help="visiontune only (no ratio; --budget from --budget-s)")
    ap.add_argument("--budget-s", type=float, default=None, help="budget when fastai is skipped")
    ap.add_argument("--only", default=None, help="comma-separated contenders: fastai,default,fast,budget")
    ap.add_argument("--vt-args", default="", help="extra arguments for every visiontune run (quoted string)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--section", default=SECTION, help=f"section of --out to write (default {SECTION}; e.g. "
                    "vs_fastai_cifar10 for a second data set)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per contender")
    ap.add_argument("--out", type=Path, default=None, help=C.OUT_HELP)
    ap.add_argument("--json", type=Path, default=None, help="raw results (default bench/results/vs_fastai[_tiny].json)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep run folders and logs here (default: a temp dir)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="only re-render the markdown section from a results JSON this script wrote")
    ap.add_argument("--_fastai-worker", dest="fastai_worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.size = args.size or (64 if args.tiny else 224)
    args.epochs = args.epochs or (1 if args.tiny else 3)
    args.fastai_bs = args.fastai_bs or (4 if args.tiny else 64)
    if args.tiny and args.fastai_workers is None:
        args.fastai_workers = 0
    import shlex

    args.vt_args = shlex.split(args.vt_args)

    if args.fastai_worker is not None:  # inside the fastai contender's own process
        C.write_json(args.fastai_worker, run_fastai(args))
        return 0

    if args.from_json is not None:
        payload = C.read_json(args.from_json)
        for k, v in (payload.get("args") or {}).items():
            setattr(args, k, v)
        args.tiny = payload.get("tiny", args.tiny)
        args.data_label = getattr(args, "data_label", None) or str(args.data)
        args.out = C.resolve_out(args.out, args.tiny)
        C.update_section(args.out, args.section, render(payload["results"], payload["facts"], args, payload["command"]))
        print(f"wrote {args.out} ({args.section}) from {args.from_json}")
        return 0

    cmdline = C.command_line()
    args.out = C.resolve_out(args.out, args.tiny)
    data = args.data.resolve()
    if not (data / args.train).is_dir() or not (data / args.valid).is_dir():
        ap.error(f"{data} needs {args.train}/ and {args.valid}/ folders with one sub-folder per class")
    args.data_label = str(args.data)
    keep = args.workdir is not None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.tiny:
            data = C.make_tiny_dataset(data, work / "data", per_class=args.tiny_per_class,
                                       splits=(args.train, args.valid))
            args.vt_args = args.vt_args or tiny_vt_args()
        facts = C.machine_facts()
        warm_page_cache(data)
        only = set((args.only or "fastai,default,fast,budget").split(","))
        results: list[dict] = []
        fastai_s = args.budget_s
        if "fastai" in only and not args.skip_fastai:
            print("== fastai", flush=True)
            r = run_contender_fastai(args, data, work)
            results.append(r)
            if r["rc"] == 0:
                fastai_s = r["train_s"]
                print(f"   fastai: {r['train_s']:.1f} s, accuracy {r['accuracy']:.3f}, TTA {r['tta_accuracy']:.3f}",
                      flush=True)
        plan = []
        if "default" in only:
            plan.append(("visiontune", []))
        if "fast" in only:
            plan.append(("visiontune --fast", ["--fast"]))
        if "budget" in only and fastai_s:
            # tiny mode: fastai/10 would be less than visiontune's start-up; 30 s lets every stage run
            budget = max(30.0 if args.tiny else 1.0, fastai_s * args.budget_fraction)
            plan.append((f"visiontune --budget {budget:.1f}", ["--budget", f"{budget:.1f}"]))
        for name, extra in plan:
            print(f"== {name}", flush=True)
            r = run_contender_vt(name, extra, args, data, work)
            results.append(r)
            print(f"   {name}: {r['wall_s']:.1f} s, accuracy {r.get('accuracy')}, TTA {r.get('tta_accuracy')}",
                  flush=True)
        payload = {"facts": facts, "command": cmdline, "tiny": args.tiny, "results": results,
                   "args": {"data_label": args.data_label, "train": args.train, "valid": args.valid,
                            "size": args.size}}
        json_path = args.json or (C.REPO / "bench" / "results" / f"vs_fastai{'_tiny' if args.tiny else ''}.json")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        C.write_json(json_path, payload)
        C.update_section(args.out, args.section, render(results, facts, args, cmdline))
        print(f"wrote {args.out} ({args.section}) and {json_path}")
        return 0 if all(r.get("rc", 0) == 0 for r in results) else 1
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def tiny_vt_args() -> list[str]:
    """visiontune arguments for the tiny harness check: one epoch per phase, small batches, 1 TTA view."""
    return ["--bs", "4", "--precompute-aug", "1", "--head-epochs", "1", "--aug-epochs", "1", "--max-cycles", "1",
            "--tta", "1", "--unfrozen-budget", "30", "--num-workers", "0", "--engine", "torch"]


if __name__ == "__main__":
    sys.exit(main())
