"""Readers for the raw formats of XTREME's QA, retrieval and tagging tasks (pure Python, no JAX).

- SQuAD v1.1 JSON (XQuAD, MLQA, TyDiQA-GoldP, SQuAD): :func:`read_squad`.
- Tatoeba, LASER layout (``tatoeba.<xxx>-eng.<xxx>`` / ``tatoeba.<xxx>-eng.eng``):
  :func:`read_tatoeba`, with :data:`TATOEBA_LANGUAGES` mapping XTREME's ISO 639-1 codes to
  the ISO 639-3 codes of the file names.
- Universal Dependencies CoNLL-U (UDPOS): :func:`read_conllu`; XTREME's processed
  token-per-line form (``word<TAB>tag``, blank line between sentences): :func:`read_tagging_tsv`.

As in :mod:`xstilts_jax.tasks.classification`, bad input raises :class:`DataError` naming the
file (and line, or question id) and saying what was expected; what is skipped on purpose is
counted by reason in ``ReadResult.skipped`` and logged. ``read_squad`` and the tagging readers
return a :class:`ReadResult`, a read-only sequence of the examples (``len``, indexing and
iteration work as on the list) that also carries the path, language and skip counts.

Policies decided here:

- SQuAD answers. Every answer's ``text`` must equal ``context[answer_start:answer_start +
  len(text)]``; the 12 XQuAD files have no mismatch (checked by the tests), and SQuAD v1.1's
  offsets are character offsets into the same context string. By default
  (``mismatches="error"``) a mismatch raises ``DataError`` naming the file, question id and
  both strings. ``mismatches="skip"`` drops such answers instead (a question left with none
  is dropped), counted under :data:`SKIP_ANSWER_MISMATCH` / :data:`SKIP_NO_VALID_ANSWER` --
  what XTREME's training code does with answers it "could not find". Questions with no answers
  at all (test files with annotations removed) are refused unless ``allow_unanswered=True``;
  SQuAD 2.0 ``is_impossible`` questions are refused (this is a v1.1 reader). Question ids must
  be unique in a file (predictions are keyed by id).
- Tatoeba. The two sides must have the same number of lines; an empty line is an error
  (it can only be damage: the LASER files have none).
- CoNLL-U. Comment lines (``#``), multiword-token ranges (``1-2``) and empty nodes (``1.1``)
  are skipped and counted; every other non-blank line must have 10 tab-separated columns, an
  ID that continues the sentence (1, 2, ...) and a UPOS tag (column 4) from :data:`UPOS_TAGS`.
  Unlike XTREME's ``udpos_preprocess`` no sentence is dropped (XTREME drops sentences whose
  words are all ``_``, i.e. treebanks distributed without their text).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import logging
import os
import pathlib
from typing import Generic, Iterator, Literal, Sequence, TypeVar

from xstilts_jax.tasks.classification import DataError, _lines

log = logging.getLogger(__name__)

T = TypeVar("T")

SKIP_ANSWER_MISMATCH = "answer text differs from the context at answer_start"
SKIP_NO_VALID_ANSWER = "question with no answer matching its context"
SKIP_COMMENT = "comment line"
SKIP_MULTIWORD = "multiword token range"
SKIP_EMPTY_NODE = "empty node"

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


@dataclasses.dataclass(frozen=True)
class ReadResult(collections.abc.Sequence, Generic[T]):
    """The examples of one file (a read-only sequence of them), and what was skipped
    (reason -> count)."""

    path: pathlib.Path
    language: str
    examples: tuple[T, ...]
    skipped: dict[str, int]

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


@dataclasses.dataclass(frozen=True, slots=True)
class TaggedSentence:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    guid: str = ""  # "<file name>:<line of its first word>"


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
        raise DataError(f"{path}: no {what}")
    return ReadResult(path, language, tuple(examples), dict(skipped))


# --------------------------------------------------------------------------- SQuAD v1.1


def _field(record, key: str, kind: type, where: str, path: pathlib.Path):
    if not isinstance(record, dict):
        raise DataError(f"{path}: {where}: expected a JSON object, got {type(record).__name__}")
    value = record.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problem = "missing" if key not in record else f"a {type(value).__name__}"
        expected = {list: "a list", int: "an integer"}.get(kind, "a string")
        raise DataError(f"{path}: {where}: field {key!r} is {problem}, expected {expected}")
    return value


def read_squad(path: str | os.PathLike, language: str, *,
               mismatches: Literal["error", "skip"] = "error",
               allow_unanswered: bool = False) -> ReadResult[QAExample]:
    """Every question of a SQuAD v1.1 JSON file, in file order (see the module docstring for
    the answer checks)."""
    if mismatches not in ("error", "skip"):
        raise ValueError(f"mismatches must be 'error' or 'skip', not {mismatches!r}")
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
    articles = _field(document, "data", list, "top level", path)
    examples: list[QAExample] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
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
                qid = _field(qa, "id", str, f"{where}.qas[{q}]", path)
                where_q = f"question {qid!r}"
                if qid in seen:
                    raise DataError(f"{path}: {where_q}: duplicate question id")
                seen.add(qid)
                question = _field(qa, "question", str, where_q, path)
                if qa.get("is_impossible"):
                    raise DataError(f"{path}: {where_q}: unanswerable (SQuAD 2.0 "
                                    f"'is_impossible'); this reader reads SQuAD v1.1")
                raw_answers = _field(qa, "answers", list, where_q, path)
                if not raw_answers and not allow_unanswered:
                    raise DataError(f"{path}: {where_q}: no answers (a test file with its "
                                    f"annotations removed? pass allow_unanswered=True)")
                answers = []
                for i, answer in enumerate(raw_answers):
                    where_a = f"{where_q} answer {i}"
                    answer_text = _field(answer, "text", str, where_a, path)
                    start = _field(answer, "answer_start", int, where_a, path)
                    found = context[start:start + len(answer_text)] if start >= 0 else None
                    if found != answer_text:
                        if mismatches == "error":
                            at = (f"context[{start}:{start + len(answer_text)}] is {found!r}"
                                  if found is not None else f"answer_start {start} is negative")
                            raise DataError(f"{path}: {where_a}: text {answer_text!r} but {at}")
                        _count(skipped, SKIP_ANSWER_MISMATCH)
                        continue
                    answers.append((answer_text, start))
                if raw_answers and not answers:
                    _count(skipped, SKIP_NO_VALID_ANSWER)
                    continue
                examples.append(QAExample(qid, question, context, tuple(answers), title,
                                          paragraph_index))
            paragraph_index += 1
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


def read_tatoeba(data_dir: str | os.PathLike, language: str) -> tuple[list[str], list[str]]:
    """(sentences in ``language``, their English translations): line i of one translates
    line i of the other. Line endings are removed, nothing else."""
    source_path, english_path = tatoeba_files(data_dir, language)
    for path in (source_path, english_path):
        _check_file(path)
    source, english = _sentences(source_path), _sentences(english_path)
    if len(source) != len(english):
        raise DataError(f"{source_path} has {len(source)} lines but {english_path} has "
                        f"{len(english)}; the two sides must be line-aligned")
    if not source:
        raise DataError(f"{source_path}: no sentences")
    return source, english


# --------------------------------------------------------------------------- tagging


def read_conllu(path: str | os.PathLike, language: str) -> ReadResult[TaggedSentence]:
    """The sentences of a CoNLL-U file: word forms (column 2) and UPOS tags (column 4)."""
    path = _check_file(path)
    examples: list[TaggedSentence] = []
    skipped: dict[str, int] = {}
    words: list[str] = []
    tags: list[str] = []
    first = 0

    def close() -> None:
        if words:
            examples.append(TaggedSentence(tuple(words), tuple(tags), f"{path.name}:{first}"))
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
    return _finish(path, language, examples, skipped, "sentences")


def read_tagging_tsv(path: str | os.PathLike, language: str, *,
                     labels: Sequence[str] | None = None) -> ReadResult[TaggedSentence]:
    """XTREME's processed tagging files (UDPOS, PAN-X): ``word<TAB>tag`` a line, a blank line
    (or several) between sentences. With ``labels``, every tag must be one of them."""
    path = _check_file(path)
    known = None if labels is None else frozenset(labels)
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
                    if len(fields) == 1 else "")
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated columns, expected 2 "
                            f"(word, tag){hint}")
        word, tag = fields
        if not word or not tag:
            raise DataError(f"{path}:{lineno}: empty {'word' if not word else 'tag'}")
        if known is not None and tag not in known:
            raise DataError(f"{path}:{lineno}: tag {tag!r} is not one of {' '.join(labels)}")
        if not words:
            first = lineno
        words.append(word)
        tags.append(tag)
    if words:
        examples.append(TaggedSentence(tuple(words), tuple(tags), f"{path.name}:{first}"))
    return _finish(path, language, examples, {}, "sentences")


__all__ = ["TATOEBA_LANGUAGES", "UPOS_TAGS", "DataError", "QAExample", "ReadResult",
           "TaggedSentence", "read_conllu", "read_squad", "read_tagging_tsv", "read_tatoeba",
           "tatoeba_files"]
