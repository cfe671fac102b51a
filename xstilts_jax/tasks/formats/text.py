"""Plain multilingual text for continued masked-LM (the paper's alternative (i)): one UTF-8 file
``<lang>.txt`` per language, one sentence or document a line (a Wikipedia/CC-100 dump cut into
lines)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

from xstilts_jax.tasks.io import SKIP_BLANK_LINE, DataError, read_lines


@dataclasses.dataclass(frozen=True)
class TextCorpus:
    """Plain text of several languages: ``lines[lang]`` in file order, and per file what was
    skipped (blank lines), for the run's report."""

    lines: dict[str, list[str]]
    files: dict[str, pathlib.Path]
    skipped: dict[str, dict[str, int]]


def read_text_corpus(directory: str | os.PathLike, languages: Sequence[str]) -> TextCorpus:
    """``<directory>/<lang>.txt`` for every language: UTF-8, one sentence or document a line
    (a Wikipedia/CC-100 dump cut into lines). Blank lines are skipped and counted; a missing
    file, an empty one or bad UTF-8 is a DataError naming the file (and line)."""
    directory = pathlib.Path(directory)
    if not languages:
        raise DataError(f"{directory}: no languages given for the MLM text")
    lines, files, skipped = {}, {}, {}
    for lang in languages:
        path = directory / f"{lang}.txt"
        if not path.is_file():
            raise DataError(f"{path}: no such file (multilingual MLM text of {lang!r}: one "
                            f"sentence or document a line)")
        kept, blank = [], 0
        for _, text in read_lines(path):
            if text.strip():
                kept.append(text.strip())
            else:
                blank += 1
        if not kept:
            raise DataError(f"{path}: no text" + (f" ({blank} blank lines)" if blank else ""))
        lines[lang], files[lang] = kept, path
        skipped[lang] = {SKIP_BLANK_LINE: blank} if blank else {}
    return TextCorpus(lines, files, skipped)


__all__ = ["TextCorpus", "read_text_corpus"]
