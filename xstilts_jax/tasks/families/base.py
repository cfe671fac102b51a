"""The family interface: what every task family does between a task's examples and XTREME's
submission files.

A family turns examples into featurized rows (``featurize``), rows into what batching and
the loss see (``inputs``), the model's logits for those rows back into predictions in
XTREME's submission form (``predict``: one label per example, one tag per word, or an answer
per question id), and predictions into the official metric (``score``, through
:mod:`xstilts_jax.metrics`, the same code ``xstilts score`` runs on the files). Dev metrics
during training and zero-shot scores after it are therefore computed one way. Options a
family needs (QA version, answer normalisation, choices) come from the task's spec, never
from its name.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol, Sequence

import numpy as np
from etils import epath

from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.tasks.spec import TaskSpec


class FeatureOptions(Protocol):
    """What featurization and post-processing read from a phase's config (``PhaseConfig``)."""

    max_length: int
    doc_stride: int
    max_query_length: int
    max_answer_length: int
    n_best_size: int


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    head: type  # nnx.Module class: (backbone_config, num_labels, *, rngs) -> head
    loss_fn: Callable
    suffix: str  # of the submission files: test-<lang>.<suffix>
    metric: str  # the dev metric that selects checkpoints (higher is better)
    labels_from_data: bool = False  # its tasks' label sets come from their training data

    def num_outputs(self, task: TaskSpec) -> int:
        return len(task.labels) if task.labels else 2

    def loss(self, task: TaskSpec) -> Callable:
        """The training loss of ``task``."""
        return self.loss_fn

    def task_score(self, scores: dict[str, float]) -> float:
        """XTREME's one number for a language: accuracy, F1, or (EM + F1) / 2 for QA."""
        if "exact_match" in scores:
            return (scores["exact_match"] + scores["f1"]) / 2
        return scores[self.metric]

    def batch_fields(self, task: TaskSpec) -> tuple[int, dict[str, str]]:
        """What ``inputs`` adds to a batch beyond ids, mask, segments and weight, without data:
        (rows per example, {field: "row" or "token"}): the planner's abstract batches."""
        raise NotImplementedError

    # Each family overrides these five.
    def featurize(self, tokenizer, examples: Sequence, task: TaskSpec, cfg: FeatureOptions):
        raise NotImplementedError

    def inputs(self, features) -> ModelInputs:
        raise NotImplementedError

    def predict(self, features, examples: Sequence, logits: np.ndarray, task: TaskSpec,
                cfg: FeatureOptions):
        raise NotImplementedError

    def score(self, task: TaskSpec, examples: Sequence, predictions,
              language: str) -> dict[str, float]:
        raise NotImplementedError

    def write(self, path: epath.Path, predictions) -> None:
        raise NotImplementedError

    def example_stats(self, task: TaskSpec, examples: Sequence, predictions,
                      language: str) -> tuple[str, list[tuple]]:
        """(kind, a row per example) of ``metrics.STAT_KINDS``: sums of the rows give
        :meth:`task_score` of :meth:`score` (``metrics.score_from_stats``), so a bootstrap
        can resample examples without the texts. Target families define it."""
        raise NotImplementedError(f"{self.name} tasks have no per-example statistics")

    def labels_from(self, examples: Sequence) -> tuple[str, ...]:
        """A task whose label set comes from its training data (``labels == ()`` in a family
        that defines this): that label set."""
        raise NotImplementedError(f"{self.name} tasks have fixed labels")


__all__ = ["FeatureOptions", "Family"]
