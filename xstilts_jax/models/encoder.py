"""Transformer encoder for the BERT / XLM-R family, in Flax NNX.

One module covers the three architectures X-STILTs needs:

* BERT (post-LN, absolute positions ``0..S-1``),
* XLM-R base/large (post-LN, RoBERTa positions that start after the padding id),
* XLM-R XL/XXL (pre-LN blocks, no embedding LayerNorm, a final LayerNorm).

Every parameter carries logical axis names (``vocab, embed, heads, kv, mlp``...) in its
``out_sharding`` metadata, for a rules table to map onto mesh axes (``data``, ``fsdp``,
``tensor``) when the train step is jitted with explicit shardings. Attention
kernels are stored per head (``[embed, heads, kv]``) so tensor parallelism can split heads
without reshaping checkpoints. The main activations carry logical names too (``act_batch,
act_length, act_embed, act_heads, act_mlp``), pinned with sharding constraints only while a
train or eval step is traced under ``sharding.activation_sharding``; without a mesh they are
no-ops and the numerics are unchanged. Every hidden state is returned because retrieval reads
a middle layer.

The blocks' parameters are stacked on a leading ``layers`` axis and run by ``jax.lax.scan``:
XLA compiles one block instead of N (xlmr-large's train step: 29 s -> 7 s on a 2-core CPU,
``benchmarks/compile_time.py``), and ``EncoderConfig.remat`` chooses what the backward pass
recomputes. Initialisation and the forward pass are those of N separate blocks, bit for bit;
gradients agree to float32 rounding (the compiled loop orders some sums differently).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from xstilts_jax.models import lora
from xstilts_jax.models.axes import (ACT_BATCH, ACT_HEADS, ACT_KV, ACT_LENGTH, ACT_MLP,
                                     EMBED, HEADS, HIDDEN, KV, LAYERS, MLP, NORM, POSITIONS, TYPES,
                                     VOCAB)
from xstilts_jax.models.backbone import first_token
from xstilts_jax.models.dropout import Dropout
from xstilts_jax.sharding import activation_mesh, constrain

PositionStyle = Literal["absolute", "roberta"]
# What the backward pass of a block recomputes instead of keeping from the forward pass:
# "none" keeps every activation, "full" keeps only each block's input (recomputes the block),
# "dots_saveable" keeps the matrix products' outputs (jax.checkpoint_policies.dots_saveable).
REMAT_POLICIES = ("none", "full", "dots_saveable")
# How self-attention is computed: "xla" writes the products out (below); "cudnn" is
# jax.nn.dot_product_attention's fused cuDNN kernel (GPU, bf16/fp16, no attention dropout);
# "auto" is cuDNN where it applies and XLA elsewhere.
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn")


def resolve_attention(config: "EncoderConfig", platform: str | None = None) -> str:
    """The implementation attention will use on ``platform`` (default: JAX's backend).

    cuDNN's fused kernel needs a GPU, a 16-bit compute dtype and a head size that is a
    multiple of 8 up to 128; ``jax.nn.dot_product_attention`` has no dropout, so attention
    dropout must be off (evaluation, or ``attention_dropout=0``). "auto" falls back to XLA
    when any of these fails; an explicit "cudnn" that cannot hold is an error.
    """
    platform = platform or jax.default_backend()
    reasons = [why for why, bad in (
        (f"platform {platform!r} is not a GPU", platform not in ("gpu", "cuda")),
        (f"compute dtype {config.dtype} is not bfloat16/float16",
         config.dtype not in ("bfloat16", "float16")),
        (f"head size {config.head_dim} is not a multiple of 8 up to 128",
         config.head_dim % 8 or config.head_dim > 128),
        (f"attention dropout {config.attention_dropout} is on",
         config.attention_dropout > 0)) if bad]
    if config.attention == "xla" or (config.attention == "auto" and reasons):
        return "xla"
    if reasons:
        raise ValueError(f"attention='cudnn' cannot be used: {'; '.join(reasons)}")
    return "cudnn"


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Shapes and flavour of an encoder; mirrors the fields of HF's Bert/XLMRoberta configs."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    # "roberta": positions count non-pad tokens from pad_token_id + 1 (HF
    # create_position_ids_from_input_ids); "absolute": 0..S-1 as in BERT.
    position_style: PositionStyle = "roberta"
    pre_layer_norm: bool = False  # True for XLM-R XL/XXL
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    dtype: str = "float32"  # compute dtype; parameters are always float32 (master weights)
    remat: str = "none"  # one of REMAT_POLICIES: activation memory traded for recomputation
    # One of ATTENTION_IMPLEMENTATIONS; "auto" picks per device (resolve_attention).
    attention: str = "auto"

    def __post_init__(self):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {self.num_layers}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {', '.join(map(repr, REMAT_POLICIES))}, "
                             f"got {self.remat!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.attention not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention must be one of "
                             f"{', '.join(map(repr, ATTENTION_IMPLEMENTATIONS))}, got {self.attention!r}")
        if self.position_style not in ("absolute", "roberta"):
            raise ValueError(f"position_style must be 'absolute' or 'roberta', got {self.position_style!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    # The layout of sentence-level heads (models/heads.py): RoBERTa's dense -> tanh -> out.
    sequence_head = "dense_tanh"

    @property
    def max_input_length(self) -> int:
        """The longest input the position table allows (RoBERTa positions start after the
        pad id)."""
        offset = self.pad_token_id + 1 if self.position_style == "roberta" else 0
        return self.max_position_embeddings - offset

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def num_params(self) -> int:
        """Parameter count of the encoder (no task head), for tables and sanity checks."""
        h, f, n = self.hidden_size, self.intermediate_size, self.num_layers
        embed = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h
        embed_norm = 0 if self.pre_layer_norm else 2 * h
        final_norm = 2 * h if self.pre_layer_norm else 0
        layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
        return embed + embed_norm + n * layer + final_norm


class EncoderOutput(NamedTuple):
    last_hidden_state: jax.Array  # [B, S, H]
    hidden_states: tuple[jax.Array, ...]  # num_layers + 1 entries, like HF's hidden_states


# Initialisers that name the parameter's logical axes; the heads build theirs with them too.
def dense_init(config, axes: tuple[str, ...]):
    """N(0, initializer_range), as HF initialises every kernel and embedding."""
    return nnx.with_partitioning(nnx.initializers.normal(config.initializer_range), axes)


def zeros_init(axes: tuple[str, ...]):
    return nnx.with_partitioning(nnx.initializers.zeros_init(), axes)


def ones_init(axes: tuple[str, ...]):
    return nnx.with_partitioning(nnx.initializers.ones_init(), axes)


class LayerNorm(nnx.Module):
    """LayerNorm computed in float32 (as torch does), with logical names on scale/bias."""

    def __init__(self, size: int, eps: float):
        self.eps = eps
        self.scale = nnx.Param(ones_init((NORM,))(jax.random.key(0), (size,), jnp.float32))
        self.bias = nnx.Param(zeros_init((NORM,))(jax.random.key(0), (size,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        x = x.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...] + self.bias[...]).astype(dtype)


class Embeddings(nnx.Module):
    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        init = nnx.initializers.normal(config.initializer_range)
        h = config.hidden_size
        self.word = nnx.Param(
            nnx.with_partitioning(init, (VOCAB, EMBED))(rngs.params(), (config.vocab_size, h)))
        self.position = nnx.Param(
            nnx.with_partitioning(init, (POSITIONS, EMBED))(
                rngs.params(), (config.max_position_embeddings, h)))
        self.token_type = nnx.Param(
            nnx.with_partitioning(init, (TYPES, EMBED))(rngs.params(), (config.type_vocab_size, h)))
        # XLM-R XL/XXL (pre-LN) has no LayerNorm on the embeddings.
        self.norm = None if config.pre_layer_norm else LayerNorm(h, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout)

    def position_ids(self, input_ids: jax.Array) -> jax.Array:
        cfg = self.config
        if cfg.position_style == "absolute":
            return jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)
        not_pad = (input_ids != cfg.pad_token_id).astype(jnp.int32)
        return jnp.cumsum(not_pad, axis=1) * not_pad + cfg.pad_token_id

    def __call__(self, input_ids, token_type_ids, *, rngs: nnx.Rngs | None) -> jax.Array:
        dtype = self.config.compute_dtype

        x = constrain(lookup_rows(self.word[...], VOCAB, input_ids)
                      + lookup_rows(self.token_type[...], TYPES, token_type_ids)
                      + lookup_rows(self.position[...], POSITIONS, self.position_ids(input_ids)),
                      HIDDEN)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x.astype(dtype), deterministic=rngs is None, rngs=rngs)


def lookup_rows(table: jax.Array, rows: str, ids: jax.Array) -> jax.Array:
    """float32 rows of an embedding table for ``ids`` [B, S], replicated (callers constrain
    the sum to the batch sharding, ``HIDDEN``: a local slice).

    The table is used as it is sharded (embed over fsdp): every device looks up its slice of
    the embedding dimension for the whole batch's ids (a few KB, replicated), and the rows
    are all-gathered (their gradient, in the backward pass, sliced). Gathering the table's
    FSDP shards first, as the blocks' weights are, would hold a whole [vocab, hidden] copy
    and its whole gradient on every device: 2 x 14.4 GB for BLOOM-176B's float32 table
    (``xstilts plan`` showed it); the rows are the global batch's [B, S, H]. Going from the
    embed-sharded rows to the batch sharding in one step instead makes XLA warn and
    replicate anyway ("involuntary full rematerialization").
    float32: the sum and LayerNorm stay float32 when LoRA stores the frozen tables in bf16.
    """
    ids = constrain(ids, (None,) * ids.ndim)
    found = jnp.take(constrain(table, (rows, EMBED)), ids, axis=0)
    found = constrain(found, (None,) * ids.ndim + (EMBED,))
    return constrain(found, (None,) * (ids.ndim + 1)).astype(jnp.float32)


class SelfAttention(nnx.Module):
    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
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

    def __call__(self, x: jax.Array, mask_bias: jax.Array, *, rngs: nnx.Rngs | None) -> jax.Array:
        dtype = x.dtype

        def proj(kernel, bias):  # -> [b, n, s, d]
            y = jnp.einsum("bse,end->bsnd", x, kernel[...].astype(dtype)) + bias[...].astype(dtype)
            return constrain(y.transpose(0, 2, 1, 3), (ACT_BATCH, ACT_HEADS, ACT_LENGTH, ACT_KV))

        # Heads in front of the sequence ([b, n, s, d]) make both attention products plain
        # batched GEMMs, and the transposes fuse with the bias adds. With the "bqnd,bknd"
        # einsums XLA:CPU produced a transposed context and ran attention ~3x slower. (One
        # stacked q/k/v GEMM instead of three was measured too: no gain, so not done.)
        if resolve_attention(self.config) == "cudnn":
            return self._fused(x, mask_bias, "cudnn")
        q = proj(self.query_kernel, self.query_bias) * jnp.asarray(
            self.config.head_dim ** -0.5, dtype)
        k = proj(self.key_kernel, self.key_bias)
        v = proj(self.value_kernel, self.value_bias)
        # Softmax statistics in float32 whatever the compute dtype, as HF does. The
        # normalisation is applied to the context (softmax(s) @ v == (exp(s - max) @ v) / sum,
        # as flash attention and torch's SDPA do): it divides [b, n, q, d] instead of
        # [b, n, q, k] and lets the exp fuse into the second product. Dropout commutes with
        # the per-row division, so it is applied to the unnormalised weights. Both products
        # return the compute dtype and are upcast after: a float32 result type
        # (preferred_element_type) would make JAX run their backward products in float32.
        scores = jnp.einsum("bnqd,bnkd->bnqk", q, k).astype(jnp.float32)
        scores = constrain(scores, (ACT_BATCH, ACT_HEADS, ACT_LENGTH, None)) + mask_bias
        weights = jnp.exp(scores - scores.max(axis=-1, keepdims=True))
        denom = weights.sum(axis=-1, keepdims=True)
        weights = self.dropout(weights.astype(dtype), deterministic=rngs is None, rngs=rngs)
        ctx = jnp.einsum("bnqk,bnkd->bnqd", weights, v).astype(jnp.float32)
        ctx = (ctx / denom).astype(dtype)
        out = jnp.einsum("bnqd,nde->bqe", ctx, self.out_kernel[...].astype(dtype))
        return constrain(out, HIDDEN) + self.out_bias[...].astype(dtype)

    def _fused(self, x: jax.Array, mask_bias: jax.Array, implementation: str) -> jax.Array:
        """Attention by ``jax.nn.dot_product_attention`` ([b, s, n, d] layout, the key mask
        as an additive bias in the compute dtype); no dropout (resolve_attention checks)."""
        dtype = x.dtype

        def proj(kernel, bias):  # -> [b, s, n, d]
            return (jnp.einsum("bse,end->bsnd", x, kernel[...].astype(dtype))
                    + bias[...].astype(dtype))

        ctx = jax.nn.dot_product_attention(
            proj(self.query_kernel, self.query_bias), proj(self.key_kernel, self.key_bias),
            proj(self.value_kernel, self.value_bias), bias=mask_bias.astype(dtype),
            scale=self.config.head_dim ** -0.5, implementation=implementation)
        out = jnp.einsum("bqnd,nde->bqe", ctx, self.out_kernel[...].astype(dtype))
        return constrain(out, HIDDEN) + self.out_bias[...].astype(dtype)


def _gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU written as HF/torch compute it: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    ``jax.nn.gelu(approximate=False)`` uses ``erfc``, whose XLA:CPU expansion evaluates two
    polynomial branches, an exp and two divisions per element (``erf`` is one rational
    approximation) and which YNNPACK cannot fuse. Same function to float32 rounding.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(0.5 ** 0.5, x.dtype)))


# On the CPU backend FeedForward processes the batch in chunks of about this many tokens.
# XLA:CPU (YNNPACK GEMMs) ran the xlmr-base FFN on 32 x 128 tokens measurably slower in one
# piece than in four chunks of 8 sequences (2-layer forward ~10% faster chunked, 2 cores;
# 512-2048 tokens per chunk all performed alike). Not done on accelerators, nor when the
# activations are sharded over several devices: there sequential chunks would only serialise
# work and cut across the sharded batch axis.
_CPU_FFN_CHUNK_TOKENS = 1024


def _ffn_batch_chunks(shape: tuple[int, ...]) -> int:
    """How many batch chunks FeedForward uses (1 = none): only on one CPU, only for big batches."""
    mesh = activation_mesh()
    if jax.default_backend() != "cpu" or len(shape) != 3 or (mesh is not None and mesh.size > 1):
        return 1
    batch, length = shape[0], shape[1]
    per_chunk = max(1, _CPU_FFN_CHUNK_TOKENS // max(length, 1))
    return max(1, min(batch, -(-batch // per_chunk)))


class FeedForward(nnx.Module):
    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        h, f = config.hidden_size, config.intermediate_size
        self.in_kernel = nnx.Param(dense_init(config, (EMBED, MLP))(rngs.params(), (h, f)))
        self.in_bias = nnx.Param(zeros_init((MLP,))(rngs.params(), (f,)))
        self.out_kernel = nnx.Param(dense_init(config, (MLP, EMBED))(rngs.params(), (f, h)))
        self.out_bias = nnx.Param(zeros_init((EMBED,))(rngs.params(), (h,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        w_in, b_in = self.in_kernel[...].astype(dtype), self.in_bias[...].astype(dtype)
        w_out, b_out = self.out_kernel[...].astype(dtype), self.out_bias[...].astype(dtype)

        def ffn(x):
            inner = _gelu(constrain(x @ w_in, (ACT_BATCH, ACT_LENGTH, ACT_MLP)) + b_in)  # erf, as HF
            return constrain(inner @ w_out, HIDDEN) + b_out

        chunks = _ffn_batch_chunks(x.shape)
        if chunks == 1:
            return ffn(x)
        # Rows are independent, so chunking changes nothing but the working set.
        return jnp.concatenate([ffn(c) for c in jnp.array_split(x, chunks, axis=0)], axis=0)


class EncoderLayer(nnx.Module):
    """One transformer block; post-LN (BERT, XLM-R) or pre-LN (XLM-R XL/XXL)."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        self.pre_layer_norm = config.pre_layer_norm
        self.attention = SelfAttention(config, rngs=rngs)
        self.attention_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.ffn = FeedForward(config, rngs=rngs)
        self.ffn_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout)

    def __call__(self, x, mask_bias, *, rngs: nnx.Rngs | None):
        drop = lambda y: self.dropout(y, deterministic=rngs is None, rngs=rngs)  # noqa: E731
        if self.pre_layer_norm:
            x = x + drop(self.attention(self.attention_norm(x), mask_bias, rngs=rngs))
            return x + drop(self.ffn(self.ffn_norm(x)))
        x = self.attention_norm(x + drop(self.attention(x, mask_bias, rngs=rngs)))
        return self.ffn_norm(x + drop(self.ffn(x)))


def stack_layers(layers: list[nnx.Module]) -> nnx.Module:
    """One EncoderLayer whose parameters are the given layers' stacked on a leading axis.

    The layers are initialised one by one, exactly as separate modules would be (the same
    random draws in the same order), and only then stacked; their logical names gain the
    leading ``layers`` axis, which the rules table leaves replicated.
    """
    graphdef, first = nnx.split(layers[0])
    states = [first] + [nnx.state(layer) for layer in layers[1:]]

    def stack(*variables):
        stacked = variables[0].replace(jnp.stack([v[...] for v in variables]))
        stacked.set_metadata(out_sharding=(LAYERS, *variables[0].get_metadata()["out_sharding"]))
        return stacked

    return nnx.merge(graphdef, jax.tree.map(stack, *states,
                                            is_leaf=lambda x: isinstance(x, nnx.Variable)))


_UNROLL_SCANS: contextvars.ContextVar[bool] = contextvars.ContextVar("xstilts_unroll_scans",
                                                                  default=False)


@contextlib.contextmanager
def unrolled_scans():
    """Trace the blocks' scan fully unrolled inside this. XLA's cost analysis counts a loop's
    body once, whatever its trip count; the planner (``plan/``) counts a step's FLOPs on
    unrolled one- and two-block models and extrapolates to the full depth. Values are the
    same either way."""
    token = _UNROLL_SCANS.set(True)
    try:
        yield
    finally:
        _UNROLL_SCANS.reset(token)


_UNROLL_ON_CPU: contextvars.ContextVar[bool] = contextvars.ContextVar("xstilts_unroll_on_cpu",
                                                                   default=False)


@contextlib.contextmanager
def unrolled_on_cpu():
    """Trace the blocks' scan unrolled inside this when it is traced for CPU devices (a train
    step's trace; see ``_traced_for_cpu`` for why). Forward-only programs (embedding,
    evaluation) keep the loop: without a backward pass there are no stacked activations to
    copy, and a scanned 12-block forward compiles ~10x faster (embedding compiles one
    program per batch shape)."""
    token = _UNROLL_ON_CPU.set(True)
    try:
        yield
    finally:
        _UNROLL_ON_CPU.reset(token)


def scan_blocks(graphdef, layers: nnx.Module, adapters, x: jax.Array, block_args: tuple, *,
                depth: int, remat: str, dropout_rng: jax.Array | None, count: jax.Array):
    """Run the first ``depth`` of a backbone's stacked blocks by one ``jax.lax.scan``:
    (last output, every output [depth, B, S, H]). Any family's blocks: ``graphdef`` is one
    (unstacked) block, called as ``block(x, *block_args, rngs=)``; ``adapters`` its LoRA
    adapters (None: none), folded into each layer's parameters in the scan body. The dropout
    stream continues from block to block exactly as over unrolled blocks, starting at
    ``count``: each block starts where the previous one stopped."""
    # Each scan step reads one layer's parameters and LoRA adapters ({} without LoRA).
    stacked = (nnx.to_pure_dict(nnx.state(layers)), lora.stacked_adapters(adapters))
    if depth < jax.tree.leaves(stacked[0])[0].shape[0]:
        stacked = jax.tree.map(lambda a: a[:depth], stacked)

    def block(carry, layer):
        x, count = carry
        layer_params = lora.adapt_layer(adapters, *layer)
        layer_rngs = None
        if dropout_rng is not None:
            layer_rngs = nnx.Rngs(dropout=dropout_rng)
            layer_rngs.dropout.count[...] = count
        y = constrain(nnx.merge(graphdef, layer_params)(x, *block_args, rngs=layer_rngs), HIDDEN)
        if layer_rngs is not None:
            count = layer_rngs.dropout.count[...]
        return (y, count), y

    (x, _), outputs = jax.lax.scan(remat_block(block, remat), (x, count), stacked,
                                   unroll=_UNROLL_SCANS.get()
                                   or (_UNROLL_ON_CPU.get() and _traced_for_cpu()))
    return x, outputs


def _traced_for_cpu() -> bool:
    """Whether the model is traced for CPU devices, where a train step's blocks are unrolled.

    XLA:CPU runs a scan's loop as it is written: it zero-fills the stacked buffers of the
    saved activations and of the stacked gradients, then copies each layer's slice in and
    out (``dynamic-update-slice``/``dynamic-slice``). In xlmr-base's train step (8 x 128,
    2 cores) those fills and copies were about 10 % of the time (profiled per op); unrolled,
    the step ran 3.82 s against 4.22 s, same loss, for a longer compile (10.0 s against
    4.9 s). Accelerators keep the loop (it compiles once per block, and XLA there does not
    pay these copies), and so do programs compiled for other devices from a CPU host (the
    planner's): the devices are the mesh's the model is traced under, when there is one.
    """
    mesh = activation_mesh()
    platform = mesh.devices.flat[0].platform if mesh is not None else jax.default_backend()
    return platform == "cpu"


@functools.lru_cache(maxsize=None)
def _layer_graphdef(config: EncoderConfig):
    """The graph of one (unstacked) block, which the scan body fills with one layer's slice."""
    with nnx.use_eager_sharding(False):
        return nnx.graphdef(nnx.eval_shape(lambda: EncoderLayer(config, rngs=nnx.Rngs(0))))


def remat_block(body, policy: str):
    if policy == "none":
        return body
    # prevent_cse=False: inside scan the loop already keeps XLA from merging the recomputation
    # into the forward pass (JAX's advice for checkpoint under scan).
    saveable = jax.checkpoint_policies.dots_saveable if policy == "dots_saveable" else None
    return jax.checkpoint(body, prevent_cse=False, policy=saveable)


class Encoder(nnx.Module):
    """Embeddings + N transformer blocks; returns every hidden state. A ``Backbone``."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        # Logical names are metadata only: placement on a mesh is decided by the caller
        # (jit out_shardings from the rules table), so flax must not shard eagerly here.
        with nnx.use_eager_sharding(False):
            self.embeddings = Embeddings(config, rngs=rngs)
            # Every block's parameters on a leading "layers" axis, run by one scan.
            self.layers = stack_layers(
                [EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)])
            self.final_norm = (LayerNorm(config.hidden_size, config.layer_norm_eps)
                               if config.pre_layer_norm else None)
        self.lora = nnx.data(None)  # the blocks' LoRA adapters, if lora.add_adapters gives some

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None, *,
                 dropout_rng: jax.Array | None = None,
                 num_layers: int | None = None) -> EncoderOutput:
        """input_ids, attention_mask, token_type_ids: int [B, S]; mask 1 = real token, 0 = pad.

        Dropout is on iff ``dropout_rng`` is given. The key is an argument, not module state,
        so the train step can fold it per step and the model's state is its parameters alone.
        ``num_layers=k`` runs only the first k blocks (retrieval reads a middle layer): the
        output is then HF's first k+1 hidden states, and a pre-LN model's final LayerNorm is
        applied only when every block runs.
        """
        cfg = self.config
        depth = cfg.num_layers if num_layers is None else num_layers
        if not 0 <= depth <= cfg.num_layers:
            raise ValueError(f"num_layers must be in 0..{cfg.num_layers}, got {num_layers}")
        rngs = None if dropout_rng is None else nnx.Rngs(dropout=dropout_rng)
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids, rngs=rngs)
        # Additive key mask, float32: 0 for real tokens, dtype-min for padding (as HF).
        mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                              jnp.finfo(jnp.float32).min).astype(jnp.float32)
        hidden_states = [x]
        if depth:
            x, outputs = self._blocks(x, mask_bias, rngs, dropout_rng, depth)
            hidden_states += [outputs[i] for i in range(depth)]
        if self.final_norm is not None and depth == cfg.num_layers:
            # HF reports the final LayerNorm's output as the last hidden state.
            x = self.final_norm(x)
            hidden_states[-1] = x
        return EncoderOutput(last_hidden_state=x, hidden_states=tuple(hidden_states))

    def _blocks(self, x, mask_bias, rngs, dropout_rng, depth: int):
        """The first ``depth`` blocks by one scan: (last output, every output [depth, B, S, H])."""
        count = rngs.dropout.count[...] if rngs is not None else jnp.zeros((), jnp.uint32)
        return scan_blocks(_layer_graphdef(self.config), self.layers, self.lora, x, (mask_bias,),
                           depth=depth, remat=self.config.remat, dropout_rng=dropout_rng,
                           count=count)

    def pool(self, hidden: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
        """[B, S, H] -> [B, H]: the first token (``<s>`` / ``[CLS]``), whatever the mask."""
        del attention_mask
        return first_token(hidden)

    def output_embedding(self) -> jax.Array:
        """The word embeddings [vocab, H], which the masked-LM head's output is tied to."""
        return self.embeddings.word[...]
