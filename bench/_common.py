"""Shared plumbing for the benchmark scripts: machine facts, the machine's ceiling, subprocess
measurement, and writing one section of ``docs/benchmarks.md`` atomically.

Each script owns one section of the markdown file, between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``; rewriting a section leaves the others (and any hand-written text
outside the markers) as they were.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MD = REPO / "docs" / "benchmarks.md"
HYMENOPTERA = REPO.parent / "shared" / "datasets" / "hymenoptera"
DOG_BREEDS = REPO.parent / "shared" / "datasets" / "dog_breeds_sample"

TINY_MD = REPO / "bench" / "results" / "benchmarks_tiny.md"
OUT_HELP = ("markdown file whose section this script rewrites (default docs/benchmarks.md; "
            "with --tiny: bench/results/benchmarks_tiny.md, so a harness check never lands in the docs)")


def resolve_out(out, tiny: bool) -> Path:
    return Path(out) if out is not None else (TINY_MD if tiny else DEFAULT_MD)


MD_HEADER = """# Benchmarks

Every table below is written by a script in `bench/` from a real run; each section names the exact
command, the machine and the date. Re-run a script to refresh its own section; the others are kept.
Numbers from a machine that was busy (see the load average in each section) are slower than a
quiet machine's.

Reproduce everything (about 15-25 minutes on 2 cores): `bash bench/run_all.sh`, which runs
`bench/vs_fastai.py`, `bench/throughput.py`, `bench/features.py` and `bench/analysis.py`
(fastai comes from the `bench` extra: `pip install -e '.[bench,cpu-fast]'`).
"""

# ------------------------------------------------------------------------------------------- markdown


def update_section(md_path, name: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of ``md_path`` with ``body``, atomically."""
    from visiontune.utils.atomic import atomic_write_text

    md_path = Path(md_path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = md_path.read_text(encoding="utf-8") if md_path.is_file() else MD_HEADER
    i, j = text.find(start), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md_path, text)
    return md_path


def read_section(md_path, name: str) -> str | None:
    text = Path(md_path).read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.find(start), text.find(end)
    return text[i + len(start):j].strip() if i >= 0 and j > i else None


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v) -> str:
        return "n/a" if v is None else str(v).replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def k_comparison(rows: Sequence[dict], k: int) -> list[dict]:
    """Augmented activations against none: per (dataset, head fit), in the order met, the mean accuracy and
    validation loss (and TTA ones, where every row has them) over the seeds for K=0 and K=``k``, and
    ``better``: accuracy up or loss down. ``rows`` are ``bench/features.py``'s ``results.aug``."""
    import numpy as np

    def mean(group, name):
        return float(np.mean([r[name] for r in group])) if all(name in r for r in group) else None

    out = []
    groups = dict.fromkeys((r.get("dataset", ""), r.get("fit", "")) for r in rows)
    for dataset, fit in groups:
        same = [r for r in rows if (r.get("dataset", ""), r.get("fit", "")) == (dataset, fit)]
        g0, g1 = ([r for r in same if r["K"] == kk] for kk in (0, k))
        c = {"dataset": dataset, "fit": fit, "n_seeds": len(g0)}
        for name in ("accuracy", "val_loss", "tta_accuracy", "tta_loss"):
            c[name] = (mean(g0, name), mean(g1, name))
        c["better"] = c["accuracy"][1] > c["accuracy"][0] or c["val_loss"][1] < c["val_loss"][0]
        out.append(c)
    return out


def fmt(v, digits: int = 3) -> str | None:
    """A number for a table cell (None stays None: the table shows n/a)."""
    if v is None:
        return None
    if isinstance(v, float):
        if v != v:  # nan
            return "nan"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits - 1}f}"
    return str(v)


def command_line() -> str:
    """The command that ran this script, relative to the repository root where possible."""
    argv = list(sys.argv)
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(REPO))
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(a) for a in argv)


# ------------------------------------------------------------------------------------------- machine


def _cpu_info() -> tuple[str, set[str]]:
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")


def machine_facts() -> dict:
    import torch

    model, flags = _cpu_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    facts = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_flags": {f: (f in flags) for f in INTERESTING_FLAGS},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "mem_gb": _mem_gb(),
    }
    for name in ("visiontune", "fastai", "timm", "onnxruntime", "openvino"):
        facts[name] = _version(name)
    try:
        from visiontune.features.engine import cpu_supports_bf16

        facts["native_bf16"] = cpu_supports_bf16()
    except Exception:  # noqa: BLE001
        facts["native_bf16"] = None
    return facts


def _mem_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001
        return None


def facts_markdown(facts: dict) -> str:
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in facts["cpu_flags"].items())
    libs = ", ".join(f"{k} {facts[k]}" for k in ("visiontune", "fastai", "timm", "onnxruntime", "openvino")
                     if facts.get(k))
    return "\n".join([
        f"- date: {facts['date']}",
        f"- CPU: {facts['cpu']}, {facts['cores']} cores ({facts['usable_cores']} usable), "
        f"{facts['mem_gb']} GB RAM; native bf16: {'yes' if facts.get('native_bf16') else 'no'}",
        f"- CPU flags: {flags}",
        f"- torch {facts['torch']} with {facts['torch_threads']} threads; Python {facts['python']}; {libs}",
        f"- load average when the run started: {facts['load_avg']} (above the core count means a busy machine)",
    ])


def section_head(title: str, tiny: bool, dataset_line: str, cmdline: str, facts: dict,
                 ceiling: dict | None = None) -> list[str]:
    """The opening lines every benchmark section shares: title (marked in tiny mode), dataset, the
    command that wrote it, machine facts and, when given, the machine's ceiling."""
    return [
        f"## {title}" + (" (tiny mode: harness check, not a result)" if tiny else ""),
        "",
        dataset_line,
        "",
        "```",
        cmdline,
        "```",
        "",
        facts_markdown(facts),
        *([ceiling_markdown(ceiling)] if ceiling is not None else []),
        "",
    ]


# ------------------------------------------------------------------------------------------- ceiling


def gemm_rate(dtype: str = "float32", n: int = 2048, repeats: int = 5) -> float:
    """Measured matrix-multiply rate, GFLOP/s: best of ``repeats`` ``torch.mm`` of ``n x n`` matrices."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n).to(dt)
    b = torch.randn(n, n).to(dt)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def machine_ceiling(tiny: bool = False) -> dict:
    """{'fp32': GFLOP/s, 'bf16': GFLOP/s or None, 'bf16_native': bool, 'best': GFLOP/s, 'best_dtype': str}."""
    from visiontune.features.engine import cpu_supports_bf16

    n, rep = (512, 2) if tiny else (2048, 10)
    fp32 = gemm_rate("float32", n, rep)
    native = cpu_supports_bf16()
    bf16 = None
    try:  # emulated bf16 runs ~1 GFLOP/s: a small matrix once is enough to show it
        bf16 = gemm_rate("bfloat16", n, rep) if native else gemm_rate("bfloat16", 256, 1)
    except Exception:  # noqa: BLE001
        pass
    best, best_dtype = fp32, "fp32"
    if native and bf16 and bf16 > fp32:
        best, best_dtype = bf16, "bf16"
    return {"fp32": fp32, "bf16": bf16, "bf16_native": native, "best": best, "best_dtype": best_dtype, "n": n}


def ceiling_markdown(c: dict) -> str:
    bf = "n/a" if c["bf16"] is None else f"{c['bf16']:.0f} GFLOP/s ({'native' if c['bf16_native'] else 'emulated: not used as a ceiling'})"
    return (f"- machine ceiling: `torch.mm` of {c['n']}x{c['n']} matrices runs {c['fp32']:.0f} GFLOP/s in fp32, "
            f"bf16 {bf}; the limit used below is {c['best']:.0f} GFLOP/s ({c['best_dtype']})")


def forward_flops(model, input_shape) -> float:
    """FLOPs of one forward pass (``torch.utils.flop_counter``: 2 per multiply-add) for one input of ``input_shape``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    x = torch.zeros(input_shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


# ------------------------------------------------------------------------------------------- subprocess


def run_measured(cmd: Sequence[str], log_path, env: dict | None = None, timeout: float | None = None,
                 cwd=None) -> dict:
    """Run ``cmd`` in a fresh process; return rc, wall seconds and the peak RSS (MB) of its process tree.

    The peak comes from ``wait4``'s resource usage for that child: the largest resident set of
    the child or of any of its descendants it waited for (e.g. data-loader workers).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(shlex.quote(str(c)) for c in cmd) + "\n").encode())
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return {"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss * scale,
            "timed_out": deadline is not None and wall > (timeout or 0)}


def self_peak_rss_mb() -> float:
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) * scale


def tail(path, n: int = 40) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def write_json(path, obj) -> None:
    from visiontune.utils.atomic import atomic_write_json

    atomic_write_json(path, obj)


def read_json(path):
    return json.loads(Path(path).read_text())


def make_tiny_dataset(src, dst, per_class: int = 8, splits=("train", "val")) -> Path:
    """Copy the first ``per_class`` images of each class of each split of ``src`` into ``dst``."""
    import shutil

    from visiontune.imaging.limits import IMAGE_EXTENSIONS

    src, dst = Path(src), Path(dst)
    for split in splits:
        for cls_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            files = sorted(f for f in cls_dir.iterdir()
                           if f.suffix.lower() in IMAGE_EXTENSIONS and f.suffix.lower() in (".jpg", ".jpeg", ".png"))
            out = dst / split / cls_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:per_class]:
                shutil.copy2(f, out / f.name)
    return dst
