"""Issue 17, item 13: nothing left behind, nothing of the user's replaced.

(a) a run removes the atomic writer's stale ``.NAME.XXXX.tmp`` files of its own files (``kill -9`` during a
    checkpoint write) when it starts, resumes or ends; any other file stays;
(b) ``demo --download``: a total timeout, the ``.NAME-*`` temporary folder removed on error and on SIGTERM,
    a lying zip member as one line, the unpacked size capped (not only against free disk);
(c) ``visiontune report`` on a folder that is not a run refuses, and never replaces the user's report.html.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from visiontune import demo
from visiontune.run.folder import RunFolder

REPO = Path(__file__).resolve().parents[2]


# (a) ---------------------------------------------------------------------------------------------------------
def test_stale_temporaries_of_the_runs_own_files_are_removed_at_start_and_end(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [".checkpoint.pt.k3j_a9x2.tmp", ".best.safetensors.ab12cd34.tmp", ".progress.json.zz_99xyz.tmp",
             ".weights_after_head_aug.safetensors.q1w2e3r4.tmp"]
    keep = ["notes.tmp", ".mydata.csv.k3j_a9x2.tmp", ".checkpoint.pt.tmp", "checkpoint.pt.k3j_a9x2.tmp"]
    for name in stale + keep:
        (run / name).write_bytes(b"x" * 10)
    folder = RunFolder(run).open()
    try:
        assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == sorted(keep)
        (run / stale[0]).write_bytes(b"y")  # a write killed while the run was going on
    finally:
        folder.close()
    assert sorted(p.name for p in run.iterdir()) == sorted(keep)


# (b) ---------------------------------------------------------------------------------------------------------
def _zip_bytes(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


class _FakeResponse:
    def __init__(self, data: bytes, delay: float = 0.0, step: int = 1 << 20):
        self.data, self.delay, self.step, self.pos = data, delay, step, 0

    def read(self, n=-1):
        time.sleep(self.delay)
        chunk = self.data[self.pos:self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _serve(monkeypatch, data: bytes, **kw):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(data, **kw))
    return hashlib.sha256(data).hexdigest()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_trickling_server_is_stopped_by_the_total_timeout(monkeypatch, tmp_path):
    sha = _serve(monkeypatch, b"x" * 1000, delay=0.05, step=1)  # one byte every 50 ms: 50 s in all
    t0 = time.monotonic()
    with pytest.raises(demo.DownloadTimeout, match=r"cannot download http://slow/x.zip: not finished after 0.5 s"):
        demo.fetch_dataset("http://slow/x.zip", sha, tmp_path / "dl", total_timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert _leftovers(tmp_path) == [] and not (tmp_path / "dl").exists()


def test_a_lying_zip_member_is_one_line_and_nothing_is_kept(monkeypatch, tmp_path):
    data = bytearray(_zip_bytes({"train/a/x.txt": b"hello world " * 100}, zipfile.ZIP_STORED))
    i = data.index(b"hello world")
    data[i:i + 5] = b"HELLO"  # the stored bytes no longer match the CRC the header declares
    sha = _serve(monkeypatch, bytes(data))
    with pytest.raises(ValueError, match=r"^cannot extract download: member 'train/a/x.txt' is damaged or lies about "
                                         r"its size \(BadZipFile: Bad CRC-32"):
        demo.fetch_dataset("http://x/x.zip", sha, tmp_path / "dl")
    assert _leftovers(tmp_path) == [] and not (tmp_path / "dl").exists()


def test_a_zip_bomb_is_refused_by_the_absolute_cap(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "UNPACKED_FLOOR", 1 << 20)
    bomb = _zip_bytes({"train/a/zeros.bin": bytes(4 << 20)})  # 4 MiB of zeros in a few KB
    sha = _serve(monkeypatch, bomb)
    with pytest.raises(ValueError, match=r"refusing to extract download: it unpacks to 4,194,304 bytes, more than "
                                         r"1,048,576 \(20x its size, at most 8 GiB\): a zip bomb"):
        demo.fetch_dataset("http://x/bomb.zip", sha, tmp_path / "dl")
    assert _leftovers(tmp_path) == [] and not (tmp_path / "dl").exists()
    assert demo.unpacked_cap(10**12) == demo.UNPACKED_MAX


def test_sigterm_during_a_download_removes_the_temporary_folder(tmp_path):
    child = textwrap.dedent(f"""
        import sys, time, urllib.request
        sys.path.insert(0, {str(REPO)!r})
        from visiontune import demo

        class Slow:
            def read(self, n=-1):
                time.sleep(0.05)
                return b"x"
            def __enter__(self):
                return self
            def __exit__(self, *a):
                return False

        urllib.request.urlopen = lambda url, timeout=None: Slow()
        print("start", flush=True)
        demo.fetch_dataset("http://slow/x.zip", "0" * 64, {str(tmp_path / "dl")!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "start"
        t0 = time.monotonic()
        while not _leftovers(tmp_path) and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        assert _leftovers(tmp_path), "the download never started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()
    assert _leftovers(tmp_path) == []


# (c) ---------------------------------------------------------------------------------------------------------
def test_report_on_a_folder_that_is_not_a_run_refuses_and_keeps_the_users_report(tmp_path, capsys):
    from visiontune.cli import main
    from visiontune.run import write_report

    mine = b"<html><body>my own report, hand written</body></html>\n"
    (tmp_path / "report.html").write_bytes(mine)
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"visiontune: error: {tmp_path} is not a visiontune run folder"), err
    assert (tmp_path / "report.html").read_bytes() == mine
    with pytest.raises(FileExistsError, match="is not a report visiontune wrote; it was left as it is"):
        write_report(tmp_path)  # the Python API too
    assert (tmp_path / "report.html").read_bytes() == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "report.html"]


def test_report_replaces_its_own_report(tmp_path):
    from visiontune.run import write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(tmp_path), "arch": "efficientnet_lite0"}))
    (run / "progress.json").write_text(json.dumps({"status": "done", "completed": [], "elapsed": 1.0}))
    first = write_report(run).read_bytes()
    assert first.startswith(b"<!DOCTYPE html>")
    write_report(run)  # its own earlier report: replaced
