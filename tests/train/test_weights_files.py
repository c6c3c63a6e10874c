"""Issue 17, item 11: the Python API's weights files.

* ``learn.save(name)`` / ``learn.load(name)`` work for any name (``224_all.v2``: the dot is part of it);
* a weights file of another shape is one clear error naming the file and the tensor;
* NaN / Inf weights are refused on load (``learn.load``, a run's weights, ``export``);
* ``fit`` refuses non-finite rates before any step.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from visiontune.train.weights import WeightsFileError


def _state(learn):
    return {k: v.detach().clone().contiguous() for k, v in learn.model.state_dict().items()}


def test_a_name_with_dots_saves_and_loads(make_learner, tmp_path):
    learn = make_learner(precompute=True, models_path=tmp_path)
    path = learn.save("224_all.v2")
    assert path == tmp_path / "224_all.v2.safetensors"
    before = _state(learn)
    with torch.no_grad():
        for p in learn.model.parameters():
            p.add_(1.0)
    learn.load("224_all.v2")
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    learn.load(path)  # the file's path works too
    learn.load(str(path))


def test_a_wrong_shape_weights_file_names_the_file_and_the_tensor(make_learner, tmp_path):
    learn = make_learner(precompute=True, models_path=tmp_path)
    state = _state(learn)
    key = next(k for k in state if k.startswith("head") and k.endswith("weight") and state[k].dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 3, state[key].shape[1])
    save_file(state, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsFileError, match=rf"other\.safetensors does not fit this model: {key} is "
                                                rf"\({state[key].shape[0]}, {state[key].shape[1]}\) in the file"):
        learn.load("other")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_on_load(make_learner, tmp_path, value):
    learn = make_learner(precompute=True, models_path=tmp_path)
    state = _state(learn)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[0] = value
    save_file(state, str(tmp_path / "bad.safetensors"))
    before = _state(learn)
    with pytest.raises(WeightsFileError, match=rf"bad\.safetensors holds 1 non-finite value\(s\) \(NaN or Inf\) in {key}"):
        learn.load("bad")
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())  # untouched


def test_export_refuses_non_finite_run_weights(make_learner, tmp_path):
    from visiontune.run.exported import load_run_model

    learn = make_learner(precompute=True, models_path=tmp_path)
    state = _state(learn)
    key = next(k for k in state if k.startswith("head") and state[k].is_floating_point())
    state[key].view(-1)[0] = float("nan")
    run = tmp_path / "run"
    run.mkdir()
    save_file(state, str(run / "best.safetensors"))
    (run / "config.json").write_text(json.dumps({"arch": "efficientnet_lite0", "data": str(tmp_path), "ps": None}))
    (run / "preprocessing.json").write_text(json.dumps({"classes": list(learn.data.classes), "kind": "single"}))
    with pytest.raises(ValueError, match=r"best\.safetensors holds 1 non-finite value"):
        load_run_model(run)


@pytest.mark.parametrize("lrs", [float("inf"), float("nan"), [1e-3, float("inf"), 1e-2], -1.0])
def test_fit_refuses_non_finite_or_negative_rates(make_learner, tmp_path, lrs):
    learn = make_learner(precompute=True, models_path=tmp_path)
    before = _state(learn)
    with pytest.raises(ValueError, match="lrs must be finite numbers >= 0"):
        learn.fit(lrs, 1)
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
