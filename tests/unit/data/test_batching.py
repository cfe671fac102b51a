"""Bucket lengths fitted to a task's row lengths: least padding for a number of shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xstilts_jax.data.batching import bucket_for, fit_buckets


def padding(lengths, buckets) -> int:
    return sum(bucket_for(int(n), buckets) - int(n) for n in lengths)


@pytest.mark.parametrize("seed", range(4))
def test_fit_buckets_is_the_least_padding_of_every_choice(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 41, size=int(rng.integers(1, 60)))
    max_length, multiple = 40, 4
    candidates = list(range(multiple, max_length, multiple))
    for k in (1, 2, 3, 4):
        fitted = fit_buckets(lengths, max_length, k, multiple=multiple)
        assert fitted[-1] == max_length and len(fitted) <= k
        assert all(b % multiple == 0 for b in fitted[:-1])
        brute = min(padding(lengths, (*chosen, max_length))
                    for r in range(k) for chosen in itertools.combinations(candidates, r))
        assert padding(lengths, fitted) == brute


def test_fit_buckets_takes_no_more_shapes_than_it_needs():
    assert fit_buckets([20] * 10 + [17], 128, 6) == (24, 128)
    assert fit_buckets([20, 128], 128, 1) == (128,)
    assert fit_buckets([], 64, 3) == (64,)
    assert fit_buckets([5, 9], 12, 4, multiple=8) == (8, 12)


def test_fit_buckets_refuses_rows_longer_than_max_length():
    with pytest.raises(ValueError, match="exceeds max_length"):
        fit_buckets([10, 130], 128, 4)
    with pytest.raises(ValueError, match="positive"):
        fit_buckets([10], 128, 0)
