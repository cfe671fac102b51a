"""Token-per-line tagging files: ``word<TAB>tag`` a line, blank lines between sentences.

- XTREME's processed UDPOS and PAN-X files (:func:`read_tagging_tsv`); a one-column line is
  what XTREME's download leaves of a test file (labels stripped), refused with that hint.
- The raw PAN-X / WikiANN split files of Rahimi et al. (:func:`read_panx_raw`): lines
  ``<lang>:<word><TAB><tag>`` with exactly the expected ``<lang>:`` prefix (XTREME's
  ``panx_preprocess`` cuts at the first ``:`` and silently drops lines without one; here that is
  an error naming the line) and a tag from :data:`PANX_LABELS`.
- Any other format of this shape (CCG supertag exports) reads through
  :func:`read_word_tag_blocks` with its own line check.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Sequence

from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.io import DataError, ReadResult, Skips, check_file, read_lines

# PAN-X's IOB2 tags in XTREME's label order (scripts/preprocess_panx.sh writes labels.txt as
# the sorted unique tags).
PANX_LABELS = ("B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O")


def read_word_tag_blocks(path: pathlib.Path, language: str,
                          parse: Callable[[int, str, str], str], *,
                          columns: str = "word, tag") -> ReadResult[TaggedSentence]:
    """Sentences of a ``word<TAB>tag`` file, blank lines between them; ``parse(lineno, word,
    tag)`` checks a line and returns the word to keep (or raises DataError)."""
    examples: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0
    for lineno, line in read_lines(path):
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
    return Skips().finish(path, language, examples, "sentences")


def read_tagging_tsv(path: str | os.PathLike, language: str, *,
                     labels: Sequence[str] | None = None) -> ReadResult[TaggedSentence]:
    """XTREME's processed tagging files (UDPOS, PAN-X): ``word<TAB>tag`` a line, a blank line
    (or several) between sentences. With ``labels``, every tag must be one of them."""
    path = check_file(path)
    known = None if labels is None else frozenset(labels)

    def parse(lineno: int, word: str, tag: str) -> str:
        if not word or not tag:
            raise DataError(f"{path}:{lineno}: empty {'word' if not word else 'tag'}")
        if known is not None and tag not in known:
            raise DataError(f"{path}:{lineno}: tag {tag!r} is not one of {' '.join(labels)}")
        return word

    return read_word_tag_blocks(path, language, parse)


def read_panx_raw(path: str | os.PathLike, language: str) -> ReadResult[TaggedSentence]:
    """A raw PAN-X / WikiANN split file of Rahimi et al. (``train``, ``dev`` or ``test`` in
    ``<lang>.tar.gz``): ``<lang>:<word><TAB><tag>`` a line, blank lines between sentences.
    Exactly the ``<lang>:`` prefix is removed (the rest of the word may hold more colons)."""
    path = check_file(path)
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

    return read_word_tag_blocks(path, language, parse, columns=f"{language}:word, tag")


__all__ = ["PANX_LABELS", "read_panx_raw", "read_tagging_tsv", "read_word_tag_blocks"]
