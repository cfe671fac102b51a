"""Sentence embeddings from any encoder layer: the input to BUCC/Tatoeba retrieval.

The paper's code (XTREME) pools ``hidden_states[14]`` of a 24-layer model by a masked mean
over every token, ``<s>`` and ``</s>`` included; other depths use the same relative layer.

Embedding is inference over many short sentences, so the cost is the tokens computed,
padding included. The sentences are sorted by length and cut into batches of about
``tokens_per_batch`` tokens (many rows when they are short), each padded to the next of a
fine ladder of lengths (every length up to 16, then steps of at most 1/8): on XTREME's
Tatoeba sentences about 1 % of the computed tokens are padding, where batches of 32 padded
to 16/32/64... computed 37 % (``benchmarks/embed.py``). Each (rows, length) shape compiles
once (half a second for a scanned 12-layer model); the ladder keeps them to a few dozen.
"""

from __future__ import annotations

import bisect
import functools
import math
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.models.encoder import Encoder
from xstilts_jax import sharding
from xstilts_jax.progress import Progress

Pooling = Literal["mean", "cls"]

# Rows of a short sentence's batch: flax's forward ran at one speed from ~700 tokens a batch
# up (e5-small on 2 CPU cores), and slower below; bigger batches only pad more.
DEFAULT_TOKENS_PER_BATCH = 2048


def default_retrieval_layer(num_layers: int) -> int:
    """Layer 14 of 24 (the paper's choice), scaled to the model's depth."""
    return max(1, min(num_layers, round(num_layers * 14 / 24)))


def pool_hidden(hidden: jax.Array, attention_mask: jax.Array, pool: Pooling) -> jax.Array:
    """[B, S, H] -> [B, H]: masked mean over real tokens (specials included) or the first token."""
    if pool == "cls":
        return hidden[:, 0].astype(jnp.float32)
    if pool != "mean":
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
    mask = attention_mask[..., None].astype(jnp.float32)
    total = jnp.sum(hidden.astype(jnp.float32) * mask, axis=1)
    return total / jnp.maximum(jnp.sum(mask, axis=1), 1.0)  # padding rows: 0, not NaN


@functools.partial(jax.jit, static_argnames=("graphdef", "layer", "pool", "mesh"))
def _embed_batch(graphdef, state, input_ids, attention_mask, *, layer: int, pool: Pooling,
                 mesh=None):
    encoder = nnx.merge(graphdef, state)
    # Only the blocks below `layer` run: the blocks are one scan, which XLA would not cut short.
    # With num_layers=layer, hidden state `layer` is the last one; reading it as such leaves
    # the scan's per-block outputs unused, so they are not stacked into a [layer, B, S, H] buffer.
    if mesh is None:
        out = encoder(input_ids, attention_mask, num_layers=layer)
    else:  # activations placed by the same rules as in training (batch over data x fsdp)
        with sharding.activation_sharding(mesh):
            out = encoder(input_ids, attention_mask, num_layers=layer)
    return pool_hidden(out.last_hidden_state, attention_mask, pool)


def _batch_rows(mesh) -> int:
    """Devices the batch dimension is split over (data x fsdp by the rules)."""
    spec = sharding.batch_sharding(mesh, 2).spec[0]
    axes = (spec,) if isinstance(spec, str) else tuple(spec or ())
    return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def length_ladder(max_length: int) -> tuple[int, ...]:
    """The lengths a batch is padded to: every length up to 16, then steps of at most 1/8
    (18, 20 .. 32, 36 .. 64, 72 ...), and ``max_length`` last. Sorted sentences of one
    length fill whole batches, so padding is mostly the rounding up to the next rung."""
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    rungs, length = [], 0
    while length < max_length:
        length += 1 if length < 16 else 1 << (length.bit_length() - 4)
        rungs.append(min(length, max_length))
    return tuple(rungs)


def plan_batches(lengths: Sequence[int], *, batch_size: int, tokens_per_batch: int,
                 buckets: Sequence[int], row_multiple: int = 1) -> list[tuple[np.ndarray, int, int]]:
    """(sequence indices, rows, length) of every batch, the sequences sorted by length.

    A batch padded to length ``s`` has ``max(batch_size, tokens_per_batch // s)`` rows (a
    multiple of ``row_multiple``) and takes the next that many sequences; ``s`` is the
    smallest rung that holds them all. Every batch is full but the last, whose rows are
    rounded up to a multiple of 8 only, so each length has one shape (and the last one more).
    """
    if batch_size < 1 or tokens_per_batch < 1:
        raise ValueError(f"batch_size and tokens_per_batch must be positive, got {batch_size} "
                         f"and {tokens_per_batch}")
    buckets = tuple(sorted(buckets))
    lengths = np.asarray(lengths, dtype=np.int64)
    too_long = np.flatnonzero(lengths > buckets[-1])
    if too_long.size:
        raise ValueError(f"{too_long.size} sequences exceed the largest bucket {buckets[-1]} "
                         f"(first: index {too_long[0]}, {lengths[too_long[0]]} tokens); truncate first")
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]

    def rows_for(seq: int) -> int:
        rows = max(batch_size, tokens_per_batch // seq)
        return -(-rows // row_multiple) * row_multiple

    plan, start, n = [], 0, len(order)
    tail_multiple = math.lcm(8, row_multiple)
    while start < n:
        for b in range(bisect.bisect_left(buckets, ordered[start]), len(buckets)):
            seq, rows = buckets[b], rows_for(buckets[b])
            if ordered[min(start + rows, n) - 1] <= seq:
                break
        take = min(rows, n - start)
        if take < rows:
            rows = min(rows, -(-take // tail_multiple) * tail_multiple)
        plan.append((order[start:start + take], rows, seq))
        start += take
    return plan


def embed_token_ids(encoder: Encoder, token_ids: Sequence[Sequence[int]], *, pad_id: int,
                    layer: int, pool: Pooling = "mean", max_length: int = 512,
                    batch_size: int = 32, tokens_per_batch: int = DEFAULT_TOKENS_PER_BATCH,
                    buckets: Sequence[int] | None = None, progress: bool = False,
                    mesh=None) -> np.ndarray:
    """float32 [n, hidden] embeddings of already-tokenized sequences, in input order.

    Batches (``plan_batches``) hold at least ``batch_size`` sequences, more when they are
    short (up to ``tokens_per_batch`` tokens), padded to a rung of ``buckets`` (default:
    ``length_ladder(max_length)``). With a ``mesh`` the parameters are placed by the training
    rules and every batch is split over the data axes (its rows a multiple of their devices).
    """
    num_layers = encoder.config.num_layers
    if not 0 <= layer <= num_layers:
        raise ValueError(f"layer must be in 0..{num_layers} (0 = embeddings), got {layer}")
    if pool not in ("mean", "cls"):
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
    graphdef, state = nnx.split(encoder)
    row_multiple = 1
    if mesh is not None:
        row_multiple = _batch_rows(mesh)
        state = sharding.put(nnx.to_pure_dict(state), nnx.to_pure_dict(
            sharding.shardings_from_metadata(state, mesh)))
    plan = plan_batches([len(t) for t in token_ids], batch_size=batch_size,
                        tokens_per_batch=tokens_per_batch, row_multiple=row_multiple,
                        buckets=length_ladder(max_length) if buckets is None else buckets)
    out = np.zeros((len(token_ids), encoder.config.hidden_size), dtype=np.float32)
    bar = Progress(len(token_ids), desc="embed", unit="sentence", enabled=progress)
    pending, done = None, 0

    def collect(rows, pooled):  # blocks on the batch while the next one is already queued
        nonlocal done
        out[rows] = np.asarray(pooled)[:len(rows)]
        done += len(rows)
        bar.update(done)

    for rows, batch_rows, seq in plan:
        ids = np.full((batch_rows, seq), pad_id, dtype=np.int32)
        mask = np.zeros((batch_rows, seq), dtype=np.int32)
        for r, i in enumerate(rows):
            ids[r, :len(token_ids[i])] = token_ids[i]
            mask[r, :len(token_ids[i])] = 1
        if mesh is not None:
            placed = sharding.feed({"input_ids": ids, "attention_mask": mask}, mesh)
            ids, mask = placed["input_ids"], placed["attention_mask"]
        pooled = _embed_batch(graphdef, state, ids, mask, layer=layer, pool=pool, mesh=mesh)
        if pending is not None:
            collect(*pending)
        pending = (rows, pooled)
    if pending is not None:
        collect(*pending)
    bar.close()
    return out


def tokenize_sentences(tokenizer, sentences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with the model's special tokens, truncated to max_length (as the paper's code)."""
    encoded = tokenizer(list(sentences), add_special_tokens=True, truncation=True,
                        max_length=max_length)
    return encoded["input_ids"]


def embed_sentences(encoder: Encoder, tokenizer, sentences: Sequence[str], *, layer: int,
                    pool: Pooling = "mean", max_length: int = 512, batch_size: int = 32,
                    tokens_per_batch: int = DEFAULT_TOKENS_PER_BATCH,
                    buckets: Sequence[int] | None = None, progress: bool = False,
                    mesh=None) -> np.ndarray:
    """float32 [n, hidden] sentence embeddings, in input order.

    A sentence that occurs several times is embedded once (Tatoeba's English sides repeat
    sentences across languages: 11 % of them).
    """
    if encoder.config.max_input_length is not None:
        max_length = min(max_length, encoder.config.max_input_length)
    sentences = list(sentences)
    unique = {s: i for i, s in enumerate(dict.fromkeys(sentences))}
    token_ids = tokenize_sentences(tokenizer, list(unique), max_length)
    vectors = embed_token_ids(encoder, token_ids, pad_id=tokenizer.pad_token_id, layer=layer,
                              pool=pool, max_length=max_length, batch_size=batch_size,
                              tokens_per_batch=tokens_per_batch, buckets=buckets,
                              progress=progress, mesh=mesh)
    if len(unique) == len(sentences):
        return vectors
    return vectors[np.fromiter((unique[s] for s in sentences), dtype=np.int64,
                               count=len(sentences))]
