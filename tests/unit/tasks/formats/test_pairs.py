"""NLI tasks: MNLI (GLUE TSV, MultiNLI jsonl) and XNLI (XTREME layout) readers, featurization."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

from xstilts_jax.tasks import UnknownTaskError, get_task, task_names
from xstilts_jax.tasks.catalog.common import NLI_LABELS
from xstilts_jax.tasks.catalog.intermediate import MNLI
from xstilts_jax.tasks.catalog.xtreme import PAWSX, XNLI
from xstilts_jax.tasks.examples import PairExample
from xstilts_jax.tasks.families.classification import featurize_pairs
from xstilts_jax.tasks.formats.pairs import SKIP_NO_GOLD_LABEL
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.sources.files import read_split
from xstilts_jax.tokenization import load_tokenizer

# GLUE MNLI headers, as in the GLUE release (train has one annotator label, dev five).
TRAIN_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label").split()
DEV_HEADER = TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]


def glue_row(header, index, s1, s2, gold, genre="fiction"):
    values = {"index": str(index), "promptID": str(1000 + index), "pairID": f"{1000 + index}e",
              "genre": genre, "sentence1": s1, "sentence2": s2, "gold_label": gold}
    return "\t".join(values.get(c, f"( {c} )" if "parse" in c else gold) for c in header)


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_glue(path, header, rows):
    return write(path, ["\t".join(header)] + [glue_row(header, i, *r) for i, r in enumerate(rows)])


def jsonl_line(s1, s2, gold, pair_id="1e"):
    return json.dumps({"annotator_labels": [gold], "genre": "government", "gold_label": gold,
                       "pairID": pair_id, "promptID": "1", "sentence1": s1,
                       "sentence1_binary_parse": "( x )", "sentence1_parse": "(ROOT x)",
                       "sentence2": s2, "sentence2_binary_parse": "( y )",
                       "sentence2_parse": "(ROOT y)"}, ensure_ascii=False)


# --------------------------------------------------------------------------- readers


def test_mnli_glue_tsv_train(tmp_path):
    write_glue(tmp_path / "mnli" / "train.tsv", TRAIN_HEADER, [
        ("The cat sat.", "A cat is sitting.", "entailment"),
        ('He said "hello and left.', "He stayed.", "contradiction"),  # unbalanced quote
        ("The mat is red.", 'It is "blue".', "neutral"),
    ])
    result = read_split(MNLI, tmp_path, "train", "en")
    assert result.path == tmp_path / "mnli" / "train.tsv"
    assert len(result) == 3 and result.skipped == {}
    first, second, third = result.examples
    assert first == PairExample("mnli/train.tsv:2", "The cat sat.", "A cat is sitting.",
                                NLI_LABELS.index("entailment"), "en")
    # No csv quoting: the lone quote stays in its field and does not swallow the next line.
    assert second.text_a == 'He said "hello and left.' and second.guid == "mnli/train.tsv:3"
    assert (third.text_b, third.label) == ('It is "blue".', 2)
    assert [e.label for e in result.examples] == [1, 0, 2]


def test_mnli_dev_no_gold_label_skipped_and_counted(tmp_path, caplog):
    write_glue(tmp_path / "mnli" / "dev_matched.tsv", DEV_HEADER, [
        ("a", "b", "neutral"), ("c", "d", "-"), ("e", "f", "entailment"), ("g", "h", "-")])
    with caplog.at_level(logging.WARNING):
        result = read_split(MNLI, tmp_path, "dev_matched", "en")
    assert [e.guid for e in result.examples] == ["mnli/dev_matched.tsv:2", "mnli/dev_matched.tsv:4"]
    assert result.skipped == {SKIP_NO_GOLD_LABEL: 2}
    path = tmp_path / "mnli" / "dev_matched.tsv"
    assert f"{path}: skipped 2: {SKIP_NO_GOLD_LABEL}" in caplog.text


def test_mnli_tsv_label_column_named_label(tmp_path):
    write(tmp_path / "mnli" / "dev_mismatched.tsv",
          ["index\tsentence1\tsentence2\tlabel", "0\tx y\tz\tneutral", "1\tp\tq\tcontradiction"])
    result = read_split(MNLI, tmp_path, "dev_mismatched", "en")
    assert [(e.text_a, e.text_b, e.label) for e in result.examples] == [
        ("x y", "z", 2), ("p", "q", 0)]


def test_mnli_jsonl(tmp_path):
    write(tmp_path / "mnli" / "multinli_1.0_train.jsonl", [
        jsonl_line("Le chat.", "Un chat.", "entailment", "1e"),
        jsonl_line("x", "y", "-", "2n"),
        jsonl_line("Der Hund \"bellt.", "Stille.", "contradiction", "3c"),
    ])
    result = read_split(MNLI, tmp_path, "train", "en")
    assert result.path.name == "multinli_1.0_train.jsonl"
    assert [(e.guid, e.text_a, e.label) for e in result.examples] == [
        ("mnli/multinli_1.0_train.jsonl:1", "Le chat.", 1),
        ("mnli/multinli_1.0_train.jsonl:3", 'Der Hund "bellt.', 0)]
    assert result.skipped == {SKIP_NO_GOLD_LABEL: 1}


def test_mnli_tsv_preferred_over_jsonl(tmp_path):
    write_glue(tmp_path / "mnli" / "train.tsv", TRAIN_HEADER, [("a", "b", "neutral")])
    write(tmp_path / "mnli" / "multinli_1.0_train.jsonl", [jsonl_line("c", "d", "neutral")])
    assert read_split(MNLI, tmp_path, "train", "en").path.name == "train.tsv"


def test_xnli_xtreme_layout(tmp_path):
    write(tmp_path / "xnli" / "dev-de.tsv", [
        "Der Hund schläft.\tEin Tier ruht.\tentailment",
        "Sie sagte \"nein.\tSie stimmte zu.\tcontradiction"])
    write(tmp_path / "xnli" / "test-zh.tsv", ["他来了。\t他没来。\tcontradiction",
                                              "天很蓝。\t今天是晴天。\tneutral",
                                              "猫在睡觉。\t动物在休息。\tentailment"])
    dev = read_split(XNLI, tmp_path, "dev", "de")
    assert [(e.guid, e.language, e.label) for e in dev.examples] == [
        ("xnli/dev-de.tsv:1", "de", 1), ("xnli/dev-de.tsv:2", "de", 0)]
    assert dev.examples[1].text_a == 'Sie sagte "nein.'
    test = read_split(XNLI, tmp_path, "test", "zh")
    assert [e.label for e in test.examples] == [0, 2, 1]
    assert test.examples[0].text_b == "他没来。"
    assert set(XNLI.languages) == set("ar bg de el en es fr hi ru sw th tr ur vi zh".split())
    assert XNLI.labels == MNLI.labels == ("contradiction", "entailment", "neutral")


def test_xnli_train_is_mnli_train(tmp_path):
    write_glue(tmp_path / "mnli" / "train.tsv", TRAIN_HEADER, [("a", "b", "neutral")])
    assert read_split(XNLI, tmp_path, "train", "en").examples[0].guid == "mnli/train.tsv:2"
    write(tmp_path / "xnli" / "train-en.tsv", ["p\th\tentailment"])  # XTREME's own copy wins
    result = read_split(XNLI, tmp_path, "train", "en")
    assert result.examples == (PairExample("xnli/train-en.tsv:1", "p", "h", 1, "en"),)


# --------------------------------------------------------------------------- bad input


def expect(match, call):
    with pytest.raises(DataError, match=match) as info:
        call()
    return str(info.value)


def test_wrong_column_count(tmp_path):
    train = write_glue(tmp_path / "mnli" / "train.tsv", TRAIN_HEADER, [("a", "b", "neutral")])
    with open(train, "a") as f:
        f.write("3\tonly\tthree columns\n")
    expect(rf"{re.escape(str(train))}:3: 3 tab-separated columns, the header has 12",
           lambda: read_split(MNLI, tmp_path, "train", "en"))
    dev = write(tmp_path / "xnli" / "dev-fr.tsv", ["a\tb\tneutral", "a\tb\tneutral\textra"])
    expect(rf"{re.escape(str(dev))}:2: 4 tab-separated columns, expected 3",
           lambda: read_split(XNLI, tmp_path, "dev", "fr"))
    test = write(tmp_path / "xnli" / "test-fr.tsv", ["a\tb"])
    expect(rf"{re.escape(str(test))}:1: 2 tab-separated columns.*without labels",
           lambda: read_split(XNLI, tmp_path, "test", "fr"))


def test_label_outside_label_set(tmp_path):
    path = write(tmp_path / "xnli" / "dev-es.tsv", ["a\tb\tneutral", "a\tb\tcontradictory"])
    expect(rf"{re.escape(str(path))}:2: label 'contradictory' is not one of "
           "contradiction, entailment, neutral", lambda: read_split(XNLI, tmp_path, "dev", "es"))
    jsonl = write(tmp_path / "mnli" / "multinli_1.0_dev_matched.jsonl",
                  [jsonl_line("a", "b", "yes")])
    expect(rf"{re.escape(str(jsonl))}:1: label 'yes' is not one of",
           lambda: read_split(MNLI, tmp_path, "dev_matched", "en"))


def test_missing_header_column(tmp_path):
    path = write(tmp_path / "mnli" / "train.tsv", ["index\tsentence1\thypothesis\tgold_label",
                                                   "0\ta\tb\tneutral"])
    message = expect(rf"{re.escape(str(path))}:1: the header has no column 'sentence2'",
                     lambda: read_split(MNLI, tmp_path, "train", "en"))
    assert "header: index, sentence1, hypothesis, gold_label" in message
    write(path, ["sentence1\tsentence2\tgenre", "a\tb\tfiction"])
    expect(r":1: the header has no column 'gold_label' or 'label'",
           lambda: read_split(MNLI, tmp_path, "train", "en"))


def test_invalid_json_line(tmp_path):
    path = write(tmp_path / "mnli" / "multinli_1.0_train.jsonl",
                 [jsonl_line("a", "b", "neutral"), '{"sentence1": "a", "sentence2": '])
    expect(rf"{re.escape(str(path))}:2: invalid JSON",
           lambda: read_split(MNLI, tmp_path, "train", "en"))
    write(path, [jsonl_line("a", "b", "neutral"),
                 json.dumps({"sentence1": "a", "gold_label": "x"})])
    expect(rf"{re.escape(str(path))}:2: field 'sentence2' is missing",
           lambda: read_split(MNLI, tmp_path, "train", "en"))


def test_empty_split(tmp_path):
    path = write(tmp_path / "mnli" / "dev_matched.tsv", ["\t".join(DEV_HEADER)])
    read_dev = lambda: read_split(MNLI, tmp_path, "dev_matched", "en")  # noqa: E731
    expect(rf"{re.escape(str(path))}: no examples$", read_dev)
    write_glue(path, DEV_HEADER, [("a", "b", "-")])
    expect(r"no examples \(1 skipped: no gold label", read_dev)
    write(tmp_path / "xnli" / "dev-th.tsv", [])
    expect(r"dev-th.tsv: no examples", lambda: read_split(XNLI, tmp_path, "dev", "th"))


def test_unknown_language_and_split(tmp_path):
    expect(r"task 'xnli' split 'test' has no language 'ja'; its languages: ar bg de .* vi zh$",
           lambda: read_split(XNLI, tmp_path, "test", "ja"))
    expect(r"task 'mnli' split 'train' exists only in 'en' \(XTREME trains in English\), not 'de'",
           lambda: read_split(MNLI, tmp_path, "train", "de"))
    expect(r"task 'mnli' split 'dev_matched' has no language 'de'; its languages: en$",
           lambda: read_split(MNLI, tmp_path, "dev_matched", "de"))
    expect(r"task 'xnli' split 'train' exists only in 'en' \(XTREME trains in English\), not 'de'",
           lambda: read_split(XNLI, tmp_path, "train", "de"))
    expect(r"task 'mnli' has no split 'test'; its splits: train, dev_matched, dev_mismatched, "
           r"translate_train$", lambda: read_split(MNLI, tmp_path, "test", "en"))


def test_missing_file(tmp_path):
    expected = re.escape(str(tmp_path / "xnli" / "test-sw.tsv"))
    expect(rf"task 'xnli' split 'test' \(sw\): no data files; tried {expected} "
           rf"\(XTREME's download\)$", lambda: read_split(XNLI, tmp_path, "test", "sw"))
    message = expect(r"task 'mnli' split 'dev_mismatched' \(en\): no data files; tried ",
                     lambda: read_split(MNLI, tmp_path, "dev_mismatched", "en"))
    assert str(tmp_path / "mnli" / "dev_mismatched.tsv") in message
    assert str(tmp_path / "mnli" / "multinli_1.0_dev_mismatched.jsonl") in message


def test_invalid_utf8_and_blank_lines(tmp_path):
    path = tmp_path / "xnli" / "dev-bg.tsv"
    path.parent.mkdir()
    path.write_bytes("\ufeffa\tb\tneutral\n\nc\td\tentailment\n".encode())  # BOM, blank line
    result = read_split(XNLI, tmp_path, "dev", "bg")
    assert [e.text_a for e in result.examples] == ["a", "c"] and result.skipped == {"blank line": 1}
    path.write_bytes(b"a\tb\tneutral\nc\xff\td\tneutral\n")
    expect(rf"{re.escape(str(path))}:2: not valid UTF-8",
           lambda: read_split(XNLI, tmp_path, "dev", "bg"))


def test_errors_are_value_errors():
    assert issubclass(DataError, ValueError) and issubclass(UnknownTaskError, ValueError)
    assert issubclass(UnknownTaskError, DataError)


# --------------------------------------------------------------------------- features


def test_featurize_pairs(tiny_checkpoints):
    tokenizer = load_tokenizer(tiny_checkpoints("xlmr"))
    examples = [PairExample("f:1", "the cat sat on the mat", "the dog is big", 1, "en"),
                PairExample("f:2", "der hund", "die katze", 0, "de"),
                PairExample("f:3", "le chat", "le chien est grand", 2, "fr")]
    features = featurize_pairs(tokenizer, examples, max_length=64)
    assert len(features) == 3 and features.num_truncated == 0
    assert tokenizer.convert_ids_to_tokens(features.input_ids[1]) == [
        "<s>", "▁der", "▁hund", "</s>", "</s>", "▁die", "▁katze", "</s>"]
    # XLM-R-style tokenizers have no segment ids: the field is there, all zeros.
    assert [len(t) for t in features.token_type_ids] == [len(i) for i in features.input_ids]
    assert not any(any(t) for t in features.token_type_ids)
    assert features.labels.dtype == np.int32 and features.labels.tolist() == [1, 0, 2]
    assert features.guids == ["f:1", "f:2", "f:3"]
    # One call per chunk gives the same rows as one call for all.
    assert featurize_pairs(tokenizer, examples, 64, chunk_size=2).input_ids == features.input_ids


def test_featurize_pairs_truncation(tiny_checkpoints):
    tokenizer = load_tokenizer(tiny_checkpoints("xlmr"))
    examples = [PairExample("t:1", "the cat sat on the mat", "the dog is big", 0, "en"),  # 6 + 4
                PairExample("t:2", "a cat", "a dog", 1, "en"),  # 2 + 2: exactly 8 with specials
                PairExample("t:3", "red", "blue", 2, "en")]
    features = featurize_pairs(tokenizer, examples, max_length=8)
    assert [len(ids) for ids in features.input_ids] == [8, 8, 6]
    assert features.num_truncated == 1  # the row that fills max_length untruncated is not counted
    # longest_first trims the longer text first: 6 + 4 -> 2 + 2.
    assert tokenizer.convert_ids_to_tokens(features.input_ids[0]) == [
        "<s>", "▁the", "▁cat", "</s>", "</s>", "▁the", "▁dog", "</s>"]
    with pytest.raises(ValueError, match="max_length 5 leaves no room for a pair"):
        featurize_pairs(tokenizer, examples, max_length=5)


def test_featurize_read_split(tmp_path, tiny_checkpoints):
    write(tmp_path / "xnli" / "dev-fr.tsv", ["le chat est petit\tle chien est grand\tneutral"])
    result = read_split(XNLI, tmp_path, "dev", "fr")
    features = featurize_pairs(load_tokenizer(tiny_checkpoints("xlmr")), result.examples, 32)
    assert features.guids == ["xnli/dev-fr.tsv:1"] and features.labels.tolist() == [2]


# --------------------------------------------------------------------------- registry


def test_registry():
    assert {"mnli", "xnli"} <= set(task_names())
    assert MNLI.dev_split == "dev_matched" and MNLI.test_split is None
    assert (XNLI.dev_split, XNLI.test_split, XNLI.train_language) == ("dev", "test", "en")
    with pytest.raises(UnknownTaskError, match=r"unknown task 'mlni'; known tasks: .*mnli, .*xnli"):
        get_task("mlni")


# --------------------------------------------------------------------------- PAWS-X

PAWS_HEADER = "id\tsentence1\tsentence2\tlabel"
# Release rows (id, sentence1, sentence2, label): tokenized text with stray quotes, as PAWS has.
PAWS_ROWS = [
    ("1", 'In 1965 , " The Dog " was released .', 'The Dog was released in 1965 .', "1"),
    ("2", '" Quoted " at the start .', 'He said " no .', "0"),
    ("3", "Plain sentence one .", "Plain sentence two .", "0"),
]


def write_paws_release(root, lang, name, rows):
    return write(root / "x-final" / lang / name, [PAWS_HEADER] + ["\t".join(r) for r in rows])


def write_paws_xtreme(root, name, rows, with_labels=True):
    """What utils_preprocess.pawsx_preprocess writes: csv.writer(fout, delimiter='\\t')."""
    import csv

    path = root / "pawsx" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        for _, s1, s2, label in rows:
            writer.writerow([s1, s2, label] if with_labels else [s1, s2])
    return path


def test_pawsx_registry():
    assert "pawsx" in task_names() and get_task("pawsx").labels == ("0", "1")
    assert PAWSX.labels == ("0", "1") and PAWSX.train_language == "en"
    assert PAWSX.languages == ("de", "en", "es", "fr", "ja", "ko", "zh")
    assert (PAWSX.dev_split, PAWSX.test_split) == ("dev", "test")
    assert PAWSX.split_names == ("train", "dev", "test", "translate_train")


def test_pawsx_release_layout(tmp_path):
    write_paws_release(tmp_path, "en", "train.tsv", PAWS_ROWS)
    result = read_split(PAWSX, tmp_path, "train", "en")
    assert result.path == tmp_path / "x-final/en/train.tsv" and result.skipped == {}
    assert result.examples[0] == PairExample("x-final/en/train.tsv:2", PAWS_ROWS[0][1],
                                             PAWS_ROWS[0][2], 1, "en")
    assert result.examples[1].text_a == '" Quoted " at the start .'  # no csv quoting
    assert [e.label for e in result.examples] == [1, 0, 0]
    write_paws_release(tmp_path, "ja", "test_2k.tsv", PAWS_ROWS[2:])
    assert read_split(PAWSX, tmp_path, "test", "ja").examples[0].language == "ja"


def test_pawsx_xtreme_layout_undoes_csv_quoting(tmp_path):
    path = write_paws_xtreme(tmp_path, "train-en.tsv", PAWS_ROWS)
    raw = path.read_bytes()
    assert b'"""" Quoted """" at' not in raw and b'""" Quoted "" at the start ."' in raw
    assert raw.endswith(b"\r\n")
    xtreme = read_split(PAWSX, tmp_path, "train", "en")
    assert xtreme.path == path and xtreme.examples[0].guid == "pawsx/train-en.tsv:1"
    write_paws_release(tmp_path / "release", "en", "train.tsv", PAWS_ROWS)
    release = read_split(PAWSX, tmp_path / "release", "train", "en")
    assert ([(e.text_a, e.text_b, e.label) for e in xtreme.examples]
            == [(e.text_a, e.text_b, e.label) for e in release.examples])
    # A file written without quoting (csv.QUOTE_NONE) is read as it is.
    write(path, ['He said " no .\t" Yes " .\t0', '"a "" b"\t"\t1'])
    examples = read_split(PAWSX, tmp_path, "train", "en").examples
    assert [(e.text_a, e.text_b) for e in examples] == [('He said " no .', '" Yes " .'),
                                                        ('a " b', '"')]


def test_pawsx_precedence_and_unlabelled_xtreme_test(tmp_path):
    write_paws_xtreme(tmp_path, "dev-de.tsv", PAWS_ROWS)
    write_paws_release(tmp_path, "de", "dev_2k.tsv", PAWS_ROWS[:1])
    assert read_split(PAWSX, tmp_path, "dev", "de").path.name == "dev-de.tsv"  # XTREME first
    test = write_paws_xtreme(tmp_path, "test-de.tsv", PAWS_ROWS, with_labels=False)
    expect(rf"{re.escape(str(test))}:1: 2 tab-separated columns, expected 3 .*XTREME's download "
           r"writes test files without labels; the labelled x-final/<lang>/test_2k\.tsv",
           lambda: read_split(PAWSX, tmp_path, "test", "de"))
    write_paws_release(tmp_path, "de", "test_2k.tsv", PAWS_ROWS)
    result = read_split(PAWSX, tmp_path, "test", "de")  # the labelled release comes first
    assert result.path == tmp_path / "x-final/de/test_2k.tsv" and len(result) == 3


def test_pawsx_placeholder_and_empty_sentences_kept(tmp_path, caplog):
    write_paws_release(tmp_path, "de", "dev_2k.tsv", PAWS_ROWS[:1] + [
        ("684", "Die Straße verläuft weiter nach Westen.", "NS", "0")])
    with caplog.at_level(logging.WARNING):
        dev = read_split(PAWSX, tmp_path, "dev", "de")
    assert len(dev) == 2 and dev.examples[1].text_b == "NS" and dev.skipped == {}
    assert "kept 1 pairs with an 'NS'" in caplog.text
    write_paws_release(tmp_path, "de", "translated_train.tsv",
                       PAWS_ROWS[:1] + [("32035", "", "", "0")])
    train = read_split(PAWSX, tmp_path, "translate_train", "de")
    assert train.examples[1].text_a == train.examples[1].text_b == "" and train.skipped == {}
    assert "and 1 with an empty sentence" in caplog.text
    # In en, translate_train is the training data itself (split "train"), not translations.
    expect(r"task 'pawsx' split 'translate_train' \(en\) \(in 'en' it is split 'train', the "
           r"data it translates\): no data files; tried .*x-final/en/train\.tsv \(PAWS-X "
           r"release\)$",
           lambda: read_split(PAWSX, tmp_path, "translate_train", "en"))


def test_pawsx_bad_rows(tmp_path):
    path = write_paws_release(tmp_path, "fr", "dev_2k.tsv", PAWS_ROWS[:1] + [("2", "a", "b", "2")])
    expect(rf"{re.escape(str(path))}:3: label '2' is not one of 0, 1",
           lambda: read_split(PAWSX, tmp_path, "dev", "fr"))
    write(path, [PAWS_HEADER, "1\ta\tb"])
    expect(rf"{re.escape(str(path))}:2: 3 tab-separated columns, the header has 4",
           lambda: read_split(PAWSX, tmp_path, "dev", "fr"))
    xtreme = write(tmp_path / "pawsx" / "dev-fr.tsv", ["a\tb\t1", "a\tb\t1\t0"])
    expect(rf"{re.escape(str(xtreme))}:2: 4 tab-separated columns, expected 3",
           lambda: read_split(PAWSX, tmp_path, "dev", "fr"))
    expect(r"task 'pawsx' split 'dev' has no language 'ru'; its languages: de en es fr ja ko zh$",
           lambda: read_split(PAWSX, tmp_path, "dev", "ru"))
    expect(r"task 'pawsx' split 'train' exists only in 'en' \(XTREME trains in English\), not "
           r"'de'",
           lambda: read_split(PAWSX, tmp_path, "train", "de"))
