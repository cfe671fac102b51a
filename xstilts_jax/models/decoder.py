"""Causal decoder for the BLOOM family, in Flax NNX: the second backbone family.

Computes what Hugging Face's PyTorch ``BloomModel`` computes (``transformers/models/bloom/
modeling_bloom.py``):

* word embeddings, then ``word_embeddings_layernorm``; no position embeddings: ALiBi biases
  the attention scores instead;
* pre-LN blocks: ``input_layernorm`` -> self-attention -> residual, ``post_attention_layernorm``
  -> MLP -> residual (with ``apply_residual_connection_post_layernorm`` the residual is the
  LayerNorm's output instead of its input, as HF; false for every released BLOOM);
* a final LayerNorm (``ln_f``).

Attention scores are ``alibi + (q @ k^T) / sqrt(head_dim)`` (HF's ``alibi.baddbmm(q, k^T,
beta=1, alpha=1/sqrt(d))``), then the causal and padding mask (``finfo.min`` on masked keys, as
HF's eager mask) and a float32 softmax whatever the compute dtype. ALiBi's key positions are
``(cumsum(mask) - 1) * mask``: a left-padded row's first real token is position 0. The MLP is
``dense_h_to_4h`` -> BLOOM's tanh-approximated GELU (``bloom_gelu_forward``'s constants) ->
``dense_4h_to_h``. The LM head is tied to the word embeddings (``output_embedding``).

As in the encoder (``models/encoder.py``, whose LayerNorm, initialisers and scan machinery
this module reuses): every parameter carries logical axis names; attention kernels are stored
per head (``[embed, heads, kv]`` for q/k/v, ``[heads, kv, embed]`` for the output projection),
so tensor parallelism splits heads; HF's fused ``query_key_value`` (rows laid out per head as
``(heads, 3, head_dim)``) is split on import and fused again on export
(``models/pretrained.py``). The blocks' parameters are stacked on a leading ``layers`` axis and
run by one ``jax.lax.scan``; dropout is on iff a key is given.

Differences from HF in bf16 only: HF casts the ALiBi bias to the compute dtype and adds it to
bf16 scores; here the scores, the bias and the mask are float32 before the softmax.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.models.axes import (ACT_BATCH, ACT_HEADS, ACT_KV, ACT_LENGTH, ACT_MLP,
                                     EMBED, HEADS, HIDDEN, KV, MLP, VOCAB)
from xstilts_jax.models.backbone import last_token
from xstilts_jax.models.dropout import Dropout
from xstilts_jax.models.encoder import (REMAT_POLICIES, LayerNorm, dense_init, lookup_rows,
                                        scan_blocks, stack_layers, zeros_init)
from xstilts_jax.sharding import constrain


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Shapes of a BLOOM decoder; mirrors the fields of HF's ``BloomConfig`` that matter.

    The FFN is always ``4 * hidden_size`` wide (BLOOM has no ``intermediate_size`` field).
    ``pad_token_id`` is informational (the forward pass reads the attention mask, never the
    pad id); the released BLOOMs use 3.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float = 1e-5
    pad_token_id: int | None = None
    hidden_dropout: float = 0.0  # HF BloomConfig's defaults; every released BLOOM has 0.0
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    # HF's apply_residual_connection_post_layernorm: the residual branch starts from the
    # LayerNorm's output instead of its input. False for every released BLOOM.
    apply_residual_connection_post_layernorm: bool = False
    dtype: str = "float32"  # compute dtype; parameters are always float32 (master weights)
    remat: str = "none"  # one of REMAT_POLICIES

    def __post_init__(self):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {self.num_layers}")
        if self.num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {self.num_heads}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {', '.join(map(repr, REMAT_POLICIES))}, "
                             f"got {self.remat!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")

    # The layout of sentence-level heads (models/heads.py): BLOOM's ``score``, a bias-free
    # linear map of the last real token (HF's BloomForSequenceClassification).
    sequence_head = "linear"
    # ALiBi has no position table: no length limit but memory (and what pretraining saw).
    max_input_length = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def intermediate_size(self) -> int:
        return 4 * self.hidden_size

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def num_params(self) -> int:
        """Parameter count of the decoder (the tied LM head adds none), closed form."""
        h, v, n = self.hidden_size, self.vocab_size, self.num_layers
        # qkv (h x 3h + 3h), dense (h x h + h), h_to_4h (h x 4h + 4h), 4h_to_h (4h x h + h),
        # two LayerNorms (2 x 2h)
        layer = 12 * h * h + 13 * h
        return v * h + 2 * h + n * layer + 2 * h


class DecoderOutput(NamedTuple):
    last_hidden_state: jax.Array  # [B, S, H], after the final LayerNorm
    hidden_states: tuple[jax.Array, ...]  # num_layers + 1 entries, like HF's hidden_states


def alibi_slopes(num_heads: int) -> np.ndarray:
    """float32 [num_heads]: ALiBi's per-head slopes as HF's ``_get_alibi_slopes``.

    For the closest power of two p <= num_heads, slopes ``2^(-8k/p)`` for k = 1..p; the
    remaining heads take every other slope of 2p heads, ``2^(-8k/(2p))`` for k = 1, 3, 5, ...
    (bloom-176b's 112 heads: 64 + 48).

    Computed in float64 and rounded once to float32: exactly the slopes BLOOM was trained with
    (Megatron-DeepSpeed's ``get_slopes``, Python floats -> ``torch.Tensor``). HF computes them
    with a float32 ``torch.pow``, whose result depends on the CPU's vector math and differs
    from these by up to ~5e-7 relative (4 ulp) for 16 heads or more; the scores then differ
    by ``slope * position * 5e-7``, below 1e-5 up to ~30 positions and ~1e-3 at 2048.
    """
    if num_heads < 1:
        raise ValueError(f"num_heads must be at least 1, got {num_heads}")
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base ** k for k in range(1, closest + 1)]
    if closest != num_heads:
        extra_base = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        remaining = min(closest, num_heads - closest)
        slopes += [extra_base ** k for k in range(1, 1 + 2 * remaining, 2)]
    return np.asarray(slopes, np.float64).astype(np.float32)


def alibi_bias(attention_mask: jax.Array, num_heads: int) -> jax.Array:
    """float32 [B, heads, 1, S]: each key's ALiBi bias, ``slope * position``, with positions
    ``(cumsum(mask) - 1) * mask`` (HF's ``build_alibi_tensor``). It depends on the key only:
    adding a constant per query row leaves the softmax unchanged, so this equals the relative
    form ``-slope * (q - k)``."""
    mask = attention_mask.astype(jnp.int32)
    positions = ((jnp.cumsum(mask, axis=-1) - 1) * mask).astype(jnp.float32)
    slopes = jnp.asarray(alibi_slopes(num_heads))
    return slopes[None, :, None, None] * positions[:, None, None, :]


def bloom_gelu(x: jax.Array) -> jax.Array:
    """HF's ``bloom_gelu_forward``, term for term: the tanh GELU with BLOOM's (Megatron's)
    rounded constants."""
    c, a = jnp.asarray(0.79788456, x.dtype), jnp.asarray(0.044715, x.dtype)
    half, one = jnp.asarray(0.5, x.dtype), jnp.asarray(1.0, x.dtype)
    return x * half * (one + jnp.tanh(c * x * (one + a * x * x)))


class DecoderEmbeddings(nnx.Module):
    """Word embeddings and their LayerNorm (``word_embeddings_layernorm``); no positions."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.word = nnx.Param(dense_init(config, (VOCAB, EMBED))(
            rngs.params(), (config.vocab_size, config.hidden_size)))
        self.norm = LayerNorm(config.hidden_size, config.layer_norm_eps)

    def __call__(self, input_ids: jax.Array) -> jax.Array:
        # Looked up in the sharded table, as in the encoder (float32 rows).
        x = constrain(lookup_rows(self.word[...], VOCAB, input_ids), HIDDEN)
        return self.norm(x).astype(self.config.compute_dtype)


class AlibiAttention(nnx.Module):
    """Causal self-attention with ALiBi, per-head kernels (HF's fused qkv split by head)."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        h, n, d = config.hidden_size, config.num_heads, config.head_dim
        qkv_kernel = dense_init(config, (EMBED, HEADS, KV))
        self.query_kernel = nnx.Param(qkv_kernel(rngs.params(), (h, n, d)))
        self.key_kernel = nnx.Param(qkv_kernel(rngs.params(), (h, n, d)))
        self.value_kernel = nnx.Param(qkv_kernel(rngs.params(), (h, n, d)))
        self.query_bias = nnx.Param(zeros_init((HEADS, KV))(rngs.params(), (n, d)))
        self.key_bias = nnx.Param(zeros_init((HEADS, KV))(rngs.params(), (n, d)))
        self.value_bias = nnx.Param(zeros_init((HEADS, KV))(rngs.params(), (n, d)))
        self.out_kernel = nnx.Param(dense_init(config, (HEADS, KV, EMBED))(rngs.params(), (n, d, h)))
        self.out_bias = nnx.Param(zeros_init((EMBED,))(rngs.params(), (h,)))
        self.dropout = Dropout(config.attention_dropout)

    def __call__(self, x: jax.Array, alibi: jax.Array, attention_mask: jax.Array, *,
                 rngs: nnx.Rngs | None) -> jax.Array:
        """x [B, S, H]; alibi float32 [B, heads, 1, S]; attention_mask [B, S] (1 = real)."""
        dtype = x.dtype
        length = x.shape[1]

        def proj(kernel, bias):  # -> [b, n, s, d], heads in front as in the encoder
            y = jnp.einsum("bse,end->bsnd", x, kernel[...].astype(dtype)) + bias[...].astype(dtype)
            return constrain(y.transpose(0, 2, 1, 3), (ACT_BATCH, ACT_HEADS, ACT_LENGTH, ACT_KV))

        q = proj(self.query_kernel, self.query_bias)
        k = proj(self.key_kernel, self.key_bias)
        v = proj(self.value_kernel, self.value_bias)
        # HF: alibi.baddbmm(q, k^T, beta=1, alpha=1/sqrt(d)), i.e. the product scaled after,
        # then + the mask; here in float32 whatever the compute dtype.
        scores = jnp.einsum("bnqd,bnkd->bnqk", q, k).astype(jnp.float32)
        scores = constrain(scores, (ACT_BATCH, ACT_HEADS, ACT_LENGTH, None))
        scores = scores * (1.0 / math.sqrt(self.config.head_dim)) + alibi
        # Causal and padding mask, built here from the [B, S] mask rather than held as a
        # [B, 1, S, S] constant through the scan.
        causal = jnp.arange(length)[None, :] <= jnp.arange(length)[:, None]  # [q, k]
        allowed = causal[None, None] & (attention_mask[:, None, None, :] > 0)
        scores = scores + jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)
        # Softmax statistics in float32, normalisation applied to the context, dropout on the
        # unnormalised weights: as the encoder (the reasons are in SelfAttention there).
        weights = jnp.exp(scores - scores.max(axis=-1, keepdims=True))
        denom = weights.sum(axis=-1, keepdims=True)
        weights = self.dropout(weights.astype(dtype), deterministic=rngs is None, rngs=rngs)
        ctx = jnp.einsum("bnqk,bnkd->bnqd", weights, v).astype(jnp.float32)
        ctx = (ctx / denom).astype(dtype)
        out = jnp.einsum("bnqd,nde->bqe", ctx, self.out_kernel[...].astype(dtype))
        return constrain(out, HIDDEN) + self.out_bias[...].astype(dtype)


class DecoderFeedForward(nnx.Module):
    """``dense_h_to_4h`` -> BLOOM's tanh GELU -> ``dense_4h_to_h``."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        h, f = config.hidden_size, config.intermediate_size
        self.in_kernel = nnx.Param(dense_init(config, (EMBED, MLP))(rngs.params(), (h, f)))
        self.in_bias = nnx.Param(zeros_init((MLP,))(rngs.params(), (f,)))
        self.out_kernel = nnx.Param(dense_init(config, (MLP, EMBED))(rngs.params(), (f, h)))
        self.out_bias = nnx.Param(zeros_init((EMBED,))(rngs.params(), (h,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        inner = constrain(x @ self.in_kernel[...].astype(dtype),
                          (ACT_BATCH, ACT_LENGTH, ACT_MLP)) + self.in_bias[...].astype(dtype)
        inner = bloom_gelu(inner)
        return (constrain(inner @ self.out_kernel[...].astype(dtype), HIDDEN)
                + self.out_bias[...].astype(dtype))


class DecoderLayer(nnx.Module):
    """One pre-LN BLOOM block (``BloomBlock``)."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.residual_post_ln = config.apply_residual_connection_post_layernorm
        self.attention_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.attention = AlibiAttention(config, rngs=rngs)
        self.ffn_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.ffn = DecoderFeedForward(config, rngs=rngs)
        self.dropout = Dropout(config.hidden_dropout)

    def __call__(self, x, alibi, attention_mask, *, rngs: nnx.Rngs | None):
        drop = lambda y: self.dropout(y, deterministic=rngs is None, rngs=rngs)  # noqa: E731
        normed = self.attention_norm(x)
        residual = normed if self.residual_post_ln else x
        x = residual + drop(self.attention(normed, alibi, attention_mask, rngs=rngs))
        normed = self.ffn_norm(x)
        residual = normed if self.residual_post_ln else x
        return residual + drop(self.ffn(normed))


@functools.lru_cache(maxsize=None)
def _layer_graphdef(config: DecoderConfig):
    """The graph of one (unstacked) block, which the scan body fills with one layer's slice."""
    with nnx.use_eager_sharding(False):
        return nnx.graphdef(nnx.eval_shape(lambda: DecoderLayer(config, rngs=nnx.Rngs(0))))


class Decoder(nnx.Module):
    """Embeddings + N causal ALiBi blocks + final LayerNorm; every hidden state. A ``Backbone``."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        # Placement is decided by the caller (jit out_shardings from the rules table), as in
        # the encoder: flax must not shard eagerly here.
        with nnx.use_eager_sharding(False):
            self.embeddings = DecoderEmbeddings(config, rngs=rngs)
            self.layers = stack_layers(
                [DecoderLayer(config, rngs=rngs) for _ in range(config.num_layers)])
            self.final_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.lora = nnx.data(None)  # the blocks' LoRA adapters, if lora.add_adapters gives some

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None, *,
                 dropout_rng: jax.Array | None = None,
                 num_layers: int | None = None) -> DecoderOutput:
        """input_ids, attention_mask: int [B, S]; mask 1 = real token, 0 = pad (left or right
        padding). ``token_type_ids`` is accepted for the Backbone signature and ignored (BLOOM
        has no segment embeddings).

        Dropout is on iff ``dropout_rng`` is given. ``num_layers=k`` runs only the first k
        blocks: the output is then HF's first k+1 hidden states, and the final LayerNorm is
        applied only when every block runs (HF reports ``ln_f``'s output as the last hidden
        state, in place of the last block's raw output). Hidden states at padded positions
        are finite but meaningless (a left-padded row's pads attend to nothing real); callers
        mask them.
        """
        del token_type_ids
        cfg = self.config
        depth = cfg.num_layers if num_layers is None else num_layers
        if not 0 <= depth <= cfg.num_layers:
            raise ValueError(f"num_layers must be in 0..{cfg.num_layers}, got {num_layers}")
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        x = self.embeddings(input_ids)
        hidden_states = [x]
        if depth:
            alibi = alibi_bias(attention_mask, cfg.num_heads)
            x, outputs = self._blocks(x, alibi, attention_mask, dropout_rng, depth)
            hidden_states += [outputs[i] for i in range(depth)]
        if depth == cfg.num_layers:
            x = self.final_norm(x)
            hidden_states[-1] = x
        return DecoderOutput(last_hidden_state=x, hidden_states=tuple(hidden_states))

    def _blocks(self, x, alibi, attention_mask, dropout_rng, depth: int):
        """The first ``depth`` blocks by one scan: (last output, every output [depth, B, S, H])."""
        count = jnp.zeros((), jnp.uint32)  # no dropout before the blocks (none on embeddings)
        return scan_blocks(_layer_graphdef(self.config), self.layers, self.lora, x,
                           (alibi, attention_mask), depth=depth, remat=self.config.remat,
                           dropout_rng=dropout_rng, count=count)

    def pool(self, hidden: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
        """[B, S, H] -> [B, H]: each row's last real token, the only one that saw the whole
        sequence (left or right padding alike; HF's ``BloomForSequenceClassification``)."""
        return last_token(hidden, attention_mask)

    def output_embedding(self) -> jax.Array:
        """The word embeddings [vocab, H], which BLOOM's LM head is tied to."""
        return self.embeddings.word[...]
