"""``data.source = "tfds"`` (xstilts_jax.tasks.sources.tfds): read_tfds against TFDS builders
prepared offline from local files.

Each dataset is prepared by the REAL TFDS builder class (its ``_info``, feature specs,
``_generate_examples`` and TFDS's own writer, ``file_format="array_record"``, no
TensorFlow), subclassed only so that ``_split_generators`` points at local files instead of
downloading. The subclass keeps the builder's registered name, config and version, so the
prepared folder is ``<data_dir>/<builder>/<config>/<version>`` exactly as ``tfds build``
writes it, and ``read_tfds`` reads it through ``tfds.data_source`` with the registered class.

Where a builder's generator calls ``tf.io.gfile`` (multi_nli, wikiann, tatoeba, bucc), its
module's ``tf`` is replaced during preparation by a stand-in serving those few file calls
from the local file system; the generator's own code still runs. xtreme_pos needs the
``conllu`` package, which is not installed: its ``_generate_examples`` is replaced by one that
parses with our ``read_conllu`` and filters tokens with TFDS's own ``get_xtreme_pos_example``.

XQuAD, Tatoeba and UD use the real files in ``../shared/data`` (skipped when absent); the
others use tiny files written here in each builder's raw format. The builders of the English
intermediate tasks (glue/qqp, glue/sst2, glue/mnli, snli, anli/r1-r3, squad/v2.0, hellaswag,
cosmos_qa) read their raw files with ``etils.epath`` and are prepared unchanged.
"""

from __future__ import annotations

import collections
import csv
import glob
import importlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import types

import pytest

from conftest import REPO, SHARED_DATA
from xstilts_jax.tasks import UnknownTaskError, get_task, read
from xstilts_jax.tasks.catalog.common import NLI_LABELS
from xstilts_jax.tasks.catalog.intermediate import QQP, SST2
from xstilts_jax.tasks.catalog.xtreme import PAWSX_LABELS, UD_LANGUAGE_NAMES, UDPOS_LANGUAGES
from xstilts_jax.tasks.examples import BuccData, MCExample, TranslationPair
from xstilts_jax.tasks.formats.conllu import UPOS_TAGS, read_conllu
from xstilts_jax.tasks.formats.pairs import SKIP_NO_GOLD_LABEL
from xstilts_jax.tasks.formats.squad import read_squad
from xstilts_jax.tasks.formats.word_tags import PANX_LABELS
from xstilts_jax.tasks.io import DataError, ReadResult
from xstilts_jax.tasks.sources import files
from xstilts_jax.tasks.sources import tfds as tfds_source
from xstilts_jax.tasks.sources.tfds import read_tfds

tfds = pytest.importorskip("tensorflow_datasets")

XQUAD_LANGS = ("ar", "de")
TATOEBA_LANGS = ("de", "sw")


def _need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"real data not found: {path} (the shared data folder ../shared/data is "
                    f"absent)")
    return path


# --------------------------------------------------------------------------- preparation


def _open(path, mode="r"):
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8", newline="")


# Stand-in for the few TensorFlow calls some TFDS generators make (tf.io.gfile, tf.compat).
_TF_STANDIN = types.SimpleNamespace(
    io=types.SimpleNamespace(gfile=types.SimpleNamespace(
        GFile=_open, listdir=os.listdir, glob=glob.glob)),
    compat=types.SimpleNamespace(
        as_text=lambda b: b.decode("utf-8") if isinstance(b, bytes) else b),
)


def prepare(data_dir: pathlib.Path, builder: str, config: str | None,
            splits: dict[str, dict], *, generate_examples=None) -> pathlib.Path:
    """Prepare ``builder[/config]`` into ``data_dir`` with the registered builder class, its
    ``_split_generators`` replaced by ``{split: self._generate_examples(**kwargs)}``."""
    base = tfds_source._builder_cls(builder)  # imports TFDS's legacy module where needed

    def split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        return {split: self._generate_examples(**kwargs) for split, kwargs in splits.items()}

    body = {"name": builder, "pkg_dir_path": base._get_pkg_dir_path(),
            "_split_generators": split_generators}
    if generate_examples is not None:
        body["_generate_examples"] = generate_examples
    local = types.new_class(f"Local_{builder}", (base,), {"skip_registration": True},
                            lambda ns: ns.update(body))
    module = importlib.import_module(base.__module__)
    with pytest.MonkeyPatch.context() as mp:
        if hasattr(module, "tf"):
            mp.setattr(module, "tf", _TF_STANDIN)
        kwargs = {"config": config} if config is not None else {}
        b = local(data_dir=os.fspath(data_dir), **kwargs)
        b.download_and_prepare(
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return pathlib.Path(b.data_dir)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    tfds.disable_progress_bar()
    return tmp_path_factory.mktemp("tfds_data")


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds_raw")


@pytest.fixture(scope="session")
def xquad(data_dir):
    files = {lang: _need(SHARED_DATA / "xquad" / f"xquad.{lang}.json") for lang in XQUAD_LANGS}
    for lang, path in files.items():
        prepare(data_dir, "xquad", lang, {"test": {"filepath": os.fspath(path)}})
    return files


XNLI_COLUMNS = ("language gold_label sentence1_binary_parse sentence2_binary_parse "
                "sentence1_parse sentence2_parse sentence1 sentence2 promptID pairID genre "
                "label1 label2 label3 label4 label5 sentence1_tokenized sentence2_tokenized "
                "match").split()
XNLI_GOLD = {"dev": ("neutral", "contradiction", "entailment", "contradiction"),
             "test": ("entailment", "neutral", "contradiction")}


def _write_xnli(path: pathlib.Path, split: str) -> None:
    """XNLI-1.0's xnli.<split>.tsv layout: a header, one row per (pair, language)."""
    langs = importlib.import_module("tensorflow_datasets.text.xnli")._LANGUAGES
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(XNLI_COLUMNS) + "\n")
        for i, gold in enumerate(XNLI_GOLD[split]):
            for lang in langs:
                row = dict.fromkeys(XNLI_COLUMNS, "_")
                row.update(language=lang, gold_label=gold, pairID=f"{split}{i}",
                           sentence1=f"{lang} {split} premise {i} ",
                           sentence2=f"{lang} {split} hypothesis {i}")
                f.write("\t".join(row[c] for c in XNLI_COLUMNS) + "\n")


@pytest.fixture(scope="session")
def xnli(data_dir, raw_dir):
    paths = {}
    for split, tfds_split in (("dev", "validation"), ("test", "test")):
        paths[tfds_split] = raw_dir / f"xnli.{split}.tsv"
        _write_xnli(paths[tfds_split], split)
    prepare(data_dir, "xnli", None, {s: {"filepath": os.fspath(p)} for s, p in paths.items()})
    # MultiNLI (XNLI's training data): multinli_1.0_train.txt layout, header + 14 columns;
    # a "-" (no consensus) row, which TFDS drops.
    mnli = raw_dir / "multinli_1.0_train.txt"
    rows = [("entailment", "a man sleeps", "a person sleeps"),
            ("-", "no consensus", "dropped"),
            ("contradiction", "the cat is black", "the cat is white"),
            ("neutral", "she sings", "she sings well")]
    header = ("gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
              "sentence2_parse sentence1 sentence2 promptID pairID genre label1 label2 "
              "label3 label4 label5").split()
    with open(mnli, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for k, (gold, s1, s2) in enumerate(rows):
            f.write("\t".join([gold, "_", "_", "_", "_", s1, s2, str(k), f"{k}e", "fiction",
                               gold, "_", "_", "_", "_"]) + "\n")
    prepare(data_dir, "multi_nli", None, {"train": {"filepath": os.fspath(mnli)}})
    return rows


@pytest.fixture(scope="session")
def pawsx(data_dir, raw_dir):
    """x-final/<lang>/{train,dev_2k,test_2k}.tsv: id, sentence1, sentence2, label (a row
    with a broken label, which TFDS drops)."""
    content = {"train": [("1", "a b", "b a", "1"), ("2", "c d", "e f", "0")],
               "dev_2k": [("1", "x y", "y x", "0"), ("2", "p q", "p q", "1"),
                          ("3", "broken", "row", "")],
               "test_2k": [("1", "m n", "n m", "1")]}
    for lang in ("en", "de"):
        splits = {}
        for name, rows in content.items():
            path = raw_dir / "pawsx" / lang / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write("id\tsentence1\tsentence2\tlabel\n")
                for r in rows:
                    f.write("\t".join((r[0], f"{lang}:{r[1]}", f"{lang}:{r[2]}", r[3])) + "\n")
            splits[{"train": "train", "dev_2k": "validation", "test_2k": "test"}[name]] = {
                "path": os.fspath(path)}
        prepare(data_dir, "paws_x_wiki", lang, splits)
    return content


def _squad_json(path: pathlib.Path, paragraphs: list[tuple[str, list[tuple[str, str, str]]]]):
    """A SQuAD v1.1 file: [(context, [(id, question, answer text)])]; answer at its first
    occurrence in the context."""
    data = [{"title": f"t{i}", "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
        for qid, q, a in qas]}]} for i, (context, qas) in enumerate(paragraphs)]
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return os.fspath(path)


@pytest.fixture(scope="session")
def qa_small(data_dir, raw_dir):
    """MLQA de (validation, test), SQuAD v1.1 train, TyDiQA-GoldP (train of two languages,
    per-language validation)."""
    mlqa_dev = _squad_json(raw_dir / "mlqa-dev.json", [
        ("Berlin ist die Hauptstadt.", [("m1", "Was ist Berlin?", "die Hauptstadt")])])
    mlqa_test = _squad_json(raw_dir / "mlqa-test.json", [
        ("Der Rhein fließt nach Norden.", [("m2", "Wohin fließt er?", "nach Norden"),
                                           ("m3", "Was fließt?", "Der Rhein")])])
    prepare(data_dir, "mlqa", "de", {"validation": {"filepath": mlqa_dev},
                                     "test": {"filepath": mlqa_test}})
    squad = _squad_json(raw_dir / "squad-train.json", [
        ("The sky is blue.", [("s1", "What colour is the sky?", "blue")])])
    prepare(data_dir, "squad", "v1.1", {"train": {"filepath": squad}})
    train = _squad_json(raw_dir / "tydi-train.json", [
        ("Paris is in France.", [("english-101-0", "Where is Paris?", "in France")]),
        ("Tokyo is big.", [("english-102-0", "What is big?", "Tokyo")]),
        ("القاهرة مدينة", [("arabic-201-0", "ما القاهرة؟", "مدينة")])])
    dev_en = _squad_json(raw_dir / "tydi-dev-en.json", [
        ("Rome is old.", [("english-301-0", "What is old?", "Rome")])])
    dev_ar = _squad_json(raw_dir / "tydi-dev-ar.json", [
        ("دمشق قديمة", [("arabic-401-0", "ما القديمة؟", "دمشق")])])
    prepare(data_dir, "tydi_qa", "goldp", {"train": {"filepath": train},
                                          "validation-en": {"filepath": dev_en},
                                          "validation-ar": {"filepath": dev_ar}})


PANX = {"train": [[("en:Rick", "B-PER"), ("en:Sanchez", "I-PER"), ("en:lives", "O"),
                   ("en:in", "O"), ("en:New", "B-LOC"), ("en:York", "I-LOC")],
                  [("en:Acme", "B-ORG"), ("en:Corp:", "I-ORG"), ("en:.", "O")]],
        "validation": [[("en:Paris", "B-LOC"), ("en:!", "O")]],
        "test": [[("en:Google", "B-ORG")], [("en:ok", "O")], [("en:Anna", "B-PER")]]}


@pytest.fixture(scope="session")
def panx(data_dir, raw_dir):
    """PAN-X (Rahimi et al.) files as in panx_dataset.tar: ``lang:token<TAB>tag``, blank
    line between sentences."""
    splits = {}
    for split, sentences in PANX.items():
        path = raw_dir / f"panx-en-{split}"
        path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences)
                        + "\n", encoding="utf-8")
        splits[split] = {"filepath": os.fspath(path)}
    prepare(data_dir, "wikiann", "en", splits)
    return PANX


@pytest.fixture(scope="session")
def udpos(data_dir):
    """xtreme_pos German test split from the real UD German-GSD test treebank."""
    path = _need(SHARED_DATA / "udpos" / "de_gsd-ud-test.conllu")
    conll = importlib.import_module(
        "tensorflow_datasets.core.dataset_builders.conll.conllu_dataset_builder")

    def generate_examples(self, filepaths, process_example_fn=conll.get_xtreme_pos_example):
        # Stand-in for conllu.parse_incr (conllu is not installed): our read_conllu gives
        # the words; TFDS's own process_example_fn drops '_' tokens as the builder does.
        key = 0
        for filepath in filepaths:
            for sentence in read_conllu(filepath, "de"):
                tokens = [{"form": w, "upos": t} for w, t in zip(sentence.words, sentence.tags)]
                yield key, process_example_fn(sentence=tokens, example_id=key,
                                              features=self.builder_config.features)
                key += 1

    config = tfds_source.tfds_split("udpos", "test", "de").config
    prepare(data_dir, "xtreme_pos", config, {"test": {"filepaths": [os.fspath(path)]}},
            generate_examples=generate_examples)
    return path


@pytest.fixture(scope="session")
def tatoeba(data_dir):
    folder = _need(SHARED_DATA / "tatoeba")
    for lang in TATOEBA_LANGS:
        fmt, (source, english) = files.find_files("tatoeba", folder.parent, "test", lang)
        assert fmt == "tatoeba"  # LASER's files, line-aligned
        prepare(data_dir, "tatoeba", f"tatoeba_{lang}",
                {"train": {"source_file": os.fspath(_need(source)),
                           "target_file": os.fspath(_need(english))}})
    return folder


BUCC_DE = {"de-000001": "Hallo Welt", "de-000002": "Guten Morgen", "de-000003": "Unpaired"}
BUCC_EN = {"en-000010": "Hello world", "en-000020": "Good morning", "en-000030": "Lonely"}
BUCC_GOLD = (("de-000001", "en-000010"), ("de-000002", "en-000020"))


@pytest.fixture(scope="session")
def bucc(data_dir, raw_dir):
    """bucc2018-de-en.training-gold layout: bucc2018/de-en/de-en.training.{de,en,gold}."""
    folder = raw_dir / "bucc2018" / "de-en"
    folder.mkdir(parents=True)
    for suffix, rows in (("de", BUCC_DE.items()), ("en", BUCC_EN.items()), ("gold", BUCC_GOLD)):
        with open(folder / f"de-en.training.{suffix}", "w", encoding="utf-8", newline="") as f:
            csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    prepare(data_dir, "bucc", "bucc_de", {"test": {"filepath": os.fspath(folder)}})


# --------------------------------------------------------------------------- QA


@pytest.mark.parametrize("lang", XQUAD_LANGS)
def test_xquad_equals_read_squad(xquad, data_dir, lang):
    ours = read_squad(xquad[lang], lang)
    got = read_tfds("xquad", "test", lang, data_dir=data_dir)
    assert isinstance(got, ReadResult) and got.language == lang
    assert got.path == data_dir / "xquad" / lang / "3.0.0"
    assert len(got) == len(ours) == 1190
    by_id = {e.id: e for e in ours}
    assert [e.id for e in got] != [e.id for e in ours]  # TFDS order: hashed keys, not the file
    assert sorted(e.id for e in got) == sorted(by_id)
    for e in got:
        o = by_id[e.id]
        assert (e.question, e.context, e.answers, e.title) == (
            o.question, o.context, o.answers, o.title)
    # Same questions share a paragraph in both (240 paragraphs).
    pairs = {(by_id[e.id].paragraph, e.paragraph) for e in got}
    assert len(pairs) == len({p for p, _ in pairs}) == len({q for _, q in pairs}) == 240


def test_qa_mlqa_squad_tydiqa(qa_small, data_dir):
    dev = read_tfds("mlqa", "dev", "de", data_dir=data_dir)
    assert [(e.id, e.answers) for e in dev] == [("m1", (("die Hauptstadt", 11),))]
    test = read_tfds("mlqa", "test", "de", data_dir=data_dir)
    assert {e.id: e.answers[0][0] for e in test} == {"m2": "nach Norden", "m3": "Der Rhein"}
    assert len({e.paragraph for e in test}) == 1
    # XQuAD / MLQA train is SQuAD v1.1, English only.
    assert [e.id for e in read_tfds("xquad", "train", "en", data_dir=data_dir)] == ["s1"]
    assert [e.id for e in read_tfds("squad", "train", "en", data_dir=data_dir)] == ["s1"]
    # TyDiQA-GoldP: train filtered to the language's ids, test = validation-<lang>.
    assert sorted(e.id for e in read_tfds("tydiqa", "train", "en", data_dir=data_dir)) == [
        "english-101-0", "english-102-0"]
    assert [e.id for e in read_tfds("tydiqa", "train", "ar", data_dir=data_dir)] == [
        "arabic-201-0"]
    ar = read_tfds("tydiqa", "test", "ar", data_dir=data_dir)
    assert [(e.id, e.context, e.answers) for e in ar] == [
        ("arabic-401-0", "دمشق قديمة", (("دمشق", 0),))]
    # The English dev split is the English test file (validation-en), as in the files layout.
    for split in ("dev", "test"):
        en = read_tfds("tydiqa", split, "en", data_dir=data_dir)
        assert [(e.id, e.context, e.answers) for e in en] == [
            ("english-301-0", "Rome is old.", (("Rome", 0),))]


# --------------------------------------------------------------------------- pairs


def test_xnli_labels_by_name(xnli, data_dir):
    names = tfds.builder("xnli", data_dir=os.fspath(data_dir)).info.features["label"].names
    assert tuple(names) != NLI_LABELS  # the mapping is needed
    for split in ("dev", "test"):
        for lang in ("de", "sw", "en"):
            got = read_tfds("xnli", split, lang, data_dir=data_dir)
            assert isinstance(got, ReadResult)
            assert got.path == data_dir / "xnli" / "1.1.0"
            assert len(got) == len(XNLI_GOLD[split]) and got.skipped == {}
            for e in got.examples:
                i = int(e.text_a.split()[-1])
                assert e.text_a == f"{lang} {split} premise {i}"  # stripped
                assert e.text_b == f"{lang} {split} hypothesis {i}"
                assert NLI_LABELS[e.label] == XNLI_GOLD[split][i]
                assert e.language == lang
                assert e.guid.startswith(f"xnli:{'validation' if split == 'dev' else 'test'}:")


def test_xnli_train_is_multinli(xnli, data_dir):
    rows = [r for r in xnli if r[0] != "-"]
    for task in ("xnli", "mnli"):
        got = read_tfds(task, "train", "en", data_dir=data_dir)
        assert sorted((e.text_a, e.text_b, NLI_LABELS[e.label])
                      for e in got.examples) \
            == sorted((s1, s2, gold) for gold, s1, s2 in rows)
    with pytest.raises(DataError, match=r"task 'xnli' split 'train' exists only in 'en' "
                                        r"\(XTREME trains in English\), not 'de'"):
        read_tfds("xnli", "train", "de", data_dir=data_dir)


def test_pawsx_labels_by_name(pawsx, data_dir):
    for lang in ("en", "de"):
        got = read_tfds("pawsx", "dev", lang, data_dir=data_dir)
        assert sorted((e.text_a, e.text_b, PAWSX_LABELS[e.label])
                      for e in got.examples) == [
            (f"{lang}:p q", f"{lang}:p q", "1"), (f"{lang}:x y", f"{lang}:y x", "0")]
    train = read_tfds("pawsx", "train", "en", data_dir=data_dir)
    assert sorted(PAWSX_LABELS[e.label] for e in train.examples) == ["0", "1"]
    assert len(read_tfds("pawsx", "test", "de", data_dir=data_dir)) == 1
    with pytest.raises(DataError, match=r"task 'pawsx' split 'train' exists only in 'en' "
                                        r"\(XTREME trains in English\), not 'de'"):
        read_tfds("pawsx", "train", "de", data_dir=data_dir)


# --------------------------------------------------------------------------- tagging


def test_panx_tags_as_strings(panx, data_dir):
    for split, ours in (("train", "train"), ("dev", "validation"), ("test", "test")):
        got = read_tfds("panx", split, "en", data_dir=data_dir)
        assert isinstance(got, ReadResult) and got.path == data_dir / "wikiann/en/1.0.0"
        want = sorted((tuple(w.split(":", 1)[1] for w, _ in s), tuple(t for _, t in s))
                      for s in panx[ours])
        assert sorted((e.words, e.tags) for e in got) == want
        assert all(isinstance(t, str) and t in PANX_LABELS for e in got for t in e.tags)


def test_udpos_equals_read_conllu(udpos, data_dir):
    ours = read_conllu(udpos, "de")
    got = read_tfds("udpos", "test", "de", data_dir=data_dir)
    assert got.path == data_dir / "xtreme_pos" / "xtreme_pos_de" / "1.0.0"
    # xtreme_pos drops tokens whose form or UPOS is '_'.
    want = [(tuple(w for w, t in zip(s.words, s.tags) if w != "_" and t != "_"),
             tuple(t for w, t in zip(s.words, s.tags) if w != "_" and t != "_")) for s in ours]
    want = [s for s in want if s[0]]
    assert len(got) == len(want) > 900
    assert collections.Counter((e.words, e.tags) for e in got) == collections.Counter(want)
    assert {t for e in got for t in e.tags} <= set(UPOS_TAGS)


def test_udpos_tamil_tagalog_configs():
    langs = importlib.import_module(
        "tensorflow_datasets.datasets.xtreme_pos.xtreme_pos_dataset_builder")._LANGS
    for ours, name in (("ta", "Tamil"), ("tl", "Tagalog"), ("de", "German")):
        config = tfds_source.tfds_split("udpos", "test", ours).config
        assert langs[config.removeprefix("xtreme_pos_")] == name


# --------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize("lang", TATOEBA_LANGS)
def test_tatoeba_equals_read_tatoeba(tatoeba, data_dir, lang):
    got = read_tfds("tatoeba", "test", lang, data_dir=data_dir)
    assert isinstance(got, ReadResult) and got.language == lang
    assert all(isinstance(p, TranslationPair) for p in got)
    source, english = [p.source for p in got], [p.english for p in got]
    ours = files.read_split("tatoeba", tatoeba.parent, "test", lang)
    ours_source, ours_english = [p.source for p in ours], [p.english for p in ours]
    assert len(source) == len(english) == len(ours_source)
    assert sorted(zip(source, english)) == sorted(zip(ours_source, ours_english))
    assert not any(s.endswith("\n") for s in source + english)


def test_bucc_gold_pairs(bucc, data_dir):
    got = read_tfds("bucc2018", "test", "de", data_dir=data_dir)
    assert isinstance(got, BuccData) and got.language == "de"
    assert sorted(got.gold) == sorted(BUCC_GOLD)
    assert got.source == {k: BUCC_DE[k] for k, _ in BUCC_GOLD}  # gold-paired sentences only
    assert got.english == {k: BUCC_EN[k] for _, k in BUCC_GOLD}
    assert got.complete is False  # not BUCC's whole monolingual pools


# --------------------------------------------------------------------------- intermediate tasks

GLUE_MNLI_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                    "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label").split()
QQP_ROWS = {"train": [("1", "How do I learn Python?", "What is the best way to learn Python?", "1"),
                      ("2", "Why is the sky blue?", "How tall is Everest?", "0"),
                      ("3", "Wie geht's — ça va?", "Is “this” unicode?", "0")],
            "validation": [("4", "What is AI?", "What is artificial intelligence?", "1")]}
SST2_ROWS = {"train": [("hide new secretions from the parental units ", "0"),
                       ("the greatest musicians ", "1"), ("a touché , naïve film ", "1")],
             "validation": [("it 's a charming and often affecting journey . ", "1")]}


def _write_tsv(path: pathlib.Path, header, rows, extra: str = "") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
                    + extra, encoding="utf-8")
    return os.fspath(path)


def _glue_split(path, split):
    return {"data_file": path, "split": split}


@pytest.fixture(scope="session")
def glue_raw(raw_dir):
    """GLUE's QQP/, SST-2/ and MNLI/ folders (a malformed QQP row, which glue/qqp drops)."""
    root = raw_dir / "glue"
    files = {}
    for split, name in (("train", "train"), ("validation", "dev")):
        files["qqp", split] = _write_tsv(
            root / "QQP" / f"{name}.tsv", "id qid1 qid2 question1 question2 is_duplicate".split(),
            [(i, "10", "11", q1, q2, y) for i, q1, q2, y in QQP_ROWS[split]],
            # A row broken by a newline inside question2, as in old copies of GLUE's QQP.
            extra="9\t90\t91\tWas Muhammad real?\tWhat is the\n\tevidence?\t0\n"
            if split == "train" else "")
        files["sst2", split] = _write_tsv(root / "SST-2" / f"{name}.tsv", ["sentence", "label"],
                                          SST2_ROWS[split])
    mnli = [("A man sleeps.", "A person sleeps.", "entailment"),
            ("The cat is black.", "The cat is white.", "contradiction")]
    files["mnli", "train"] = _write_tsv(
        root / "MNLI" / "train.tsv", GLUE_MNLI_HEADER,
        [(str(k), str(k), f"{k}e", "fiction", "_", "_", "_", "_", a, b, y, y)
         for k, (a, b, y) in enumerate(mnli)])
    return files, mnli


@pytest.fixture(scope="session")
def glue(data_dir, glue_raw):
    files, _ = glue_raw
    for config in ("qqp", "sst2"):
        prepare(data_dir, "glue", config, {s: _glue_split(files[config, s], "train" if
                                                          s == "train" else "dev")
                                           for s in ("train", "validation")})
    return files


SNLI_HEADER = ("gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
               "sentence2_parse sentence1 sentence2 captionID pairID label1 label2 label3 "
               "label4 label5").split()
SNLI_ROWS = {"train": [("neutral", "A person on a horse jumps.", "A person trains a horse."),
                       ("-", "No consensus.", "Dropped."),
                       ("contradiction", "Kids smile.", "Kids frown.")],
             "validation": [("entailment", "Two dogs run.", "Animals run.")]}


@pytest.fixture(scope="session")
def snli(data_dir, raw_dir):
    """snli_1.0_{train,dev}.txt: train rows carry label1 only (no label2-5 columns)."""
    splits = {}
    for split, name in (("train", "train"), ("validation", "dev")):
        rows = [(y, "_", "_", "_", "_", a, b, f"{k}.jpg#0", f"{k}.jpg#0r1n", y)
                + (() if split == "train" else (y, y, y, y))
                for k, (y, a, b) in enumerate(SNLI_ROWS[split])]
        splits[split] = {"filepath": _write_tsv(raw_dir / "snli_1.0" / f"snli_1.0_{name}.txt",
                                                SNLI_HEADER, rows)}
    prepare(data_dir, "snli", None, splits)
    return SNLI_ROWS


ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def anli_rows(round_, split):
    n = {"train": 2, "dev": 1}[split] + int(round_[1])  # R1: 3 train, R2: 4, R3: 5
    return [{"uid": f"{round_}-{split}-{k}", "context": f"{round_} {split} context {k} é",
             "hypothesis": f"{round_} {split} hypothesis {k}", "label": "enc"[k % 3],
             "model_label": "e", "emturk": False, "genre": "wiki", "reason": "", "tag": []}
            for k in range(n)]


@pytest.fixture(scope="session")
def anli(data_dir, raw_dir):
    """anli_v0.1/R<n>/{train,dev}.jsonl (the release TFDS downloads), rounds of 3, 4, 5 train
    examples."""
    for round_ in ("R1", "R2", "R3"):
        splits = {}
        for split, name in (("train", "train"), ("validation", "dev")):
            path = raw_dir / "anli_v0.1" / round_ / f"{name}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                    for r in anli_rows(round_, name)), encoding="utf-8")
            splits[split] = {"filepath": os.fspath(path)}
        prepare(data_dir, "anli", round_.lower(), splits)


@pytest.fixture(scope="session")
def squad_v2(data_dir, raw_dir):
    context = "The Normans gave their name to Normandy, a region in France."
    data = {"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [{
        "context": context, "qas": [
            {"id": "q1", "question": "To what region did the Normans give their name?",
             "is_impossible": False,
             "answers": [{"text": "Normandy", "answer_start": context.index("Normandy")}]},
            {"id": "q2", "question": "What did the French give to Normandy?",
             "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "their name", "answer_start": 19}]}]}]}]}
    path = raw_dir / "squad-train-v2.0.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    prepare(data_dir, "squad", "v2.0", {"train": {"filepath": os.fspath(path)}})
    return context


HELLASWAG = [
    {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
     "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val",
     "split_type": "indomain", "label": 3, "source_id": "activitynet~v_-JhWjGDPHMY",
     "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                 "is holding a rubik's cube.", "starts pulling up roofing on a roof."]},
    {"ind": 92, "activity_label": "Health", "ctx_a": "[header] How to stay calm. [step] Breathe.",
     "ctx_b": "", "ctx": "[header] How to stay calm. [step] Breathe.", "split": "val",
     "split_type": "zeroshot", "label": 0, "source_id": "wikihow~14", "endings": [
         "Count to ten.", "Run away.", "Shout loudly.", "Eat a café crème."]},
]
COSMOS_HEADER = ["id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"]
COSMOS = [["3Q9SPIIRWJKVQ8244310E8TUS6YWAC##34V1S5K3GTZMDUBNBIGY93FLDOB690##A1S1K7134S2VUC##"
           "Blog_1044056##q1_a1##3XU9MCX6VQQG7YPLCSAFDPQNH4SR20",
           "Good Old War and person L : I saw both of these bands Wednesday night , and they "
           "both blew me away .", "In the future , will this person go to see other bands "
           "play ?", "None of the above choices .", "This person likes music and likes to see "
           "the show , they will see other bands play .", "This person only likes Good Old War "
           "and Person L , no other bands .", "Other Bands is not on tour and this person can "
           "not see them .", "1"],
          ["id2", "She said \"no\", then left.", "Why did she leave ?", "a", "b", "c", "d", "3"]]


@pytest.fixture(scope="session")
def multiple_choice_data(data_dir, raw_dir):
    hellaswag = raw_dir / "hellaswag_val.jsonl"
    hellaswag.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in HELLASWAG),
                         encoding="utf-8")
    prepare(data_dir, "hellaswag", None,
            {"validation": {"filepath": os.fspath(hellaswag)}})
    cosmos = raw_dir / "cosmosqa" / "valid.csv"
    cosmos.parent.mkdir()
    with open(cosmos, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([COSMOS_HEADER] + COSMOS)
    prepare(data_dir, "cosmos_qa", None, {"validation": {"file_path": cosmos}})


def test_qqp_sst2_glue(glue, data_dir):
    for split, tfds_split in (("train", "train"), ("dev", "validation")):
        qqp = read_tfds("qqp", split, "en", data_dir=data_dir)
        assert isinstance(qqp, ReadResult)
        assert qqp.path == data_dir / "glue" / "qqp" / tfds.builder(
            "glue/qqp", data_dir=os.fspath(data_dir)).version.__str__()
        # glue/qqp dropped the broken row when it prepared: nothing to count here.
        assert sorted((e.text_a, e.text_b, QQP.labels[e.label])
                      for e in qqp.examples) == sorted(r[1:] for r in QQP_ROWS[tfds_split])
        assert qqp.skipped == {} and qqp.examples[0].guid.startswith(f"glue/qqp:{tfds_split}:")
        sst2 = read_tfds("sst2", split, "en", data_dir=data_dir)
        assert sorted((e.text_a, e.text_b, SST2.labels[e.label])
                      for e in sst2.examples) == sorted(
            (s.strip(), None, y) for s, y in SST2_ROWS[tfds_split])
    with pytest.raises(DataError, match=r"task 'qqp' has no split 'test'; its splits: train, "
                                        r"dev$"):
        tfds_source.tfds_parts("qqp", "test", "en")


def test_mnli_reads_glue_when_multi_nli_is_not_prepared(glue_raw, tmp_path):
    files, rows = glue_raw
    with pytest.raises(tfds_source.NotPreparedError) as e:
        read_tfds("mnli", "train", "en", data_dir=tmp_path)
    assert "none of the TFDS datasets 'multi_nli', 'glue/mnli'" in str(e.value)
    assert "multi_nli generator needs TensorFlow" in str(e.value)
    prepare(tmp_path, "glue", "mnli", {"train": _glue_split(files["mnli", "train"], "train")})
    for task in ("mnli", "xnli"):
        got = read_tfds(task, "train", "en", data_dir=tmp_path)
        assert got.path == tmp_path / "glue" / "mnli" / str(
            tfds.builder("glue/mnli", data_dir=os.fspath(tmp_path)).version)
        assert sorted((e.text_a, e.text_b, NLI_LABELS[e.label])
                      for e in got.examples) == sorted(rows)
        assert all(e.guid.startswith("glue/mnli:train:") for e in got.examples)


def test_snli_no_gold_label_skipped(snli, data_dir):
    got = read_tfds("snli", "train", "en", data_dir=data_dir)
    assert got.skipped == {SKIP_NO_GOLD_LABEL: 1}
    assert sorted((e.text_a, e.text_b, NLI_LABELS[e.label])
                  for e in got.examples) == sorted(
        (a, b, y) for y, a, b in snli["train"] if y != "-")
    assert len(read_tfds("snli", "dev", "en", data_dir=data_dir)) == 1


def test_anli_rounds_in_order(anli, data_dir):
    got = read_tfds("anli", "train", "en", data_dir=data_dir)
    assert got.path == data_dir / "anli"
    assert [f.relative_to(data_dir).parts[:2] for f in got.files] == [
        ("anli", "r1"), ("anli", "r2"), ("anli", "r3")]
    rounds = [e.guid.split(":")[0] for e in got.examples]
    assert rounds == ["anli/r1"] * 3 + ["anli/r2"] * 4 + ["anli/r3"] * 5
    want = {(r["context"], r["hypothesis"], ANLI_LABELS[r["label"]])
            for round_ in ("R1", "R2", "R3") for r in anli_rows(round_, "train")}
    assert {(e.text_a, e.text_b, NLI_LABELS[e.label])
            for e in got.examples} == want
    dev = read_tfds("anli", "dev", "en", data_dir=data_dir)
    assert [e.guid.split(":")[:2] for e in dev.examples] == [
        ["anli/r1", "validation"]] * 2 + [["anli/r2", "validation"]] * 3 + [
        ["anli/r3", "validation"]] * 4
    with pytest.raises(DataError, match="combines 3 TFDS datasets"):
        tfds_source.tfds_split("anli", "train", "en")


def test_anli_plus_composition(anli, xnli, snli, data_dir):
    got = read_tfds("anli_plus", "train", "en", data_dir=data_dir)
    sources = [e.guid.rsplit(":", 2)[0] for e in got.examples]
    # ANLI r1-r3 (3 + 4 + 5), MultiNLI (multi_nli prepared: preferred to glue/mnli), SNLI
    # without its '-' pair; in that order.
    mnli = len([r for r in xnli if r[0] != "-"])
    snli_n = len([r for r in snli["train"] if r[0] != "-"])
    assert sources == (["anli/r1"] * 3 + ["anli/r2"] * 4 + ["anli/r3"] * 5 + ["multi_nli"] * mnli
                       + ["snli"] * snli_n)
    assert got.skipped == {SKIP_NO_GOLD_LABEL: 1} and got.path == data_dir
    assert len(got.files) == 5 and len({e.guid for e in got.examples}) == len(got)
    dev = read_tfds("anli_plus", "dev", "en", data_dir=data_dir)
    assert len(dev) == 2 + 3 + 4


def test_squad_v2_impossible(squad_v2, data_dir):
    got = {e.id: e for e in read_tfds("squad_v2", "train", "en", data_dir=data_dir)}
    assert got["q1"].answers == (("Normandy", squad_v2.index("Normandy")),)
    assert not got["q1"].is_impossible
    assert got["q2"].answers == () and got["q2"].is_impossible
    assert got["q1"].paragraph == got["q2"].paragraph == 0


def test_multiple_choice(multiple_choice_data, data_dir):
    hs = read_tfds("hellaswag", "dev", "en", data_dir=data_dir)
    assert isinstance(hs, ReadResult) and all(isinstance(e, MCExample) for e in hs)
    by_label = sorted(((e.prompt, e.choices, e.label) for e in hs), key=lambda x: x[2])
    # TFDS keeps only ctx (= ctx_a + " " + ctx_b): prompt = ctx, choices = the endings.
    assert by_label == sorted(((r["ctx"], tuple(r["endings"]), r["label"]) for r in HELLASWAG),
                              key=lambda x: x[2])
    for e, r in zip(sorted(hs, key=lambda e: e.label), sorted(HELLASWAG, key=lambda r: r["label"])):
        # The same words as the file reader's (ctx_a, ctx_b + " " + ending), boundary moved.
        for choice, ending in zip(e.choices, r["endings"]):
            assert (e.prompt + " " + choice).split() == (
                r["ctx_a"] + " " + (r["ctx_b"] + " " + ending).strip()).split()
    cosmos = read_tfds("cosmosqa", "dev", "en", data_dir=data_dir)
    assert sorted((e.prompt, e.choices, e.label) for e in cosmos) == sorted(
        (c[1] + " " + c[2], tuple(c[3:7]), int(c[7])) for c in COSMOS)
    assert all(e.guid.startswith("cosmos_qa:validation:") for e in cosmos)
    with pytest.raises(DataError, match=r"task 'hellaswag' has no split 'test'; its splits: "
                                        r"train, dev$"):
        tfds_source.tfds_parts("hellaswag", "test", "en")
    with pytest.raises(DataError, match=r"task 'cosmosqa' split 'dev' has no language 'de'; its "
                                        r"languages: en$"):
        tfds_source.tfds_parts("cosmosqa", "dev", "de")


# --------------------------------------------------------------------------- errors


def test_not_prepared_names_builder_and_command(tmp_path):
    with pytest.raises(DataError) as e:
        read_tfds("xquad", "test", "es", data_dir=tmp_path)
    message = str(e.value)
    for part in ("'xquad/es'", "config 'es'", "split 'test'", "not prepared",
                 str(tmp_path / "xquad/es/3.0.0"),
                 "tfds build xquad/es --file_format=array_record",
                 "import tensorflow_datasets.question_answering.xquad",
                 "download_and_prepare(file_format='array_record')"):
        assert part in message
    with pytest.raises(DataError, match="wikiann generator needs TensorFlow to prepare"):
        read_tfds("panx", "test", "fr", data_dir=tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing downloaded / written


@pytest.mark.parametrize("task,split,lang,match", [
    ("xquad", "test", "ro", r"task 'xquad' split 'test' has no language 'ro'; its languages: "
                            r"ar de el en es hi ru th tr vi zh$"),
    # XQuAD's dev data is SQuAD v1.1 dev, English only; TyDiQA's dev is its English test file.
    ("xquad", "dev", "de", r"task 'xquad' split 'dev' has no language 'de'; its languages: en$"),
    ("tydiqa", "dev", "ar", r"task 'tydiqa' split 'dev' has no language 'ar'; its languages: "
                            r"en$"),
    ("tatoeba", "train", "de", r"task 'tatoeba' has no split 'train'; its splits: test$"),
    ("bucc2018", "train", "de", r"task 'bucc2018' has no split 'train'; its splits: dev, test$"),
    ("panx", "test", "xx", r"task 'panx' split 'test' has no language 'xx'; its languages: "
                           r"af ar bg"),
    ("udpos", "dev", "zz", r"task 'udpos' split 'dev' has no language 'zz'; its languages: "
                           r"af ar bg"),
    ("nope", "test", "en", r"unknown task 'nope'; known tasks: "),
    ("ccg", "train", "en", r"task 'ccg' split 'train' is not in TFDS: CCGbank is licensed: not "
                           r"in TFDS$"),
    ("commonsenseqa", "dev", "en", r"task 'commonsenseqa' split 'dev' is not in TFDS: TFDS has "
                                   r"no CommonsenseQA builder$"),
])
def test_mapping_errors(task, split, lang, match):
    with pytest.raises(DataError, match=match):
        tfds_source.tfds_split(task, split, lang)


def test_mapping_of_splits_read_as_another():
    """XQuAD's train/dev are SQuAD v1.1's, TyDiQA's English dev is its English test file."""
    squad_train = tfds_source.TfdsSplit("squad", "v1.1", "train", "en", "qa")
    assert tfds_source.tfds_split("xquad", "train", "en") == squad_train
    assert tfds_source.tfds_split("mlqa", "train", "en") == squad_train
    assert tfds_source.tfds_split("xquad", "dev", "en") == tfds_source.TfdsSplit(
        "squad", "v1.1", "validation", "en", "qa")
    assert tfds_source.tfds_split("tydiqa", "dev", "en") == tfds_source.tfds_split(
        "tydiqa", "test", "en") == tfds_source.TfdsSplit("tydi_qa", "goldp", "validation-en",
                                                         "en", "qa")
    with pytest.raises(UnknownTaskError):
        tfds_source.tfds_split("nope", "test", "en")


def test_missing_split_in_prepared_dataset(xquad, data_dir):
    where = tfds_source.TfdsSplit("xquad", "ar", "translate-dev", "ar")
    with pytest.raises(DataError, match=r"has no split 'translate-dev'; its splits: test"):
        tfds_source.open_split(where, data_dir)


# --------------------------------------------------------------------------- no TensorFlow


def test_read_path_never_imports_tensorflow(xquad, xnli, panx, tatoeba, glue, snli, anli,
                                            squad_v2, multiple_choice_data, data_dir):
    """In a fresh interpreter: every attempt to import tensorflow is recorded (a meta-path
    finder; etils' find_spec probes for TensorFlow are not imports and are not counted)."""
    script = textwrap.dedent(f"""
        import sys
        attempts = []
        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow" and \\
                        sys._getframe(2).f_code.co_name != "find_spec":
                    attempts.append(name)
                return None
        sys.meta_path.insert(0, Watch())
        from xstilts_jax.tasks.sources.tfds import read_tfds
        d = {os.fspath(data_dir)!r}
        assert len(read_tfds("xquad", "test", "ar", data_dir=d)) == 1190
        assert len(read_tfds("xnli", "dev", "de", data_dir=d)) == 4
        assert len(read_tfds("xnli", "train", "en", data_dir=d)) == 3
        assert len(read_tfds("panx", "test", "en", data_dir=d)) == 3
        assert len(read_tfds("tatoeba", "test", "de", data_dir=d)) == 1000
        assert len(read_tfds("qqp", "train", "en", data_dir=d)) == 3
        assert len(read_tfds("sst2", "dev", "en", data_dir=d)) == 1
        assert len(read_tfds("anli_plus", "train", "en", data_dir=d)) == 12 + 3 + 2
        assert len(read_tfds("squad_v2", "train", "en", data_dir=d)) == 2
        assert len(read_tfds("hellaswag", "dev", "en", data_dir=d)) == 2
        assert len(read_tfds("cosmosqa", "dev", "en", data_dir=d)) == 2
        assert "tensorflow_datasets" in sys.modules
        assert attempts == [] and "tensorflow" not in sys.modules, attempts
        try:  # the watch sees a real import attempt
            import tensorflow
        except ImportError:
            pass
        assert attempts[:1] == ["tensorflow"], attempts
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_language_lists_are_the_readers():
    # xtreme_pos picks a language by its UD name: one for every UDPOS language.
    assert tuple(UD_LANGUAGE_NAMES) == UDPOS_LANGUAGES == get_task("udpos").languages
    # TFDS's tags are checked against the task's labels: the file readers' tag sets.
    assert get_task("panx").labels == PANX_LABELS
    assert get_task("udpos").labels == UPOS_TAGS


def test_task_registry_reads_tfds_like_files(xquad, data_dir):
    """``data.source = "tfds"`` in a run: tasks.read gives the questions the file layout gives."""
    from_files = read("xquad", xquad["ar"].parents[1], "test", "ar")  # <shared>/xquad/xquad.ar.json
    from_tfds = read("xquad", None, "test", "ar", source="tfds", tfds_dir=str(data_dir))
    assert sorted((e.id, e.question, e.context, e.answers) for e in from_tfds) == \
        sorted((e.id, e.question, e.context, e.answers) for e in from_files)
    with pytest.raises(DataError, match="unknown data source 'hub'"):
        read("xquad", None, "test", "ar", source="hub")


def test_retrieval_reads_through_the_source(tatoeba, data_dir, monkeypatch):
    """``retrieve`` reads through the one read, so the TFDS source applies to it: from TFDS it
    embeds exactly the pairs the files give (in TFDS's record order)."""
    import numpy as np

    from xstilts_jax import retrieve as retrieve_module

    def embedded_pairs(**source):
        seen = []

        def fake_embed(encoder, tokenizer, sentences, **kwargs):
            seen.append(list(sentences))
            rng = np.random.default_rng(len(seen))
            x = rng.normal(size=(len(sentences), 8)).astype(np.float32)
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        monkeypatch.setattr(retrieve_module, "embed_sentences", fake_embed)
        lang = TATOEBA_LANGS[0]
        result = retrieve_module.retrieve("tatoeba", None, None, languages=(lang,), layer=1,
                                          **source)
        assert set(result["per_language"]) == {lang}
        (embedded,) = seen  # both sides are embedded together, the source side first
        half = len(embedded) // 2
        return sorted(zip(embedded[:half], embedded[half:]))

    files = embedded_pairs(data_dir=tatoeba.parent)
    from_tfds = embedded_pairs(data_dir=None, source="tfds", tfds_dir=str(data_dir))
    assert from_tfds == files and len(files) > 100
