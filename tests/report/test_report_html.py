from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from visiontune.report import SECTIONS, figures
from visiontune.run import write_report

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")
PNG_PREFIX = "data:image/png;base64,"


def _check_images(text: str) -> int:
    srcs = IMG_SRC.findall(text)
    for src in srcs:
        assert src.startswith(PNG_PREFIX), src[:60]
        with Image.open(io.BytesIO(base64.b64decode(src[len(PNG_PREFIX):], validate=True))) as im:
            assert im.format == "PNG"
            im.load()
            assert im.width > 0 and im.height > 0
    return len(srcs)


def test_full_report(run_folder):
    out = write_report(run_folder)
    assert out == run_folder / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    assert "Not available" not in text  # every input exists
    # class counts, sizes, previews, 2 lr_find, schedule, history, confusion + top-loss thumbnails
    n_img = _check_images(text)
    assert n_img >= 9 + 1
    assert "http" not in IMG_SRC.sub("", text).lower()  # (base64 image data may spell anything)
    assert "<script" not in text.lower()
    assert "steepest descent / 10" in text  # the lr_find rule is named
    assert "actual <b>" in text  # top-loss captions
    assert len(text.encode()) < 2_000_000


def figure_clipping(fig) -> list:
    """Bounds of the axes (with their labels and titles) and figure titles that reach outside the figure."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    w, h = fig.bbox.width, fig.bbox.height
    boxes = [ax.get_tightbbox(r) for ax in fig.axes] + [t.get_window_extent(r) for t in fig.texts if t.get_text()]
    if fig._suptitle is not None:
        boxes.append(fig._suptitle.get_window_extent(r))
    return [b.bounds for b in boxes if b.x0 < -0.5 or b.y0 < -0.5 or b.x1 > w + 0.5 or b.y1 > h + 0.5]


def test_clipping_check_is_not_vacuous():
    fig = figures._figure(3, 2)
    fig.add_subplot().set_title("a title far too long for a figure three inches wide " * 2)
    assert figure_clipping(fig)


def _summary(text: str) -> str:
    return text[text.index('<section id="summary">'):text.index('<section id="timing">')]


def test_report_leads_with_the_answer(run_folder):
    import csv

    import numpy as np
    from sklearn.metrics import log_loss, precision_recall_fscore_support

    CLASSES = json.loads((run_folder / "classes.json").read_text())  # the fixture's ants, bees, wasps

    text = write_report(run_folder).read_text()
    h2 = re.findall(r"<h2>([^<]+)</h2>", text)
    assert h2[0] == "Summary" and h2[-1] == "Run configuration"
    top = _summary(text)
    rows = list(csv.DictReader(open(run_folder / "val_predictions.csv")))
    y = [CLASSES.index(r["target"]) for r in rows]
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    assert "<span>accuracy</span><b>0.9412</b><span>12 validation images</span>" in top
    assert "<span>TTA accuracy</span><b>0.9542</b><span>clean view + 4 augmented</span>" in top
    expect = log_loss(y, probs / probs.sum(1, keepdims=True), labels=[0, 1, 2])
    assert f"<span>log loss</span><b>{expect:.4f}</b>" in top
    assert "<span>wall time</span><b>1 min 35 s</b>" in top
    p, r, f, n = precision_recall_fscore_support(y, probs.argmax(1), labels=[0, 1, 2], zero_division=0)
    for i, c in enumerate(CLASSES):  # the per-class table, by class name
        cells = [f"{v:.4g}" for v in (p[i], r[i], f[i])] + [str(int(n[i]))]
        assert f"<tr><td>{c}</td>" + "".join(f'<td class="num">{v}</td>' for v in cells) + "</tr>" in top
    assert "7 ran, 1 skipped; the run is done." in top
    assert ('<td>lr find unfrozen</td><td class="skipped">skipped</td><td>the budget left (12.0 s) is below '
            "the sweep&#x27;s estimated cost (30.5 s)</td>") in top
    assert '<td>sgdr unfrozen</td><td>ran</td><td></td><td class="num">1 min 1 s</td>' in top


def test_a_skipped_unfrozen_phase_shows_every_step_skipped(run_folder):
    import json

    progress = json.loads((run_folder / "progress.json").read_text())
    progress["skipped"] = ["unfreeze: --fast (precompute only)"]
    (run_folder / "progress.json").write_text(json.dumps(progress))
    top = _summary(write_report(run_folder).read_text())
    assert "4 ran, 4 skipped; the run is done." in top
    assert '<td>unfreeze</td><td class="skipped">skipped</td><td>--fast (precompute only)</td>' in top
    assert ('<td>sgdr unfrozen</td><td class="skipped">skipped</td><td>the unfrozen phase was skipped '
            "(--fast (precompute only))</td>") in top


def test_configuration_reads_as_words(run_folder):
    text = write_report(run_folder).read_text()
    config = text[text.index('<section id="run-configuration">'):]
    assert "<tr><td>budget</td><td>not set</td></tr>" in config
    assert "<tr><td>fast</td><td>yes</td></tr><tr><td>gpu aug</td><td>no</td></tr>" in config
    assert "<tr><td>recipe / weights</td><td>not set</td></tr>" in config
    assert "<tr><td>mean</td><td>0.5, 0.5, 0.5</td></tr>" in config
    assert not re.search(r">(None|True|False|null|true|false)<", config)


def test_figures_are_not_clipped_and_name_classes(run_folder, monkeypatch):
    from visiontune.report import embed as report_embed

    drawn = []
    real = report_embed._fig_img
    monkeypatch.setattr(report_embed, "_fig_img", lambda fig, alt: drawn.append((alt, fig)) or real(fig, alt))
    write_report(run_folder)
    alts = [a for a, _ in drawn]
    assert len(drawn) >= 7 and "confusion matrix" in alts
    for alt, fig in drawn:
        assert figure_clipping(fig) == [], alt
    cm = dict(drawn)["confusion matrix"]
    assert [t.get_text() for t in cm.axes[0].get_xticklabels()] == ["ants", "bees", "wasps"]
    lr = dict(drawn)["lr_find loss against learning rate, head"]
    assert lr.axes[0].get_title() == "rule: steepest descent / 10"
    sched = dict(drawn)["learning rate per iteration"]
    (top,) = sched.axes[0].child_axes  # the phase names: a secondary x axis above the plot, not text on the curves
    assert [t.get_text() for t in top.get_xticklabels()] == ["head_aug", "unfrozen"]
    assert not sched.axes[0].texts


def test_long_lr_find_rule_is_wrapped_not_cut():
    rule = "steepest descent of the smoothed loss, divided by ten, never above the minimum's rate / 10 (fastai 0.7)"
    fig = figures.fig_lr_find([1e-5, 1e-3, 1e-1], [1.0, 0.5, 2.0], chosen_lr=1e-3, rule=rule, title="lr_find: unfrozen")
    assert figure_clipping(fig) == []
    assert "\n" in fig.axes[0].get_title()


def test_custom_out_path(run_folder, tmp_path):
    out = write_report(run_folder, out=tmp_path / "elsewhere" / "r.html")
    assert out.is_file() and not (run_folder / "report.html").exists()


def test_empty_run_folder(tmp_path):
    out = write_report(tmp_path)
    text = out.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    assert text.count("Not available") == len(SECTIONS)
    assert "Not available: progress.json and val_predictions.csv are missing" in text
    assert _check_images(text) == 0


def test_partial_and_damaged_run_folder(run_folder):
    (run_folder / "lr_find.json").write_text("{not json")
    (run_folder / "aug_previews.png").write_bytes(b"not a png")
    (run_folder / "data_summary.json").unlink()
    for p in (run_folder.parent / "data").rglob("*.jpg"):  # thumbnails missing -> skipped
        p.unlink()
    text = write_report(run_folder).read_text()
    assert "Not available: lr_find.json is missing" in text
    assert "Not available: aug_previews.png cannot be shown: not an image: the file holds text" in text
    assert "images not found" in text
    assert "<h2>Confusion matrix</h2>" in text
    _check_images(text)


def test_multi_label_run_skips_confusion(run_folder):
    pre = (run_folder / "preprocessing.json").read_text().replace('"single"', '"multi"')
    (run_folder / "preprocessing.json").write_text(pre)
    text = write_report(run_folder).read_text()
    assert "applies to single-label runs" in text
    _check_images(text)


def test_integer_targets_and_relative_thumbnails(run_folder):
    # targets/preds written as class indices are understood too
    import csv

    rows = list(csv.DictReader(open(run_folder / "val_predictions.csv")))
    classes = ["ants", "bees", "wasps"]
    with open(run_folder / "val_predictions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            r["target"], r["pred"] = classes.index(r["target"]), classes.index(r["pred"])
            w.writerow(r)
    text = write_report(run_folder).read_text()
    assert "Accuracy" in text and "actual <b>" in text


@pytest.mark.parametrize("n", [2, 25, 120])
def test_confusion_figure_scales(n):
    import numpy as np

    cm = np.random.default_rng(0).integers(0, 5, (n, n))
    png = figures.fig_to_png_bytes(figures.fig_confusion_matrix(cm, [f"c{i}" for i in range(n)]))
    assert png[:4] == b"\x89PNG" and len(png) < 400_000


def test_large_previews_are_shrunk(run_folder):
    import numpy as np

    noise = np.random.default_rng(1).integers(0, 255, (1000, 1000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(run_folder / "aug_previews.png")
    assert (run_folder / "aug_previews.png").stat().st_size > 2_000_000
    text = write_report(run_folder).read_text()
    _check_images(text)
    assert len(text.encode()) < 2_000_000


def test_thousands_of_classes_keep_the_report_small(run_folder):
    """Issue 17.6: with 3,000 classes the per-class table shows the 200 weakest classes (and says so), and the
    confusion matrix the 30 most-confused ones."""
    import csv

    import numpy as np

    classes = [f"k{i:04d}" for i in range(3000)]
    (run_folder / "classes.json").write_text(json.dumps(classes))
    with open(run_folder / "val_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(0)
    with open(run_folder / "val_predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fname", "target", "pred"])
        for i, r in enumerate(rows):
            w.writerow([r["fname"], classes[i], classes[i if i % 3 else int(rng.integers(0, 3000))]])
    text = write_report(run_folder).read_text()
    summary = _summary(text)
    assert "The 200 classes with the lowest F1 of 3000" in summary
    table = summary[summary.index("<h3>Per class</h3>"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 201  # header + 200 rows
    assert "k0000" in table  # a class that was wrong (F1 0) is among the weakest shown
    confusion = text[text.index("<h2>Confusion matrix</h2>"):]
    confusion = confusion[:confusion.index("</section>")]
    assert "data:image/png" in confusion and "Accuracy 0.6" in confusion  # 8 of 12 right
