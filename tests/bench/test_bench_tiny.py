"""The benchmark scripts in tiny mode, end to end, so the harness cannot rot.

Each script runs in a subprocess on a handful of hymenoptera images at 64 px and must write its
markdown section and its JSON with a number for every row. The numbers themselves are not
checked: tiny mode measures nothing meaningful. fastai comes from the ``bench`` extra.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "datasets" / "hymenoptera"

pytestmark = pytest.mark.slow


def _run(script: str, tmp_path: Path, *extra: str, timeout: float = 900) -> tuple[str, dict]:
    out_md, out_json = tmp_path / "benchmarks.md", tmp_path / "result.json"
    cmd = [sys.executable, str(REPO / "bench" / script), str(DATA), "--tiny", "--out", str(out_md),
           "--json", str(out_json), *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out_md.read_text(), json.loads(out_json.read_text())


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _section(md: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in md and end in md, f"section {name} missing"
    return md[md.index(start):md.index(end)]


def _table_rows(section: str) -> list[list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]  # minus the header


def test_vs_fastai_tiny(tmp_path):
    md, res = _run("vs_fastai.py", tmp_path)
    contenders = [r["contender"] for r in res["results"]]
    assert contenders[0] == "fastai"
    assert "visiontune" in contenders and "visiontune --fast" in contenders
    assert any(c.startswith("visiontune --budget") for c in contenders)
    for r in res["results"]:
        assert r["rc"] == 0, r
        for key in ("train_s", "accuracy", "tta_accuracy", "log_loss", "peak_rss_mb"):
            assert _number(r.get(key)), f"{r['contender']}: {key} = {r.get(key)!r}"
        assert 0.0 <= r["accuracy"] <= 1.0 and r["peak_rss_mb"] > 50
    rows = _table_rows(_section(md, "vs_fastai"))
    assert [row[0] for row in rows] == contenders
    for row in rows:
        for cell in [row[1], *row[3:7]]:  # train s, accuracy, TTA accuracy, log loss, peak RSS
            float(cell)
    for r in res["results"][1:]:  # visiontune's training clock: the recipe's laps, inside the whole process
        assert set(r["timings"]) >= {"setup", "precompute", "evaluate_tta", "export"}
        assert 0 < r["train_s"] < r["wall_s"]
    assert "torch" in md and "load average" in md and "avx512f" in md


def test_throughput_tiny(tmp_path):
    md, res = _run("throughput.py", tmp_path)
    stages = {r["stage"][:3] for r in res["rows"]}
    assert stages == {"(a)", "(b)", "(c)", "(d)"}
    assert all(_number(r["img_per_s"]) and r["img_per_s"] > 0 for r in res["rows"])
    assert _number(res["ceiling"]["fp32"]) and res["ceiling"]["fp32"] > 0
    rows = _table_rows(_section(md, "throughput"))
    assert len(rows) == len(res["rows"])
    assert all(row[-1].endswith("%") for row in rows)  # every stage shows its fraction of the limit


def test_features_tiny(tmp_path):
    md, res = _run("features.py", tmp_path, "--engines", "onnxruntime,torch")
    r = res["results"]
    assert [e["kind"] for e in r["e2e"]] == ["onnxruntime", "onnxruntime (ONNX export cached)", "torch"]
    cold, cached = r["e2e"][0], r["e2e"][1]
    assert cached["build_s"] < cold["build_s"]  # the second run reads the export from disk
    assert all(_number(e["img_per_s"]) for e in r["e2e"]) and _number(r["naive"]["img_per_s"])
    assert set(r["forward"][0]) == {"onnxruntime", "torch"}
    assert {a["K"] for a in r["aug"]} == {0, 4}
    assert {a["fit"] for a in r["aug"]} == {"fit(1e-2, 3)"}  # --tiny: the headline schedule, no second dataset
    t = r["tta"]
    assert _number(t["first_s"]) and _number(t["second_s"])
    assert t["repeat"][1] == 1.0 and t["cold"][1] == 1.0  # same classes from a warm and a cold cache
    section = _section(md, "features")
    for heading in ("End to end", "Where the time goes", "Pure forward rate", "Augmented activations", "Cached TTA"):
        assert heading in section
    assert "- tiny: K=4 raises accuracy or lowers loss in " in section  # the verdict per dataset


def test_scaling_tiny(tmp_path):
    md, res = _run("scaling.py", tmp_path, "--valid", "val", "--budget", "40")
    assert _number(res["rates"]["train_pass"]) and _number(res["rates"]["eval_fp32"])
    default = [r for r in res["rows"] if r["kind"] == "default"]
    assert [r["n_train"] for r in default] == [20, 40]  # 10 and 20 images of each of the 2 classes
    for r in res["rows"]:
        assert r["rc"] == 0 and _number(r["wall_s"]) and r["peak_rss_mb"] > 50
        assert 0.0 <= r["accuracy"] <= 1.0
        assert {"precompute", "evaluate_tta", "export"} <= set(r["laps"])
    section = _section(md, "scaling")
    rows = _table_rows(section)
    assert [row[0] for row in rows[:2]] == ["20", "40"]
    assert "e2e / forward" in section and "whole / budget" in section and "Goal (issue 16)" in section


def test_fine_tuning_tiny(tmp_path):
    md, res = _run("fine_tuning.py", tmp_path, "--valid", "val")
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == ["default", "head only", "fine-tuned"]
    for r in rows.values():
        assert r["rc"] == 0 and _number(r["wall_s"]) and 0.0 <= r["accuracy"] <= 1.0
    assert rows["head only"]["mode"] == "none" and rows["head only"]["unfrozen_epochs"] == 0
    # 16 images at 64 px: either way an epoch costs about a second, so 20 s buy one or more (full, on a tie)
    assert rows["fine-tuned"]["mode"] in ("full", "partial") and rows["fine-tuned"]["unfrozen_epochs"] >= 1
    assert "sgdr_unfrozen" in rows["fine-tuned"]["laps"]
    section = _section(md, "fine_tuning")
    assert "--unfrozen-budget 0.001" in section and "Goal (issue 16)" in section
