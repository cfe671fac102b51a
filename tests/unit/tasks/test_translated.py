"""Machine-translated training data (split ``translate_train``): XNLI-MT 1.0 and XTREME's
translations of MultiNLI train, XTREME's translate-train SQuAD, PAWS-X's translated_train, and
``translate_train_languages``. Fixtures are written in the releases' own formats."""

from __future__ import annotations

import json
import re

import pytest

from conftest import write_nli_data
from xstilts_jax.tasks import UnknownTaskError, get_task, read, read_split
from xstilts_jax.tasks.catalog.common import NLI_LABELS
from xstilts_jax.tasks.catalog.intermediate import MNLI
from xstilts_jax.tasks.catalog.xtreme import PAWSX, XNLI_LANGUAGES, XQUAD_LANGUAGES
from xstilts_jax.tasks.formats.pairs import SKIP_EMPTY_TRANSLATION, SKIP_MALFORMED_TRANSLATION
from xstilts_jax.tasks.formats.squad import SKIP_ANSWER_MISMATCH, SKIP_NO_VALID_ANSWER
from xstilts_jax.tasks.io import SKIP_BLANK_LINE, DataError
from xstilts_jax.tasks.sources import files

CONTRADICTION, ENTAILMENT, NEUTRAL = (NLI_LABELS.index(n)
                                      for n in ("contradiction", "entailment", "neutral"))
XNLI_MT = "XNLI-MT-1.0/multinli/multinli.train.{}.tsv"
XTREME_XNLI = "xtreme_translations/XNLI/translate-train/en-{}-translated.tsv"


def expect(match, call):
    with pytest.raises(DataError, match=match) as info:
        call()
    return str(info.value)


def write_bytes(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_xnli_mt(root, lang, rows, header="premise\thypo\tlabel", newline="\n"):
    """An XNLI-MT 1.0 multinli.train.<lang>.tsv: header row, tab-separated, no quoting."""
    lines = [header] + ["\t".join(r) if isinstance(r, tuple) else r for r in rows]
    text = "".join(line + newline for line in lines)
    return write_bytes(root / XNLI_MT.format(lang), text.encode("utf-8"))


# --------------------------------------------------------------------------- languages


def translate_train_languages(task: str) -> tuple[str, ...]:
    return get_task(task).translate_train_languages


def test_translate_train_languages():
    non_en = tuple(lang for lang in XNLI_LANGUAGES if lang != "en")
    assert len(non_en) == 14
    assert translate_train_languages("mnli") == non_en
    assert translate_train_languages("xnli") == non_en  # XNLI trains on MultiNLI
    assert translate_train_languages("squad") == tuple(
        lang for lang in XQUAD_LANGUAGES if lang != "en")
    assert translate_train_languages("squad") == (
        "ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh")
    assert translate_train_languages("pawsx") == ("de", "es", "fr", "ja", "ko", "zh")
    for task in ("qqp", "snli", "anli_plus", "udpos", "tydiqa", "hellaswag", "squad_v2"):
        assert translate_train_languages(task) == (), task
    # One mechanism for every family now: XQuAD and MLQA train on SQuAD, so their translations
    # are SQuAD's.
    for task in ("xquad", "mlqa"):
        assert translate_train_languages(task) == translate_train_languages("squad"), task
    with pytest.raises(UnknownTaskError, match=r"unknown task 'mnlii'; known tasks: "):
        translate_train_languages("mnlii")
    # The split can be read in the translation languages and in English (the original).
    assert MNLI.split_languages("translate_train") == XNLI_LANGUAGES
    assert MNLI.split_languages("train") == ("en",) and MNLI.languages == ("en",)
    assert PAWSX.split_languages("translate_train") == PAWSX.languages


# --------------------------------------------------------------------------- XNLI-MT


def test_xnli_mt_release_format(tmp_path):
    path = write_xnli_mt(tmp_path, "de", [
        ("Konzeptionell hat die Sahne zwei Dimensionen .", "Produkt und Geographie .",
         "neutral"),
        ('Er sagte " hallo und ging .', "Er blieb .", "contradictory"),  # unbalanced quote
        ("Du weißt während der Saison .", "Man verliert Dinge .", "entailment"),
        "nur zwei Spalten\tneutral",  # broken row: skipped, counted
        ("Eine Prämisse .", "", "neutral"),  # failed translation: skipped, counted
        "",  # blank line
        ('"Zitat" am Anfang .', "Gut .", "contradiction"),
    ], newline="\r\n")
    result = read_split("mnli", "translate_train", "de", data_dir=tmp_path)
    assert result.path == path and result.files == (path,)
    assert result.skipped == {SKIP_MALFORMED_TRANSLATION: 1, SKIP_EMPTY_TRANSLATION: 1,
                              SKIP_BLANK_LINE: 1}
    assert [e.label for e in result.examples] == [NEUTRAL, CONTRADICTION, ENTAILMENT,
                                                  CONTRADICTION]
    assert {e.language for e in result.examples} == {"de"}
    first, second, _, last = result.examples
    assert first.guid == "XNLI-MT-1.0/multinli/multinli.train.de.tsv:2"
    assert last.guid.endswith(".tsv:8")
    assert first.text_b == "Produkt und Geographie ."  # no trailing '\r'
    assert second.text_a == 'Er sagte " hallo und ging .'  # quotes are text
    assert last.text_a == '"Zitat" am Anfang .' and last.label == CONTRADICTION
    # XNLI's translate_train is the same data (XNLI trains on MultiNLI).
    xnli = read_split("xnli", "translate_train", "de", data_dir=tmp_path)
    assert [(e.text_a, e.label) for e in xnli.examples] == [
        (e.text_a, e.label) for e in result.examples]
    # Through the task registry, as a phase reads it.
    task_read = read("mnli", tmp_path, "translate_train", "de")
    assert len(task_read) == 4 and task_read.examples[0].language == "de"


def test_xnli_mt_errors_name_file_and_line(tmp_path):
    path = write_xnli_mt(tmp_path, "fr", [("a", "b", "neutral"), ("c", "d", "contradicton")])
    expect(rf"{re.escape(str(path))}:3: label 'contradicton' is not one of contradictory, ",
           lambda: read_split("mnli", "translate_train", "fr", data_dir=tmp_path))
    write_xnli_mt(tmp_path, "fr", [("a", "b", "neutral")], header="sentence1\tsentence2\tlabel")
    expect(rf"{re.escape(str(path))}:1: header 'sentence1\\tsentence2\\tlabel', expected "
           r"'premise\\thypo\\tlabel'",
           lambda: read_split("mnli", "translate_train", "fr", data_dir=tmp_path))
    # Many rows of the wrong width: another format, not a few damaged rows.
    write_xnli_mt(tmp_path, "fr", [("a", "b", "c", "neutral")] * 12)
    expect(rf"{re.escape(str(path))}:2: 4 tab-separated columns, expected 3 \(premise, hypo, "
           r"label\); 12 of 12 rows are so",
           lambda: read_split("mnli", "translate_train", "fr", data_dir=tmp_path))
    write_xnli_mt(tmp_path, "fr", [("", "b", "neutral")])
    expect(rf"{re.escape(str(path))}: no examples \(1 skipped: empty premise",
           lambda: read_split("mnli", "translate_train", "fr", data_dir=tmp_path))
    write_bytes(path, b"premise\thypo\tlabel\na\t\xff\tneutral\n")
    expect(rf"{re.escape(str(path))}:2: not valid UTF-8",
           lambda: read_split("mnli", "translate_train", "fr", data_dir=tmp_path))


def test_missing_translations_list_every_location(tmp_path):
    message = expect(r"task 'mnli' split 'translate_train' \(sw\): no data files; tried ",
                     lambda: read_split("mnli", "translate_train", "sw", data_dir=tmp_path))
    for name in (XNLI_MT.format("sw"), XTREME_XNLI.format("sw"),
                 "xnli/XNLI-Translated/en-sw-translated.tsv"):
        assert str(tmp_path / name) in message
    message = expect(r"task 'squad' split 'translate_train' \(th\): no data files; tried ",
                     lambda: read_split("squad", "translate_train", "th", data_dir=tmp_path))
    for name in ("squad/translate-train/squad.translate.train.en-th.json",
                 "xtreme_translations/SQuAD/translate-train/squad.translate.train.en-th.json"):
        assert str(tmp_path / name) in message
    # Languages without translations, and the other splits' messages as before.
    expect(r"task 'mnli' split 'translate_train' has no language 'ja'; its languages: ar bg de "
           r"el en es",
           lambda: read_split("mnli", "translate_train", "ja", data_dir=tmp_path))
    expect(r"task 'pawsx' split 'translate_train' has no language 'ru'",
           lambda: read_split("pawsx", "translate_train", "ru", data_dir=tmp_path))
    expect(r"task 'squad' split 'translate_train' has no language 'ja'",
           lambda: read_split("squad", "translate_train", "ja", data_dir=tmp_path))
    expect(r"task 'mnli' split 'train' exists only in 'en' \(XTREME trains in English\), not 'de'",
           lambda: read_split("mnli", "train", "de", data_dir=tmp_path))
    expect(r"task 'qqp' has no split 'translate_train'",
           lambda: read_split("qqp", "translate_train", "en", data_dir=tmp_path))


def test_xtreme_translated_xnli(tmp_path):
    # XTREME's translate-train: no header; English premise, English hypothesis, translated
    # premise, translated hypothesis, label.
    rows = ["The cat sat .\tA cat sits .\tLa chatte s'est assise .\tUn chat est assis .\t"
            "entailment",
            'He said " hi .\tHe left .\tIl a dit " salut .\tIl est parti .\tcontradictory']
    path = write_bytes(tmp_path / XTREME_XNLI.format("fr"),
                       "".join(r + "\n" for r in rows).encode())
    result = read_split("mnli", "translate_train", "fr", data_dir=tmp_path)
    assert result.path == path and result.skipped == {}
    assert [(e.text_a, e.text_b, e.label, e.language) for e in result.examples] == [
        ("La chatte s'est assise .", "Un chat est assis .", ENTAILMENT, "fr"),
        ('Il a dit " salut .', "Il est parti .", CONTRADICTION, "fr")]
    assert result.examples[0].guid == "xtreme_translations/XNLI/translate-train/" \
                                      "en-fr-translated.tsv:1"
    # XNLI-MT, when present, is read first.
    mt = write_xnli_mt(tmp_path, "fr", [("Une prémisse .", "Une hypothèse .", "neutral")])
    assert read_split("mnli", "translate_train", "fr", data_dir=tmp_path).path == mt
    # The three-column files XTREME published first are refused as another format.
    old = write_bytes(tmp_path / "xnli/XNLI-Translated/en-bg-translated.tsv",
                      b"".join(b"a\tb\tneutral\n" for _ in range(11)))
    expect(rf"{re.escape(str(old))}:1: 3 tab-separated columns, expected 5 .*11 of 11 rows .*"
           r"earlier three-column release is not read",
           lambda: read_split("mnli", "translate_train", "bg", data_dir=tmp_path))


# --------------------------------------------------------------------------- English


def test_english_translate_train_is_the_training_data(tmp_path):
    write_nli_data(tmp_path, train=9, dev=3, test=3)
    train = read_split("mnli", "train", "en", data_dir=tmp_path)
    english = read_split("mnli", "translate_train", "en", data_dir=tmp_path)
    assert english.path == tmp_path / "mnli/train.tsv" == train.path
    assert english.examples == train.examples and len(english) == 9
    assert {e.language for e in english.examples} == {"en"}
    # XNLI-MT's own English file (MultiNLI train) is not what en reads.
    write_xnli_mt(tmp_path, "en", [("x", "y", "neutral")])
    assert read_split("mnli", "translate_train", "en", data_dir=tmp_path).examples == \
        train.examples
    # A union over languages, English included.
    write_xnli_mt(tmp_path, "de", [("a", "b", "entailment")])
    union = [e for lang in ("en", "de")
             for e in read_split("mnli", "translate_train", lang, data_dir=tmp_path).examples]
    assert len(union) == 10 and len({e.guid for e in union}) == 10
    # PAWS-X: the same rule; its error names the training files.
    expect(r"task 'pawsx' split 'translate_train' \(en\) \(in 'en' it is split 'train', the "
           r"data it translates\): no data files; tried .*pawsx/train-en\.tsv \(XTREME's "
           r"download\); .*x-final/en/train\.tsv \(PAWS-X release\)$",
           lambda: files.read_split(PAWSX, tmp_path, "translate_train", "en"))
    write_bytes(tmp_path / "pawsx/train-en.tsv", b"a b\ta c\t1\nd e\tf g\t0\n")
    pawsx = files.read_split(PAWSX, tmp_path, "translate_train", "en")
    assert pawsx.path == tmp_path / "pawsx/train-en.tsv" and len(pawsx) == 2
    assert pawsx.examples == files.read_split(PAWSX, tmp_path, "train", "en").examples


def test_pawsx_translated_train(tmp_path):
    header = "id\tsentence1\tsentence2\tlabel"
    path = write_bytes(tmp_path / "x-final/ko/translated_train.tsv",
                       f"{header}\n1\t가\t나\t1\n2\t다\t라\t0\n".encode())
    result = read_split("pawsx", "translate_train", "ko", data_dir=tmp_path)
    assert result.path == path and [e.label for e in result.examples] == [1, 0]
    assert {e.language for e in result.examples} == {"ko"}


# --------------------------------------------------------------------------- SQuAD


CONTEXT = "Die Normannen waren die Menschen, die im 10. Jahrhundert der Normandie den Namen gaben."


def squad_json(questions, title="Normandy"):
    """SQuAD v1.1 JSON, one paragraph; ``questions``: (id, question, answer text, start)."""
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [{
        "context": CONTEXT,
        "qas": [{"id": qid, "question": q, "answers": [{"text": t, "answer_start": s}]}
                for qid, q, t, s in questions]}]}]}


def write_json(path, document):
    return write_bytes(path, json.dumps(document, ensure_ascii=False, indent=1).encode())


def test_squad_translate_train(tmp_path):
    name = "squad.translate.train.en-de.json"
    path = write_json(tmp_path / "squad/translate-train" / name, squad_json([
        ("q1", "Wer gab der Normandie den Namen?", "Die Normannen", 0),
        ("q2", "Wann?", "10. Jahrhundert", 3),  # offset does not match: skipped, counted
        ("q3", "Wo?", "Normandie", -1),  # XTREME's -1: the translation lost the answer
        ("q4", "Welche Region?", "Normandie", CONTEXT.index("Normandie")),
    ]))
    result = read_split("squad", "translate_train", "de", data_dir=tmp_path)
    assert result.path == path and result.language == "de"
    assert [e.id for e in result] == ["q1", "q4"]
    assert {e.language for e in result} == {"de"}  # each example says its language
    assert result[1].answers == (("Normandie", 61),) and CONTEXT[61:70] == "Normandie"
    assert result.skipped == {SKIP_ANSWER_MISMATCH: 2, SKIP_NO_VALID_ANSWER: 2}
    # A copy of the bucket's folder is the second place looked in.
    copy = write_json(tmp_path / "xtreme_translations/SQuAD/translate-train"
                      / "squad.translate.train.en-zh.json",
                      squad_json([("z1", "谁?", "Normannen", 4)]))
    zh = read_split("squad", "translate_train", "zh", data_dir=tmp_path)
    assert zh.path == copy and zh.language == "zh" and len(zh) == 1
    # Errors name the file and the line of the question's id.
    document = squad_json([("q1", "Wer?", "Die Normannen", 0), ("q2", "Wann?", "Die", 0)])
    del document["data"][0]["paragraphs"][0]["qas"][1]["question"]
    write_json(path, document)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"q2"' in text)
    expect(rf"{re.escape(str(path))}:{line}: question 'q2'",
           lambda: read_split("squad", "translate_train", "de", data_dir=tmp_path))
    # English: SQuAD v1.1 train itself.
    train = write_json(tmp_path / "squad/train-v1.1.json",
                       squad_json([("e1", "Who?", "Die Normannen", 0)]))
    english = read_split("squad", "translate_train", "en", data_dir=tmp_path)
    assert english.path == train and english.language == "en" and len(english) == 1
    assert files.locations("squad", "translate_train", "en") == files.locations(
        "squad", "train", "en")
