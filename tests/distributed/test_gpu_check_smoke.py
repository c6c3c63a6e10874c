"""``bench/gpu_check.py --cpu-smoke`` runs end to end on the CPU, so the GPU check cannot rot.

It must write its own section (between the ``gpu_check`` markers) and keep the others; the
numbers are not checked (tiny sizes on a CPU measure nothing).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_cpu_smoke_writes_its_section_only(tmp_path):
    md, js = tmp_path / "benchmarks.md", tmp_path / "gpu_check.json"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu-smoke", "--out", str(md),
                           "--json", str(js)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = md.read_text()
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- gpu_check:start -->") == 1 and text.count("<!-- gpu_check:end -->") == 1
    rows = json.loads(js.read_text())["rows"]
    assert {(r["arch"], r["pipeline"]) for r in rows} == {(a, p) for a in ("resnet50", "efficientnet_lite0")
                                                         for p in ("visiontune", "plain PyTorch")}
    for r in rows:
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("train_img_s", "precompute_img_s"))
