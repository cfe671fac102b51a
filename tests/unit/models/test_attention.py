"""Attention implementations: which one runs where, and the fused path's numerics."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models.encoder import Encoder, resolve_attention
from xstilts_jax.models.presets import get_preset


def test_resolve_attention_picks_cudnn_only_where_it_applies():
    gpu_bf16 = get_preset("tiny", dtype="bfloat16", attention_dropout=0.0)
    assert resolve_attention(gpu_bf16, "gpu") == "cudnn"
    assert resolve_attention(gpu_bf16, "cpu") == "xla"
    assert resolve_attention(dataclasses.replace(gpu_bf16, dtype="float32"), "gpu") == "xla"
    assert resolve_attention(dataclasses.replace(gpu_bf16, attention_dropout=0.1), "gpu") == "xla"
    assert resolve_attention(dataclasses.replace(gpu_bf16, attention="xla"), "gpu") == "xla"
    with pytest.raises(ValueError, match="attention dropout 0.1 is on"):
        resolve_attention(dataclasses.replace(gpu_bf16, attention="cudnn",
                                              attention_dropout=0.1), "gpu")
    with pytest.raises(ValueError, match="attention must be one of"):
        get_preset("tiny", attention="flash")


def test_fused_path_equals_written_out_attention():
    """jax.nn.dot_product_attention (its XLA implementation, the one a CPU can run) through the
    same projections gives the written-out attention's block output, padding included."""
    config = get_preset("tiny", hidden_dropout=0.0, attention_dropout=0.0)
    encoder = Encoder(config, rngs=nnx.Rngs(0))
    attention = nnx.merge(*nnx.split(encoder.layers))  # stacked: run the first layer's module
    first = jax.tree.map(lambda a: a[0], nnx.state(attention.attention))
    module = nnx.merge(nnx.graphdef(attention.attention), first)
    x = jax.random.normal(jax.random.key(1), (3, 9, config.hidden_size))
    mask = np.ones((3, 9), np.int32)
    mask[1, 5:] = 0
    bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
    written = module(x, bias, rngs=None)
    fused = module._fused(x, bias, "xla")
    np.testing.assert_allclose(np.asarray(fused), np.asarray(written), atol=2e-5, rtol=1e-5)
