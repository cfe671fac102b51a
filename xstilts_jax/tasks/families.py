"""How each task family trains, predicts and is scored: the glue between a task's examples,
its featurization, the model's head and loss, and XTREME's submission format and metrics.

A family turns examples into featurized rows (``featurize``), rows into what batching and
the loss see (``inputs``), the model's logits for those rows back into predictions in
XTREME's submission form (``predict``: one label per example, one tag per word, or an answer
per question id), and predictions into the official metric (``score``, through
:mod:`xstilts_jax.metrics`, the same code ``xstilts score`` runs on the files). Dev metrics
during training and zero-shot scores after it are therefore computed one way.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from xstilts_jax import metrics
from xstilts_jax.models.heads import ClassificationHead, MultipleChoiceHead, SpanHead, TaggingHead
from xstilts_jax.tasks import ccg, classification, multiple_choice, qa, tagging
from xstilts_jax.data.inputs import ModelInputs, classification_inputs
from xstilts_jax.losses import (classification_loss, masked_span_logits, multiple_choice_loss,
                                 span_loss, token_classification_loss)


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
    head: type  # nnx.Module class: (encoder_config, num_labels, *, rngs) -> head
    loss_fn: Callable
    suffix: str  # of the submission files: test-<lang>.<suffix>
    metric: str  # the dev metric that selects checkpoints (higher is better)
    labels_from_data: bool = False  # its tasks' label sets come from their training data

    def num_outputs(self, labels: Sequence[str]) -> int:
        return len(labels) if labels else 2

    def loss(self, labels: Sequence[str]) -> Callable:
        """The training loss of a task with these labels."""
        return self.loss_fn

    def task_score(self, scores: dict[str, float]) -> float:
        """XTREME's one number for a language: accuracy, F1, or (EM + F1) / 2 for QA."""
        if "exact_match" in scores:
            return (scores["exact_match"] + scores["f1"]) / 2
        return scores[self.metric]

    # Each family overrides these four.
    def featurize(self, tokenizer, examples: Sequence, labels: Sequence[str], cfg: FeatureOptions):
        raise NotImplementedError

    def inputs(self, features) -> ModelInputs:
        raise NotImplementedError

    def predict(self, features, examples: Sequence, logits: np.ndarray, labels: Sequence[str],
                cfg: FeatureOptions, task: str = ""):
        raise NotImplementedError

    def labels_from(self, examples: Sequence) -> tuple[str, ...]:
        """A task whose label set comes from its training data (``Task.labels == ()`` in a
        family that defines this): that label set."""
        raise NotImplementedError(f"{self.name} tasks have fixed labels")

    def score(self, task: str, examples: Sequence, predictions, labels: Sequence[str],
              language: str) -> dict[str, float]:
        raise NotImplementedError

    def write(self, path: pathlib.Path, predictions) -> None:
        raise NotImplementedError


class _Classification(Family):
    def featurize(self, tokenizer, examples, labels, cfg):
        return classification.featurize_pairs(tokenizer, examples, cfg.max_length)

    def inputs(self, features):
        return classification_inputs(features)

    def predict(self, features, examples, logits, labels, cfg, task=""):
        return [labels[i] for i in np.argmax(logits, axis=-1)]

    def score(self, task, examples, predictions, labels, language):
        return metrics.accuracy([labels[e.label] for e in examples], predictions)

    def write(self, path, predictions):
        path.write_text("".join(f"{p}\n" for p in predictions), encoding="utf-8")


class _Tagging(Family):
    def featurize(self, tokenizer, examples, labels, cfg):
        return tagging.featurize_tagging(tokenizer, examples, labels, cfg.max_length)

    def inputs(self, features):
        return ModelInputs(features.input_ids, features.token_type_ids,
                           token_extras={"token_labels": features.token_labels})

    def predict(self, features, examples, logits, labels, cfg, task=""):
        return tagging.tags_from_predictions(features, np.argmax(logits, axis=-1), labels)

    def score(self, task, examples, predictions, labels, language):
        return metrics.tagging_f1([list(e.tags) for e in examples], predictions)

    def write(self, path, predictions):
        tagging.write_tagging_predictions(path, predictions)


class _Supertagging(_Tagging):
    """CCG supertagging: tagging with a label set from the training data (``ccg.ccg_labels``
    plus ``<unk>`` for the rest), scored by per-token accuracy (a gold ``<unk>`` is never
    right)."""

    def labels_from(self, examples):
        return ccg.model_labels(ccg.ccg_labels(examples))

    def featurize(self, tokenizer, examples, labels, cfg):
        mapped = ccg.map_to_inventory(examples, labels[:-1])
        return tagging.featurize_tagging(tokenizer, mapped.sentences, labels, cfg.max_length)

    def score(self, task, examples, predictions, labels, language):
        gold = ccg.map_to_inventory(examples, labels[:-1]).sentences  # as featurize maps them
        return ccg.supertag_accuracy(gold, predictions)


class _QA(Family):
    def featurize(self, tokenizer, examples, labels, cfg):
        return qa.featurize_qa(tokenizer, examples, max_length=cfg.max_length,
                               doc_stride=cfg.doc_stride, max_query_length=cfg.max_query_length)

    def inputs(self, features):
        return ModelInputs(features.input_ids, features.token_type_ids,
                           {"start_positions": features.start_positions,
                            "end_positions": features.end_positions})

    def predict(self, features, examples, logits, labels, cfg, task=""):
        mask = np.zeros(logits.shape[:2], np.int32)
        for row, ids in enumerate(features.input_ids):
            mask[row, :len(ids)] = 1
        logits = np.asarray(masked_span_logits(logits, mask))
        return qa.answers_from_logits(features, examples, logits[..., 0], logits[..., 1],
                                      n_best_size=cfg.n_best_size,
                                      max_answer_length=cfg.max_answer_length,
                                      version_2_with_negative=task in SQUAD_V2_TASKS)

    def score(self, task, examples, predictions, labels, language):
        articles = [{"paragraphs": [{"qas": [
            {"id": e.id, "answers": [{"text": text} for text, _ in e.answers]}
            for e in examples]}]}]
        if task in SQUAD_V2_TASKS:
            return metrics.squad_v2_em_f1(articles, predictions)
        if task == "mlqa":
            return metrics.mlqa_em_f1(articles, predictions, language)
        return metrics.squad_em_f1(articles, predictions)

    def write(self, path, predictions):
        qa.write_qa_predictions(path, predictions)


class _MultipleChoice(_Classification):
    """One row per (prompt, choice), ``group`` = the number of choices; labels name the
    choices ("0".."3", or "A".."E"), predictions are those names (scored and written as a
    classification's: accuracy, one label a line)."""

    def loss(self, labels):
        return functools.partial(multiple_choice_loss, num_choices=len(labels))

    def featurize(self, tokenizer, examples, labels, cfg):
        return multiple_choice.featurize_choices(tokenizer, examples, cfg.max_length,
                                                 num_choices=len(labels))

    def inputs(self, features):
        return ModelInputs(features.input_ids, features.token_type_ids,
                           {"labels": np.repeat(np.asarray(features.labels, np.int32),
                                                features.num_choices)},
                           group=features.num_choices)

    def predict(self, features, examples, logits, labels, cfg, task=""):
        scores = np.asarray(logits)[:, 0].reshape(-1, features.num_choices)
        return [labels[i] for i in np.argmax(scores, axis=-1)]


SQUAD_V2_TASKS = frozenset({"squad_v2"})  # QA with unanswerable questions (null-score answers)

FAMILIES: dict[str, Family] = {
    "classification": _Classification("classification", ClassificationHead, classification_loss,
                                      "tsv", "accuracy"),
    "tagging": _Tagging("tagging", TaggingHead, token_classification_loss, "tsv", "f1"),
    "qa": _QA("qa", SpanHead, span_loss, "json", "f1"),
    "supertagging": _Supertagging("supertagging", TaggingHead, token_classification_loss, "tsv",
                                  "accuracy", labels_from_data=True),
    "multiple_choice": _MultipleChoice("multiple_choice", MultipleChoiceHead, multiple_choice_loss,
                                       "tsv", "accuracy"),
}


@dataclasses.dataclass
class Featurized:
    """One split of one task in one language, read and featurized, with what scoring needs."""

    task: Any  # tasks.Task
    language: str
    examples: Sequence
    features: Any

    @property
    def family(self) -> Family:
        return FAMILIES[self.task.family]

    def inputs(self) -> ModelInputs:
        return self.family.inputs(self.features)

    def predict(self, logits: np.ndarray, cfg: FeatureOptions):
        return self.family.predict(self.features, self.examples, logits, self.task.labels, cfg,
                                   task=self.task.name)

    def score(self, predictions) -> dict[str, float]:
        return self.family.score(self.task.name, self.examples, predictions, self.task.labels,
                                 self.language)


__all__ = ["FAMILIES", "Family", "Featurized"]
