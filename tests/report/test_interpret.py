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


def test_numbers_match_scikit_learn_and_brute_force():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(3)
    c, n = 7, 300
    probs = rng.dirichlet(np.ones(c), size=n)
    y = rng.integers(0, c - 1, size=n)  # the last class never occurs: zero support, zero_division=0
    interp = ClassificationInterpretation(probs, y, [f"k{i}" for i in range(c)])
    cm = confusion_matrix(y, probs.argmax(1), labels=list(range(c)))
    assert interp.confusion_matrix().tolist() == cm.tolist()
    assert interp.confusion_matrix([5, 1]).tolist() == cm[np.ix_([5, 1], [5, 1])].tolist()
    p, r, f, s = precision_recall_fscore_support(y, probs.argmax(1), labels=list(range(c)), zero_division=0)
    got = interp.per_class()
    for name, ref in (("precision", p), ("recall", r), ("f1", f), ("support", s)):
        assert np.allclose([got[name][f"k{i}"] for i in range(c)], ref), name
    brute = sorted(((f"k{i}", f"k{j}", int(cm[i, j])) for i in range(c) for j in range(c) if i != j and cm[i, j]),
                   key=lambda t: (-t[2], t[0], t[1]))
    assert interp.most_confused() == brute


def test_twenty_thousand_classes_never_build_a_dense_matrix():
    """Issue 17.6: 10,000 classes made the report build 10,000^2 matrices (0.8 GB each) and loop over them in
    Python. The interpretation counts in O(images + classes); the plot draws the most-confused classes."""
    import tracemalloc

    c, n = 20_000, 400
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, size=n)
    pred = np.where(np.arange(n) % 2 == 0, y, (y + 1) % c)  # every other image wrong, by one class
    probs = np.full((n, c), 1e-6, dtype=np.float32)
    probs[np.arange(n), pred] = 1.0
    interp = ClassificationInterpretation(probs, y, [f"c{i:05d}" for i in range(c)])
    tracemalloc.start()
    pairs = interp.most_confused()
    table = interp.per_class_table()
    fig = interp.plot_confusion_matrix()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(pairs) == len({(int(a), int(b)) for a, b in zip(y[1::2], pred[1::2])}) and pairs[0][2] >= 1
    assert len(table) == c
    assert len(fig.axes[0].get_xticklabels()) == 30
    assert "the 30 most-confused of 20000 classes" in fig.axes[0].get_title()
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # a dense 20,000^2 int64 matrix is 3.2 GB
