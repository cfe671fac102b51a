"""Featurized rows as batching, the model and the losses see them (NumPy only).

Every task family turns its features into :class:`ModelInputs`; the trainer and the zero-shot
evaluation cut them into fixed-shape batches (:mod:`xstilts_jax.data.batching`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from xstilts_jax.data.batching import token_batches


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """Featurized rows as batching, the model and the loss see them.

    ``extras`` are per-row arrays (labels, start/end positions); ``token_extras`` per-token int
    arrays as long as their row (token labels), padded with -1 in a batch.

    ``group`` rows make one example (the choices of a multiple-choice question, consecutive
    rows): batches then hold ``batch_size`` whole examples (``batch_size * group`` rows),
    orders are orders of examples, and padding fills whole groups.
    """

    input_ids: Sequence[Sequence[int]]
    token_type_ids: Sequence[Sequence[int]]
    extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    token_extras: Mapping[str, Sequence[np.ndarray]] = dataclasses.field(default_factory=dict)
    group: int = 1

    def __post_init__(self) -> None:
        if self.group < 1 or len(self.input_ids) % self.group:
            raise ValueError(f"{len(self.input_ids)} rows do not make whole groups of "
                             f"{self.group}")

    def __len__(self) -> int:
        """Rows (what ``predict_logits`` returns one of each)."""
        return len(self.input_ids)

    @property
    def num_examples(self) -> int:
        return len(self.input_ids) // self.group

    def example_lengths(self) -> np.ndarray:
        """Tokens of each example's longest row (what its batch is padded to at least)."""
        rows = np.fromiter(map(len, self.input_ids), np.int64, count=len(self.input_ids))
        return rows.reshape(-1, self.group).max(axis=1)

    def batches(self, *, batch_size: int, pad_id: int, buckets: Sequence[int], order=None):
        """Fixed-shape batches of ``batch_size`` examples; ``order`` (of examples) defaults to
        the examples sorted by their longest row."""
        if self.group > 1:
            g = self.group
            if order is None:
                order = np.argsort(self.example_lengths(), kind="stable")
            order = (np.asarray(order, np.int64)[:, None] * g + np.arange(g)).reshape(-1)
        return token_batches(self.input_ids, batch_size=batch_size * self.group, pad_id=pad_id,
                             buckets=buckets, order=order, token_type_ids=self.token_type_ids,
                             extras=self.extras, token_extras=self.token_extras)


def classification_inputs(features) -> ModelInputs:
    """One row and one label per example: ``features`` has ``input_ids``, ``token_type_ids``
    and ``labels`` (sentence-pair features, synthetic or tokenized)."""
    return ModelInputs(features.input_ids, features.token_type_ids,
                       {"labels": np.asarray(features.labels, np.int32)})
