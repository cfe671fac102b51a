"""Training losses: pure functions of (logits, batch) -> (weighted loss sum, weight sum).

Every loss returns a sum and the weight it sums over, so the step divides once and padding
rows (weight 0) never count: a loss of one batch is the same in any bucket and on any mesh.
The task families pick their loss (``tasks.families``); the trainer only calls it.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

Batch = Mapping[str, jax.Array]


def classification_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(sum of per-example NLL weighted by batch['weight'], sum of weights)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, batch["labels"][:, None], axis=-1)[:, 0]
    weight = batch["weight"].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def mlm_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Masked-LM NLL over positions with ``mlm_labels >= 0`` of rows with weight > 0."""
    labels = batch["mlm_labels"]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    weight = (labels >= 0).astype(jnp.float32) * batch["weight"][:, None].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def token_classification_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Tagging NLL summed over tokens with ``token_labels >= 0`` (first sub-tokens of the words
    a window predicts) in rows with weight > 0, and their count: a per-token mean, as HF's."""
    labels = batch["token_labels"]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    weight = (labels >= 0).astype(jnp.float32) * batch["weight"][:, None].astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def masked_span_logits(logits: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """[B, S, 2] start/end logits with padded positions at -1e9: bucket padding cannot take
    probability mass, so a window scores the same in any bucket."""
    return jnp.where(attention_mask[..., None] > 0, logits.astype(jnp.float32), -1e9)


def span_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Extractive QA: (start NLL + end NLL) / 2 per window, summed with the row weights, as
    HF/XTREME's ``(start_loss + end_loss) / 2``; windows without the answer target ``<s>``."""
    logp = jax.nn.log_softmax(masked_span_logits(logits, batch["attention_mask"]), axis=1)
    start = jnp.take_along_axis(logp[..., 0], batch["start_positions"][:, None], axis=1)[:, 0]
    end = jnp.take_along_axis(logp[..., 1], batch["end_positions"][:, None], axis=1)[:, 0]
    weight = batch["weight"].astype(jnp.float32)
    return jnp.sum(-(start + end) / 2 * weight), jnp.sum(weight)


def multiple_choice_loss(logits: jax.Array, batch: Batch, *, num_choices: int
                         ) -> tuple[jax.Array, jax.Array]:
    """Softmax over each example's ``num_choices`` consecutive rows ([B * C, 1] scores);
    (sum of NLL weighted by the example's weight, sum of weights). Rows of one example carry
    the same label and weight (``ModelInputs`` with ``group=C`` batches them so)."""
    scores = logits.astype(jnp.float32).reshape(-1, num_choices)
    labels = batch["labels"].reshape(-1, num_choices)[:, 0]
    weight = batch["weight"].astype(jnp.float32).reshape(-1, num_choices)[:, 0]
    logp = jax.nn.log_softmax(scores, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * weight), jnp.sum(weight)
