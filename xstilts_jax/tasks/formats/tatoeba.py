"""Tatoeba, LASER's layout: ``tatoeba.<xxx>-eng.<xxx>`` and ``tatoeba.<xxx>-eng.eng``, line i of
one file translating line i of the other. The two sides must have the same number of lines;
an empty line is an error (it can only be damage: the LASER files have none)."""

from __future__ import annotations

import os
import pathlib

from xstilts_jax.tasks.examples import TranslationPair
from xstilts_jax.tasks.io import DataError, ReadResult, check_file, read_lines


def _sentences(path: pathlib.Path) -> list[str]:
    sentences = []
    for lineno, line in read_lines(path):
        if not line.strip():
            raise DataError(f"{path}:{lineno}: empty line (one sentence a line expected)")
        sentences.append(line)
    return sentences


def read_tatoeba_files(source_path: str | os.PathLike, english_path: str | os.PathLike,
                       language: str) -> ReadResult[TranslationPair]:
    """The line-aligned pairs of two Tatoeba files: line endings are removed, nothing else."""
    source_path, english_path = check_file(source_path), check_file(english_path)
    source, english = _sentences(source_path), _sentences(english_path)
    if len(source) != len(english):
        raise DataError(f"{source_path} has {len(source)} lines but {english_path} has "
                        f"{len(english)}; the two sides must be line-aligned")
    if not source:
        raise DataError(f"{source_path}: no sentences")
    pairs = tuple(TranslationPair(s, e, f"{source_path.name}:{i}")
                  for i, (s, e) in enumerate(zip(source, english), 1))
    return ReadResult(path=source_path, language=language, examples=pairs,
                      files=(source_path, english_path))


__all__ = ["read_tatoeba_files"]
