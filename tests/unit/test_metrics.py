"""XTREME metrics against the official scorer's numbers on XTREME's mock test data, and errors."""

from __future__ import annotations

import json
import pathlib

import pytest

from conftest import SHARED_DATA
from xstilts_jax.cli import main
from xstilts_jax.metrics import (TASKS, ScoreError, bucc_f1, get_entities, mlqa_normalize_answer,
                                 score_all, score_task, squad_normalize_answer, tagging_f1)

MOCK = SHARED_DATA / "xtreme_mock"
needs_mock = pytest.mark.skipif(not (MOCK / "expected_scores.json").is_file(),
                                reason=f"XTREME mock oracle not found at {MOCK}")


def expected_scores() -> dict:
    return json.loads((MOCK / "expected_scores.json").read_text())


def test_every_task_is_in_the_oracle():
    if (MOCK / "expected_scores.json").is_file():
        assert set(expected_scores()) == set(TASKS)


# --------------------------------------------------------------------------- the oracle

@needs_mock
@pytest.mark.parametrize("task", TASKS)
def test_score_task_reproduces_official_scorer(task):
    expected = expected_scores()[task]
    result = score_task(task, MOCK / "predictions", MOCK / "labels")
    assert result["languages"] == sorted(p.name[5:].split(".")[0]
                                         for p in (MOCK / "labels" / task).iterdir())
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
        metric = key[len("avg_"):]
        per_lang = [s[metric] for s in result["per_language"].values()]
        assert sum(per_lang) / len(per_lang) == pytest.approx(value, abs=1e-6)


@needs_mock
def test_udpos_uses_xtreme_chunk_types_not_seqeval_1x():
    result = score_task("udpos", MOCK / "predictions", MOCK / "labels")
    assert result["avg_f1"] == pytest.approx(70.21746048354693, abs=1e-6)
    assert abs(result["avg_f1"] - 70.398) > 0.1  # what seqeval 1.x's tag[1:] types give


@needs_mock
def test_score_task_language_subset_and_qa_task_score():
    result = score_task("xquad", MOCK / "predictions", MOCK / "labels", languages=["en", "de"])
    assert list(result["per_language"]) == ["en", "de"]
    assert result["score"] == pytest.approx((result["avg_exact_match"] + result["avg_f1"]) / 2)
    with pytest.raises(ScoreError, match="no labels for language.*xx"):
        score_task("xquad", MOCK / "predictions", MOCK / "labels", languages=["en", "xx"])


@needs_mock
def test_score_all_summary():
    results = score_all(MOCK / "predictions", MOCK / "labels")
    expected = expected_scores()
    assert set(results["tasks"]) == set(TASKS)
    summary = results["summary"]
    assert summary["complete"]
    for task in ("pawsx", "xnli", "tatoeba"):
        assert summary["tasks"][task] == pytest.approx(expected[task]["avg_accuracy"], abs=1e-6)
    for task in ("udpos", "panx", "bucc2018"):
        assert summary["tasks"][task] == pytest.approx(expected[task]["avg_f1"], abs=1e-6)
    for task in ("xquad", "mlqa", "tydiqa"):
        qa = expected[task]
        assert summary["tasks"][task] == pytest.approx((qa["avg_exact_match"] + qa["avg_f1"]) / 2,
                                                       abs=1e-6)
    assert summary["overall"] == pytest.approx(sum(summary["tasks"].values()) / 9, abs=1e-9)
    assert summary["groups"]["qa"] == pytest.approx(
        sum(summary["tasks"][t] for t in ("xquad", "mlqa", "tydiqa")) / 3)


@needs_mock
def test_cli_score_all_json_matches_oracle(capsys):
    assert main(["score", "--all", "--predictions", str(MOCK / "predictions"),
                 "--labels", str(MOCK / "labels"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    for task, metrics in expected_scores().items():
        for key, value in metrics.items():
            assert results["tasks"][task][key] == pytest.approx(value, abs=1e-6), (task, key)
    assert results["summary"]["complete"] is True


@needs_mock
def test_cli_score_task_table(capsys):
    assert main(["score", "--task", "udpos", "--predictions", str(MOCK / "predictions"),
                 "--labels", str(MOCK / "labels")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["lang", "f1", "precision", "recall"]
    assert "avg           70.22        71.02        69.55" in out
    assert main(["score", "--all", "--predictions", str(MOCK / "predictions"),
                 "--labels", str(MOCK / "labels")]) == 0
    out = capsys.readouterr().out
    assert "XTREME summary" in out and "overall" in out


# --------------------------------------------------------------------------- metric details

def test_chunk_type_is_after_last_dash_and_prefix_is_first_char():
    # CCONJ vs SCONJ: different types (seqeval 1.x's tag[1:] makes both "CONJ" and scores 100).
    assert tagging_f1([["CCONJ"]], [["SCONJ"]])["f1"] == 0.0
    assert tagging_f1([["CCONJ"]], [["CCONJ"]])["f1"] == 100.0
    # Bare UD tags: "S..." tags are single-token chunks, other repeated tags merge into one chunk.
    assert get_entities(["NOUN", "NOUN", "SCONJ", "SCONJ", "VERB"]) == [
        ("NOUN", 0, 1), ("SCONJ", 2, 2), ("SCONJ", 3, 3), ("VERB", 4, 4)]
    # INTJ reads as an I- tag: a chunk continues through it only while the type stays the same.
    assert get_entities(["INTJ", "INTJ", "X"]) == [("INTJ", 0, 1), ("X", 2, 2)]
    # Sentences are joined with an "O" after each, so chunks never span sentences.
    assert get_entities([["NOUN"], ["NOUN"]]) == [("NOUN", 0, 0), ("NOUN", 2, 2)]


def test_conlleval_iob_chunks():
    assert get_entities(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 5)]
    assert get_entities(["B-MISC-X", "I-X"]) == [("X", 0, 1)]  # type: after the *last* '-'
    scores = tagging_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert scores == {"f1": pytest.approx(50.0), "precision": 50.0, "recall": 50.0}
    assert tagging_f1([["O", "O"]], [["O", "O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_bucc_f1_is_set_precision_recall():
    gold = ["de-1\ten-1", "de-2\ten-2", "de-3\ten-3", "de-4\ten-4"]
    pred = ["de-1\ten-1", "de-2\ten-9"]
    scores = bucc_f1(gold, pred)
    assert scores["precision"] == 50.0 and scores["recall"] == 25.0
    assert scores["f1"] == pytest.approx(100 * 2 * 0.5 * 0.25 / 0.75)
    assert bucc_f1(gold, ["de-9\ten-9"]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_answer_normalisation():
    assert squad_normalize_answer("The  Cat's, a hat!") == "cats hat"
    assert squad_normalize_answer("«the» cat") == "« » cat"  # SQuAD: ASCII punctuation only
    assert mlqa_normalize_answer("«the» cat", "en") == "cat"  # MLQA: all Unicode punctuation
    assert mlqa_normalize_answer("Der Hund und die Katze", "de") == "hund und katze"
    assert mlqa_normalize_answer("los perros y el gato", "es") == "perros y gato"
    assert mlqa_normalize_answer("电动势（emf）", "zh") == "电 动 势 emf"
    assert mlqa_normalize_answer("الكتاب", "ar") == "كتاب"
    assert mlqa_normalize_answer("the क", "hi") == "the क"  # no Hindi articles
    with pytest.raises(ValueError, match="no normalisation for language 'fr'"):
        mlqa_normalize_answer("x", "fr")


# --------------------------------------------------------------------------- errors

def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


SQUAD = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "the cat sat", "qas": [
    {"id": "q1", "question": "who?", "answers": [{"text": "the cat", "answer_start": 0}]},
    {"id": "q2", "question": "did?", "answers": [{"text": "sat", "answer_start": 8},
                                                 {"text": "cat sat", "answer_start": 4}]}]}]}]}


def test_squad_scoring_and_unanswered_questions(tmp_path):
    write(tmp_path / "labels/xquad/test-en.json", json.dumps(SQUAD))
    write(tmp_path / "preds/xquad/test-en.json", json.dumps({"q1": "Cat", "q2": "sat down"}))
    result = score_task("xquad", tmp_path / "preds", tmp_path / "labels")
    # q1: EM 1 (normalised "cat"); q2 "sat down": F1 max(2/3 vs "sat", 1/2 vs "cat sat").
    assert result["per_language"]["en"] == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2)}
    write(tmp_path / "preds/xquad/test-en.json", json.dumps({"q1": "cat"}))  # q2 unanswered: 0
    result = score_task("xquad", tmp_path / "preds", tmp_path / "labels")
    assert result["avg_exact_match"] == 50.0 and result["avg_f1"] == 50.0


def test_line_count_mismatch(tmp_path):
    write(tmp_path / "labels/xnli/test-en.tsv", "entailment\nneutral\ncontradiction\n")
    write(tmp_path / "preds/xnli/test-en.tsv", "entailment\nneutral\n")
    with pytest.raises(ScoreError) as e:
        score_task("xnli", tmp_path / "preds", tmp_path / "labels")
    message = str(e.value)
    assert "preds/xnli/test-en.tsv has 2 lines" in message
    assert "labels/xnli/test-en.tsv has 3" in message


def test_tagging_sentence_count_and_token_count_mismatch(tmp_path):
    write(tmp_path / "labels/udpos/test-en.tsv", "PRON\nVERB\n\nNOUN\n\nDET\nNOUN\n")
    write(tmp_path / "preds/udpos/test-en.tsv", "PRON\nVERB\n\nNOUN\nNOUN\n")
    with pytest.raises(ScoreError) as e:
        score_task("udpos", tmp_path / "preds", tmp_path / "labels")
    message = str(e.value)
    assert "preds/udpos/test-en.tsv has 2 sentences" in message
    assert "labels/udpos/test-en.tsv has 3" in message
    assert "sentence 2 (counting from 1)" in message
    assert "2 tags in the predictions, 1 in the labels" in message

    write(tmp_path / "preds/udpos/test-en.tsv", "PRON\nVERB\n\nNOUN\n\nDET\n")
    with pytest.raises(ScoreError, match=r"both have 3 sentences.*sentence 3 \(counting from 1\)"):
        score_task("udpos", tmp_path / "preds", tmp_path / "labels")


def test_missing_prediction_file(tmp_path):
    write(tmp_path / "labels/pawsx/test-en.tsv", "1\n0\n")
    write(tmp_path / "labels/pawsx/test-de.tsv", "1\n0\n")
    write(tmp_path / "preds/pawsx/test-en.tsv", "1\n1\n")
    with pytest.raises(ScoreError, match=r"preds/pawsx/test-de\.tsv: no such file.*'de'"):
        score_task("pawsx", tmp_path / "preds", tmp_path / "labels")
    assert score_task("pawsx", tmp_path / "preds", tmp_path / "labels", ["en"])["avg_accuracy"] == 50.0


@pytest.mark.parametrize("side", ["preds", "labels"])
def test_truncated_json(tmp_path, side):
    good = {"labels": json.dumps(SQUAD, indent=1), "preds": json.dumps({"q1": "cat"}, indent=1)}
    for s, text in good.items():
        write(tmp_path / s / "tydiqa/test-en.json", text)
    text = good[side]
    write(tmp_path / side / "tydiqa/test-en.json", text[: len(text) // 2])
    pattern = rf"{side}/tydiqa/test-en\.json: invalid JSON at line \d+ column \d+"
    with pytest.raises(ScoreError, match=pattern):
        score_task("tydiqa", tmp_path / "preds", tmp_path / "labels")


def test_predictions_json_of_wrong_shape(tmp_path):
    write(tmp_path / "labels/mlqa/test-en.json", json.dumps(SQUAD))
    write(tmp_path / "preds/mlqa/test-en.json", json.dumps(["cat"]))
    with pytest.raises(ScoreError, match="must be a JSON object"):
        score_task("mlqa", tmp_path / "preds", tmp_path / "labels")


def test_unknown_task(tmp_path):
    with pytest.raises(ScoreError, match="unknown task 'nope'; known tasks: pawsx, xnli, .*tatoeba"):
        score_task("nope", tmp_path, tmp_path)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    write(tmp_path / "labels/xnli/test-en.tsv", "entailment\nneutral\n")
    write(tmp_path / "preds/xnli/test-en.tsv", "entailment\n")
    args = ["--predictions", str(tmp_path / "preds"), "--labels", str(tmp_path / "labels")]
    assert main(["score", "--task", "xnli", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xstilts score: error: ") and err.count("\n") == 1 and "has 1 lines" in err
    assert main(["score", "--task", "nope", *args]) == 2
    assert "known tasks: pawsx" in capsys.readouterr().err
    assert main(["score", "--all", "--predictions", str(tmp_path / "missing"),
                 "--labels", str(tmp_path / "labels")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_cli_score_all_reports_tasks_without_predictions(tmp_path, capsys):
    write(tmp_path / "labels/xnli/test-en.tsv", "entailment\nneutral\n")
    write(tmp_path / "preds/xnli/test-en.tsv", "entailment\ncontradiction\n")
    write(tmp_path / "labels/bucc2018/test-de.tsv", "de-1\ten-1\n")  # no predictions folder
    assert main(["score", "--all", "--json", "--predictions", str(tmp_path / "preds"),
                 "--labels", str(tmp_path / "labels")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert list(results["tasks"]) == ["xnli"]
    assert results["summary"] == {"tasks": {"xnli": 50.0}, "groups": {}, "overall": 50.0,
                                  "unpredicted": ["bucc2018"], "complete": False}
    assert main(["score", "--all", "--predictions", str(tmp_path / "preds"),
                 "--labels", str(tmp_path / "labels")]) == 0
    assert "not scored (labels but no predictions): bucc2018" in capsys.readouterr().out


def test_labels_json_of_wrong_shape(tmp_path):
    no_answers = {"data": [{"paragraphs": [{"qas": [{"id": "q1"}]}]}]}
    write(tmp_path / "labels/xquad/test-en.json", json.dumps(no_answers))
    write(tmp_path / "preds/xquad/test-en.json", json.dumps({"q1": "cat"}))
    with pytest.raises(ScoreError, match=r"labels/xquad/test-en\.json: not SQuAD v1\.1 JSON.*'answers'"):
        score_task("xquad", tmp_path / "preds", tmp_path / "labels")
