"""Raw-format readers (xstilts_jax.tasks.formats): SQuAD v1.1 JSON (XQuAD), Tatoeba (LASER
layout), BUCC 2018, CoNLL-U and tagging TSV; Tatoeba and BUCC read through the task layout
(xstilts_jax.tasks.sources.files) as the catalog lays them out under a data dir.

Real files come from ``../shared/data`` (tests skip when it is absent); error cases use
fixtures written in tmp_path.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from conftest import SHARED_DATA
from xstilts_jax.tasks.catalog.xtreme import (BUCC_LANGUAGES, MLQA_LANGUAGES, PANX_LANGUAGES,
                                              TATOEBA_LANGUAGES, TYDIQA_LANGUAGE_NAMES,
                                              TYDIQA_LANGUAGES, UDPOS_LANGUAGES, XQUAD_LANGUAGES)
from xstilts_jax.tasks.examples import QAExample, TaggedSentence, TranslationPair
from xstilts_jax.tasks.formats.bucc import read_bucc_files
from xstilts_jax.tasks.formats.conllu import (SKIP_EMPTY_NODE, SKIP_MULTIWORD, SKIP_NO_TEXT,
                                              UPOS_TAGS, read_conllu, read_conllu_files)
from xstilts_jax.tasks.formats.squad import (SKIP_ANSWER_MISMATCH, SKIP_NO_VALID_ANSWER,
                                             read_squad)
from xstilts_jax.tasks.formats.tatoeba import read_tatoeba_files
from xstilts_jax.tasks.formats.word_tags import PANX_LABELS, read_panx_raw, read_tagging_tsv
from xstilts_jax.tasks.io import DataError
from xstilts_jax.tasks.sources import files

DATA = SHARED_DATA
XQUAD_FILES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")  # + ro
TATOEBA_SHORT = {"jv": 205, "te": 234, "ta": 307, "sw": 390, "th": 548, "kk": 575, "ml": 687,
                 "ka": 746}  # the data README's counts; every other language has 1000


def shared(folder: str) -> pathlib.Path:
    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (see shared/data/README.md)")
    return path


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- SQuAD / XQuAD


def squad_doc(*qas, context="The cat sat on the mat.", title="Cats"):
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": context, "qas": list(qas)}]}]}


def qa(qid, question, *answers):
    return {"id": qid, "question": question,
            "answers": [{"text": t, "answer_start": s} for t, s in answers]}


@pytest.mark.parametrize("language", XQUAD_FILES)
def test_xquad_real_files(language):
    path = shared("xquad") / f"xquad.{language}.json"
    result = read_squad(path, language)  # strict: XQuAD has no answer/offset mismatch
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert len(raw["data"]) == 48
    assert len(result) == 1190 and result.skipped == {}
    assert result.language == language and result.path == path
    assert len({e.paragraph for e in result}) == 240 == len({e.context for e in result})
    assert len({e.id for e in result}) == 1190
    assert all(len(e.answers) == 1 for e in result)
    for e in result:
        for text, start in e.answers:
            assert e.context[start:start + len(text)] == text
    first = raw["data"][0]["paragraphs"][0]
    assert result[0] == QAExample(
        first["qas"][0]["id"], first["qas"][0]["question"], first["context"],
        ((first["qas"][0]["answers"][0]["text"], first["qas"][0]["answers"][0]["answer_start"]),),
        raw["data"][0]["title"], 0, language=result.language)
    assert {e.language for e in result} == {result.language}


def test_xquad_questions_align_across_languages():
    ids = {lang: [e.id for e in read_squad(shared("xquad") / f"xquad.{lang}.json", lang)]
           for lang in ("en", "zh")}
    assert ids["en"] == ids["zh"]


def test_squad_fixture_multiple_answers(tmp_path):
    path = write(tmp_path / "dev.json", json.dumps(squad_doc(
        qa("q1", "Who sat?", ("The cat", 0), ("cat", 4)),
        qa("q2", "Where?", ("the mat", 15)))))
    result = read_squad(path, "en")
    assert [e.id for e in result] == ["q1", "q2"]
    assert result[0].answers == (("The cat", 0), ("cat", 4))
    assert result[1].title == "Cats" and result[1].paragraph == 0


def test_squad_answer_mismatch_is_an_error_naming_id_and_strings(tmp_path):
    path = write(tmp_path / "bad.json", json.dumps(squad_doc(
        qa("q1", "Who sat?", ("The cat", 0)),
        qa("q-bad", "Where?", ("the mat", 3)))))  # context[3:10] is ' cat sa'
    with pytest.raises(DataError) as e:
        read_squad(path, "en")
    message = str(e.value)
    assert str(path) in message and "'q-bad'" in message
    assert "'the mat'" in message and "' cat sa'" in message


def test_squad_answer_mismatch_skip_mode_counts(tmp_path):
    path = write(tmp_path / "bad.json", json.dumps(squad_doc(
        qa("q1", "Who sat?", ("The cat", 0), ("dog", 4)),
        qa("q2", "Where?", ("the mat", 3)),
        qa("q3", "Sat?", ("sat", 8)))))
    result = read_squad(path, "en", mismatches="skip")
    assert [e.id for e in result] == ["q1", "q3"]
    assert result[0].answers == (("The cat", 0),)
    assert result.skipped == {SKIP_ANSWER_MISMATCH: 2, SKIP_NO_VALID_ANSWER: 1}


def test_squad_offset_past_context_and_negative(tmp_path):
    for start in (100, -1):
        path = write(tmp_path / "bad.json", json.dumps(squad_doc(qa("q1", "?", ("cat", start)))))
        with pytest.raises(DataError, match=r"'q1'.*'cat'"):
            read_squad(path, "en")


def test_squad_truncated_json_names_line_and_column(tmp_path):
    text = json.dumps(squad_doc(qa("q1", "Who sat?", ("The cat", 0))), indent=2)
    path = write(tmp_path / "cut.json", text[:len(text) // 2])
    lines = text[:len(text) // 2].split("\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + r":\d+:\d+: invalid JSON") as e:
        read_squad(path, "en")
    line = int(re.search(r":(\d+):\d+: invalid", str(e.value)).group(1))
    assert line == len(lines)  # the error is at the end of the cut file
    assert "truncated file?" in str(e.value)
    write(path, '{"data": [}')
    with pytest.raises(DataError, match=re.escape(f"{path}:1:11: invalid JSON")) as e:
        read_squad(path, "en")
    assert "truncated file?" not in str(e.value)


@pytest.mark.parametrize("doc, pattern", [
    ([], r"top level: expected a JSON object"),
    ({"version": "1.1"}, r"field 'data' is missing"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, r"data\[0\]\.paragraphs\[0\]: field 'context'"),
    (squad_doc({"id": "q1", "question": "?", "answers": [{"text": "cat"}]}),
     r"question 'q1' answer 0: field 'answer_start' is missing"),
    (squad_doc({"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": "4"}]}),
     r"'answer_start' is a str, expected an integer"),
    (squad_doc(qa("q1", "?", ("cat", 4)), qa("q1", "?", ("cat", 4))), r"'q1': duplicate"),
    (squad_doc(qa("q1", "?")), r"'q1': no answers .*allow_unanswered"),
    (squad_doc(dict(qa("q1", "?"), is_impossible=True)), r"SQuAD 2.0"),
    ({"data": []}, r"no questions"),
])
def test_squad_structure_errors(tmp_path, doc, pattern):
    path = write(tmp_path / "x.json", json.dumps(doc))
    with pytest.raises(DataError, match=pattern):
        read_squad(path, "en")


def test_squad_unanswered_allowed(tmp_path):
    path = write(tmp_path / "test.json", json.dumps(squad_doc(qa("q1", "Who?"))))
    assert read_squad(path, "en", allow_unanswered=True)[0].answers == ()


def test_squad_missing_file_and_bad_utf8(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_squad(tmp_path / "nope.json", "en")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"data": [\n"caf\xe9"]}')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not valid UTF-8")):
        read_squad(path, "en")


# --------------------------------------------------------------------------- Tatoeba


def test_tatoeba_language_table():
    assert len(TATOEBA_LANGUAGES) == 36
    assert " ".join(TATOEBA_LANGUAGES) == (
        "af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr nl pt ru sw "
        "ta te th tl tr ur vi zh")
    assert " ".join(TATOEBA_LANGUAGES.values()) == (
        "afr ara bul ben deu ell spa est eus pes fin fra heb hin hun ind ita jpn jav kat kaz kor "
        "mal mar nld por rus swh tam tel tha tgl tur urd vie cmn")


def tatoeba_files(data_dir: pathlib.Path, language: str) -> list[pathlib.Path]:
    """LASER's two files of ``language`` where the layout expects them under ``data_dir``."""
    code = TATOEBA_LANGUAGES[language]
    return [data_dir / "tatoeba" / f"tatoeba.{code}-eng.{ext}" for ext in (code, "eng")]


def read_tatoeba(data_dir: pathlib.Path, language: str) -> tuple[list[str], list[str]]:
    """(sentences in ``language``, their English translations), read through the layout."""
    result = files.read_split("tatoeba", data_dir, "test", language)
    return [p.source for p in result], [p.english for p in result]


@pytest.mark.parametrize("language", list(TATOEBA_LANGUAGES))
def test_tatoeba_real_files(language):
    data_dir = shared("tatoeba").parent
    fmt, paths = files.find_files("tatoeba", data_dir, "test", language)
    assert fmt == "tatoeba" and paths == tatoeba_files(data_dir, language)
    for path in paths:
        assert path.is_file(), path
    source, english = read_tatoeba(data_dir, language)
    expected = TATOEBA_SHORT.get(language, 1000)
    assert len(source) == len(english) == expected
    assert all(s and "\n" not in s and not s.endswith("\r") for s in source + english)


def test_tatoeba_content():
    source, english = read_tatoeba(shared("tatoeba").parent, "zh")
    assert english[:3] == ["Let's have a look.", "We should go to sleep.", "What are you doing?"]
    assert source[0] == "我們試試看！"


def test_tatoeba_errors(tmp_path):
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    write(folder / "tatoeba.deu-eng.deu", "Hallo.\nDanke.\nJa.\n")
    write(folder / "tatoeba.deu-eng.eng", "Hello.\nThanks.\n")
    with pytest.raises(DataError) as e:
        read_tatoeba(tmp_path, "de")
    message = str(e.value)
    assert "tatoeba.deu-eng.deu has 3 lines" in message and "tatoeba.deu-eng.eng has 2" in message
    write(folder / "tatoeba.deu-eng.eng", "Hello.\n\nYes.\n")
    with pytest.raises(DataError, match=r"tatoeba\.deu-eng\.eng:2: empty line"):
        read_tatoeba(tmp_path, "de")
    write(folder / "tatoeba.deu-eng.eng", "Hello.\r\nThanks.\r\nYes.")  # CRLF, no final newline
    assert read_tatoeba(tmp_path, "de") == (["Hallo.", "Danke.", "Ja."],
                                            ["Hello.", "Thanks.", "Yes."])
    with pytest.raises(DataError, match=r"task 'tatoeba' split 'test' \(fr\): no data files; "
                                        r"tried " + re.escape(f"{folder}/tatoeba.fra-eng.fra + "
                                                              f"{folder}/tatoeba.fra-eng.eng")):
        read_tatoeba(tmp_path, "fr")
    with pytest.raises(DataError, match=r"task 'tatoeba' split 'test' has no language 'deu'; "
                                        r"its languages: af ar bg"):
        read_tatoeba(tmp_path, "deu")


# --------------------------------------------------------------------------- CoNLL-U


def count_conllu(path: pathlib.Path) -> tuple[int, int, int, int]:
    """Independent count: (sentences, words, multiword ranges, empty nodes) -- a sentence is a
    blank-line-separated block with at least one integer-ID line."""
    sentences = words = ranges = empties = 0
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        ids = [line.split("\t", 1)[0] for line in block.split("\n")
               if line and not line.startswith("#")]
        n = sum(i.isdigit() for i in ids)
        sentences += n > 0
        words += n
        ranges += sum("-" in i for i in ids)
        empties += sum("." in i for i in ids)
    return sentences, words, ranges, empties


@pytest.mark.parametrize("name, language, sentences, words", [
    ("en_ewt-ud-test.conllu", "en", 2077, 25094),
    ("en_ewt-ud-dev.conllu", "en", 2001, 25147),
    ("de_gsd-ud-test.conllu", "de", 977, 16499),
])
def test_conllu_real_files(name, language, sentences, words):
    path = shared("udpos") / name
    result = read_conllu(path, language)
    n_sentences, n_words, n_ranges, n_empties = count_conllu(path)
    assert (n_sentences, n_words) == (sentences, words)
    assert len(result) == sentences
    assert sum(len(s.words) for s in result) == words
    assert result.skipped.get(SKIP_MULTIWORD, 0) == n_ranges > 0
    assert result.skipped.get(SKIP_EMPTY_NODE, 0) == n_empties
    assert all(len(s.words) == len(s.tags) > 0 for s in result)
    assert {t for s in result for t in s.tags} <= set(UPOS_TAGS)


def test_conllu_first_sentence_en_ewt_test():
    first = read_conllu(shared("udpos") / "en_ewt-ud-test.conllu", "en")[0]
    assert first == TaggedSentence(("What", "if", "Google", "Morphed", "Into", "GoogleOS", "?"),
                                   ("PRON", "SCONJ", "PROPN", "VERB", "ADP", "PROPN", "PUNCT"),
                                   "en_ewt-ud-test.conllu:5")


def conllu_line(i, form, upos):
    return "\t".join([str(i), form, form.lower(), upos, "_", "_", "0", "root", "_", "_"])


FIXTURE = "\n".join([
    "# sent_id = 1",
    "# text = Im Haus.",
    "1-2\tIm\t_\t_\t_\t_\t_\t_\t_\t_",
    conllu_line(1, "In", "ADP"),
    conllu_line(2, "dem", "DET"),
    conllu_line(3, "Haus", "NOUN"),
    "3.1\tist\tsein\tAUX\t_\t_\t_\t_\t3:cop\t_",
    conllu_line(4, ".", "PUNCT"),
    "",
    "",
    "# sent_id = 2",
    conllu_line(1, "Ja", "INTJ"),  # no blank line at the end of the file
])


def test_conllu_fixture_skips_ranges_empty_nodes_comments(tmp_path):
    path = write(tmp_path / "x.conllu", FIXTURE)
    result = read_conllu(path, "de")
    assert list(result) == [
        TaggedSentence(("In", "dem", "Haus", "."), ("ADP", "DET", "NOUN", "PUNCT"), "x.conllu:4"),
        TaggedSentence(("Ja",), ("INTJ",), "x.conllu:12")]
    assert result.skipped == {"comment line": 3, SKIP_MULTIWORD: 1, SKIP_EMPTY_NODE: 1}


@pytest.mark.parametrize("line, lineno, pattern", [
    ("1\tIn\tin\tADP\t_\t_\t0\troot\t_", 2, r"9 tab-separated columns, expected 10 \(CoNLL-U"),
    ("1 In in ADP _ _ 0 root _ _", 2, r"1 tab-separated columns, expected 10"),
    (conllu_line(1, "In", "ADP") + "\t_", 2, r"11 tab-separated columns, expected 10"),
    (conllu_line(3, "In", "ADP"), 2, r"word ID 3, expected 1"),
    (conllu_line("x", "In", "ADP"), 2, r"ID 'x' is not a word ID"),
    (conllu_line(1, "In", "PREP"), 2, r"UPOS 'PREP' is not one of ADJ"),
])
def test_conllu_errors_name_file_and_line(tmp_path, line, lineno, pattern):
    path = write(tmp_path / "bad.conllu", "# sent_id = 1\n" + line + "\n\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:{lineno}: ") + pattern):
        read_conllu(path, "en")


def test_conllu_empty_and_missing(tmp_path):
    with pytest.raises(DataError, match="no sentences"):
        read_conllu(write(tmp_path / "empty.conllu", "# only a comment\n\n"), "en")
    with pytest.raises(DataError, match="no such file"):
        read_conllu(tmp_path / "nope.conllu", "en")


# --------------------------------------------------------------------------- tagging TSV


def test_tagging_tsv(tmp_path):
    path = write(tmp_path / "test-de.tsv",
                 "Das\tDET\nHaus\tNOUN\n\n\nNew York\tPROPN\n.\tPUNCT\n")
    result = read_tagging_tsv(path, "de", labels=UPOS_TAGS)
    assert list(result) == [TaggedSentence(("Das", "Haus"), ("DET", "NOUN"), "test-de.tsv:1"),
                            TaggedSentence(("New York", "."), ("PROPN", "PUNCT"),
                                           "test-de.tsv:5")]
    assert result.skipped == {}


def test_tagging_tsv_matches_conllu_roundtrip(tmp_path):
    sentences = read_conllu(write(tmp_path / "x.conllu", FIXTURE), "de")
    tsv = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags)) for s in sentences)
    again = read_tagging_tsv(write(tmp_path / "x.tsv", tsv + "\n"), "de")
    assert [(s.words, s.tags) for s in again] == [(s.words, s.tags) for s in sentences]


@pytest.mark.parametrize("text, pattern", [
    ("Das\tDET\nHaus\n", r":2: 1 tab-separated columns, expected 2 \(word, tag\) \(a test file"),
    ("Das\tDET\tx\n", r":1: 3 tab-separated columns, expected 2"),
    ("\tDET\n", r":1: empty word"),
    ("Das\tDETT\n", r":1: tag 'DETT' is not one of ADJ"),
    ("\n\n", r": no sentences"),
])
def test_tagging_tsv_errors(tmp_path, text, pattern):
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(DataError, match=re.escape(str(path)) + pattern):
        read_tagging_tsv(path, "de", labels=UPOS_TAGS)


# --------------------------------------------------------------------------- language tables


def test_language_tables():
    assert len(XQUAD_LANGUAGES) == 11 and "ro" not in XQUAD_LANGUAGES
    assert " ".join(MLQA_LANGUAGES) == "ar de en es hi vi zh"
    assert " ".join(TYDIQA_LANGUAGES) == "ar bn en fi id ko ru sw te"
    assert list(TYDIQA_LANGUAGE_NAMES) == list(TYDIQA_LANGUAGES)
    assert TYDIQA_LANGUAGE_NAMES["sw"] == "swahili" and TYDIQA_LANGUAGE_NAMES["bn"] == "bengali"
    assert " ".join(BUCC_LANGUAGES) == "de fr ru zh"
    assert len(UDPOS_LANGUAGES) == 33 and len(PANX_LANGUAGES) == 40
    assert not set(UDPOS_LANGUAGES) & {"lt", "pl", "uk", "wo", "ro"}  # XTREME-R additions
    assert PANX_LABELS == ("B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O")
    for table in (XQUAD_LANGUAGES, MLQA_LANGUAGES, TYDIQA_LANGUAGES, UDPOS_LANGUAGES,
                  PANX_LANGUAGES):
        assert list(table) == sorted(set(table))


@pytest.mark.parametrize("task, table", [
    ("xquad", XQUAD_LANGUAGES), ("mlqa", MLQA_LANGUAGES), ("tydiqa", TYDIQA_LANGUAGES),
    ("bucc2018", BUCC_LANGUAGES), ("udpos", UDPOS_LANGUAGES), ("panx", PANX_LANGUAGES),
    ("tatoeba", tuple(TATOEBA_LANGUAGES)),
])
def test_language_tables_match_xtreme_mock_test_data(task, table):
    """XTREME's mock_test_data has one label file per language of each task."""
    folder = shared("xtreme_mock") / "labels" / task
    languages = sorted(p.name.split(".")[0].removeprefix("test-") for p in folder.iterdir())
    assert languages == sorted(table)


# --------------------------------------------------------------------------- SQuAD: XTREME's files


def test_squad_xtreme_stripped_answers(tmp_path):
    """remove_qa_test_annotations leaves {'answer_start': 0, 'text': ''} for every question."""
    path = write(tmp_path / "xquad.de.json", json.dumps(squad_doc(qa("q1", "Wer?", ("", 0)))))
    with pytest.raises(DataError, match=r"'q1' answer 0: empty answer text \(a test file of "
                                        r"XTREME's download.*allow_unanswered=True"):
        read_squad(path, "de")
    result = read_squad(path, "de", allow_unanswered=True)
    assert result[0].answers == () and result.skipped == {}


def test_squad_duplicate_ids_suffix(tmp_path):
    """XTREME's per-language TyDiQA training files keep only the last '-' part of each id."""
    path = write(tmp_path / "tydiqa.goldp.en.train.json", json.dumps(squad_doc(
        qa("1", "Who sat?", ("The cat", 0)), qa("0", "Where?", ("the mat", 15)),
        qa("1", "Sat?", ("sat", 8)), qa("1", "What?", ("cat", 4)))))
    with pytest.raises(DataError, match="'1': duplicate question id"):
        read_squad(path, "en")
    result = read_squad(path, "en", duplicate_ids="suffix")
    assert [e.id for e in result] == ["1", "0", "1#2", "1#3"]
    assert result[2].answers == (("sat", 8),)
    with pytest.raises(ValueError, match="duplicate_ids"):
        read_squad(path, "en", duplicate_ids="keep")


# --------------------------------------------------------------------------- Tatoeba pairs


def test_tatoeba_files_as_pairs():
    data_dir = shared("tatoeba").parent
    result = read_tatoeba_files(*tatoeba_files(data_dir, "zh"), "zh")
    source, english = (path.read_text(encoding="utf-8").splitlines()
                       for path in tatoeba_files(data_dir, "zh"))
    assert len(result) == 1000 and result.language == "zh"
    assert result[0] == TranslationPair(source[0], english[0], "tatoeba.cmn-eng.cmn:1")
    assert [p.english for p in result] == english
    assert result.files == tuple(tatoeba_files(data_dir, "zh"))
    assert files.read_split("tatoeba", data_dir, "test", "zh") == result  # what the layout reads


# --------------------------------------------------------------------------- BUCC 2018


def write_bucc(folder, pair, split, source, english, gold=None):
    """Sentence files as {id: sentence}, gold as [(src, en)] or raw text."""
    folder.mkdir(parents=True, exist_ok=True)
    lang = pair.split("-")[0]
    write(folder / f"{pair}.{split}.{lang}", "".join(f"{i}\t{t}\n" for i, t in source.items()))
    write(folder / f"{pair}.{split}.en", "".join(f"{i}\t{t}\n" for i, t in english.items()))
    if gold is not None:
        text = gold if isinstance(gold, str) else "".join(f"{s}\t{e}\n" for s, e in gold)
        write(folder / f"{pair}.{split}.gold", text)


DE = {"de-000000001": "Der Hund schläft.", "de-000000002": "Es regnet.",
      "de-000000003": "Ein Satz ohne Partner."}
EN = {"en-000000007": "It is raining.", "en-000000009": "The dog sleeps.",
      "en-000000010": "An unrelated sentence."}
GOLD = [("de-000000001", "en-000000009"), ("de-000000002", "en-000000007")]


def read_bucc(data_dir: pathlib.Path, language: str, split: str):
    """BUCC 2018 through the layout: ``<data_dir>/bucc2018/<lang>-en.<split>.<ext>`` (XTREME) or
    ``<data_dir>/bucc2018/<lang>-en/<lang>-en.{sample,training}.<ext>`` (the release)."""
    return files.read_split("bucc2018", data_dir, split, language)


def test_bucc_xtreme_layout(tmp_path):
    bucc = tmp_path / "bucc2018"
    write_bucc(bucc, "de-en", "dev", DE, EN, GOLD)
    data = read_bucc(tmp_path, "de", "dev")
    assert data.source == DE and list(data.english) == list(EN)
    assert data.gold == tuple(GOLD) and data.language == "de" and data.complete
    assert data.files == tuple(bucc / f"de-en.dev.{x}" for x in ("de", "en", "gold"))


def test_bucc_release_layout_and_test_gold(tmp_path):
    bucc = tmp_path / "bucc2018"
    write_bucc(bucc / "de-en", "de-en", "training", DE, EN, GOLD)
    data = read_bucc(tmp_path, "de", "test")  # XTREME's test split = the release's training
    assert data.gold == tuple(GOLD) and data.files[0] == bucc / "de-en" / "de-en.training.de"
    # XTREME's layout deletes the test gold: the release's files win for test ...
    write_bucc(bucc, "de-en", "test", DE, EN)
    assert read_bucc(tmp_path, "de", "test").files[0].parent.name == "de-en"
    # ... and alone, XTREME's test has no gold: an error that names the missing gold, why it
    # is missing, and where the release has it. (Reading the sentences without gold, the old
    # require_gold=False, has no counterpart in the layout.)
    (bucc / "de-en" / "de-en.training.de").unlink()
    with pytest.raises(DataError, match=r"task 'bucc2018' split 'test' \(de\): no data files; "
                                        r"tried " + re.escape(
                                            f"{bucc}/de-en/de-en.training.de + "
                                            f"{bucc}/de-en/de-en.training.en + "
                                            f"{bucc}/de-en/de-en.training.gold (BUCC 2018 "
                                            f"release) [missing: "
                                            f"bucc2018/de-en/de-en.training.de]; "
                                            f"{bucc}/de-en.test.de + {bucc}/de-en.test.en + "
                                            f"{bucc}/de-en.test.gold (XTREME's download) "
                                            f"[missing: bucc2018/de-en.test.gold; download_data.sh "
                                            f"deletes XTREME's test gold]") + "$"):
        read_bucc(tmp_path, "de", "test")


def test_bucc_candidates_order(tmp_path):
    dev = files.locations("bucc2018", "dev", "zh")
    test = files.locations("bucc2018", "test", "zh")
    assert dev[0].patterns[0] == "bucc2018/zh-en.dev.zh"
    assert dev[1].patterns[2] == "bucc2018/zh-en/zh-en.sample.gold"
    assert test[0].patterns[1] == "bucc2018/zh-en/zh-en.training.en"
    assert test[1].patterns[2] == "bucc2018/zh-en.test.gold"
    with pytest.raises(DataError, match=r"task 'bucc2018' split 'dev' has no language 'ja'; its "
                                        r"languages: de fr ru zh"):
        files.locations("bucc2018", "dev", "ja")
    with pytest.raises(DataError, match=r"task 'bucc2018' has no split 'train'; its splits: dev, "
                                        r"test"):
        files.locations("bucc2018", "train", "de")
    with pytest.raises(DataError, match=r"task 'bucc2018' split 'dev' \(de\): no data files; "
                                        r"tried .*bucc2018/de-en\.dev\.de \+ .*bucc2018/"
                                        r"de-en\.dev\.en \+ .*; .*bucc2018/de-en/de-en\.sample\.de "
                                        r"\+ "):
        read_bucc(tmp_path, "de", "dev")


@pytest.mark.parametrize("source, english, gold, where, pattern", [
    ({**DE, "de-000000004": "a\tb"}, EN, GOLD, "dev.de:4", r"3 tab-separated columns, expected 2"),
    (DE, EN, "de-000000001\ten-000000009\tx\n", "dev.gold:1", r"3 tab-separated columns"),
    (DE, EN, GOLD + [("de-000000005", "en-000000007")], "dev.gold:3",
     r"id 'de-000000005' is not in .*de-en\.dev\.de"),
    (DE, EN, GOLD + [("de-000000003", "en-000000099")], "dev.gold:3",
     r"id 'en-000000099' is not in .*de-en\.dev\.en"),
    (DE, EN, GOLD + GOLD[:1], "dev.gold:3", r"pair de-000000001 en-000000009 repeats line 1"),
    ({"fr-000000001": "Il pleut."}, EN, GOLD, "dev.de:1", r"id 'fr-000000001' does not start "
                                                          r"with 'de-'"),
    (DE, {"de-000000001": "x"}, GOLD, "dev.en:1", r"does not start with 'en-'"),
    (DE, {**EN, "en-000000011": " "}, GOLD, "dev.en:4", r"empty sentence"),
    (DE, EN, "", "dev.gold", r"no gold pairs"),
])
def test_bucc_errors_name_file_and_line(tmp_path, source, english, gold, where, pattern):
    write_bucc(tmp_path / "bucc2018", "de-en", "dev", source, english, gold)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}/bucc2018/de-en.{where}") + ".*"
                       + pattern):
        read_bucc(tmp_path, "de", "dev")


def test_bucc_duplicate_id(tmp_path):
    write_bucc(tmp_path, "de-en", "dev", DE, EN, GOLD)
    with open(tmp_path / "de-en.dev.en", "a", encoding="utf-8") as f:
        f.write("en-000000007\tIt rains.\n")
    with pytest.raises(DataError, match=r"de-en\.dev\.en:4: duplicate id 'en-000000007' "
                                        r"\(first on line 1\)"):
        read_bucc_files(*(tmp_path / f"de-en.dev.{x}" for x in ("de", "en", "gold")), "de")


# --------------------------------------------------------------------------- PAN-X raw


def test_panx_raw(tmp_path):
    path = write(tmp_path / "train", "de:Angela\tB-PER\nde:Merkel\tI-PER\nde:sprach\tO\n\n"
                                     "de:http://x.de:80\tO\r\nde:de:Berlin\tB-LOC\n")
    result = read_panx_raw(path, "de")
    assert list(result) == [
        TaggedSentence(("Angela", "Merkel", "sprach"), ("B-PER", "I-PER", "O"), "train:1"),
        TaggedSentence(("http://x.de:80", "de:Berlin"), ("O", "B-LOC"), "train:5")]
    assert result.skipped == {} and result.language == "de"


@pytest.mark.parametrize("text, pattern", [
    ("de:Haus\tO\nHaus\tO\n", r":2: 'Haus' does not start with 'de:' \(raw PAN-X lines are "
                              r"<lang>:<word><TAB><tag>"),
    ("en:Haus\tO\n", r":1: 'en:Haus' does not start with 'de:'"),
    ("de:Haus\n", r":1: 1 tab-separated columns, expected 2 \(de:word, tag\)"),
    ("de:Haus\tO\tx\n", r":1: 3 tab-separated columns"),
    ("de:\tO\n", r":1: empty word after 'de:'"),
    ("de:Haus\tB-MISC\n", r":1: tag 'B-MISC' is not one of B-LOC B-ORG"),
    ("\n", r": no sentences"),
])
def test_panx_raw_errors(tmp_path, text, pattern):
    path = write(tmp_path / "dev", text)
    with pytest.raises(DataError, match=re.escape(str(path)) + pattern):
        read_panx_raw(path, "de")


def test_panx_processed_tsv_labels(tmp_path):
    path = write(tmp_path / "dev-de.tsv", "Angela\tB-PER\nMerkel\tI-PER\n\nBerlin\tB-LOC\n")
    assert len(read_tagging_tsv(path, "de", labels=PANX_LABELS)) == 2
    write(path, "Angela\tB-PERS\n")
    with pytest.raises(DataError, match=r":1: tag 'B-PERS'"):
        read_tagging_tsv(path, "de", labels=PANX_LABELS)


# --------------------------------------------------------------------------- CoNLL-U (XTREME)


TEXTLESS = "\n".join([
    "# sent_id = t1",
    conllu_line(1, "_", "PRON"), conllu_line(2, "_", "VERB"), conllu_line(3, ".", "PUNCT"),
    "",
    "# sent_id = t2",
    conllu_line(1, "_", "NOUN"), conllu_line(2, "_", "PUNCT"),
    "",
]) + "\n"


def test_conllu_drop_textless(tmp_path):
    path = write(tmp_path / "ja_bccwj-ud-test.conllu", TEXTLESS + "\n".join([
        conllu_line(1, "_", "NOUN"), conllu_line(2, "ist", "AUX"), conllu_line(3, "_", "ADJ"),
        "",
        conllu_line(1, "_", "NOUN"), conllu_line(2, "ist", "AUX"), conllu_line(3, "_", "ADJ"),
        conllu_line(4, "gut", "ADJ"), ""]) + "\n")
    assert len(read_conllu(path, "ja")) == 4  # nothing dropped by default
    result = read_conllu(path, "ja", drop_textless=True)
    # XTREME keeps a sentence unless all its words, or all but one, are '_'.
    assert [s.words for s in result] == [("_", "ist", "_", "gut")]
    assert result.skipped[SKIP_NO_TEXT] == 3
    write(path, TEXTLESS)
    with pytest.raises(DataError, match=r"no sentences \(2 skipped: sentence without its words"):
        read_conllu(path, "ja", drop_textless=True)


def test_conllu_files_concatenated(tmp_path):
    for folder in ("UD_German-GSD", "UD_German-X", "copy"):
        (tmp_path / folder).mkdir()
    a = write(tmp_path / "UD_German-GSD" / "de_gsd-ud-test.conllu", FIXTURE)
    b = write(tmp_path / "UD_German-X" / "de_x-ud-test.conllu", TEXTLESS)
    result = read_conllu_files([a, b], "de", drop_textless=True)
    assert [s.guid for s in result] == ["de_gsd-ud-test.conllu:4", "de_gsd-ud-test.conllu:12"]
    assert result.skipped[SKIP_NO_TEXT] == 2 and result.skipped[SKIP_MULTIWORD] == 1
    assert result.path == tmp_path and result.files == (a, b)
    with pytest.raises(DataError, match=r"no sentences in .*de_x-ud-test.conllu \(2 skipped"):
        read_conllu_files([b], "de", drop_textless=True)
    c = write(tmp_path / "copy" / "de_gsd-ud-test.conllu", FIXTURE)
    with pytest.raises(DataError, match=r"have the same file name"):
        read_conllu_files([a, c], "de")


def test_conllu_files_real_treebanks():
    folder = shared("udpos")
    dev, test = folder / "en_ewt-ud-dev.conllu", folder / "en_ewt-ud-test.conllu"
    result = read_conllu_files([dev, test], "en", drop_textless=True)
    assert len(result) == 2001 + 2077 and len({s.guid for s in result}) == 4078
    assert SKIP_NO_TEXT not in result.skipped and result.path == folder
