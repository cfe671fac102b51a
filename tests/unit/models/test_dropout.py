"""The fused dropout draws exactly JAX's bits: same masks as nnx.Dropout, so same training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models.dropout import Dropout, bernoulli_mask, threefry_bits


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 5, 7), (4, 3, 33, 17)])
@pytest.mark.parametrize("seed", [0, 1, 2 ** 31 - 1])
def test_bits_and_mask_equal_jax_random(shape, seed):
    key = jax.random.fold_in(jax.random.key(seed), 11)
    np.testing.assert_array_equal(np.asarray(threefry_bits(key, shape)),
                                  np.asarray(jax.random.bits(key, shape)))
    for keep in (0.9, 0.5, 1e-3):
        np.testing.assert_array_equal(np.asarray(bernoulli_mask(key, keep, shape)),
                                      np.asarray(jax.random.bernoulli(key, keep, shape)))


def test_bits_equal_under_jit_and_keep_their_rate():
    key = jax.random.key(7)
    bits = jax.jit(threefry_bits, static_argnums=1)(key, (256, 512))
    np.testing.assert_array_equal(np.asarray(bits), np.asarray(jax.random.bits(key, (256, 512))))
    kept = float(jnp.mean(bernoulli_mask(key, 0.9, (256, 512))))
    assert abs(kept - 0.9) < 0.005  # 131k draws: 5 standard deviations is 0.0041


def test_module_equals_nnx_dropout_and_falls_back():
    x = jax.random.normal(jax.random.key(3), (4, 16, 32))

    def both(**kwargs):
        ours = Dropout(0.1)(x, rngs=nnx.Rngs(dropout=5), **kwargs)
        theirs = nnx.Dropout(0.1)(x, rngs=nnx.Rngs(dropout=5), **kwargs)
        return np.asarray(ours), np.asarray(theirs)

    ours, theirs = both(deterministic=False)
    np.testing.assert_array_equal(ours, theirs)
    assert (ours == 0).mean() > 0.05  # dropout happened
    np.testing.assert_array_equal(*both(deterministic=True))
    # A raw key is nnx.Dropout's own path, with the same result.
    key = jax.random.key(9)
    np.testing.assert_array_equal(np.asarray(Dropout(0.2)(x, deterministic=False, rngs=key)),
                                  np.asarray(nnx.Dropout(0.2)(x, deterministic=False, rngs=key)))
    # The stream advances as nnx's does: two calls draw two different masks.
    rngs = nnx.Rngs(dropout=1)
    layer = Dropout(0.5)
    first, second = layer(x, deterministic=False, rngs=rngs), layer(x, deterministic=False, rngs=rngs)
    assert not np.array_equal(np.asarray(first), np.asarray(second))
