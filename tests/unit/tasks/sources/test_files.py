"""Where each task's files are (xstilts_jax.tasks.sources.files, from the catalog's specs):
XTREME's download/ layout and the
original releases' layouts, mimicked with small files in tmp_path; real files from
../shared/data where a layout points at them (xquad/, tatoeba/)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from conftest import SHARED_DATA
from xstilts_jax.tasks import UnknownTaskError, get_task, task_names
from xstilts_jax.tasks.catalog.xtreme import TATOEBA_LANGUAGES
from xstilts_jax.tasks.examples import BuccData, TaggedSentence, TranslationPair
from xstilts_jax.tasks.formats.conllu import SKIP_NO_TEXT
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.sources import files

DATA = SHARED_DATA
# The tasks the old file layout (tasks/layout.py) held; every task has a layout now.
LAYOUT_TASKS = ("udpos", "panx", "squad", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba",
                "squad_v2", "ccg", "hellaswag", "cosmosqa", "commonsenseqa")
TATOEBA_SHORT = {"jv": 205, "te": 234, "ta": 307, "sw": 390, "th": 548, "kk": 575, "ml": 687,
                 "ka": 746}


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tagged(*sentences, with_tags=True) -> str:
    """XTREME's processed tagging file: word<TAB>tag (test: the word only), blank lines."""
    return "\n\n".join("\n".join(f"{w}\t{t}" if with_tags else w for w, t in s)
                       for s in sentences) + "\n"


def squad(*questions, context="Der Hund schläft im Haus.", title="T") -> str:
    """questions: (id, question, [(text, start)])."""
    return json.dumps({"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": context, "qas": [
            {"id": i, "question": q, "answers": [{"text": t, "answer_start": s} for t, s in a]}
            for i, q, a in questions]}]}]}, ensure_ascii=False)


def stripped(path_text: str) -> str:
    """What XTREME's remove_qa_test_annotations writes for a labelled file."""
    doc = json.loads(path_text)
    out = [{"paragraphs": [{"context": p["context"], "qas": [
        {"answers": [{"answer_start": 0, "text": ""}], "question": q["question"],
         "id": q["id"]}]}]}
        for a in doc["data"] for p in a["paragraphs"] for q in p["qas"]]
    return json.dumps({"data": out, "version": doc["version"]})


def conllu(*sentences) -> str:
    lines = []
    for n, s in enumerate(sentences):
        lines.append(f"# sent_id = {n}")
        lines += ["\t".join([str(i), w, w, t, "_", "_", "0", "root", "_", "_"])
                  for i, (w, t) in enumerate(s, 1)]
        lines.append("")
    return "\n".join(lines) + "\n"


def bucc(folder: pathlib.Path, stem: str, with_gold=True):
    write(folder / f"{stem}.de", "de-000000001\tDer Hund schläft.\nde-000000002\tEs regnet.\n")
    write(folder / f"{stem}.en", "en-000000005\tIt rains.\nen-000000006\tThe dog sleeps.\n")
    if with_gold:
        write(folder / f"{stem}.gold", "de-000000001\ten-000000006\n")


DOG = [("Der", "DET"), ("Hund", "NOUN"), ("schläft", "VERB")]
CAT = [("The", "DET"), ("cat", "NOUN")]
NER = [("Angela", "B-PER"), ("Merkel", "I-PER"), ("sprach", "O")]
Q_DE = ("q-de-1", "Wer schläft?", [("Der Hund", 0)])
Q_EN = ("q-en-1", "Who sleeps?", [("Der Hund", 0)])


def xtreme_download(root: pathlib.Path) -> pathlib.Path:
    """A small download/ folder as XTREME's download_data.sh leaves it (test labels removed)."""
    write(root / "udpos/train-en.tsv", tagged(CAT, CAT))
    write(root / "udpos/dev-de.tsv", tagged(DOG))
    write(root / "udpos/test-de.tsv", tagged(DOG, with_tags=False))
    write(root / "panx/train-en.tsv", tagged(NER))
    write(root / "panx/dev-de.tsv", tagged(NER, NER))
    write(root / "panx/test-de.tsv", tagged(NER, with_tags=False))
    write(root / "squad/train-v1.1.json", squad(Q_EN, ("q-en-2", "Where?", [("im Haus", 17)])))
    write(root / "squad/dev-v1.1.json", squad(Q_EN))
    write(root / "xquad/xquad.de.json", stripped(squad(Q_DE)))
    write(root / "mlqa/MLQA_V1/dev/dev-context-de-question-de.json", squad(Q_DE))
    write(root / "mlqa/MLQA_V1/test/test-context-de-question-de.json", stripped(squad(Q_DE)))
    tydi = "tydiqa/tydiqa-goldp-v1.1-train"
    write(root / f"{tydi}/tydiqa-goldp-v1.1-train.json", squad(
        ("english-123-1", "Who?", [("Der Hund", 0)]), ("swahili--456-1", "Nani?", [("Hund", 4)]),
        ("english--789-2", "Where?", [("im Haus", 17)])))
    write(root / f"{tydi}/tydiqa.goldp.en.train.json", squad(
        ("1", "Who?", [("Der Hund", 0)]), ("2", "Where?", [("im Haus", 17)]),
        ("1", "What?", [("Hund", 4)])))
    write(root / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.sw.dev.json",
          stripped(squad(("swahili-1-1", "Nani?", [("Hund", 4)]))))
    bucc(root / "bucc2018", "de-en.dev")
    bucc(root / "bucc2018", "de-en.test", with_gold=False)  # download_bucc18 deletes it
    write(root / "tatoeba/de-en.de", "Hallo.\nDanke.\n")
    write(root / "tatoeba/de-en.en", "Hello.\nThanks.\n")  # sorted by tatoeba_preprocess
    return root


def releases(root: pathlib.Path) -> pathlib.Path:
    """The original releases unpacked under the same data_dir."""
    ud = root / "ud-treebanks-v2.5"
    write(ud / "UD_German-HDT/de_hdt-ud-test.conllu", conllu(DOG))
    write(ud / "UD_German-GSD/de_gsd-ud-test.conllu", conllu(DOG, DOG[:2]))
    write(ud / "UD_German-GSD/de_gsd-ud-dev.conllu", conllu(DOG))
    write(ud / "UD_English-EWT/en_ewt-ud-train.conllu", conllu(CAT))
    write(ud / "UD_English-ESL/en_esl-ud-test.conllu", conllu([("_", "DET"), ("_", "NOUN")]))
    write(ud / "UD_English-EWT/en_ewt-ud-test.conllu", conllu(CAT))
    write(ud / "UD_Chinese-GSD/zh_gsd-ud-test.conllu", conllu([("猫", "NOUN")]))
    write(ud / "UD_Classical_Chinese-Kyoto/lzh_kyoto-ud-test.conllu", conllu([("貓", "NOUN")]))
    raw = "".join(f"de:{w}\t{t}\n" for w, t in NER) + "\n"
    for split in ("train", "dev", "test"):
        write(root / f"panx_dataset/de/{split}", raw * (2 if split == "test" else 1))
    write(root / "MLQA_V1/test/test-context-de-question-de.json", squad(Q_DE))
    write(root / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa-goldp-dev-swahili.json",
          squad(("swahili-1-1", "Nani?", [("Hund", 4)])))
    bucc(root / "bucc2018/de-en", "de-en.training")
    write(root / "tatoeba/tatoeba.deu-eng.deu", "Danke.\nHallo.\n")
    write(root / "tatoeba/tatoeba.deu-eng.eng", "Thanks.\nHello.\n")
    return root


def expect(pattern, call):
    with pytest.raises(DataError, match=pattern) as info:
        call()
    return str(info.value)


# --------------------------------------------------------------------------- tables


def test_languages_and_splits():
    sizes = {task: len(get_task(task).languages) for task in LAYOUT_TASKS}
    assert sizes == {"udpos": 33, "panx": 40, "squad": 1, "xquad": 11, "mlqa": 7, "tydiqa": 9,
                     "bucc2018": 4, "tatoeba": 36, "squad_v2": 1, "ccg": 1, "hellaswag": 1,
                     "cosmosqa": 1, "commonsenseqa": 1}
    assert all(get_task(task).train_language == "en" for task in LAYOUT_TASKS)
    for task in LAYOUT_TASKS:
        spec = get_task(task)
        if spec.has_split("train") and task != "tydiqa":
            assert spec.split_languages("train") == ("en",), task
    # TyDiQA-GoldP's training data holds all nine languages (readable in each, from files and
    # TFDS alike); a phase trains on English (tasks.read).
    assert get_task("tydiqa").split_languages("train") == get_task("tydiqa").languages
    assert set(get_task("bucc2018").split_names) == {"dev", "test"}
    assert set(get_task("tatoeba").split_names) == {"test"}
    assert get_task("tydiqa").split_languages("dev") == ("en",)
    assert get_task("mlqa").split_languages("dev") == get_task("mlqa").languages


def test_locations_order():
    dev = files.locations("udpos", "dev", "de")
    test = files.locations("udpos", "test", "de")
    assert [loc.format for loc in dev] == ["udpos_tsv", "conllu"]
    assert [loc.format for loc in test] == ["conllu", "udpos_tsv"]  # test: labelled release first
    assert test[0].patterns == ("ud-treebanks-v2.5/UD_*/de_*-ud-test.conllu",)
    assert [loc.patterns[0] for loc in files.locations("panx", "test", "de")] == [
        "panx_dataset/de/test", "panx_dataset/de-test", "panx/test-de.tsv"]
    assert files.locations("xquad", "train", "en") == files.locations("squad", "train", "en")
    assert files.locations("xquad", "dev", "en") == files.locations("squad", "dev", "en")
    assert files.locations("tydiqa", "dev", "en") == files.locations("tydiqa", "test", "en")
    assert files.locations("tydiqa", "test", "bn")[0].patterns == (
        "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa-goldp-dev-bengali.json",)
    assert files.locations("tatoeba", "test", "fa")[0].patterns == (
        "tatoeba/tatoeba.pes-eng.pes", "tatoeba/tatoeba.pes-eng.eng")
    assert files.locations("bucc2018", "dev", "zh")[0].patterns == (
        "bucc2018/zh-en.dev.zh", "bucc2018/zh-en.dev.en", "bucc2018/zh-en.dev.gold")


# --------------------------------------------------------------------------- XTREME's layout


def test_xtreme_layout_labelled_splits(tmp_path):
    root = xtreme_download(tmp_path)
    udpos = files.read_split("udpos", root, "train", "en")
    assert [s.words for s in udpos] == [("The", "cat")] * 2
    assert udpos.path == root / "udpos/train-en.tsv"
    assert files.read_split("udpos", root, "dev", "de")[0] == TaggedSentence(
        ("Der", "Hund", "schläft"), ("DET", "NOUN", "VERB"), "dev-de.tsv:1")
    assert len(files.read_split("panx", root, "dev", "de")) == 2
    assert files.read_split("panx", root, "train", "en")[0].tags == ("B-PER", "I-PER", "O")
    assert [e.id for e in files.read_split("squad", root, "train", "en")] == ["q-en-1", "q-en-2"]
    assert files.find_files("xquad", root, "train", "en") == (
        "squad", [root / "squad/train-v1.1.json"])
    assert files.find_files("mlqa", root, "train", "en")[1] == [root / "squad/train-v1.1.json"]
    assert [e.id for e in files.read_split("xquad", root, "dev", "en")] == ["q-en-1"]
    mlqa = files.read_split("mlqa", root, "dev", "de")
    assert mlqa[0].answers == (("Der Hund", 0),) and mlqa.language == "de"
    bucc = files.read_split("bucc2018", root, "dev", "de")
    assert isinstance(bucc, BuccData) and bucc.gold == (("de-000000001", "en-000000006"),)
    assert bucc.files[0] == root / "bucc2018/de-en.dev.de"


def test_xtreme_tydiqa_train(tmp_path):
    root = xtreme_download(tmp_path)
    train = files.read_split("tydiqa", root, "train", "en")  # the release file XTREME moves there
    assert [e.id for e in train] == ["english-123-1", "english--789-2"]
    assert train.path.name == "tydiqa-goldp-v1.1-train.json"
    swahili = files.read_split("tydiqa", root, "train", "sw")  # a language's ids: its name first
    assert [e.id for e in swahili] == ["swahili--456-1"] and swahili.language == "sw"
    (train.path).unlink()  # then XTREME's own split, whose ids keep only the last part
    fmt, paths = files.find_files("tydiqa", root, "train", "en")
    assert fmt == "squad_short_ids" and paths[0].name == "tydiqa.goldp.en.train.json"
    assert [e.id for e in files.read_split("tydiqa", root, "train", "en")] == ["1", "2", "1#2"]
    paths[0].rename(paths[0].with_name("tydiqa.en.train.json"))  # what train_qa.sh reads
    assert len(files.read_split("tydiqa", root, "train", "en")) == 3


def test_xtreme_test_files_without_labels_are_refused(tmp_path):
    root = xtreme_download(tmp_path)
    expect(r"udpos/test-de\.tsv:1: 1 tab-separated columns, expected 2 \(word, tag\) \(a test file",
           lambda: files.read_split("udpos", root, "test", "de"))
    expect(r"panx/test-de\.tsv:1: 1 tab-separated columns.*a test file without labels",
           lambda: files.read_split("panx", root, "test", "de"))
    for task, lang in (("xquad", "de"), ("mlqa", "de"), ("tydiqa", "sw")):
        expect(r"empty answer text \(a test file of XTREME's download",
               lambda: files.read_split(task, root, "test", lang))
    expect(r"tatoeba/de-en\.en: XTREME's tatoeba_preprocess sorts the English side.*"
           r"tatoeba\.deu-eng\.\* files", lambda: files.read_split("tatoeba", root, "test", "de"))
    message = expect(r"task 'bucc2018' split 'test' \(de\): no data files; tried ",
                     lambda: files.read_split("bucc2018", root, "test", "de"))
    assert "de-en/de-en.training.de" in message  # the release's location, tried first
    assert ("de-en.test.gold (XTREME's download) [missing: bucc2018/de-en.test.gold; "
            "download_data.sh deletes XTREME's test gold]") in message


# --------------------------------------------------------------------------- original releases


def test_ud_treebanks_concatenated(tmp_path):
    root = releases(tmp_path)
    fmt, paths = files.find_files("udpos", root, "test", "de")
    assert fmt == "conllu"
    assert [p.name for p in paths] == ["de_gsd-ud-test.conllu", "de_hdt-ud-test.conllu"]
    result = files.read_split("udpos", root, "test", "de")
    assert [len(s.words) for s in result] == [3, 2, 3]
    assert [s.guid for s in result] == ["de_gsd-ud-test.conllu:2", "de_gsd-ud-test.conllu:7",
                                        "de_hdt-ud-test.conllu:2"]
    assert result.path == root / "ud-treebanks-v2.5" and result.files == tuple(paths)
    # en_esl has no text: dropped, as XTREME does.
    english = files.read_split("udpos", root, "test", "en")
    assert [s.words for s in english] == [("The", "cat")]
    assert english.skipped[SKIP_NO_TEXT] == 1 and len(english.files) == 2
    assert [p.name for p in files.find_files("udpos", root, "test", "zh")[1]] == [
        "zh_gsd-ud-test.conllu"]  # not lzh_kyoto (Classical Chinese)
    assert len(files.read_split("udpos", root, "train", "en")) == 1


def test_other_releases(tmp_path):
    root = releases(tmp_path)
    panx = files.read_split("panx", root, "test", "de")
    assert len(panx) == 2 and panx[0].words == ("Angela", "Merkel", "sprach")
    assert panx.path == root / "panx_dataset/de/test"
    (root / "panx_dataset/de/dev").rename(root / "panx_dataset/de-dev")  # download_panx's names
    assert files.find_files("panx", root, "dev", "de") == (
        "panx_raw", [root / "panx_dataset/de-dev"])
    assert files.read_split("mlqa", root, "test", "de")[0].answers == (("Der Hund", 0),)
    tydiqa = files.read_split("tydiqa", root, "test", "sw")
    assert tydiqa[0].id == "swahili-1-1" and tydiqa.path.name == "tydiqa-goldp-dev-swahili.json"
    bucc = files.read_split("bucc2018", root, "test", "de")
    assert bucc.files[2] == root / "bucc2018/de-en/de-en.training.gold" and len(bucc.source) == 2
    tatoeba = files.read_split("tatoeba", root, "test", "de")
    assert list(tatoeba) == [TranslationPair("Danke.", "Thanks.", "tatoeba.deu-eng.deu:1"),
                             TranslationPair("Hallo.", "Hello.", "tatoeba.deu-eng.deu:2")]


def test_precedence_with_both_layouts(tmp_path):
    root = releases(xtreme_download(tmp_path))
    # dev / train: XTREME's files first.
    assert files.find_files("udpos", root, "dev", "de")[1] == [root / "udpos/dev-de.tsv"]
    assert files.find_files("panx", root, "dev", "de")[1] == [root / "panx/dev-de.tsv"]
    # test: the releases first, since XTREME's test files have no labels.
    assert files.read_split("udpos", root, "test", "de").files[0].suffix == ".conllu"
    assert files.read_split("panx", root, "test", "de").path == root / "panx_dataset/de/test"
    assert files.read_split("mlqa", root, "test", "de").path == (
        root / "MLQA_V1/test/test-context-de-question-de.json")
    assert files.read_split("tydiqa", root, "test", "sw")[0].answers == (("Hund", 4),)
    assert files.read_split("bucc2018", root, "test", "de").gold == (
        ("de-000000001", "en-000000006"),)
    assert files.read_split("tatoeba", root, "test", "de")[1].english == "Hello."


# --------------------------------------------------------------------------- bad requests


def test_unknown_task_split_language(tmp_path):
    # Every task has a layout now (xnli's is XTREME's xnli/<split>-<lang>.tsv); a name that
    # is no task is refused with the list of those that are.
    with pytest.raises(UnknownTaskError, match=r"unknown task 'conll2003'; known tasks: "
                       + re.escape(", ".join(task_names())) + "$") as info:
        files.read_split("conll2003", tmp_path, "test", "de")
    assert isinstance(info.value, DataError)
    assert {"udpos", "panx", "squad", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba",
            "xnli"} <= set(task_names())
    assert files.locations("xnli", "test", "de")[0].patterns == ("xnli/test-de.tsv",)
    # xquad's splits now include its machine-translated training data (SQuAD's).
    expect(r"task 'xquad' has no split 'validation'; its splits: train, dev, translate_train, "
           r"test", lambda: files.find_files("xquad", tmp_path, "validation", "de"))
    expect(r"task 'bucc2018' has no split 'train'; its splits: dev, test",
           lambda: files.read_split("bucc2018", tmp_path, "train", "en"))
    expect(r"task 'xquad' split 'test' has no language 'ro'; its languages: ar de el en es hi ru "
           r"th tr vi zh", lambda: files.read_split("xquad", tmp_path, "test", "ro"))
    expect(r"task 'panx' split 'train' exists only in 'en' \(XTREME trains in English\), not 'de'",
           lambda: files.read_split("panx", tmp_path, "train", "de"))
    expect(r"task 'tydiqa' split 'dev' has no language 'sw'; its languages: en$",
           lambda: files.read_split("tydiqa", tmp_path, "dev", "sw"))
    expect(r"task 'tatoeba' split 'test' has no language 'deu'; its languages: af ar",
           lambda: files.read_split("tatoeba", tmp_path, "test", "deu"))


def test_missing_files_list_every_location(tmp_path):
    message = expect(r"task 'panx' split 'test' \(de\): no data files; tried ",
                     lambda: files.read_split("panx", tmp_path, "test", "de"))
    for path in ("panx_dataset/de/test", "panx_dataset/de-test", "panx/test-de.tsv"):
        assert str(tmp_path / path) in message
    message = expect(r"no data files", lambda: files.read_split("tydiqa", tmp_path, "train", "en"))
    assert message.count("tydiqa") > 4 and "tydiqa/tydiqa-goldp-v1.1-train.json" in message
    message = expect(r"no data files", lambda: files.read_split("udpos", tmp_path, "dev", "th"))
    assert "ud-treebanks-v2.5/UD_*/th_*-ud-dev.conllu (UD v2.5 release)" in message
    write(tmp_path / "tatoeba/tatoeba.deu-eng.deu", "Hallo.\n")  # one file of two
    message = expect(r"no data files", lambda: files.read_split("tatoeba", tmp_path, "test", "de"))
    assert "(LASER's files) [missing: tatoeba/tatoeba.deu-eng.eng]" in message


def test_tydiqa_multilingual_without_the_language(tmp_path):
    write(tmp_path / "tydiqa/tydiqa-goldp-v1.1-train.json",
          squad(("swahili-1-1", "Nani?", [("Hund", 4)])))
    expect(r"tydiqa-goldp-v1.1-train\.json: no question id starts with 'english-'",
           lambda: files.read_split("tydiqa", tmp_path, "train", "en"))


# --------------------------------------------------------------------------- real files


def shared(folder: str) -> pathlib.Path:
    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (see shared/data/README.md)")
    return DATA


@pytest.mark.parametrize("language", get_task("xquad").languages)
def test_real_xquad_through_layout(language):
    data_dir = shared("xquad")
    result = files.read_split("xquad", data_dir, "test", language)
    assert len(result) == 1190 and result.skipped == {}
    assert result.path == data_dir / "xquad" / f"xquad.{language}.json"
    assert len({e.id for e in result}) == 1190


def test_real_tatoeba_through_layout():
    data_dir = shared("tatoeba")
    counts = {lang: len(files.read_split("tatoeba", data_dir, "test", lang))
              for lang in get_task("tatoeba").languages}
    assert counts == {lang: TATOEBA_SHORT.get(lang, 1000) for lang in TATOEBA_LANGUAGES}
    first = files.read_split("tatoeba", data_dir, "test", "zh")[0]
    assert first == TranslationPair("我們試試看！", "Let's have a look.", "tatoeba.cmn-eng.cmn:1")
