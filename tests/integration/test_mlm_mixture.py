"""The paper's alternative (i): continued multilingual masked-LM as one more member of the
intermediate mixture: the text reader, language sampling, the checkpoint's own MLM head, and
a mixture run end to end."""

from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, build_tiny_tokenizer, write_nli_data
from xstilts_jax.cli import main
from xstilts_jax.data.mlm import MultilingualMlmData, tokenize_text
from xstilts_jax.tasks.formats.text import read_text_corpus
from xstilts_jax.tasks.io import DataError
from xstilts_jax.train.multitask import task_probabilities

TEXT = {"en": "the cat sat on the mat", "de": "der hund ist groß", "fr": "le chat est petit"}


def write_text(root: pathlib.Path, lines_per_language=(60, 20, 8)) -> pathlib.Path:
    """<root>/mlm/<lang>.txt with different sizes, a blank line each."""
    rng = np.random.default_rng(0)
    folder = root / "mlm"
    folder.mkdir(parents=True, exist_ok=True)
    for (lang, words), n in zip(TEXT.items(), lines_per_language):
        words = words.split()
        lines = [" ".join(rng.choice(words, rng.integers(2, 12))) for _ in range(n)]
        lines.insert(3, "")
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_text_corpus_reader(tmp_path):
    folder = write_text(tmp_path)
    corpus = read_text_corpus(folder, ["de", "en"])
    assert list(corpus.lines) == ["de", "en"] and len(corpus.lines["en"]) == 60
    assert corpus.skipped["en"] == {"blank line": 1}
    with pytest.raises(DataError, match=r"xx\.txt: no such file"):
        read_text_corpus(folder, ["xx"])
    (folder / "bad.txt").write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: not valid UTF-8"):
        read_text_corpus(folder, ["bad"])
    (folder / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match=r"empty\.txt: no text \(2 blank lines\)"):
        read_text_corpus(folder, ["empty"])


def test_long_lines_are_cut_into_pieces():
    tokenizer = build_tiny_tokenizer()
    line = " ".join(["the cat sat on the mat"] * 10)
    rows = tokenize_text(tokenizer, [line, "a dog"], max_length=16)
    ids = tokenizer(line, add_special_tokens=False)["input_ids"]
    pieces = [r for r in rows[:-1]]
    assert all(len(r) <= 16 and r[0] == tokenizer.cls_token_id and r[-1] == tokenizer.sep_token_id
               for r in rows)
    assert [t for r in pieces for t in r[1:-1]] == ids  # nothing lost, nothing repeated
    assert rows[-1][1:-1] == tokenizer("a dog", add_special_tokens=False)["input_ids"]


def _mlm_data(rows, seed=0, batch_size=16):
    tokenizer = build_tiny_tokenizer()
    probabilities = task_probabilities({k: len(v) for k, v in rows.items()},
                                       sampling="temperature", temperature=1 / 0.3)
    return MultilingualMlmData(rows, rows["de"][:4], language_probabilities=probabilities,
                               batch_size=batch_size, max_length=32, buckets=(32,),
                               pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                               vocab_size=len(tokenizer), special_ids=tokenizer.all_special_ids,
                               first_regular_id=4, seed=seed), probabilities


def test_languages_drawn_with_temperature_and_batches_are_pure():
    # each row holds its language's marker token, so a batch says which languages it drew
    rows = {"en": [[0, 10, 2]] * 6000, "de": [[0, 11, 2]] * 600, "fr": [[0, 12, 2]] * 60}
    data, probabilities = _mlm_data(rows)
    assert probabilities["en"] == pytest.approx(6000 ** 0.3 / sum(n ** 0.3 for n in
                                                                  (6000, 600, 60)))
    marker = np.concatenate([data.train_batch(i)["input_ids"][:, 1] for i in range(400)])
    labels = np.concatenate([data.train_batch(i)["mlm_labels"][:, 1] for i in range(400)])
    marker = np.where(labels >= 0, labels, marker)  # undo the masking of the marker
    for token, lang in ((10, "en"), (11, "de"), (12, "fr")):
        assert abs(np.mean(marker == token) - probabilities[lang]) < 0.02
    again, _ = _mlm_data(rows)
    for i in (0, 7, 399):  # a fresh instance (a resumed run) gives the same batch
        a, b = data.train_batch(i), again.train_batch(i)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    other, _ = _mlm_data(rows, seed=1)
    assert not np.array_equal(other.train_batch(0)["input_ids"], data.train_batch(0)["input_ids"])


def test_checkpoint_mlm_head_equals_torch(tiny_checkpoints):
    import torch
    import transformers as T

    from xstilts_jax.models.heads import TaskModel
    from xstilts_jax.models.pretrained import load_encoder, load_mlm_head

    directory = tiny_checkpoints("xlmr-mlm")
    encoder, report = load_encoder(directory, hidden_dropout=0.0, attention_dropout=0.0)
    assert "lm_head.dense.weight" in report.skipped  # not part of the encoder
    head = load_mlm_head(directory, encoder.config)
    ids = np.array([[0, 5, 9, 12, 7, 2, 1, 1], [0, 8, 8, 8, 8, 8, 8, 2]])
    mask = (ids != 1).astype(np.int32)
    ours = np.asarray(TaskModel(encoder, head)(jnp.asarray(ids), jnp.asarray(mask)))
    torch_model = T.XLMRobertaForMaskedLM.from_pretrained(directory).eval()
    with torch.no_grad():
        ref = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    np.testing.assert_allclose(ours[mask > 0], ref.numpy()[mask > 0], atol=1e-5)
    assert load_mlm_head(tiny_checkpoints("xlmr"), encoder.config) is None  # encoder only


@pytest.mark.slow
def test_mnli_plus_mlm_mixture_end_to_end(tmp_path, tiny_checkpoints, capsys):
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    write_text(data)
    workdir = tmp_path / "run"
    code = main(["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:mnli+mlm,xnli,tiny",
                 "--workdir", str(workdir), f"--config.model.name={tiny_checkpoints('xlmr-mlm')}",
                 f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
                 "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)",
                 "--config.mlm.dev_lines=4", "--config.target.num_steps=6"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((workdir / "results.json").read_text())
    phase = results["phases"]["intermediate"]
    assert phase["task"] == "mnli+mlm" and set(phase["probabilities"]) == {"mnli", "mlm"}
    mlm = phase["mlm"]
    assert mlm["head"] == "checkpoint"
    assert mlm["dev_rows"] == {"de": 4, "en": 4, "fr": 4}
    assert mlm["train_rows"] == {"de": 16, "en": 56, "fr": 4}
    assert mlm["skipped"]["en"] == {"blank line": 1}
    assert phase["train_rows"]["mlm"] == 76
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("phase") == "intermediate" and "dev_average" in r]
    # the MLM is trained and evaluated, but the best checkpoint follows the task (MNLI) alone
    assert evals and all(r["dev_average"] == r["mnli/dev_accuracy"] and "mlm/dev_mlm_accuracy" in r
                         for r in evals)
    from xstilts_jax.experiments import load_phase_model

    model, _ = load_phase_model(workdir / "intermediate")
    assert set(model.heads) == {"mnli", "mlm"}
