"""Dropout whose random bits are JAX's own, computed as one fused elementwise expression.

``nnx.Dropout`` draws its mask with ``jax.random.bernoulli``: partitionable threefry over
the flat element index. On the CPU backend JAX lowers threefry as a rolled loop of five
steps (it compiles faster), which XLA runs one thread at a time and cannot fuse into the
consumer: a dropout-on xlmr-base train step draws 37.7 M bits this way. Here the same hash
(Threefry-2x32, 20 rounds, the same key schedule and counters) is written out in ``jnp``,
so the bits are identical, the mask identical, and XLA fuses the hash into the select that
applies it, on every core. Off the CPU, or where the identity cannot hold (a legacy
non-partitionable threefry, a non-threefry key, more than 2^32 elements), it is
``nnx.Dropout`` itself.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 bits equal to ``jax.random.bits(key, shape)`` (partitionable threefry), unrolled.

    The counter of element i (row-major) is the 64-bit pair (0, i); the output is the xor of
    the hash's two words, as ``jax._src.random.threefry2x32`` does for 32-bit draws.
    """
    data = jax.random.key_data(key)
    k0, k1 = data[0], data[1]
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0 = jnp.zeros(shape, jnp.uint32) + ks[0]
    x1 = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape) + ks[1]
    for step in range(5):
        for r in _ROTATIONS[step % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0 = x0 + ks[(step + 1) % 3]
        x1 = x1 + ks[(step + 2) % 3] + np.uint32(step + 1)
    return x0 ^ x1


def _same_bits_possible(key, size: int) -> bool:
    return (jax.config.jax_threefry_partitionable and size < 2 ** 32
            and str(jax.random.key_impl(key)) == "threefry2x32")


def bernoulli_mask(key: jax.Array, keep_prob: float, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.bernoulli(key, keep_prob, shape)``, bit for bit (float32 uniform < p)."""
    if not _same_bits_possible(key, math.prod(shape)):
        return jax.random.bernoulli(key, keep_prob, shape)
    bits = threefry_bits(key, shape)
    one = np.array(1.0, np.float32).view(np.uint32)
    uniform = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - 1.0
    return jnp.maximum(uniform, 0.0) < jnp.float32(keep_prob)


class Dropout(nnx.Dropout):
    """``nnx.Dropout(rate)`` with the mask from ``bernoulli_mask`` on the CPU backend."""

    def __call__(self, inputs, *, deterministic: bool | None = None, rngs=None):
        resolved = self.deterministic if deterministic is None else deterministic
        fused = (jax.default_backend() == "cpu" and not self.broadcast_dims
                 and 0.0 < self.rate < 1.0 and resolved is False
                 and isinstance(rngs, (nnx.Rngs, nnx.RngStream)))
        if not fused:
            return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
        key = rngs[self.rng_collection]() if isinstance(rngs, nnx.Rngs) else rngs()
        if not _same_bits_possible(key, inputs.size):
            return super().__call__(inputs, deterministic=deterministic, rngs=key)
        keep_prob = 1.0 - self.rate
        mask = bernoulli_mask(key, keep_prob, inputs.shape)
        return jax.lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
