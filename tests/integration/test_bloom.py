"""The BLOOM decoder through the whole tool: ``xstilts embed`` equals torch's masked mean of a
hidden layer, a classification train step gives the same losses on 8 fake devices (fsdp and
tensor parallel) as on one, ``xstilts run`` trains a BLOOM cell, and a LoRA cell on BLOOM
records its fine-tuning and reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import mesh_losses
from xstilts_jax.cli import main


def test_embed_equals_torchs_masked_mean_of_a_layer(tmp_path, tiny_checkpoints):
    import torch
    import transformers as T

    directory = tiny_checkpoints("bloom")
    sentences = ["The cat sat on the mat.", "Der Hund ist groß.", "Москва — столица России.",
                 "a", "東京は日本の首都です。 El niño comió en la ciudad, déjà vu."]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    assert main(["embed", str(tmp_path / "in.txt"), "--model", str(directory), "--layer", "1",
                 "--output", str(out), "-q"]) == 0
    ours = np.load(out)
    # What a torch user writes: the checkpoint's tokenizer (left padding, no special tokens),
    # the model, the masked mean of hidden_states[1].
    tokenizer = T.AutoTokenizer.from_pretrained(directory)
    assert tokenizer.padding_side == "left"
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = T.BloomModel.from_pretrained(directory)(
            **batch, output_hidden_states=True).hidden_states[1]
    mask = batch["attention_mask"][..., None].float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    assert ours.shape == expected.shape == (5, 32)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_bloom_classification_step_is_the_same_on_8_devices():
    """5 train steps of a tiny BLOOM + its sequence head, dropout on, a batch with left and
    right padding and weight-0 rows: 1 device vs data=8, fsdp=2 x data=4, tensor=2 x data=4."""
    import jax
    from flax import nnx

    from xstilts_jax.losses import classification_loss
    from xstilts_jax.models.decoder import Decoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.models.presets import get_preset

    config = get_preset("bloom-tiny", hidden_dropout=0.1, attention_dropout=0.1)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(5):
        ids = rng.integers(4, 900, (16, 24)).astype(np.int32)
        mask = np.ones_like(ids)
        mask[4:8, :7] = 0  # left-padded rows
        mask[8:, 15:] = 0  # right-padded rows
        ids[mask == 0] = 3
        batches.append(dict(input_ids=ids, attention_mask=mask,
                            token_type_ids=np.zeros_like(ids),
                            labels=rng.integers(0, 3, 16).astype(np.int32),
                            weight=np.r_[np.ones(13), np.zeros(3)].astype(np.float32)))

    def losses(mesh_shape, devices):
        rngs = nnx.Rngs(0)
        model = TaskModel(Decoder(config, rngs=rngs), ClassificationHead(config, 3, rngs=rngs))
        return mesh_losses(model, classification_loss, batches, mesh_shape, devices)

    one = losses({"data": 1}, jax.devices()[:1])
    assert one[-1] < one[0]  # it learns
    for shape in ({"data": 8}, {"fsdp": 2, "data": 4}, {"tensor": 2, "data": 4}):
        np.testing.assert_allclose(losses(shape, jax.devices()), one, atol=1e-5, rtol=0,
                                   err_msg=str(shape))


@pytest.mark.slow
def test_a_bloom_cell_trains_through_xstilts_run(bloom_cell):
    """``xstilts run`` (MNLI then XNLI) on a BLOOM checkpoint: both phases train and select a
    checkpoint on their dev sets, and every language gets its predictions. (That a BLOOM
    phase resumes bit-identically is test_preemption.py's SIGTERM test, on the decoder.)"""
    results = json.loads((bloom_cell / "results.json").read_text())
    assert set(results["phases"]) == {"intermediate", "target"}
    assert results["phases"]["target"]["best_dev"] > 0
    for lang in ("en", "de"):
        lines = (bloom_cell / "predictions" / "xnli" / f"test-{lang}.tsv").read_text().split()
        assert len(lines) == 40 and set(lines) <= {"contradiction", "entailment", "neutral"}


@pytest.mark.slow
def test_a_lora_cell_on_bloom_records_its_finetuning_and_its_phase_reloads(tmp_path,
                                                                           tiny_checkpoints,
                                                                           nli_data):
    """``model.lora_rank=4`` on a BLOOM cell: the phase's key differs from full fine-tuning's,
    the results say ``lora-r4-a8`` with the closed-form trainable count (adapters + the
    sequence head), and the trained phase reloads with its adapters (``xstilts embed --model
    PHASE_DIR``: the optimizer state of adapters and head only, as saved)."""
    from xstilts_jax.experiments import run_cell
    from xstilts_jax.experiments.cell import cell_phases
    from xstilts_jax.experiments.defaults import cell_config

    config = cell_config("none", "xnli", tiny=True)
    config.model.name = str(tiny_checkpoints("bloom"))
    config.data.dir = str(nli_data)
    config.eval.languages = ("de",)
    config.target.buckets = (64,)
    full_key = cell_phases(config)[0][4]
    config.model.lora_rank = 4
    assert cell_phases(config)[0][4] != full_key
    result = run_cell(config, tmp_path / "cell", progress=False)
    h, layers, classes, rank = 32, 2, 3, 4
    # q, k, v, out (h x h) and the MLP (h x 4h, 4h x h), rank * (d_in + d_out) each.
    adapters = layers * rank * (4 * 2 * h + 2 * (h + 4 * h))
    assert result.finetuning == "lora-r4-a8"
    assert result.trainable_parameters == adapters + h * classes
    saved = json.loads((tmp_path / "cell" / "results.json").read_text())
    assert (saved["finetuning"], saved["trainable_parameters"]) == (
        "lora-r4-a8", adapters + h * classes)
    (tmp_path / "in.txt").write_text("The cat sat.\nDer Hund.\n")
    assert main(["embed", str(tmp_path / "in.txt"), "--model", str(tmp_path / "cell" / "target"),
                 "--output", str(tmp_path / "e.npy"), "-q"]) == 0
    assert np.load(tmp_path / "e.npy").shape == (2, h)
