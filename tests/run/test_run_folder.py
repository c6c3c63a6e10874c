"""RunFolder: whose folder a run may write into, one writer at a time, and no trust in what a folder says
(issue 17 items 1, 2, 4). Fast: no training here (tests/run/test_run_records.py trains)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from visiontune.run.folder import (LOCK_NAME, OWNER_NAME, RunFolder, RunFolderBusy, RunFolderError, confine_to,
                                   is_run_folder)
from visiontune.run.progress import Progress, ProgressError, Skipped
from visiontune.run.recipe import TrainConfig, train_run


def _data(root: Path) -> Path:
    for split in ("train", "valid"):
        for c in ("red", "blue"):
            (root / split / c).mkdir(parents=True)
            (root / split / c / "a.jpg").write_bytes(b"not read by these tests")
    return root


def _run_folder(run: Path, data: Path) -> Path:
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": str(data), "arch": "efficientnet_lite0", "size": 32}))
    (run / "progress.json").write_text(json.dumps({"status": "done", "completed": []}))
    return run


# -- 17.1: train --out never destroys a user's files ------------------------------------------------------------
def test_a_folder_of_user_files_is_refused_and_left_byte_for_byte(tmp_path):
    data = _data(tmp_path / "data")
    out = tmp_path / "mine"
    out.mkdir()
    files = {"config.json": b'{"my": "settings"}', "report.html": b"<p>my report</p>", "model.onnx": b"mine",
             "metrics.csv": b"a,b\n", "weights_after_head_aug.safetensors": b"my weights"}
    for name, content in files.items():
        (out / name).write_bytes(content)
    with pytest.raises(RunFolderError, match=rf"^--out {out} already holds files that are not a visiontune run "
                                             r"\(config.json, metrics.csv, model.onnx, ... \(5 in all\)\); train "
                                             "writes only into a new or empty folder: give another --out$"):
        train_run(TrainConfig(data=str(data), out=str(out)))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


@pytest.mark.parametrize("where, message", [
    ("/", "is the filesystem root"),
    ("/usr", r"is a top-level system folder \(/usr\)"),
    ("~", "is your home folder itself"),
])
def test_system_roots_are_refused(tmp_path, where, message):
    out = Path(where).expanduser()
    with pytest.raises(RunFolderError, match=rf"^--out {out} {message}: a run writes a dozen files there; give a "
                                             "folder of its own, e.g. --out runs/NAME$"):
        train_run(TrainConfig(data=str(_data(tmp_path / "data")), out=str(out)))


def test_the_data_root_and_folders_inside_it_are_refused(tmp_path):
    data = _data(tmp_path / "data")
    for out in (data, data / "runs" / "x"):
        with pytest.raises(RunFolderError, match=rf"^--out {out} is inside the data folder {data}: a run never "
                                                 "writes into its data"):
            train_run(TrainConfig(data=str(data), out=str(out)))
    assert not (data / "runs").exists()


@pytest.mark.parametrize("layout, where, why", [
    ("folders", "train", r"it holds train/ and valid/"),
    ("folders", "train/red/run", r"it holds train/ and valid/"),
    ("csv", "runs/a", r"it holds train/ and labels.csv"),
    ("csv", "train", r"it holds train/ and labels.csv"),
])
def test_another_data_set_is_refused(tmp_path, layout, where, why):
    data = _data(tmp_path / "data")
    other = tmp_path / "other"
    if layout == "folders":
        _data(other)
    else:
        (other / "train").mkdir(parents=True)
        (other / "labels.csv").write_text("id,label\n")
    out = other / where
    with pytest.raises(RunFolderError, match=rf"^--out {out} is inside {other}, which looks like a data set "
                                             rf"\({why}\): a run never writes into data"):
        train_run(TrainConfig(data=str(data), out=str(out)))
    assert not (other / "runs").exists()


def test_a_run_folder_needs_resume_or_overwrite(tmp_path):
    data = _data(tmp_path / "data")
    run = _run_folder(tmp_path / "run", data)
    with pytest.raises(RunFolderError, match=rf"^run folder {run} already holds a run; use --resume {run} to "
                                             "continue it, --overwrite to replace it, or another --out$"):
        train_run(TrainConfig(data=str(data), out=str(run)))
    folder = RunFolder.for_new_run(run, data, overwrite=True)
    assert folder.earlier_run


def test_overwrite_removes_the_earlier_runs_files_by_name_and_nothing_else(tmp_path):
    data = _data(tmp_path / "data")
    run = _run_folder(tmp_path / "run", data)
    for name in ("metrics.csv", "weights_after_head_aug.safetensors", "lr_find.json", "notes.txt",
                 "weights_after_mine.safetensors"):
        (run / name).write_text(name)
    (run / "sub").mkdir()
    with RunFolder.for_new_run(run, data, overwrite=True) as folder:
        removed = folder.clear_earlier_run()
    assert removed == ["config.json", "metrics.csv", "lr_find.json", "progress.json",
                       "weights_after_head_aug.safetensors"]
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "sub", "weights_after_mine.safetensors"]


def test_an_empty_folder_or_one_holding_only_markers_may_be_used(tmp_path):
    data = _data(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / ".visiontune-demo").write_text("")
    for out in ("empty", "demo", "new/deeper"):
        assert not RunFolder.for_new_run(tmp_path / out, data).earlier_run


def test_remove_refuses_a_file_the_run_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    folder = RunFolder(tmp_path)
    with pytest.raises(ValueError, match="refusing to remove .*notes.txt: this run did not write it"):
        folder.remove("notes.txt")
    folder.write_text("metrics.csv", "x")
    folder.remove("metrics.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# -- 17.2: one writer per run folder ------------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_first_ones_pid_host_and_start(tmp_path):
    first = RunFolder(tmp_path / "run").open()
    try:
        owner = json.loads((tmp_path / "run" / OWNER_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunFolderBusy, match=rf"^run folder {tmp_path / 'run'} is in use by another visiontune run "
                                                rf"\(pid {os.getpid()} on {socket.gethostname()}, started "
                                                r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); wait for it to end, or give "
                                                "another --out$"):
            RunFolder(tmp_path / "run").open()
    finally:
        first.close()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # lock and owner record gone
    RunFolder(tmp_path / "run").open().close()  # free again


def test_cli_second_run_into_a_busy_folder_exits_at_once_naming_the_first(tmp_path):
    """A real second process: `visiontune train` stops with one line while another process holds the folder."""
    data = _data(tmp_path / "data")
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from visiontune.run.folder import RunFolder
        f = RunFolder({str(run)!r}).open()
        print("locked", flush=True)
        sys.stdin.read()
        f.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = subprocess.run([sys.executable, "-m", "visiontune.cli", "train", str(data), "--out", str(run),
                               "--fast"], capture_output=True, text=True, timeout=120)
        owner = json.loads((run / OWNER_NAME).read_text())
    finally:
        holder.communicate("", timeout=30)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"visiontune: error: run folder {run} is in use by another visiontune run (pid {holder.pid} on "
                     f"{socket.gethostname()}, started {owner['started']}); wait for it to end, or give another --out"]
    assert "step 1/8" not in proc.stdout
    assert sorted(p.name for p in run.iterdir()) == []  # the second run wrote nothing; the first cleaned up


# -- 17.4: paths read from a run folder are confined ---------------------------------------------------------------
def test_progress_weights_file_out_of_the_run_is_refused(tmp_path):
    victim = tmp_path / "victim" / "best.safetensors"
    victim.parent.mkdir()
    victim.write_bytes(b"the victim's weights")
    for value in ("../victim/best.safetensors", str(victim), "best.safetensors", "weights_after_x.safetensors"):
        with pytest.raises(ProgressError, match=r"weights_file .* is not a file this run writes"):
            Progress.from_dict({"status": "interrupted", "weights_file": value})
    run = tmp_path / "run"
    run.mkdir()
    (run / "weights_after_head_aug.safetensors").symlink_to(victim)
    with pytest.raises(ValueError, match="is a link out of the run folder"):
        RunFolder(run).weights("weights_after_head_aug.safetensors")
    assert victim.read_bytes() == b"the victim's weights"


def test_resume_with_a_crafted_weights_file_touches_nothing_outside(tmp_path):
    data = _data(tmp_path / "data")
    victim = tmp_path / "victim" / "best.safetensors"
    victim.parent.mkdir()
    victim.write_bytes(b"the victim's weights")
    run = _run_folder(tmp_path / "run", data)
    (run / "progress.json").write_text(json.dumps({"status": "interrupted", "completed": ["precompute"],
                                                   "weights_file": "../victim/best.safetensors"}))
    with pytest.raises(ValueError, match=r"progress.json: weights_file '../victim/best.safetensors' is not a file "
                                         "this run writes"):
        train_run(resume=run)
    assert victim.read_bytes() == b"the victim's weights"
    assert not (run / LOCK_NAME).exists() and not (run / OWNER_NAME).exists()


@pytest.mark.parametrize("field, value, message", [
    ("test_name", "../victim", r"test_name must be a folder inside the data folder, got '../victim'"),
    ("test_name", "/etc", r"test_name must be a folder inside the data folder, got '/etc'"),
    ("csv", "/etc/passwd", r"csv '/etc/passwd' leads outside"),
])
def test_config_paths_out_of_the_data_folder_are_refused_on_resume(tmp_path, field, value, message):
    data = _data(tmp_path / "data")
    run = _run_folder(tmp_path / "run", data)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, field: value}))
    (run / "progress.json").write_text(json.dumps({"status": "interrupted"}))
    with pytest.raises(ValueError, match=message):
        train_run(resume=run)


def test_confine_to_follows_links(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "cache").symlink_to(tmp_path)
    assert confine_to("x", [tmp_path / "run"], "cache_dir", "config.json") == (tmp_path / "run" / "x").resolve()
    with pytest.raises(ValueError, match=r"config.json: cache_dir 'cache' leads outside"):
        confine_to("cache", [tmp_path / "run"], "cache_dir", "config.json")


# -- the progress record ------------------------------------------------------------------------------------------
def test_progress_records_skipped_steps_apart_and_resume_counts_them_done():
    p = Progress()
    p.complete("precompute")
    p.skip("unfreeze", "--fast (precompute only)")
    assert p.done("precompute") and p.done("unfreeze") and not p.done("sgdr_unfrozen")
    d = p.to_dict()
    assert d["completed"] == ["precompute"]
    assert d["skipped"] == [{"step": "unfreeze", "reason": "--fast (precompute only)"}]
    assert Progress.from_dict(json.loads(json.dumps(d))) == p


def test_version_1_progress_is_read_with_its_skipped_steps_apart():
    old = {"status": "interrupted", "completed": ["precompute", "lr_find_head", "unfreeze"],
           "skipped": ["unfreeze: one unfrozen epoch costs ~26 s"]}
    p = Progress.from_dict(old)
    assert p.completed == ["precompute", "lr_find_head"]
    assert p.skipped == [Skipped("unfreeze", "one unfrozen epoch costs ~26 s")] and p.done("unfreeze")


@pytest.mark.parametrize("bad, message", [
    ({"status": "hacked"}, "status is 'hacked'"),
    ({"completed": ["rm -rf"]}, "completed names a step that does not exist"),
    ({"current": "../x"}, "current is '../x', not a step"),
    ({"elapsed": -1}, "elapsed is -1"),
    ({"timings": {"setup": "1 s"}}, "timings holds a value that is not a number"),
    ({"choices": []}, "choices is a list"),
])
def test_progress_fields_are_checked(bad, message):
    with pytest.raises(ProgressError, match=message):
        Progress.from_dict(bad)


def test_is_run_folder(tmp_path):
    assert not is_run_folder(tmp_path)
    _run_folder(tmp_path / "run", tmp_path)
    assert is_run_folder(tmp_path / "run")
