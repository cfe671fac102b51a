"""Encoder -> Hugging Face checkpoint directory: read back bit for bit by load_encoder, and the
same model in transformers' torch implementation (every hidden state within 1e-5)."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
import safetensors.numpy
import torch
from flax import nnx

from conftest import build_tiny_tokenizer, padded_batch, torch_model
from xstilts_jax.models.encoder import Encoder, EncoderConfig
from xstilts_jax.models.pretrained import CheckpointError, load_encoder, save_hf_checkpoint
from xstilts_jax.tokenization import load_tokenizer

FAMILIES = {  # family -> (EncoderConfig fields, model_type written)
    "bert": (dict(position_style="absolute", type_vocab_size=2, layer_norm_eps=1e-12,
                  pad_token_id=1), "bert"),
    "xlmr": (dict(position_style="roberta", layer_norm_eps=1e-5), "xlm-roberta"),
    "xlmr-xl": (dict(position_style="roberta", pre_layer_norm=True, layer_norm_eps=1e-6),
                "xlm-roberta-xl"),
}


def _random_encoder(family: str, vocab: int, seed: int = 0) -> Encoder:
    """A tiny encoder with every parameter random (biases and LayerNorms included, so a
    swapped scale/bias or a dropped bias shows)."""
    fields, _ = FAMILIES[family]
    config = EncoderConfig(vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=4,
                           intermediate_size=64, max_position_embeddings=40,
                           hidden_dropout=0.05, attention_dropout=0.15, initializer_range=0.03,
                           **fields)
    encoder = Encoder(config, rngs=nnx.Rngs(seed))
    state = nnx.state(encoder)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    noisy = [x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    nnx.update(encoder, jax.tree.unflatten(treedef, noisy))
    return encoder


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_export_reads_back_and_equals_torch(family, tmp_path):
    tokenizer = build_tiny_tokenizer()
    encoder = _random_encoder(family, len(tokenizer))
    directory = save_hf_checkpoint(encoder, tmp_path / "ckpt", tokenizer=tokenizer)

    hf_config = json.loads((directory / "config.json").read_text())
    assert hf_config["model_type"] == FAMILIES[family][1]
    loaded, report = load_encoder(directory)
    assert loaded.config == encoder.config
    assert report.skipped == ()
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), nnx.state(loaded), nnx.state(encoder))
    assert all(jax.tree.leaves(same))
    assert len(load_tokenizer(directory)) == len(tokenizer)

    reference = torch_model(directory)
    rng = np.random.default_rng(0)
    ids, mask = padded_batch(rng, encoder.config.vocab_size, [13, 6, 13, 2], seq=13)
    token_types = np.zeros_like(ids)
    if family == "bert":
        token_types[:, 7:] = mask[:, 7:]
    with torch.no_grad():
        ref = reference(torch.tensor(ids), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(token_types), output_hidden_states=True)
    ours = encoder(ids, mask, token_types)
    assert len(ours.hidden_states) == len(ref.hidden_states) == 3
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states, strict=True)):
        error = np.abs((np.asarray(a) - b.numpy()) * mask[..., None]).max()
        assert error <= 1e-5, f"hidden state {i}: max abs error {error}"


def test_hf_checkpoint_round_trips_tensor_for_tensor(tmp_path, tiny_checkpoints):
    """A checkpoint transformers wrote, loaded and written again: the same tensors under the
    same names and layouts (only the pooler, not part of the encoder, is left out)."""
    source = tiny_checkpoints("xlmr")
    encoder, _ = load_encoder(source)
    directory = save_hf_checkpoint(encoder, tmp_path / "again")
    original = safetensors.numpy.load_file(source / "model.safetensors")
    written = safetensors.numpy.load_file(directory / "model.safetensors")
    assert set(written) == {k for k in original if not k.startswith("pooler.")}
    for name, value in written.items():
        np.testing.assert_array_equal(value, original[name], err_msg=name)
    source_config = json.loads((source / "config.json").read_text())
    written_config = json.loads((directory / "config.json").read_text())
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "layer_norm_eps", "pad_token_id", "model_type"):
        assert written_config[key] == source_config[key], key


def test_run_time_choices_are_not_written(tmp_path):
    """dtype and remat are how a run computes, not what the checkpoint is."""
    tokenizer = build_tiny_tokenizer()
    encoder = _random_encoder("xlmr", len(tokenizer))
    encoder.config = dataclasses.replace(encoder.config, dtype="bfloat16", remat="full")
    directory = save_hf_checkpoint(encoder, tmp_path / "ckpt")
    loaded, _ = load_encoder(directory)
    assert (loaded.config.dtype, loaded.config.remat) == ("float32", "none")
    assert load_encoder(directory, remat="full")[0].config.remat == "full"


def test_unexportable_variant(tmp_path):
    config = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2,
                           intermediate_size=32, position_style="absolute", pre_layer_norm=True)
    with pytest.raises(CheckpointError, match="no Hugging Face model has pre-LN blocks with "
                                              "absolute positions"):
        save_hf_checkpoint(Encoder(config, rngs=nnx.Rngs(0)), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
