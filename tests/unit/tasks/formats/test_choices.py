"""Readers of the HellaSwag, CosmosQA and CommonsenseQA release formats
(xstilts_jax.tasks.formats.choices), choice featurization and scoring
(xstilts_jax.tasks.families.multiple_choice, xstilts_jax.metrics.accuracy). Fixtures are written
here, byte for byte in each release's format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xstilts_jax import metrics
from xstilts_jax.tasks import get_task
from xstilts_jax.tasks.examples import MCExample
from xstilts_jax.tasks.families import FAMILIES
from xstilts_jax.tasks.families.multiple_choice import featurize_choices, predictions_from_scores
from xstilts_jax.tasks.formats import choices as mc
from xstilts_jax.tasks.io import SKIP_BLANK_LINE, DataError

# ----------------------------------------------------------------------------- HellaSwag


def hellaswag_line(ind, ctx_a, ctx_b, endings, label=None, split="val"):
    """One line as the release writes it (its key order; no label key in the test file)."""
    record = {"ind": ind, "activity_label": "Roof shingle removal", "ctx_a": ctx_a,
              "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}".strip(), "split": split,
              "split_type": "indomain"}
    if label is not None:
        record["label"] = label
    record["endings"] = endings
    record["source_id"] = "activitynet~v_-JhWjGDPHMY"
    return json.dumps(record)


ROOF = ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
        "is holding a rubik's cube.", "starts pulling up roofing on a roof."]
WIKIHOW = ["Take a bath.", "Go outside.", "Fill the tub with water.", "Sing a song."]


def write_hellaswag(tmp_path, lines, name="hellaswag_val.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_hellaswag_release_jsonl(tmp_path):
    path = write_hellaswag(tmp_path, [
        hellaswag_line(24, "A man is sitting on a roof.", "he", ROOF, 3),
        "",
        hellaswag_line(92, "[header] How to wash a dog. [title] Get the tub ready.", "",
                       WIKIHOW, 2),
    ])
    result = mc.read_hellaswag(path)
    assert len(result) == 2 and result.skipped == {SKIP_BLANK_LINE: 1}
    first, second = result
    assert first == MCExample(
        "hellaswag_val.jsonl:1", "A man is sitting on a roof.",
        ("he is using wrap to wrap a pair of skis.", "he is ripping level tiles off.",
         "he is holding a rubik's cube.", "he starts pulling up roofing on a roof."), 3, "en")
    # Empty ctx_b: the bare ending, no leading space.
    assert second.guid == "hellaswag_val.jsonl:3"
    assert second.prompt == "[header] How to wash a dog. [title] Get the tub ready."
    assert second.choices == tuple(WIKIHOW) and second.label == 2


def test_hellaswag_errors(tmp_path):
    path = write_hellaswag(tmp_path, [hellaswag_line(1, "A.", "he", ROOF, 0),
                                      hellaswag_line(2, "B.", "he", ROOF[:3], 1)])
    with pytest.raises(DataError, match=r"hellaswag_val\.jsonl:2: 3 endings, expected 4"):
        mc.read_hellaswag(path)
    path = write_hellaswag(tmp_path, [hellaswag_line(1, "A.", "he", ROOF, 4)])
    with pytest.raises(DataError, match=r":1: label 4 is out of range"):
        mc.read_hellaswag(path)
    path = write_hellaswag(tmp_path, [hellaswag_line(7, "A.", "he", ROOF, 0),
                                      hellaswag_line(8, "B.", "he", ROOF, 0),
                                      hellaswag_line(7, "C.", "he", ROOF, 1)])
    with pytest.raises(DataError, match=r":3: duplicate id '7' \(first on line 1\)"):
        mc.read_hellaswag(path)
    path = write_hellaswag(tmp_path, ['{"ind": 1, "ctx_a": "A.", "endings": []}'])
    with pytest.raises(DataError, match=r":1: field 'ctx_b' is missing"):
        mc.read_hellaswag(path)
    path = write_hellaswag(tmp_path, ["{not json"])
    with pytest.raises(DataError, match=r":1: invalid JSON"):
        mc.read_hellaswag(path)


def test_hellaswag_unlabelled_test_file(tmp_path):
    path = write_hellaswag(tmp_path, [hellaswag_line(5, "A man.", "he", ROOF, split="test")],
                           name="hellaswag_test.jsonl")
    with pytest.raises(DataError, match=r"hellaswag_test\.jsonl:1: no 'label'.*allow_unlabelled"):
        mc.read_hellaswag(path)
    (example,) = mc.read_hellaswag(path, allow_unlabelled=True)
    assert example.label == mc.UNLABELLED == -1


# ----------------------------------------------------------------------------- CosmosQA

# The release's CSV as Python's csv module writes it: quoted fields where needed, "" for a
# quote, a record spanning two physical lines. Written by hand, not by csv.writer.
COSMOS_CSV = (
    '\ufeffid,context,question,answer0,answer1,answer2,answer3,label\n'
    '3BFF##q1_a1,"Do i need to go for a legal divorce ? I wanted to marry, but\n'
    'she said ""no"" .",Why is this person asking about divorce ?,'
    'If he gets married in the church he wo nt have to get a divorce .,'
    'He wants to get married to a different person .,"He wants to know, maybe ?",'
    'None of the above choices .,1\n'
    '\n'
    '3AXF##q1_a1,I was walking home from the store .,What may happen after the call ?,'
    'An ambulance would likely come to the scene,The taxi would pick up the young man,'
    'None of the above choices .,The bus would arrive at the stop soon,0\n'
)


def expected_cosmos(prefix, lines=(2, 5)):
    return [
        MCExample(f"{prefix}:{lines[0]}",
                     'Do i need to go for a legal divorce ? I wanted to marry, but\nshe said '
                     '"no" . Why is this person asking about divorce ?',
                     ("If he gets married in the church he wo nt have to get a divorce .",
                      "He wants to get married to a different person .",
                      "He wants to know, maybe ?", "None of the above choices ."), 1),
        MCExample(f"{prefix}:{lines[1]}",
                     "I was walking home from the store . What may happen after the call ?",
                     ("An ambulance would likely come to the scene",
                      "The taxi would pick up the young man", "None of the above choices .",
                      "The bus would arrive at the stop soon"), 0),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_cosmosqa_release_csv(tmp_path, newline):
    path = tmp_path / "valid.csv"
    path.write_bytes(COSMOS_CSV.replace("\n", newline).encode("utf-8"))
    result = mc.read_cosmosqa(path)
    assert list(result) == expected_cosmos("valid.csv")
    assert result.skipped == {SKIP_BLANK_LINE: 1}
    assert mc.read_cosmosqa(path, guid_prefix="cosmosqa/valid.csv")[1].guid == \
        "cosmosqa/valid.csv:5"


def test_cosmosqa_jsonl_variant(tmp_path):
    keys = mc.COSMOSQA_COLUMNS
    rows = [dict(zip(keys, ["3BFF##q1_a1",
                            'Do i need to go for a legal divorce ? I wanted to marry, but\n'
                            'she said "no" .', "Why is this person asking about divorce ?",
                            *expected_cosmos("x")[0].choices, 1])),
            dict(zip(keys, ["3AXF##q1_a1", "I was walking home from the store .",
                            "What may happen after the call ?", *expected_cosmos("x")[1].choices,
                            "0"]))]  # a label may be a string
    path = tmp_path / "valid.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n\n" + json.dumps(rows[1]) + "\n")
    result = mc.read_cosmosqa(path)
    assert list(result) == expected_cosmos("valid.jsonl", (1, 4))
    assert result.skipped == {SKIP_BLANK_LINE: 2}
    del rows[0]["label"]
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:1: no 'label'"):
        mc.read_cosmosqa(path)
    assert mc.read_cosmosqa(path, allow_unlabelled=True)[0].label == -1


def test_cosmosqa_errors(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(COSMOS_CSV.replace(",0\n", ",4\n"))
    with pytest.raises(DataError, match=r"train\.csv:5: label 4 is out of range: expected 0 to 3"):
        mc.read_cosmosqa(path)
    path.write_text(COSMOS_CSV.replace(",0\n", ",x\n"))
    with pytest.raises(DataError, match=r"train\.csv:5: label 'x' is not an integer"):
        mc.read_cosmosqa(path)
    path.write_text(COSMOS_CSV.replace(",0\n", ",0,extra\n"))
    with pytest.raises(DataError, match=r"train\.csv:5: 9 comma-separated fields, the header "
                                        r"has 8"):
        mc.read_cosmosqa(path)
    path.write_text(COSMOS_CSV.replace("3AXF##q1_a1", "3BFF##q1_a1"))
    with pytest.raises(DataError, match=r"train\.csv:5: duplicate id '3BFF##q1_a1' \(first on "
                                        r"line 2\)"):
        mc.read_cosmosqa(path)
    path.write_text(COSMOS_CSV.replace("question,", "query,"))
    with pytest.raises(DataError, match=r"train\.csv:1: the header has no column 'question'"):
        mc.read_cosmosqa(path)
    path.write_text(COSMOS_CSV + 'X,"never closed,q,a,b,c,d,0\n')
    with pytest.raises(DataError, match=r"train\.csv:6: malformed CSV"):
        mc.read_cosmosqa(path)
    path.write_bytes(COSMOS_CSV.encode() + b"X,caf\xe9,q,a,b,c,d,0\n")
    with pytest.raises(DataError, match=r"train\.csv:6: not valid UTF-8"):
        mc.read_cosmosqa(path)


# ----------------------------------------------------------------------------- CommonsenseQA


def csqa_line(id_, stem, texts, answer="A", labels="ABCDE"):
    record = {"answerKey": answer, "id": id_,
              "question": {"question_concept": "revolving door",
                           "choices": [{"label": l, "text": t} for l, t in zip(labels, texts)],
                           "stem": stem}}
    if answer is None:
        del record["answerKey"]
    return json.dumps(record)


DOOR = ["bank", "library", "department store", "mall", "new york"]


def test_commonsenseqa_release_jsonl(tmp_path):
    path = tmp_path / "dev_rand_split.jsonl"
    path.write_text("\n".join([
        csqa_line("075e483d21c29a511267ef62bedc0461",
                  "A revolving door is convenient for two direction travel, but it also serves "
                  "as a security measure at a what?", DOOR, "A"),
        csqa_line("61fe6e879ff18686d7552425a36344c8", "What do people aim to do at work?",
                  ["learn from each other", "complete job", "kill animals", "wear hats",
                   "talk to each other"][::-1], "B", labels="EDCBA"),  # any order is accepted
        "",
    ]) + "\n")
    result = mc.read_commonsenseqa(path)
    assert result.skipped == {SKIP_BLANK_LINE: 1}
    first, second = result
    assert first == MCExample(
        "dev_rand_split.jsonl:1", "A revolving door is convenient for two direction travel, "
        "but it also serves as a security measure at a what?", tuple(DOOR), 0)
    assert second.guid == "dev_rand_split.jsonl:2"
    assert second.choices == ("learn from each other", "complete job", "kill animals",
                              "wear hats", "talk to each other")
    assert second.label == 1


def test_commonsenseqa_errors(tmp_path):
    path = tmp_path / "train_rand_split.jsonl"
    ok = csqa_line("a", "Q?", DOOR)
    path.write_text(ok + "\n" + csqa_line("b", "Q?", DOOR, "F") + "\n")
    with pytest.raises(DataError, match=r"train_rand_split\.jsonl:2: answerKey 'F' is not one "
                                        r"of A, B, C, D, E"):
        mc.read_commonsenseqa(path)
    path.write_text(csqa_line("a", "Q?", DOOR[:4]) + "\n")
    with pytest.raises(DataError, match=r":1: 4 choices, expected 5"):
        mc.read_commonsenseqa(path)
    path.write_text(csqa_line("a", "Q?", DOOR, labels="ABCDD") + "\n")
    with pytest.raises(DataError, match=r":1: choice labels A, B, C, D, D, expected"):
        mc.read_commonsenseqa(path)
    record = json.loads(ok)
    del record["question"]["stem"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r":1: field question\.'stem' is missing"):
        mc.read_commonsenseqa(path)
    path.write_text(ok + "\n" + ok + "\n")
    with pytest.raises(DataError, match=r":2: duplicate id 'a' \(first on line 1\)"):
        mc.read_commonsenseqa(path)
    path = tmp_path / "test_rand_split_no_answers.jsonl"
    path.write_text(csqa_line("t", "Q?", DOOR, None) + "\n")
    with pytest.raises(DataError, match=r"no_answers\.jsonl:1: no 'answerKey'"):
        mc.read_commonsenseqa(path)
    assert mc.read_commonsenseqa(path, allow_unlabelled=True)[0].label == -1
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"no examples \(2 skipped: blank line\)"):
        mc.read_commonsenseqa(path)


# ----------------------------------------------------------------------------- features


def test_featurize_choices_matches_the_tokenizer(xlmr_tokenizer, tmp_path):
    path = tmp_path / "valid.csv"
    path.write_text(COSMOS_CSV)
    examples = list(mc.read_cosmosqa(path)) + [
        MCExample("x:1", "Short.", ("a", "b", "c", "d " * 40), 2)]
    length = 24
    features = featurize_choices(xlmr_tokenizer, examples, length, num_choices=4)
    assert len(features) == 3 and features.num_choices == 4
    assert features.guids == ["valid.csv:2", "valid.csv:5", "x:1"]
    assert features.labels.dtype == np.int32 and features.labels.tolist() == [1, 0, 2]
    assert len(features.input_ids) == len(features.token_type_ids) == 12
    truncated = 0
    for e, example in enumerate(examples):
        for c, choice in enumerate(example.choices):
            row = features.input_ids[e * 4 + c]
            assert row == xlmr_tokenizer(example.prompt, choice, truncation="longest_first",
                                         max_length=length)["input_ids"]
            assert features.token_type_ids[e * 4 + c] == [0] * len(row)
            truncated += len(xlmr_tokenizer(example.prompt, choice)["input_ids"]) > length
    # The long CosmosQA prompts (8 pairs) and the long last choice; the short pairs are not.
    assert features.num_truncated == truncated == 9
    long_row = features.input_ids[11]
    assert len(long_row) == length and long_row[0] == 0 and long_row[-1] == 2

    odd = examples + [MCExample("x:2", "Q?", ("a", "b", "c"), 0)]
    with pytest.raises(DataError, match=r"x:2: 3 choices, expected 4"):
        featurize_choices(xlmr_tokenizer, odd, length, num_choices=4)


def test_predictions_and_accuracy():
    scores = np.array([[0.1, 0.9, 0.9, 0.0], [2.0, -1.0, 2.0, 2.0], [-3.0, -2.0, -1.0, -5.0]])
    expected = [1, 0, 2]  # ties go to the lower index
    assert predictions_from_scores(scores).tolist() == expected
    assert predictions_from_scores(scores.reshape(-1), num_choices=4).tolist() == expected
    with pytest.raises(ValueError, match="need num_choices"):
        predictions_from_scores(scores.reshape(-1))
    with pytest.raises(ValueError, match="not a multiple"):
        predictions_from_scores(scores.reshape(-1), num_choices=5)
    with pytest.raises(ValueError, match="NaN"):
        predictions_from_scores([[0.0, np.nan]])
    # The one accuracy, on label strings (the names of the choices).
    assert metrics.accuracy(["1", "2", "2"], [str(i) for i in expected]) == {
        "accuracy": pytest.approx(200 / 3)}
    # The family scores the chosen indices' names against the examples' labels; an unlabelled
    # example (read with allow_unlabelled) is an error, not a score.
    task = get_task("cosmosqa")
    family = FAMILIES[task.family]
    examples = [MCExample(f"x:{k}", "Q?", ("a", "b", "c", "d"), label)
                for k, label in enumerate((1, 2, 2))]
    predictions = [task.labels[i] for i in expected]
    assert family.score(task, examples, predictions, "en") == {
        "accuracy": pytest.approx(200 / 3)}
    unlabelled = [MCExample(f"u:{k}", "Q?", ("a", "b", "c", "d"), label)
                  for k, label in enumerate((mc.UNLABELLED, 0, 2))]
    with pytest.raises(ValueError, match="unlabelled"):
        family.score(task, unlabelled, predictions, "en")
