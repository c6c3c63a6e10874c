"""The lesson's last gaps: predict on one image, interpretation from a learner, fit's value in a notebook,
lr_find long enough on images, unfreeze under precompute, accuracy on mismatched shapes, multi-label F2."""
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix, fbeta_score

from visiontune import accuracy, f2, fbeta
from visiontune.report.interpret import ClassificationInterpretation
from visiontune.train.fit_log import FitLogs
from visiontune.train.learner import LR_FIND_MIN_ITERS


def test_predict_one_image_equals_the_batch_prediction(make_learner, tiny_path):
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 1)
    batch = np.exp(learn.predict())
    fnames = learn.data.val_ds.fnames
    for i in (0, len(fnames) - 1):
        path = tiny_path / fnames[i]
        name, idx, probs = learn.predict(path)
        assert probs.shape == (2,) and probs.sum() == pytest.approx(1, abs=1e-4)
        assert np.abs(probs - batch[i]).max() < 2e-3, (probs, batch[i])
        assert idx == int(batch[i].argmax()) and name == learn.data.classes[idx]
        with Image.open(path) as im:  # a PIL image gives the same answer as its file
            assert np.abs(learn.predict(im)[2] - probs).max() < 1e-5
        assert np.abs(learn.predict(str(path))[2] - probs).max() < 1e-5
    # the lesson's meanings stay: the validation set, the test set
    assert learn.predict().shape == (len(fnames), 2)
    assert learn.predict(is_test=True).shape == (len(learn.data.test_ds), 2)
    assert np.array_equal(learn.predict(True), learn.predict(is_test=True))  # the lesson's positional is_test
    with pytest.raises(TypeError, match="image file path or a PIL image"):
        learn.predict(3.5)


def test_interpret_from_a_learner_matches_scikit_learn(make_learner, tiny_path):
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 1)
    interp = learn.interpret()
    log_preds, y = learn.predict_with_targs()
    assert interp.confusion_matrix().tolist() == confusion_matrix(y, log_preds.argmax(1), labels=[0, 1]).tolist()
    assert interp.classes == list(learn.data.classes)
    assert interp.items[0] == tiny_path / learn.data.val_ds.fnames[0] and interp.items[0].is_file()
    same = ClassificationInterpretation.from_learner(learn)
    assert np.array_equal(same.probs, interp.probs)
    fig = interp.plot_top_losses(2)  # opens the validation photos themselves
    assert fig.axes[0].images and fig._repr_png_()[:4] == b"\x89PNG"
    tta = learn.interpret(tta=True, n_aug=2)
    assert np.allclose(tta.probs, np.exp(learn.TTA(n_aug=2)[0]))


def test_fit_value_is_not_echoed_in_a_notebook(make_learner):
    from IPython.core.formatters import DisplayFormatter

    learn = make_learner(precompute=True)
    logs = learn.fit(1e-2, 2)
    assert isinstance(logs, FitLogs) and len(logs) == 2 and logs[-1]["epoch"] == 1  # still the per-epoch logs
    data, meta = DisplayFormatter().format(logs)
    assert data == {} and meta == {}  # IPython publishes no Out[] for it
    assert repr(logs).startswith("FitLogs(2 epochs, last: epoch 1, val_loss ") and len(repr(logs)) < 120


def test_sched_plots_display_themselves(make_learner):
    from visiontune.utils.display import DisplayFigure

    learn = make_learner(precompute=True)
    learn.lr_find(num_it=20)
    learn.fit(1e-2, 1)
    for fig in (learn.sched.plot(), learn.sched.plot_lr(), learn.sched.plot_loss()):
        assert isinstance(fig, DisplayFigure) and fig._repr_png_()[:4] == b"\x89PNG"


def test_lr_find_on_images_after_unfreeze_sweeps_enough_and_says_so(make_learner, capsys):
    learn = make_learner(precompute=False, bs=8, verbose=True)  # 24 images: 3 iterations an epoch
    learn.unfreeze()
    sched = learn.lr_find(end_lr=1e-3)  # a gentle sweep: it runs to the end
    assert len(sched.lrs) == LR_FIND_MIN_ITERS
    out = capsys.readouterr().out
    assert "lr_find: one epoch is 3 iterations, too few for a curve; sweeping 100 iterations over the " \
           "training data 34 times" in out


def test_unfreeze_with_precompute_warns_once_and_says_what_to_do(make_learner):
    learn = make_learner(precompute=True)
    with pytest.warns(UserWarning, match=r"precompute=True: fit still trains only the head.*learn.precompute = False"):
        learn.unfreeze()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.unfreeze()  # once
        learn.freeze()
    quiet = make_learner(precompute=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.unfreeze()


def test_accuracy_names_both_shapes_when_they_disagree():
    log_preds = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    y = np.array([0, 1, 1])
    assert accuracy(log_preds, y) == 1.0
    assert accuracy(log_preds, y.reshape(-1, 1)) == 1.0
    with pytest.raises(ValueError, match=r"preds has shape \(2,\) and targs \(3,\)"):
        accuracy(np.mean(np.exp(log_preds), 0), y)  # the notes' slip: a mean over rows as predictions
    with pytest.raises(ValueError, match=r"preds has shape \(3, 2\) and targs \(4,\)"):
        accuracy(log_preds, np.array([0, 1, 1, 0]))


def test_fbeta_against_scikit_learn():
    rng = np.random.default_rng(0)
    targs = (rng.random((50, 17)) < 0.25).astype(np.float32)
    preds = np.clip(targs * 0.5 + rng.random((50, 17)) * 0.6, 0, 1)
    for beta, thresh in ((2, 0.2), (2, 0.5), (1, 0.35), (0.5, 0.6)):
        expect = fbeta_score(targs, preds > thresh, beta=beta, average="samples", zero_division=0)
        assert fbeta(preds, targs, beta=beta, thresh=thresh) == pytest.approx(expect, abs=1e-12)
    assert f2(preds, targs) == pytest.approx(fbeta_score(targs, preds > 0.2, beta=2, average="samples",
                                                         zero_division=0))
    assert f2.__name__ == "f2"
    with pytest.raises(ValueError, match=r"fbeta: preds has shape \(50, 17\) and targs \(50, 16\)"):
        fbeta(preds, targs[:, :16])
