"""BUCC 2018: sentence files ``<id><TAB><sentence>`` and gold files ``<source id><TAB><English id>``.

Ids are ``<lang>-000000001``-style on the source side and ``en-...`` on the English side,
unique per file, sentences non-empty; gold pairs name ids present in the sentence files and no
pair twice. XTREME's dev/test are the release's sample/training data (its download fetches only
their ``*-gold`` tarballs, and deletes ``*.test.gold``); where each lies is the task's spec.
"""

from __future__ import annotations

import os
import pathlib

from xstilts_jax.tasks.examples import BuccData
from xstilts_jax.tasks.io import DataError, check_file, read_lines


def _bucc_sentences(path: pathlib.Path, prefix: str) -> dict[str, str]:
    sentences: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in read_lines(path):
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
    source_path, english_path = check_file(source_path), check_file(english_path)
    source = _bucc_sentences(source_path, f"{language}-")
    english = _bucc_sentences(english_path, "en-")
    if gold_path is None:
        return BuccData(language, source, english, None, (source_path, english_path))
    gold_path = check_file(gold_path)
    gold: dict[tuple[str, str], int] = {}
    for lineno, line in read_lines(gold_path):
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


__all__ = ["read_bucc_files"]
