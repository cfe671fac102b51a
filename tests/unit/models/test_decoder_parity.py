"""BLOOM decoder vs HF transformers' torch ``BloomModel``: every hidden state within 1e-5
(fp32) at real tokens, left and right padding, power-of-two and other head counts; the task
heads' logits; loading (sharded index, bf16, pytorch_model.bin, every error listed), export
(round trip), the presets' sizes and their pretraining languages.

Hidden states are compared at real (mask 1) positions only. A left-padded row's pad queries
attend to no real key (every key they may see is masked), so their output is an average over
masked keys that no real position ever reads; HF's and ours happen to agree there too, but
that is not part of the contract.
"""

from __future__ import annotations

import json
import math
import shutil

import jax
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers as T
from flax import nnx

from xstilts_jax.models.axes import LOGICAL_AXES
from xstilts_jax.models.backbone import Backbone, last_token
from xstilts_jax.models.decoder import Decoder, DecoderConfig, alibi_slopes
from xstilts_jax.models.heads import ClassificationHead, SpanHead, TaggingHead, TaskModel
from xstilts_jax.models.presets import (BLOOM_LANGUAGES, PRESETS, XLMR_LANGUAGES, ShapeOnlyRngs,
                                        get_preset, pretraining_languages)
from xstilts_jax.models.pretrained import (CheckpointError, checkpoint_family,
                                           decoder_config_from_hf, load_backbone, load_encoder,
                                           save_hf_checkpoint)

ATOL = 1e-5
VOCAB, PAD = 120, 3
HEADS = {4: 64, 6: 48}  # heads -> hidden size (6: not a power of two; ALiBi's extra slopes)


def _bloom_config(heads: int = 4, **extra) -> T.BloomConfig:
    return T.BloomConfig(vocab_size=VOCAB, hidden_size=HEADS[heads], n_layer=2, n_head=heads,
                         pad_token_id=PAD, **extra)


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial LayerNorm and bias values, so a swapped scale/bias or a dropped bias shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "ln_f" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def bloom_checkpoints(tmp_path_factory):
    """heads -> (directory of a saved random tiny BloomModel, the torch model)."""
    cache = {}

    def get(heads: int, **extra):
        key = (heads, tuple(sorted(extra.items())))
        if key not in cache:
            torch.manual_seed(heads)
            model = _randomize(T.BloomModel(_bloom_config(heads, **extra)))
            directory = tmp_path_factory.mktemp(f"bloom-{heads}")
            model.save_pretrained(directory)
            cache[key] = directory, model
        return cache[key]

    return get


def _batch(seed: int = 0, seq: int = 11):
    """Rows: full, left-padded (3 pads), right-padded (4 pads), short left-padded; pad ids
    where the mask is 0, as a tokenizer writes them (HF's sequence classifier reads them)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, VOCAB, size=(4, seq))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    mask[2, -4:] = 0
    mask[3, :seq - 2] = 0
    ids[mask == 0] = PAD
    return ids, mask


def _torch_hidden(model, ids, mask):
    with torch.no_grad():
        return model(torch.tensor(ids), attention_mask=torch.tensor(mask),
                     output_hidden_states=True)


def _max_errors(ours, ref, mask):
    return [float(np.max(np.abs(np.asarray(a) - b.numpy()) * mask[..., None]))
            for a, b in zip(ours, ref, strict=True)]


def test_alibi_slopes_are_blooms():
    """Megatron-DeepSpeed's get_slopes (what BLOOM was trained with) exactly, for every head
    count to 128 (bloom-176b: 112); HF's float32 torch.pow version to 4 ulp."""
    def get_slopes(n):
        def power_of_2(n):
            start = 2 ** (-2 ** -(math.log2(n) - 3))
            return [start * start ** i for i in range(n)]
        if math.log2(n).is_integer():
            return power_of_2(n)
        closest = 2 ** math.floor(math.log2(n))
        return power_of_2(closest) + get_slopes(2 * closest)[0::2][:n - closest]

    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    for n in range(1, 129):
        np.testing.assert_array_equal(alibi_slopes(n), np.asarray(get_slopes(n), np.float32),
                                      err_msg=f"{n} heads")
        np.testing.assert_allclose(alibi_slopes(n), _get_alibi_slopes(n, "cpu").numpy(),
                                   rtol=1e-6, atol=0, err_msg=f"{n} heads")


@pytest.mark.parametrize("heads", sorted(HEADS))
def test_every_hidden_state_matches_torch(heads, bloom_checkpoints):
    directory, reference = bloom_checkpoints(heads)
    decoder, report = load_backbone(directory)
    assert isinstance(decoder, Decoder) and report.skipped == ()
    ids, mask = _batch(heads)
    ref = _torch_hidden(reference, ids, mask)
    ours = decoder(ids, mask)
    assert len(ours.hidden_states) == 3 == len(ref.hidden_states)
    errors = _max_errors(ours.hidden_states, ref.hidden_states, mask)
    assert max(errors) <= ATOL, f"per-layer max abs error at real tokens {errors}"
    np.testing.assert_array_equal(ours.last_hidden_state, ours.hidden_states[-1])
    # No mask: every token is real (HF builds ALiBi from arange then).
    with torch.no_grad():
        ref = reference(torch.tensor(ids), output_hidden_states=True)
    errors = _max_errors(decoder(ids).hidden_states, ref.hidden_states, np.ones_like(mask))
    assert max(errors) <= ATOL, f"without a mask: {errors}"


def test_residual_from_the_layernorm_output(bloom_checkpoints):
    """apply_residual_connection_post_layernorm=True (no released BLOOM has it) as HF."""
    directory, reference = bloom_checkpoints(4, apply_residual_connection_post_layernorm=True)
    decoder, _ = load_backbone(directory)
    assert decoder.config.apply_residual_connection_post_layernorm
    ids, mask = _batch(1)
    errors = _max_errors(decoder(ids, mask).hidden_states,
                         _torch_hidden(reference, ids, mask).hidden_states, mask)
    assert max(errors) <= ATOL, errors


def test_truncated_depth_padding_and_token_types(bloom_checkpoints):
    """num_layers=k gives HF's first k+1 hidden states (no final LayerNorm); appended padding
    does not change real tokens; token_type_ids are ignored (BLOOM has no segments)."""
    directory, _ = bloom_checkpoints(4)
    decoder, _ = load_backbone(directory)
    ids, mask = _batch(2, seq=8)
    full = decoder(ids, mask)
    one = decoder(ids, mask, num_layers=1)
    assert len(one.hidden_states) == 2
    for a, b in zip(one.hidden_states, full.hidden_states[:2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.last_hidden_state, full.hidden_states[1])
    with pytest.raises(ValueError, match=r"num_layers must be in 0\.\.2"):
        decoder(ids, mask, num_layers=3)
    np.testing.assert_array_equal(decoder(ids, mask, np.ones_like(ids)).last_hidden_state,
                                  full.last_hidden_state)
    longer = np.concatenate([ids, np.full((4, 5), PAD)], axis=1)
    longer_mask = np.concatenate([mask, np.zeros((4, 5), mask.dtype)], axis=1)
    padded = np.asarray(decoder(longer, longer_mask).last_hidden_state)[:, :8]
    np.testing.assert_allclose(padded * mask[..., None],
                               np.asarray(full.last_hidden_state) * mask[..., None], atol=1e-6)


def test_decoder_is_a_backbone(bloom_checkpoints):
    decoder, _ = load_backbone(bloom_checkpoints(4)[0])
    assert isinstance(decoder, Backbone)
    hidden = jax.random.normal(jax.random.key(0), (4, 11, 64))
    _, mask = _batch()
    np.testing.assert_array_equal(decoder.pool(hidden, mask), last_token(hidden, mask))
    np.testing.assert_array_equal(decoder.output_embedding(), decoder.embeddings.word[...])


def test_dropout_only_with_a_key(bloom_checkpoints):
    decoder, _ = load_backbone(bloom_checkpoints(4)[0], hidden_dropout=0.2,
                               attention_dropout=0.2)
    ids, mask = _batch()
    plain = np.asarray(decoder(ids, mask).last_hidden_state)
    np.testing.assert_array_equal(decoder(ids, mask).last_hidden_state, plain)
    dropped = jax.jit(lambda key: decoder(ids, mask, dropout_rng=key).last_hidden_state)
    a, b, c = (np.asarray(dropped(jax.random.key(seed))) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain) and not np.allclose(a, c)
    _, _, rest = nnx.split(decoder, nnx.Param, ...)
    assert not jax.tree.leaves(rest)  # parameters are the whole state


@pytest.mark.slow  # two gradient compiles, ~14 s on 2 cores
def test_remat_changes_no_value():
    """What the backward pass recomputes is a memory choice: the same loss and gradients."""
    ids, mask = _batch(seq=6)
    ids = ids % 1000

    def loss_and_grads(remat):
        decoder = Decoder(get_preset("bloom-tiny", remat=remat), rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(decoder)

        def loss(params):
            hidden = nnx.merge(graphdef, params)(ids, mask).last_hidden_state
            return (hidden * mask[..., None]).sum() / 100

        return jax.jit(jax.value_and_grad(loss))(params)

    (reference, grads), (value, other) = loss_and_grads("none"), loss_and_grads("full")
    np.testing.assert_allclose(value, reference, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(other), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_bfloat16_compute(bloom_checkpoints):
    directory, _ = bloom_checkpoints(4)
    f32, _ = load_backbone(directory)
    bf16, _ = load_backbone(directory, dtype="bfloat16")
    ids, mask = _batch(3, seq=8)
    out = bf16(ids, mask).last_hidden_state
    assert out.dtype == np.dtype("bfloat16")
    assert bf16.layers.attention.query_kernel[...].dtype == np.float32  # master weights
    np.testing.assert_allclose(np.asarray(out, np.float32) * mask[..., None],
                               np.asarray(f32(ids, mask).last_hidden_state) * mask[..., None],
                               atol=0.15, rtol=0)


def _task_checkpoint(model_class, base: T.BloomModel, directory, **config):
    torch.manual_seed(7)
    model = model_class(T.BloomConfig(**{**base.config.to_dict(), **config}))
    model.transformer.load_state_dict(base.state_dict())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("transformer.") and name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.eval().save_pretrained(directory)
    return model


def _set(param, value):
    param.set_value(jax.numpy.asarray(value.detach().numpy().astype(np.float32)))


def test_task_heads_match_torch(tmp_path, bloom_checkpoints):
    """Each BloomFor<Task> checkpoint loads its backbone (under 'transformer.', the head's
    tensors skipped and reported); with the same head weights, our heads' logits are HF's."""
    _, base = bloom_checkpoints(4)
    ids, mask = _batch(4)
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)

    # Sequence classification: a bias-free Linear on each row's last non-pad token, which is
    # our ClassificationHead on a decoder (config.sequence_head "linear").
    model = _task_checkpoint(T.BloomForSequenceClassification, base, tmp_path / "seq",
                             num_labels=3)
    decoder, report = load_backbone(tmp_path / "seq")
    assert report.skipped == ("score.weight",)
    head = ClassificationHead(decoder.config, 3, rngs=nnx.Rngs(0))
    assert head.dense_kernel is None and head.out_bias is None
    _set(head.out_kernel, model.score.weight.T)
    with torch.no_grad():
        expected = model(ids_t, attention_mask=mask_t).logits.numpy()
    got = np.asarray(TaskModel(decoder, head)(ids, mask))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)

    # Token classification: dropout (off) + Linear with bias on every position = TaggingHead.
    model = _task_checkpoint(T.BloomForTokenClassification, base, tmp_path / "tok",
                             num_labels=5)
    decoder, report = load_backbone(tmp_path / "tok")
    assert report.skipped == ("classifier.bias", "classifier.weight")
    head = TaggingHead(decoder.config, 5, rngs=nnx.Rngs(0))
    _set(head.out_kernel, model.classifier.weight.T)
    _set(head.out_bias, model.classifier.bias)
    with torch.no_grad():
        expected = model(ids_t, attention_mask=mask_t).logits.numpy()
    got = np.asarray(TaskModel(decoder, head)(ids, mask))
    np.testing.assert_allclose(got * mask[..., None], expected * mask[..., None], atol=ATOL, rtol=0)

    # Extractive QA: qa_outputs on every position = SpanHead (start, end).
    model = _task_checkpoint(T.BloomForQuestionAnswering, base, tmp_path / "qa")
    decoder, report = load_backbone(tmp_path / "qa")
    assert report.skipped == ("qa_outputs.bias", "qa_outputs.weight")
    head = SpanHead(decoder.config, rngs=nnx.Rngs(0))
    _set(head.out_kernel, model.qa_outputs.weight.T)
    _set(head.out_bias, model.qa_outputs.bias)
    with torch.no_grad():
        out = model(ids_t, attention_mask=mask_t)
    got = np.asarray(TaskModel(decoder, head)(ids, mask))
    np.testing.assert_allclose(got[..., 0] * mask, out.start_logits.numpy() * mask, atol=ATOL, rtol=0)
    np.testing.assert_allclose(got[..., 1] * mask, out.end_logits.numpy() * mask, atol=ATOL, rtol=0)


def _params(module) -> dict:
    return {path: np.asarray(v[...]) for path, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def test_sharded_bf16_index_and_torch_bin_load(tmp_path, bloom_checkpoints):
    """A bf16 checkpoint in shards with model.safetensors.index.json (as the hub's BLOOMs come)
    and a pytorch_model.bin load the same float32 parameters as an fp32 safetensors file of
    the same (bf16-rounded) weights."""
    _, base = bloom_checkpoints(4)
    bf16 = T.BloomModel(base.config)
    bf16.load_state_dict(base.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    bf16.save_pretrained(tmp_path / "bf16", max_shard_size="20KB")
    assert (tmp_path / "bf16" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "bf16").glob("model-*.safetensors"))) > 1
    bf16.float().save_pretrained(tmp_path / "f32")
    (tmp_path / "bin").mkdir()
    shutil.copy(tmp_path / "f32" / "config.json", tmp_path / "bin")
    torch.save(bf16.to(torch.bfloat16).state_dict(), tmp_path / "bin" / "pytorch_model.bin")

    sharded, report = load_backbone(tmp_path / "bf16")
    assert report.weights_file.name == "model.safetensors.index.json"
    reference = _params(load_backbone(tmp_path / "f32")[0])
    from_bin, report = load_backbone(tmp_path / "bin")
    assert report.weights_file.name == "pytorch_model.bin"
    for loaded in (_params(sharded), _params(from_bin)):
        assert loaded.keys() == reference.keys()
        for path, value in loaded.items():
            assert value.dtype == np.float32
            np.testing.assert_array_equal(value, reference[path], err_msg=str(path))


def test_older_config_names_and_causal_lm_checkpoint(tmp_path, bloom_checkpoints):
    """Older BLOOM configs say n_embed / num_attention_heads; a BloomForCausalLM checkpoint
    with its (tied) lm_head.weight saved loads, the LM head skipped and reported."""
    source, _ = bloom_checkpoints(4)
    shutil.copytree(source, tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    config["n_embed"] = config.pop("hidden_size")
    config["num_attention_heads"] = config.pop("n_head")
    config_path.write_text(json.dumps(config))
    weights = tmp_path / "ckpt" / "model.safetensors"
    tensors = safetensors.numpy.load_file(weights)
    tensors = {f"transformer.{k}": v for k, v in tensors.items()}
    tensors["lm_head.weight"] = tensors["transformer.word_embeddings.weight"]
    safetensors.numpy.save_file(tensors, weights, metadata={"format": "pt"})
    decoder, report = load_backbone(tmp_path / "ckpt")
    assert report.skipped == ("lm_head.weight",)
    assert (decoder.config.hidden_size, decoder.config.num_heads) == (64, 4)
    reference = _params(load_backbone(source)[0])
    for path, value in _params(decoder).items():
        np.testing.assert_array_equal(value, reference[path])
    assert checkpoint_family(tmp_path / "ckpt") == "decoder"
    with pytest.raises(CheckpointError, match=r"model_type 'bloom' is a decoder, not an encoder"):
        load_encoder(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"'xlm-roberta' is an encoder, not a decoder"):
        decoder_config_from_hf({"model_type": "xlm-roberta"}, source="x/config.json")


def test_every_problem_is_listed(tmp_path, bloom_checkpoints):
    source, _ = bloom_checkpoints(4)
    shutil.copytree(source, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    tensors = dict(safetensors.numpy.load_file(weights))
    del tensors["h.1.self_attention.dense.bias"]
    del tensors["ln_f.weight"]
    tensors["h.0.self_attention.query_key_value.weight"] = np.zeros((64 * 3, 32), np.float32)
    tensors["h.0.mlp.dense_4h_to_h.weight"] = np.zeros((64, 64), np.float32)
    tensors["h.0.self_attention.rotary.inv_freq"] = np.zeros(8, np.float32)
    safetensors.numpy.save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load_backbone(tmp_path / "ckpt")
    message = str(e.value)
    assert str(weights) in message and "a BLOOM decoder with 2 layers, hidden 64" in message
    assert "missing tensors (2): h.1.self_attention.dense.bias, ln_f.weight" in message
    assert ("tensors with the wrong shape (2): h.0.mlp.dense_4h_to_h.weight: got (64, 64), "
            "expected (64, 256) for this config; h.0.self_attention.query_key_value.weight: "
            "got (192, 32), expected (192, 64) for this config") in message
    assert "unexpected tensors (1): h.0.self_attention.rotary.inv_freq" in message


def _random_decoder(seed: int = 0, **fields) -> Decoder:
    """A tiny decoder with every parameter random (biases and LayerNorms included)."""
    config = DecoderConfig(vocab_size=VOCAB, hidden_size=48, num_layers=2, num_heads=6,
                           pad_token_id=PAD, hidden_dropout=0.05, attention_dropout=0.1,
                           initializer_range=0.03, **fields)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(seed)
    flat = dict(nnx.to_flat_state(state))
    for path, variable in flat.items():
        noise = 0.1 * rng.standard_normal(variable.shape, np.float32)
        variable.set_value(jax.numpy.asarray(noise + 1.0 if path[-1] == "scale" else noise))
    decoder = nnx.merge(graphdef, nnx.from_flat_state(flat))
    return decoder


def test_export_reads_back_and_equals_torch(tmp_path):
    """A decoder made here -> save_hf_checkpoint -> BloomModel.from_pretrained computes the
    same hidden states (the fused query_key_value written per head as (heads, 3, head_dim)),
    and load_backbone reads the same parameters back bit for bit."""
    decoder = _random_decoder()
    directory = save_hf_checkpoint(decoder, tmp_path / "ckpt")
    config = json.loads((directory / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("bloom", ["BloomModel"])
    reference = T.BloomModel.from_pretrained(directory).eval()
    ids, mask = _batch(5)
    errors = _max_errors(decoder(ids, mask).hidden_states,
                         _torch_hidden(reference, ids, mask).hidden_states, mask)
    assert max(errors) <= ATOL, errors
    loaded, _ = load_backbone(directory)
    assert loaded.config == decoder.config
    original = _params(decoder)
    for path, value in _params(loaded).items():
        np.testing.assert_array_equal(value, original[path], err_msg=str(path))


def test_hf_checkpoint_round_trips_tensor_for_tensor(tmp_path, bloom_checkpoints):
    source, _ = bloom_checkpoints(6)
    decoder, _ = load_backbone(source)
    directory = save_hf_checkpoint(decoder, tmp_path / "again")
    original = safetensors.numpy.load_file(source / "model.safetensors")
    written = safetensors.numpy.load_file(directory / "model.safetensors")
    assert set(written) == set(original)
    for name, value in written.items():
        np.testing.assert_array_equal(value, original[name], err_msg=name)


# Published parameter counts (bigscience model cards: 559,214,592 for bloom-560m ...).
PUBLISHED = {"bloom-560m": 559e6, "bloom-1b1": 1.07e9, "bloom-1b7": 1.72e9, "bloom-3b": 3.0e9,
             "bloom-7b1": 7.07e9, "bloom-176b": 176e9}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_sizes_and_logical_axes(name):
    """Shapes only (eval_shape): bloom-176b is checked without allocating 700 GB."""
    config = get_preset(name)
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=ShapeOnlyRngs()))
    leaves = jax.tree.leaves(nnx.state(abstract, nnx.Param),
                             is_leaf=lambda x: isinstance(x, nnx.Variable))
    counted = sum(int(np.prod(v.shape)) for v in leaves)
    message = (f"{name}: eval_shape {counted:,}, num_params {config.num_params():,}, "
               f"published {PUBLISHED[name]:,.0f}")
    assert counted == config.num_params(), message
    assert abs(counted / PUBLISHED[name] - 1) < 0.01, message
    for variable in leaves:
        axes = variable.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == len(variable.shape)
        assert set(axes) <= set(LOGICAL_AXES)
    attention = nnx.state(abstract, nnx.Param)["layers"]["attention"]
    assert attention["query_kernel"].get_metadata()["out_sharding"] == (
        "layers", "embed", "heads", "kv")
    assert attention["out_kernel"].get_metadata()["out_sharding"] == ("layers", "heads", "kv", "embed")
    assert attention["query_kernel"].shape == (config.num_layers, config.hidden_size,
                                               config.num_heads, config.head_dim)


def test_pretraining_languages():
    """BLOOM's 46 natural languages are 45 codes (Simplified and Traditional Chinese are both
    zh); 18 of XTREME's 40 target-task languages and 9 of XNLI's 15. XLM-R's card lists 93
    codes, all of XTREME's but Yoruba."""
    from xstilts_jax.tasks.catalog.xtreme import XNLI_LANGUAGES
    from xstilts_jax.tasks.registry import get_task, task_names

    xtreme = set().union(*(get_task(name).languages for name in task_names(role="target")))
    assert len(xtreme) == 40
    bloom = set(pretraining_languages("bloom-7b1"))
    assert len(BLOOM_LANGUAGES) == len(bloom) == 45 and "zh" in bloom
    assert sorted(bloom & xtreme) == ["ar", "bn", "en", "es", "eu", "fr", "hi", "id", "ml", "mr",
                                      "pt", "sw", "ta", "te", "ur", "vi", "yo", "zh"]
    assert sorted(bloom & set(XNLI_LANGUAGES)) == ["ar", "en", "es", "fr", "hi", "sw", "ur",
                                                   "vi", "zh"]
    xlmr = set(pretraining_languages("xlmr-large"))
    assert len(XLMR_LANGUAGES) == len(xlmr) == 93 and xtreme - xlmr == {"yo"}
    for name in PRESETS:
        expected = None if name in ("tiny", "bloom-tiny") else (
            BLOOM_LANGUAGES if name.startswith("bloom") else XLMR_LANGUAGES)
        assert pretraining_languages(name) == expected, name
    with pytest.raises(ValueError, match="unknown model preset 'bloom-9b'"):
        pretraining_languages("bloom-9b")
