"""The image-file zoo: every odd or broken file, through decoding, from_paths, inspect and predict.

Broken files are skipped with one line each naming the file and the reason (an error under
``strict=True``); unusual but valid files (CMYK, 16-bit, palette + transparency, animated GIF, EXIF
rotation, 1x1...) decode to RGB and train.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from vt_zoo import BAD_CASES, GOOD_CASES, IMAGE_ZOO, make_zoo_folder

from visiontune.data import ImageClassifierData, ImageLoadError, inspect_dataset, load_image, probe_image
from visiontune.imaging.limits import DEFAULT_MAX_PIXELS
from visiontune.data.errors import SkippedFilesWarning, UnreadableFilesError
from visiontune.transforms import tfms_from_model

TFMS = tfms_from_model("efficientnet_lite0", 32)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_gives_one_clear_reason(tmp_path, case):
    maker, fname, expected = IMAGE_ZOO[case]
    p = maker(tmp_path / fname)
    assert expected in probe_image(p)
    with pytest.raises(ImageLoadError) as ei:
        load_image(p)
    msg = str(ei.value)
    assert msg.startswith(f"cannot load image {p}: ") and expected in msg and "\n" not in msg


@pytest.mark.parametrize("case", sorted(GOOD_CASES))
def test_unusual_file_decodes_to_rgb(tmp_path, case):
    maker, fname, _ = IMAGE_ZOO[case]
    p = maker(tmp_path / fname)
    assert probe_image(p) is None
    im = load_image(p)
    assert im.mode == "RGB" and min(im.size) >= 1


def test_unusual_files_decode_to_the_right_pixels(tmp_path):
    z = {k: IMAGE_ZOO[k] for k in ("exif_rotated", "palette_transparent", "png16", "animated_gif", "cmyk_jpeg")}
    ims = {k: load_image(m(tmp_path / f)) for k, (m, f, _) in z.items()}
    assert ims["exif_rotated"].size == (30, 60)  # stored 60x30 with orientation 6: shown upright
    assert ims["palette_transparent"].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert ims["palette_transparent"].getpixel((15, 15)) == (255, 0, 0)
    assert ims["png16"].getpixel((0, 0)) == (0, 0, 0) and ims["png16"].getpixel((39, 29)) == (255, 255, 255)
    r, g, b = ims["animated_gif"].getpixel((20, 15))
    assert r > 200 and g < 60 and b < 60  # the first frame (red)
    assert np.asarray(ims["cmyk_jpeg"]).std() > 20  # real content, not a flat conversion failure


def test_pixel_cap_is_on_by_default_and_refuses_before_decoding(tmp_path):
    from vt_zoo import make_bomb_header

    assert DEFAULT_MAX_PIXELS == 64_000_000
    p = make_bomb_header(tmp_path / "bomb.png", 9_000, 9_000)  # 81 MP: under PIL's own limit, over ours
    assert p.stat().st_size < 2_000
    with pytest.raises(ImageLoadError, match=r"too many pixels: the header claims 9000x9000 = 81.0 megapixels"):
        load_image(p)


def test_from_paths_skips_each_bad_file_with_its_reason(tmp_path):
    placed = make_zoo_folder(tmp_path / "zoo")
    with pytest.warns(SkippedFilesWarning) as rec:
        data = ImageClassifierData.from_paths(tmp_path / "zoo", bs=4, tfms=TFMS, num_workers=0)
    [w] = [r for r in rec if issubclass(r.category, SkippedFilesWarning)]
    text = str(w.message)
    bad = {f: r for f, r in placed.items() if r is not None}
    assert text.startswith(f"visiontune: skipped {len(bad)} of ")
    lines = text.splitlines()[1:]
    assert len(lines) == len(bad)  # one line per bad file
    for f, reason in bad.items():
        [line] = [ln for ln in lines if ln.strip().startswith(f + ":")]
        assert reason in line
    assert sorted(f for f, _ in data.skipped) == sorted(bad)
    good = [f for f, r in placed.items() if r is None]
    assert set(good) <= set(data.trn_ds.fnames) and not set(bad) & set(data.trn_ds.fnames)
    # every remaining item decodes and a whole epoch of every loader runs
    for dl in (data.trn_dl, data.val_dl, data.fix_dl, data.aug_dl):
        n = 0
        for x, y in dl:
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) and torch.isfinite(x).all()
            n += len(y)
        assert n == len(dl.dataset) or dl is data.trn_dl


def test_from_paths_strict_names_every_bad_file(tmp_path):
    placed = make_zoo_folder(tmp_path / "zoo")
    with pytest.raises(UnreadableFilesError) as ei:
        ImageClassifierData.from_paths(tmp_path / "zoo", tfms=TFMS, num_workers=0, strict=True)
    msg = str(ei.value)
    bad = {f: r for f, r in placed.items() if r is not None}
    assert f"{len(bad)} file(s)" in msg and "strict=True" in msg
    for f, reason in bad.items():
        assert f"  {f}: " in msg
    assert sorted(f for f, _ in ei.value.skipped) == sorted(bad)


def test_inspect_reports_each_bad_file_and_odd_ones(tmp_path):
    placed = make_zoo_folder(tmp_path / "zoo")
    rep = inspect_dataset(tmp_path / "zoo")
    json.dumps(rep)  # plain data
    unreadable = {u["file"]: u["reason"] for u in rep["unreadable"]}
    bad = {f: r for f, r in placed.items() if r is not None}
    assert set(unreadable) == set(bad)
    for f, reason in bad.items():
        assert reason in unreadable[f], (f, unreadable[f])
    assert rep["animated"] == ["train/red/animated.gif"]
    assert "train/red/dot.png" in rep["small"]
    odd = {o["file"] for o in rep["odd_formats"]}
    assert {"train/red/plain.png", "train/red/plain.webp", "train/red/plain.bmp"} <= odd
    assert rep["n_files"] == 16 + len(placed)
    from visiontune.data import format_inspection

    text = format_inspection(rep, max_items=100)
    assert f"unreadable files ({len(bad)}):" in text and "train/red/page.jpg: not an image" in text


# ---- predict ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from visiontune.infer.export import export_model
    from visiontune.infer.exported import ExportedModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2), nn.LogSoftmax(1))
    pre = {"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    d = tmp_path_factory.mktemp("export")
    export_model(net, d, preprocessing=pre, classes=["red", "blue"], fmt="onnx")
    return ExportedModel.load(d)


def test_predict_flags_unreadable_files_and_predicts_the_rest(tmp_path, exported):
    from visiontune.infer.exported import UnreadableImageWarning

    paths, expect_bad = [], {}
    for name, (maker, fname, expected) in sorted(IMAGE_ZOO.items()):
        p = maker(tmp_path / fname)
        paths.append(p)
        if expected is not None:
            expect_bad[str(p)] = expected
    missing = tmp_path / "gone.jpg"
    paths.append(missing)
    expect_bad[str(missing)] = "file not found"
    with pytest.warns(UnreadableImageWarning) as rec:
        probs = exported.predict_images(paths, batch_size=4)
    text = str(rec[0].message)
    assert text.startswith(f"visiontune: {len(expect_bad)} of {len(paths)} image(s) could not be read")
    assert probs.shape == (len(paths), 2)
    for p, row in zip(paths, probs):
        if str(p) in expect_bad:
            assert np.isnan(row).all()
            assert f"  {p}: " in text and expect_bad[str(p)] in text.split(f"  {p}: ")[1].splitlines()[0]
        else:
            np.testing.assert_allclose(row.sum(), 1.0, atol=1e-5)
    assert {p for p, _ in exported.unreadable} == set(expect_bad)
    # the good rows are what they would be alone (the bad ones do not shift them)
    good = [p for p in paths if str(p) not in expect_bad]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = exported.predict_images(good, batch_size=4)
    np.testing.assert_allclose(probs[[str(p) not in expect_bad for p in paths]], alone, atol=1e-6)
    with pytest.raises(ImageLoadError, match="empty file"):
        exported.predict_images([paths[0], tmp_path / "empty.jpg"], strict=True)


_BIG_PNG_CHILD = r"""
import json, sys
from visiontune.data import inspect_dataset
rep = inspect_dataset(sys.argv[1])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # peak RSS of this program
print(json.dumps({"n": rep["n_readable"], "unreadable": rep["unreadable"], "sizes": rep["sizes"],
                  "peak_mb": int(hwm.split()[1]) / 1024}))
"""


def test_inspect_of_ten_64_megapixel_pngs_stays_bounded(tmp_path):
    """Issue 17.6: ten 64 MP PNGs made inspect use 3.5 GB (every thread decoding one at once). Probes now
    decode under a pixel budget: one such image at a time."""
    import shutil
    import subprocess
    import sys

    from PIL import Image

    root = tmp_path / "ds" / "train" / "big"
    root.mkdir(parents=True)
    Image.new("RGB", (8000, 8000), (10, 120, 200)).save(root / "img0.png", compress_level=1)
    for i in range(1, 10):
        shutil.copy(root / "img0.png", root / f"img{i}.png")
    out = subprocess.run([sys.executable, "-c", _BIG_PNG_CHILD, str(tmp_path / "ds")], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["n"] == 10 and got["unreadable"] == []
    assert got["sizes"]["width"] == {"min": 8000, "median": 8000.0, "max": 8000}
    assert got["peak_mb"] < 900, got["peak_mb"]  # one 64 MP RGB image is 192 MB; ten at once would be ~2 GB
