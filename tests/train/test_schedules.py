import math

import numpy as np
import pytest

from visiontune.train.schedules import (fit_multipliers, lr_find_rates, sgdr_epochs, sgdr_multipliers,
                                        suggest_lr)


def cosine(t, n):
    return (1 + math.cos(math.pi * t / n)) / 2


def test_sgdr_restarts_and_cycle_mult_match_the_cosine_formula():
    ipe = 5
    m = sgdr_multipliers(n_cycle=3, cycle_len=1, cycle_mult=2, iters_per_epoch=ipe)
    assert len(m) == (1 + 2 + 4) * ipe == 35
    # cycle 1: iterations 0..4 (T=5), cycle 2: 5..14 (T=10), cycle 3: 15..34 (T=20)
    for it, expected in [(0, 1.0), (2, cosine(2, 5)), (4, cosine(4, 5)), (5, 1.0), (10, cosine(5, 10)),
                         (14, cosine(9, 10)), (15, 1.0), (25, cosine(10, 20)), (34, cosine(19, 20))]:
        assert m[it] == pytest.approx(expected, abs=1e-12), it
    assert m[10] == pytest.approx(0.5)


def test_epoch_counts_follow_the_lesson():
    assert sgdr_epochs(3, cycle_len=1, cycle_mult=2) == 7
    assert sgdr_epochs(3, cycle_len=2) == 6
    assert sgdr_epochs(3) == 3


def test_fit_without_cycle_len_is_constant():
    assert fit_multipliers(2, None, 1, 4) == [1.0] * 8


def test_lr_find_rates_are_exponential():
    r = lr_find_rates(1e-5, 10, 7)
    assert r[0] == pytest.approx(1e-5) and r[-1] == pytest.approx(10)
    assert np.allclose(r[1:] / r[:-1], 10.0)


def test_suggestion_is_a_tenth_of_the_minimum():
    lrs = np.logspace(-5, 1, 61)
    losses = (np.log10(lrs) + 1.0) ** 2  # minimum at 1e-1
    lr, rule = suggest_lr(lrs, losses)
    assert 5e-3 < lr < 2e-2 and "min_loss/10" in rule
