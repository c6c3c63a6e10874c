"""The train command's options and TrainConfig cannot drift: same names, same defaults."""
from __future__ import annotations

import dataclasses

from visiontune.cli import build_parser
from visiontune.run.config import TrainConfig


def _train_defaults() -> dict:
    return vars(build_parser().parse_args(["train", "photos"]))


def test_every_train_option_is_a_config_field_with_the_same_default():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    options = {k: v for k, v in _train_defaults().items() if k not in ("func", "command", "quiet", "verbose", "resume")}
    assert set(options) - set(fields) == set()
    assert {k: v for k, v in options.items() if k != "data"} == {k: fields[k] for k in options if k != "data"}
    # the config fields without an option: set by the command itself, or Python-API only
    assert set(fields) - set(options) == {"verbose", "console", "max_zoom"}


def test_a_changed_config_default_reaches_the_command_line(monkeypatch):
    from visiontune.run import config

    fake = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, "size": 288, "bs": 48}
    monkeypatch.setattr(config, "field_default", fake.__getitem__)
    parsed = _train_defaults()
    assert (parsed["size"], parsed["bs"]) == (288, 48)
    assert "(default 288)" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()
