"""Sentence(-pair) classification (XNLI, PAWS-X, MNLI, QQP, SST-2, ...): featurization, and the
family: one label per example, on ``<s>`` (a decoder: its last real token, ``</s>``), scored
by accuracy."""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np

from xstilts_jax import metrics
from xstilts_jax.data.inputs import ModelInputs, classification_inputs
from xstilts_jax.losses import classification_loss
from xstilts_jax.models.heads import ClassificationHead
from xstilts_jax.tasks.examples import PairExample
from xstilts_jax.tasks.families.base import Family

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PairFeatures:
    """Token ids of (text_a, text_b) pairs, or of single sentences, with special tokens,
    unpadded, one row per example."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]  # the tokenizer's segment ids, or zeros where it has none
    labels: np.ndarray  # int32 [n]
    guids: list[str]
    num_truncated: int  # examples cut to max_length (longest_first)

    def __len__(self) -> int:
        return len(self.input_ids)


def featurize_pairs(tokenizer, examples: Sequence[PairExample], max_length: int, *,
                    chunk_size: int = 8192) -> PairFeatures:
    """Tokenize pairs with the fast tokenizer's batch call: ``<s> A </s></s> B </s>`` for
    XLM-R, ``A </s> B </s>`` for a decoder's (``tokenization.task_tokenizer``), truncated
    ``longest_first`` to ``max_length`` tokens (specials included). Examples whose ``text_b``
    is None (single-sentence tasks: SST-2) are tokenized alone, ``<s> A </s>`` (``A </s>``);
    one call takes either pairs or single sentences, not a mix (a ``ValueError``).

    ``chunk_size`` examples go to the tokenizer at a time, which bounds the memory its
    per-example Encoding objects take. An example counts as truncated when its encoding has
    overflowing tokens (what truncation removed).
    """
    singles = sum(e.text_b is None for e in examples)
    if 0 < singles < len(examples):
        raise ValueError(f"{singles} of {len(examples)} examples are single sentences (text_b "
                         f"None) and the others pairs: featurize one kind at a time")
    pairs = singles == 0
    minimum = tokenizer.num_special_tokens_to_add(pair=pairs) + (2 if pairs else 1)
    if max_length < minimum:
        what = ("a pair: it needs at least {m} (special tokens plus one token of each text)"
                if pairs else "a sentence: it needs at least {m} (special tokens plus one "
                "token)").format(m=minimum)
        raise ValueError(f"max_length {max_length} leaves no room for {what}")
    with_types = "token_type_ids" in tokenizer.model_input_names
    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    num_truncated = 0
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start:start + chunk_size]
        text_a = [e.text_a for e in chunk]
        texts = (text_a, [e.text_b for e in chunk]) if pairs else (text_a,)
        encoded = tokenizer(*texts, truncation="longest_first", max_length=max_length,
                            add_special_tokens=True, return_attention_mask=False,
                            return_token_type_ids=with_types)
        ids = encoded["input_ids"]
        input_ids.extend(ids)
        if with_types:
            token_type_ids.extend(encoded["token_type_ids"])
        else:
            token_type_ids.extend([0] * len(row) for row in ids)
        # The Rust encoding keeps what truncation cut off: no second tokenizer call.
        num_truncated += sum(len(encoded.encodings[i].overflowing) > 0
                             for i, row in enumerate(ids) if len(row) == max_length)
    if num_truncated:
        log.info("%d of %d %s truncated to %d tokens", num_truncated, len(examples),
                 "pairs" if pairs else "sentences", max_length)
    labels = np.fromiter((e.label for e in examples), dtype=np.int32, count=len(examples))
    return PairFeatures(input_ids, token_type_ids, labels, [e.guid for e in examples],
                        num_truncated)


class ClassificationFamily(Family):
    def featurize(self, tokenizer, examples, task, cfg):
        return featurize_pairs(tokenizer, examples, cfg.max_length)

    def inputs(self, features) -> ModelInputs:
        return classification_inputs(features)

    def batch_fields(self, task):
        return 1, {"labels": "row"}

    def predict(self, features, examples, logits, task, cfg):
        return [task.labels[i] for i in np.argmax(logits, axis=-1)]

    def score(self, task, examples, predictions, language):
        return metrics.accuracy([task.labels[e.label] for e in examples], predictions)

    def example_stats(self, task, examples, predictions, language):
        return "accuracy", metrics.accuracy_example_stats([task.labels[e.label] for e in examples],
                                                          predictions)

    def write(self, path, predictions):
        path.write_text("".join(f"{p}\n" for p in predictions), encoding="utf-8")


CLASSIFICATION = ClassificationFamily("classification", ClassificationHead, classification_loss,
                                      "tsv", "accuracy")

__all__ = ["CLASSIFICATION", "ClassificationFamily", "PairFeatures", "featurize_pairs"]
