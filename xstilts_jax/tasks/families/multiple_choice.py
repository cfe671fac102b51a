"""Multiple choice (HellaSwag, CosmosQA, CommonsenseQA): featurization and the family.

Each (prompt, choice) pair is tokenized as a sentence pair by
:func:`~xstilts_jax.tasks.families.classification.featurize_pairs` (``<s> prompt </s></s>
choice </s>`` for XLM-R, ``prompt </s> choice </s>`` for a decoder, ``longest_first``
truncation), rows flattened example-major: rows ``e*C .. e*C+C-1`` are example ``e``'s
choices. The model scores each row on ``<s>`` (a decoder: on its last token, ``</s>``); a
softmax over each question's rows is the loss, the best-scoring row the prediction (ties to
the lower index, NaN scores an error), scored and written as a classification's.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.losses import multiple_choice_loss
from xstilts_jax.models.heads import MultipleChoiceHead
from xstilts_jax.tasks.examples import MCExample, PairExample
from xstilts_jax.tasks.families.classification import ClassificationFamily, featurize_pairs
from xstilts_jax.tasks.formats.choices import UNLABELLED
from xstilts_jax.tasks.io import DataError


@dataclasses.dataclass(frozen=True)
class ChoiceFeatures:
    """Token ids of every (prompt, choice) pair, unpadded, example-major: rows
    ``e*num_choices .. e*num_choices + num_choices - 1`` are example ``e``'s choices.
    ``len()`` is the number of examples."""

    input_ids: list[list[int]]  # n * num_choices rows
    token_type_ids: list[list[int]]  # as input_ids: the tokenizer's segment ids, or zeros
    labels: np.ndarray  # int32 [n]: index of the correct choice (-1: unlabelled)
    num_choices: int
    guids: list[str]  # per example
    num_truncated: int  # pairs (not examples) cut to max_length

    def __len__(self) -> int:
        return len(self.guids)


def featurize_choices(tokenizer, examples: Sequence[MCExample], max_length: int, *,
                      num_choices: int, chunk_size: int = 8192) -> ChoiceFeatures:
    """Tokenize every (prompt, choice) pair with
    :func:`~xstilts_jax.tasks.families.classification.featurize_pairs` (same special tokens,
    ``longest_first`` truncation to ``max_length`` and truncation count). Every example must
    have exactly ``num_choices`` choices."""
    if num_choices < 1:
        raise ValueError(f"num_choices must be positive, not {num_choices}")
    pairs: list[PairExample] = []
    for e in examples:
        if len(e.choices) != num_choices:
            raise DataError(f"{e.guid}: {len(e.choices)} choices, expected {num_choices}")
        pairs.extend(PairExample(e.guid, e.prompt, choice, int(i == e.label), e.language)
                     for i, choice in enumerate(e.choices))
    features = featurize_pairs(tokenizer, pairs, max_length, chunk_size=chunk_size)
    labels = np.fromiter((e.label for e in examples), dtype=np.int32, count=len(examples))
    return ChoiceFeatures(features.input_ids, features.token_type_ids, labels, num_choices,
                          [e.guid for e in examples], features.num_truncated)


# --------------------------------------------------------------------------- predictions


def predictions_from_scores(scores, num_choices: int | None = None) -> np.ndarray:
    """The chosen index per example (int64 [n]) from scores ``[n, C]``, or flat ``[n*C]``
    example-major (as :class:`ChoiceFeatures` rows) with ``num_choices`` given. Ties go to the
    lower index; NaN scores are an error."""
    scores = np.asarray(scores)
    if scores.ndim == 1:
        if num_choices is None:
            raise ValueError("flat scores need num_choices")
        if num_choices < 1 or scores.shape[0] % num_choices:
            raise ValueError(f"{scores.shape[0]} scores is not a multiple of num_choices "
                             f"{num_choices}")
        scores = scores.reshape(-1, num_choices)
    elif scores.ndim == 2:
        if num_choices is not None and scores.shape[1] != num_choices:
            raise ValueError(f"scores have {scores.shape[1]} choices, expected {num_choices}")
    else:
        raise ValueError(f"scores must be [n*C] or [n, C], got shape {scores.shape}")
    if scores.shape[1] == 0:
        raise ValueError("scores have no choices")
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).any(axis=1).sum())} examples have NaN scores")
    return np.argmax(scores, axis=1)  # argmax returns the first maximum: ties -> lower index


class MultipleChoiceFamily(ClassificationFamily):
    """One row per (prompt, choice), ``group`` = the number of choices; labels name the
    choices ("0".."3", or "A".."E"), predictions are those names."""

    def num_outputs(self, task):
        return task.num_choices

    def loss(self, task):
        return functools.partial(multiple_choice_loss, num_choices=task.num_choices)

    def featurize(self, tokenizer, examples, task, cfg):
        return featurize_choices(tokenizer, examples, cfg.max_length,
                                 num_choices=task.num_choices)

    def batch_fields(self, task):
        return task.num_choices, {"labels": "row"}

    def inputs(self, features) -> ModelInputs:
        return ModelInputs(features.input_ids, features.token_type_ids,
                           {"labels": np.repeat(np.asarray(features.labels, np.int32),
                                                features.num_choices)},
                           group=features.num_choices)

    def predict(self, features, examples, logits, task, cfg):
        chosen = predictions_from_scores(np.asarray(logits)[:, 0], features.num_choices)
        return [task.labels[i] for i in chosen]

    def score(self, task, examples, predictions, language):
        # label -1 would index the last choice's name: no accuracy on an unlabelled split.
        unlabelled = sum(e.label == UNLABELLED for e in examples)
        if unlabelled:
            raise ValueError(f"{unlabelled} examples are unlabelled (label {UNLABELLED}): no "
                             f"accuracy on an unlabelled split")
        return super().score(task, examples, predictions, language)


MULTIPLE_CHOICE = MultipleChoiceFamily("multiple_choice", MultipleChoiceHead, multiple_choice_loss,
                                       "tsv", "accuracy")

__all__ = ["MULTIPLE_CHOICE", "ChoiceFeatures", "MultipleChoiceFamily", "featurize_choices",
           "predictions_from_scores"]
