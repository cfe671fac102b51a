"""The clip as one scalar factor equals optax's clip_by_global_norm to float rounding."""

import jax
import numpy as np
import optax
import pytest

from xstilts_jax.train.optimizer import clip_by_global_norm, decay_mask, make_optimizer


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])  # clipped hard, clipped, not clipped
def test_clip_equals_optax(max_norm):
    keys = jax.random.split(jax.random.key(0), 3)
    grads = {"a": jax.random.normal(keys[0], (64, 32)), "b": {"c": jax.random.normal(keys[1], (7,))}}
    ours, _ = clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
    theirs, _ = optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
    for o, t in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(np.asarray(o), np.asarray(t), rtol=2e-7, atol=0)
    if max_norm == 1e6:  # untouched below the threshold
        for o, g in zip(jax.tree.leaves(ours), jax.tree.leaves(grads)):
            np.testing.assert_array_equal(np.asarray(o), np.asarray(g))


def test_adamw_steps_equal_optax_chain():
    """Ten AdamW steps with our clip against optax's own clip: the same parameters to float noise."""
    keys = jax.random.split(jax.random.key(1), 4)
    params = {"kernel": jax.random.normal(keys[0], (32, 16)), "bias": jax.random.normal(keys[1], (16,))}
    ours = make_optimizer(learning_rate=1e-2, total_steps=100, warmup_ratio=0.1, max_grad_norm=1.0)
    sched = optax.join_schedules([optax.linear_schedule(0.0, 1e-2, 10),
                                  optax.linear_schedule(1e-2, 0.0, 90)], [10])
    theirs = optax.chain(optax.clip_by_global_norm(1.0),
                         optax.adamw(sched, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01,
                                     mask=decay_mask))
    p_o, p_t = params, params
    s_o, s_t = ours.init(params), theirs.init(params)
    for i in range(10):
        g = jax.tree.map(lambda x: 3.0 * jax.random.normal(jax.random.fold_in(keys[2], i), x.shape), params)
        u, s_o = ours.update(g, s_o, p_o)
        p_o = optax.apply_updates(p_o, u)
        u, s_t = theirs.update(g, s_t, p_t)
        p_t = optax.apply_updates(p_t, u)
    assert jax.tree.structure(s_o) == jax.tree.structure(s_t)  # checkpoints keep their layout
    for o, t in zip(jax.tree.leaves(p_o), jax.tree.leaves(p_t)):
        np.testing.assert_allclose(np.asarray(o), np.asarray(t), rtol=1e-6, atol=1e-7)
