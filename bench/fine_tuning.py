"""Does fine-tuning pay on a CPU? The default recipe against the same recipe given time for steps 5-8.

    python bench/fine_tuning.py                                   # cifar10_6k, --unfrozen-budget 75
    python bench/fine_tuning.py DATA --valid val --unfrozen-budget 40
    python bench/fine_tuning.py DATA --valid val --tiny           # a few images at 64 px: checks the harness

Each run is ``visiontune train DATA --out RUN`` in its own process with an empty ``VISIONTUNE_CACHE``:

* ``default``: no options. Steps 5-8 get as long as the head-only run takes in whole (``unfrozen_budget``'s
  default: the run so far plus its final TTA), so the run takes at most about twice the head-only time;
* ``head only``: ``--unfrozen-budget 0.001`` (steps 5-8 always skipped): the head-only model;
* ``fine-tuned``: ``--unfrozen-budget S``: steps 5-8 with S seconds, partial or full fine-tuning as the recipe
  measures and chooses (``visiontune/run/fine_tune.py``).

The goal (issue 16): the default recipe, fine-tuning included, at least 3 accuracy points above the head-only
model, in at most twice its whole-process time (``fine-tuned`` shows what a larger budget buys). Writes the
``fine_tuning`` section of ``docs/benchmarks.md`` (``--out``) and the raw numbers to ``--json`` (default
``bench/results/fine_tuning.json``).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from scaling import cifar_parser, make_subset, run_train  # noqa: E402

SECTION = "fine_tuning"


def render(rows: list[dict], facts: dict, cfg, cmdline: str) -> str:
    lines = C.section_head("Fine-tuning on a CPU: does it pay?", cfg.tiny,
                           f"Dataset `{cfg.data}` (`{cfg.train}` / `{cfg.valid}`), {cfg.size} px, efficientnet_lite0.",
                           cmdline, facts)
    table = []
    for r in rows:
        table.append([r["name"], f"`{r['command']}`", C.fmt(r["wall_s"]), C.fmt(r["accuracy"]),
                      C.fmt(r["tta_accuracy"]), r.get("mode") or "-", r["unfrozen_epochs"]])
    lines.append(C.md_table(["run", "command", "whole s", "accuracy", "TTA accuracy", "fine-tuning",
                             "fine-tuning epochs"], table))
    lines += ["", "Where the time went (`progress.json` laps, seconds):", ""]
    for r in rows:
        laps = ", ".join(f"{k} {v:.1f}" for k, v in r["laps"].items() if v >= 0.05)
        lines.append(f"- {r['name']}: {laps}")
    by = {r["name"]: r for r in rows}
    head, default = by.get("head only"), by.get("default")
    if head and default and head["accuracy"] is not None and default["accuracy"] is not None:
        gain = 100 * (default["accuracy"] - head["accuracy"])
        tta_gain = 100 * ((default["tta_accuracy"] or 0) - (head["tta_accuracy"] or 0))
        ratio = default["wall_s"] / head["wall_s"]
        met = gain >= 3 and ratio <= 2
        lines += ["", f"Goal (issue 16): the default recipe, fine-tuning included, at least 3 points above the "
                      f"head-only model in at most twice its whole-process time: {gain:+.1f} points "
                      f"({tta_gain:+.1f} with TTA) in {ratio:.2f}x the time ({'**met**' if met else '**NOT met**'})."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = cifar_parser(__doc__)
    ap.add_argument("--unfrozen-budget", type=float, default=None, help="the fine-tuned run's (75; 20 with --tiny)")
    ap.add_argument("--json", default=str(C.REPO / "bench" / "results" / "fine_tuning.json"))
    cfg = ap.parse_args(argv)
    cfg.out = C.resolve_out(cfg.out, cfg.tiny)
    cfg.size = cfg.size or (64 if cfg.tiny else 224)
    budget = cfg.unfrozen_budget or (20.0 if cfg.tiny else 75.0)
    cmdline = C.command_line()
    facts = C.machine_facts()
    work = Path(tempfile.mkdtemp(prefix="vt-finetune-"))
    rows = []
    try:
        data = Path(cfg.data)
        if cfg.tiny:  # 8 training and 4 validation images a class
            data = work / "data"
            make_subset(Path(cfg.data), data, 16, cfg.train, cfg.valid)
            for c in (data / cfg.valid).iterdir():
                for f in sorted(c.iterdir())[4:]:
                    f.unlink()
        common = ["--val-name", cfg.valid, "--size", str(cfg.size)]
        runs = [("default", []), ("head only", ["--unfrozen-budget", "0.001"]),
                ("fine-tuned", ["--unfrozen-budget", f"{budget:g}"])]
        for i, (name, extra) in enumerate(runs):
            r = run_train(data, work / f"run{i}", work / "cache", work / "logs", common + extra, f"run{i}")
            if r["rc"] != 0:
                print(C.tail(work / "logs" / f"run{i}.log"), file=sys.stderr)
                raise SystemExit(f"visiontune train failed ({name})")
            prog = C.read_json(work / f"run{i}" / "progress.json")
            plan = (prog.get("choices") or {}).get("unfrozen_plan") or {}
            skipped_ft = any(s.get("step") == "sgdr_unfrozen" for s in prog.get("skipped") or [])
            rows.append({**r, "name": name, "command": r["command"].replace("SUBSET", "DATA"),
                         "mode": "none" if skipped_ft else plan.get("mode")})
            print(f"{name}: {r['wall_s']:.1f} s, accuracy {r['accuracy']}, TTA {r['tta_accuracy']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    C.write_json(cfg.json, {"facts": facts, "rows": rows, "command": cmdline})
    C.update_section(cfg.out, SECTION, render(rows, facts, cfg, cmdline))
    print(f"wrote {cfg.out} ({SECTION}) and {cfg.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
