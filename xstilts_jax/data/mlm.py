"""Masked-LM data: BERT-style masking of token sequences, deterministic per (seed, epoch)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from xstilts_jax.data.batching import DEFAULT_BUCKETS, bucket_lengths, length_grouped_order, token_batches


def mask_tokens(batch_ids: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator, *,
                mask_id: int, vocab_size: int, special_ids: Sequence[int], probability: float = 0.15,
                first_regular_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(masked ids, labels): of the real non-special tokens, ``probability`` are chosen;
    80 % become ``<mask>``, 10 % a random regular token, 10 % stay. Labels are -1 elsewhere."""
    candidates = (attention_mask > 0) & ~np.isin(batch_ids, np.asarray(special_ids))
    chosen = candidates & (rng.random(batch_ids.shape) < probability)
    labels = np.where(chosen, batch_ids, -1).astype(np.int32)
    roll = rng.random(batch_ids.shape)
    ids = batch_ids.copy()
    ids[chosen & (roll < 0.8)] = mask_id
    random_tokens = rng.integers(first_regular_id, vocab_size, size=batch_ids.shape)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    ids[swap] = random_tokens[swap]
    return ids.astype(np.int32), labels


class MlmData:
    """PhaseData for masked-LM pretraining on token-id sentences (specials already added)."""

    def __init__(self, train: Sequence[Sequence[int]], dev: Sequence[Sequence[int]], *, batch_size: int,
                 max_length: int, pad_id: int, mask_id: int, vocab_size: int,
                 special_ids: Sequence[int], first_regular_id: int, seed: int, probability: float = 0.15,
                 buckets: Sequence[int] = DEFAULT_BUCKETS):
        self.train, self.dev = list(train), list(dev)
        self.batch_size, self.pad_id, self.seed = batch_size, pad_id, seed
        self.buckets = bucket_lengths(max_length, buckets)
        self.mask_args = dict(mask_id=mask_id, vocab_size=vocab_size, special_ids=tuple(special_ids),
                              probability=probability, first_regular_id=first_regular_id)
        self.per_epoch = math.ceil(len(self.train) / batch_size)
        self._lengths = [len(t) for t in self.train]  # for the length-grouped order
        self._epoch, self._batches = None, None
        # The dev set is masked once, with its own fixed stream (epoch 2**30 is never trained).
        self._dev_batches = [self._masked(b.arrays(), np.random.default_rng([seed, 1 << 30, i]))
                             for i, b in enumerate(token_batches(self.dev, batch_size=batch_size,
                                                                 pad_id=pad_id, buckets=self.buckets))]

    def _masked(self, arrays: dict, rng: np.random.Generator) -> dict:
        ids, labels = mask_tokens(arrays["input_ids"], arrays["attention_mask"], rng, **self.mask_args)
        return dict(arrays, input_ids=ids, mlm_labels=labels)

    def num_train_examples(self) -> int:
        return len(self.train)

    def train_batch(self, micro_step: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(micro_step, self.per_epoch)
        if epoch != self._epoch:
            # Length-grouped: most batches of short sentences fit the smallest bucket.
            order = length_grouped_order(self._lengths, self.batch_size,
                                         np.random.default_rng([self.seed, epoch]))
            self._batches = list(token_batches(self.train, batch_size=self.batch_size, pad_id=self.pad_id,
                                               buckets=self.buckets, order=order))
            self._epoch = epoch
        # Masking is a function of (seed, epoch, index): a resumed run masks identically.
        return self._masked(self._batches[index].arrays(),
                            np.random.default_rng([self.seed, epoch, index]))

    def evaluate(self, eval_step, params, feed) -> dict[str, float]:
        correct = total = 0.0
        for batch in self._dev_batches:
            logits = np.asarray(eval_step(params, feed(batch))["logits"])
            labels = batch["mlm_labels"]
            chosen = labels >= 0
            correct += float(np.sum((logits.argmax(-1) == labels) & chosen))
            total += float(chosen.sum())
        return {"dev_mlm_accuracy": 100.0 * correct / max(total, 1.0)}


# --------------------------------------------------------------------------- multilingual text

MLM_TEXT_STREAM = 0x3D1A  # random stream of the multilingual MLM batches (apart from others)


def tokenize_text(tokenizer, lines: Sequence[str], max_length: int, *,
                  chunk_size: int = 4096) -> list[list[int]]:
    """``<s> ... </s>`` rows of at most ``max_length`` tokens: a line longer than that is cut
    into consecutive pieces (documents keep all their text, as MLM pretraining does)."""
    body = max_length - 2
    if body < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text between <s> and </s>")
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows: list[list[int]] = []
    for start in range(0, len(lines), chunk_size):
        ids = tokenizer(list(lines[start:start + chunk_size]), add_special_tokens=False,
                        return_attention_mask=False, verbose=False)["input_ids"]
        for line in ids:
            for piece in range(0, len(line), body):
                rows.append([bos, *line[piece:piece + body], eos])
    return rows


class MultilingualMlmData(MlmData):
    """Masked-LM on text of several languages, languages drawn with a temperature.

    Each row of micro-batch i draws its language from ``language_probabilities`` (XLM-R's
    exponent alpha is 1 / temperature: p_l ∝ n_l ** alpha) and then a row of that language
    uniformly, with replacement, from ``np.random.default_rng([seed, MLM_TEXT_STREAM, i])``;
    masking uses its own stream of (seed, i). A batch is a pure function of (seed, i), so a
    resumed run draws and masks exactly what the killed one would have. ``dev`` rows are
    masked once (``MlmData``).
    """

    def __init__(self, rows: Mapping[str, Sequence[Sequence[int]]], dev: Sequence[Sequence[int]],
                 *, language_probabilities: Mapping[str, float], **kwargs):
        self.languages = tuple(rows)
        if set(language_probabilities) != set(self.languages):
            raise ValueError(f"languages {sorted(rows)} and probabilities "
                             f"{sorted(language_probabilities)} differ")
        train = [row for lang in self.languages for row in rows[lang]]
        super().__init__(train, dev, **kwargs)
        self.counts = np.asarray([len(rows[lang]) for lang in self.languages], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        p = np.asarray([language_probabilities[lang] for lang in self.languages], np.float64)
        self.probabilities = p / p.sum()

    def train_batch(self, micro_step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, MLM_TEXT_STREAM, micro_step])
        language = rng.choice(len(self.languages), size=self.batch_size, p=self.probabilities)
        rows = self.offsets[language] + (rng.random(self.batch_size)
                                         * self.counts[language]).astype(np.int64)
        batch = next(token_batches(self.train, batch_size=self.batch_size, pad_id=self.pad_id,
                                   buckets=self.buckets, order=rows))
        return self._masked(batch.arrays(),
                            np.random.default_rng([self.seed, MLM_TEXT_STREAM, 1, micro_step]))
