"""Universal Dependencies CoNLL-U (UDPOS): word forms (column 2) and UPOS tags (column 4).

Comment lines (``#``), multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped and
counted; every other non-blank line must have 10 tab-separated columns, an ID that continues the
sentence (1, 2, ...) and a UPOS tag (column 4) from :data:`UPOS_TAGS`. By default no sentence is
dropped; ``drop_textless=True`` drops what XTREME's ``udpos_preprocess`` drops: sentences whose
words are ``_`` (all of them, or all but one), i.e. treebanks distributed without their text
(UD v2.5: ar_nyuad, en_esl, fr_ftb, ja_bccwj), counted under :data:`SKIP_NO_TEXT`. Two other
XTREME steps are *not* copied: its CoNLL-U conversion (``conllu_to_conll.py
--replace_subtokens_with_fused_forms``) replaces a multiword token's words by the fused form
tagged with the POS of the span's head, where this reader keeps the syntactic words; and
``udpos_preprocess`` deletes spaces and U+200C inside words.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Sequence

from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.io import (DataError, ReadResult, Skips, check_file, common_folder,
                                  distinct_files, read_lines)

log = logging.getLogger(__name__)

SKIP_COMMENT = "comment line"
SKIP_MULTIWORD = "multiword token range"
SKIP_EMPTY_NODE = "empty node"
SKIP_NO_TEXT = "sentence without its words (forms '_'; treebank distributed without text)"
# CoNLL-U structure, not data: counted, never logged or quoted in errors.
_STRUCTURE = (SKIP_COMMENT, SKIP_MULTIWORD, SKIP_EMPTY_NODE)

# The 17 Universal POS tags (UD v2), XTREME's UDPOS label set.
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")


def read_conllu(path: str | os.PathLike, language: str, *,
                drop_textless: bool = False) -> ReadResult[TaggedSentence]:
    """The sentences of a CoNLL-U file: word forms (column 2) and UPOS tags (column 4).
    ``drop_textless``: drop sentences without their text, as XTREME does (module docstring)."""
    path = check_file(path)
    examples: list[TaggedSentence] = []
    skips = Skips(quiet=_STRUCTURE)
    _read_conllu_into(path, drop_textless, examples, skips)
    return skips.finish(path, language, examples, "sentences")


def read_conllu_files(paths: Sequence[str | os.PathLike], language: str, *,
                      drop_textless: bool = False) -> ReadResult[TaggedSentence]:
    """Several CoNLL-U files read as one, in the order given: a language's UD treebanks, which
    XTREME concatenates. A file may contribute nothing (a treebank without text, with
    ``drop_textless``), the whole may not. Guids name the file, so file names must differ;
    ``path`` is the files' common folder and ``files`` lists them."""
    paths = distinct_files(paths, "read_conllu_files")
    examples: list[TaggedSentence] = []
    skips = Skips(quiet=_STRUCTURE)
    for path in paths:
        before = skips[SKIP_NO_TEXT]
        _read_conllu_into(path, drop_textless, examples, skips)
        if skips[SKIP_NO_TEXT] > before:  # which treebank had no text, file by file
            log.warning("%s: skipped %d: %s", path, skips[SKIP_NO_TEXT] - before, SKIP_NO_TEXT)
    if not examples:
        counts = "; ".join(f"{n} skipped: {r}" for r, n in skips.loud().items())
        raise DataError(f"no sentences in {', '.join(map(str, paths))}"
                        + (f" ({counts})" if counts else ""))
    return ReadResult(path=common_folder(paths), language=language, examples=examples,
                      skipped=dict(skips.counts), files=tuple(paths))


def _read_conllu_into(path: pathlib.Path, drop_textless: bool, examples: list[TaggedSentence],
                      skips: Skips) -> None:
    words: list[str] = []
    tags: list[str] = []
    first = 0

    def close() -> None:
        if words:
            blanks = words.count("_")
            if drop_textless and blanks and blanks >= len(words) - 1:
                skips.count(SKIP_NO_TEXT)
            else:
                examples.append(TaggedSentence(tuple(words), tuple(tags),
                                               f"{path.name}:{first}"))
            words.clear()
            tags.clear()

    for lineno, line in read_lines(path):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            skips.count(SKIP_COMMENT)
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
                skips.count(SKIP_MULTIWORD if sep == "-" else SKIP_EMPTY_NODE)
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


__all__ = ["SKIP_NO_TEXT", "UPOS_TAGS", "read_conllu", "read_conllu_files"]
