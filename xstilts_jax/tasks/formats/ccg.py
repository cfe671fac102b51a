"""CCGbank supertagging data: ``.auto`` derivations and ``word<TAB>supertag`` exports.

Pure Python: no JAX, no NumPy. CCGbank (Hockenmaier & Steedman, LDC2005T13) is licensed, so
nothing here ships data; the tests write their own fixtures.

Formats read, both returning a :class:`~xstilts_jax.tasks.io.ReadResult` of
:class:`~xstilts_jax.tasks.examples.TaggedSentence` (``words``, ``tags`` = supertags, ``guid``
``"<file name>:<line>"`` of the line holding the sentence's first word):

- CCGbank's ``.auto`` derivation files (``data/AUTO/<SS>/wsj_<SSNN>.auto``):
  :func:`read_ccg_auto` (files), :func:`read_ccgbank` (a CCGbank folder and a split or
  sections). Each sentence is two lines: a header ``ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1``
  (only the ``ID=`` start is required) and one derivation line, a tree in brackets::

      (<T S[dcl] 0 2> (<T NP 0 1> (<T N 1 2> (<L N/N NNP NNP Pierre N_73/N_73>) ... ) ) ... )

  An internal node is ``(<T category head-index number-of-children> child ... )``; a leaf is
  ``(<L supertag modified-POS original-POS word predicate-argument-category>)``, six
  space-separated fields counting the ``L``. The sentence is the leaves in order: word = the
  5th field, supertag = the 2nd (the leaf's CCG category, e.g. ``(S[dcl]\\NP)/NP``; the
  predicate-argument category, the 6th, is the same category with head indices such as
  ``(S[dcl]\\NP_10)/NP_11`` and is not used). Categories contain parentheses: a node's label
  runs from ``(<`` to the first ``>``, and only brackets outside labels are tree structure.
  Words are kept as in CCGbank (PTB escapes such as ``-LRB-``, ``-RRB-``, ``-LCB-`` are not
  undone). Checked, each a ``DataError`` naming ``<file>:<line>``: headers and derivations
  alternate (a derivation without a header before it, a header without a derivation after it);
  brackets balance (a ``)`` closing nothing, nodes left open at the end of the line, a leaf
  with children); every ``<T ...>`` has 4 fields and as many children as it declares; every
  ``<L ...>`` has its 6 fields (a missing supertag or word shows as a leaf with fewer); one
  derivation per line; no text outside nodes.
- A token-per-line export, ``word<TAB>supertag`` a line and blank lines between sentences
  (the layout of XTREME's processed tagging files): :func:`read_ccg_tsv`, through the same
  block reader as :func:`~xstilts_jax.tasks.formats.word_tags.read_tagging_tsv`. A line without its
  supertag (one column) is a ``DataError`` "<file>:<line>: 1 tab-separated columns, expected
  2 (word, supertag)"; an empty word or supertag, or a supertag with whitespace, too.

Splits (:data:`CCGBANK_SECTIONS`): the standard CCGbank split since Clark & Curran (2004)
and Hockenmaier & Steedman (2007): sections 02-21 train, 00 dev, 23 test (01, 22 and 24 are
not used).

The supertag inventory, ``<unk>`` and per-token accuracy: ``tasks/families/supertagging.py``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Iterable, Sequence

from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.formats.word_tags import read_word_tag_blocks
from xstilts_jax.tasks.io import (DataError, ReadResult, Skips, check_file, common_folder,
                                  distinct_files, read_lines)

__all__ = ["CCGBANK_SECTIONS", "ccgbank_files", "read_ccg_auto", "read_ccg_tsv", "read_ccgbank"]

# The standard CCGbank split: WSJ sections 02-21 train, 00 dev, 23 test.
CCGBANK_SECTIONS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(2, 22)),
    "dev": (0,),
    "test": (23,),
}

_LEAF_FIELDS = "<L supertag modified-POS original-POS word predicate-argument-category>"
# A node label "(<...>" (no '<' or '>' inside; a missing '>' leaves group 'gt' empty), a
# closing bracket, or anything else, each after optional whitespace.
_AUTO_TOKEN = re.compile(
    r"\s*(?P<token>\(<(?P<label>[^<>]*)(?P<gt>>?)|(?P<close>\))|(?P<other>[^\s()]+|\())")


# --------------------------------------------------------------------------- .auto


@dataclasses.dataclass
class _Node:
    leaf: bool
    column: int
    label: str
    declared: int = 0  # children an internal node declares
    children: int = 0


def _parse_derivation(line: str, where: str) -> tuple[list[str], list[str]]:
    """(words, supertags) of the leaves of one derivation line, in order; ``where`` is
    ``<file>:<line>`` for errors."""
    words: list[str] = []
    tags: list[str] = []
    stack: list[_Node] = []
    done = False  # the root has been closed
    line = line.rstrip()
    position = 0
    while position < len(line):
        m = _AUTO_TOKEN.match(line, position)
        position = m.end()
        column = m.start("token") + 1
        label = m.group("label")
        if m.group("other") is not None:
            text = m.group("other")
            raise DataError(f"{where}: column {column}: unexpected {text!r} outside a node "
                            f"label (nodes are (<T ...> children ) and (<L ...>))")
        if label is not None:
            if not m.group("gt"):
                raise DataError(f"{where}: column {column}: node label '(<{label}' has no "
                                f"closing '>'")
            if done:
                raise DataError(f"{where}: column {column}: a node after the derivation's "
                                f"root is closed (one derivation a line; unbalanced "
                                f"parentheses?)")
            if stack and stack[-1].leaf:
                raise DataError(f"{where}: column {column}: unbalanced parentheses: the leaf "
                                f"<{stack[-1].label}> at column {stack[-1].column} is not "
                                f"closed by ')' before the next node")
            fields = label.split()
            kind = fields[0] if fields else ""
            if kind == "L":
                if len(fields) != 6:
                    raise DataError(f"{where}: column {column}: leaf <{label}> has "
                                    f"{len(fields) - 1} fields after L, expected 5: "
                                    f"{_LEAF_FIELDS} (a token without its supertag?)")
                tags.append(fields[1])
                words.append(fields[4])
                node = _Node(True, column, label)
            elif kind == "T":
                if len(fields) != 4 or not fields[3].isdigit() or int(fields[3]) < 1:
                    raise DataError(f"{where}: column {column}: internal node <{label}>, "
                                    f"expected <T category head-index number-of-children>")
                node = _Node(False, column, label, declared=int(fields[3]))
            else:
                raise DataError(f"{where}: column {column}: node <{label}> is neither a leaf "
                                f"(<L ...>) nor an internal node (<T ...>)")
            if stack:
                stack[-1].children += 1
            stack.append(node)
            continue
        # ')'
        if not stack:
            raise DataError(f"{where}: column {column}: unbalanced parentheses: ')' closes "
                            f"no node")
        node = stack.pop()
        if not node.leaf and node.children != node.declared:
            raise DataError(f"{where}: column {node.column}: node <{node.label}> declares "
                            f"{node.declared} children but has {node.children} (unbalanced "
                            f"parentheses?)")
        done = not stack
    if stack:
        raise DataError(f"{where}: unbalanced parentheses: {len(stack)} node(s) not closed at "
                        f"the end of the line (innermost: <{stack[-1].label}> at column "
                        f"{stack[-1].column})")
    if not words:
        raise DataError(f"{where}: a derivation line with no leaf (<L ...>)")
    return words, tags


def _read_auto_into(path: pathlib.Path, examples: list[TaggedSentence]) -> int:
    """Append the sentences of one .auto file; returns how many."""
    header: tuple[int, str] | None = None  # (line, ID) of the header awaiting its derivation
    before = len(examples)
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        if line.startswith("ID="):
            if header is not None:
                raise DataError(f"{path}:{lineno}: header line, but the header on line "
                                f"{header[0]} ({header[1]}) has no derivation line after it")
            header = (lineno, line.split()[0])
            continue
        if header is None:
            raise DataError(f"{path}:{lineno}: a derivation line without an 'ID=...' header "
                            f"line before it (.auto files alternate header and derivation)")
        words, tags = _parse_derivation(line, f"{path}:{lineno}")
        examples.append(TaggedSentence(tuple(words), tuple(tags), f"{path.name}:{lineno}"))
        header = None
    if header is not None:
        raise DataError(f"{path}:{header[0]}: header {header[1]} has no derivation line after "
                        f"it (the file ends)")
    return len(examples) - before


def read_ccg_auto(paths: str | os.PathLike | Sequence[str | os.PathLike],
                  language: str = "en") -> ReadResult[TaggedSentence]:
    """The sentences (words, supertags) of one or more CCGbank ``.auto`` files, in the order
    given (module docstring). Several files: ``path`` is their common folder, ``files`` lists
    them, and file names must differ (the guids name the file). Every file must hold at least
    one derivation."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = distinct_files(paths, "read_ccg_auto")
    examples: list[TaggedSentence] = []
    for path in paths:
        if not _read_auto_into(path, examples):
            raise DataError(f"{path}: no derivations")
    if len(paths) == 1:
        return Skips().finish(paths[0], language, examples, "derivations")
    return ReadResult(path=common_folder(paths), language=language, examples=examples,
                      files=tuple(paths))


def _auto_folder(ccgbank_dir: pathlib.Path) -> pathlib.Path:
    for candidate in (ccgbank_dir / "data" / "AUTO", ccgbank_dir / "AUTO", ccgbank_dir):
        if candidate.is_dir() and any((candidate / f"{s:02d}").is_dir() for s in range(25)):
            return candidate
    raise DataError(f"{ccgbank_dir}: no CCGbank AUTO folder: expected section folders 00..24 "
                    f"in {ccgbank_dir / 'data' / 'AUTO'} (CCGbank's layout), "
                    f"{ccgbank_dir / 'AUTO'} or {ccgbank_dir}")


def _sections(split: str | Iterable[int]) -> tuple[int, ...]:
    if isinstance(split, str):
        if split not in CCGBANK_SECTIONS:
            raise DataError(f"CCGbank has no split {split!r}; its splits: "
                            f"{', '.join(CCGBANK_SECTIONS)} (or pass section numbers)")
        return CCGBANK_SECTIONS[split]
    sections = tuple(split)
    if not sections or not all(isinstance(s, int) and 0 <= s <= 24 for s in sections):
        raise ValueError(f"sections must be WSJ section numbers 0..24, not {sections!r}")
    return sections


def ccgbank_files(ccgbank_dir: str | os.PathLike,
                  split: str | Iterable[int]) -> list[pathlib.Path]:
    """The ``.auto`` files of a split ("train", "dev", "test": :data:`CCGBANK_SECTIONS`) or of
    the given section numbers, sorted by name within each section, sections in the order
    given. ``ccgbank_dir`` is CCGbank's root (with ``data/AUTO/<SS>/``), or the ``AUTO``
    folder itself."""
    sections = _sections(split)
    auto = _auto_folder(pathlib.Path(ccgbank_dir))
    files: list[pathlib.Path] = []
    for section in sections:
        folder = auto / f"{section:02d}"
        found = sorted(folder.glob("*.auto")) if folder.is_dir() else []
        if not found:
            raise DataError(f"{folder}: no .auto files (CCGbank section {section:02d}, expected "
                            f"wsj_{section:02d}NN.auto)")
        files += found
    return files


def read_ccgbank(ccgbank_dir: str | os.PathLike, split: str | Iterable[int],
                 language: str = "en") -> ReadResult[TaggedSentence]:
    """The sentences of a CCGbank split or sections (:func:`ccgbank_files`)."""
    return read_ccg_auto(ccgbank_files(ccgbank_dir, split), language)


# --------------------------------------------------------------------------- TSV


def read_ccg_tsv(path: str | os.PathLike, language: str = "en") -> ReadResult[TaggedSentence]:
    """A ``word<TAB>supertag`` export: one token a line, blank lines between sentences."""
    path = check_file(path)

    def parse(lineno: int, word: str, supertag: str) -> str:
        if not word or not supertag:
            raise DataError(f"{path}:{lineno}: empty {'word' if not word else 'supertag'}, "
                            f"expected word<TAB>supertag")
        if supertag != "".join(supertag.split()):
            raise DataError(f"{path}:{lineno}: supertag {supertag!r} contains whitespace")
        return word

    return read_word_tag_blocks(path, language, parse, columns="word, supertag")
