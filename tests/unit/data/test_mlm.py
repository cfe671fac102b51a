"""Masked-LM data: BERT's 80/10/10 masking of real, non-special tokens, reproducible."""

from __future__ import annotations

import numpy as np

from xstilts_jax.data.batching import length_grouped_order
from xstilts_jax.data.mlm import mask_tokens


def test_mask_tokens_rates_and_reproducibility():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, (64, 128)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = np.ones_like(ids)
    mask[:, 100:] = 0
    ids[:, 100:] = 1
    args = dict(mask_id=4, vocab_size=1000, special_ids=(0, 1, 2, 3, 4), first_regular_id=5)
    masked, labels = mask_tokens(ids, mask, np.random.default_rng(1), **args)
    again, labels_again = mask_tokens(ids, mask, np.random.default_rng(1), **args)
    np.testing.assert_array_equal(masked, again)
    np.testing.assert_array_equal(labels, labels_again)
    chosen = labels >= 0
    assert not chosen[:, 0].any() and not chosen[:, 100:].any()  # no specials, no padding
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    rate = chosen.sum() / (mask.sum() - 2 * 64)
    assert abs(rate - 0.15) < 0.01
    to_mask = (masked[chosen] == 4).mean()
    kept = (masked[chosen] == ids[chosen]).mean()
    assert abs(to_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    np.testing.assert_array_equal(masked[~chosen], ids[~chosen])  # nothing else changes


def test_length_grouped_order_is_a_permutation_of_homogeneous_batches():
    rng = np.random.default_rng(0)
    lengths = np.where(rng.random(1000) < 0.1, rng.integers(17, 30, 1000), rng.integers(5, 16, 1000))
    order = length_grouped_order(lengths, 64, np.random.default_rng([3, 0]), group_batches=8)
    assert sorted(order.tolist()) == list(range(1000))  # every example once
    np.testing.assert_array_equal(order, length_grouped_order(lengths, 64, np.random.default_rng([3, 0]),
                                                              group_batches=8))
    batches = [order[i:i + 64] for i in range(0, 1000, 64)]
    long_batches = sum(lengths[b].max() > 16 for b in batches)
    random_batches = [b for b in np.split(np.random.default_rng(1).permutation(1000), range(64, 1000, 64))]
    assert long_batches <= 4 < sum(lengths[b].max() > 16 for b in random_batches)
    assert not np.array_equal(order, length_grouped_order(lengths, 64, np.random.default_rng([3, 1]),
                                                          group_batches=8))
