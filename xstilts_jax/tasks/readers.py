"""Readers for the raw formats of XTREME's QA, retrieval and tagging tasks (pure Python, no JAX).

- SQuAD v1.1 JSON (XQuAD, MLQA, TyDiQA-GoldP, SQuAD) and SQuAD 2.0 JSON (unanswerable
  questions, ``version="2.0"``): :func:`read_squad`.
- Tatoeba, LASER layout (``tatoeba.<xxx>-eng.<xxx>`` / ``tatoeba.<xxx>-eng.eng``):
  :func:`read_tatoeba` (two lists) and :func:`read_tatoeba_files` (a :class:`ReadResult` of
  :class:`TranslationPair`), with :data:`TATOEBA_LANGUAGES` mapping XTREME's ISO 639-1 codes
  to the ISO 639-3 codes of the file names.
- BUCC 2018 (``<id><TAB><sentence>`` files and ``<src-id><TAB><en-id>`` gold):
  :func:`read_bucc` / :func:`read_bucc_files`, returning :class:`BuccData`.
- Universal Dependencies CoNLL-U (UDPOS): :func:`read_conllu`; XTREME's processed
  token-per-line form (``word<TAB>tag``, blank line between sentences, UDPOS and PAN-X):
  :func:`read_tagging_tsv`; the raw PAN-X / WikiANN split files of Rahimi et al. (lines
  ``<lang>:<word><TAB><tag>``): :func:`read_panx_raw`.
- CCGbank supertagging (``.auto`` derivations, ``word<TAB>supertag`` exports):
  :mod:`xstilts_jax.tasks.ccg`.
- Language lists of XTREME's tasks (``*_LANGUAGES``, ISO 639-1) and their label sets. Where
  each task's files live on disk: :mod:`xstilts_jax.tasks.layout`.

As in :mod:`xstilts_jax.tasks.classification`, bad input raises :class:`DataError` naming the
file (and line, or question id) and saying what was expected; what is skipped on purpose is
counted by reason in ``ReadResult.skipped`` and logged. ``read_squad``, the tagging readers and
``read_tatoeba_files`` return a :class:`ReadResult`, a read-only sequence of the examples
(``len``, indexing and iteration work as on the list) that also carries the path, language,
skip counts and every file read.

Policies decided here:

- SQuAD answers. Every answer's ``text`` must equal ``context[answer_start:answer_start +
  len(text)]``; the 12 XQuAD files have no mismatch (checked by the tests), and SQuAD v1.1's
  offsets are character offsets into the same context string. By default
  (``mismatches="error"``) a mismatch raises ``DataError`` naming the file, the line of the
  question's ``"id"`` in the JSON text, the question id and both strings (every error about
  one question names ``<file>:<line>`` so: the line is found by scanning the raw text's JSON
  string tokens for an ``"id"`` key whose value decodes to the id, whatever the whitespace and
  escaping; see ``_IdLines``). ``mismatches="skip"`` drops such answers instead (a question
  left with none is dropped), counted under :data:`SKIP_ANSWER_MISMATCH` /
  :data:`SKIP_NO_VALID_ANSWER` -- what XTREME's training code does with answers it "could not
  find". Questions with no answers at all (test files with annotations removed) are refused
  unless ``allow_unanswered=True``. SQuAD 2.0 ``is_impossible`` questions are refused by
  default (``version="1.1"``, what every XTREME file is); with ``version="2.0"`` they are read
  as ``answers=()``, ``is_impossible=True``, their ``plausible_answers`` ignored (HF's
  ``SquadV2Processor`` and the official v2.0 evaluation ignore them too), and one that also
  has answers is refused as contradictory. An answer with empty text is what XTREME's
  ``remove_qa_test_annotations`` leaves in the test files of its download (every answer
  replaced by ``{"answer_start": 0, "text": ""}``): it is refused with that hint, or with
  ``allow_unanswered=True`` read as no answer. Question ids must be unique in a file
  (predictions are keyed by id); ``duplicate_ids="suffix"`` renames repeats ``<id>#2``,
  ``<id>#3``, ... for XTREME's per-language TyDiQA training files, whose ids keep only the
  last ``-`` part of the original ids and so repeat.
- Tatoeba. The two sides must have the same number of lines; an empty line is an error
  (it can only be damage: the LASER files have none).
- CoNLL-U. Comment lines (``#``), multiword-token ranges (``1-2``) and empty nodes (``1.1``)
  are skipped and counted; every other non-blank line must have 10 tab-separated columns, an
  ID that continues the sentence (1, 2, ...) and a UPOS tag (column 4) from :data:`UPOS_TAGS`.
  By default no sentence is dropped; ``drop_textless=True`` drops what XTREME's
  ``udpos_preprocess`` drops: sentences whose words are ``_`` (all of them, or all but one),
  i.e. treebanks distributed without their text (UD v2.5: ar_nyuad, en_esl, fr_ftb,
  ja_bccwj), counted under :data:`SKIP_NO_TEXT`. Two other XTREME steps are *not* copied:
  its CoNLL-U conversion (``conllu_to_conll.py --replace_subtokens_with_fused_forms``) replaces
  a multiword token's words by the fused form tagged with the POS of the span's head, where
  this reader keeps the syntactic words; and ``udpos_preprocess`` deletes spaces and U+200C
  inside words.
- PAN-X raw files. Every non-blank line must be ``<lang>:<word><TAB><tag>`` with exactly the
  expected ``<lang>:`` prefix (XTREME's ``panx_preprocess`` cuts at the first ``:`` and
  silently drops lines without one; here that is an error naming the line) and a tag from
  :data:`PANX_LABELS`.
- BUCC. Sentence files are ``<id><TAB><sentence>`` (ids ``<lang>-000000001``-style on the
  source side, ``en-...`` on the English side, unique per file, sentences non-empty), gold
  files ``<source id><TAB><English id>`` with both ids present in the sentence files and no
  pair twice. XTREME's dev/test are the release's sample/training data (its download fetches
  only their ``*-gold`` tarballs), and XTREME's layout has no gold for its test split (see
  :func:`bucc_candidates`); :func:`read_bucc` refuses that unless ``require_gold=False``.
"""

from __future__ import annotations

import bisect
import collections.abc
import dataclasses
import json
import logging
import os
import pathlib
import re
from typing import Callable, Generic, Iterator, Literal, Sequence, TypeVar

from xstilts_jax.tasks.classification import DataError, _lines

log = logging.getLogger(__name__)

T = TypeVar("T")

SKIP_ANSWER_MISMATCH = "answer text differs from the context at answer_start"
SKIP_NO_VALID_ANSWER = "question with no answer matching its context"
SKIP_COMMENT = "comment line"
SKIP_MULTIWORD = "multiword token range"
SKIP_EMPTY_NODE = "empty node"
SKIP_NO_TEXT = "sentence without its words (forms '_'; treebank distributed without text)"

# The 17 Universal POS tags (UD v2), XTREME's UDPOS label set.
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")

# XTREME's 36 Tatoeba languages (ISO 639-1) -> the LASER file names' ISO 639-3 codes.
TATOEBA_LANGUAGES: dict[str, str] = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn",
}

# XTREME's languages per task (ISO 639-1, sorted), from google-research/xtreme's
# scripts/download_data.sh, utils_preprocess.py, scripts/predict_qa.sh and mock_test_data/.
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
TYDIQA_LANGUAGES = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")
# TyDiQA-GoldP names languages in its dev file names (tydiqa-goldp-dev-<name>.json) and in
# the first part of its question ids ("arabic-2387335860751143628-1").
TYDIQA_LANGUAGE_NAMES: dict[str, str] = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}
BUCC_LANGUAGES = ("de", "fr", "ru", "zh")
# UDPOS in XTREME (UD v2.5): 33 languages. (Later XTREME revisions use UD v2.7 and add
# lt pl uk wo ro for XTREME-R; those are not part of XTREME's UDPOS.)
UDPOS_LANGUAGES = ("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he",
                   "hi", "hu", "id", "it", "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te",
                   "th", "tl", "tr", "ur", "vi", "yo", "zh")
# PAN-X in XTREME: 40 languages. (utils_preprocess.PANX_LANGUAGES also lists qu pl uk az lt
# pa gu ro, added for XTREME-R.)
PANX_LANGUAGES = ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr",
                  "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms",
                  "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo",
                  "zh")
# PAN-X's IOB2 tags in XTREME's label order (scripts/preprocess_panx.sh writes labels.txt as
# the sorted unique tags).
PANX_LABELS = ("B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O")


@dataclasses.dataclass(frozen=True)
class ReadResult(collections.abc.Sequence, Generic[T]):
    """The examples of one file (a read-only sequence of them), and what was skipped
    (reason -> count)."""

    path: pathlib.Path
    language: str
    examples: tuple[T, ...]
    skipped: dict[str, int]
    files: tuple[pathlib.Path, ...] = ()  # every file read, in order; () means (path,)

    def __post_init__(self) -> None:
        if not self.files:
            object.__setattr__(self, "files", (self.path,))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.examples)


@dataclasses.dataclass(frozen=True, slots=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (text, answer_start): character offset in context
    title: str
    paragraph: int  # 0-based index of its paragraph in the file (questions sharing a context)
    is_impossible: bool = False  # SQuAD 2.0: no answer in the context (answers is ())
    language: str = ""  # the file's language (a union of translations keeps them apart)


@dataclasses.dataclass(frozen=True, slots=True)
class TaggedSentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    guid: str = ""  # "<file name>:<line of its first word>"


@dataclasses.dataclass(frozen=True, slots=True)
class TranslationPair:
    source: str
    english: str  # the translation of source (Tatoeba: line i of one file, line i of the other)
    guid: str = ""  # "<source file name>:<line>"


@dataclasses.dataclass(frozen=True)
class BuccData:
    """One BUCC 2018 language pair and split: the sentences of each side by id (file order)
    and the gold (source id, English id) pairs, or None where the layout has no gold file."""

    language: str
    source: dict[str, str]
    english: dict[str, str]
    gold: tuple[tuple[str, str], ...] | None
    files: tuple[pathlib.Path, ...]  # source, English and (when read) gold file


def _check_file(path: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _finish(path: pathlib.Path, language: str, examples: list, skipped: dict[str, int],
            what: str) -> ReadResult:
    for reason, count in skipped.items():
        if reason not in (SKIP_COMMENT, SKIP_MULTIWORD, SKIP_EMPTY_NODE):
            log.warning("%s: skipped %d: %s", path, count, reason)
    if not examples:
        counts = "; ".join(f"{n} skipped: {r}" for r, n in skipped.items()
                           if r not in (SKIP_COMMENT, SKIP_MULTIWORD, SKIP_EMPTY_NODE))
        raise DataError(f"{path}: no {what}" + (f" ({counts})" if counts else ""))
    return ReadResult(path, language, tuple(examples), dict(skipped))


# --------------------------------------------------------------------------- SQuAD v1.1 / 2.0

SQUAD_VERSIONS = ("1.1", "2.0")

# A JSON string token, and a key's string value after its ':'. Scanning a valid JSON text left
# to right with _JSON_KEY_VALUE visits exactly its string tokens, as no '"' occurs outside
# strings; a key and its string value are consumed together (group 1, group 2).
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_KEY_VALUE = re.compile(rf"({_JSON_STRING})(?:\s*:\s*({_JSON_STRING}))?", re.S)


class _IdLines:
    """Where each question id of a SQuAD JSON text is: computed on first use, since only error
    messages need it.

    Method: the text's string tokens are scanned in order (:data:`_JSON_KEY_VALUE`); a key
    that decodes to ``id`` with a string value records that value, decoded by ``json.loads``,
    so any whitespace around the ``:`` and any escaping (``\\u00e9`` or the raw character) is
    found; the line is the one where the id's value starts. The n-th question read with an id
    is at the n-th such line of that id (ids repeat in XTREME's TyDiQA training files). Other
    objects with an ``"id"`` key would shift this; SQuAD files have none."""

    def __init__(self, path: pathlib.Path, text: str):
        self.path, self.text = path, text
        self._lines: dict[str, list[int]] | None = None

    def lines(self) -> dict[str, list[int]]:
        if self._lines is None:
            text = self.text
            newlines = [m.start() for m in re.finditer("\n", text)]
            found: dict[str, list[int]] = {}
            for m in _JSON_KEY_VALUE.finditer(text):
                key, value = m.group(1), m.group(2)
                if value is None or (key != '"id"' and ("\\" not in key
                                                        or json.loads(key) != "id")):
                    continue
                found.setdefault(json.loads(value), []).append(
                    bisect.bisect_right(newlines, m.start(2)) + 1)
            self._lines, self.text = found, ""
        return self._lines

    def place(self, qid: str, occurrence: int) -> "_Place":
        return _Place(self, qid, occurrence)


@dataclasses.dataclass(frozen=True)
class _Place:
    """``<file>:<line>`` of the ``occurrence``-th (1-based) question with id ``qid``, or
    ``<file>`` when the id's text is not found; formatted lazily (error messages only)."""

    id_lines: _IdLines
    qid: str
    occurrence: int

    def __str__(self) -> str:
        lines = self.id_lines.lines().get(self.qid, [])
        path = self.id_lines.path
        if len(lines) < self.occurrence:
            return str(path)
        return f"{path}:{lines[self.occurrence - 1]}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _field(record, key: str, kind: type, where: str, path: pathlib.Path | _Place):
    if not isinstance(record, dict):
        raise DataError(f"{path}: {where}: expected a JSON object, got {type(record).__name__}")
    value = record.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problem = "missing" if key not in record else f"a {type(value).__name__}"
        expected = {list: "a list", int: "an integer", bool: "true or false"}.get(kind,
                                                                                "a string")
        raise DataError(f"{path}: {where}: field {key!r} is {problem}, expected {expected}")
    return value


def read_squad(path: str | os.PathLike, language: str, *,
               version: Literal["1.1", "2.0"] = "1.1",
               mismatches: Literal["error", "skip"] = "error",
               allow_unanswered: bool = False,
               duplicate_ids: Literal["error", "suffix"] = "error") -> ReadResult[QAExample]:
    """Every question of a SQuAD JSON file, in file order (see the module docstring for the
    answer and id checks).

    ``version="1.1"`` (the default; XQuAD, MLQA, TyDiQA-GoldP, SQuAD v1.1) refuses SQuAD 2.0
    ``is_impossible`` questions. ``version="2.0"`` reads them as ``QAExample(answers=(),
    is_impossible=True)``; their ``plausible_answers`` are ignored (not read, not checked:
    neither training nor the official v2.0 evaluation uses them), and one that also lists
    ``answers`` is refused as contradictory. Answerable questions are read the same way in
    both versions. The file's own ``"version"`` field is not checked.

    Errors about one question name ``<file>:<line>`` (the line of its ``"id"``, see
    :class:`_IdLines`) and its id."""
    if version not in SQUAD_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(SQUAD_VERSIONS)}, not {version!r}")
    if mismatches not in ("error", "skip"):
        raise ValueError(f"mismatches must be 'error' or 'skip', not {mismatches!r}")
    if duplicate_ids not in ("error", "suffix"):
        raise ValueError(f"duplicate_ids must be 'error' or 'suffix', not {duplicate_ids!r}")
    path = _check_file(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        # The error is at the end of the text, or is a string that runs to it.
        at_end = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
        hint = "; truncated file?" if at_end else ""
        raise DataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg}{hint})") from None
    id_lines = _IdLines(path, text)
    del text
    articles = _field(document, "data", list, "top level", path)
    examples: list[QAExample] = []
    skipped: dict[str, int] = {}
    seen: dict[str, int] = {}  # id (as read or as renamed) -> how many times it occurred
    occurrences: dict[str, int] = {}  # id as in the file -> how many times read so far
    renamed = 0
    paragraph_index = 0
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        paragraphs = _field(article, "paragraphs", list, where, path)
        title = article.get("title", "")
        if not isinstance(title, str):
            raise DataError(f"{path}: {where}: field 'title' is a {type(title).__name__}, "
                            f"expected a string")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where, path)
            for q, qa in enumerate(_field(paragraph, "qas", list, where, path)):
                raw_id = qid = _field(qa, "id", str, f"{where}.qas[{q}]", path)
                occurrences[raw_id] = occurrences.get(raw_id, 0) + 1
                at = id_lines.place(raw_id, occurrences[raw_id])  # "<file>:<line>", lazily
                where_q = f"question {qid!r}"
                if qid in seen:
                    if duplicate_ids == "error":
                        raise DataError(f"{at}: {where_q}: duplicate question id")
                    seen[qid] += 1
                    qid = f"{qid}#{seen[qid]}"
                    renamed += 1
                    where_q = f"question {qid!r}"
                seen[qid] = seen.get(qid, 0) + 1
                question = _field(qa, "question", str, where_q, at)
                impossible = qa.get("is_impossible", False)
                if impossible is not False:
                    if version == "1.1" and impossible:
                        raise DataError(f"{at}: {where_q}: unanswerable (SQuAD 2.0 "
                                        f"'is_impossible'); this is read as SQuAD v1.1 (pass "
                                        f"version='2.0' to read SQuAD 2.0)")
                    if version == "2.0":
                        impossible = _field(qa, "is_impossible", bool, where_q, at)
                if version == "2.0" and impossible:
                    answers_field = qa.get("answers", [])
                    if answers_field != []:
                        raise DataError(f"{at}: {where_q}: 'is_impossible' is true but "
                                        f"'answers' is {answers_field!r}, expected [] (the "
                                        f"answers of an unanswerable question go in "
                                        f"'plausible_answers')")
                    examples.append(QAExample(qid, question, context, (), title,
                                              paragraph_index, is_impossible=True,
                                              language=language))
                    continue
                raw_answers = _field(qa, "answers", list, where_q, at)
                if not raw_answers and not allow_unanswered:
                    raise DataError(f"{at}: {where_q}: no answers (a test file with its "
                                    f"annotations removed? pass allow_unanswered=True)")
                answers = []
                for i, answer in enumerate(raw_answers):
                    where_a = f"{where_q} answer {i}"
                    answer_text = _field(answer, "text", str, where_a, at)
                    start = _field(answer, "answer_start", int, where_a, at)
                    if not answer_text:
                        if not allow_unanswered:
                            raise DataError(
                                f"{at}: {where_a}: empty answer text (a test file of "
                                f"XTREME's download, whose answers it replaces by "
                                f"{{'answer_start': 0, 'text': ''}}? pass allow_unanswered=True "
                                f"to read it without answers)")
                        continue
                    found = context[start:start + len(answer_text)] if start >= 0 else None
                    if found != answer_text:
                        if mismatches == "error":
                            what = (f"context[{start}:{start + len(answer_text)}] is {found!r}"
                                    if found is not None else f"answer_start {start} is negative")
                            raise DataError(f"{at}: {where_a}: text {answer_text!r} but {what}")
                        _count(skipped, SKIP_ANSWER_MISMATCH)
                        continue
                    answers.append((answer_text, start))
                if not answers and any(a.get("text") for a in raw_answers):
                    _count(skipped, SKIP_NO_VALID_ANSWER)
                    continue
                examples.append(QAExample(qid, question, context, tuple(answers), title,
                                          paragraph_index, language=language))
            paragraph_index += 1
    if renamed:
        log.info("%s: %d repeated question ids renamed <id>#<n>", path, renamed)
    return _finish(path, language, examples, skipped, "questions")


# --------------------------------------------------------------------------- Tatoeba


def tatoeba_files(data_dir: str | os.PathLike, language: str) -> tuple[pathlib.Path, pathlib.Path]:
    """(source file, English file) of ``language`` (an XTREME ISO 639-1 code) in the LASER
    layout: ``<data_dir>/tatoeba.<xxx>-eng.<xxx>`` and ``<data_dir>/tatoeba.<xxx>-eng.eng``."""
    code = TATOEBA_LANGUAGES.get(language)
    if code is None:
        raise DataError(f"Tatoeba has no language {language!r} (XTREME's ISO 639-1 codes: "
                        f"{' '.join(TATOEBA_LANGUAGES)})")
    data_dir = pathlib.Path(data_dir)
    return (data_dir / f"tatoeba.{code}-eng.{code}", data_dir / f"tatoeba.{code}-eng.eng")


def _sentences(path: pathlib.Path) -> list[str]:
    sentences = []
    for lineno, line in _lines(path):
        if not line.strip():
            raise DataError(f"{path}:{lineno}: empty line (one sentence a line expected)")
        sentences.append(line)
    return sentences


def _aligned(source_path: str | os.PathLike,
             english_path: str | os.PathLike) -> tuple[pathlib.Path, pathlib.Path, list[str],
                                                      list[str]]:
    source_path, english_path = _check_file(source_path), _check_file(english_path)
    source, english = _sentences(source_path), _sentences(english_path)
    if len(source) != len(english):
        raise DataError(f"{source_path} has {len(source)} lines but {english_path} has "
                        f"{len(english)}; the two sides must be line-aligned")
    if not source:
        raise DataError(f"{source_path}: no sentences")
    return source_path, english_path, source, english


def read_tatoeba(data_dir: str | os.PathLike, language: str) -> tuple[list[str], list[str]]:
    """(sentences in ``language``, their English translations): line i of one translates
    line i of the other. Line endings are removed, nothing else."""
    _, _, source, english = _aligned(*tatoeba_files(data_dir, language))
    return source, english


def read_tatoeba_files(source_path: str | os.PathLike, english_path: str | os.PathLike,
                       language: str) -> ReadResult[TranslationPair]:
    """The line-aligned pairs of two Tatoeba files as a :class:`ReadResult` (what
    :func:`xstilts_jax.tasks.layout.read` returns), same checks as :func:`read_tatoeba`."""
    source_path, english_path, source, english = _aligned(source_path, english_path)
    pairs = tuple(TranslationPair(s, e, f"{source_path.name}:{i}")
                  for i, (s, e) in enumerate(zip(source, english), 1))
    return ReadResult(source_path, language, pairs, {}, (source_path, english_path))


# --------------------------------------------------------------------------- BUCC 2018

# XTREME's split names -> the BUCC 2018 release's: download_data.sh renames the release's
# "sample" files to dev and its "training" files to test (BUCC's own test data is not used).
BUCC_SPLITS = {"dev": "sample", "test": "training"}


def bucc_candidates(bucc_dir: str | os.PathLike, language: str,
                    split: str) -> list[tuple[pathlib.Path, pathlib.Path, pathlib.Path]]:
    """(source, English, gold) files of ``language``-en ``split`` in each known layout, in
    the order :func:`read_bucc` tries them, under ``bucc_dir`` (XTREME's ``download/bucc2018``):

    - XTREME: ``<lg>-en.<split>.{<lg>,en,gold}``. Its download_data.sh deletes
      ``<lg>-en.test.gold``, so XTREME's test split has no gold here.
    - BUCC 2018 release tarballs (``bucc2018-<lg>-en.{sample,training}-gold.tar.bz2``):
      ``<lg>-en/<lg>-en.{sample,training}.{<lg>,en,gold}``.

    For ``test`` the release comes first (it has the gold), for ``dev`` XTREME's files.
    """
    if language not in BUCC_LANGUAGES:
        raise DataError(f"BUCC 2018 has no language {language!r}; its languages: "
                        f"{' '.join(BUCC_LANGUAGES)}")
    if split not in BUCC_SPLITS:
        raise DataError(f"BUCC 2018 has no split {split!r}; its splits: {', '.join(BUCC_SPLITS)}")
    bucc_dir = pathlib.Path(bucc_dir)
    pair = f"{language}-en"
    xtreme = tuple(bucc_dir / f"{pair}.{split}.{ext}" for ext in (language, "en", "gold"))
    release = tuple(bucc_dir / pair / f"{pair}.{BUCC_SPLITS[split]}.{ext}"
                    for ext in (language, "en", "gold"))
    return [release, xtreme] if split == "test" else [xtreme, release]


def _bucc_sentences(path: pathlib.Path, prefix: str) -> dict[str, str]:
    sentences: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated columns, expected 2 "
                            f"(id, sentence)")
        sid, sentence = fields
        if not sid.startswith(prefix):
            raise DataError(f"{path}:{lineno}: id {sid!r} does not start with {prefix!r}")
        if not sentence.strip():
            raise DataError(f"{path}:{lineno}: empty sentence")
        if sid in sentences:
            raise DataError(f"{path}:{lineno}: duplicate id {sid!r} (first on line "
                            f"{first_line[sid]})")
        sentences[sid] = sentence
        first_line[sid] = lineno
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def read_bucc_files(source_path: str | os.PathLike, english_path: str | os.PathLike,
                    gold_path: str | os.PathLike | None, language: str) -> BuccData:
    """The sentences of a BUCC 2018 pair and, unless ``gold_path`` is None, its gold pairs."""
    source_path, english_path = _check_file(source_path), _check_file(english_path)
    source = _bucc_sentences(source_path, f"{language}-")
    english = _bucc_sentences(english_path, "en-")
    if gold_path is None:
        return BuccData(language, source, english, None, (source_path, english_path))
    gold_path = _check_file(gold_path)
    gold: dict[tuple[str, str], int] = {}
    for lineno, line in _lines(gold_path):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{gold_path}:{lineno}: {len(fields)} tab-separated columns, "
                            f"expected 2 ({language} id, en id)")
        for sid, side, path in ((fields[0], source, source_path),
                                (fields[1], english, english_path)):
            if sid not in side:
                raise DataError(f"{gold_path}:{lineno}: id {sid!r} is not in {path}")
        pair = (fields[0], fields[1])
        if pair in gold:
            raise DataError(f"{gold_path}:{lineno}: pair {fields[0]} {fields[1]} repeats "
                            f"line {gold[pair]}")
        gold[pair] = lineno
    if not gold:
        raise DataError(f"{gold_path}: no gold pairs")
    return BuccData(language, source, english, tuple(gold), (source_path, english_path,
                                                              gold_path))


def read_bucc(bucc_dir: str | os.PathLike, language: str, split: str, *,
              require_gold: bool = True) -> BuccData:
    """BUCC 2018 ``language``-en ``split`` ("dev" or "test", XTREME's names) from the first
    layout of :func:`bucc_candidates` whose sentence files are present. Without a gold file
    this is an error unless ``require_gold=False`` (then ``gold`` is None)."""
    candidates = bucc_candidates(bucc_dir, language, split)
    for source_path, english_path, gold_path in candidates:
        if source_path.is_file() and english_path.is_file():
            if not gold_path.is_file():
                if require_gold:
                    why = (" (XTREME's download_data.sh deletes its test gold; the release "
                           f"has it as {candidates[0][2]})"
                           if split == "test" and gold_path != candidates[0][2] else "")
                    raise DataError(f"{gold_path}: no such file{why}; pass require_gold=False "
                                    f"to read the sentences only")
                gold_path = None
            return read_bucc_files(source_path, english_path, gold_path, language)
    tried = "; ".join(f"{s} and {e}" for s, e, _ in candidates)
    raise DataError(f"BUCC 2018 {language}-en {split}: no sentence files; expected {tried}")


# --------------------------------------------------------------------------- tagging


def read_conllu(path: str | os.PathLike, language: str, *,
                drop_textless: bool = False) -> ReadResult[TaggedSentence]:
    """The sentences of a CoNLL-U file: word forms (column 2) and UPOS tags (column 4).
    ``drop_textless``: drop sentences without their text, as XTREME does (module docstring)."""
    path = _check_file(path)
    examples: list[TaggedSentence] = []
    skipped: dict[str, int] = {}
    _read_conllu_into(path, drop_textless, examples, skipped)
    return _finish(path, language, examples, skipped, "sentences")


def _distinct_files(paths: Sequence[str | os.PathLike], caller: str) -> list[pathlib.Path]:
    """Existing files with distinct names (guids name the file), at least one."""
    paths = [_check_file(p) for p in paths]
    if not paths:
        raise ValueError(f"{caller} needs at least one file")
    names: dict[str, pathlib.Path] = {}
    for path in paths:
        if path.name in names:
            raise DataError(f"{path} and {names[path.name]} have the same file name; the "
                            f"sentence guids (<file name>:<line>) would not be unique")
        names[path.name] = path
    return paths


def read_conllu_files(paths: Sequence[str | os.PathLike], language: str, *,
                      drop_textless: bool = False) -> ReadResult[TaggedSentence]:
    """Several CoNLL-U files read as one, in the order given: a language's UD treebanks, which
    XTREME concatenates. A file may contribute nothing (a treebank without text, with
    ``drop_textless``), the whole may not. Guids name the file, so file names must differ;
    ``path`` is the files' common folder and ``files`` lists them."""
    paths = _distinct_files(paths, "read_conllu_files")
    examples: list[TaggedSentence] = []
    skipped: dict[str, int] = {}
    for path in paths:
        before = dict(skipped)
        _read_conllu_into(path, drop_textless, examples, skipped)
        dropped = skipped.get(SKIP_NO_TEXT, 0) - before.get(SKIP_NO_TEXT, 0)
        if dropped:
            log.warning("%s: skipped %d: %s", path, dropped, SKIP_NO_TEXT)
    folder = pathlib.Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0]
    if not examples:
        counts = "; ".join(f"{n} skipped: {r}" for r, n in skipped.items() if r == SKIP_NO_TEXT)
        raise DataError(f"no sentences in {', '.join(map(str, paths))}"
                        + (f" ({counts})" if counts else ""))
    return ReadResult(folder, language, tuple(examples), skipped, tuple(paths))


def _read_conllu_into(path: pathlib.Path, drop_textless: bool, examples: list[TaggedSentence],
                      skipped: dict[str, int]) -> None:
    words: list[str] = []
    tags: list[str] = []
    first = 0

    def close() -> None:
        if words:
            blanks = words.count("_")
            if drop_textless and blanks and blanks >= len(words) - 1:
                _count(skipped, SKIP_NO_TEXT)
            else:
                examples.append(TaggedSentence(tuple(words), tuple(tags),
                                               f"{path.name}:{first}"))
            words.clear()
            tags.clear()

    for lineno, line in _lines(path):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            _count(skipped, SKIP_COMMENT)
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated columns, expected 10 "
                            f"(CoNLL-U: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)")
        token_id = fields[0]
        if token_id.isdigit():
            if int(token_id) != len(words) + 1:
                raise DataError(f"{path}:{lineno}: word ID {token_id}, expected {len(words) + 1} "
                                f"(IDs run 1, 2, ... within a sentence)")
        else:
            start, sep, end = token_id.partition("-" if "-" in token_id else ".")
            if sep and start.isdigit() and end.isdigit():
                _count(skipped, SKIP_MULTIWORD if sep == "-" else SKIP_EMPTY_NODE)
                continue
            raise DataError(f"{path}:{lineno}: ID {token_id!r} is not a word ID (N), a "
                            f"multiword range (N-M) or an empty node (N.M)")
        if fields[3] not in UPOS_TAGS:
            raise DataError(f"{path}:{lineno}: UPOS {fields[3]!r} is not one of "
                            f"{' '.join(UPOS_TAGS)}")
        if not words:
            first = lineno
        words.append(fields[1])
        tags.append(fields[3])
    close()


def _read_word_tag_blocks(path: pathlib.Path, language: str,
                          parse: Callable[[int, str, str], str], *,
                          columns: str = "word, tag") -> ReadResult[TaggedSentence]:
    """Sentences of a ``word<TAB>tag`` file, blank lines between them; ``parse(lineno, word,
    tag)`` checks a line and returns the word to keep (or raises DataError)."""
    examples: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0
    for lineno, line in _lines(path):
        if not line.strip():
            if words:
                examples.append(TaggedSentence(tuple(words), tuple(tags), f"{path.name}:{first}"))
                words, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            hint = (" (a test file without labels? only labelled files are read)"
                    if len(fields) == 1 and columns == "word, tag" else "")
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated columns, expected 2 "
                            f"({columns}){hint}")
        word = parse(lineno, *fields)
        if not words:
            first = lineno
        words.append(word)
        tags.append(fields[1])
    if words:
        examples.append(TaggedSentence(tuple(words), tuple(tags), f"{path.name}:{first}"))
    return _finish(path, language, examples, {}, "sentences")


def read_tagging_tsv(path: str | os.PathLike, language: str, *,
                     labels: Sequence[str] | None = None) -> ReadResult[TaggedSentence]:
    """XTREME's processed tagging files (UDPOS, PAN-X): ``word<TAB>tag`` a line, a blank line
    (or several) between sentences. With ``labels``, every tag must be one of them."""
    path = _check_file(path)
    known = None if labels is None else frozenset(labels)

    def parse(lineno: int, word: str, tag: str) -> str:
        if not word or not tag:
            raise DataError(f"{path}:{lineno}: empty {'word' if not word else 'tag'}")
        if known is not None and tag not in known:
            raise DataError(f"{path}:{lineno}: tag {tag!r} is not one of {' '.join(labels)}")
        return word

    return _read_word_tag_blocks(path, language, parse)


def read_panx_raw(path: str | os.PathLike, language: str) -> ReadResult[TaggedSentence]:
    """A raw PAN-X / WikiANN split file of Rahimi et al. (``train``, ``dev`` or ``test`` in
    ``<lang>.tar.gz``): ``<lang>:<word><TAB><tag>`` a line, blank lines between sentences.
    Exactly the ``<lang>:`` prefix is removed (the rest of the word may hold more colons)."""
    path = _check_file(path)
    prefix = f"{language}:"
    known = frozenset(PANX_LABELS)

    def parse(lineno: int, token: str, tag: str) -> str:
        if not token.startswith(prefix):
            raise DataError(f"{path}:{lineno}: {token!r} does not start with {prefix!r} (raw "
                            f"PAN-X lines are <lang>:<word><TAB><tag>; wrong language?)")
        word = token[len(prefix):]
        if not word.strip():
            raise DataError(f"{path}:{lineno}: empty word after {prefix!r}")
        if tag not in known:
            raise DataError(f"{path}:{lineno}: tag {tag!r} is not one of {' '.join(PANX_LABELS)}")
        return word

    return _read_word_tag_blocks(path, language, parse, columns=f"{language}:word, tag")


__all__ = ["BUCC_LANGUAGES", "BUCC_SPLITS", "MLQA_LANGUAGES", "PANX_LABELS", "PANX_LANGUAGES",
           "SKIP_NO_TEXT", "SQUAD_VERSIONS", "TATOEBA_LANGUAGES", "TYDIQA_LANGUAGES",
           "TYDIQA_LANGUAGE_NAMES", "UDPOS_LANGUAGES", "UPOS_TAGS", "XQUAD_LANGUAGES",
           "BuccData", "DataError", "QAExample", "ReadResult", "TaggedSentence",
           "TranslationPair", "bucc_candidates", "read_bucc", "read_bucc_files", "read_conllu",
           "read_conllu_files", "read_panx_raw", "read_squad", "read_tagging_tsv",
           "read_tatoeba", "read_tatoeba_files", "tatoeba_files"]
