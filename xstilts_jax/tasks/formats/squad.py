"""SQuAD JSON (v1.1 and 2.0): XQuAD, MLQA, TyDiQA-GoldP, SQuAD, XTREME's translate-train SQuAD.

Policies (``read_squad``):

- Every answer's ``text`` must equal ``context[answer_start:answer_start + len(text)]``; the 12
  XQuAD files have no mismatch (checked by the tests), and SQuAD v1.1's offsets are character
  offsets into the same context string. By default (``mismatches="error"``) a mismatch raises
  ``DataError`` naming the file, the line of the question's ``"id"`` in the JSON text, the
  question id and both strings (every error about one question names ``<file>:<line>`` so: the
  line is found by scanning the raw text's JSON string tokens for an ``"id"`` key whose value
  decodes to the id, whatever the whitespace and escaping; see ``_IdLines``).
  ``mismatches="skip"`` drops such answers instead (a question left with none is dropped),
  counted under :data:`SKIP_ANSWER_MISMATCH` / :data:`SKIP_NO_VALID_ANSWER` -- what XTREME's
  training code does with answers it "could not find".
- Questions with no answers at all (test files with annotations removed) are refused unless
  ``allow_unanswered=True``. An answer with empty text is what XTREME's
  ``remove_qa_test_annotations`` leaves in the test files of its download (every answer
  replaced by ``{"answer_start": 0, "text": ""}``): it is refused with that hint, or with
  ``allow_unanswered=True`` read as no answer.
- SQuAD 2.0 ``is_impossible`` questions are refused by default (``version="1.1"``, what every
  XTREME file is); with ``version="2.0"`` they are read as ``answers=()``,
  ``is_impossible=True``, their ``plausible_answers`` ignored (HF's ``SquadV2Processor`` and the
  official v2.0 evaluation ignore them too), and one that also has answers is refused as
  contradictory.
- Question ids must be unique in a file (predictions are keyed by id);
  ``duplicate_ids="suffix"`` renames repeats ``<id>#2``, ``<id>#3``, ... for XTREME's
  per-language TyDiQA training files, whose ids keep only the last ``-`` part of the original
  ids and so repeat.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import os
import pathlib
import re
from typing import Literal

from xstilts_jax.tasks.examples import QAExample
from xstilts_jax.tasks.io import DataError, ReadResult, Skips, check_file

log = logging.getLogger(__name__)

SKIP_ANSWER_MISMATCH = "answer text differs from the context at answer_start"
SKIP_NO_VALID_ANSWER = "question with no answer matching its context"

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
    path = check_file(path)
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
    skips = Skips()
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
                        skips.count(SKIP_ANSWER_MISMATCH)
                        continue
                    answers.append((answer_text, start))
                if not answers and any(a.get("text") for a in raw_answers):
                    skips.count(SKIP_NO_VALID_ANSWER)
                    continue
                examples.append(QAExample(qid, question, context, tuple(answers), title,
                                          paragraph_index, language=language))
            paragraph_index += 1
    if renamed:
        log.info("%s: %d repeated question ids renamed <id>#<n>", path, renamed)
    return skips.finish(path, language, examples, "questions")


__all__ = ["SKIP_ANSWER_MISMATCH", "SKIP_NO_VALID_ANSWER", "SQUAD_VERSIONS", "read_squad"]
