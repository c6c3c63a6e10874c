"""Data-layer audit findings, each pinned by a test.

1. Symbolic links must not let labels-CSV ids reach files outside the image folder, and a "not an
   image" reason names the kind of file, never its contents (reasons are printed and saved).
2. ``get_cv_idxs`` raises for a fold that does not fit (fastai 0.7 silently returned fewer rows).
3. Only the raster formats of ``IMAGE_EXTENSIONS`` are opened: an EPS file named ``.jpg`` never
   reaches PIL's Ghostscript plugin.
4. A very thin image (1 x 30,000) cannot blow up the training transforms' memory, and ordinary images
   give the same pixels as before.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image
from vt_zoo import spy_opens

from visiontune.data import ImageClassifierData, get_cv_idxs
from visiontune.imaging.decode import load_image
from visiontune.imaging.limits import ImageLoadError
from visiontune.imaging.probe import image_header, probe_image
from visiontune.data.errors import SkippedFilesWarning
from visiontune.transforms.augment import item_random_state
from visiontune.transforms.core import CropType, imagenet_stats, limit_aspect, tfms_from_stats

TFMS = tfms_from_stats(imagenet_stats, 32)
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def _img(path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")
    return path


# ---------------------------------------------------------------------------------------------
# 1. symbolic links out of the data folder; reasons that quote file contents
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def csvsym(tmp_path):
    root = tmp_path / "csvsym"
    for i in range(4):
        _img(root / "train" / f"r{i}.jpg", (200, 40, 40))
        _img(root / "train" / f"b{i}.jpg", (40, 40, 200))
    outside = tmp_path / "outside"
    _img(outside / "secret.jpg", (0, 255, 0))
    (outside / "passwd").write_bytes(PASSWD)
    return root, outside


def _csv(root, extra):
    rows = [f"r{i},red" for i in range(4)] + [f"b{i},blue" for i in range(4)] + extra
    (root / "labels.csv").write_text("\n".join(["id,label"] + rows) + "\n")
    return root / "labels.csv"



def test_a_linked_folder_cannot_take_a_csv_id_outside_the_image_folder(csvsym, monkeypatch):
    root, outside = csvsym
    (root / "train" / "sub").symlink_to(outside, target_is_directory=True)
    csv = _csv(root, ["sub/secret,red"])
    opened = spy_opens(monkeypatch, resolve=os.path.realpath)
    with pytest.raises(ValueError) as e:
        ImageClassifierData.from_csv(root, "train", csv, tfms=TFMS, suffix=".jpg", num_workers=0, val_idxs=[0, 4])
    assert str(e.value).startswith(
        "labels.csv: file id(s) whose path leaves the 'train' folder through a symbolic link, refused: "
        "row 8 (line 10) 'sub/secret'. Only files inside ")
    assert not [p for p in opened if p.startswith(os.path.realpath(outside))]


def test_a_linked_file_is_refused_and_its_contents_never_quoted(csvsym, monkeypatch):
    root, outside = csvsym
    (root / "train" / "pw.jpg").symlink_to(outside / "passwd")
    csv = _csv(root, ["pw,red"])
    opened = spy_opens(monkeypatch, resolve=os.path.realpath)
    with warnings.catch_warnings(record=True) as rec, pytest.raises(ValueError) as e:
        warnings.simplefilter("always")
        ImageClassifierData.from_csv(root, "train", csv, tfms=TFMS, suffix=".jpg", num_workers=0, val_idxs=[0, 4])
    assert "refused: row 8 (line 10) 'pw'" in str(e.value) and "leaves the 'train' folder" in str(e.value)
    assert "root:x" not in str(e.value) and not any("root:x" in str(w.message) for w in rec)
    assert os.path.realpath(outside / "passwd") not in opened


def test_links_that_stay_inside_and_a_linked_image_folder_still_work(csvsym, tmp_path):
    root, _ = csvsym
    (root / "train" / "alias").symlink_to(root / "train", target_is_directory=True)  # inside: fine
    (root / "train" / "r_copy.jpg").symlink_to("r0.jpg")
    csv = _csv(root, ["alias/b0,blue", "r_copy,red"])
    data = ImageClassifierData.from_csv(root, "train", csv, tfms=TFMS, suffix=".jpg", num_workers=0, val_idxs=[0, 4])
    assert len(data.trn_ds) + len(data.val_ds) == 10 and data.skipped == []
    # the whole image folder a link to another disk: its files are inside the (resolved) image folder
    other = tmp_path / "linked"
    other.mkdir()
    (other / "train").symlink_to(root / "train", target_is_directory=True)
    data = ImageClassifierData.from_csv(other, "train", csv, tfms=TFMS, suffix=".jpg", num_workers=0, val_idxs=[0, 4])
    assert len(data.trn_ds) + len(data.val_ds) == 10


def test_a_not_an_image_reason_describes_the_file_and_never_quotes_it(tmp_path):
    p = tmp_path / "pw.jpg"
    p.write_bytes(PASSWD)
    reason = probe_image(p)
    assert reason == "not an image: the file holds text (a text, CSV or config file saved under an image name?)"
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    assert "root:x" not in str(e.value) and "/bin/bash" not in str(e.value)
    # through from_paths: the skip warning and data.skipped name the kind, not the content
    for c, color in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
        for split in ("train", "valid"):
            for i in range(2):
                _img(tmp_path / "d" / split / c / f"{i}.jpg", color)
    (tmp_path / "d" / "train" / "a" / "pw.jpg").write_bytes(PASSWD)
    with pytest.warns(SkippedFilesWarning) as rec:
        data = ImageClassifierData.from_paths(tmp_path / "d", tfms=TFMS, num_workers=0)
    assert data.skipped == [("train/a/pw.jpg", reason)]
    assert "root:x" not in str(rec[0].message) and "train/a/pw.jpg: not an image: the file holds text" in str(rec[0].message)


@pytest.mark.parametrize("data, reason", [
    (b"<!DOCTYPE html><html><body>secret token 1234</body></html>",
     "not an image: the file holds HTML/XML text (a saved web page or an error page?)"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
     "not an image: the file holds text, a Git LFS pointer (run `git lfs pull` to fetch the real file)"),
])
def test_other_kinds_of_text_are_named_not_quoted(tmp_path, data, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    assert probe_image(p) == reason


# ---------------------------------------------------------------------------------------------
# 2. get_cv_idxs
# ---------------------------------------------------------------------------------------------
def _fastai(n, cv_idx=4, val_pct=0.2, seed=42):
    np.random.seed(seed)
    n_val = int(val_pct * n)
    idx_start = cv_idx * n_val
    idxs = np.random.permutation(n)
    return idxs[idx_start:idx_start + n_val]


@pytest.mark.parametrize("n", [0, 3, 10, 37, 1000, 10222])
@pytest.mark.parametrize("val_pct", [0.1, 0.2, 0.25, 0.3, 0.5])
def test_get_cv_idxs_folds_that_fit_are_fastais(n, val_pct):
    n_val = int(val_pct * n)
    fit = range(n // n_val) if n_val else range(6)
    for cv_idx in fit:
        np.testing.assert_array_equal(get_cv_idxs(n, cv_idx, val_pct, seed=7), _fastai(n, cv_idx, val_pct, seed=7))
        assert len(get_cv_idxs(n, cv_idx, val_pct)) == n_val


def test_get_cv_idxs_refuses_a_fold_past_the_end():
    with pytest.raises(ValueError) as e:
        get_cv_idxs(10, val_pct=0.3)  # the default cv_idx=4: fastai returned [] here
    assert str(e.value) == (
        "get_cv_idxs: fold cv_idx=4 of val_pct=0.3 (3 rows a fold) does not fit in n=10 rows: it would start at "
        "row 12 and end at 15. cv_idx must be in 0..2 for this val_pct (the default cv_idx=4 is fastai's fifth "
        "fold, which always fits for val_pct <= 0.2)")
    with pytest.raises(ValueError, match=r"fold cv_idx=3 of val_pct=0.3 \(300 rows a fold\) does not fit in n=1000 rows"
                                         r": it would start at row 900 and end at 1200. cv_idx must be in 0..2 "):
        get_cv_idxs(1000, cv_idx=3, val_pct=0.3)  # fastai returned 100 rows of a 300-row fold
    with pytest.raises(ValueError, match=r"cv_idx must be in 0\.\.9 "):
        get_cv_idxs(100, cv_idx=10, val_pct=0.1)


@pytest.mark.parametrize("val_pct", [0, 0.0, 1, 1.0, -0.2, 1.5, float("nan"), float("inf"), True, "0.2", None])
def test_get_cv_idxs_refuses_a_val_pct_outside_0_1(val_pct):
    with pytest.raises(ValueError, match=r"^get_cv_idxs: val_pct must be a number strictly between 0 and 1 \(the "
                                         r"fraction of rows for validation, e\.g\. 0\.2\), got "):
        get_cv_idxs(100, cv_idx=0, val_pct=val_pct)


@pytest.mark.parametrize("cv_idx", [-1, 1.5, True])
def test_get_cv_idxs_refuses_a_negative_or_fractional_fold(cv_idx):
    with pytest.raises(ValueError, match=r"^get_cv_idxs: cv_idx must be an int >= 0 \(which fold\), got "):
        get_cv_idxs(100, cv_idx=cv_idx)


# ---------------------------------------------------------------------------------------------
# 3. only raster formats: no EPS (Ghostscript), PDF ...
# ---------------------------------------------------------------------------------------------
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
       b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")


def test_an_eps_file_named_jpg_never_reaches_the_ghostscript_plugin(tmp_path, monkeypatch):
    calls = []

    def no_eps(self, *a, **k):
        calls.append(self)
        raise AssertionError("EPS plugin used")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", no_eps)
    monkeypatch.setattr(EpsImagePlugin, "gs_windows_binary", None, raising=False)
    p = tmp_path / "x.jpg"
    p.write_bytes(EPS)
    reason = ("not an image: the file is a PostScript/EPS document (vector graphics; only JPEG, PNG, GIF, BMP, TIFF, "
              "WebP or PPM/PGM/PBM images are read)")
    assert probe_image(p) == reason
    with pytest.raises(ImageLoadError) as e:
        image_header(p)
    assert e.value.reason == reason
    assert calls == []


def test_a_pdf_named_png_is_refused_and_real_formats_still_open(tmp_path):
    p = tmp_path / "doc.png"
    p.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n")
    assert probe_image(p) == "not an image: the file is a PDF document (only JPEG, PNG, GIF, BMP, TIFF, WebP or " \
                             "PPM/PGM/PBM images are read)"
    # a format not in IMAGE_EXTENSIONS (TGA) under a .jpg name is refused too
    Image.new("RGB", (8, 6), (1, 2, 3)).save(tmp_path / "tga.jpg", format="TGA")
    assert probe_image(tmp_path / "tga.jpg").startswith("not a recognised image format")
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif"),
                     ("WEBP", "webp"), ("PPM", "ppm")):
        f = tmp_path / f"ok.{ext}"
        Image.new("RGB", (8, 6), (10, 20, 30)).save(f, format=fmt)
        assert probe_image(f) is None and load_image(f).size == (8, 6), fmt
    Image.new("RGB", (8, 6)).save(tmp_path / "mpo.jpg", format="MPO", save_all=True,
                                  append_images=[Image.new("RGB", (8, 6))])  # camera multi-picture JPEG
    assert probe_image(tmp_path / "mpo.jpg") is None


# ---------------------------------------------------------------------------------------------
# 4. very thin images in the transforms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(300, 200), (200, 300), (500, 64), (64, 512), (1, 8)])
def test_ordinary_images_pass_the_aspect_limit_untouched(size):
    """Up to 8:1 the transforms see the very same image object, so their pixels cannot change."""
    img = Image.new("RGB", size)
    assert limit_aspect(img) is img


class _Record:
    """An augmentation step that records the size of the image it is given (just after the resize)."""

    item_seedable = True

    def __init__(self):
        self.sizes = []

    def __call__(self, img):
        self.sizes.append(img.size)
        return img


@pytest.mark.parametrize("size", [(1, 30000), (30000, 1), (2, 30000)])
@pytest.mark.parametrize("crop_type", [CropType.RANDOM, CropType.CENTER])
def test_a_thin_image_stays_small_through_the_transforms(tmp_path, size, crop_type):
    p = tmp_path / "thin.png"
    Image.new("RGB", size, (200, 10, 10)).save(p)
    assert p.stat().st_size < 2000
    img = load_image(p)
    rec = _Record()
    sz = 32
    trn, val = tfms_from_stats(imagenet_stats, sz, aug_tfms=[rec], max_zoom=1.5, crop_type=crop_type)
    for seed in range(4):
        with item_random_state(seed):
            x = trn(img)
        assert x.shape == (3, sz, sz) and x.dtype == torch.uint8
        assert x[0].float().mean() > 150  # the red line, not padding
    assert rec.sizes and all(w * h <= 48 * 48 * 8 for w, h in rec.sizes), rec.sizes  # was 48 x 1,440,000
    assert val(img).shape == (3, sz, sz)


def test_limit_aspect_cuts_the_centre():
    img = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(1, 100).repeat(3, 0)[..., None].repeat(3, 2))
    out = limit_aspect(img, 8)  # 100 x 3 -> 24 x 3, the middle
    assert out.size == (24, 3) and np.asarray(out)[0, :, 0].tolist() == list(range(38, 62))
    tall = Image.new("RGB", (3, 25))
    assert limit_aspect(tall, 8).size == (3, 24) and limit_aspect(Image.new("RGB", (3, 24)), 8).size == (3, 24)
    sq = Image.new("RGB", (50, 40))
    assert limit_aspect(sq) is sq and math.isfinite(limit_aspect(Image.new("RGB", (1, 1))).size[0])


def test_a_thin_jpeg_stays_small_on_the_batched_decode_path(tmp_path, monkeypatch):
    """decode_presized(decoder='torchvision') (nvJPEG on CUDA, also runs on the CPU) resized the short side
    of a 1 x 30000 JPEG to the target: cut to 8:1 first, as the PIL path does."""
    import torchvision.transforms.v2.functional as TF

    from visiontune.data.gpu_decode import decode_presized

    p = tmp_path / "thin.jpg"
    Image.new("RGB", (30000, 2), (200, 10, 10)).save(p, quality=95)
    sizes = []
    resize = TF.resize

    def spy(img, size, *args, **kwargs):
        out = resize(img, size, *args, **kwargs)
        sizes.append(tuple(out.shape[-2:]))
        return out

    monkeypatch.setattr(TF, "resize", spy)
    x = decode_presized([p], 32, decoder="torchvision")
    assert x.shape == (1, 3, 32, 32) and x[0, 0].float().mean() > 150
    assert sizes == [(32, 256)]  # the central 2 x 16 (8:1), scaled 16x; was 32 x 480,000
