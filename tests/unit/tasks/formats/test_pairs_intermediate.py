"""English intermediate classification tasks: QQP, SST-2, SNLI, ANLI and ANLI+ read from their
release formats (fixtures written here), their errors, and single-sentence featurization."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

from xstilts_jax.tasks import get_task, read, task_names
from xstilts_jax.tasks.catalog import TASKS
from xstilts_jax.tasks.catalog.common import NLI_LABELS
from xstilts_jax.tasks.catalog.intermediate import ANLI, ANLI_PLUS, QQP, SNLI, SST2
from xstilts_jax.tasks.examples import PairExample
from xstilts_jax.tasks.families.classification import featurize_pairs
from xstilts_jax.tasks.formats.pairs import SKIP_NO_GOLD_LABEL, SKIP_QQP_MALFORMED
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.sources.files import read_split, resolve

QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
SNLI_HEADER = ("gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
               "sentence2_parse sentence1 sentence2 captionID pairID label1 label2 label3 "
               "label4 label5").split()
GLUE_MNLI_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                    "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label").split()


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def expect(match, call):
    with pytest.raises(DataError, match=match) as info:
        call()
    return str(info.value)


def snli_txt_row(gold, s1, s2, k=0, annotators=1):
    labels = [gold] * annotators  # train rows carry label1 only
    return "\t".join([gold, "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, f"{k}.jpg#0",
                      f"{k}.jpg#0r1n"] + labels)


def snli_jsonl(gold, s1, s2, k=0):
    return json.dumps({"annotator_labels": [gold], "captionID": f"{k}.jpg#0", "gold_label": gold,
                       "pairID": f"{k}.jpg#0r1n", "sentence1": s1, "sentence1_binary_parse": "( x )",
                       "sentence1_parse": "(ROOT x)", "sentence2": s2,
                       "sentence2_binary_parse": "( y )", "sentence2_parse": "(ROOT y)"},
                      ensure_ascii=False)


def anli_line(context, hypothesis, label, uid="u"):
    return json.dumps({"uid": uid, "context": context, "hypothesis": hypothesis, "label": label,
                       "model_label": "e", "emturk": False, "genre": "", "reason": "r",
                       "tag": []}, ensure_ascii=False)


def write_anli(root, split, sizes):
    """anli_v1.0/R<n>/<split>.jsonl with sizes[n-1] lines; labels cycle e, n, c."""
    for r, n in enumerate(sizes, 1):
        write(root / "anli_v1.0" / f"R{r}" / f"{split}.jsonl",
              [anli_line(f"R{r} {split} premise {k}", f"R{r} hypothesis {k}", "enc"[k % 3],
                         f"r{r}-{k}") for k in range(n)])


# --------------------------------------------------------------------------- QQP


def test_qqp_glue_tsv(tmp_path, caplog):
    path = write(tmp_path / "qqp" / "train.tsv", [
        QQP_HEADER,
        "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of "
        "prepration is enough for the exam jlpt5?\t0",
        "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control "
        "your horniness?\t1",
        # A row broken by a newline inside question2 (old GLUE QQP copies): two short lines.
        "97931\t1\t2\tWas Muhammad a real historical figure? What is the",
        "\tevidence for his existence?\t0",
        "",
        "7\t8\t9\tQu'est-ce que « ça » veut dire ?\t¿Qué significa “eso”?\t1",
    ])
    with caplog.at_level(logging.WARNING):
        result = read_split(QQP, tmp_path, "train", "en")
    assert result.path == path and result.files == (path,)
    assert [(e.guid, e.label) for e in result.examples] == [
        ("qqp/train.tsv:2", 0), ("qqp/train.tsv:3", 1), ("qqp/train.tsv:7", 1)]
    assert result.examples[2] == PairExample("qqp/train.tsv:7", "Qu'est-ce que « ça » veut dire ?",
                                             "¿Qué significa “eso”?", 1, "en")
    assert result.skipped == {SKIP_QQP_MALFORMED: 2, "blank line": 1}
    assert "skipped 2 rows with fewer than 6 columns" in caplog.text
    assert "at lines 4, 5" in caplog.text
    # GLUE's folder name QQP/ is accepted too.
    write(tmp_path / "QQP" / "dev.tsv", [QQP_HEADER, "1\t2\t3\ta?\tb?\t0"])
    assert read_split(QQP, tmp_path, "dev", "en").examples[0].guid == "QQP/dev.tsv:2"
    assert QQP.labels == ("0", "1") and QQP.split_names == ("train", "dev")


def test_qqp_errors(tmp_path):
    path = write(tmp_path / "qqp" / "dev.tsv", [QQP_HEADER, "1\t2\t3\ta?\tb?\t0",
                                                "2\t4\t5\ta?\tb?\t2"])
    expect(rf"{re.escape(str(path))}:3: label '2' is not one of 0, 1",
           lambda: read_split(QQP, tmp_path, "dev", "en"))
    write(path, [QQP_HEADER, "1\t2\t3\ta?\tb\tc?\t0"])  # a tab inside a question
    expect(rf"{re.escape(str(path))}:2: 7 tab-separated columns, the header has 6",
           lambda: read_split(QQP, tmp_path, "dev", "en"))
    write(path, ["id\tquestion1\tquestion2", "1\ta?\tb?"])  # GLUE's unlabelled test.tsv layout
    expect(rf"{re.escape(str(path))}:1: the header has no column 'is_duplicate'",
           lambda: read_split(QQP, tmp_path, "dev", "en"))
    write(path, [QQP_HEADER, "1\t2\t3"])  # nothing but broken rows: skipped, then no examples
    expect(rf"{re.escape(str(path))}: no examples \(1 skipped: malformed row",
           lambda: read_split(QQP, tmp_path, "dev", "en"))
    expect(r"task 'qqp' has no split 'test'", lambda: read_split(QQP, tmp_path, "test", "en"))


# --------------------------------------------------------------------------- SST-2


def test_sst2_single_sentences(tmp_path):
    path = write(tmp_path / "SST-2" / "train.tsv", [
        "sentence\tlabel", "hide new secretions from the parental units \t0",
        "contains no wit , only labored gags \t0", "a touché , naïve and “lovely” film \t1"])
    result = read_split(SST2, tmp_path, "train", "en")
    assert result.path == path
    assert result.examples == (
        PairExample("SST-2/train.tsv:2", "hide new secretions from the parental units", None, 0,
                    "en"),
        PairExample("SST-2/train.tsv:3", "contains no wit , only labored gags", None, 0, "en"),
        PairExample("SST-2/train.tsv:4", "a touché , naïve and “lovely” film", None, 1, "en"))
    write(tmp_path / "sst2" / "train.tsv", ["sentence\tlabel", "ok \t1"])  # sst2/ first
    assert read_split(SST2, tmp_path, "train", "en").examples[0].guid == "sst2/train.tsv:2"


def test_sst2_errors(tmp_path):
    path = write(tmp_path / "sst2" / "dev.tsv", ["sentence\tlabel", "fine\t1", "bad\tpositive"])
    expect(rf"{re.escape(str(path))}:3: label 'positive' is not one of 0, 1",
           lambda: read_split(SST2, tmp_path, "dev", "en"))
    write(path, ["sentence\tlabel", "a\tb\t1"])
    expect(rf"{re.escape(str(path))}:2: 3 tab-separated columns, the header has 2",
           lambda: read_split(SST2, tmp_path, "dev", "en"))
    write(path, ["index\tsentence", "0\tunlabelled"])  # GLUE's test.tsv
    expect(rf"{re.escape(str(path))}:1: the header has no column 'label'",
           lambda: read_split(SST2, tmp_path, "dev", "en"))


# --------------------------------------------------------------------------- SNLI


def test_snli_jsonl(tmp_path, caplog):
    path = write(tmp_path / "snli" / "snli_1.0_dev.jsonl", [
        snli_jsonl("neutral", "Two women are embracing.", "The sisters are hugging.", 1),
        snli_jsonl("-", "No consensus.", "Skipped.", 2),
        snli_jsonl("contradiction", "Un café à Paris.", "Ein Mann schläft.", 3),
    ])
    with caplog.at_level(logging.WARNING):
        result = read_split(SNLI, tmp_path, "dev", "en")
    assert result.path == path
    assert [(e.guid, e.text_a, NLI_LABELS[e.label]) for e in result.examples] == [
        ("snli/snli_1.0_dev.jsonl:1", "Two women are embracing.", "neutral"),
        ("snli/snli_1.0_dev.jsonl:3", "Un café à Paris.", "contradiction")]
    assert result.skipped == {SKIP_NO_GOLD_LABEL: 1}
    assert f"{path}: skipped 1: {SKIP_NO_GOLD_LABEL}" in caplog.text
    write(tmp_path / "snli" / "snli_1.0_dev.txt", ["\t".join(SNLI_HEADER)])
    assert read_split(SNLI, tmp_path, "dev", "en").path == path  # the jsonl is read first


def test_snli_txt(tmp_path):
    path = write(tmp_path / "snli_1.0" / "snli_1.0_train.txt", [
        "\t".join(SNLI_HEADER),
        snli_txt_row("neutral", "A person on a horse jumps.", "A person trains.", 1),
        snli_txt_row("-", "x", "y", 2),
        snli_txt_row("entailment", "Kids smile.", "Kids are happy.", 3, annotators=5),
        snli_txt_row("contradiction", 'He said "hi.', "He is silent.", 4, annotators=3),
    ])
    result = read_split(SNLI, tmp_path, "train", "en")
    assert result.path == path and result.skipped == {SKIP_NO_GOLD_LABEL: 1}
    assert [(e.guid, e.text_b, NLI_LABELS[e.label]) for e in result.examples] == [
        ("snli_1.0/snli_1.0_train.txt:2", "A person trains.", "neutral"),
        ("snli_1.0/snli_1.0_train.txt:4", "Kids are happy.", "entailment"),
        ("snli_1.0/snli_1.0_train.txt:5", "He is silent.", "contradiction")]
    assert result.examples[2].text_a == 'He said "hi.'


def test_snli_errors(tmp_path):
    path = write(tmp_path / "snli" / "snli_1.0_test.txt", [
        "\t".join(SNLI_HEADER), snli_txt_row("neutral", "a", "b"),
        "\t".join(snli_txt_row("neutral", "a", "b").split("\t")[:9])])  # no label1 either
    expect(rf"{re.escape(str(path))}:3: 9 tab-separated columns, expected 10 to 14 \(the header "
           r"has 14, of which the last 4 may be absent\)",
           lambda: read_split(SNLI, tmp_path, "test", "en"))
    write(path, ["\t".join(SNLI_HEADER), snli_txt_row("neutral", "a", "b") + "\t" * 5])
    expect(rf"{re.escape(str(path))}:2: 15 tab-separated columns",
           lambda: read_split(SNLI, tmp_path, "test", "en"))
    jsonl = write(tmp_path / "snli" / "snli_1.0_test.jsonl",
                  [snli_jsonl("neutral", "a", "b"), snli_jsonl("contradicts", "a", "b")])
    expect(rf"{re.escape(str(jsonl))}:2: label 'contradicts' is not one of",
           lambda: read_split(SNLI, tmp_path, "test", "en"))
    write(jsonl, [snli_jsonl("neutral", "a", "b"), '{"gold_label": "neutral", "sentence1": "a"'])
    expect(rf"{re.escape(str(jsonl))}:2: invalid JSON",
           lambda: read_split(SNLI, tmp_path, "test", "en"))
    message = expect(r"task 'snli' split 'dev' \(en\): no data files; tried ",
                     lambda: read_split(SNLI, tmp_path, "dev", "en"))
    for name in ("snli/snli_1.0_dev.jsonl", "snli/snli_1.0_dev.txt",
                 "snli_1.0/snli_1.0_dev.jsonl", "snli_1.0/snli_1.0_dev.txt"):
        assert str(tmp_path / name) in message


# --------------------------------------------------------------------------- ANLI


def test_anli_rounds_combined_in_order(tmp_path):
    write_anli(tmp_path, "train", (2, 3, 1))
    result = read_split(ANLI, tmp_path, "train", "en")
    assert result.path == tmp_path / "anli_v1.0"
    assert result.files == tuple(tmp_path / "anli_v1.0" / r / "train.jsonl"
                                 for r in ("R1", "R2", "R3"))
    assert [e.guid for e in result.examples] == [
        "anli_v1.0/R1/train.jsonl:1", "anli_v1.0/R1/train.jsonl:2", "anli_v1.0/R2/train.jsonl:1",
        "anli_v1.0/R2/train.jsonl:2", "anli_v1.0/R2/train.jsonl:3", "anli_v1.0/R3/train.jsonl:1"]
    assert [NLI_LABELS[e.label] for e in result.examples] == [
        "entailment", "neutral", "entailment", "neutral", "contradiction", "entailment"]
    assert result.examples[3].text_a == "R2 train premise 1" and result.skipped == {}
    assert ANLI.split_names == ("train", "dev", "test") and ANLI.test_split is None


def test_anli_unicode_and_blank_lines(tmp_path):
    write_anli(tmp_path, "dev", (1, 1, 0))
    write(tmp_path / "anli_v1.0" / "R3" / "dev.jsonl",
          ["", anli_line("Zürich liegt am See — “Limmat”.", "北京是首都。", "c")])
    result = read_split(ANLI, tmp_path, "dev", "en")
    assert result.examples[-1] == PairExample("anli_v1.0/R3/dev.jsonl:2",
                                              "Zürich liegt am See — “Limmat”.", "北京是首都。",
                                              NLI_LABELS.index("contradiction"), "en")
    assert result.skipped == {"blank line": 1}


def test_anli_errors(tmp_path):
    write_anli(tmp_path, "test", (1, 1, 1))
    r2 = tmp_path / "anli_v1.0" / "R2" / "test.jsonl"
    write(r2, [anli_line("p", "h", "n"), anli_line("p", "h", "entailment")])
    expect(rf"{re.escape(str(r2))}:2: label 'entailment' is not one of e, n, c",
           lambda: read_split(ANLI, tmp_path, "test", "en"))
    write(r2, [json.dumps({"uid": "x", "context": "p", "label": "e"})])
    expect(rf"{re.escape(str(r2))}:1: field 'hypothesis' is missing",
           lambda: read_split(ANLI, tmp_path, "test", "en"))
    write(r2, [anli_line("p", "h", "n"), '{"uid": "x", "context": "p", "hypothesis": '])
    expect(rf"{re.escape(str(r2))}:2: invalid JSON",
           lambda: read_split(ANLI, tmp_path, "test", "en"))
    write(r2, ['["p", "h", "n"]'])
    expect(rf"{re.escape(str(r2))}:1: expected a JSON object, got list",
           lambda: read_split(ANLI, tmp_path, "test", "en"))
    r2.unlink()
    expect(r"task 'anli' split 'test' \(en\): no data files for part 2 of 3; tried "
           rf"{re.escape(str(r2))} \(ANLI v1.0 release\)$",
           lambda: read_split(ANLI, tmp_path, "test", "en"))


# --------------------------------------------------------------------------- ANLI+


def test_anli_plus_composition(tmp_path):
    write_anli(tmp_path, "train", (2, 3, 4))
    write(tmp_path / "mnli" / "train.tsv", ["\t".join(GLUE_MNLI_HEADER)] + [
        "\t".join([str(k), str(k), f"{k}e", "fiction", "_", "_", "_", "_", f"mnli {k}", "h", y, y])
        for k, y in enumerate(("entailment", "neutral", "contradiction"))])
    write(tmp_path / "snli" / "snli_1.0_train.jsonl", [
        snli_jsonl("neutral", "snli 0", "h"), snli_jsonl("-", "snli 1", "h"),
        snli_jsonl("entailment", "snli 2", "h"), snli_jsonl("contradiction", "snli 3", "h")])
    write_anli(tmp_path, "dev", (1, 1, 2))
    result = read_split(ANLI_PLUS, tmp_path, "train", "en")
    sources = [e.guid.rsplit(":", 1)[0] for e in result.examples]
    assert sources == (["anli_v1.0/R1/train.jsonl"] * 2 + ["anli_v1.0/R2/train.jsonl"] * 3
                       + ["anli_v1.0/R3/train.jsonl"] * 4 + ["mnli/train.tsv"] * 3
                       + ["snli/snli_1.0_train.jsonl"] * 3)
    assert len(result) == 9 + 3 + 3 and len({e.guid for e in result.examples}) == len(result)
    assert [e.text_a for e in result.examples[9:]] == [
        "mnli 0", "mnli 1", "mnli 2", "snli 0", "snli 2", "snli 3"]
    assert result.skipped == {SKIP_NO_GOLD_LABEL: 1}
    assert result.path == tmp_path and len(result.files) == 5
    assert result.files[3:] == (tmp_path / "mnli" / "train.tsv",
                                tmp_path / "snli" / "snli_1.0_train.jsonl")
    dev = read_split(ANLI_PLUS, tmp_path, "dev", "en")
    assert [e.guid for e in dev.examples] == [
        "anli_v1.0/R1/dev.jsonl:1", "anli_v1.0/R2/dev.jsonl:1", "anli_v1.0/R3/dev.jsonl:1",
        "anli_v1.0/R3/dev.jsonl:2"]
    assert ANLI_PLUS.split_names == ("train", "dev") and ANLI_PLUS.test_split is None
    expect(r"task 'anli_plus' has no split 'test'; its splits: train, dev$",
           lambda: read_split(ANLI_PLUS, tmp_path, "test", "en"))
    # The paper's count: ANLI R1-R3 + MNLI + SNLI (less its '-' pairs).
    assert (16_946 + 45_460 + 100_459) + 392_702 + (550_152 - 785) == 1_104_934


def test_anli_plus_missing_part_reported_before_reading(tmp_path):
    write_anli(tmp_path, "train", (1, 1, 1))
    write(tmp_path / "mnli" / "train.tsv", ["not even a valid header"])  # never read
    message = expect(r"task 'anli_plus' split 'train' \(en\): no data files for part 5 of 5; "
                     r"tried .*snli/snli_1.0_train.jsonl \(SNLI 1.0 release\); ",
                     lambda: read_split(ANLI_PLUS, tmp_path, "train", "en"))
    assert str(tmp_path / "snli_1.0" / "snli_1.0_train.txt") in message


# --------------------------------------------------------------------------- registry


def test_registry_entries():
    names = [t.name for t in TASKS]
    assert len(set(names)) == len(names)
    assert task_names(family="classification") == (
        "anli", "anli_plus", "mnli", "pawsx", "qqp", "snli", "sst2", "synthetic_nli",
        "synthetic_paraphrase", "xnli")
    for spec in (QQP, SST2, SNLI, ANLI, ANLI_PLUS):
        task = get_task(spec.name)
        assert task is spec and task.family == "classification"
        assert task.languages == spec.languages == ("en",)
        assert task.test_split is None and spec.dev_split in spec.split_names
        # Trains and selects on its own splits (not another task's).
        assert (task.train_split, task.dev_split) == ("train", "dev")
        assert resolve(task, task.train_split, "en") == (spec, "train")
        assert resolve(task, task.dev_split, "en") == (spec, spec.dev_split)
        assert task.labels == spec.labels
    assert ANLI.labels == ANLI_PLUS.labels == SNLI.labels == NLI_LABELS


def test_registry_reads_single_sentences(tmp_path):
    write(tmp_path / "sst2" / "dev.tsv", ["sentence\tlabel", "great fun \t1"])
    result = read("sst2", tmp_path, "dev")
    assert result.examples == (PairExample("sst2/dev.tsv:2", "great fun", None, 1, "en"),)
    expect(r"task 'sst2' has no test split", lambda: read("sst2", tmp_path, "test"))


# --------------------------------------------------------------------------- features

TEXTS = ["hide new secretions from the parental units",
         "a touché , naïve and “lovely” film — 北京",
         "it 's a charming and often affecting journey ."]


def test_featurize_single_sentences_xlmr(xlmr_tokenizer):
    examples = [PairExample(f"s:{k}", t, None, k % 2, "en") for k, t in enumerate(TEXTS)]
    features = featurize_pairs(xlmr_tokenizer, examples, max_length=128)
    assert features.input_ids == [xlmr_tokenizer(t)["input_ids"] for t in TEXTS]
    for row in features.input_ids:  # <s> A </s>
        assert row[0] == xlmr_tokenizer.bos_token_id and row[-1] == xlmr_tokenizer.eos_token_id
        assert row.count(xlmr_tokenizer.eos_token_id) == 1
    assert features.labels.dtype == np.int32 and features.labels.tolist() == [0, 1, 0]
    assert features.num_truncated == 0 and features.guids == ["s:0", "s:1", "s:2"]
    assert [len(t) for t in features.token_type_ids] == [len(i) for i in features.input_ids]
    assert featurize_pairs(xlmr_tokenizer, examples, 128, chunk_size=2).input_ids == \
        features.input_ids


def test_featurize_pairs_xlmr(xlmr_tokenizer):
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], "Was Muhammad a real historical figure?")]
    examples = [PairExample(f"p:{k}", a, b, 1, "en") for k, (a, b) in enumerate(pairs)]
    features = featurize_pairs(xlmr_tokenizer, examples, max_length=128)
    assert features.input_ids == [xlmr_tokenizer(a, b)["input_ids"] for a, b in pairs]
    assert features.input_ids[0].count(xlmr_tokenizer.eos_token_id) == 3  # <s> A </s></s> B </s>


def test_featurize_single_truncation_and_errors(xlmr_tokenizer):
    examples = [PairExample("t:0", TEXTS[0], None, 0, "en"), PairExample("t:1", "ok", None, 1, "en")]
    full = xlmr_tokenizer(TEXTS[0])["input_ids"]
    features = featurize_pairs(xlmr_tokenizer, examples, max_length=5)
    assert features.input_ids[0] == full[:4] + [full[-1]] and features.num_truncated == 1
    assert features.input_ids[1] == xlmr_tokenizer("ok")["input_ids"]
    featurize_pairs(xlmr_tokenizer, examples, max_length=3)  # <s> one token </s>
    with pytest.raises(ValueError, match="max_length 2 leaves no room for a sentence"):
        featurize_pairs(xlmr_tokenizer, examples, max_length=2)
    mixed = examples + [PairExample("t:2", "a", "b", 0, "en")]
    with pytest.raises(ValueError, match=r"2 of 3 examples are single sentences"):
        featurize_pairs(xlmr_tokenizer, mixed, max_length=32)
