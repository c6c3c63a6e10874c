"""The notes' two walkthroughs, end to end on real photos (reduced epochs with --quick)."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _run(script, *args, env_cache, full=False):
    quick = [] if full else ["--quick"]
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *quick, "--cache-dir", str(env_cache), *args],
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lesson1_reaches_095_after_tta(tmp_path):
    # the shared dataset folder is not ours to write in: models go to tmp_path
    result = _run("lesson1.py", "--models-dir", str(tmp_path / "models"), full=True, env_cache=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "288_all.safetensors", "288_lastlayer.safetensors", "lr_find.png", "sgdr.png", "sgdr_unfrozen.png"]
    assert result["tta_accuracy"] >= 0.95, result


def test_dog_breeds_csv_workflow_and_submission(tmp_path):
    result = _run("dog_breeds.py", "--out", str(tmp_path / "out"), env_cache=tmp_path / "cache")
    assert result["tta_accuracy"] > 10 * result["chance"], result  # far above 1/120
    sub = pd.read_csv(result["submission"])
    assert sub.shape == (1000, 121)
    assert list(sub.columns[:1]) == ["id"]
    assert (sub.iloc[:, 1:].sum(axis=1) - 1).abs().max() < 1e-5
