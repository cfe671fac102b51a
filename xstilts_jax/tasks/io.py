"""The bottom of ``tasks/``: what every reader shares (pure Python, imports nothing above it).

- :class:`DataError`: input that cannot be read; the message names the file (and line, or
  example id) and says what was expected.
- :class:`ReadResult`: the examples of one split (a read-only sequence of them), the file(s)
  read, the language, and what was skipped on purpose (reason -> count).
- :func:`read_lines`: numbered lines of a UTF-8 file; bad UTF-8 is a DataError at its line.
- :class:`Skips`: counts what a reader skips, logs it and refuses an empty result.
- :func:`check_file`, :func:`distinct_files`: the checks before reading.

Nothing is dropped silently: a reader either reads an example, raises a DataError, or counts
the example under a reason that ends up in ``ReadResult.skipped`` (and in ``results.json``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import logging
import os
import pathlib
from typing import Generic, Iterable, Iterator, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SKIP_BLANK_LINE = "blank line"


class DataError(ValueError):
    """Task data that cannot be read; the message names the file (and line) and says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReadResult(collections.abc.Sequence, Generic[T]):
    """The examples of a split (a read-only sequence of them), and what was skipped.

    ``path`` is the file read or, for a split read from several files, their deepest common
    folder; ``files`` every file read, in order (empty given: ``(path,)``)."""

    path: pathlib.Path
    language: str
    examples: tuple[T, ...]
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    files: tuple[pathlib.Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))
        if not self.files:
            object.__setattr__(self, "files", (self.path,))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.examples)


def combine(results: Sequence[ReadResult]) -> ReadResult:
    """The results of a split's parts (read from several files or datasets), concatenated in
    order: every file, the skip counts added up, ``path`` their deepest common folder."""
    if not results:
        raise ValueError("no results to combine")
    if len(results) == 1:
        return results[0]
    files = tuple(f for r in results for f in r.files)
    skipped: dict[str, int] = {}
    for r in results:
        for reason, count in r.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return ReadResult(path=pathlib.Path(os.path.commonpath([os.fspath(f) for f in files])),
                      language=results[0].language,
                      examples=tuple(e for r in results for e in r.examples), skipped=skipped,
                      files=files)


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line ending) of a UTF-8 file (a BOM is
    allowed). Only b'\\n' ends a line, so a stray '\\r' or U+2028 inside a sentence does not
    split it; invalid UTF-8 is a DataError naming the line and byte."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte "
                                f"{e.start})") from None
            yield lineno, text.rstrip("\r\n")


class Skips:
    """What a reader skipped on purpose, by reason. ``quiet`` reasons (structure that is not
    data, such as CoNLL-U comments) are counted but neither logged nor quoted in errors."""

    def __init__(self, quiet: Iterable[str] = ()):
        self.counts: dict[str, int] = {}
        self.quiet = frozenset(quiet)

    def count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def __getitem__(self, reason: str) -> int:
        return self.counts.get(reason, 0)

    def loud(self) -> dict[str, int]:
        return {r: n for r, n in self.counts.items() if r not in self.quiet}

    def log(self, where) -> None:
        for reason, n in self.loud().items():
            log.warning("%s: skipped %d: %s", where, n, reason)

    def finish(self, path: pathlib.Path, language: str, examples: Sequence, what: str, *,
               files: Sequence[pathlib.Path] = (), where=None) -> ReadResult:
        """The result, after logging the skips; no example at all is a DataError naming
        ``where`` (default ``path``) and what was skipped."""
        where = path if where is None else where
        self.log(where)
        if not examples:
            counts = "; ".join(f"{n} skipped: {r}" for r, n in self.loud().items())
            raise DataError(f"{where}: no {what}" + (f" ({counts})" if counts else ""))
        return ReadResult(path=path, language=language, examples=tuple(examples),
                          skipped=dict(self.counts), files=tuple(files))


def check_file(path: str | os.PathLike) -> pathlib.Path:
    """``path`` as a Path, which must be an existing file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def distinct_files(paths: Sequence[str | os.PathLike], caller: str) -> list[pathlib.Path]:
    """Existing files with distinct names (guids name the file), at least one."""
    paths = [check_file(p) for p in paths]
    if not paths:
        raise ValueError(f"{caller} needs at least one file")
    names: dict[str, pathlib.Path] = {}
    for path in paths:
        if path.name in names:
            raise DataError(f"{path} and {names[path.name]} have the same file name; the "
                            f"sentence guids (<file name>:<line>) would not be unique")
        names[path.name] = path
    return paths


def common_folder(paths: Sequence[pathlib.Path]) -> pathlib.Path:
    """The file itself for one file, else the deepest folder holding them all."""
    return paths[0] if len(paths) == 1 else pathlib.Path(os.path.commonpath(paths))


__all__ = ["SKIP_BLANK_LINE", "DataError", "ReadResult", "Skips", "check_file", "combine",
           "common_folder", "distinct_files", "read_lines"]
