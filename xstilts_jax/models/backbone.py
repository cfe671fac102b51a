"""The seam between a model family's backbone and the task heads on top of it.

Heads and ``TaskModel`` depend on this protocol only, so a family other than the BERT/XLM-R
encoder (a decoder, say) plugs in by implementing it: ``models/encoder.Encoder`` is the
encoder family's implementation. What differs between families is behind two methods:
which position sums up a sequence (``pool``: an encoder's first token, a causal decoder's
last real token, the only one that has seen the whole sequence) and which matrix the
masked-LM head is tied to (``output_embedding``).
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import jax
import jax.numpy as jnp


class BackboneConfig(Protocol):
    """The fields heads read from a backbone's config (``EncoderConfig`` has them)."""

    hidden_size: int
    hidden_dropout: float
    initializer_range: float
    layer_norm_eps: float
    vocab_size: int


class BackboneOutput(Protocol):
    last_hidden_state: jax.Array  # [B, S, H]
    hidden_states: Sequence[jax.Array]  # the embedding output, then each block's, as HF's


@runtime_checkable
class Backbone(Protocol):
    """A model that turns token ids into hidden states, and tells heads how to read them."""

    config: BackboneConfig

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None, *,
                 dropout_rng: jax.Array | None = None) -> BackboneOutput:
        """Int [B, S] inputs (mask 1 = real token); dropout on iff ``dropout_rng`` is given."""
        ...

    def pool(self, hidden: jax.Array, attention_mask: jax.Array | None) -> jax.Array:
        """[B, S, H] -> [B, H]: the one vector a sequence-level head reads."""
        ...

    def output_embedding(self) -> jax.Array:
        """[vocab, H]: the matrix the masked-LM head's output projection is tied to."""
        ...


def first_token(hidden: jax.Array) -> jax.Array:
    """[B, S, H] -> [B, H]: position 0 (``<s>`` / ``[CLS]``), an encoder's pooling."""
    return hidden[:, 0]


def last_token(hidden: jax.Array, attention_mask: jax.Array | None) -> jax.Array:
    """[B, S, H] -> [B, H]: each row's last real (mask 1) position, a causal decoder's
    pooling; right or left padding alike. A row without real tokens gives position S - 1.
    """
    if attention_mask is None:
        return hidden[:, -1]
    positions = jnp.arange(hidden.shape[1])
    last = jnp.max(jnp.where(attention_mask > 0, positions, -1), axis=1)
    last = jnp.where(last < 0, hidden.shape[1] - 1, last)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
