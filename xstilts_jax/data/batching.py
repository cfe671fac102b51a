"""Fixed-shape batches: a few bucketed lengths, a fixed batch size, padding rows masked out.

XLA compiles one program per distinct shape, so every batch is padded to one of a handful
of lengths and to the full batch size. Padding rows carry ``example_index == -1`` and
``weight == 0``; nothing is truncated or dropped without the caller asking for it.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    input_ids: np.ndarray  # int32 [B, S]
    attention_mask: np.ndarray  # int32 [B, S]; 1 = real token
    example_index: np.ndarray  # int64 [B]; position in the input list, -1 for padding rows
    weight: np.ndarray  # float32 [B]; 1 for real rows, 0 for padding rows


def bucket_lengths(max_length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> tuple[int, ...]:
    """The buckets up to max_length, with max_length itself as the last bucket."""
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    return tuple(sorted({b for b in buckets if b < max_length} | {max_length}))


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """Smallest bucket that holds ``length`` tokens."""
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"a sequence of {length} tokens exceeds the largest bucket {buckets[-1]}")


def token_batches(token_ids: Sequence[Sequence[int]], *, batch_size: int, pad_id: int,
                  buckets: Sequence[int], sort_by_length: bool = True) -> Iterator[TokenBatch]:
    """Batches of fixed size over every sequence, each padded to its bucket length.

    Sorting by length (the default) groups similar lengths so little compute goes to
    padding; ``example_index`` maps each row back to its input position.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    buckets = tuple(sorted(buckets))
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    too_long = np.flatnonzero(lengths > buckets[-1])
    if too_long.size:
        raise ValueError(f"{too_long.size} sequences exceed the largest bucket {buckets[-1]} "
                         f"(first: index {too_long[0]}, {lengths[too_long[0]]} tokens); truncate first")
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        seq = bucket_for(int(lengths[rows].max()), buckets)
        ids = np.full((batch_size, seq), pad_id, dtype=np.int32)
        mask = np.zeros((batch_size, seq), dtype=np.int32)
        for r, i in enumerate(rows):
            n = lengths[i]
            ids[r, :n] = token_ids[i]
            mask[r, :n] = 1
        index = np.full((batch_size,), -1, dtype=np.int64)
        index[:len(rows)] = rows
        yield TokenBatch(ids, mask, index, (index >= 0).astype(np.float32))
