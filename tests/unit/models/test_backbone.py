"""The Backbone seam: heads read the backbone's pooling rule and tied output embeddings, never
its internals, so a family that pools differently (a decoder's last token) reuses them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.models.backbone import Backbone, first_token, last_token
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import (ClassificationHead, MaskedLMHead, MultipleChoiceHead,
                                      SpanHead, TaggingHead, TaskModel)
from xstilts_jax.models.presets import get_preset


class LastTokenBackbone(nnx.Module):
    """The encoder's hidden states with a decoder's pooling and its own output embeddings."""

    def __init__(self, encoder: Encoder):
        self.inner = encoder
        self.config = encoder.config
        self.table = nnx.Param(jax.random.normal(jax.random.key(9), (encoder.config.vocab_size,
                                                                     encoder.config.hidden_size)))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, dropout_rng=None):
        return self.inner(input_ids, attention_mask, token_type_ids, dropout_rng=dropout_rng)

    def pool(self, hidden, attention_mask):
        return last_token(hidden, attention_mask)

    def output_embedding(self):
        return self.table[...]


def _inputs():
    ids = np.array([[0, 11, 12, 13, 2, 1], [0, 21, 2, 1, 1, 1]])
    return ids, (ids != 1).astype(np.int32)


def test_encoder_is_a_backbone():
    encoder = Encoder(get_preset("tiny"), rngs=nnx.Rngs(0))
    assert isinstance(encoder, Backbone) and isinstance(LastTokenBackbone(encoder), Backbone)
    hidden = jax.random.normal(jax.random.key(1), (2, 6, 64))
    _, mask = _inputs()
    np.testing.assert_array_equal(encoder.pool(hidden, mask), hidden[:, 0])
    np.testing.assert_array_equal(encoder.output_embedding(), encoder.embeddings.word[...])


def test_last_token_pooling():
    hidden = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
    right = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    np.testing.assert_array_equal(last_token(hidden, right), hidden[jnp.array([0, 1]), jnp.array([1, 3])])
    np.testing.assert_array_equal(last_token(hidden, left), hidden[:, 3])
    np.testing.assert_array_equal(last_token(hidden, np.zeros((2, 4))), hidden[:, 3])  # no real token
    np.testing.assert_array_equal(last_token(hidden, None), hidden[:, 3])
    np.testing.assert_array_equal(first_token(hidden), hidden[:, 0])


def _classification_logits(head, pooled):
    x = jnp.tanh(pooled @ head.dense_kernel[...] + head.dense_bias[...])
    return x @ head.out_kernel[...] + head.out_bias[...]


def test_sequence_heads_pool_through_the_backbone():
    """TaskModel hands the attention mask to the head, and the head pools with the backbone's
    rule: on a last-token backbone the logits are those of each row's last real token."""
    config = get_preset("tiny", hidden_dropout=0.0)
    encoder = Encoder(config, rngs=nnx.Rngs(0))
    ids, mask = _inputs()
    hidden = encoder(ids, mask).last_hidden_state
    for head in (ClassificationHead(config, 3, rngs=nnx.Rngs(1)),
                 MultipleChoiceHead(config, 4, rngs=nnx.Rngs(1))):
        # The encoder's rule, bit for bit what the head computed before the seam existed.
        np.testing.assert_array_equal(TaskModel(encoder, head)(ids, mask),
                                      _classification_logits(head, hidden[:, 0]))
        got = TaskModel(LastTokenBackbone(encoder), head)(ids, mask)
        expected = _classification_logits(head, hidden[jnp.array([0, 1]), jnp.array([4, 2])])
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_mlm_head_is_tied_to_the_backbones_output_embedding():
    config = get_preset("tiny")
    encoder = Encoder(config, rngs=nnx.Rngs(0))
    head = MaskedLMHead(config, rngs=nnx.Rngs(1))
    hidden = jax.random.normal(jax.random.key(2), (2, 6, 64))
    _, mask = _inputs()
    backbone = LastTokenBackbone(encoder)
    x = head.norm(jax.nn.gelu(hidden @ head.dense_kernel[...] + head.dense_bias[...],
                              approximate=False))
    np.testing.assert_array_equal(head(hidden, encoder, mask, rngs=None),
                                  x @ encoder.embeddings.word[...].T + head.out_bias[...])
    np.testing.assert_array_equal(head(hidden, backbone, mask, rngs=None),
                                  x @ backbone.table[...].T + head.out_bias[...])


def test_head_parameters_are_unchanged():
    """Names and shapes of every head's parameters (checkpoints of earlier runs restore)."""
    config = get_preset("tiny")
    h, vocab = config.hidden_size, config.vocab_size
    expected = {
        ClassificationHead(config, 3, rngs=nnx.Rngs(0)): {
            "dense_kernel": (h, h), "dense_bias": (h,), "out_kernel": (h, 3), "out_bias": (3,)},
        MultipleChoiceHead(config, 4, rngs=nnx.Rngs(0)): {
            "dense_kernel": (h, h), "dense_bias": (h,), "out_kernel": (h, 1), "out_bias": (1,)},
        TaggingHead(config, 5, rngs=nnx.Rngs(0)): {"out_kernel": (h, 5), "out_bias": (5,)},
        SpanHead(config, rngs=nnx.Rngs(0)): {"out_kernel": (h, 2), "out_bias": (2,)},
        MaskedLMHead(config, rngs=nnx.Rngs(0)): {
            "dense_kernel": (h, h), "dense_bias": (h,), "norm.scale": (h,), "norm.bias": (h,),
            "out_bias": (vocab,)},
    }
    for head, shapes in expected.items():
        got = {".".join(map(str, path)): tuple(v.shape)
               for path, v in nnx.to_flat_state(nnx.state(head, nnx.Param))}
        assert got == shapes, type(head).__name__
