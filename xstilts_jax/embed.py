"""Sentence embeddings from any encoder layer: the input to BUCC/Tatoeba retrieval.

The paper's code (XTREME) pools ``hidden_states[14]`` of a 24-layer model by a masked mean
over every token, ``<s>`` and ``</s>`` included; other depths use the same relative layer.
"""

from __future__ import annotations

import functools
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xstilts_jax.data.batching import DEFAULT_BUCKETS, bucket_lengths, token_batches
from xstilts_jax.models.encoder import Encoder
from xstilts_jax import sharding
from xstilts_jax.progress import Progress

Pooling = Literal["mean", "cls"]


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
    if mesh is None:
        out = encoder(input_ids, attention_mask, num_layers=layer)
    else:  # activations placed by the same rules as in training (batch over data x fsdp)
        with sharding.activation_sharding(mesh):
            out = encoder(input_ids, attention_mask, num_layers=layer)
    return pool_hidden(out.hidden_states[layer], attention_mask, pool)


def _batch_rows(mesh) -> int:
    """Devices the batch dimension is split over (data x fsdp by the rules)."""
    spec = sharding.batch_sharding(mesh, 2).spec[0]
    axes = (spec,) if isinstance(spec, str) else tuple(spec or ())
    return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def embed_token_ids(encoder: Encoder, token_ids: Sequence[Sequence[int]], *, pad_id: int,
                    layer: int, pool: Pooling = "mean", max_length: int = 512,
                    batch_size: int = 32, buckets: Sequence[int] = DEFAULT_BUCKETS,
                    progress: bool = False, mesh=None) -> np.ndarray:
    """float32 [n, hidden] embeddings of already-tokenized sequences, in input order.

    With a ``mesh`` the parameters are placed by the training rules and every batch is split
    over the data axes (``batch_size`` is rounded up to a multiple of their devices).
    """
    num_layers = encoder.config.num_layers
    if not 0 <= layer <= num_layers:
        raise ValueError(f"layer must be in 0..{num_layers} (0 = embeddings), got {layer}")
    if pool not in ("mean", "cls"):
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
    graphdef, state = nnx.split(encoder)
    if mesh is not None:
        batch_size = -(-batch_size // _batch_rows(mesh)) * _batch_rows(mesh)
        state = sharding.put(nnx.to_pure_dict(state), nnx.to_pure_dict(
            sharding.shardings_from_metadata(state, mesh)))
    out = np.zeros((len(token_ids), encoder.config.hidden_size), dtype=np.float32)
    batches = token_batches(token_ids, batch_size=batch_size, pad_id=pad_id,
                            buckets=bucket_lengths(max_length, buckets))
    bar = Progress(-(-len(token_ids) // batch_size), desc="embed", unit="batch", enabled=progress)
    for done, batch in enumerate(batches, 1):
        ids, mask = batch.input_ids, batch.attention_mask
        if mesh is not None:
            placed = sharding.feed({"input_ids": ids, "attention_mask": mask}, mesh)
            ids, mask = placed["input_ids"], placed["attention_mask"]
        pooled = _embed_batch(graphdef, state, ids, mask, layer=layer, pool=pool, mesh=mesh)
        real = batch.example_index >= 0
        out[batch.example_index[real]] = np.asarray(pooled)[real]
        bar.update(done)
    bar.close()
    return out


def tokenize_sentences(tokenizer, sentences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with the model's special tokens, truncated to max_length (as the paper's code)."""
    encoded = tokenizer(list(sentences), add_special_tokens=True, truncation=True,
                        max_length=max_length)
    return encoded["input_ids"]


def embed_sentences(encoder: Encoder, tokenizer, sentences: Sequence[str], *, layer: int,
                    pool: Pooling = "mean", max_length: int = 512, batch_size: int = 32,
                    buckets: Sequence[int] = DEFAULT_BUCKETS, progress: bool = False,
                    mesh=None) -> np.ndarray:
    """float32 [n, hidden] sentence embeddings, in input order."""
    if encoder.config.max_input_length is not None:
        max_length = min(max_length, encoder.config.max_input_length)
    token_ids = tokenize_sentences(tokenizer, sentences, max_length)
    return embed_token_ids(encoder, token_ids, pad_id=tokenizer.pad_token_id, layer=layer,
                           pool=pool, max_length=max_length, batch_size=batch_size,
                           buckets=buckets, progress=progress, mesh=mesh)

