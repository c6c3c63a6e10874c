"""Issue 17, item 10: every numeric option is bounded up front, by the parser (one line, exit 2, no training)."""
from __future__ import annotations

import pytest

from visiontune.cli import build_parser


def _parse_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([str(a) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("option, value, says", [
    ("--budget", "1e308", "must be > 0 and <= 604800 s (a week), got 1e308"),
    ("--budget", "inf", "must be a finite number"),
    ("--budget", "0", "must be > 0"),
    ("--unfrozen-budget", "1e12", "<= 604800"),
    ("--lr", "1e308", "must be > 0 and <= 10, got 1e308"),
    ("--lr", "nan", "must be a finite number"),
    ("--lr", "-1", "must be > 0"),
    ("--seed", "1e23", "not a whole number: '1e23'"),
    ("--seed", "99999999999999999999999", "must be between 0 and 4294967295"),
    ("--seed", "-1", "must be between 0 and 4294967295"),
    ("--head-epochs", "10000000", "must be between 0 and 10000"),
    ("--aug-epochs", "-2", "must be between 0 and 10000"),
    ("--max-cycles", "64", "must be between 0 and 20"),
    ("--patience", "1e9", "not a whole number"),
    ("--bs", "0", "must be between 1 and 65536"),
    ("--size", "8", "must be between 16 and 1000000"),
    ("--tta", "9", "must be between 0 and 4"),
    ("--precompute-aug", "1000", "must be between 0 and 64"),
    ("--num-workers", "100000", "must be between 0 and 1024"),
    ("--val-pct", "1", "must be > 0 and < 1"),
    ("--ps", "1", "must be >= 0 and < 1"),
    ("--lr-ratio", "1e300", "<= 1000"),
])
def test_train_numbers_are_bounded_by_the_parser(capsys, option, value, says):
    err = _parse_error(capsys, "train", "data", option, value)
    assert err.startswith("visiontune train: error: argument " + option), err
    assert says in err, err


@pytest.mark.parametrize("argv, says", [
    (["demo", "--budget", "1e308"], "<= 604800"),
    (["demo", "--seed", "1e23"], "not a whole number"),
    (["predict", "run", "x.jpg", "--top-k", "1e9"], "not a whole number"),
    (["predict", "run", "x.jpg", "--top-k", "0"], "must be between 1 and"),
])
def test_other_commands_numbers_are_bounded(capsys, argv, says):
    assert says in _parse_error(capsys, *argv)


def test_values_inside_the_bounds_parse():
    a = build_parser().parse_args(["train", "d", "--budget", "604800", "--lr", "10", "--seed", "4294967295",
                                   "--max-cycles", "20", "--val-pct", "0.5", "--ps", "0"])
    assert (a.budget, a.lr, a.seed, a.max_cycles) == (604800.0, 10.0, 4294967295, 20)


def test_train_config_refuses_the_same_numbers_from_python():
    from visiontune.run.config import TrainConfig

    for kw, says in [({"budget": 1e308}, "budget must be between"), ({"lr": 1e308}, "lr must be between"),
                     ({"seed": 10**23}, "seed must be between 0 and 4294967295"), ({"seed": 1.5}, "whole number")]:
        with pytest.raises(ValueError, match=says):
            TrainConfig(data="d", **kw).validate()


def test_seed_everything_refuses_a_seed_torch_cannot_take():
    from visiontune.utils.seed import seed_everything

    with pytest.raises(ValueError, match="seed must be a whole number"):
        seed_everything(10**23)
