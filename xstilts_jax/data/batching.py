"""Fixed-shape batches: a few bucketed lengths, a fixed batch size, padding rows masked out.

XLA compiles one program per distinct shape, so every batch is padded to one of a handful
of lengths and to the full batch size. Padding rows carry ``example_index == -1`` and
``weight == 0``; nothing is truncated or dropped without the caller asking for it.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping, Sequence

import numpy as np

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class TokenBatch:
    input_ids: np.ndarray  # int32 [B, S]
    attention_mask: np.ndarray  # int32 [B, S]; 1 = real token
    token_type_ids: np.ndarray  # int32 [B, S]; segment ids (zeros unless given)
    example_index: np.ndarray  # int64 [B]; position in the input list, -1 for padding rows
    weight: np.ndarray  # float32 [B]; 1 for real rows, 0 for padding rows
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # per-example, e.g. labels

    def arrays(self) -> dict[str, np.ndarray]:
        """The device-bound fields (everything but example_index, which stays on the host)."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids, "weight": self.weight, **self.extras}


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


def fit_buckets(lengths: Sequence[int], max_length: int, max_buckets: int, *,
                multiple: int = 8) -> tuple[int, ...]:
    """At most ``max_buckets`` bucket lengths, multiples of ``multiple`` and ``max_length``
    last, that pad ``lengths`` least when each is rounded up to its bucket.

    Why: powers of two fit no real length distribution: Tatoeba pairs (median 20 tokens)
    land in the 32 bucket, and a length-grouped epoch of them computes 35 % padding with
    16/32/64/128 against 26 % with the same number of shapes fitted (24/32/48/128). Rounding each row up is what
    a length-grouped batch's padding approaches (its rows are alike), so this is solved
    exactly, by dynamic programming over the candidate lengths. ``max_length`` stays the
    last bucket so that any row that fits the model fits a bucket (dev rows longer than the
    training ones).
    """
    if max_buckets < 1 or multiple < 1:
        raise ValueError(f"max_buckets and multiple must be positive, got {max_buckets}, "
                         f"{multiple}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and lengths.max() > max_length:
        raise ValueError(f"a sequence of {lengths.max()} tokens exceeds max_length {max_length}")
    candidates = np.array(sorted({*range(multiple, max_length, multiple), max_length}))
    # count[j], total[j]: rows, tokens of the rows no longer than candidates[j]
    order = np.sort(lengths)
    count = np.searchsorted(order, candidates, side="right")
    total = np.concatenate([[0], np.cumsum(order)])[count]

    def padding(i, j):  # rows in (candidates[i], candidates[j]] rounded up to candidates[j]
        below_rows, below_tokens = (count[i], total[i]) if i >= 0 else (0, 0)
        return int((count[j] - below_rows) * candidates[j] - (total[j] - below_tokens))

    n = len(candidates)
    best = [[padding(-1, j) for j in range(n)]]  # best[k][j]: k + 1 buckets, the last candidates[j]
    back = [[-1] * n]
    for _ in range(1, min(max_buckets, n)):
        row, arg = [], []
        for j in range(n):
            costs = [best[-1][i] + padding(i, j) for i in range(j)]
            i = int(np.argmin(costs)) if costs else -1
            row.append(costs[i] if costs else best[0][j])
            arg.append(i)
        best.append(row)
        back.append(arg)
    k = int(np.argmin([b[-1] for b in best]))  # fewest buckets among the least padding
    out, j = [], n - 1
    while j >= 0:
        out.append(int(candidates[j]))
        j, k = back[k][j], k - 1
    return tuple(sorted(out))


def length_grouped_order(lengths: Sequence[int], batch_size: int, rng: np.random.Generator, *,
                         group_batches: int = 32) -> np.ndarray:
    """A shuffled training order whose consecutive ``batch_size`` rows have similar lengths.

    The examples are shuffled, cut into groups of ``group_batches`` batches, sorted by length
    inside each group, and the batches are shuffled again: every example is still seen once
    per epoch, but few batches are padded to a larger bucket than most of their rows need
    (fairseq/HF "group by length"). Only the last batch may be short.
    """
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    group = batch_size * group_batches
    for start in range(0, len(order), group):
        chunk = order[start:start + group]
        order[start:start + group] = chunk[np.argsort(lengths[chunk], kind="stable")]
    n_full = len(order) // batch_size
    batches = order[:n_full * batch_size].reshape(n_full, batch_size)[rng.permutation(n_full)]
    return np.concatenate([batches.reshape(-1), order[n_full * batch_size:]])


def token_batches(token_ids: Sequence[Sequence[int]], *, batch_size: int, pad_id: int,
                  buckets: Sequence[int], order: Sequence[int] | None = None,
                  token_type_ids: Sequence[Sequence[int]] | None = None,
                  extras: Mapping[str, np.ndarray] | None = None,
                  token_extras: Mapping[str, Sequence[Sequence[int]]] | None = None
                  ) -> Iterator[TokenBatch]:
    """Batches of fixed size over the sequences in ``order``, each padded to its bucket length.

    ``order`` defaults to sorting by length (for inference: similar lengths share a batch, so
    little compute goes to padding); training passes a shuffled permutation. ``example_index``
    maps each row back to its input position. ``extras`` are per-example arrays (labels ...)
    gathered into each batch; padding rows get zeros. ``token_extras`` are per-token int
    sequences (token labels ...), one per sequence and as long as it, padded with -1 to the
    batch's bucket length (-1: no label there).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    buckets = tuple(sorted(buckets))
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    too_long = np.flatnonzero(lengths > buckets[-1])
    if too_long.size:
        raise ValueError(f"{too_long.size} sequences exceed the largest bucket {buckets[-1]} "
                         f"(first: index {too_long[0]}, {lengths[too_long[0]]} tokens); truncate first")
    if order is None:
        order = np.argsort(lengths, kind="stable")
    order = np.asarray(order, dtype=np.int64)
    extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
    for name, values in extras.items():
        if len(values) != len(lengths):
            raise ValueError(f"extras[{name!r}] has {len(values)} entries for {len(lengths)} sequences")
    token_extras = dict(token_extras or {})
    for name, values in token_extras.items():
        if len(values) != len(lengths):
            raise ValueError(f"token_extras[{name!r}] has {len(values)} entries for "
                             f"{len(lengths)} sequences")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        seq = bucket_for(int(lengths[rows].max()), buckets)
        ids = np.full((batch_size, seq), pad_id, dtype=np.int32)
        mask = np.zeros((batch_size, seq), dtype=np.int32)
        types = np.zeros((batch_size, seq), dtype=np.int32)
        for r, i in enumerate(rows):
            n = lengths[i]
            ids[r, :n] = token_ids[i]
            mask[r, :n] = 1
            if token_type_ids is not None:
                types[r, :n] = token_type_ids[i]
        index = np.full((batch_size,), -1, dtype=np.int64)
        index[:len(rows)] = rows
        batch_extras = {}
        for name, values in extras.items():
            column = np.zeros((batch_size, *values.shape[1:]), dtype=values.dtype)
            column[:len(rows)] = values[rows]
            batch_extras[name] = column
        for name, values in token_extras.items():
            column = np.full((batch_size, seq), -1, dtype=np.int32)
            for r, i in enumerate(rows):
                if len(values[i]) != lengths[i]:
                    raise ValueError(f"token_extras[{name!r}][{i}] has {len(values[i])} entries "
                                     f"for a sequence of {lengths[i]} tokens")
                column[r, :lengths[i]] = values[i]
            batch_extras[name] = column
        yield TokenBatch(ids, mask, types, index, (index >= 0).astype(np.float32), batch_extras)
