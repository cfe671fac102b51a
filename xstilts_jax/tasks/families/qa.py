"""Extractive QA (SQuAD v1.1 format: XQuAD, MLQA, TyDiQA-GoldP; SQuAD 2.0's unanswerable
questions): featurization into question + context windows, and span post-processing back to
answer texts.

Pure Python + NumPy; no JAX. XTREME sources checked (google-research/xtreme):
``third_party/processors/squad.py`` (``squad_convert_example_to_features``,
``_new_check_is_max_context``) and ``third_party/run_squad.py``, which post-processes with
transformers' ``squad_metrics.compute_predictions_logits``. Hyperparameters there:
``max_seq_length`` 384, ``doc_stride`` 128, ``max_query_length`` 64, ``n_best_size`` 20,
``max_answer_length`` 30 -- the defaults here.

Windows (XTREME's scheme, reproduced exactly):

- the question is cut to its first ``max_query_length`` tokens; a window holds
  ``capacity = max_length - len(question) - specials`` context tokens (``specials`` = 4 for
  XLM-R's ``<s> Q </s></s> C </s>``), so the capacity depends on the question's length;
- ``doc_stride`` is the STEP between window starts (context token 0, doc_stride,
  2 * doc_stride, ...), and the last window is the first that reaches the end of the context.
  HF fast tokenizers' ``stride`` argument means the OVERLAP instead; XTREME passes it
  ``capacity - doc_stride``, which differs per question, so one batch call with a single
  ``stride`` cannot reproduce it. Instead each distinct context of a chunk is tokenized once
  (a batch call, with offsets) and the windows are slices of it, assembled with the
  tokenizer's own pair template (read off the tokenizer, see ``_PairTemplate``). For XLM-R
  (Metaspace pre-tokenizer) a context's tokens are the same alone as inside a pair; the
  tests check the ids against ``tokenizer(question, context)``.
- a ``doc_stride`` larger than the capacity steps by the capacity (BERT's original
  ``min(length, doc_stride)``), so no context token is skipped.
- a context token's offsets leave out whitespace at its ends (``_trim_offsets``): byte-level
  BPE (BLOOM) puts the space before a word into its token (``Ġcat`` covers " cat"), and an
  answer cut from the context by offsets must not start with it. XLM-R's offsets (as
  transformers loads it) have none to leave out. A token that is whitespace only keeps no
  character. Byte-level BPE can also split one character's bytes over two tokens, which then
  both cover it: an answer edge inside such a character is a tokenizer limit, like XLM-R's
  pieces that run past an answer.
- a decoder's pair template (``Q </s> C </s>``, :func:`xstilts_jax.tokenization.task_tokenizer`)
  has no CLS: index 0, the target of windows without the answer (below), is then the
  question's first token, as in HF's ``run_qa`` (``cls_index = 0`` without a CLS or BOS).

Training targets follow XTREME for SQuAD v1.1: windows that do not wholly contain the first
answer are kept, with both targets at index 0 (the ``<s>``/CLS token). SQuAD 2.0
(``QAExample.is_impossible``, read by ``read_squad(..., version="2.0")``) follows HF's
``squad_convert_example_to_features`` with ``version_2_with_negative``: every window of an
unanswerable question targets index 0 for both start and end (as does a window of an answerable
question that does not hold its answer -- the same rule XTREME's v1.1 training applies, so
nothing else differs between the versions); such questions are counted in
``QAFeatures.num_impossible``. At prediction time ``answers_from_logits(...,
version_2_with_negative=True)`` compares the null score with the best span's (HF's
``compute_predictions_logits``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Mapping, Sequence

import numpy as np
from etils import epath

from xstilts_jax import metrics
from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.losses import masked_span_logits, span_loss
from xstilts_jax.storage import PathLike, as_path
from xstilts_jax.models.heads import SpanHead
from xstilts_jax.tasks.examples import QAExample
from xstilts_jax.tasks.families.base import Family
from xstilts_jax.tasks.io import DataError

log = logging.getLogger(__name__)

__all__ = ["QA", "QAFamily", "QAFeatures", "answers_from_logits", "featurize_qa",
           "write_qa_predictions"]


@dataclasses.dataclass(frozen=True)
class QAFeatures:
    """One row per window (a question with one slice of its context); unpadded."""

    input_ids: list[list[int]]  # <s> question </s></s> context-window </s> for XLM-R
    token_type_ids: list[list[int]]  # the tokenizer's segment ids, or zeros where it has none
    start_positions: np.ndarray  # int32 [n_windows]: first answer's first token, or 0 (CLS)
    end_positions: np.ndarray  # int32 [n_windows]: first answer's last token, or 0 (CLS)
    example_index: np.ndarray  # int64 [n_windows]: index into the examples (and ``ids``)
    offsets: list[np.ndarray]  # int32 [len, 2]: span in the context; (-1, -1): question, specials
    max_context: list[np.ndarray]  # bool [len]: this window gives the token most context
    ids: list[str]  # question ids, one per example
    num_examples: int
    num_questions_truncated: int  # questions cut to max_query_length tokens
    # Windows of answered questions that do not wholly contain the first answer (CLS targets).
    num_answers_outside: int
    # Answered questions whose first answer is wholly inside none of their windows (straddles
    # every window boundary, or covers no context token): they train on CLS targets only.
    num_questions_answer_in_no_window: int
    # SQuAD 2.0 unanswerable questions (is_impossible): every window targets CLS (index 0).
    num_impossible: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclasses.dataclass(frozen=True)
class _PairTemplate:
    """The tokenizer's pair template, ``prefix Q middle C suffix``, as token ids and the
    segment ids of each part; read from one encoded pair so any fixed template works."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    prefix_types: list[int]
    middle_types: list[int]
    suffix_types: list[int]
    question_type: int
    context_type: int

    @property
    def num_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def _pair_template(tokenizer) -> _PairTemplate:
    encoded = tokenizer(["a"], ["b"], add_special_tokens=True, return_token_type_ids=True,
                        return_attention_mask=False)
    ids = encoded["input_ids"][0]
    types = encoded["token_type_ids"][0]
    sequence = encoded.sequence_ids(0)
    first = [i for i, s in enumerate(sequence) if s == 0]
    second = [i for i, s in enumerate(sequence) if s == 1]
    if (not first or not second or first != list(range(first[0], first[-1] + 1))
            or second != list(range(second[0], second[-1] + 1)) or first[-1] > second[0]):
        raise ValueError(f"unsupported pair template {tokenizer.convert_ids_to_tokens(ids)}: "
                         f"expected special tokens around a question, then the context")
    q0, q1, c0, c1 = first[0], first[-1] + 1, second[0], second[-1] + 1
    if tokenizer.cls_token_id is not None and ids[:1] != [tokenizer.cls_token_id]:
        raise ValueError(f"the pair template {tokenizer.convert_ids_to_tokens(ids)} does not "
                         f"start with the CLS token, the target (index 0) of windows without "
                         f"the answer")
    return _PairTemplate(ids[:q0], ids[q1:c0], ids[c1:], types[:q0], types[q1:c0], types[c1:],
                         types[q0], types[c0])


def _window_starts(num_tokens: int, capacity: int, doc_stride: int) -> np.ndarray:
    """Start of each window over ``num_tokens`` context tokens (see the module docstring)."""
    if num_tokens <= capacity:
        return np.zeros(1, dtype=np.int64)
    step = min(doc_stride, capacity)
    num_windows = 1 + -(-(num_tokens - capacity) // step)  # ceil division
    return np.arange(num_windows, dtype=np.int64) * step


def _max_context_window(starts: np.ndarray, lengths: np.ndarray, num_tokens: int) -> np.ndarray:
    """For each context token, the window where it has the most context: BERT/XTREME's
    ``_check_is_max_context`` score ``min(left, right) + 0.01 * window length``; the first
    window wins ties (their strict ``>``, numpy's ``argmax``)."""
    if len(starts) == 1:
        return np.zeros(num_tokens, dtype=np.int64)
    position = np.arange(num_tokens)[None, :]
    left = position - starts[:, None]
    right = (starts + lengths - 1)[:, None] - position
    score = np.minimum(left, right) + 0.01 * lengths[:, None]
    score[(left < 0) | (right < 0)] = -np.inf
    return np.argmax(score, axis=0)


_SPACES = np.array([c for c in range(0x3001) if chr(c).isspace()])  # all str.isspace: <= U+3000


def _trim_offsets(text: str, offsets: np.ndarray) -> np.ndarray:
    """``offsets`` ([n, 2] character spans in ``text``) without the whitespace at each span's
    ends; a span of whitespace only becomes empty at its end."""
    if not len(offsets):
        return offsets
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    solid = ~np.isin(codes, _SPACES)
    n = len(text)
    # next_solid[i]: first non-space position >= i (n if none); solid_end[i]: one past the
    # last non-space position < i (0 if none); both for i in 0..n.
    next_solid = np.append(np.minimum.accumulate(np.where(solid, np.arange(n), n)[::-1])[::-1],
                           n)
    solid_end = np.concatenate([[0], np.maximum.accumulate(np.where(solid, np.arange(1, n + 1),
                                                                    0))])
    start = np.minimum(next_solid[offsets[:, 0]], offsets[:, 1])
    end = np.maximum(solid_end[offsets[:, 1]], start)
    return np.stack([start, end], axis=1).astype(np.int32)


def _answer_tokens(offsets: np.ndarray, answer: tuple[str, int]) -> tuple[int, int] | None:
    """(first, last) context token of an answer: the token containing its first character
    (the first token ending after it, so a leading gap maps to the next token) and the one
    containing its last (the last token starting before its end). None when no token covers
    any of it."""
    text, begin = answer
    end = begin + len(text)
    after = np.flatnonzero(offsets[:, 1] > begin)
    before = np.flatnonzero(offsets[:, 0] < end)
    if not len(after) or not len(before) or after[0] > before[-1]:
        return None
    return int(after[0]), int(before[-1])


def featurize_qa(tokenizer, examples: Sequence[QAExample], *, max_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64,
                 chunk_size: int = 4096) -> QAFeatures:
    """Question + context windows of every example, XTREME's way (module docstring).

    ``doc_stride`` is the step between window starts (XTREME/BERT), not HF's overlap.
    ``chunk_size`` examples go to the tokenizer at a time (questions in one batch call, the
    chunk's distinct contexts in another), which bounds the memory of its Encoding objects.
    An empty context, an empty question, or a question leaving no room for one context token
    in ``max_length`` raises ``DataError`` naming the question id.

    An unanswerable question (``is_impossible``: SQuAD 2.0) has start and end targets 0 (the
    ``<s>``/CLS token) in every window, HF's ``version_2_with_negative`` training targets; it is
    counted in ``num_impossible`` (not in ``num_answers_outside``). One that also has answers
    is contradictory and raises ``DataError``.
    """
    if doc_stride < 1 or max_query_length < 1 or chunk_size < 1:
        raise ValueError(f"doc_stride ({doc_stride}), max_query_length ({max_query_length}) "
                         f"and chunk_size ({chunk_size}) must be positive")
    template = _pair_template(tokenizer)
    if max_length < template.num_special + 2:
        raise ValueError(f"max_length {max_length} leaves no room for a question and a "
                         f"context: it needs at least {template.num_special + 2} (special "
                         f"tokens plus one token of each)")
    with_types = "token_type_ids" in tokenizer.model_input_names
    call = dict(add_special_tokens=False, return_attention_mask=False,
                return_token_type_ids=False, verbose=False)

    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    starts_out: list[int] = []
    ends_out: list[int] = []
    window_example: list[int] = []
    offsets_out: list[np.ndarray] = []
    max_context_out: list[np.ndarray] = []
    num_truncated = num_outside = num_no_window = num_impossible = 0

    for chunk_start in range(0, len(examples), chunk_size):
        chunk = examples[chunk_start:chunk_start + chunk_size]
        questions = tokenizer([e.question for e in chunk], **call)["input_ids"]
        context_index: dict[str, int] = {}
        for e in chunk:
            context_index.setdefault(e.context, len(context_index))
        encoded = tokenizer(list(context_index), return_offsets_mapping=True, **call)
        context_ids = encoded["input_ids"]
        context_offsets = [_trim_offsets(text, np.asarray(o, dtype=np.int32).reshape(-1, 2))
                           for text, o in zip(context_index, encoded["offset_mapping"])]
        # (context, capacity) -> window starts, lengths, max-context window per token
        windows_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

        for i, example in enumerate(chunk):
            index = chunk_start + i
            question = questions[i]
            if len(question) > max_query_length:
                question = question[:max_query_length]
                num_truncated += 1
            if not question:
                raise DataError(f"question {example.id!r}: the question is empty (no tokens)")
            c = context_index[example.context]
            ids, offsets = context_ids[c], context_offsets[c]
            if not ids:
                raise DataError(f"question {example.id!r}: the context is empty (no tokens)")
            capacity = max_length - template.num_special - len(question)
            if capacity < 1:
                raise DataError(f"question {example.id!r}: max_length {max_length} leaves no "
                                f"room for a context token after its {len(question)}-token "
                                f"question and {template.num_special} special tokens")
            key = (c, capacity)
            if key not in windows_cache:
                starts = _window_starts(len(ids), capacity, doc_stride)
                lengths = np.minimum(capacity, len(ids) - starts)
                windows_cache[key] = starts, lengths, _max_context_window(starts, lengths,
                                                                          len(ids))
            starts, lengths, best_window = windows_cache[key]

            if example.is_impossible:
                if example.answers:
                    raise DataError(f"question {example.id!r}: is_impossible but it has "
                                    f"{len(example.answers)} answer(s)")
                num_impossible += 1
                span = None  # every window targets CLS (HF's version_2_with_negative)
            else:
                span = (_answer_tokens(offsets, example.answers[0]) if example.answers
                        else None)
            head = template.prefix + question + template.middle
            head_types = (template.prefix_types + [template.question_type] * len(question)
                          + template.middle_types)
            context_begin = len(head)
            inside_any = False
            for w, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
                row = head + ids[s:s + n] + template.suffix
                input_ids.append(row)
                if with_types:
                    token_type_ids.append(head_types + [template.context_type] * n
                                          + template.suffix_types)
                else:
                    token_type_ids.append([0] * len(row))
                window_offsets = np.full((len(row), 2), -1, dtype=np.int32)
                window_offsets[context_begin:context_begin + n] = offsets[s:s + n]
                offsets_out.append(window_offsets)
                is_max = np.zeros(len(row), dtype=bool)
                is_max[context_begin:context_begin + n] = best_window[s:s + n] == w
                max_context_out.append(is_max)
                window_example.append(index)
                if span is not None and s <= span[0] and span[1] < s + n:
                    starts_out.append(context_begin + span[0] - s)
                    ends_out.append(context_begin + span[1] - s)
                    inside_any = True
                else:
                    starts_out.append(0)
                    ends_out.append(0)
                    num_outside += bool(example.answers)
            num_no_window += bool(example.answers) and not inside_any

    if num_truncated:
        log.info("%d of %d questions cut to %d tokens", num_truncated, len(examples),
                 max_query_length)
    log.info("%d questions -> %d windows (max_length %d, doc_stride %d); %d windows do not "
             "contain their answer (CLS targets)", len(examples), len(input_ids), max_length,
             doc_stride, num_outside)
    if num_impossible:
        log.info("%d of %d questions are unanswerable (SQuAD 2.0): CLS targets in every window",
                 num_impossible, len(examples))
    if num_no_window:
        log.warning("%d of %d questions have their answer wholly inside none of their windows "
                    "(it straddles window boundaries or covers no token)", num_no_window,
                    len(examples))
    return QAFeatures(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        start_positions=np.asarray(starts_out, dtype=np.int32),
        end_positions=np.asarray(ends_out, dtype=np.int32),
        example_index=np.asarray(window_example, dtype=np.int64),
        offsets=offsets_out,
        max_context=max_context_out,
        ids=[e.id for e in examples],
        num_examples=len(examples),
        num_questions_truncated=num_truncated,
        num_answers_outside=num_outside,
        num_questions_answer_in_no_window=num_no_window,
        num_impossible=num_impossible,
    )


# --------------------------------------------------------------------------- predictions


def _best_spans(start_logits: np.ndarray, end_logits: np.ndarray, lengths: np.ndarray,
                is_context: np.ndarray, can_start: np.ndarray, n_best_size: int,
                max_answer_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best (start, end) of each window: (found, score, start, end), all [windows]."""
    rows, width = start_logits.shape
    in_window = np.arange(width)[None, :] < lengths[:, None]
    start_logits = np.where(in_window, start_logits, -np.inf)
    end_logits = np.where(in_window, end_logits, -np.inf)
    n = min(n_best_size, width)
    # Stable sort of the negated logits: the order of Python's sorted(reverse=True) that
    # XTREME's _get_best_indexes uses, ties included.
    top_start = np.argsort(-start_logits, axis=1, kind="stable")[:, :n]
    top_end = np.argsort(-end_logits, axis=1, kind="stable")[:, :n]
    start_value = np.take_along_axis(start_logits, top_start, axis=1)
    end_value = np.take_along_axis(end_logits, top_end, axis=1)
    span_length = top_end[:, None, :] - top_start[:, :, None] + 1
    valid = (np.take_along_axis(can_start, top_start, axis=1)[:, :, None]
             & np.take_along_axis(is_context, top_end, axis=1)[:, None, :]
             & (span_length >= 1) & (span_length <= max_answer_length)).reshape(rows, n * n)
    score = np.where(valid, (start_value[:, :, None] + end_value[:, None, :]).reshape(rows, -1),
                     -np.inf)
    best = np.argmax(score, axis=1)  # first of equal scores: start rank, then end rank
    found = valid.any(axis=1)
    chosen = np.arange(rows)
    return (found, score[chosen, best], top_start[chosen, best // n],
            top_end[chosen, best % n])


def answers_from_logits(features: QAFeatures, examples: Sequence[QAExample],
                        start_logits, end_logits, *, n_best_size: int = 20,
                        max_answer_length: int = 30, window_chunk: int = 2048,
                        version_2_with_negative: bool = False,
                        null_score_diff_threshold: float = 0.0) -> dict[str, str]:
    """Question id -> answer text, from start/end logits of every window ([n_windows, S],
    padded: entries beyond a window's length are ignored).

    XTREME's ``compute_predictions_logits`` search, over all windows of a question: the top
    ``n_best_size`` start and end positions of each window (over all its tokens, as there),
    kept when both are context tokens, start <= end, the span is at most
    ``max_answer_length`` tokens, and the start token has its max context in that window;
    the best start + end logit wins (ties: earlier window, then higher-ranked start, end).
    A question with no such span gets "" (counted and logged).

    The text is ``context[offsets[start][0]:offsets[end][1]]`` (HF run_qa's offset-mapping
    post-processing). XTREME instead maps tokens back to whitespace-separated words and trims
    with ``get_final_text``; offsets give the exact substring of the context, which is what
    gold answers are (the reader checks that), and whitespace inside it is kept as in the
    context where XTREME would rejoin words with single spaces, a difference that SQuAD/MLQA
    normalisation removes before scoring.

    ``version_2_with_negative`` (SQuAD 2.0; off by default, and then nothing above changes):
    HF's ``compute_predictions_logits`` with ``version_2_with_negative=True``. The null score
    of a question is the minimum over its windows of ``start_logit[0] + end_logit[0]`` (the
    CLS position of every window, whatever its spans); the best non-null span is the one found
    as above; the prediction is "" when ``null_score - start_logit - end_logit`` (that order of
    float64 operations, as HF's ``score_diff``) is ``> null_score_diff_threshold``, the span's
    text otherwise. Two edge cases differ from HF, where it emits artifacts: a question with no
    valid span predicts "" (HF falls back on a nonce entry with text "empty" and score 0, and
    predicts the literal text "empty" when the null score does not exceed the threshold); and
    HF's best non-null entry is the best span with a non-empty text, so when the best span's
    text is empty (a token covering no character) HF would go on to the next span, while here
    the prediction is "" either way.
    """
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size ({n_best_size}) and max_answer_length "
                         f"({max_answer_length}) must be positive")
    if len(examples) != features.num_examples or any(
            e.id != i for e, i in zip(examples, features.ids)):
        raise ValueError(f"the examples ({len(examples)}) are not the ones featurized "
                         f"({features.num_examples}): ids differ")
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    lengths = np.fromiter(map(len, features.input_ids), dtype=np.int64, count=len(features))
    expected = (len(features), int(lengths.max(initial=0)))
    for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if logits.ndim != 2 or logits.shape[0] != expected[0] or logits.shape[1] < expected[1]:
            raise ValueError(f"{name} has shape {logits.shape}; expected [{expected[0]} windows, "
                             f">= {expected[1]} positions]")

    width = start_logits.shape[1]
    found = np.zeros(len(features), dtype=bool)
    score = np.full(len(features), -np.inf)
    span_start = np.zeros(len(features), dtype=np.int64)
    span_end = np.zeros(len(features), dtype=np.int64)
    if version_2_with_negative:
        null_score = np.zeros(len(features))  # start_logit[0] + end_logit[0] of each window
        best_start_logit = np.zeros(len(features))  # of the window's best span
        best_end_logit = np.zeros(len(features))
    for a in range(0, len(features), window_chunk):
        b = min(a + window_chunk, len(features))
        chunk_lengths = lengths[a:b]
        rows = np.repeat(np.arange(b - a), chunk_lengths)
        columns = np.arange(len(rows)) - np.repeat(np.cumsum(chunk_lengths) - chunk_lengths,
                                                   chunk_lengths)
        is_context = np.zeros((b - a, width), dtype=bool)
        can_start = np.zeros((b - a, width), dtype=bool)
        is_context[rows, columns] = np.concatenate(features.offsets[a:b])[:, 0] >= 0
        can_start[rows, columns] = np.concatenate(features.max_context[a:b])
        can_start &= is_context
        # float64, as XTREME adds Python floats; converted a chunk at a time.
        chunk_logits = []
        for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
            logits = np.asarray(logits[a:b], dtype=np.float64)
            if not np.isfinite(logits[np.arange(width)[None, :] < chunk_lengths[:, None]]).all():
                raise ValueError(f"{name} has NaN or infinite values inside the windows")
            chunk_logits.append(logits)
        found[a:b], score[a:b], span_start[a:b], span_end[a:b] = _best_spans(
            *chunk_logits, chunk_lengths, is_context, can_start, n_best_size, max_answer_length)
        if version_2_with_negative:
            chunk_rows = np.arange(b - a)
            null_score[a:b] = chunk_logits[0][:, 0] + chunk_logits[1][:, 0]
            best_start_logit[a:b] = chunk_logits[0][chunk_rows, span_start[a:b]]
            best_end_logit[a:b] = chunk_logits[1][chunk_rows, span_end[a:b]]

    # Best window of each question: highest score, then the earliest window.
    window = np.arange(len(features))
    order = np.lexsort((window, -score, features.example_index))
    first = np.ones(len(order), dtype=bool)
    first[1:] = features.example_index[order[1:]] != features.example_index[order[:-1]]
    answers = {qid: "" for qid in features.ids}
    num_empty = len(answers) - int(np.count_nonzero(first))
    if version_2_with_negative:
        # Each question's null score: the minimum over its windows (HF's score_null).
        question_null = np.full(features.num_examples, np.inf)
        np.minimum.at(question_null, features.example_index, null_score)
        num_null = 0
    for w in order[first].tolist():
        example = examples[features.example_index[w]]
        if not found[w]:
            num_empty += 1
            continue
        if version_2_with_negative:
            score_diff = (question_null[features.example_index[w]] - best_start_logit[w]
                          - best_end_logit[w])
            if score_diff > null_score_diff_threshold:
                num_null += 1
                continue
        begin = features.offsets[w][span_start[w], 0]
        end = features.offsets[w][span_end[w], 1]
        answers[example.id] = example.context[begin:end]
    if num_empty:
        log.warning("%d of %d questions have no valid answer span; predicted ''", num_empty,
                    len(answers))
    if version_2_with_negative:
        log.info("%d of %d questions predicted unanswerable (null score - best span score > "
                 "%g)", num_null, len(answers), null_score_diff_threshold)
    return answers


def write_qa_predictions(path: PathLike, answers: Mapping[str, str]) -> epath.Path:
    """Write ``{question_id: answer_text}`` JSON, UTF-8 (XTREME's prediction file format)."""
    path = as_path(path)  # a local file or a bucket's (gs://)
    for qid, text in answers.items():
        if not isinstance(qid, str) or not isinstance(text, str):
            raise TypeError(f"answers must map question ids (str) to texts (str); got "
                            f"{qid!r}: {type(text).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(answers), ensure_ascii=False, indent=4) + "\n",
                    encoding="utf-8")
    return path


class QAFamily(Family):
    """Extractive QA: XTREME's windows, start/end logits, answers by question id; SQuAD's
    EM/F1, MLQA's normalisation (``answer_normalization="mlqa"``) or SQuAD 2.0's metric and
    null-score answers (``qa_version="2.0"``), as the task's spec says."""

    def featurize(self, tokenizer, examples, task, cfg):
        return featurize_qa(tokenizer, examples, max_length=cfg.max_length,
                            doc_stride=cfg.doc_stride, max_query_length=cfg.max_query_length)

    def batch_fields(self, task):
        return 1, {"start_positions": "row", "end_positions": "row"}

    def inputs(self, features) -> ModelInputs:
        return ModelInputs(features.input_ids, features.token_type_ids,
                           {"start_positions": features.start_positions,
                            "end_positions": features.end_positions})

    def predict(self, features, examples, logits, task, cfg):
        mask = np.zeros(logits.shape[:2], np.int32)
        for row, ids in enumerate(features.input_ids):
            mask[row, :len(ids)] = 1
        logits = np.asarray(masked_span_logits(logits, mask))
        return answers_from_logits(features, examples, logits[..., 0], logits[..., 1],
                                   n_best_size=cfg.n_best_size,
                                   max_answer_length=cfg.max_answer_length,
                                   version_2_with_negative=task.qa_version == "2.0")

    def score(self, task, examples, predictions, language):
        articles = _articles(examples)
        if task.qa_version == "2.0":
            return metrics.squad_v2_em_f1(articles, predictions)
        if task.answer_normalization == "mlqa":
            return metrics.mlqa_em_f1(articles, predictions, language)
        return metrics.squad_em_f1(articles, predictions)

    def example_stats(self, task, examples, predictions, language):
        if task.qa_version == "2.0":
            raise NotImplementedError(f"{task.name}: no per-example statistics for SQuAD 2.0")
        if task.answer_normalization == "mlqa":
            def normalize(s):
                return metrics.mlqa_normalize_answer(s, language)
        else:
            normalize = metrics.squad_normalize_answer
        return "em_f1", metrics.qa_example_stats(_articles(examples), predictions, normalize)

    def write(self, path, predictions):
        write_qa_predictions(path, predictions)


def _articles(examples) -> list[dict]:
    """The gold questions in SQuAD's JSON shape, as the official scorers read them."""
    return [{"paragraphs": [{"qas": [
        {"id": e.id, "answers": [{"text": text} for text, _ in e.answers]}
        for e in examples]}]}]


QA = QAFamily("qa", SpanHead, span_loss, "json", "f1")

