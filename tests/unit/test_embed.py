"""Sentence embeddings and `xstilts embed`: equal to torch's masked-mean pooled hidden states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import scan_lengths, torch_model
from xstilts_jax.cli import main
from xstilts_jax.data.batching import bucket_lengths, token_batches

SENTENCES = ["the cat sat on the mat.", "der hund ist groß", "le chat est petit!", "",
             "a big red house is on the tree and the small blue dog sat on the mat" * 2, "x"]


def _torch_pooled(directory, sentences, layer, pool="mean", max_length=512):
    tokenizer_dir = directory
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = torch_model(directory)
    batch = tok(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[layer]
    if pool == "cls":
        return hidden[:, 0].numpy()
    mask = batch["attention_mask"][..., None].float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


@pytest.mark.parametrize("kind,layer", [("xlmr", 1), ("bert", 2), ("xlmr-xl", 2)])
def test_embed_cli_matches_torch(kind, layer, tmp_path, tiny_checkpoints):
    directory = tiny_checkpoints(kind)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["embed", "--model", str(directory), "--layer", str(layer), "--batch-size", "4",
                 "-q", str(source), "-o", str(out)]) == 0
    ours = np.load(out)
    assert ours.dtype == np.float32 and ours.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(ours, _torch_pooled(directory, SENTENCES, layer), atol=1e-5, rtol=0)


def test_embed_cls_pooling_and_truncation(tmp_path, tiny_checkpoints):
    directory = tiny_checkpoints("xlmr")
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SENTENCES), encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["embed", "--model", str(directory), "--layer", "2", "--pool", "cls",
                 "--max-length", "12", "-q", str(source), "-o", str(out)]) == 0
    expected = _torch_pooled(directory, SENTENCES, 2, pool="cls", max_length=12)
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5, rtol=0)


def test_embed_cli_errors(tmp_path, tiny_checkpoints, capsys):
    directory = tiny_checkpoints("xlmr")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("fine\nalso fine\n".encode() + b"\xff\xfe broken\n")
    assert main(["embed", "--model", str(directory), str(bad), "-o", str(tmp_path / "o.npy")]) == 2
    assert f"{bad}:3: not valid UTF-8" in capsys.readouterr().err
    good = tmp_path / "good.txt"
    good.write_text("the cat\n")
    assert main(["embed", "--model", str(directory), "--layer", "3", str(good),
                 "-o", str(tmp_path / "o.npy")]) == 2
    assert "--layer 3: the model has layers 0..2" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["embed", "--model", str(directory), str(empty), "-o", str(tmp_path / "o.npy")]) == 2
    assert "no sentences" in capsys.readouterr().err
    assert main(["embed", "--model", str(tmp_path / "nope"), str(good), "-o", str(tmp_path / "o.npy")]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err


def test_length_ladder():
    from xstilts_jax.embed import length_ladder

    assert length_ladder(40) == (*range(1, 17), *range(18, 33, 2), 36, 40)
    assert length_ladder(512)[-4:] == (416, 448, 480, 512) and len(length_ladder(512)) == 56
    assert length_ladder(17) == (*range(1, 17), 17)  # max_length is always the last rung
    with pytest.raises(ValueError, match="max_length must be positive, got 0"):
        length_ladder(0)


def test_plan_batches_cover_every_sequence_once_in_few_full_shapes():
    from xstilts_jax.embed import length_ladder, plan_batches

    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(4, 30, size=900), rng.integers(30, 200, size=100)])
    ladder = length_ladder(200)
    for row_multiple in (1, 3):
        plan = plan_batches(lengths, batch_size=4, tokens_per_batch=256, buckets=ladder,
                            row_multiple=row_multiple)
        seen = np.concatenate([rows for rows, _, _ in plan])
        assert sorted(seen) == list(range(len(lengths)))  # every sequence exactly once
        assert np.all(np.diff(lengths[seen]) >= 0)  # in length order
        for k, (rows, n_rows, seq) in enumerate(plan):
            assert seq in ladder and lengths[rows].max() <= seq and n_rows % row_multiple == 0
            full = -(-max(4, 256 // seq) // row_multiple) * row_multiple
            if k < len(plan) - 1:
                assert len(rows) == n_rows == full  # only the last batch has padding rows
            else:
                assert len(rows) <= n_rows <= full and (n_rows == full or n_rows % 8 == 0)
        shapes = {(n_rows, seq) for _, n_rows, seq in plan}
        assert len(shapes) <= len({seq for _, _, seq in plan}) + 1  # one shape per length
        computed = sum(n_rows * seq for _, n_rows, seq in plan)
        # 6 % padding; batches of 32 padded to 16/32/64/128/200 (the former way): 41 %
        assert 1 - lengths.sum() / computed < 0.08


def test_plan_batches_errors():
    from xstilts_jax.embed import plan_batches

    with pytest.raises(ValueError, match=r"1 sequences exceed the largest bucket 8 \(first: "
                                         r"index 1, 9 tokens\)"):
        plan_batches([3, 9], batch_size=2, tokens_per_batch=16, buckets=(4, 8))
    with pytest.raises(ValueError, match="must be positive, got 0 and 16"):
        plan_batches([3], batch_size=0, tokens_per_batch=16, buckets=(4, 8))


def test_embed_sentences_many_batches_match_torch_and_repeats_embed_once(tiny_checkpoints):
    """Token-budget batches of several lengths and a short last batch give torch's vectors in
    input order; a repeated sentence gets the very vector of its first occurrence."""
    from xstilts_jax.embed import embed_sentences
    from xstilts_jax.models.pretrained import load_encoder
    from xstilts_jax.tokenization import load_tokenizer

    directory = tiny_checkpoints("bert")
    encoder, _ = load_encoder(directory)
    tokenizer = load_tokenizer(directory)
    rng = np.random.default_rng(0)
    words = " ".join(SENTENCES).split()
    sentences = [" ".join(rng.choice(words, rng.integers(1, 25))) for _ in range(37)]
    sentences += sentences[:5]
    got = embed_sentences(encoder, tokenizer, sentences, layer=2, batch_size=2,
                          tokens_per_batch=48)
    assert got.shape == (42, 32)
    np.testing.assert_allclose(got, _torch_pooled(directory, sentences, 2), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got[37:], got[:5])


def test_token_batches_cover_everything_with_few_shapes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=103)
    seqs = [list(range(5, 5 + n)) for n in lengths]
    buckets = bucket_lengths(200, (16, 32, 64, 128))
    batches = list(token_batches(seqs, batch_size=8, pad_id=1, buckets=buckets))
    shapes = {b.input_ids.shape for b in batches}
    assert {s[0] for s in shapes} == {8} and {s[1] for s in shapes} <= set(buckets)
    seen = np.concatenate([b.example_index[b.example_index >= 0] for b in batches])
    assert sorted(seen) == list(range(103))  # every example exactly once
    for b in batches:
        for row, i in enumerate(b.example_index):
            if i < 0:
                assert b.weight[row] == 0 and b.attention_mask[row].sum() == 0
            else:
                n = lengths[i]
                assert b.attention_mask[row].sum() == n
                np.testing.assert_array_equal(b.input_ids[row, :n], seqs[i])
                assert (b.input_ids[row, n:] == 1).all()


def test_token_batches_refuse_too_long():
    with pytest.raises(ValueError, match=r"1 sequences exceed the largest bucket 8 \(first: index 1, 9 tokens\)"):
        list(token_batches([[1] * 3, [1] * 9], batch_size=2, pad_id=0, buckets=(4, 8)))


def test_embeddings_sharded_over_8_devices_equal_one_device(tiny_checkpoints):
    """The embedding pass split over data=8 (and fsdp=2 x data=4) gives the 1-device result."""
    import jax

    from xstilts_jax.embed import embed_sentences
    from xstilts_jax.models.pretrained import load_encoder
    from xstilts_jax.tokenization import load_tokenizer
    from xstilts_jax.sharding import make_mesh

    encoder, report = load_encoder(str(tiny_checkpoints("xlmr")))
    tokenizer = load_tokenizer(report.path)
    sentences = SENTENCES * 3
    one = embed_sentences(encoder, tokenizer, sentences, layer=2, batch_size=4)
    for shape in ({"data": 8}, {"fsdp": 2, "data": 4}):
        mesh = make_mesh(shape, jax.devices()[:8])
        got = embed_sentences(encoder, tokenizer, sentences, layer=2, batch_size=4, mesh=mesh)
        np.testing.assert_allclose(got, one, atol=1e-5, rtol=0, err_msg=str(shape))


def test_embedding_runs_only_the_blocks_below_its_layer(tiny_checkpoints):
    """The blocks are one scan, which XLA cannot cut short: the embedding pass must ask for
    only the blocks it reads (layer 1 of 2 scans one block, layer 0 none)."""
    from flax import nnx

    from xstilts_jax.embed import _embed_batch
    from xstilts_jax.models.pretrained import load_encoder

    encoder, _ = load_encoder(tiny_checkpoints("xlmr"))
    graphdef, state = nnx.split(encoder)
    ids = np.zeros((2, 8), np.int32)
    for layer, scans in ((0, []), (1, [1]), (2, [2])):
        traced = _embed_batch.trace(graphdef, state, ids, np.ones_like(ids), layer=layer, pool="mean")
        assert scan_lengths(traced.jaxpr) == scans, layer
