"""Task families: how each kind of task featurizes, predicts and is scored (see ``base.py``).

``FAMILIES`` is the one registry a task's ``family`` names: its head class, loss, metric and
submission format. Retrieval (BUCC, Tatoeba) has no trained head: ``retrieve.py`` evaluates
an encoder on it, reading through the same ``tasks.read_split``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.tasks.families.base import FeatureOptions, Family
from xstilts_jax.tasks.families.classification import CLASSIFICATION
from xstilts_jax.tasks.families.multiple_choice import MULTIPLE_CHOICE
from xstilts_jax.tasks.families.qa import QA
from xstilts_jax.tasks.families.supertagging import SUPERTAGGING
from xstilts_jax.tasks.families.tagging import TAGGING
from xstilts_jax.tasks.spec import TaskSpec

FAMILIES: dict[str, Family] = {f.name: f for f in (CLASSIFICATION, TAGGING, QA, SUPERTAGGING,
                                                  MULTIPLE_CHOICE)}


@dataclasses.dataclass
class Featurized:
    """One split of one task in one language, read and featurized, with what scoring needs."""

    task: TaskSpec
    language: str
    examples: Sequence
    features: Any

    @property
    def family(self) -> Family:
        return FAMILIES[self.task.family]

    def inputs(self) -> ModelInputs:
        return self.family.inputs(self.features)

    def predict(self, logits: np.ndarray, cfg: FeatureOptions):
        return self.family.predict(self.features, self.examples, logits, self.task, cfg)

    def score(self, predictions) -> dict[str, float]:
        return self.family.score(self.task, self.examples, predictions, self.language)

    def example_stats(self, predictions) -> tuple[str, list[tuple]]:
        return self.family.example_stats(self.task, self.examples, predictions, self.language)


def featurize(tokenizer, task: TaskSpec, language: str, examples: Sequence,
              cfg: FeatureOptions) -> Featurized:
    """``examples`` of ``task`` featurized by its family."""
    family = FAMILIES[task.family]
    return Featurized(task, language, examples, family.featurize(tokenizer, examples, task, cfg))


__all__ = ["FAMILIES", "FeatureOptions", "Family", "Featurized", "featurize"]
