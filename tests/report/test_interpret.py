"""Interpretation: values against hand counts and scikit-learn, readable at 120 classes, labels as plain text."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from visiontune.utils.display import png_bytes
from visiontune.report.interpret import ClassificationInterpretation, plot_confusion_matrix

CLASSES = ["cat", "dog", "fox"]
# rows: actual cat, cat, dog, dog, dog, fox, fox
PROBS = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.45, 0.1, 0.45],
                  [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]])
TARGETS = np.array([0, 0, 1, 1, 1, 2, 2])


def interp():
    return ClassificationInterpretation(PROBS, TARGETS, CLASSES, items=[f"im{i}.jpg" for i in range(7)])


def test_confusion_matrix_counts_by_hand():
    assert interp().confusion_matrix().tolist() == [[1, 1, 0], [2, 1, 0], [0, 1, 1]]


def test_most_confused_known_case():
    assert interp().most_confused() == [("dog", "cat", 2), ("cat", "dog", 1), ("fox", "dog", 1)]
    assert interp().most_confused(min_val=2) == [("dog", "cat", 2)]


def test_per_class_against_scikit_learn():
    t = interp().per_class()
    preds = PROBS.argmax(1)
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        expect = fn(TARGETS, preds, average=None, labels=[0, 1, 2], zero_division=0)
        assert [t[name][c] for c in CLASSES] == pytest.approx(list(expect))
    assert interp().per_class_table()[1] == ["dog", pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3), 3]


def test_most_correct_incorrect_uncertain():
    i = interp()
    assert i.most_correct(k=2).tolist() == [0, 2]            # p(actual) 0.8, 0.7
    assert i.most_incorrect(k=2).tolist() == [4, 6]          # p(actual) 0.1 each: ties keep row order
    assert i.most_incorrect("dog", k=5).tolist() == [4, 3]
    assert i.most_uncertain(k=1).tolist() == [4]             # 0.45 vs 0.45
    assert i.top_losses(3).tolist() == [4, 6, 1]     # p(actual) 0.1, 0.1, 0.3
    assert i.losses[4] == pytest.approx(-np.log(0.1))


def test_log_preds_and_bad_shapes():
    j = ClassificationInterpretation.from_log_preds(np.log(PROBS), TARGETS, CLASSES)
    assert j.confusion_matrix().tolist() == interp().confusion_matrix().tolist()
    with pytest.raises(ValueError, match=r"probs \(7, 3\).*targets \(6,\)"):
        ClassificationInterpretation(PROBS, TARGETS[:6], CLASSES)
    with pytest.raises(ValueError, match="3 columns for 2 class names"):
        ClassificationInterpretation(PROBS, TARGETS, CLASSES[:2])


def test_confusion_plot_names_classes_and_stays_readable_at_120():
    fig = interp().plot_confusion_matrix()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == CLASSES
    rng = np.random.default_rng(0)
    n = 120
    cm = np.diag(rng.integers(5, 10, n))
    cm[7, 9] = 6
    cm[50, 3] = 4
    fig = plot_confusion_matrix(cm, [f"breed{i}" for i in range(n)], max_classes=30)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 30 and {"breed7", "breed9", "breed50", "breed3"} <= set(labels)
    assert "30 most-confused of 120" in fig.axes[0].get_title()
    assert png_bytes(fig)[:4] == b"\x89PNG"


def test_labels_are_plain_text_not_mathtext():
    fig = plot_confusion_matrix(np.eye(2, dtype=int), ["price $5 and $10", r"cost$\foo$x"])
    assert fig._repr_png_()[:4] == b"\x89PNG"   # a mathtext parse error would raise while drawing
    assert fig.axes[0].get_xticklabels()[0].get_text() == r"price \$5 and \$10"


def test_top_losses_plot_titles():
    fig = interp().plot_top_losses(4, images=lambda i: np.zeros((8, 8, 3), np.uint8))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("cat / dog\nloss 2.30")
    assert len(titles) == 4
