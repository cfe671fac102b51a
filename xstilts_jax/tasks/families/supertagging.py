"""CCG supertagging: the supertag inventory, ``<unk>``, per-token accuracy, and the family
(tagging with a label set made from the training data).

Supertag inventory and unknown supertags (:func:`ccg_labels`, :func:`map_to_inventory`):

- The inventory is the training data's supertags sorted by descending frequency, then name,
  those seen at least ``min_count`` times, at most ``max_labels`` of them. The default
  (``min_count=1``, no cap) keeps every training supertag, which is what jiant's CCG task
  (an X-STILTs intermediate task) amounts to as far as we know: a fixed tag-to-id map, no
  frequency cut-off (not checked against jiant's source here). The C&C setting
  (Clark & Curran 2007, and most CCG supertaggers since) is ``min_count=10`` on sections
  02-21 (:data:`CC_MIN_COUNT`), the 425 categories seen at least 10 times.
- A supertag outside the inventory (in training: one below the cut-off; in dev/test: also
  one never seen in training) is replaced by :data:`UNK_SUPERTAG` (``"<unk>"``) by
  :func:`map_to_inventory`, which counts what it replaced. The model's label list is then
  ``labels + (UNK_SUPERTAG,)`` (:func:`model_labels`), so the tagging featurization accepts
  every token and the model learns one class for "a rare category"; in evaluation
  (:func:`supertag_accuracy`) a token whose gold supertag is ``<unk>`` is never correct,
  whatever was predicted, so accuracy is over all tokens and out-of-inventory tokens count as
  errors -- the standard way supertaggers with a fixed category set are scored. Words are
  never skipped.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.families.tagging import TAGGING, TaggingFamily, featurize_tagging

UNK_SUPERTAG = "<unk>"  # supertags outside the inventory; never counted as correct
CC_MIN_COUNT = 10  # Clark & Curran's cut-off: categories seen >= 10 times in sections 02-21


def _tags(sentence) -> Sequence[str]:
    return sentence.tags if isinstance(sentence, TaggedSentence) else sentence


def ccg_labels(sentences: Iterable[TaggedSentence], *, min_count: int = 1,
               max_labels: int | None = None) -> tuple[str, ...]:
    """The supertag inventory: supertags seen at least ``min_count`` times, by descending
    count then name, the first ``max_labels`` of them (all by default). :data:`UNK_SUPERTAG`
    is never part of it. ``min_count=CC_MIN_COUNT`` on sections 02-21 is C&C's set."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, not {min_count}")
    if max_labels is not None and max_labels < 1:
        raise ValueError(f"max_labels must be positive or None, not {max_labels}")
    counts = collections.Counter(tag for s in sentences for tag in _tags(s))
    counts.pop(UNK_SUPERTAG, None)
    ranked = sorted((item for item in counts.items() if item[1] >= min_count),
                    key=lambda item: (-item[1], item[0]))
    if max_labels is not None:
        ranked = ranked[:max_labels]
    if not ranked:
        raise ValueError(f"no supertag is seen {min_count} times or more "
                         f"({sum(counts.values())} tokens, {len(counts)} supertags)")
    return tuple(tag for tag, _ in ranked)


def model_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The label list a model predicts: the inventory plus :data:`UNK_SUPERTAG` last."""
    if UNK_SUPERTAG in labels:
        raise ValueError(f"the inventory already contains {UNK_SUPERTAG!r}")
    return (*labels, UNK_SUPERTAG)


@dataclasses.dataclass(frozen=True)
class InventoryMapping:
    """Sentences with every supertag outside the inventory replaced by ``<unk>``."""

    sentences: tuple[TaggedSentence, ...]
    num_tokens: int
    num_mapped: int  # tokens whose supertag became <unk> (already <unk> included)
    mapped: dict[str, int]  # supertag -> tokens replaced, most frequent first

    def __len__(self) -> int:
        return len(self.sentences)


def map_to_inventory(sentences: Iterable[TaggedSentence], labels: Sequence[str], *,
                     unknown: str = UNK_SUPERTAG) -> InventoryMapping:
    """Replace every supertag not in ``labels`` by ``unknown`` (module docstring), counting
    the tokens replaced and which supertags they had. Words and guids are kept."""
    known = frozenset(labels)
    if unknown in known:
        raise ValueError(f"the inventory must not contain the unknown label {unknown!r}")
    out: list[TaggedSentence] = []
    mapped: collections.Counter[str] = collections.Counter()
    num_tokens = 0
    for s in sentences:
        num_tokens += len(s.tags)
        if all(tag in known for tag in s.tags):
            out.append(s)
            continue
        tags = []
        for tag in s.tags:
            if tag in known:
                tags.append(tag)
            else:
                mapped[tag] += 1
                tags.append(unknown)
        out.append(dataclasses.replace(s, tags=tuple(tags)))
    ordered = dict(sorted(mapped.items(), key=lambda item: (-item[1], item[0])))
    return InventoryMapping(tuple(out), num_tokens, sum(mapped.values()), ordered)


def supertag_accuracy(gold: Sequence, predicted: Sequence, *,
                      unknown: str = UNK_SUPERTAG) -> dict[str, float | int]:
    """Per-token supertag accuracy (a percentage) over all tokens of all sentences; a token
    whose gold supertag is ``unknown`` is never correct. ``gold`` and ``predicted`` are
    sentences: :class:`TaggedSentence` or sequences of supertags, token counts equal.
    Returns ``accuracy``, ``num_tokens`` and ``num_unknown`` (gold ``unknown`` tokens)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)} gold ones")
    correct = total = num_unknown = 0
    for i, (g, p) in enumerate(zip(gold, predicted)):
        g, p = _tags(g), _tags(p)
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(p)} predicted supertags for {len(g)} tokens")
        total += len(g)
        for gold_tag, tag in zip(g, p):
            if gold_tag == unknown:
                num_unknown += 1
            elif gold_tag == tag:
                correct += 1
    if not total:
        raise ValueError("no tokens")
    return {"accuracy": 100.0 * correct / total, "num_tokens": total, "num_unknown": num_unknown}



class SupertaggingFamily(TaggingFamily):
    """Tagging with a label set from the training data (:func:`ccg_labels` plus ``<unk>`` for
    the rest), scored by per-token accuracy (a gold ``<unk>`` is never right)."""

    def labels_from(self, examples):
        return model_labels(ccg_labels(examples))

    def featurize(self, tokenizer, examples, task, cfg):
        mapped = map_to_inventory(examples, task.labels[:-1])
        return featurize_tagging(tokenizer, mapped.sentences, task.labels, cfg.max_length)

    def score(self, task, examples, predictions, language):
        gold = map_to_inventory(examples, task.labels[:-1]).sentences  # as featurize maps them
        return supertag_accuracy(gold, predictions)


SUPERTAGGING = SupertaggingFamily("supertagging", TAGGING.head, TAGGING.loss_fn, "tsv", "accuracy",
                                  labels_from_data=True)

__all__ = ["CC_MIN_COUNT", "SUPERTAGGING", "UNK_SUPERTAG", "InventoryMapping",
           "SupertaggingFamily", "ccg_labels", "map_to_inventory", "model_labels",
           "supertag_accuracy"]
