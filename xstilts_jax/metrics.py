"""XTREME metrics, scored exactly as the official XTREME scorer does.

Reproduces google-research/xtreme ``evaluate.py`` (with the seqeval 0.0.x chunk F1 it was
written against, SQuAD v1.1's and MLQA's official evaluation scripts) on the XTREME file
layout: ``<dir>/<task>/test-<lang>.tsv`` (one label a line; tagging: one tag a line, a blank
line between sentences; bucc2018: ``src-id<TAB>en-id`` pairs) or ``.json`` (QA: labels in
SQuAD v1.1 JSON, predictions ``{question_id: answer_text}``). Every metric is a percentage.
SQuAD 2.0's official evaluation (not an XTREME task): :func:`squad_v2_em_f1`.

Pure Python: no JAX, no NumPy. Which tasks XTREME has, their groups and metrics come from the
task catalog (``tasks/catalog``), the one place a task is declared.
"""

from __future__ import annotations

import json
import pathlib
import re
import string
import sys
import unicodedata
from collections import Counter
from typing import Callable, Iterable, Sequence

from xstilts_jax.tasks.registry import get_task, xtreme_groups

__all__ = ["GROUP2TASK", "STAT_KINDS", "TASK_METRICS", "TASKS", "ScoreError", "accuracy",
           "accuracy_example_stats", "bucc_f1", "qa_example_stats", "score_from_stats",
           "tagging_example_stats",
           "get_entities", "mlqa_em_f1", "mlqa_normalize_answer", "score_all", "score_task",
           "squad_em_f1", "squad_normalize_answer", "squad_v2_em_f1", "tagging_f1", "task_score"]


class ScoreError(ValueError):
    """Predictions or labels that cannot be scored; the message names the file(s)."""


# --------------------------------------------------------------------------- tasks

# XTREME's task groups and each task's official metric come from the task catalog (one spec
# per task): the summary averages these groups, in XTREME's order.
GROUP2TASK = xtreme_groups()
TASKS = tuple(task for group in GROUP2TASK.values() for task in group)
_METRIC = {task: get_task(task).metric for task in TASKS}  # accuracy | tagging_f1 | squad | ...
_QA_METRICS = frozenset({"squad", "mlqa"})
_METRIC_NAMES = {"accuracy": ("accuracy",), "tagging_f1": ("f1", "precision", "recall"),
                 "bucc_f1": ("f1", "precision", "recall"), "squad": ("exact_match", "f1"),
                 "mlqa": ("exact_match", "f1")}
# The metrics each task reports, in order (the averages are "avg_" + name).
TASK_METRICS = {task: _METRIC_NAMES[_METRIC[task]] for task in TASKS}


def _check_task(task: str) -> None:
    if task not in TASK_METRICS:
        raise ScoreError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def _suffix(task: str) -> str:
    return "json" if _METRIC[task] in _QA_METRICS else "tsv"


# --------------------------------------------------------------------------- readers

def _read_lines(path: pathlib.Path) -> list[str]:
    """Lines of a UTF-8 file, each stripped of surrounding whitespace (as XTREME's reader)."""
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    lines = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                lines.append(raw.decode("utf-8").strip())
            except UnicodeDecodeError as e:
                raise ScoreError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
    return lines


def read_labels(path: pathlib.Path) -> list[str]:
    """One label a line (xnli, pawsx, tatoeba, bucc2018)."""
    return _read_lines(path)


def read_tags(path: pathlib.Path) -> list[list[str]]:
    """One tag a line; every blank line ends a sentence (two blank lines: an empty sentence)."""
    sentences, sentence = [], []
    for line in _read_lines(path):
        if line:
            sentence.append(line)
        else:
            sentences.append(sentence)
            sentence = []
    if sentence:
        sentences.append(sentence)
    return sentences


def _read_json(path: pathlib.Path):
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScoreError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ScoreError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e


def read_squad_labels(path: pathlib.Path) -> list[dict]:
    """The ``data`` articles of a SQuAD v1.1 file."""
    dataset = _read_json(path)
    articles = dataset.get("data") if isinstance(dataset, dict) else dataset
    if not isinstance(articles, list):
        raise ScoreError(f"{path}: not SQuAD v1.1 JSON (expected a 'data' list of articles)")
    try:  # the fields the scorer reads, checked up front for a clear message
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if not isinstance(qa["id"], str) or not all(
                            isinstance(answer["text"], str) for answer in qa["answers"]):
                        raise TypeError("a non-string 'id' or 'text'")
    except (KeyError, TypeError) as e:
        raise ScoreError(f"{path}: not SQuAD v1.1 JSON (data[].paragraphs[].qas[] need "
                         f"'id' and 'answers[].text'; missing {e})") from e
    return articles


def read_squad_predictions(path: pathlib.Path) -> dict[str, str]:
    """``{question_id: answer_text}``."""
    predictions = _read_json(path)
    if not isinstance(predictions, dict):
        raise ScoreError(f"{path}: QA predictions must be a JSON object {{question_id: answer_text}}, "
                         f"not {type(predictions).__name__}")
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise ScoreError(f"{path}: the prediction for question {qid!r} is "
                             f"{type(answer).__name__}, not a string")
    return predictions


# --------------------------------------------------------------------------- accuracy, BUCC

def accuracy(labels: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Percentage of positions where the prediction string equals the label string."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no examples")
    correct = sum(p == g for p, g in zip(predictions, labels))
    return {"accuracy": 100.0 * correct / len(labels)}


def _prf(ncorrect: int, npred: int, ngold: int) -> dict[str, float]:
    precision = ncorrect / npred if npred else 0.0
    recall = ncorrect / ngold if ngold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


def bucc_f1(labels: Iterable[str], predictions: Iterable[str]) -> dict[str, float]:
    """Precision/recall/F1 of the predicted ``src\\ten`` pairs against the gold pairs (as sets)."""
    gold = {tuple(line.split("\t")) for line in labels}
    pred = {tuple(line.split("\t")) for line in predictions}
    return _prf(len(gold & pred), len(pred), len(gold))


# --------------------------------------------------------------------------- tagging

def _chunk_ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Whether a chunk ended just before the current token (conlleval rules)."""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _chunk_starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Whether a chunk starts at the current token (conlleval rules)."""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(seq: Sequence[str] | Sequence[Sequence[str]]) -> list[tuple[str, int, int]]:
    """Chunks ``(type, first, last)`` of a tag sequence, as seqeval 0.0.x (XTREME's) finds them.

    A tag's "prefix" is its first character and its type the part after its last '-': so
    ``B-PER`` is (B, PER), and a bare UD tag such as ``SCONJ`` is (S, SCONJ) -- a single-token
    chunk -- while ``NOUN NOUN`` is one two-token NOUN chunk. A list of sentences is joined
    with an ``O`` after every sentence (which shifts offsets, identically for gold and
    predictions).
    """
    if any(isinstance(s, list) for s in seq):
        seq = [tag for sentence in seq for tag in [*sentence, "O"]]
    prev_tag, prev_type, begin = "O", "", 0
    chunks = []
    for i, chunk in enumerate([*seq, "O"]):
        tag, type_ = chunk[0], chunk.split("-")[-1]
        if _chunk_ends(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def tagging_f1(labels: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro chunk precision/recall/F1 over all sentences (seqeval 0.0.x f1/precision/recall)."""
    gold = set(get_entities([list(s) for s in labels]))
    pred = set(get_entities([list(s) for s in predictions]))
    return _prf(len(gold & pred), len(pred), len(gold))


def tagging_example_stats(labels: Sequence[Sequence[str]],
                          predictions: Sequence[Sequence[str]]) -> list[tuple[int, int, int]]:
    """Per sentence: (correct chunks, predicted chunks, gold chunks). Chunks never cross a
    sentence, so their sums give :func:`tagging_f1` exactly."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predicted sentences for {len(labels)}")
    stats = []
    for gold_tags, pred_tags in zip(labels, predictions):
        gold, pred = set(get_entities(list(gold_tags))), set(get_entities(list(pred_tags)))
        stats.append((len(gold & pred), len(pred), len(gold)))
    return stats


# --------------------------------------------------------------------------- QA

def squad_normalize_answer(s: str) -> str:
    """SQuAD v1.1: lowercase, drop ASCII punctuation and a/an/the, collapse whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in _ASCII_PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_ASCII_PUNCT = frozenset(string.punctuation)
# MLQA: every Unicode punctuation character (categories P*) plus ASCII punctuation.
_MLQA_PUNCT = frozenset(chr(i) for i in range(sys.maxunicode)
                        if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCT
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    # The official pattern is '\sال^|ال'; its first branch can never match, so every "ال" goes.
    "ar": re.compile(r"ال"),
    "hi": None,
    "zh": None,
}
_MLQA_MIXED_SEGMENTATION = frozenset({"zh"})
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _mixed_segmentation(text: str) -> list[str]:
    """CJK characters (and punctuation) are tokens of their own; the rest splits on whitespace."""
    tokens, pending = [], ""
    for ch in text:
        if _CJK.match(ch) or ch in _MLQA_PUNCT:
            tokens.extend(pending.split())
            pending = ""
            tokens.append(ch)
        else:
            pending += ch
    tokens.extend(pending.split())
    return tokens


def mlqa_normalize_answer(s: str, lang: str) -> str:
    """MLQA's official normalisation for answer language ``lang``."""
    if lang not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA has no normalisation for language {lang!r} "
                         f"(known: {', '.join(sorted(_MLQA_ARTICLES))})")
    s = "".join(ch for ch in s.lower() if ch not in _MLQA_PUNCT)
    articles = _MLQA_ARTICLES[lang]
    if articles is not None:
        s = articles.sub(" ", s)
    tokens = _mixed_segmentation(s) if lang in _MLQA_MIXED_SEGMENTATION else s.split()
    return " ".join(t for t in tokens if t.strip())


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    num_same = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_example_stats(articles: list[dict], predictions: dict[str, str],
                     normalize: Callable[[str], str]) -> list[tuple[float, float]]:
    """Per gold question, in order: (exact match, token F1) in [0, 1], max over its gold
    answers; an unanswered question scores (0, 0), as in the official scripts."""
    stats = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa["id"] not in predictions:
                    stats.append((0.0, 0.0))
                    continue
                prediction = normalize(predictions[qa["id"]])
                golds = [normalize(answer["text"]) for answer in qa["answers"]]
                if not golds:
                    raise ValueError(f"question {qa['id']!r} has no gold answers")
                stats.append((max(float(prediction == g) for g in golds),
                              max(_token_f1(prediction.split(), g.split()) for g in golds)))
    return stats


def _qa_em_f1(articles: list[dict], predictions: dict[str, str],
              normalize: Callable[[str], str]) -> dict[str, float]:
    """Max-over-gold-answers EM and token F1, averaged over every gold question (missing: 0)."""
    stats = qa_example_stats(articles, predictions, normalize)
    if not stats:
        raise ValueError("no questions")
    return {"exact_match": 100.0 * sum(s[0] for s in stats) / len(stats),
            "f1": 100.0 * sum(s[1] for s in stats) / len(stats)}


def squad_em_f1(articles: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 (xquad, tydiqa)."""
    return _qa_em_f1(articles, predictions, squad_normalize_answer)


def squad_v2_em_f1(articles: list[dict], predictions: dict[str, str], *,
                   na_probs: dict[str, float] | None = None,
                   na_prob_thresh: float = 1.0) -> dict[str, float | int]:
    """SQuAD 2.0's official evaluation (``evaluate-v2.0.py``): exact match and F1 with the
    v1.1 normalisation (:func:`squad_normalize_answer`), max over the gold answers, where

    - the golds of a question are its answers whose normalised text is non-empty, or ``[""]``
      when none is (an unanswerable question: only the empty prediction is right);
    - a question "has an answer" when its ``answers`` list is non-empty (as the script's
      ``make_qid_to_has_ans``, before normalisation);
    - F1 against an empty gold, or of an empty prediction, is 1 when both have no token, else 0.

    Returns ``exact``, ``f1`` (percentages) and ``total`` over all questions, and
    ``HasAns_exact/_f1/_total`` and ``NoAns_exact/_f1/_total`` over those with / without
    answers, each only when there are such questions (as the script); ``exact_match`` repeats
    ``exact`` under the name the other QA metrics here use.

    ``na_probs`` (question id -> probability of no answer; default 0 for all, the script's
    default without ``--na-prob-file``): a question whose probability is ``> na_prob_thresh``
    is scored as a predicted no-answer (1 if it has no answer, else 0). The script's
    ``best_exact``/``best_f1`` threshold search and PR curves are not reproduced.

    The script skips questions without a prediction in its totals and then fails (KeyError) in
    the HasAns/NoAns breakdown; here a missing prediction raises ``ValueError`` naming it.
    """
    has_answer: dict[str, bool] = {}
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    missing: list[str] = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qid = qa["id"]
                has_answer[qid] = bool(qa["answers"])
                golds = [g for g in (squad_normalize_answer(a["text"]) for a in qa["answers"])
                         if g] or [""]
                if qid not in predictions:
                    missing.append(qid)
                    continue
                prediction = squad_normalize_answer(predictions[qid])
                exact[qid] = max(float(prediction == g) for g in golds)
                f1[qid] = max(_token_f1_v2(prediction.split(), g.split()) for g in golds)
    if not has_answer:
        raise ValueError("no questions")
    if missing:
        raise ValueError(f"{len(missing)} of {len(has_answer)} questions have no prediction "
                         f"(first: {', '.join(map(repr, missing[:5]))}); SQuAD 2.0's "
                         f"evaluation needs one for every question ('' for no answer)")
    if na_probs is not None:
        for qid in exact:
            if na_probs.get(qid, 0.0) > na_prob_thresh:
                exact[qid] = f1[qid] = float(not has_answer[qid])

    def totals(qids: list[str]) -> tuple[float, float, int]:
        return (100.0 * sum(exact[q] for q in qids) / len(qids),
                100.0 * sum(f1[q] for q in qids) / len(qids), len(qids))

    result: dict[str, float | int] = {}
    result["exact"], result["f1"], result["total"] = totals(list(exact))
    result["exact_match"] = result["exact"]
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, has in has_answer.items() if has == wanted]
        if qids:
            (result[f"{prefix}_exact"], result[f"{prefix}_f1"],
             result[f"{prefix}_total"]) = totals(qids)
    return result


def _token_f1_v2(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    """evaluate-v2.0.py's compute_f1: 1 or 0 when either side has no token, else token F1."""
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    return _token_f1(prediction_tokens, gold_tokens)


def mlqa_em_f1(articles: list[dict], predictions: dict[str, str], lang: str) -> dict[str, float]:
    """MLQA's official exact match and F1, normalised for answer language ``lang``."""
    return _qa_em_f1(articles, predictions, lambda s: mlqa_normalize_answer(s, lang))


# --------------------------------------------------------------------------- one language

def _score_language(task: str, lang: str, prediction_file: pathlib.Path,
                    label_file: pathlib.Path) -> dict[str, float]:
    if not prediction_file.is_file():
        raise ScoreError(f"{prediction_file}: no such file (predictions for {task} language "
                         f"{lang!r}, whose labels are {label_file})")
    metric = _METRIC[task]
    if metric in _QA_METRICS:
        articles = read_squad_labels(label_file)
        predictions = read_squad_predictions(prediction_file)
        try:
            if metric == "mlqa":
                return mlqa_em_f1(articles, predictions, lang)
            return squad_em_f1(articles, predictions)
        except ValueError as e:
            raise ScoreError(f"{label_file}: {e}") from e
    if metric == "tagging_f1":
        gold, pred = read_tags(label_file), read_tags(prediction_file)
        _check_sentences(gold, pred, label_file, prediction_file)
        return tagging_f1(gold, pred)
    gold, pred = read_labels(label_file), read_labels(prediction_file)
    if metric == "bucc_f1":
        return bucc_f1(gold, pred)
    if len(gold) != len(pred):
        raise ScoreError(f"{prediction_file} has {len(pred)} lines but {label_file} has "
                         f"{len(gold)}: one prediction per label line")
    if not gold:
        raise ScoreError(f"{label_file}: no labels (the file is empty)")
    return accuracy(gold, pred)


def _check_sentences(gold: list[list[str]], pred: list[list[str]], label_file: pathlib.Path,
                     prediction_file: pathlib.Path) -> None:
    mismatch = next((i for i, (g, p) in enumerate(zip(gold, pred)) if len(g) != len(p)), None)
    where = ""
    if mismatch is not None:
        where = (f"; sentence {mismatch + 1} (counting from 1) is the first whose token count "
                 f"differs: {len(pred[mismatch])} tags in the predictions, "
                 f"{len(gold[mismatch])} in the labels")
    if len(gold) != len(pred):
        raise ScoreError(f"{prediction_file} has {len(pred)} sentences but {label_file} has "
                         f"{len(gold)}{where}")
    if mismatch is not None:
        raise ScoreError(f"{prediction_file} and {label_file} both have {len(gold)} sentences, "
                         f"but their tokens differ{where}")
    if not gold:
        raise ScoreError(f"{label_file}: no sentences (the file is empty)")


# --------------------------------------------------------------------------- per example

# A language's score as a function of sums over its examples, so that a bootstrap can resample
# examples and rescore without the texts: kind -> what each example's row holds.
STAT_KINDS = {
    "accuracy": ("correct",),  # 0 or 1; score = 100 * mean
    "em_f1": ("exact_match", "f1"),  # in [0, 1]; score = 100 * (mean EM + mean F1) / 2
    "prf": ("correct", "predicted", "gold"),  # chunk counts; score = micro F1 of the sums
}


def accuracy_example_stats(labels: Sequence[str], predictions: Sequence[str]) -> list[tuple[int]]:
    """Per example: (1 if the prediction equals the label else 0,)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return [(int(p == g),) for p, g in zip(predictions, labels)]


def score_from_stats(kind: str, sums: Sequence[float], n: float) -> float:
    """XTREME's one number for a language (accuracy, F1, or (EM + F1) / 2) from the sums of
    its examples' ``kind`` rows over ``n`` examples (resampled sums work the same)."""
    if kind not in STAT_KINDS:
        raise ValueError(f"unknown statistics kind {kind!r}: expected one of {', '.join(STAT_KINDS)}")
    if len(sums) != len(STAT_KINDS[kind]):
        raise ValueError(f"{kind}: expected {len(STAT_KINDS[kind])} sums, got {len(sums)}")
    if kind == "prf":
        return _prf(*sums)["f1"]
    if n <= 0:
        raise ValueError("no examples")
    return 100.0 * sum(sums) / (len(sums) * n)


# --------------------------------------------------------------------------- tasks, summary

def task_score(task: str, scores: dict) -> float:
    """XTREME's single number for a task: accuracy, F1 (tagging, BUCC) or (EM + F1) / 2 (QA)."""
    if _METRIC[task] in _QA_METRICS:
        return (scores["avg_exact_match"] + scores["avg_f1"]) / 2
    if "avg_f1" in scores:
        return scores["avg_f1"]
    return scores["avg_accuracy"]


def _label_languages(task: str, labels_dir: pathlib.Path) -> list[str]:
    folder = labels_dir / task
    if not folder.is_dir():
        raise ScoreError(f"{folder}: no such folder (labels for {task})")
    suffix = "." + _suffix(task)
    langs = sorted(p.name[len("test-"):-len(suffix)] for p in folder.iterdir()
                   if p.name.startswith("test-") and p.name.endswith(suffix) and p.is_file())
    if not langs:
        raise ScoreError(f"{folder}: no test-<lang>{suffix} label files")
    return langs


def score_task(task: str, predictions_dir, labels_dir,
               languages: Sequence[str] | None = None) -> dict:
    """Score one task over its languages (default: every ``test-<lang>`` file in the labels).

    Returns ``{"task", "languages", "per_language": {lang: {metric: %}}, "avg_<metric>": %
    for each metric, "score": XTREME's task score}``.
    """
    _check_task(task)
    predictions_dir, labels_dir = pathlib.Path(predictions_dir), pathlib.Path(labels_dir)
    available = _label_languages(task, labels_dir)
    if languages is None:
        languages = available
    else:
        languages = list(dict.fromkeys(languages))
        missing = [lang for lang in languages if lang not in available]
        if missing:
            raise ScoreError(f"{labels_dir / task}: no labels for language(s) {', '.join(missing)} "
                             f"(available: {', '.join(available)})")
        if not languages:
            raise ScoreError(f"{task}: no languages to score")
    suffix = _suffix(task)
    per_language = {
        lang: _score_language(task, lang, predictions_dir / task / f"test-{lang}.{suffix}",
                              labels_dir / task / f"test-{lang}.{suffix}")
        for lang in languages}
    result: dict = {"task": task, "languages": list(languages), "per_language": per_language}
    for metric in TASK_METRICS[task]:
        result[f"avg_{metric}"] = sum(s[metric] for s in per_language.values()) / len(per_language)
    result["score"] = task_score(task, result)
    return result


def score_all(predictions_dir, labels_dir) -> dict:
    """Score every known task that has a folder in both directories, plus XTREME's summary.

    Returns ``{"tasks": {task: score_task(...)}, "summary": {"tasks": {task: score},
    "groups": {group: mean score, for groups with all their tasks}, "unpredicted": tasks with
    labels but no predictions folder, "overall": mean over the scored tasks, "complete": whether
    all nine tasks were scored}}``.
    """
    predictions_dir, labels_dir = pathlib.Path(predictions_dir), pathlib.Path(labels_dir)
    for folder, what in ((predictions_dir, "predictions"), (labels_dir, "labels")):
        if not folder.is_dir():
            raise ScoreError(f"{folder}: no such folder ({what})")
    present = [t for t in TASKS if (labels_dir / t).is_dir() and (predictions_dir / t).is_dir()]
    if not present:
        raise ScoreError(f"no task folder ({', '.join(TASKS)}) in both {predictions_dir} "
                         f"and {labels_dir}")
    tasks = {t: score_task(t, predictions_dir, labels_dir) for t in present}
    scores = {t: r["score"] for t, r in tasks.items()}
    groups = {group: sum(scores[t] for t in members) / len(members)
              for group, members in GROUP2TASK.items() if all(t in scores for t in members)}
    # Reported, never dropped silently: labels that have no predictions folder.
    unpredicted = [t for t in TASKS if (labels_dir / t).is_dir() and t not in scores]
    summary = {"tasks": scores, "groups": groups, "unpredicted": unpredicted,
               "overall": sum(scores.values()) / len(scores), "complete": len(scores) == len(TASKS)}
    return {"tasks": tasks, "summary": summary}
