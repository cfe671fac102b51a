"""SQuAD 2.0 end to end: reading unanswerable questions, errors naming <file>:<line>, CLS
targets for every window of an unanswerable question, HF's null-score decision in
``answers_from_logits``, and the official v2.0 evaluation on hand-computed values."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

from xstilts_jax import metrics
from xstilts_jax.tasks.examples import QAExample
from xstilts_jax.tasks.families.qa import QAFeatures, answers_from_logits, featurize_qa
from xstilts_jax.tasks.formats.squad import read_squad
from xstilts_jax.tasks.io import DataError

CONTEXT = "The cat sat on the mat near the red house today."
LONG_CONTEXT = " ".join(
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu".split() * 2)


def squad_v2_doc(*qas, context=CONTEXT):
    return {"version": "v2.0", "data": [{"title": "Cats", "paragraphs": [
        {"context": context, "qas": list(qas)}]}]}


def answerable(qid, question, *answers):
    return {"id": qid, "question": question, "is_impossible": False,
            "answers": [{"text": t, "answer_start": s} for t, s in answers]}


def unanswerable(qid, question, *plausible):
    return {"id": qid, "question": question, "is_impossible": True, "answers": [],
            "plausible_answers": [{"text": t, "answer_start": s} for t, s in plausible]}


def write_json(path: pathlib.Path, doc, **dump) -> pathlib.Path:
    path.write_text(json.dumps(doc, **dump), encoding="utf-8")
    return path


def line_of(path: pathlib.Path, needle: str, occurrence: int = 1) -> int:
    lines = [i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1)
             if needle in line]
    return lines[occurrence - 1]


# --------------------------------------------------------------------------- reader


def test_read_v2_answerable_and_unanswerable(tmp_path):
    # The plausible answer is deliberately wrong for its offset: it is not read or checked.
    path = write_json(tmp_path / "dev-v2.0.json", squad_v2_doc(
        answerable("q1", "Who sat?", ("The cat", 0), ("cat", 4)),
        unanswerable("q2", "Who stood?", ("dog", 4))), indent=2)
    result = read_squad(path, "en", version="2.0")
    assert result[0] == QAExample("q1", "Who sat?", CONTEXT, (("The cat", 0), ("cat", 4)),
                                  "Cats", 0, is_impossible=False, language="en")
    assert result[1] == QAExample("q2", "Who stood?", CONTEXT, (), "Cats", 0,
                                  is_impossible=True, language="en")
    assert result.skipped == {}
    # Default (v1.1, every existing caller): refused, naming file, line, id and the option.
    with pytest.raises(DataError) as e:
        read_squad(path, "en")
    line = line_of(path, '"q2"')
    assert str(e.value).startswith(f"{path}:{line}: question 'q2': ")
    assert "version='2.0'" in str(e.value)
    # is_impossible: false is fine in v1.1 too.
    ok = write_json(tmp_path / "ok.json", squad_v2_doc(answerable("q1", "Who?", ("cat", 4))))
    assert read_squad(ok, "en")[0].answers == (("cat", 4),)


@pytest.mark.parametrize("qa, pattern", [
    (dict(unanswerable("q9", "?"), answers=[{"text": "cat", "answer_start": 4}]),
     r"question 'q9': 'is_impossible' is true but 'answers' is \[.*expected \[\]"),
    (dict(unanswerable("q9", "?"), is_impossible="yes"),
     r"question 'q9': field 'is_impossible' is a str, expected true or false"),
    (answerable("q9", "?"), r"question 'q9': no answers"),
])
def test_read_v2_bad_questions_name_file_and_line(tmp_path, qa, pattern):
    path = write_json(tmp_path / "x.json", squad_v2_doc(answerable("q1", "?", ("cat", 4)), qa),
                      indent=1)
    line = line_of(path, '"q9"')
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: ") + pattern):
        read_squad(path, "en", version="2.0")


def test_version_is_checked(tmp_path):
    path = write_json(tmp_path / "x.json", squad_v2_doc(answerable("q1", "?", ("cat", 4))))
    with pytest.raises(ValueError, match="version must be one of 1.1, 2.0"):
        read_squad(path, "en", version="2")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
@pytest.mark.parametrize("dump", [dict(indent=2), dict(indent=4, ensure_ascii=False),
                                  dict(indent=None)])
def test_offset_mismatch_names_file_line_and_id(tmp_path, version, dump):
    qid = "q-bad-é"  # written raw or as \u00e9 depending on ensure_ascii
    path = write_json(tmp_path / "bad.json", squad_v2_doc(
        answerable("q1", "Who sat?", ("The cat", 0)),
        unanswerable("q2", "Who stood?"),
        answerable(qid, "Where?", ("the mat", 3))), **dump)  # context[3:10] is ' cat sa'
    needle = json.dumps(qid, ensure_ascii=dump.get("ensure_ascii", True))
    line = line_of(path, needle)
    assert line > 1 or dump["indent"] is None
    if version == "1.1":  # q2 comes first
        with pytest.raises(DataError, match="'q2': unanswerable"):
            read_squad(path, "en", version=version)
        return
    with pytest.raises(DataError) as e:
        read_squad(path, "en", version=version)
    message = str(e.value)
    assert message.startswith(f"{path}:{line}: question {qid!r} answer 0: ")
    assert "'the mat'" in message and "' cat sa'" in message


def test_line_search_is_robust_to_whitespace_and_repeated_ids(tmp_path):
    # Hand-written JSON: odd spacing around the colon, another key named like an id inside a
    # string, and (with duplicate_ids="suffix") the second of two questions with the same id.
    text = ('{"data": [{"title": "T", "paragraphs": [{"context": "The cat sat.",\n'
            ' "qas": [\n'
            '  {"question": "the \\"id\\": \\"q1\\" trap", "id"  :\t"q1",\n'
            '   "answers": [{"text": "cat", "answer_start": 4}]},\n'
            '  {"answers": [{"text": "sat", "answer_start": 8}],\n'
            '   "question": "?",\n'
            '   "id":\n'
            '     "q1"},\n'
            '  {"id": "q1", "question": "?", "answers": [{"text": "mat", "answer_start": 4}]}\n'
            ']}]}]}\n')
    path = tmp_path / "ids.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}:8: question 'q1': duplicate")):
        read_squad(path, "en")
    with pytest.raises(DataError, match=re.escape(f"{path}:9: question 'q1#3' answer 0: "
                                                  "text 'mat' but context[4:7] is 'cat'")):
        read_squad(path, "en", duplicate_ids="suffix")


# --------------------------------------------------------------------------- featurization


def test_unanswerable_windows_all_target_cls(xlmr_tokenizer):
    kilo = ("kilo", LONG_CONTEXT.index("kilo"))
    examples = [QAExample("has", "What is it?", LONG_CONTEXT, (kilo,), "t", 0),
                QAExample("none", "What is it?", LONG_CONTEXT, (), "t", 0, is_impossible=True)]
    features = featurize_qa(xlmr_tokenizer, examples, max_length=24, doc_stride=8)
    has = np.flatnonzero(features.example_index == 0)
    none = np.flatnonzero(features.example_index == 1)
    assert len(none) > 2 and len(has) == len(none)  # same context and question: same windows
    assert all(features.input_ids[w][0] == xlmr_tokenizer.cls_token_id == 0 for w in none)
    assert (features.start_positions[none] == 0).all() and (features.end_positions[none] == 0).all()
    holding = has[features.start_positions[has] > 0]
    assert len(holding) >= 1
    assert features.num_impossible == 1
    # Only the answerable question's windows without the answer count as "outside".
    assert features.num_answers_outside == len(has) - len(holding)
    assert features.num_questions_answer_in_no_window == 0
    # The targets of a window are the same as for an unanswered v1.1 test question.
    unanswered = featurize_qa(xlmr_tokenizer, [QAExample("none", "What is it?", LONG_CONTEXT, (),
                                                         "t", 0)], max_length=24, doc_stride=8)
    assert unanswered.input_ids == [features.input_ids[w] for w in none]
    assert unanswered.num_impossible == 0


def test_unanswerable_with_answers_is_refused(xlmr_tokenizer):
    e = QAExample("bad", "Who?", CONTEXT, (("cat", 4),), "t", 0, is_impossible=True)
    with pytest.raises(DataError, match="'bad': is_impossible but it has 1 answer"):
        featurize_qa(xlmr_tokenizer, [e])


# --------------------------------------------------------------------------- predictions


def token_at(features: QAFeatures, window: int, context: str, word: str) -> int:
    return int(np.flatnonzero(features.offsets[window][:, 0] == context.index(word))[0])


def test_v2_predicts_empty_when_the_null_score_wins(xlmr_tokenizer):
    examples = [QAExample("q1", "Who?", CONTEXT, (("cat", 4),), "t", 0)]
    features = featurize_qa(xlmr_tokenizer, examples)
    width = len(features.input_ids[0]) + 2
    start, end = np.zeros((1, width)), np.zeros((1, width))
    start[0, token_at(features, 0, CONTEXT, "cat")] = 5.0
    end[0, token_at(features, 0, CONTEXT, "sat")] = 4.0  # best span "cat sat": 9

    def predict(null, **kw):
        start[0, 0], end[0, 0] = null
        return answers_from_logits(features, examples, start, end, **kw)["q1"]

    v2 = dict(version_2_with_negative=True)
    assert predict((3.0, 3.0), **v2) == "cat sat"  # null 6 - 9 = -3 <= 0
    assert predict((5.0, 5.0), **v2) == ""  # 10 - 9 = 1 > 0
    assert predict((5.0, 5.0), null_score_diff_threshold=1.0, **v2) == "cat sat"  # 1 > 1: no
    assert predict((5.0, 5.0), null_score_diff_threshold=0.99, **v2) == ""
    assert predict((4.5, 4.5), **v2) == "cat sat"  # a tie (0 > 0 is false) keeps the span
    # null -10, diff -19: a negative threshold makes "" likelier
    assert predict((-20.0, 10.0), null_score_diff_threshold=-15.0, **v2) == "cat sat"
    assert predict((-20.0, 10.0), null_score_diff_threshold=-20.0, **v2) == ""  # -19 > -20
    assert predict((-20.0, 10.0), null_score_diff_threshold=-19.0, **v2) == "cat sat"
    # v1 (default): the null score plays no part, whatever it is.
    for null in ((3.0, 3.0), (50.0, 50.0)):
        assert predict(null) == "cat sat"
        assert predict(null) == predict(null, version_2_with_negative=False,
                                        null_score_diff_threshold=-99.0)


def test_v2_null_score_is_the_minimum_over_windows(xlmr_tokenizer):
    e = QAExample("q1", "What is it?", LONG_CONTEXT, (), "t", 0, is_impossible=True)
    features = featurize_qa(xlmr_tokenizer, [e], max_length=24, doc_stride=8)
    assert len(features) >= 3
    width = max(map(len, features.input_ids))
    start, end = np.zeros((len(features), width)), np.zeros((len(features), width))
    w = next(w for w in range(len(features)) if (features.offsets[w][:, 0]
                                                  == LONG_CONTEXT.index("kilo")).any()
             and features.max_context[w][token_at(features, w, LONG_CONTEXT, "kilo")])
    start[w, token_at(features, w, LONG_CONTEXT, "kilo")] = 3.0
    end[w, token_at(features, w, LONG_CONTEXT, "kilo")] = 3.0  # span 6
    start[:, 0] = end[:, 0] = 10.0  # null 20 in every window ...
    kw = dict(version_2_with_negative=True)
    assert answers_from_logits(features, [e], start, end, **kw) == {"q1": ""}
    start[len(features) - 1, 0] = end[len(features) - 1, 0] = 2.0  # ... but 4 in the last
    assert answers_from_logits(features, [e], start, end, **kw) == {"q1": "kilo"}


def test_v2_without_a_valid_span_predicts_empty(xlmr_tokenizer):
    examples = [QAExample("q1", "Who?", CONTEXT, (), "t", 0, is_impossible=True)]
    features = featurize_qa(xlmr_tokenizer, examples)
    start = np.zeros((1, len(features.input_ids[0])))
    end = start.copy()
    start[0, 0] = end[0, 0] = -5.0
    start[0, 1] = end[0, 1] = 9.0  # a question token: n_best_size 1 finds no valid span
    out = answers_from_logits(features, examples, start, end, n_best_size=1,
                              version_2_with_negative=True, null_score_diff_threshold=100.0)
    assert out == {"q1": ""}


def reference_v2(features: QAFeatures, examples, start_logits, end_logits, n_best_size,
                 max_answer_length, threshold):
    """HF's compute_predictions_logits (version_2_with_negative), written out as its loops."""
    def best(logits):  # _get_best_indexes
        ranked = sorted(enumerate(logits), key=lambda x: x[1], reverse=True)
        return [i for i, _ in ranked][:n_best_size]

    answers = {}
    for q, e in enumerate(examples):
        prelim, score_null = [], 1e6
        for w in np.flatnonzero(features.example_index == q):
            n = len(features.input_ids[w])
            s_logits, e_logits = list(start_logits[w, :n]), list(end_logits[w, :n])
            score_null = min(score_null, s_logits[0] + e_logits[0])
            offsets = features.offsets[w]
            for si in best(s_logits):
                for ei in best(e_logits):
                    if offsets[si, 0] < 0 or offsets[ei, 0] < 0:
                        continue
                    if not features.max_context[w][si] or ei < si:
                        continue
                    if ei - si + 1 > max_answer_length:
                        continue
                    prelim.append((s_logits[si] + e_logits[ei], s_logits[si], e_logits[ei],
                                   e.context[offsets[si, 0]:offsets[ei, 1]]))
        prelim.sort(key=lambda p: p[0], reverse=True)
        non_null = next((p for p in prelim if p[3]), None)
        if non_null is None or score_null - non_null[1] - non_null[2] > threshold:
            answers[e.id] = ""
        else:
            answers[e.id] = non_null[3]
    return answers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_v2_matches_hf_loops_on_random_logits(xlmr_tokenizer, seed):
    rng = np.random.default_rng(seed)
    examples = [QAExample(f"q{i}", question, LONG_CONTEXT, (), "t", 0, is_impossible=i % 2 == 0)
                for i, question in enumerate(["What is it?", "Which word comes after kilo?",
                                              "Name one letter of the alphabet", "Why?"])]
    features = featurize_qa(xlmr_tokenizer, examples, max_length=32, doc_stride=10)
    width = max(map(len, features.input_ids)) + 3
    start = rng.normal(size=(len(features), width)).astype(np.float32)
    end = rng.normal(size=(len(features), width)).astype(np.float32)
    start[:, 0] += 2.5  # bring the null score near the spans'
    end[:, 0] += 2.5
    decisions = set()
    for threshold in (-2.0, 0.0, 1.0):
        ours = answers_from_logits(features, examples, start, end, n_best_size=5,
                                   max_answer_length=4, version_2_with_negative=True,
                                   null_score_diff_threshold=threshold)
        reference = reference_v2(features, examples, start.astype(np.float64),
                                 end.astype(np.float64), 5, 4, threshold)
        assert ours == reference, threshold
        decisions |= {text == "" for text in ours.values()}
    assert decisions == {True, False}  # both outcomes are exercised


# --------------------------------------------------------------------------- metrics


def metric_articles():
    def q(qid, *golds):
        return {"id": qid, "question": "?", "answers": [{"text": g, "answer_start": 0}
                                                        for g in golds]}
    return [{"title": "A", "paragraphs": [{"context": "...", "qas": [
        q("a1", "the big cat", "big cat"),  # answerable
        q("a2", "red house"),  # answerable
        q("n1"),  # unanswerable
        q("n2"),  # unanswerable
    ]}]}, {"title": "B", "paragraphs": [{"context": "...", "qas": [
        q("a3", "dog"),  # answerable
    ]}]}]


def test_squad_v2_metric_hand_computed():
    predictions = {
        "a1": "A big cat!",  # -> "big cat": EM 1, F1 1
        "a2": "the house today",  # "house today" vs "red house": EM 0, F1 2*(1/2*1/2)/1 = 0.5
        "n1": "",  # no answer, right: EM 1, F1 1
        "n2": "mat",  # answered an unanswerable question: EM 0, F1 0
        "a3": "",  # no answer to an answerable question: EM 0, F1 0
    }
    scores = metrics.squad_v2_em_f1(metric_articles(), predictions)
    assert scores == pytest.approx({
        "exact": 100 * 2 / 5, "f1": 100 * 2.5 / 5, "total": 5, "exact_match": 100 * 2 / 5,
        "HasAns_exact": 100 * 1 / 3, "HasAns_f1": 100 * 1.5 / 3, "HasAns_total": 3,
        "NoAns_exact": 100 * 1 / 2, "NoAns_f1": 100 * 1 / 2, "NoAns_total": 2,
    })
    assert list(scores)[:3] == ["exact", "f1", "total"]
    # na_probs: n2 predicted unanswerable by probability (0.9 > 0.5) scores 1; a1's 0.7 makes
    # it a predicted no-answer, which is wrong for an answerable question.
    thresholded = metrics.squad_v2_em_f1(metric_articles(), predictions,
                                         na_probs={"n2": 0.9, "a1": 0.7, "a2": 0.2},
                                         na_prob_thresh=0.5)
    assert thresholded["NoAns_exact"] == 100.0 and thresholded["HasAns_exact"] == 0.0
    assert thresholded["HasAns_f1"] == pytest.approx(100 * 0.5 / 3)


def test_squad_v2_metric_edge_cases():
    articles = [{"paragraphs": [{"qas": [
        {"id": "x", "answers": [{"text": "The", "answer_start": 0}]},  # normalises to ""
    ]}]}]
    # Its only gold normalises to nothing, so the gold is [""]; it still "has an answer".
    scores = metrics.squad_v2_em_f1(articles, {"x": "an"})
    assert scores["exact"] == scores["f1"] == 100.0 and scores["HasAns_total"] == 1
    assert "NoAns_total" not in scores
    assert metrics.squad_v2_em_f1(articles, {"x": "cat"})["f1"] == 0.0
    with pytest.raises(ValueError, match=r"1 of 5 questions have no prediction \(first: 'n2'\)"):
        metrics.squad_v2_em_f1(metric_articles(), {"a1": "", "a2": "", "n1": "", "a3": ""})
    # v1.1 scoring of the same answerable questions is unchanged.
    v1 = metrics.squad_em_f1([{"paragraphs": [{"qas": metric_articles()[0]["paragraphs"][0]
                                               ["qas"][:2]}]}], {"a1": "big cat", "a2": "house"})
    assert v1 == pytest.approx({"exact_match": 50.0, "f1": 100 * (1 + 2 / 3) / 2})
