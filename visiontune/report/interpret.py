"""Looking at results, the lesson's way and fastai 2's way: one place for the report and the Python API.

``ClassificationInterpretation`` takes what a single-label validation pass gives (probabilities,
targets, class names, and optionally the file of each row) and answers the notes' questions:
which classes are confused, which images are most correct, most incorrect and most uncertain,
and how good each class is (precision, recall, F1 from scikit-learn).

>>> import numpy as np
>>> probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
>>> interp = ClassificationInterpretation(probs, np.array([0, 1, 1, 1]), ["ants", "bees"])
>>> interp.confusion_matrix().tolist()
[[1, 0], [1, 2]]
>>> interp.most_confused()
[('bees', 'ants', 1)]
>>> interp.most_uncertain(k=1).tolist()
[2]
>>> round(interp.per_class()["recall"]["bees"], 4)
0.6667
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ClassificationInterpretation", "plot_confusion_matrix", "MAX_MATRIX_CLASSES"]

THUMB_SIDE = 256  # plot_top_losses decodes big JPEGs at about this size (draft mode)
MAX_MATRIX_CLASSES = 30
"""A confusion matrix with more classes shows only the most-confused ones (120 breeds stay readable)."""


class ClassificationInterpretation:
    """Interpretation of single-label predictions.

    Args:
        probs: ``(n, c)`` class probabilities (``np.exp`` of the lesson's ``log_preds``).
        targets: ``(n,)`` class indices.
        classes: the ``c`` class names.
        items: optional ``n`` entries (file names) shown beside the rows.
    """

    def __init__(self, probs, targets, classes: Sequence, items: Sequence | None = None):
        probs = np.asarray(probs, dtype=np.float64)
        targets = np.asarray(targets).reshape(-1)
        if probs.ndim != 2 or probs.shape[0] != targets.shape[0]:
            raise ValueError(f"probs must be (n, classes) with one row per target: got probs {probs.shape} and "
                             f"targets {targets.shape}")
        if probs.shape[1] != len(classes):
            raise ValueError(f"probs has {probs.shape[1]} columns for {len(classes)} class names")
        if items is not None and len(items) != len(targets):
            raise ValueError(f"{len(items)} items for {len(targets)} predictions")
        self.probs, self.targets = probs, targets.astype(np.int64)
        self.classes = [str(c) for c in classes]
        self.items = list(items) if items is not None else None
        self.preds = probs.argmax(axis=1)
        p_true = probs[np.arange(len(targets)), self.targets]
        self.losses = -np.log(np.clip(p_true, 1e-12, 1.0))

    @classmethod
    def from_log_preds(cls, log_preds, targets, classes: Sequence, items: Sequence | None = None):
        """From the lesson's ``log_preds`` (what ``learn.predict()`` / ``learn.TTA()[0]`` return)."""
        return cls(np.exp(np.asarray(log_preds, dtype=np.float64)), targets, classes, items)

    @classmethod
    def from_learner(cls, learn, tta: bool = False, n_aug: int = 4) -> "ClassificationInterpretation":
        """The validation set's predictions of a single-label ``ConvLearner`` (``learn.interpret()``).

        ``tta=True``: the TTA predictions (``n_aug`` augmented views and the clean one, averaged).
        Items are the validation images' paths, so ``plot_top_losses`` shows the photos.
        """
        kind = getattr(learn, "kind", "single")
        if kind != "single":
            raise ValueError(f"interpretation needs single-label data; this learner's data is {kind!r} "
                             "(for multi-label data use fbeta / accuracy_thresh on learn.predict())")
        data = learn.data
        log_preds, y = learn.TTA(n_aug=n_aug) if tta else learn.predict_with_targs()
        ds = data.val_ds
        fnames = getattr(ds, "fnames", None)
        items = None
        if fnames is not None and len(fnames) == len(y):
            root = Path(getattr(ds, "path", None) or data.path)
            items = [root / f for f in fnames]
        return cls.from_log_preds(log_preds, y, data.classes, items)

    # ------------------------------------------------------------------------------------- numbers
    def confusion_matrix(self, classes=None) -> np.ndarray:
        """Counts, rows actual and columns predicted (scikit-learn's ``confusion_matrix``); ``classes``
        (indices) for the rows and columns of those classes only, so 10,000 classes need no 10,000^2 array.

        >>> i = ClassificationInterpretation(np.eye(3)[[0, 2, 2]], np.array([0, 1, 2]), ["a", "b", "c"])
        >>> i.confusion_matrix([1, 2]).tolist()
        [[0, 1], [0, 1]]
        """
        c = len(self.classes)
        shown = np.arange(c) if classes is None else np.asarray(classes, dtype=np.int64).reshape(-1)
        pos = np.full(c, -1, dtype=np.int64)
        pos[shown] = np.arange(len(shown))
        t, p = pos[self.targets], pos[self.preds]
        keep = (t >= 0) & (p >= 0)
        k = len(shown)
        return np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """``(actual, predicted, count)`` off the diagonal with ``count >= min_val``, most frequent first."""
        wrong = self.targets != self.preds
        pairs, counts = np.unique(np.stack([self.targets[wrong], self.preds[wrong]], axis=1), axis=0,
                                  return_counts=True)
        out = [(self.classes[i], self.classes[j], int(n)) for (i, j), n in zip(pairs.tolist(), counts)
               if n >= max(min_val, 1)]
        return sorted(out, key=lambda x: (-x[2], x[0], x[1]))

    def most_confused_classes(self, k: int) -> np.ndarray:
        """Indices of the ``k`` classes in the most confusions (as actual or as predicted), in class order."""
        c = len(self.classes)
        wrong = self.targets != self.preds
        errors = np.bincount(self.targets[wrong], minlength=c) + np.bincount(self.preds[wrong], minlength=c)
        return np.sort(np.argsort(-errors, kind="stable")[:k])

    def top_losses(self, k: int | None = None) -> np.ndarray:
        """Row indices by decreasing loss (``-log p(actual)``)."""
        order = np.argsort(-self.losses, kind="stable")
        return order if k is None else order[:k]

    def _ranked(self, mask: np.ndarray, key: np.ndarray, k: int) -> np.ndarray:
        idx = np.flatnonzero(mask)
        return idx[np.argsort(key[idx], kind="stable")][:k]

    def most_correct(self, cls=None, k: int = 4) -> np.ndarray:
        """Correct rows (of class ``cls``, name or index, if given) with the highest p(actual)."""
        return self._ranked((self.preds == self.targets) & self._of(cls), self.losses, k)

    def most_incorrect(self, cls=None, k: int = 4) -> np.ndarray:
        """Wrong rows (actual class ``cls`` if given) with the lowest p(actual): the surest mistakes."""
        return self._ranked((self.preds != self.targets) & self._of(cls), -self.losses, k)

    def most_uncertain(self, cls=None, k: int = 4) -> np.ndarray:
        """Rows whose top two probabilities are closest (a 2-class model: p near 0.5)."""
        top2 = np.sort(self.probs, axis=1)[:, -2:] if self.probs.shape[1] > 1 else np.ones((len(self.probs), 2))
        return self._ranked(self._of(cls), top2[:, 1] - top2[:, 0], k)

    def _of(self, cls) -> np.ndarray:
        if cls is None:
            return np.ones(len(self.targets), dtype=bool)
        i = cls if isinstance(cls, (int, np.integer)) else self.classes.index(str(cls))
        return self.targets == i

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class (scikit-learn's ``precision_recall_fscore_support``
        with ``zero_division=0``, counted in one pass, so thousands of classes cost nothing).

        Returns ``{"precision": {class: value}, "recall": ..., "f1": ..., "support": ...}``.
        """
        c = len(self.classes)
        right = self.targets == self.preds
        tp = np.bincount(self.targets[right], minlength=c).astype(np.float64)
        support = np.bincount(self.targets, minlength=c).astype(np.float64)
        predicted = np.bincount(self.preds, minlength=c).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(predicted > 0, tp / predicted, 0.0)
            r = np.where(support > 0, tp / support, 0.0)
            f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        return {name: dict(zip(self.classes, map(float, values)))
                for name, values in (("precision", p), ("recall", r), ("f1", f), ("support", support))}

    def per_class_table(self) -> list[list]:
        """Rows ``[class, precision, recall, f1, support]`` (for a report table or a DataFrame)."""
        t = self.per_class()
        return [[c, t["precision"][c], t["recall"][c], t["f1"][c], int(t["support"][c])] for c in self.classes]

    # ------------------------------------------------------------------------------------- plots
    def plot_confusion_matrix(self, max_classes: int = MAX_MATRIX_CLASSES, title: str = "Confusion matrix"):
        """The matrix with class names; above ``max_classes`` classes only the most-confused ones."""
        c = len(self.classes)
        if c <= max_classes:
            return plot_confusion_matrix(self.confusion_matrix(), self.classes, max_classes=max_classes, title=title)
        shown = self.most_confused_classes(max_classes)
        return plot_confusion_matrix(self.confusion_matrix(shown), [self.classes[i] for i in shown],
                                     max_classes=max_classes, title=title + f"\nthe {len(shown)} most-confused of {c} classes")

    def plot_top_losses(self, k: int = 9, images=None, figsize=None):
        """The ``k`` rows with the highest loss: predicted / actual, loss and p(actual) as titles.

        ``images``: a function ``row index -> image`` (HWC array or PIL image); by default the ``items``
        are opened as image files.
        """
        return self.plot_rows(self.top_losses(k), "top losses: predicted / actual, loss, p(actual)", images, figsize)

    def plot_rows(self, rows, title: str = "predicted / actual, loss, p(actual)", images=None, figsize=None):
        """The notes' ``plot_val_with_title``: the images of ``rows`` (say ``interp.most_incorrect("bees")``),
        each titled predicted / actual, its loss and p(actual).

        >>> probs = np.array([[0.9, 0.1], [0.3, 0.7]])
        >>> i = ClassificationInterpretation(probs, np.array([0, 0]), ["ants", "bees"])
        >>> fig = i.plot_rows(i.most_incorrect("ants"), "most incorrect ants", images=lambda r: np.zeros((4, 4, 3)))
        >>> fig.axes[0].get_title()
        'bees / ants\\nloss 1.20, p 0.30'
        """
        from ..utils.display import new_figure, plain_text

        rows = [int(r) for r in np.asarray(rows).reshape(-1)]
        n = len(rows)
        cols = int(np.ceil(np.sqrt(max(n, 1))))
        n_rows = max(1, int(np.ceil(n / cols)))
        fig = new_figure(*(figsize or (min(3.0 * cols, 12.0), min(3.2 * n_rows + 0.4, 14.0))))
        for pos, i in enumerate(rows):
            ax = fig.add_subplot(n_rows, cols, pos + 1)
            im = self._image(i, images)
            if im is not None:
                ax.imshow(np.asarray(im))
            ax.set_axis_off()
            ax.set_title(plain_text(f"{self.classes[self.preds[i]]} / {self.classes[self.targets[i]]}\n")
                         + f"loss {self.losses[i]:.2f}, p {np.exp(-self.losses[i]):.2f}", fontsize=9)
        fig.suptitle(plain_text(title) if n else plain_text(title) + ": no such image")
        return fig

    def _image(self, i: int, images):
        if images is not None:
            return images(i)
        if self.items is None:
            return None
        from ..imaging.decode import load_image

        return load_image(self.items[i], target_size=THUMB_SIDE)


def plot_confusion_matrix(cm, classes: Sequence, max_classes: int = MAX_MATRIX_CLASSES, normalize: bool = False,
                          title: str = "Confusion matrix", cmap: str = "Blues"):
    """The lesson's ``plot_confusion_matrix(cm, classes)``: a labelled matrix, rows actual, columns predicted.

    With more than ``max_classes`` classes, only the classes involved in the most confusions are drawn
    (the title says how many of how many), so 120 dog breeds stay readable.

    >>> fig = plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["cats", "dogs"])
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['cats', 'dogs']
    """
    from ..utils.display import new_figure, plain_text

    cm = np.asarray(cm)
    names = [str(c) for c in classes]
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"cm is {cm.shape} for {len(names)} classes")
    shown = np.arange(len(names))
    subtitle = ""
    if len(names) > max_classes:
        off = cm - np.diag(np.diag(cm))
        errors = off.sum(axis=0) + off.sum(axis=1)
        shown = np.sort(np.argsort(-errors, kind="stable")[:max_classes])
        subtitle = f"\nthe {max_classes} most-confused of {len(names)} classes"
    sub = cm[np.ix_(shown, shown)].astype(np.float64)
    if normalize:
        sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1, None)
    n = len(shown)
    side = min(max(4.0, 0.32 * n + 2.0), 14.0)
    fig = new_figure(side, side)
    ax = fig.add_subplot()
    ax.imshow(sub, cmap=cmap, interpolation="nearest")
    fs = 9 if n <= 12 else 7 if n <= 20 else 5
    upright = n <= 6 and max((len(names[i]) for i in shown), default=0) <= 10  # a few short names read level
    ax.set_xticks(range(n), [plain_text(names[i]) for i in shown], rotation=0 if upright else 90, fontsize=fs)
    ax.set_yticks(range(n), [plain_text(names[i]) for i in shown], fontsize=fs)
    if n <= 15:
        thresh = sub.max() / 2 if sub.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{sub[i, j]:.2f}" if normalize else str(int(sub[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if sub[i, j] > thresh else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(plain_text(title + subtitle), fontsize=10)
    return fig
