"""`xstilts retrieve`: embeddings -> exact kNN -> Tatoeba 1-NN / BUCC mining -> XTREME files.

The real-data test runs the offline multilingual-e5-small on the shared Tatoeba files and
checks the Flax pipeline's predictions against a torch reference holding the same weights.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from conftest import SHARED_DATA
from xstilts_jax import metrics
from xstilts_jax.cli import main

SHARED = SHARED_DATA
WORDS = "the cat dog sat on mat a is big small red blue house tree".split()


def _sentences(rng, n):
    return [" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(n)]


def write_tatoeba(root: pathlib.Path, n: int = 30) -> pathlib.Path:
    """LASER layout for de (ISO 639-3 deu) and fr (fra): the 'translation' is the same words
    reversed, so a tiny random encoder retrieves far better than chance."""
    rng = np.random.default_rng(0)
    (root / "tatoeba").mkdir(parents=True)
    for code in ("deu", "fra"):
        english = _sentences(rng, n)
        source = [" ".join(reversed(s.split())) for s in english]
        (root / "tatoeba" / f"tatoeba.{code}-eng.{code}").write_text("\n".join(source) + "\n")
        (root / "tatoeba" / f"tatoeba.{code}-eng.eng").write_text("\n".join(english) + "\n")
    return root


def write_bucc(root: pathlib.Path, language: str = "de") -> pathlib.Path:
    """XTREME's BUCC layout (dev with gold; test with gold too, as the release has it)."""
    rng = np.random.default_rng(1)
    (root / "bucc2018").mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        english = _sentences(rng, 40)
        source = [" ".join(reversed(s.split())) for s in english[:15]] + _sentences(rng, 25)
        order = rng.permutation(40)
        prefix = f"{root}/bucc2018/{language}-en.{split}"
        pathlib.Path(f"{prefix}.{language}").write_text(
            "".join(f"{language}-{i:09d}\t{source[j]}\n" for i, j in enumerate(order)))
        pathlib.Path(f"{prefix}.en").write_text(
            "".join(f"en-{i:09d}\t{s}\n" for i, s in enumerate(english)))
        where = {j: i for i, j in enumerate(order)}
        pathlib.Path(f"{prefix}.gold").write_text(
            "".join(f"{language}-{where[j]:09d}\ten-{j:09d}\n" for j in range(15)))
    return root


def test_tatoeba_cli_writes_xtreme_predictions(tmp_path, tiny_checkpoints, capsys):
    data = write_tatoeba(tmp_path / "data")
    out = tmp_path / "predictions"
    assert main(["retrieve", "tatoeba", "--model", str(tiny_checkpoints("xlmr")), "--data",
                 str(data), "--languages", "de", "fr", "--output", str(out), "-q", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    labels = tmp_path / "labels" / "tatoeba"
    labels.mkdir(parents=True)
    for lang in ("de", "fr"):
        (labels / f"test-{lang}.tsv").write_text("".join(f"{i}\n" for i in range(30)))
    scored = metrics.score_task("tatoeba", out, tmp_path / "labels")
    for lang in ("de", "fr"):
        assert result["per_language"][lang]["accuracy"] == pytest.approx(
            scored["per_language"][lang]["accuracy"], abs=1e-9)
    assert result["average"]["accuracy"] > 100 / 30 * 3  # well above chance (3.3 %)


def test_bucc_cli_threshold_from_dev(tmp_path, tiny_checkpoints, capsys):
    data = write_bucc(tmp_path / "data")
    out = tmp_path / "predictions"
    assert main(["retrieve", "bucc2018", "--model", str(tiny_checkpoints("xlmr")), "--data",
                 str(data), "--languages", "de", "--output", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "threshold chosen on dev" in printed
    lines = (out / "bucc2018" / "test-de.tsv").read_text().splitlines()
    assert all(line.startswith("de-") and "\ten-" in line for line in lines)
    gold = (data / "bucc2018" / "de-en.test.gold").read_text().splitlines()
    assert f"{metrics.bucc_f1(gold, lines)['f1']:8.2f}" in printed


def test_retrieve_errors(tmp_path, tiny_checkpoints, capsys):
    data = write_tatoeba(tmp_path / "data")
    assert main(["retrieve", "tatoeba", "--model", str(tiny_checkpoints("xlmr")), "--data",
                 str(data), "--languages", "xx", "-q"]) == 2
    assert "tatoeba has no language(s) xx" in capsys.readouterr().err
    assert main(["retrieve", "tatoeba", "--model", str(tiny_checkpoints("xlmr")), "--data",
                 str(data), "--languages", "es", "-q"]) == 2
    assert "tatoeba.spa-eng.spa" in capsys.readouterr().err  # the missing files are named


# --------------------------------------------------------------------------- real model

REAL_LANGUAGES = ("jv", "te", "ta", "sw")  # 205, 234, 307, 390 pairs: two scripts of India, two Latin


@pytest.mark.slow
def test_real_tatoeba_flax_equals_torch_reference(e5_dir, tmp_path):
    """Offline multilingual-e5-small on real Tatoeba: the Flax pipeline (embed at layer 7 of
    12 + blockwise kNN + XTREME's en->xx 1-NN) predicts exactly what torch + numpy do."""
    if not (SHARED / "tatoeba").is_dir():
        pytest.skip(f"real data folder {SHARED / 'tatoeba'} is absent (see shared/data/README.md)")
    import torch
    import transformers

    from xstilts_jax.models.pretrained import load_encoder
    from xstilts_jax.retrieve import retrieve
    from xstilts_jax.tasks import get_task, read
    from xstilts_jax.tokenization import load_tokenizer

    encoder, _ = load_encoder(e5_dir)
    tokenizer = load_tokenizer(e5_dir)
    ours = retrieve("tatoeba", encoder, tokenizer, SHARED, languages=REAL_LANGUAGES, layer=7,
                    batch_size=64, output_dir=tmp_path)

    model = transformers.BertModel.from_pretrained(e5_dir, add_pooling_layer=False).eval()
    model.encoder.layer = model.encoder.layer[:7]  # layers 8-12 cannot change hidden_states[7]

    def torch_embed(sentences):
        # Batches of similar length (the padding is masked; it only costs time), then back
        # in the sentences' order.
        order = np.argsort([len(tokenizer(s)["input_ids"]) for s in sentences], kind="stable")
        x = np.zeros((len(sentences), model.config.hidden_size))
        for start in range(0, len(sentences), 128):
            rows = order[start:start + 128]
            batch = tokenizer([sentences[i] for i in rows], padding=True, truncation=True,
                              max_length=512, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**batch, output_hidden_states=True).hidden_states[7]
            mask = batch["attention_mask"][..., None].float()
            x[rows] = ((hidden * mask).sum(1) / mask.sum(1)).numpy().astype(np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    task = get_task("tatoeba")
    for lang in REAL_LANGUAGES:
        pairs = read(task, SHARED, "test", lang)
        source = torch_embed([p.source for p in pairs])
        english = torch_embed([p.english for p in pairs])
        predicted = np.argmax(english @ source.T, axis=1)  # en -> xx, first index on ties
        written = (tmp_path / "tatoeba" / f"test-{lang}.tsv").read_text().split()
        assert [int(p) for p in written] == predicted.tolist(), lang
        accuracy = 100.0 * np.mean(predicted == np.arange(len(pairs)))
        assert ours["per_language"][lang]["accuracy"] == pytest.approx(accuracy, abs=1e-9), lang
    # multilingual-e5-small retrieves: far above chance in every language
    assert min(s["accuracy"] for s in ours["per_language"].values()) > 30.0, ours
