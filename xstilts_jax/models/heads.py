"""Task heads on top of a backbone (``models/backbone.py``), and the models that carry them.

A head maps the backbone's last hidden state, the attention mask and the backbone itself (for
its pooling rule and its tied output embeddings) to logits; the trainer only calls
``TaskModel(batch) -> logits`` and the task's loss. Which head a task family uses is chosen by
its ``Family.head`` in ``tasks/families.py``. Heads read only ``hidden_size``,
``hidden_dropout``, ``initializer_range``, ``layer_norm_eps`` and ``vocab_size`` from the
config, so they fit any backbone. Heads compute in the backbone's dtype (their weights stay
float32, cast at use) and return float32 logits for a float32 loss. The logits leave their
product in the compute dtype, as in HF's bf16 models: a float32 result type would make JAX
run the backward products, the biggest of the model for MLM, in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from xstilts_jax.models.axes import (ACT_BATCH, ACT_EMBED, ACT_LENGTH, ACT_VOCAB, CLASSES, EMBED,
                                     HEAD_HIDDEN, VOCAB)
from xstilts_jax.models.backbone import Backbone, BackboneConfig
from xstilts_jax.models.dropout import Dropout
from xstilts_jax.models.encoder import LayerNorm, dense_init, zeros_init
from xstilts_jax.sharding import constrain


def _dense_params(config: BackboneConfig, rngs: nnx.Rngs, d_in: int, d_out: int, axes: tuple[str, str]):
    """(kernel [d_in, d_out], zero bias [d_out]) with logical axis names, as the encoder's."""
    kernel = nnx.Param(dense_init(config, axes)(rngs.params(), (d_in, d_out)))
    bias = nnx.Param(zeros_init(axes[1:])(rngs.params(), (d_out,)))
    return kernel, bias


class ClassificationHead(nnx.Module):
    """Sentence(-pair) classification on the backbone's pooled token (an encoder's ``<s>``,
    a decoder's last real token), in the layout of the backbone family's HF heads
    (``config.sequence_head``):

    * ``"dense_tanh"`` (encoders): dropout -> dense(h, h) -> tanh -> dropout -> dense(h,
      classes), HF's ``RobertaClassificationHead`` used by XTREME's XNLI/PAWS-X baselines. For
      BERT the same shape stands in for pooler + classifier (BERT's pooler is skipped on load:
      heads start fresh in every phase).
    * ``"linear"`` (BLOOM): dropout -> dense(h, classes) without a bias, HF's ``score`` of
      ``BloomForSequenceClassification``.
    """

    def __init__(self, config: BackboneConfig, num_labels: int, *, rngs: nnx.Rngs,
                 dropout: float | None = None):
        h = config.hidden_size
        layout = getattr(config, "sequence_head", "dense_tanh")
        if layout not in ("dense_tanh", "linear"):
            raise ValueError(f"sequence_head must be 'dense_tanh' or 'linear', got {layout!r}")
        with nnx.use_eager_sharding(False):
            if layout == "dense_tanh":
                self.dense_kernel, self.dense_bias = _dense_params(config, rngs, h, h,
                                                                   (EMBED, HEAD_HIDDEN))
                self.out_kernel, self.out_bias = _dense_params(config, rngs, h, num_labels,
                                                               (HEAD_HIDDEN, CLASSES))
            else:
                self.dense_kernel = self.dense_bias = self.out_bias = None
                self.out_kernel = nnx.Param(dense_init(config, (EMBED, CLASSES))(
                    rngs.params(), (h, num_labels)))
        self.dropout = Dropout(config.hidden_dropout if dropout is None else dropout)
        self.num_labels = num_labels

    def __call__(self, hidden: jax.Array, backbone: Backbone, attention_mask=None, *,
                 rngs: nnx.Rngs | None) -> jax.Array:
        dtype = hidden.dtype
        x = constrain(backbone.pool(hidden, attention_mask), (ACT_BATCH, ACT_EMBED))
        x = self.dropout(x, deterministic=rngs is None, rngs=rngs)
        if self.dense_kernel is not None:
            x = jnp.tanh(x @ self.dense_kernel[...].astype(dtype)
                         + self.dense_bias[...].astype(dtype))
            x = self.dropout(x, deterministic=rngs is None, rngs=rngs)
        logits = (x @ self.out_kernel[...].astype(dtype)).astype(jnp.float32)
        return logits if self.out_bias is None else logits + self.out_bias[...]


class MaskedLMHead(nnx.Module):
    """RoBERTa's LM head: dense -> GELU -> LayerNorm -> logits over the vocabulary.

    The output projection is tied to the backbone's output embeddings (the word embeddings, as
    in XLM-R), plus its own bias; logits for every position, float32 [B, S, vocab].
    """

    def __init__(self, config: BackboneConfig, *, rngs: nnx.Rngs):
        h = config.hidden_size
        with nnx.use_eager_sharding(False):
            self.dense_kernel, self.dense_bias = _dense_params(config, rngs, h, h, (EMBED, HEAD_HIDDEN))
            self.norm = LayerNorm(h, config.layer_norm_eps)
            self.out_bias = nnx.Param(zeros_init((VOCAB,))(rngs.params(), (config.vocab_size,)))

    def __call__(self, hidden: jax.Array, backbone: Backbone, attention_mask=None, *,
                 rngs: nnx.Rngs | None) -> jax.Array:
        del attention_mask, rngs  # every position is scored; RoBERTa's LM head has no dropout
        dtype = hidden.dtype
        x = hidden @ self.dense_kernel[...].astype(dtype) + self.dense_bias[...].astype(dtype)
        x = self.norm(jax.nn.gelu(x, approximate=False))
        logits = x @ backbone.output_embedding().astype(dtype).T
        return constrain(logits, (ACT_BATCH, ACT_LENGTH, ACT_VOCAB)).astype(jnp.float32) + \
            self.out_bias[...]


class TaggingHead(nnx.Module):
    """Per-token labels: dropout -> dense(h, labels) on every position, float32 [B, S, labels].

    As HF's ``XLMRobertaForTokenClassification`` used by XTREME's UDPOS/PAN-X baselines; only
    the first sub-token of each word is trained and read (the features mark which).
    """

    def __init__(self, config: BackboneConfig, num_labels: int, *, rngs: nnx.Rngs,
                 dropout: float | None = None):
        with nnx.use_eager_sharding(False):
            self.out_kernel, self.out_bias = _dense_params(config, rngs, config.hidden_size,
                                                           num_labels, (EMBED, CLASSES))
        self.dropout = Dropout(config.hidden_dropout if dropout is None else dropout)
        self.num_labels = num_labels

    def __call__(self, hidden: jax.Array, backbone: Backbone | None, attention_mask=None, *,
                 rngs: nnx.Rngs | None) -> jax.Array:
        del backbone, attention_mask  # every position is scored; the loss reads the labelled ones
        x = self.dropout(hidden, deterministic=rngs is None, rngs=rngs)
        logits = x @ self.out_kernel[...].astype(hidden.dtype)
        return logits.astype(jnp.float32) + self.out_bias[...]


class SpanHead(nnx.Module):
    """Extractive QA: dense(h, 2) on every position -> float32 [B, S, 2] (start, end logits).

    HF's ``qa_outputs`` (no dropout in the head, as there). Padded positions are masked in
    the loss and in post-processing, so bucket padding never changes a prediction.
    """

    def __init__(self, config: BackboneConfig, num_labels: int = 2, *, rngs: nnx.Rngs,
                 dropout: float | None = None):
        del dropout
        if num_labels != 2:
            raise ValueError(f"a span head predicts start and end (2 outputs), not {num_labels}")
        with nnx.use_eager_sharding(False):
            self.out_kernel, self.out_bias = _dense_params(config, rngs, config.hidden_size, 2,
                                                           (EMBED, CLASSES))
        self.num_labels = 2

    def __call__(self, hidden: jax.Array, backbone: Backbone | None, attention_mask=None, *,
                 rngs: nnx.Rngs | None) -> jax.Array:
        del backbone, attention_mask, rngs  # padded positions are masked in the loss
        logits = hidden @ self.out_kernel[...].astype(hidden.dtype)
        return logits.astype(jnp.float32) + self.out_bias[...]


class MultipleChoiceHead(ClassificationHead):
    """One score per (prompt, choice) row: the classification head with a single output,
    float32 [B * choices, 1]; the loss and predictions take the softmax over each example's
    consecutive ``choices`` rows (HF's ``*ForMultipleChoice``: pooled ``<s>`` -> dense(h, 1),
    reshaped to [B, choices]). ``num_labels`` is the number of choices, used by the loss only.
    """

    def __init__(self, config: BackboneConfig, num_labels: int, *, rngs: nnx.Rngs,
                 dropout: float | None = None):
        if num_labels < 2:
            raise ValueError(f"a multiple-choice head needs at least 2 choices, not {num_labels}")
        super().__init__(config, 1, rngs=rngs, dropout=dropout)
        self.num_choices = num_labels


class TaskModel(nnx.Module):
    """The shared backbone (attribute ``encoder``) plus one head; phases swap the head and keep
    the backbone."""

    def __init__(self, encoder: Backbone, head: nnx.Module):
        self.encoder = encoder
        self.head = head

    def _head(self, task: str | None) -> nnx.Module:
        if task is not None:
            raise ValueError(f"a single-task model has no head per task (got task={task!r})")
        return self.head

    def __call__(self, input_ids, attention_mask, token_type_ids=None, *,
                 dropout_rng: jax.Array | None = None, task: str | None = None) -> jax.Array:
        enc_rng = head_rngs = None
        if dropout_rng is not None:
            enc_rng, head_rng = jax.random.split(dropout_rng)
            head_rngs = nnx.Rngs(dropout=head_rng)
        head = self._head(task)  # before the encoder: a wrong name fails before any compute
        hidden = self.encoder(input_ids, attention_mask, token_type_ids,
                              dropout_rng=enc_rng).last_hidden_state
        return head(hidden, self.encoder, attention_mask, rngs=head_rngs)


class MultiTaskModel(TaskModel):
    """The shared encoder and one head per task (multi-task intermediate training): a call
    names its task, and only that head runs (the others get zero gradients)."""

    def __init__(self, encoder: Backbone, heads: dict[str, nnx.Module]):
        if not heads:
            raise ValueError("a multi-task model needs at least one head")
        self.encoder = encoder
        self.heads = nnx.data(dict(heads))

    def _head(self, task: str | None) -> nnx.Module:
        if task not in self.heads:
            raise ValueError(f"no head for task {task!r}; heads: {', '.join(self.heads)}")
        return self.heads[task]
