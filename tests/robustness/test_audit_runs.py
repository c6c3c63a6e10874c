"""Run folders and options under bad input (found by an audit of the CLI): nothing is lost, every
refusal names the file or option and what to do."""
from __future__ import annotations

import json
import math

import pytest
from vt_zoo import solid

from visiontune.cli import main
from visiontune.demo import DEMO_MARKER, _is_demo_run, run_demo
from visiontune.run.exported import load_run_model
from visiontune.run.prepare import build_data
from visiontune.run.recipe import TrainConfig, train_run
from visiontune.utils.atomic import atomic_write_text


def _folder_data(root, classes=("red", "blue"), n=4):
    colours = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 200, 30)}
    for split in ("train", "valid"):
        for c in classes:
            for i in range(n):
                p = root / split / c / f"{c}{i}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                solid(colours[c], seed=i).save(p)
    return root


def _fake_run(run, data, classes=("red", "blue"), status="interrupted"):
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": str(data), "arch": "efficientnet_lite0", "size": 32}))
    (run / "progress.json").write_text(json.dumps({"status": status, "completed": [], "elapsed": 1.0}))
    (run / "classes.json").write_text(json.dumps(list(classes)))
    (run / "model.json").write_text("{}")
    return run


def test_demo_never_clears_a_run_it_did_not_write(tmp_path):
    data = _folder_data(tmp_path / "data")
    run = _fake_run(tmp_path / "victim", data)
    before = sorted(p.name for p in run.iterdir())
    no_valid = tmp_path / "novalid"
    (no_valid / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds a run that the demo did not write.*Pass another --out"):
        run_demo(data=no_valid, out=run, work_dir=tmp_path / "work", verbose=False)
    assert sorted(p.name for p in run.iterdir()) == before

    assert not _is_demo_run(run, tmp_path / "work")
    (run / DEMO_MARKER).write_text("")
    assert _is_demo_run(run, tmp_path / "work")
    old_demo = _fake_run(tmp_path / "old", tmp_path / "work" / "shapes")  # a demo run from before the marker
    assert _is_demo_run(old_demo, tmp_path / "work")


def test_text_files_name_non_utf8_file_names_by_their_bytes(tmp_path):
    name = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
    atomic_write_text(tmp_path / "preds.csv", f"file,label\n{name},ants\n")
    assert (tmp_path / "preds.csv").read_bytes() == b"file,label\ncaf\xe9.jpg,ants\n"


@pytest.mark.parametrize("field, value, message", [
    ("budget", math.nan, "budget must be a finite number, got nan"),
    ("lr", math.inf, "lr must be a finite number, got inf"),
    ("lr_ratio", math.nan, "lr_ratio must be a finite number"),
    ("val_pct", 1.5, "val_pct must be between 0 and 1"),
    ("val_pct", -0.5, "val_pct must be between 0 and 1"),
    ("ps", 1.5, r"ps \(dropout\) must be in \[0, 1\), got 1.5"),
    ("num_workers", -1, "num_workers must be >= 0, got -1"),
    ("lr", -1e-3, "lr must be > 0"),
])
def test_impossible_numbers_are_refused_before_any_work(tmp_path, field, value, message):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), **{field: value})
    with pytest.raises(ValueError, match=message):
        train_run(cfg)
    assert not (tmp_path / "run").exists()


def test_a_head_that_would_never_train_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"head_epochs and aug_epochs are both 0 \(--head-epochs, --aug-epochs\): "
                                         "the new head would never be trained"):
        train_run(TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), head_epochs=0, aug_epochs=0))


@pytest.mark.parametrize("option, value", [("--budget", "nan"), ("--budget", "inf"), ("--lr", "nan"),
                                           ("--lr-ratio", "inf"), ("--val-pct", "nan"), ("--ps", "nan")])
def test_cli_refuses_non_finite_numbers(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(tmp_path), "--out", str(tmp_path / "run"), option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be a finite number, got {value}" in capsys.readouterr().err


def _csv_data(root, n=20, multiline=False):
    (root / "train").mkdir(parents=True)
    rows = ["id,label"]
    for i in range(n):
        solid((200, 30, 30) if i % 2 else (30, 30, 200), seed=i).save(root / "train" / f"im{i}.jpg")
        label = ("red" if i % 2 else "blue")
        rows.append(f'im{i},"{label}"' if not (multiline and i == 3) else f'im{i},"{label}\n"')
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("val_pct, n_val", [(0.2, 4), (0.3, 6), (0.5, 10)])
def test_a_larger_validation_share_takes_a_fold_that_fits(tmp_path, val_pct, n_val):
    """fastai's fold 4 of get_cv_idxs runs past the rows above val_pct=0.2 (0.3 of 20 rows: rows 24-30)."""
    data = build_data(TrainConfig(data=str(_csv_data(tmp_path)), csv="labels.csv", suffix=".jpg", val_pct=val_pct, size=32,
                                  num_workers=0))
    assert len(data.val_ds) == n_val and len(data.trn_ds) == 20 - n_val


def test_csv_rows_are_counted_as_pandas_reads_them(tmp_path):
    """A quoted label that spans two lines is one row, not two."""
    root = _csv_data(tmp_path, multiline=True)
    data = build_data(TrainConfig(data=str(root), csv="labels.csv", suffix=".jpg", size=32, num_workers=0))
    assert len(data.val_ds) + len(data.trn_ds) == 20 and len(data.val_ds) == 4


def test_resume_refuses_data_whose_classes_changed(tmp_path):
    data = _folder_data(tmp_path / "data", classes=("red", "blue", "green"))
    run = _fake_run(tmp_path / "run", data, classes=("blue", "red"))
    with pytest.raises(ValueError, match=r"changed since run .* started: classes \[blue, red\] then, "
                                         r"\[blue, green, red\] now.*start a new run"):
        train_run(resume=run)


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "config.json").write_text('{"data": '), r"cannot read .*config.json: Expecting value"),
    (lambda run: (run / "config.json").write_text("[1, 2]"), r"config.json: expected a JSON dict, found list"),
    (lambda run: (run / "config.json").write_text('{"arch": "efficientnet_lite0"}'),
     r"cannot resume from .*config.json: .*missing 1 required positional argument: 'data'"),
    (lambda run: (run / "progress.json").write_text('{"status": "interr'), r"cannot read .*progress.json"),
])
def test_resume_names_the_damaged_file(tmp_path, damage, message):
    run = _fake_run(tmp_path / "run", _folder_data(tmp_path / "data"))
    damage(run)
    with pytest.raises(ValueError, match=message):
        train_run(resume=run)


def test_export_names_damaged_weights(tmp_path):
    run = _fake_run(tmp_path / "run", tmp_path)
    (run / "preprocessing.json").write_text(json.dumps({"classes": ["a", "b"], "kind": "single"}))
    (run / "best.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    with pytest.raises(ValueError, match=r"cannot load .*best.safetensors .*damaged"):
        load_run_model(run)
    (run / "preprocessing.json").write_text(json.dumps({"kind": "single"}))
    with pytest.raises(ValueError, match="preprocessing.json has no class list"):
        load_run_model(run)


def test_predict_prints_non_utf8_file_names_by_their_bytes(tmp_path):
    """On a strict UTF-8 stdout too (PYTHONIOENCODING=utf-8), not only with --out."""
    import os
    import subprocess
    import sys

    from torch import nn

    from visiontune.infer.export import export_model

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
                          nn.LogSoftmax(1))
    pre = {"input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    export_model(model, tmp_path / "m", preprocessing=pre, classes=["ants", "bees"])
    photos = tmp_path / "photos"
    photos.mkdir()
    solid((200, 30, 30)).save(os.fsdecode(bytes(photos) + b"/caf\xe9.jpg"), format="JPEG")
    proc = subprocess.run([sys.executable, "-m", "visiontune.cli", "predict", str(tmp_path / "m" / "model.json"),
                           str(photos)], capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr
    assert b"/caf\xe9.jpg,ants," in proc.stdout or b"/caf\xe9.jpg,bees," in proc.stdout


def test_a_damaged_checkpoint_is_set_aside_and_its_step_redone(tmp_path, monkeypatch, capsys):
    """Resuming must not be impossible because checkpoint.pt was cut short (a full disk, a copy)."""
    from visiontune.demo import make_shapes_dataset
    from visiontune.run import records
    from visiontune.run.recipe import TrainingInterrupted

    data = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_valid=2, size=48)
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), size=32, bs=8, num_workers=0, precompute_aug=0,
                      tta=0, unfrozen_budget=0.001, cache_dir=str(tmp_path / "cache"), verbose=False)
    original = records.MetricsLog.on_epoch_end

    def interrupting(self, learner, epoch, logs):
        if (self.phase, epoch) == ("head_aug", 1):
            raise KeyboardInterrupt
        return original(self, learner, epoch, logs)

    monkeypatch.setattr(records.MetricsLog, "on_epoch_end", interrupting)
    with pytest.raises(TrainingInterrupted):
        train_run(cfg)
    monkeypatch.setattr(records.MetricsLog, "on_epoch_end", original)
    run = tmp_path / "run"
    good = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(good[: len(good) // 3])
    result = train_run(TrainConfig(data="", cache_dir=str(tmp_path / "cache"), verbose=False), resume=run)
    err = capsys.readouterr().err
    assert "is not a visiontune checkpoint that can be loaded safely" in err
    assert "moved it to checkpoint.pt.damaged and redoing step head_aug from its start" in err
    assert (run / "checkpoint.pt.damaged").read_bytes() == good[: len(good) // 3]
    assert "head_aug" in result.steps and (run / "model.json").is_file()


@pytest.mark.parametrize("where", ["train/myrun", "train/red/run", "valid", "valid/x/y"])
def test_a_run_folder_among_the_images_is_refused(tmp_path, where):
    data = _folder_data(tmp_path / "data")
    with pytest.raises(ValueError, match=r"is inside the image folder .*(train|valid): the run's files would be "
                                         "read as data"):
        train_run(TrainConfig(data=str(data), out=str(data / where)))
    assert not (data / "train" / "myrun").exists()


def test_resume_with_other_options_is_refused_not_silently_ignored(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(tmp_path), "--size", "64", "--csv", "labels.csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--resume continues the run with its own settings ({tmp_path}/config.json); drop --csv, --size" in err


def test_labels_with_spaces_need_multi_label_to_become_tags(tmp_path):
    root = _csv_data(tmp_path)
    text = (root / "labels.csv").read_text().replace('"red"', '"golden retriever"').replace('"blue"', '"border collie"')
    (root / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=r"labels.csv: some labels hold spaces, which make them multi-label tags "
                                         r"\(border, collie, golden, retriever, ...\). Pass --multi-label"):
        build_data(TrainConfig(data=str(root), csv="labels.csv", suffix=".jpg", size=32, num_workers=0))
    data = build_data(TrainConfig(data=str(root), csv="labels.csv", suffix=".jpg", size=32, num_workers=0,
                                  multi_label=True))
    assert data.is_multi and data.classes == ["border", "collie", "golden", "retriever"]


def test_a_wrong_suffix_says_which_suffix_finds_the_files(tmp_path):
    root = _csv_data(tmp_path)
    with pytest.raises(ValueError, match=r"labels.csv: no file .*train/im0 for row 0 \(nor for the next rows\); the "
                                         r"files are named <id>.jpg: pass suffix='.jpg' \(--suffix .jpg\)"):
        build_data(TrainConfig(data=str(root), csv="labels.csv", size=32, num_workers=0))
    text = (root / "labels.csv").read_text().replace(",", ".jpg,").replace("id.jpg,", "id,")
    (root / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=r"no file .*train/im0.jpg.jpg for row 0 .*the ids already end in '.jpg': "
                                         r"drop the suffix"):
        build_data(TrainConfig(data=str(root), csv="labels.csv", suffix=".jpg", size=32, num_workers=0))
    assert len(build_data(TrainConfig(data=str(root), csv="labels.csv", size=32, num_workers=0)).trn_ds) == 16
