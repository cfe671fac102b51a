"""Token tagging (UDPOS, PAN-X): featurization into windows, and predictions back to word tags.

Labelling follows XTREME (google-research/xtreme ``third_party/utils_tag.py``,
``convert_examples_to_features``): every word is tokenized on its own (here: one fast-tokenizer
batch call with ``is_split_into_words=True``, which pre-tokenizes each word separately, as
XTREME's per-word ``tokenizer.tokenize(word)`` does); a word's label goes on its first
sub-token and every other token (later sub-tokens, ``<s>``, ``</s>``) gets the ignore label
(XTREME: ``CrossEntropyLoss().ignore_index``, -100; here :data:`IGNORE_LABEL`, -1); a word
that tokenizes to nothing gets one ``<unk>`` token. ``third_party/run_tag.py`` reads the
prediction of a word at exactly those labelled positions.

Where this departs from XTREME, so that every word of every sentence gets exactly one
prediction, with context on both sides where it fits:

- Long sentences. XTREME's ``utils_preprocess.py`` (``udpos_tokenize_preprocess``,
  ``panx_tokenize_preprocess``) cuts every sentence beforehand into consecutive,
  non-overlapping pieces of at most ``max_len - 3`` sub-tokens for XLM-R (an ``.idx`` file maps
  them back), so a word at a cut sees nothing of the sentence on one side; ``utils_tag.py``
  then truncates whatever is still too long. Here a sentence whose tokens do not fit one window
  is split into overlapping windows (:func:`plan_windows`): each window predicts a contiguous
  run of words and sees up to ``context`` tokens (whole words, at least one word) of the
  sentence on each side of it as unlabelled context; the first window predicts from the
  sentence start, the last to its end (widened leftwards to fill the window). Every word is
  predicted by exactly one window.
- Words with no sub-token. XTREME gives ``<unk>`` to non-empty words that tokenize to nothing
  (and misaligns its labels on an empty word, which gets a label but no token); here every
  word with no sub-token (``''``, ``'\\u200b'`` for XLM-R ...) gets ``<unk>``. Counted in
  ``num_empty_words``.
- Words longer than a window (more sub-tokens than ``max_length`` minus the specials): XTREME's
  preprocessing replaces them by ``<unk>``; here they keep their first sub-tokens, which carry
  the word's label (the labelled one kept, see "Words as in running text"). Counted in
  ``num_words_cut``.
- Specials. XTREME's ``convert_examples_to_features`` ends XLM-R sequences with two ``</s>``
  (``sep_token_extra``); here each window gets the tokenizer's own single-sequence specials
  (``<s> ... </s>``, as HF's tokenizers and token-classification examples give; ``... </s>``
  for a decoder's, :func:`xstilts_jax.tokenization.task_tokenizer`).
- Words as in running text. XTREME tokenizes each word alone, which for XLM-R (Metaspace: ``▁``
  before every word) is also how the word reads inside a sentence. Byte-level BPE without a
  prefix space (BLOOM) reads a word alone as the start of a text (``cat`` -> ``c at``, where
  the sentence has ``Ġcat``), so there every word but a sentence's first (and but empty ones)
  gets the space that precedes it in the sentence (:func:`_word_prefix` finds which
  tokenizers need it): a sentence's tokens are then those of its words joined by spaces, what
  the model read in pretraining. HF's ``run_ner`` instead loads such tokenizers with
  ``add_prefix_space=True``, which gives the first word too a space that text does not have.
  A token holding only that space (BLOOM isolates a space before punctuation: " ," ->
  ``Ġ`` ``,``) is not the word's: the label goes on the word's first token with a character
  of it, which a causal decoder's position has then seen.

Pure Python + NumPy: no JAX.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
from typing import Sequence

import numpy as np
from etils import epath

from xstilts_jax import metrics
from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.losses import token_classification_loss
from xstilts_jax.storage import PathLike, as_path
from xstilts_jax.models.heads import TaggingHead
from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.families.base import Family
from xstilts_jax.tasks.io import DataError

log = logging.getLogger(__name__)

IGNORE_LABEL = -1  # label / word index of tokens that carry no prediction


@dataclasses.dataclass(frozen=True)
class TaggingFeatures:
    """One row per window: token ids with single-sequence specials, unpadded.

    ``token_labels[w][k]`` is the label index of the word whose prediction token ``k`` of
    window ``w`` gives (its first sub-token, in the window that predicts it), -1 elsewhere;
    ``token_word[w][k]`` is that word's index within its sentence at the same positions, -1
    elsewhere. A sentence with no words has no window.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]  # zeros (XLM-R has one segment)
    token_labels: list[np.ndarray]  # int32 per token
    token_word: list[np.ndarray]  # int32 per token
    window_sentence: np.ndarray  # int64 [n_windows]: the sentence each window belongs to
    num_words: np.ndarray  # int64 [n_sentences]
    guids: list[str]  # per sentence
    num_sentences_split: int  # sentences needing more than one window
    num_empty_words: int  # words with no sub-token, given <unk>
    num_words_cut: int  # words with more sub-tokens than a window holds, cut to their first ones

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_sentences(self) -> int:
        return len(self.num_words)


def plan_windows(starts: Sequence[int], ends: Sequence[int], budget: int,
                 context: int) -> list[tuple[int, int, int, int]]:
    """Windows over one sentence: ``(first token, end token, first word, end word)``, ends
    exclusive, token offsets within the sentence.

    Word ``k`` spans tokens ``[starts[k], ends[k])`` (contiguous, in order, each at most
    ``budget`` tokens). Windows are whole words and at most ``budget`` tokens, and their
    predicted word runs tile the sentence in order. The window predicting from word ``p``:

    - starts at the first word within ``context`` tokens before ``p``, and at least one word
      before it (left context);
    - if the rest of the sentence then fits, predicts all of it, and starts as far left as
      ``budget`` allows (the last window);
    - otherwise extends as far right as ``budget`` allows and predicts the words ending at
      least ``context`` tokens before its end, always leaving at least its last word as right
      context and predicting at least ``p``;
    - if that leaves nothing to predict, it tries a shorter left context (one word, then none;
      and with none, no right context either).

    So a window other than the first has left context unless words ``p-1, p, p+1`` do not fit
    one window together, and one other than the last has right context after its last
    predicted word ``q`` unless words ``q, q+1`` do not (then ``q`` is predicted alone).
    """
    starts, ends = [int(v) for v in starts], [int(v) for v in ends]
    n = len(starts)
    last_end = ends[-1]
    windows: list[tuple[int, int, int, int]] = []
    p = 0
    while p < n:
        with_context = bisect.bisect_left(starts, starts[p] - context)
        for s in sorted({min(with_context, max(p - 1, 0)), max(p - 1, 0), p}):
            if last_end - starts[s] <= budget:  # the last window: fill it leftwards
                s = bisect.bisect_left(starts, last_end - budget)
                windows.append((starts[s], last_end, p, n))
                return windows
            limit = starts[s] + budget
            e = bisect.bisect_right(ends, limit) - 1  # the last word that fits
            q = bisect.bisect_right(ends, limit - context) - 1  # leaves `context` tokens
            q = min(max(q, p), e - 1)
            if q >= p:
                break
        else:  # word p with word p+1 does not fit: predicted alone, s == p
            q = p
        windows.append((starts[s], ends[e], p, q + 1))
        p = q + 1
    return windows


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (XLM-R: <s>, </s>)."""
    encoded = tokenizer([["a"]], is_split_into_words=True, add_special_tokens=True,
                        return_attention_mask=False, return_token_type_ids=False)
    ids, word_ids = encoded["input_ids"][0], encoded.word_ids(0)
    inside = [k for k, w in enumerate(word_ids) if w is not None]
    prefix, suffix = ids[:inside[0]], ids[inside[-1] + 1:]
    expected = tokenizer.num_special_tokens_to_add(pair=False)
    if len(prefix) + len(suffix) != expected:
        raise ValueError(f"cannot find the tokenizer's special tokens: {ids} for one word, "
                         f"{expected} specials expected")
    return prefix, suffix


def _word_prefix(tokenizer) -> str:
    """What goes before every word but a sentence's first so that pre-split words tokenize as
    in running text (module docstring): "" where they already do (XLM-R), " " where the
    tokenizer reads a lone word as the start of a text (BLOOM). A tokenizer matching neither
    keeps XTREME's word-by-word tokenization ("")."""
    call = dict(add_special_tokens=False, return_attention_mask=False,
                return_token_type_ids=False)
    text = tokenizer("a b", **call)["input_ids"]
    for prefix in ("", " "):
        words = tokenizer([["a", prefix + "b"]], is_split_into_words=True, **call)
        if words["input_ids"][0] == text:
            return prefix
    return ""


def _label_indices(chunk: Sequence[TaggedSentence], label_index: dict[str, int]) -> np.ndarray:
    """Label index of every word of the chunk, in order; an unknown tag names its sentence."""
    total = sum(len(s.words) for s in chunk)
    for s in chunk:
        if len(s.tags) != len(s.words):
            raise DataError(f"sentence {s.guid!r}: {len(s.words)} words but {len(s.tags)} tags")
    try:
        return np.fromiter(map(label_index.__getitem__,
                               itertools.chain.from_iterable(s.tags for s in chunk)),
                           dtype=np.int32, count=total)
    except KeyError:
        for s in chunk:
            for tag in s.tags:
                if tag not in label_index:
                    raise DataError(f"sentence {s.guid!r}: tag {tag!r} is not one of "
                                    f"{' '.join(label_index)}") from None
        raise


@dataclasses.dataclass
class _Chunk:
    """Windows of one chunk of sentences (sentence indices local to the chunk)."""

    input_ids: list[list[int]]
    token_labels: list[np.ndarray]
    token_word: list[np.ndarray]
    window_sentence: np.ndarray
    num_split: int
    num_empty: int
    num_cut: int


def _featurize_chunk(tokenizer, chunk: Sequence[TaggedSentence], label_index: dict[str, int],
                     prefix: list[int], suffix: list[int], budget: int, context: int,
                     word_prefix: str) -> _Chunk:
    num_words = np.fromiter((len(s.words) for s in chunk), dtype=np.int64, count=len(chunk))
    word_offset = np.concatenate([[0], np.cumsum(num_words)])
    n_all_words = int(word_offset[-1])
    word_label = _label_indices(chunk, label_index)
    word_sentence = np.repeat(np.arange(len(chunk)), num_words)

    # Sub-tokens of every word, without specials: one batch call, then flat arrays.
    nonempty = np.flatnonzero(num_words > 0)
    encodings = []
    if len(nonempty):
        words = [list(chunk[i].words) for i in nonempty]
        if word_prefix:  # not on a sentence's first word, nor on an empty one (<unk>)
            words = [[w if k == 0 or not w else word_prefix + w for k, w in enumerate(ws)]
                     for ws in words]
        encodings = tokenizer(words, is_split_into_words=True, add_special_tokens=False,
                              return_attention_mask=False, return_token_type_ids=False).encodings
    n_tok = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    total = int(n_tok.sum())
    ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64,
                      count=total)
    try:
        wid = np.fromiter(itertools.chain.from_iterable(e.word_ids for e in encodings),
                          dtype=np.int64, count=total)
    except TypeError:
        raise ValueError("the tokenizer gave tokens that belong to no word with "
                         "add_special_tokens=False") from None
    gword = wid + np.repeat(word_offset[nonempty], n_tok)  # word index within the chunk
    in_range = (wid >= 0) & (wid < np.repeat(num_words[nonempty], n_tok))
    if not in_range.all() or np.any(np.diff(gword) < 0):  # the windows rely on word order
        raise ValueError("the tokenizer's word_ids are not the words in order")

    counts = np.bincount(gword, minlength=n_all_words)
    # Tokens of nothing but the space put before a word (BLOOM's pre-tokenizer isolates it
    # before punctuation: " ," -> Ġ ,) lead their word without being it: the label goes on
    # the next token, the first with a character of the word (a decoder's has seen it).
    lead = np.zeros(n_all_words, dtype=np.int64)
    if word_prefix:
        ends = np.fromiter((o[1] for e in encodings for o in e.offsets), dtype=np.int64,
                           count=total)  # offsets within each (prefixed) word
        lead = np.bincount(gword[(wid > 0) & (ends <= len(word_prefix))],
                           minlength=n_all_words)
        lead = np.minimum(lead, np.maximum(counts - 1, 0))  # a word of spaces: its first
    empty = np.flatnonzero(counts == 0)
    if len(empty):  # one <unk> per word with no sub-token, where the word's tokens would be
        if tokenizer.unk_token_id is None:
            raise ValueError(f"{len(empty)} words produce no sub-token and the tokenizer has "
                             f"no unk token to give them")
        at = np.cumsum(counts)[empty] - counts[empty]
        ids = np.insert(ids, at, tokenizer.unk_token_id)
        gword = np.insert(gword, at, empty)
        counts[empty] = 1
    word_start = np.cumsum(counts) - counts
    position = np.arange(len(gword)) - word_start[gword]  # sub-token index within its word
    cut = counts > budget
    if cut.any():  # keep `budget` tokens from the first, or up to the labelled one
        skip = np.maximum(lead + 1 - budget, 0)
        keep = (position >= skip[gword]) & (position < skip[gword] + budget)
        ids, gword, position = ids[keep], gword[keep], position[keep] - skip[gword[keep]]
        lead = lead - skip
        counts = np.minimum(counts, budget)
        word_start = np.cumsum(counts) - counts
    first = position == lead[gword]
    tok_label = np.where(first, word_label[gword], IGNORE_LABEL).astype(np.int32)
    tok_word = np.where(first, gword - word_offset[word_sentence[gword]], IGNORE_LABEL
                        ).astype(np.int32)

    # Windows: (token start, token end, first predicted word, end word) in chunk coordinates.
    sent_tokens = np.bincount(word_sentence, weights=counts, minlength=len(chunk)).astype(np.int64)
    sent_start = np.cumsum(sent_tokens) - sent_tokens
    long = (sent_tokens > budget)
    windows = np.stack([sent_start, sent_start + sent_tokens, word_offset[:-1], word_offset[1:],
                        np.arange(len(chunk))], axis=1)[(num_words > 0) & ~long]
    num_split = 0
    if long.any():
        extra = []
        for i in np.flatnonzero(long):
            w0, w1, t0 = word_offset[i], word_offset[i + 1], sent_start[i]
            starts = word_start[w0:w1] - t0
            planned = plan_windows(starts.tolist(), (starts + counts[w0:w1]).tolist(),
                                   budget, context)
            num_split += len(planned) > 1
            extra += [(t0 + a, t0 + b, w0 + p, w0 + q, i) for a, b, p, q in planned]
        windows = np.concatenate([windows, np.array(extra, dtype=np.int64)])
        windows = windows[np.argsort(windows[:, 2], kind="stable")]  # by first predicted word

    if not len(windows):  # only sentences with no words
        return _Chunk([], [], [], np.zeros(0, dtype=np.int64), 0, len(empty), int(cut.sum()))

    # Every window as one flat stream: prefix, its tokens, suffix; context words unlabelled.
    t0, t1, p0, p1, sentence = windows.T
    body = t1 - t0
    length = body + len(prefix) + len(suffix)
    bounds = np.concatenate([[0], np.cumsum(length)])
    window_of = np.repeat(np.arange(len(windows)), length)
    offset = np.arange(int(bounds[-1])) - bounds[window_of]
    in_prefix = offset < len(prefix)
    in_body = ~in_prefix & (offset < len(prefix) + body[window_of])
    in_suffix = ~in_prefix & ~in_body
    source = (t0[window_of] + offset - len(prefix))[in_body]
    stream_ids = np.empty(len(offset), dtype=np.int64)
    stream_ids[in_prefix] = np.asarray(prefix, dtype=np.int64)[offset[in_prefix]]
    stream_ids[in_suffix] = np.asarray(suffix, dtype=np.int64)[
        (offset - len(prefix) - body[window_of])[in_suffix]]
    stream_ids[in_body] = ids[source]
    word = gword[source]
    predicted = (word >= p0[window_of][in_body]) & (word < p1[window_of][in_body])
    stream_labels = np.full(len(offset), IGNORE_LABEL, dtype=np.int32)
    stream_words = np.full(len(offset), IGNORE_LABEL, dtype=np.int32)
    stream_labels[in_body] = np.where(predicted, tok_label[source], IGNORE_LABEL)
    stream_words[in_body] = np.where(predicted, tok_word[source], IGNORE_LABEL)

    flat = stream_ids.tolist()
    starts, ends = bounds[:-1].tolist(), bounds[1:].tolist()
    return _Chunk(
        input_ids=[flat[a:b] for a, b in zip(starts, ends)],
        token_labels=np.split(stream_labels, bounds[1:-1]),
        token_word=np.split(stream_words, bounds[1:-1]),
        window_sentence=sentence,
        num_split=num_split,
        num_empty=len(empty),
        num_cut=int(cut.sum()),
    )


def featurize_tagging(tokenizer, sentences: Sequence[TaggedSentence], labels: Sequence[str],
                      max_length: int = 128, *, chunk_size: int = 4096,
                      context: int | None = None) -> TaggingFeatures:
    """Windows of at most ``max_length`` tokens (specials included) over tagged sentences.

    One fast-tokenizer batch call per ``chunk_size`` sentences (which bounds the memory its
    per-sentence Encoding objects take); the rest is array work. A sentence whose sub-tokens
    do not fit ``max_length`` minus the specials is split into overlapping windows (see the
    module docstring and :func:`plan_windows`) with ``context`` tokens of context on each side
    of the predicted words (default: a quarter of the window). A tag not in ``labels`` raises
    ``DataError`` naming the sentence.
    """
    prefix, suffix = _special_tokens(tokenizer)
    word_prefix = _word_prefix(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for a token: the special "
                         f"tokens alone take {len(prefix) + len(suffix)}")
    context = budget // 4 if context is None else context
    if not 0 <= 2 * context < budget:
        raise ValueError(f"context {context} must leave room for predicted tokens: at most "
                         f"{(budget - 1) // 2} for max_length {max_length}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    label_index = {label: i for i, label in enumerate(labels)}
    if len(label_index) != len(labels):
        raise ValueError(f"labels contain duplicates: {list(labels)}")

    input_ids: list[list[int]] = []
    token_labels: list[np.ndarray] = []
    token_word: list[np.ndarray] = []
    window_sentence: list[np.ndarray] = []
    num_split = num_empty = num_cut = 0
    for begin in range(0, len(sentences), chunk_size):
        chunk = _featurize_chunk(tokenizer, sentences[begin:begin + chunk_size], label_index,
                                 prefix, suffix, budget, context, word_prefix)
        input_ids += chunk.input_ids
        token_labels += chunk.token_labels
        token_word += chunk.token_word
        window_sentence.append(chunk.window_sentence + begin)
        num_split += chunk.num_split
        num_empty += chunk.num_empty
        num_cut += chunk.num_cut

    n = len(sentences)
    if num_split:
        log.info("%d of %d sentences split into several windows of %d tokens (%d windows)",
                 num_split, n, max_length, len(input_ids))
    if num_empty:
        log.info("word(s) with no sub-token, given %s: %d", tokenizer.unk_token, num_empty)
    if num_cut:
        log.warning("word(s) with more sub-tokens than a window of %d holds, cut to their "
                    "first %d: %d", max_length, budget, num_cut)
    return TaggingFeatures(
        input_ids=input_ids,
        token_type_ids=[[0] * len(row) for row in input_ids],
        token_labels=token_labels,
        token_word=token_word,
        window_sentence=(np.concatenate(window_sentence) if window_sentence
                         else np.zeros(0, dtype=np.int64)).astype(np.int64),
        num_words=np.fromiter((len(s.words) for s in sentences), dtype=np.int64, count=n),
        guids=[s.guid for s in sentences],
        num_sentences_split=num_split,
        num_empty_words=num_empty,
        num_words_cut=num_cut,
    )


def tags_from_predictions(features: TaggingFeatures, predictions, labels: Sequence[str]
                          ) -> list[list[str]]:
    """One tag per word per sentence, read at the positions ``token_word`` marks.

    ``predictions`` is an int array ``[n_windows, S]`` of label indices, S at least every
    window's length (the padding of fixed-shape batches is ignored). Raises ``ValueError``
    if a word gets no prediction or more than one (features that do not tile the sentences).
    """
    predictions = np.asarray(predictions)
    n_windows = len(features)
    lengths = np.fromiter((len(t) for t in features.token_word), dtype=np.int64, count=n_windows)
    if predictions.ndim != 2 or predictions.shape[0] != n_windows:
        raise ValueError(f"predictions must be [n_windows={n_windows}, S], not "
                         f"{list(predictions.shape)}")
    if n_windows and predictions.shape[1] < lengths.max():
        raise ValueError(f"predictions have {predictions.shape[1]} positions but a window has "
                         f"{lengths.max()} tokens")
    if not np.issubdtype(predictions.dtype, np.integer):
        raise ValueError(f"predictions must be label indices (integers), not {predictions.dtype}")
    word_offset = np.concatenate([[0], np.cumsum(features.num_words)])
    flat_word = (np.concatenate(features.token_word) if n_windows
                 else np.zeros(0, dtype=np.int32)).astype(np.int64)
    window = np.repeat(np.arange(n_windows), lengths)
    position = np.arange(len(flat_word)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    marked = flat_word >= 0
    window, position = window[marked], position[marked]
    word = flat_word[marked] + word_offset[features.window_sentence[window]]
    n_all = int(word_offset[-1])
    hits = np.bincount(word, minlength=n_all)
    bad = np.flatnonzero(hits != 1)
    if len(bad):
        g = int(bad[0])
        s = int(np.searchsorted(word_offset, g, "right")) - 1
        raise ValueError(f"{len(bad)} words do not have exactly one prediction; the first: "
                         f"word {g - word_offset[s]} of sentence {features.guids[s]!r} has "
                         f"{hits[g]}")
    values = predictions[window, position]
    if len(values) and (values.min() < 0 or values.max() >= len(labels)):
        raise ValueError(f"predicted label indices must be in [0, {len(labels)}), found "
                         f"{values.min()}..{values.max()}")
    tags = np.empty(n_all, dtype=object)
    tags[word] = np.asarray(labels, dtype=object)[values]
    flat = tags.tolist()
    return [flat[a:b] for a, b in zip(word_offset[:-1].tolist(), word_offset[1:].tolist())]


def write_tagging_predictions(path: PathLike,
                              tags_per_sentence: Sequence[Sequence[str]]) -> epath.Path:
    """XTREME's tagging submission file: one tag a line, a blank line after every sentence
    (the last included), which ``xstilts_jax.metrics.read_tags`` reads back unchanged."""
    path = as_path(path)  # a local file or a bucket's (gs://)
    lines = []
    for i, tags in enumerate(tags_per_sentence):
        for tag in tags:
            if not tag or tag != tag.strip() or "\n" in tag or "\r" in tag:
                raise ValueError(f"sentence {i}: tag {tag!r} cannot be written one a line "
                                 f"(empty, surrounding whitespace or a line break)")
        lines.extend(tags)
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


class TaggingFamily(Family):
    """One tag per word (XTREME's UDPOS and PAN-X), scored by XTREME's chunk F1."""

    def featurize(self, tokenizer, examples, task, cfg):
        return featurize_tagging(tokenizer, examples, task.labels, cfg.max_length)

    def inputs(self, features) -> ModelInputs:
        return ModelInputs(features.input_ids, features.token_type_ids,
                           token_extras={"token_labels": features.token_labels})

    def batch_fields(self, task):
        return 1, {"token_labels": "token"}

    def predict(self, features, examples, logits, task, cfg):
        return tags_from_predictions(features, np.argmax(logits, axis=-1), task.labels)

    def score(self, task, examples, predictions, language):
        return metrics.tagging_f1([list(e.tags) for e in examples], predictions)

    def example_stats(self, task, examples, predictions, language):
        return "prf", metrics.tagging_example_stats([list(e.tags) for e in examples], predictions)

    def write(self, path, predictions):
        write_tagging_predictions(path, predictions)


TAGGING = TaggingFamily("tagging", TaggingHead, token_classification_loss, "tsv", "f1")

__all__ = ["IGNORE_LABEL", "TAGGING", "TaggingFamily", "TaggingFeatures", "featurize_tagging",
           "plan_windows", "tags_from_predictions", "write_tagging_predictions"]
