"""Raw-format readers: SQuAD v1.1 JSON (XQuAD), Tatoeba (LASER layout), CoNLL-U and tagging TSV.

Real files come from ``../shared/data`` (tests skip when it is absent); error cases use
fixtures written in tmp_path.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from xstilts_jax.tasks.readers import (SKIP_ANSWER_MISMATCH, SKIP_EMPTY_NODE, SKIP_MULTIWORD,
                                       SKIP_NO_VALID_ANSWER, TATOEBA_LANGUAGES, UPOS_TAGS,
                                       DataError, QAExample, TaggedSentence, read_conllu,
                                       read_squad, read_tagging_tsv, read_tatoeba, tatoeba_files)

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
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


@pytest.mark.parametrize("language", XQUAD_LANGUAGES)
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
        raw["data"][0]["title"], 0)


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


@pytest.mark.parametrize("language", list(TATOEBA_LANGUAGES))
def test_tatoeba_real_files(language):
    data_dir = shared("tatoeba")
    for path in tatoeba_files(data_dir, language):
        assert path.is_file(), path
    source, english = read_tatoeba(data_dir, language)
    expected = TATOEBA_SHORT.get(language, 1000)
    assert len(source) == len(english) == expected
    assert all(s and "\n" not in s and not s.endswith("\r") for s in source + english)


def test_tatoeba_content():
    source, english = read_tatoeba(shared("tatoeba"), "zh")
    assert english[:3] == ["Let's have a look.", "We should go to sleep.", "What are you doing?"]
    assert source[0] == "我們試試看！"


def test_tatoeba_errors(tmp_path):
    write(tmp_path / "tatoeba.deu-eng.deu", "Hallo.\nDanke.\nJa.\n")
    write(tmp_path / "tatoeba.deu-eng.eng", "Hello.\nThanks.\n")
    with pytest.raises(DataError) as e:
        read_tatoeba(tmp_path, "de")
    message = str(e.value)
    assert "tatoeba.deu-eng.deu has 3 lines" in message and "tatoeba.deu-eng.eng has 2" in message
    write(tmp_path / "tatoeba.deu-eng.eng", "Hello.\n\nYes.\n")
    with pytest.raises(DataError, match=r"tatoeba\.deu-eng\.eng:2: empty line"):
        read_tatoeba(tmp_path, "de")
    write(tmp_path / "tatoeba.deu-eng.eng", "Hello.\r\nThanks.\r\nYes.")  # CRLF, no final newline
    assert read_tatoeba(tmp_path, "de") == (["Hallo.", "Danke.", "Ja."],
                                            ["Hello.", "Thanks.", "Yes."])
    with pytest.raises(DataError, match=r"tatoeba\.fra-eng\.fra: no such file"):
        read_tatoeba(tmp_path, "fr")
    with pytest.raises(DataError, match=r"no language 'deu'.*af ar bg"):
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
