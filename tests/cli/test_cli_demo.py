"""``visiontune demo`` offline, the generated dataset, and fetch_dataset against file:// URLs."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
from vt_cli_helpers import run_cli

from visiontune.demo import CLASSES, ChecksumMismatch, fetch_dataset, make_shapes_dataset


def test_shapes_dataset_is_deterministic(tmp_path):
    a = make_shapes_dataset(tmp_path / "a", n_train=3, n_valid=1, size=48, seed=3)
    b = make_shapes_dataset(tmp_path / "b", n_train=3, n_valid=1, size=48, seed=3)
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.png"))
    assert len(files) == 3 * 4 and {f.split("/")[1] for f in files} == set(CLASSES)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    mtime = (a / files[0]).stat().st_mtime_ns
    make_shapes_dataset(tmp_path / "a", n_train=3, n_valid=1, size=48, seed=3)  # reused, not rewritten
    assert (a / files[0]).stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_demo_runs_offline(cli_env, tmp_path):
    env = dict(cli_env, HF_HUB_OFFLINE="1", NO_PROXY="*", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    run = tmp_path / "demo"
    proc = run_cli(env, "demo", "--out", run, "--budget", "45", timeout=400)
    assert (run / "report.html").is_file() and (run / "model.onnx").is_file()
    assert "demo finished: open" in proc.stdout
    final = json.loads((run / "progress.json").read_text())["final"]
    assert final["accuracy"] > 0.6  # three classes: chance is 1/3


def _archive(tmp_path, kind: str, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_fetch_dataset_file_url(tmp_path, kind):
    data = _archive(tmp_path, kind, {"shapes/train/a/1.txt": b"one", "shapes/valid/a/2.txt": b"two"})
    src = tmp_path / f"data.{kind}"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "out"
    assert fetch_dataset(src.as_uri(), sha, dest) == dest
    assert (dest / "shapes/train/a/1.txt").read_bytes() == b"one"
    src.unlink()  # a second call with the same checksum does not download again
    assert fetch_dataset(src.as_uri(), sha, dest) == dest


def test_fetch_dataset_wrong_checksum(tmp_path):
    src = tmp_path / "data.zip"
    src.write_bytes(_archive(tmp_path, "zip", {"train/a/1.txt": b"one"}))
    dest = tmp_path / "out"
    with pytest.raises(ChecksumMismatch, match="checksum mismatch"):
        fetch_dataset(src.as_uri(), "0" * 64, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data.zip"]  # no temp files left behind


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_fetch_dataset_refuses_path_traversal(tmp_path, kind):
    data = _archive(tmp_path, kind, {"../evil.txt": b"x", "ok.txt": b"y"})
    src = tmp_path / f"bad.{kind}"
    src.write_bytes(data)
    with pytest.raises(ValueError, match="outside"):
        fetch_dataset(src.as_uri(), hashlib.sha256(data).hexdigest(), tmp_path / "sub" / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_fetch_dataset_refuses_an_archive_bigger_than_the_free_disk(tmp_path, kind, monkeypatch):
    """A zip bomb (or a just too big archive) is refused from the members' declared sizes, before writing."""
    import collections
    import shutil

    data = _archive(tmp_path, kind, {"train/a/1.txt": b"0" * 5000, "train/a/2.txt": b"1" * 5000})
    src = tmp_path / f"big.{kind}"
    src.write_bytes(data)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 9000, 9000))
    with pytest.raises(ValueError, match=r"refusing to extract .*: it unpacks to 10,000 bytes and the disk has 9,000 free"):
        fetch_dataset(src.as_uri(), hashlib.sha256(data).hexdigest(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_demo_download_needs_checksum(cli_env, tmp_path):
    proc = run_cli(cli_env, "demo", "--download", "file:///nowhere.zip", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "--sha256" in proc.stderr
