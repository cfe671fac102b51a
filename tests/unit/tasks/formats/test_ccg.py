"""CCG supertagging: CCGbank .auto derivations and word<TAB>supertag exports (fixtures written
by the tests: CCGbank is licensed), their errors, the supertag inventory and <unk> mapping."""

from __future__ import annotations

import collections
import pathlib
import re

import pytest

from xstilts_jax.tasks.examples import TaggedSentence
from xstilts_jax.tasks.families.supertagging import (CC_MIN_COUNT, UNK_SUPERTAG, ccg_labels,
                                                     map_to_inventory, model_labels,
                                                     supertag_accuracy)
from xstilts_jax.tasks.formats.ccg import (CCGBANK_SECTIONS, ccgbank_files, read_ccg_auto,
                                           read_ccg_tsv, read_ccgbank)
from xstilts_jax.tasks.io import DataError, ReadResult

# The first two sentences of CCGbank (wsj_0001), in the .auto format.
WSJ_0001 = (
    "ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n"
    "(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 2> (<T NP 0 2> (<T NP 0 2> (<T NP 0 1> "
    "(<T N 1 2> (<L N/N NNP NNP Pierre N_73/N_73>) (<L N NNP NNP Vinken N>) ) ) "
    "(<L , , , , ,>) ) (<T NP\\NP 0 1> (<T S[adj]\\NP 1 2> (<T NP 0 1> (<T N 1 2> "
    "(<L N/N CD CD 61 N_93/N_93>) (<L N NNS NNS years N>) ) ) "
    "(<L (S[adj]\\NP)\\NP JJ JJ old (S[adj]\\NP_83)\\NP_84>) ) ) ) (<L , , , , ,>) ) "
    "(<T S[dcl]\\NP 0 2> (<L (S[dcl]\\NP)/(S[b]\\NP) MD MD will "
    "(S[dcl]\\NP_10)/(S[b]_11\\NP_10:B)_11>) (<T S[b]\\NP 0 2> (<T S[b]\\NP 0 2> "
    "(<T (S[b]\\NP)/PP 0 2> (<L ((S[b]\\NP)/PP)/NP VB VB join ((S[b]\\NP_20)/PP_21)/NP_22>) "
    "(<T NP 1 2> (<L NP[nb]/N DT DT the NP[nb]_29/N_29>) (<L N NN NN board N>) ) ) "
    "(<T PP 0 2> (<L PP/NP IN IN as PP/NP_34>) (<T NP 1 2> (<L NP[nb]/N DT DT a "
    "NP[nb]_48/N_48>) (<T N 1 2> (<L N/N JJ JJ nonexecutive N_43/N_43>) "
    "(<L N NN NN director N>) ) ) ) ) (<T (S\\NP)\\(S\\NP) 0 2> "
    "(<L ((S\\NP)\\(S\\NP))/N[num] NNP NNP Nov. ((S_61\\NP_56)_61\\(S_61\\NP_56)_61)/N[num]_62>) "
    "(<L N[num] CD CD 29 N[num]>) ) ) ) ) (<L . . . . .>) )\n"
    "ID=wsj_0001.2 PARSER=GOLD NUMPARSE=1\n"
    "(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 1> (<T N 1 2> (<L N/N NNP NNP Mr. N_142/N_142>) "
    "(<L N NNP NNP Vinken N>) ) ) (<T S[dcl]\\NP 0 2> (<L (S[dcl]\\NP)/NP VBZ VBZ is "
    "(S[dcl]\\NP_87)/NP_88>) (<T NP 0 2> (<T NP 0 1> (<L N NN NN chairman N>) ) "
    "(<T NP\\NP 0 2> (<L (NP\\NP)/NP IN IN of (NP_99\\NP_99)/NP_100>) (<T NP 0 2> "
    "(<T NP 0 2> (<T NP 0 1> (<T N 1 2> (<L N/N NNP NNP Elsevier N_109/N_109>) "
    "(<L N NNP NNP N.V. N>) ) ) (<L , , , , ,>) ) (<T NP 1 2> (<L NP[nb]/N DT DT the "
    "NP[nb]_131/N_131>) (<T N 1 2> (<L N/N NNP NNP Dutch N_126/N_126>) (<T N 1 2> "
    "(<L N/N VBG VBG publishing N_119/N_119>) (<L N NN NN group N>) ) ) ) ) ) ) ) ) "
    "(<L . . . . .>) )\n"
)
WSJ_0001_WORDS = (
    ("Pierre", "Vinken", ",", "61", "years", "old", ",", "will", "join", "the", "board", "as",
     "a", "nonexecutive", "director", "Nov.", "29", "."),
    ("Mr.", "Vinken", "is", "chairman", "of", "Elsevier", "N.V.", ",", "the", "Dutch",
     "publishing", "group", "."),
)
WSJ_0001_TAGS = (
    ("N/N", "N", ",", "N/N", "N", r"(S[adj]\NP)\NP", ",", r"(S[dcl]\NP)/(S[b]\NP)",
     r"((S[b]\NP)/PP)/NP", "NP[nb]/N", "N", "PP/NP", "NP[nb]/N", "N/N", "N",
     r"((S\NP)\(S\NP))/N[num]", "N[num]", "."),
    ("N/N", "N", r"(S[dcl]\NP)/NP", "N", r"(NP\NP)/NP", "N/N", "N", ",", "NP[nb]/N", "N/N",
     "N/N", "N", "."),
)
# A short one with a PTB bracket escape (kept as is) and a one-leaf derivation.
SHORT = (
    "ID=wsj_0003.1 PARSER=GOLD NUMPARSE=1\n"
    "(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 1> (<L N NNS NNS Stocks N>) ) "
    "(<T S[dcl]\\NP 0 2> (<L S[dcl]\\NP VBD VBD rose S[dcl]\\NP_1>) "
    "(<L (S\\NP)\\(S\\NP) RB RB sharply (S_2\\NP_3)_2\\(S_2\\NP_3)_2>) ) ) "
    "(<L RRB RRB -RRB- -RRB- RRB>) )\n"
    "\n"
    "ID=wsj_0003.2 PARSER=GOLD NUMPARSE=1\n"
    "(<L NP NNP NNP Hello NP>)\n"
)


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- .auto


def test_auto_words_and_supertags(tmp_path):
    path = write(tmp_path / "wsj_0001.auto", WSJ_0001)
    result = read_ccg_auto(path)
    assert isinstance(result, ReadResult) and result.path == path and result.language == "en"
    assert [s.words for s in result] == list(WSJ_0001_WORDS)
    assert [s.tags for s in result] == list(WSJ_0001_TAGS)
    assert [s.guid for s in result] == ["wsj_0001.auto:2", "wsj_0001.auto:4"]
    assert result.skipped == {}


def test_auto_several_files(tmp_path):
    first = write(tmp_path / "a" / "wsj_0001.auto", WSJ_0001)
    second = write(tmp_path / "b" / "wsj_0003.auto", SHORT)
    result = read_ccg_auto([first, second])
    assert result.files == (first, second) and result.path == tmp_path
    assert [s.words for s in result][2:] == [("Stocks", "rose", "sharply", "-RRB-"),
                                             ("Hello",)]
    assert result[2].tags == ("N", r"S[dcl]\NP", r"(S\NP)\(S\NP)", "RRB")
    assert result[3] == TaggedSentence(("Hello",), ("NP",), "wsj_0003.auto:5")
    with pytest.raises(DataError, match="same file name"):
        read_ccg_auto([first, write(tmp_path / "c" / "wsj_0001.auto", SHORT)])


def ccgbank_tree(root: pathlib.Path, sections) -> pathlib.Path:
    """A CCGbank-shaped folder: data/AUTO/<SS>/wsj_<SS>NN.auto, one or two files a section."""
    for section in sections:
        folder = root / "data" / "AUTO" / f"{section:02d}"
        write(folder / f"wsj_{section:02d}01.auto", SHORT)
        if section == 0:
            write(folder / f"wsj_{section:02d}00.auto", WSJ_0001)  # sorted before 01
    return root


def test_ccgbank_splits_and_sections(tmp_path):
    assert CCGBANK_SECTIONS == {"train": tuple(range(2, 22)), "dev": (0,), "test": (23,)}
    root = ccgbank_tree(tmp_path / "ccgbank_1_1", range(25))
    train = ccgbank_files(root, "train")
    assert [p.name for p in train] == [f"wsj_{s:02d}01.auto" for s in range(2, 22)]
    assert [p.name for p in ccgbank_files(root / "data" / "AUTO", "test")] == ["wsj_2301.auto"]
    dev = read_ccgbank(root, "dev")
    assert [s.guid for s in dev] == ["wsj_0000.auto:2", "wsj_0000.auto:4", "wsj_0001.auto:2",
                                     "wsj_0001.auto:5"]
    assert dev[0].words == WSJ_0001_WORDS[0]
    assert len(read_ccgbank(root, [23, 0])) == 6
    assert len(read_ccgbank(root, "train")) == 40


def test_ccgbank_missing_section_and_bad_split(tmp_path):
    root = ccgbank_tree(tmp_path, [0, 23])
    with pytest.raises(DataError, match=re.escape(str(root / "data" / "AUTO" / "02"))
                       + r": no \.auto files \(CCGbank section 02"):
        read_ccgbank(root, "train")
    with pytest.raises(DataError, match="no split 'valid'; its splits: train, dev, test"):
        ccgbank_files(root, "valid")
    with pytest.raises(ValueError, match="section numbers 0..24"):
        ccgbank_files(root, [25])
    with pytest.raises(DataError, match="no CCGbank AUTO folder"):
        ccgbank_files(tmp_path / "data" / "AUTO" / "00", "dev")


SECOND_LINE = WSJ_0001.split("\n")[1]


@pytest.mark.parametrize("derivation, pattern", [
    # A leaf without its supertag: 4 fields after L.
    (SECOND_LINE.replace("(<L N/N NNP NNP Pierre N_73/N_73>)", "(<L NNP NNP Pierre N_73/N_73>)"),
     r"column \d+: leaf <L NNP NNP Pierre N_73/N_73> has 4 fields after L, expected 5: "
     r"<L supertag modified-POS original-POS word predicate-argument-category>"),
    # ... or without its word.
    (SECOND_LINE.replace("(<L N NNP NNP Vinken N>)", "(<L N NNP NNP N>)"),
     r"leaf <L N NNP NNP N> has 4 fields"),
    # Unbalanced: the root's ')' missing, one ')' too many, a leaf left open.
    (SECOND_LINE[:-2], r"unbalanced parentheses: 1 node\(s\) not closed at the end of the "
                       r"line \(innermost: <T S\[dcl\] 0 2> at column 1\)"),
    (SECOND_LINE + " )", r"column \d+: unbalanced parentheses: '\)' closes no node"),
    (SECOND_LINE.replace("Pierre N_73/N_73>)", "Pierre N_73/N_73>", 1),
     r"unbalanced parentheses: the leaf <L N/N NNP NNP Pierre N_73/N_73> at column \d+ is "
     r"not closed by '\)' before the next node"),
    (SECOND_LINE.replace("Vinken N>)", "Vinken N>", 1),  # its ')' closes the wrong node
     r"node <T NP 0 1> declares 1 children but has 2 \(unbalanced parentheses\?\)"),
    # A node missing a child (its brackets still balance).
    (SECOND_LINE.replace("(<L N NNP NNP Vinken N>) ", "", 1),
     r"node <T N 1 2> declares 2 children but has 1"),
    (SECOND_LINE.replace("(<L , , , , ,>)", "(<L , , , , ,)", 1),
     r"node label '\(<L , , , , ,\) \) \(' has no closing '>'"),
    (SECOND_LINE.replace("(<L , , , , ,>)", "(<X , , , , ,>)", 1),
     r"node <X , , , , ,> is neither a leaf"),
    (SECOND_LINE + " (<L . . . . .>)", r"a node after the derivation's root is closed"),
    (SECOND_LINE.replace("(<L , , , , ,>)", ", ", 1), r"unexpected ',' outside a node label"),
])
def test_auto_errors_name_file_and_line(tmp_path, derivation, pattern):
    lines = WSJ_0001.split("\n")
    lines[1] = derivation
    path = write(tmp_path / "wsj_0001.auto", "\n".join(lines))
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ") + r"(column \d+: )?" + pattern):
        read_ccg_auto(path)


def test_auto_header_errors(tmp_path):
    lines = WSJ_0001.split("\n")
    path = write(tmp_path / "a.auto", "\n".join([lines[1], *lines]))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: a derivation line without an "
                                                  "'ID=...' header")):
        read_ccg_auto(path)
    path = write(tmp_path / "b.auto", "\n".join([lines[0], *lines]))
    with pytest.raises(DataError, match=re.escape(f"{path}:2: header line, but the header on "
                                                  "line 1 (ID=wsj_0001.1) has no derivation")):
        read_ccg_auto(path)
    path = write(tmp_path / "c.auto", WSJ_0001 + "ID=wsj_0001.3 PARSER=GOLD NUMPARSE=1\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:5: header ID=wsj_0001.3 has no "
                                                  "derivation line after it")):
        read_ccg_auto(path)
    with pytest.raises(DataError, match="no derivations"):
        read_ccg_auto(write(tmp_path / "d.auto", "\n\n"))


# --------------------------------------------------------------------------- TSV


def tsv(sentences) -> str:
    return "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(words, tags))
                       for words, tags in sentences) + "\n"


def test_tsv_reads_what_auto_reads(tmp_path):
    auto = read_ccg_auto(write(tmp_path / "wsj_0001.auto", WSJ_0001))
    path = write(tmp_path / "ccg.dev.tsv", tsv((s.words, s.tags) for s in auto))
    result = read_ccg_tsv(path)
    assert [(s.words, s.tags) for s in result] == [(s.words, s.tags) for s in auto]
    assert [s.guid for s in result] == ["ccg.dev.tsv:1", "ccg.dev.tsv:20"]


@pytest.mark.parametrize("line, pattern", [
    ("Vinken", r"1 tab-separated columns, expected 2 \(word, supertag\)$"),
    ("Vinken\t", r"empty supertag"),
    ("\tN", r"empty word"),
    ("Vinken\tN\tNNP", r"3 tab-separated columns, expected 2 \(word, supertag\)"),
    ("Vinken\tN /N", r"supertag 'N /N' contains whitespace"),
])
def test_tsv_token_without_supertag(tmp_path, line, pattern):
    path = write(tmp_path / "ccg.train.tsv", f"Pierre\tN/N\n{line}\n\n.\t.\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ") + pattern):
        read_ccg_tsv(path)


# --------------------------------------------------------------------------- inventory


def sentences(*tag_lists):
    return [TaggedSentence(tuple(f"w{i}" for i in range(len(tags))), tuple(tags), f"s:{k}")
            for k, tags in enumerate(tag_lists)]


def test_labels_by_frequency_then_name():
    data = sentences(["N", "N/N", "N", ",", "NP[nb]/N"], ["N", ",", "N/N", "(S\\NP)\\NP"],
                     [UNK_SUPERTAG, UNK_SUPERTAG, UNK_SUPERTAG, UNK_SUPERTAG, "."])
    # N 3; "," 2, N/N 2 (name order: "," < "N/N"); then the singletons by name.
    assert ccg_labels(data) == ("N", ",", "N/N", "(S\\NP)\\NP", ".", "NP[nb]/N")
    assert ccg_labels(data, min_count=2) == ("N", ",", "N/N")
    assert ccg_labels(data, max_labels=2) == ("N", ",")
    assert ccg_labels(data, min_count=2, max_labels=10) == ("N", ",", "N/N")
    assert UNK_SUPERTAG not in ccg_labels(data)
    with pytest.raises(ValueError, match="no supertag is seen 4 times"):
        ccg_labels(data, min_count=4)
    with pytest.raises(ValueError, match="min_count"):
        ccg_labels(data, min_count=0)
    assert CC_MIN_COUNT == 10


def test_labels_of_real_looking_derivations(tmp_path):
    result = read_ccg_auto(write(tmp_path / "wsj_0001.auto", WSJ_0001))
    counts = collections.Counter(t for s in result for t in s.tags)
    labels = ccg_labels(result)
    assert labels[:4] == ("N", "N/N", ",", "NP[nb]/N")  # 8, 7, 3, 3
    assert [counts[t] for t in labels] == sorted(counts.values(), reverse=True)
    assert len(labels) == len(counts)


def test_map_to_inventory_and_accuracy():
    train = sentences(["N", "N/N", "N", ","], ["N", ","])
    labels = ccg_labels(train, min_count=2)  # ("N", ",")
    test = sentences(["N/N", "N", "."], ["N", ","], ["PP/NP", "N/N"])
    mapped = map_to_inventory(test, labels)
    assert [s.tags for s in mapped.sentences] == [(UNK_SUPERTAG, "N", UNK_SUPERTAG),
                                                  ("N", ","), (UNK_SUPERTAG, UNK_SUPERTAG)]
    assert mapped.sentences[1] is test[1]  # nothing to map: the same sentence
    assert [s.words for s in mapped.sentences] == [s.words for s in test]
    assert (mapped.num_tokens, mapped.num_mapped) == (7, 4)
    assert mapped.mapped == {"N/N": 2, ".": 1, "PP/NP": 1}
    assert model_labels(labels) == ("N", ",", UNK_SUPERTAG)
    with pytest.raises(ValueError, match="must not contain"):
        map_to_inventory(test, (*labels, UNK_SUPERTAG))
    # <unk> gold tokens are never right, even when "<unk>" is predicted.
    predicted = [(UNK_SUPERTAG, "N", ","), ("N", "N"), (UNK_SUPERTAG, "N")]
    scores = supertag_accuracy(mapped.sentences, predicted)
    assert scores == {"accuracy": pytest.approx(100 * 2 / 7), "num_tokens": 7, "num_unknown": 4}
    assert supertag_accuracy(test, [s.tags for s in test])["accuracy"] == 100.0
    with pytest.raises(ValueError, match="sentence 1: 1 predicted supertags for 2 tokens"):
        supertag_accuracy(test, [s.tags for s in test][:1] + [("N",), ("N", "N")])
