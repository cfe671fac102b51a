"""Small copies of the intermediate tasks' ORIGINAL release files, written by the tests.

Each writer puts one task's train and dev files where the task's spec (``tasks/catalog``, read
by ``tasks.sources.files``) looks for them under ``root`` (XTREME's download/ folder), in the
release's own format, with
a label the text makes learnable (so a tiny model's loss can fall). ``write_all`` writes
every task's files into one folder, the way a user unpacks the releases side by side.
"""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np

from conftest import GLUE_COLUMNS, write_nli_data

WORDS = "the cat dog sat on mat a is big small red blue house tree".split()
NLI = ("contradiction", "entailment", "neutral")


def _text(rng, n=(3, 9)):
    return " ".join(rng.choice(WORDS, rng.integers(*n)))


def write_qqp(root: pathlib.Path, n=(40, 12)):
    rng = np.random.default_rng(1)
    (root / "qqp").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "dev"), n):
        rows = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
        for i in range(count):
            q = _text(rng)
            label = i % 2
            other = q if label else _text(rng)
            rows.append(f"{i}\t{2 * i}\t{2 * i + 1}\t{q}?\t{other}?\t{label}")
        (root / "qqp" / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def write_sst2(root: pathlib.Path, n=(40, 12)):
    rng = np.random.default_rng(2)
    (root / "SST-2").mkdir(parents=True, exist_ok=True)  # GLUE's folder name
    for split, count in zip(("train", "dev"), n):
        rows = ["sentence\tlabel"]
        for i in range(count):
            label = i % 2
            rows.append(f"{_text(rng)} {'big' if label else 'small'} \t{label}")
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def _nli_pair(rng, i):
    y = i % 3
    return _text(rng), " ".join(rng.choice(WORDS[4 * y:4 * y + 4], 3)), y


def write_snli(root: pathlib.Path, n=(30, 9)):
    rng = np.random.default_rng(3)
    (root / "snli").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "dev"), n):
        lines = []
        for i in range(count):
            a, b, y = _nli_pair(rng, i)
            lines.append(json.dumps({"annotator_labels": [NLI[y]], "captionID": f"c{i}",
                                     "gold_label": NLI[y], "pairID": f"p{i}", "sentence1": a,
                                     "sentence2": b}))
        lines.append(json.dumps({"gold_label": "-", "sentence1": "x", "sentence2": "y"}))
        (root / "snli" / f"snli_1.0_{split}.jsonl").write_text("\n".join(lines) + "\n")


def write_anli(root: pathlib.Path, n=(12, 3)):
    rng = np.random.default_rng(4)
    for r in ("R1", "R2", "R3"):
        (root / "anli_v1.0" / r).mkdir(parents=True, exist_ok=True)
        for split, count in zip(("train", "dev"), n):
            lines = []
            for i in range(count):
                a, b, y = _nli_pair(rng, i)
                lines.append(json.dumps({"uid": f"{r}-{split}-{i}", "context": a, "hypothesis": b,
                                         "label": "cen"[y],
                                         "model_label": "n", "emturk": False, "genre": "wiki",
                                         "reason": "", "tag": ""}))
            (root / "anli_v1.0" / r / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def write_hellaswag(root: pathlib.Path, n=(24, 8)):
    rng = np.random.default_rng(5)
    (root / "hellaswag").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "val"), n):
        lines = []
        for i in range(count):
            label = i % 4
            endings = [_text(rng, (2, 5)) + (" red house" if c == label else "") for c in range(4)]
            ctx_a, ctx_b = _text(rng), "the dog" if i % 2 else ""
            lines.append(json.dumps({
                "ind": i, "activity_label": "Walking", "ctx_a": ctx_a, "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}".strip(), "split": split, "split_type": "indomain",
                "label": label, "endings": endings, "source_id": f"activitynet~v_{i}"}))
        (root / "hellaswag" / f"hellaswag_{split}.jsonl").write_text("\n".join(lines) + "\n")


def write_cosmosqa(root: pathlib.Path, n=(24, 8)):
    rng = np.random.default_rng(6)
    (root / "cosmosqa").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid"), n):
        with open(root / "cosmosqa" / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "context", "question", "answer0", "answer1", "answer2",
                             "answer3", "label"])
            for i in range(count):
                label = i % 4
                answers = [_text(rng, (2, 5)) + (" blue tree" if c == label else "")
                           for c in range(4)]
                writer.writerow([f"{split}{i}", f"{_text(rng)},\n{_text(rng)}", "what is it?",
                                 *answers, label])


def write_commonsenseqa(root: pathlib.Path, n=(24, 8)):
    rng = np.random.default_rng(7)
    (root / "commonsenseqa").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "dev"), n):
        lines = []
        for i in range(count):
            label = i % 5
            choices = [{"label": "ABCDE"[c], "text": _text(rng, (1, 3)) + (" mat" if c == label
                                                                           else "")}
                       for c in range(5)]
            lines.append(json.dumps({"answerKey": "ABCDE"[label], "id": f"{split}{i}",
                                     "question": {"question_concept": "cat", "choices": choices,
                                                  "stem": _text(rng) + "?"}}))
        (root / "commonsenseqa" / f"{split}_rand_split.jsonl").write_text("\n".join(lines) + "\n")


def write_squad(root: pathlib.Path):

    write_qa(root, languages=())


def write_squad_v2(root: pathlib.Path, n=(30, 10)):
    """SQuAD 2.0: every third question unanswerable (with plausible_answers, as released)."""
    rng = np.random.default_rng(8)
    (root / "squad").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "dev"), n):
        articles = []
        for p in range(count):
            words = list(rng.choice(WORDS, 20))
            at = int(rng.integers(0, 18))
            start = len(" ".join(words[:at])) + (1 if at else 0)
            answer = " ".join(words[at:at + 2])
            impossible = p % 3 == 0
            qa = {"id": f"v2{split}{p}", "question": f"what {answer} is", "is_impossible": impossible,
                  "answers": [] if impossible else [{"text": answer, "answer_start": start}]}
            if impossible:
                qa["plausible_answers"] = [{"text": answer, "answer_start": start}]
            articles.append({"title": f"t{p}", "paragraphs": [{"context": " ".join(words),
                                                                "qas": [qa]}]})
        (root / "squad" / f"{split}-v2.0.json").write_text(
            json.dumps({"version": "v2.0", "data": articles}))


SUPERTAG = {"the": "NP[nb]/N", "a": "NP[nb]/N", "cat": "N", "dog": "N", "mat": "N", "house": "N",
            "tree": "N", "sat": "S[dcl]\\NP", "is": "(S[dcl]\\NP)/(S[adj]\\NP)", "on": "PP/NP",
            "big": "N/N", "small": "N/N", "red": "N/N", "blue": "N/N"}


def _derivation(words):
    """A right-branching CCGbank .auto derivation over the words (leaf fields: supertag,
    POS twice, word, predicate-argument category)."""
    leaf = [f"(<L {SUPERTAG[w]} NN NN {w} {SUPERTAG[w]}>)" for w in words]
    tree = leaf[-1]
    for node in reversed(leaf[:-1]):
        tree = f"(<T S 0 2> {node} {tree} )"
    return tree


def write_ccgbank(root: pathlib.Path):
    """CCGbank's AUTO folder: one small file in each training section (02-21) and two in the
    dev section (00); a split needs every one of its sections."""
    rng = np.random.default_rng(9)
    files = [(f"{section:02d}", 0, 2) for section in range(2, 22)] + [("00", 0, 3), ("00", 1, 3)]
    for section, f, count in files:
        folder = root / "ccgbank_1_1" / "data" / "AUTO" / section
        folder.mkdir(parents=True, exist_ok=True)
        name = f"wsj_{section}{f:02d}"
        lines = []
        for i in range(count):
            lines.append(f"ID={name}.{i + 1} PARSER=GOLD NUMPARSE=1")
            lines.append(_derivation(list(rng.choice(WORDS, rng.integers(3, 9)))))
        (folder / f"{name}.auto").write_text("\n".join(lines) + "\n")


def write_all(root: pathlib.Path) -> pathlib.Path:
    write_nli_data(root, train=40, dev=12, languages=())
    for writer in (write_qqp, write_sst2, write_snli, write_anli, write_hellaswag,
                   write_cosmosqa, write_commonsenseqa, write_squad, write_squad_v2,
                   write_ccgbank):
        writer(root)
    return root


__all__ = ["GLUE_COLUMNS", "write_all"]


# --------------------------------------------------------------------------- XTREME targets

WORDS = "the cat dog sat on mat a is big small red blue house tree".split()
# A learnable word -> tag rule for the toy UDPOS data.
TAG_OF = {w: ("DET" if w in ("the", "a") else "NOUN" if w in ("cat", "dog", "mat", "house", "tree")
              else "ADJ" if w in ("big", "small", "red", "blue") else "VERB" if w in ("sat", "is")
              else "ADP") for w in WORDS}


def _sentences(rng, n):
    return [list(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(n)]


def write_udpos(root: pathlib.Path, languages=("en", "de")) -> pathlib.Path:
    rng = np.random.default_rng(0)
    (root / "udpos").mkdir(parents=True)
    labels = root / "labels" / "udpos"
    labels.mkdir(parents=True)
    splits = [("train", "en", 200), ("dev", "en", 30)] + [("test", lang, 25) for lang in languages]
    for split, lang, n in splits:
        text = "".join("".join(f"{w}\t{TAG_OF[w]}\n" for w in s) + "\n" for s in _sentences(rng, n))
        (root / "udpos" / f"{split}-{lang}.tsv").write_text(text)
        if split == "test":  # the scorer's label file: tags only
            (labels / f"test-{lang}.tsv").write_text(
                "\n".join("\n".join(line.split("\t")[1] for line in block.splitlines()) + "\n"
                          for block in text.strip("\n").split("\n\n")) + "\n")
    return root


def _squad(rng, n, prefix):
    articles = []
    for p in range(n):
        words = list(rng.choice(WORDS, 30))
        answer_at = int(rng.integers(0, 26))
        context = " ".join(words)
        start = len(" ".join(words[:answer_at])) + (1 if answer_at else 0)
        answer = " ".join(words[answer_at:answer_at + 2])
        question = " ".join(words[answer_at:answer_at + 2][::-1] + ["is", "what"])
        articles.append({"title": f"t{p}", "paragraphs": [{"context": context, "qas": [
            {"id": f"{prefix}{p}", "question": question,
             "answers": [{"text": answer, "answer_start": start}]}]}]})
    return {"version": "1.1", "data": articles}


def write_qa(root: pathlib.Path, languages=("en", "de")) -> pathlib.Path:
    rng = np.random.default_rng(1)
    for folder in ("squad", "xquad", "labels/xquad"):
        (root / folder).mkdir(parents=True)
    (root / "squad" / "train-v1.1.json").write_text(json.dumps(_squad(rng, 120, "tr")))
    (root / "squad" / "dev-v1.1.json").write_text(json.dumps(_squad(rng, 20, "dv")))
    for lang in languages:
        text = json.dumps(_squad(rng, 15, f"{lang}-"))
        (root / "xquad" / f"xquad.{lang}.json").write_text(text)
        (root / "labels" / "xquad" / f"test-{lang}.json").write_text(text)
    return root
