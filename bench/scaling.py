"""How the default recipe scales with the number of training images, beside the engine's pure forward rate.

    python bench/scaling.py                                  # cifar10_6k: 500, 1000, 2000, 5000 training images
    python bench/scaling.py DATA --sizes 500,5000 --budget 60   # also: is --budget met at each size?
    python bench/scaling.py --tiny                           # a few images at 64 px: checks the harness

For each size N, the first N/classes training images of every class (and the whole validation set) are
copied into a fresh folder, and ``visiontune train SUBSET --out RUN`` runs in its own process with an
empty ``VISIONTUNE_CACHE``. Each row gives:

* ``whole s``: the whole process (start-up, imports, training, TTA, export, report), from ``wait4``;
* ``img/s end to end``: (training + validation images) / whole seconds;
* ``forward img/s``: the engine's pure forward rate, measured in this same run (the ``'auto'`` engine the
  training pass uses, on a batch already in memory, best of 3), and ``e2e / forward``, the fraction of it the
  whole run achieves; ``forward floor s``, one forward pass of every image and nothing else;
* peak RSS of the process tree, the accuracy and TTA accuracy, what the recipe chose (augmented views, TTA
  views, the unfrozen phase) and where the time went (``progress.json``'s laps).

With ``--budget S`` each size also runs ``visiontune train SUBSET --budget S``; its row gives the whole
process time against S (issue 16: within 10%).

Writes the ``scaling`` section of ``docs/benchmarks.md`` (``--out``) and the raw numbers to ``--json``
(default ``bench/results/scaling.json``).
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

SECTION = "scaling"
CIFAR = C.REPO.parent / "shared" / "datasets" / "cifar10_6k"
ARCH = "efficientnet_lite0"


def make_subset(src: Path, dst: Path, n_train: int, train: str, valid: str) -> tuple[int, int]:
    """Copy the first ``n_train / classes`` images of each class of ``src/train`` and all of ``src/valid``."""
    classes = sorted(p.name for p in (src / train).iterdir() if p.is_dir())
    per_class = max(1, n_train // len(classes))
    counts = [0, 0]
    for split, limit, i in ((train, per_class, 0), (valid, None, 1)):
        for c in classes:
            files = sorted(f for f in (src / split / c).iterdir() if f.is_file())
            out = dst / split / c
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:limit]:
                shutil.copyfile(f, out / f.name)
                counts[i] += 1
    return counts[0], counts[1]


def forward_rates(size: int, bs: int = 32, batches: int = 4) -> dict:
    """Images per second of the training pass's engine (``'auto'``) and of the fp32 evaluation engine."""
    import torch
    from torch import nn

    from visiontune.features.engine import create_engine
    from visiontune.models.backbone import create_body

    body = create_body(ARCH)
    module = nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.randn(bs, 3, size, size)
    out = {}
    for name, precision in (("train_pass", "auto"), ("eval_fp32", "fp32")):
        engine = create_engine(module, "auto", example_input_shape=(bs, 3, size, size), n_images=bs * batches * 4,
                               precision=precision)
        engine(x)  # warm-up
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(batches):
                engine(x)
            best = min(best, time.perf_counter() - t)
        out[name] = bs * batches / best
        out[name + "_engine"] = f"{engine.kind} {engine.precision}"
        engine.close()
    return out


def cifar_parser(doc: str) -> argparse.ArgumentParser:
    """The options the cifar10_6k benchmarks share: the data, its folders, the image size, tiny mode, --out."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default=str(CIFAR))
    ap.add_argument("--train", default="train")
    ap.add_argument("--valid", default="valid")
    ap.add_argument("--size", type=int, default=None, help="image size (224; 64 with --tiny)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default=None, help=C.OUT_HELP)
    return ap


def run_train(subset: Path, run: Path, cache: Path, logs: Path, extra: list[str], tag: str) -> dict:
    cmd = [sys.executable, "-m", "visiontune", "train", str(subset), "--out", str(run), *extra]
    shutil.rmtree(cache, ignore_errors=True)
    m = C.run_measured(cmd, logs / f"{tag}.log", env={"VISIONTUNE_CACHE": str(cache)})
    prog = C.read_json(run / "progress.json") if (run / "progress.json").is_file() else {}
    final, choices = prog.get("final") or {}, prog.get("choices") or {}
    plan = choices.get("unfrozen_plan") or {}
    return {**m, "command": " ".join(["visiontune", "train", "SUBSET", "--out", "RUN", *extra]),
            "accuracy": final.get("accuracy"), "tta_accuracy": final.get("tta_accuracy"),
            "tta_views": final.get("tta_views"), "aug_views": choices.get("precompute_aug"),
            "unfrozen_epochs": plan.get("epochs"), "laps": prog.get("timings") or {},
            "skipped": prog.get("skipped") or []}


def forward_floor(row: dict, rates: dict) -> float:
    """Seconds of one pure forward pass over the row's images: the least any run of that data can take.

    >>> forward_floor({"n_train": 600, "n_valid": 300}, {"train_pass": 600.0, "eval_fp32": 300.0})
    2.0
    """
    return row["n_train"] / rates["train_pass"] + row["n_valid"] / rates["eval_fp32"]


def render(rows, rates, facts, cfg, cmdline) -> str:
    lines = C.section_head("Scaling with the number of training images", cfg.tiny,
                           f"Dataset `{cfg.data}` (subsets of `{cfg.train}`, all of `{cfg.valid}`), {cfg.size} px, "
                           f"{ARCH}, default recipe.", cmdline, facts)
    lines.append(f"- engine's pure forward rate, measured in this run: training pass {rates['train_pass']:.0f} img/s "
                 f"({rates['train_pass_engine']}), fp32 evaluation {rates['eval_fp32']:.0f} img/s "
                 f"({rates['eval_fp32_engine']})")
    lines.append("")
    table = []
    for r in rows:
        if r["kind"] != "default":
            continue
        n = r["n_train"] + r["n_valid"]
        e2e = n / r["wall_s"]
        table.append([r["n_train"], r["n_valid"], C.fmt(r["wall_s"]), C.fmt(e2e), C.fmt(rates["train_pass"]),
                      C.fmt(e2e / rates["train_pass"], 2), C.fmt(forward_floor(r, rates)), C.fmt(r["peak_rss_mb"]),
                      C.fmt(r["accuracy"]), C.fmt(r["tta_accuracy"]), r["aug_views"], r["tta_views"],
                      r["unfrozen_epochs"]])
    lines.append(C.md_table(["train images", "valid images", "whole s", "img/s end to end", "forward img/s",
                             "e2e / forward", "forward floor s", "peak RSS MB", "accuracy", "TTA accuracy",
                             "aug views", "TTA views", "unfrozen epochs"], table))
    lines += ["", "`forward floor s`: one pure forward pass of every image and nothing else (training images at the "
                  "training pass's rate, validation images at the fp32 rate); no run can be faster than that."]
    lines.append("")
    lines.append("Where the time went (`progress.json` laps, seconds):")
    lines.append("")
    for r in rows:
        if r["kind"] == "default":
            laps = ", ".join(f"{k} {v:.1f}" for k, v in r["laps"].items() if v >= 0.05)
            lines.append(f"- {r['n_train']} images: {laps}")
    budget_rows = [r for r in rows if r["kind"] == "budget"]
    if budget_rows:
        lines += ["", "`--budget`: the whole process against the budget (goal: within 10%).", ""]
        lines.append(C.md_table(["train images", "budget s", "whole s", "whole / budget", "accuracy", "met"],
                                [[r["n_train"], C.fmt(r["budget"]), C.fmt(r["wall_s"]), C.fmt(r["wall_s"] / r["budget"], 2),
                                  C.fmt(r["accuracy"]), "yes" if r["wall_s"] <= 1.1 * r["budget"] else "NO"]
                                 for r in budget_rows]))
    last = [r for r in rows if r["kind"] == "default"]
    if last:
        r = last[-1]
        ratio = (r["n_train"] + r["n_valid"]) / r["wall_s"] / rates["train_pass"]
        lines += ["", f"Goal (issue 16): at the largest size, end-to-end images per second at least 0.6 of the "
                      f"engine's forward rate: {ratio:.2f} ({'**met**' if ratio >= 0.6 else '**NOT met**'})."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = cifar_parser(__doc__)
    ap.add_argument("--sizes", default=None, help="training images per run, comma-separated (500,1000,2000,5000)")
    ap.add_argument("--budget", type=float, default=None, help="also run each size with --budget SECONDS")
    ap.add_argument("--json", default=str(C.REPO / "bench" / "results" / "scaling.json"))
    cfg = ap.parse_args(argv)
    cfg.out = C.resolve_out(cfg.out, cfg.tiny)
    cfg.size = cfg.size or (64 if cfg.tiny else 224)
    sizes = [int(s) for s in (cfg.sizes or ("20,40" if cfg.tiny else "500,1000,2000,5000")).split(",")]
    cmdline = C.command_line()
    facts = C.machine_facts()
    rates = forward_rates(cfg.size, batches=1 if cfg.tiny else 4)
    work = Path(tempfile.mkdtemp(prefix="vt-scaling-"))
    rows = []
    try:
        src = Path(cfg.data)
        for n in sizes:
            subset = work / f"data{n}"
            n_trn, n_val = make_subset(src, subset, n, cfg.train, cfg.valid)
            if cfg.tiny:  # a handful of validation images is enough to check the harness
                for c in (subset / cfg.valid).iterdir():
                    for f in sorted(c.iterdir())[4:]:
                        f.unlink()
                n_val = sum(1 for _ in (subset / cfg.valid).rglob("*") if _.is_file())
            common = ["--val-name", cfg.valid, "--size", str(cfg.size)]
            runs = [("default", [])] + ([("budget", ["--budget", f"{cfg.budget:g}"])] if cfg.budget else [])
            for kind, extra in runs:
                r = run_train(subset, work / f"run{n}-{kind}", work / "cache", work / "logs", common + extra,
                              f"{n}-{kind}")
                if r["rc"] != 0:
                    print(C.tail(work / "logs" / f"{n}-{kind}.log"), file=sys.stderr)
                    raise SystemExit(f"visiontune train failed at {n} images ({kind})")
                rows.append({**r, "kind": kind, "n_train": n_trn, "n_valid": n_val, "budget": cfg.budget})
                print(f"{n} images ({kind}): {r['wall_s']:.1f} s, accuracy {r['accuracy']}", flush=True)
            shutil.rmtree(subset, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    C.write_json(cfg.json, {"facts": facts, "rates": rates, "rows": rows, "command": cmdline})
    C.update_section(cfg.out, SECTION, render(rows, rates, facts, cfg, cmdline))
    print(f"wrote {cfg.out} ({SECTION}) and {cfg.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
