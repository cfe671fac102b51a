"""Flax encoder vs HF transformers' torch models: every hidden state within 1e-5 (fp32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import padded_batch, torch_model
from xstilts_jax.models.pretrained import load_encoder

ATOL = 1e-5


def _max_errors(flax_out, torch_out, mask):
    errors = []
    for ours, ref in zip(flax_out.hidden_states, torch_out.hidden_states, strict=True):
        diff = np.abs(np.asarray(ours) - ref.numpy())
        errors.append(float(np.max(diff * mask[..., None])))
    return errors


@pytest.mark.parametrize("kind", ["bert", "xlmr", "xlmr-xl"])
def test_every_hidden_state_matches_torch(kind, tiny_checkpoints):
    directory = tiny_checkpoints(kind)
    encoder, report = load_encoder(directory)
    reference = torch_model(directory)
    rng = np.random.default_rng(0)
    ids, mask = padded_batch(rng, encoder.config.vocab_size, [17, 9, 3, 17], seq=17)
    token_types = np.zeros_like(ids)
    if kind == "bert":
        token_types[:, 8:] = 1 * mask[:, 8:]  # a second segment, as in sentence pairs
    with torch.no_grad():
        ref = reference(torch.tensor(ids), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(token_types), output_hidden_states=True)
    ours = encoder(ids, mask, token_types)
    assert len(ours.hidden_states) == encoder.config.num_layers + 1 == len(ref.hidden_states)
    errors = _max_errors(ours, ref, mask)
    assert max(errors) <= ATOL, f"per-layer max abs error {errors}"
    np.testing.assert_allclose(np.asarray(ours.last_hidden_state) * mask[..., None],
                               ref.last_hidden_state.numpy() * mask[..., None], atol=ATOL, rtol=0)
    # The pooler is not part of the encoder: skipped, and reported as such.
    assert report.skipped == ("pooler.dense.bias", "pooler.dense.weight")


def test_padding_does_not_change_real_tokens(tiny_checkpoints):
    encoder, _ = load_encoder(tiny_checkpoints("xlmr"))
    rng = np.random.default_rng(1)
    ids, mask = padded_batch(rng, encoder.config.vocab_size, [7], seq=7)
    padded = np.concatenate([ids, np.ones((1, 9), ids.dtype)], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((1, 9), mask.dtype)], axis=1)
    short = np.asarray(encoder(ids, mask).last_hidden_state)
    long = np.asarray(encoder(padded, padded_mask).last_hidden_state)[:, :7]
    np.testing.assert_allclose(long, short, atol=1e-6, rtol=0)


def test_task_model_checkpoint_loads_its_encoder(tmp_path, tiny_checkpoints):
    """A *ForSequenceClassification checkpoint (keys under 'roberta.') loads; its head is reported."""
    import transformers as T

    base = torch_model(tiny_checkpoints("xlmr"))
    classifier = T.XLMRobertaForSequenceClassification(base.config)
    classifier.roberta.load_state_dict(base.state_dict(), strict=False)
    classifier.save_pretrained(tmp_path)
    encoder, report = load_encoder(tmp_path)
    assert set(report.skipped) == {"classifier.dense.weight", "classifier.dense.bias",
                                   "classifier.out_proj.weight", "classifier.out_proj.bias"}
    reference, _ = load_encoder(tiny_checkpoints("xlmr"))
    np.testing.assert_array_equal(np.asarray(encoder.embeddings.word[...]),
                                  np.asarray(reference.embeddings.word[...]))


def test_pytorch_model_bin_loads_like_safetensors(tmp_path, tiny_checkpoints):
    import shutil

    source = tiny_checkpoints("bert")
    shutil.copy(source / "config.json", tmp_path / "config.json")
    torch.save(torch_model(source).state_dict(), tmp_path / "pytorch_model.bin")
    from_bin, report = load_encoder(tmp_path)
    from_st, _ = load_encoder(source)
    assert report.weights_file.name == "pytorch_model.bin"
    ids = np.array([[0, 5, 6, 7, 2]])
    np.testing.assert_array_equal(np.asarray(from_bin(ids).last_hidden_state),
                                  np.asarray(from_st(ids).last_hidden_state))


def test_dropout_only_with_a_key(tiny_checkpoints):
    import jax

    encoder, _ = load_encoder(tiny_checkpoints("xlmr"))
    ids = np.array([[0, 5, 6, 7, 2]])
    a = np.asarray(encoder(ids, dropout_rng=jax.random.key(0)).last_hidden_state)
    b = np.asarray(encoder(ids, dropout_rng=jax.random.key(0)).last_hidden_state)
    c = np.asarray(encoder(ids).last_hidden_state)
    np.testing.assert_array_equal(a, b)  # same key, same mask
    assert np.abs(a - c).max() > 1e-3  # dropout actually applied


def test_bfloat16_compute_is_close(tiny_checkpoints):
    directory = tiny_checkpoints("xlmr")
    fp32, _ = load_encoder(directory)
    bf16, _ = load_encoder(directory, dtype="bfloat16")
    ids = np.array([[0, 5, 6, 7, 8, 9, 2]])
    a = np.asarray(fp32(ids).last_hidden_state)
    b = np.asarray(bf16(ids).last_hidden_state, dtype=np.float32)
    assert bf16(ids).last_hidden_state.dtype == np.dtype("bfloat16")
    assert np.abs(a - b).max() < 0.1


def test_bfloat16_safetensors_checkpoint(tmp_path, tiny_checkpoints):
    """bf16 weights (how large checkpoints ship) load exactly, upcast to float32."""
    source = tiny_checkpoints("xlmr")
    model = torch_model(source).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    encoder, _ = load_encoder(tmp_path)
    expected = model.embeddings.word_embeddings.weight.detach().float().numpy()
    got = np.asarray(encoder.embeddings.word[...])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    q = model.encoder.layer[1].attention.self.query.weight.detach().float().numpy()  # [n*d, h]
    got_q = np.asarray(encoder.layers.attention.query_kernel[1])  # layer 1's [h, n, d]
    np.testing.assert_array_equal(got_q.reshape(q.shape[1], -1).T, q)
