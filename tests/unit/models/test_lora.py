"""LoRA adapters on the encoder: the closed-form parameter count, the base model at
initialisation, logical axes like their kernels, bf16 frozen weights, and the merged export
(equal outputs, an ordinary HF checkpoint that load_encoder reads back)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models import lora
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, MaskedLMHead, MultiTaskModel, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax.models.pretrained import load_encoder, save_hf_checkpoint

CONFIG = get_preset("tiny", hidden_dropout=0.0, attention_dropout=0.0)  # h 64, 4 heads, FFN 128


def _ids(batch: int = 3, length: int = 12) -> np.ndarray:
    ids = np.random.default_rng(0).integers(5, CONFIG.vocab_size, (batch, length)).astype(np.int32)
    ids[:, 0] = 0
    return ids


@nnx.jit
def _hidden_states(encoder, ids):
    """Every hidden state; jitted (a compiled program per model graph, not per primitive)."""
    return encoder(ids).hidden_states


def _adapted(config: lora.LoRAConfig, *, random_b: bool = False) -> Encoder:
    """A tiny random encoder with adapters; ``random_b``: B drawn too, so they change outputs."""
    encoder = lora.add_adapters(Encoder(CONFIG, rngs=nnx.Rngs(0)), config, nnx.Rngs(1))
    if random_b:
        for i, target in enumerate(encoder.lora.targets):
            b = encoder.lora.adapters
            for name in target.split("."):
                b = b[name]
            b = b["b"]
            b.set_value(0.05 * jax.random.normal(jax.random.key(i), b.shape))
    return encoder


def _closed_form(rank: int, targets: tuple[str, ...]) -> int:
    """rank * (d_in + d_out) per target kernel per layer; per-head kernels' d is heads * kv."""
    h, f = CONFIG.hidden_size, CONFIG.intermediate_size
    sizes = {"attention.query_kernel": (h, h), "attention.key_kernel": (h, h),
             "attention.value_kernel": (h, h), "attention.out_kernel": (h, h),
             "ffn.in_kernel": (h, f), "ffn.out_kernel": (f, h)}
    return CONFIG.num_layers * sum(rank * sum(sizes[t]) for t in targets)


@pytest.mark.parametrize("rank,targets", [
    (4, ()), (2, ("attention.query_kernel", "attention.value_kernel"))])
def test_trainable_count_is_the_closed_form(rank, targets):
    config = lora.LoRAConfig(rank=rank, targets=targets)
    encoder = _adapted(config)
    model = TaskModel(encoder, ClassificationHead(CONFIG, 3, rngs=nnx.Rngs(2)))
    h = CONFIG.hidden_size
    head = (h * h + h) + (h * 3 + 3)
    default = ("attention.query_kernel", "attention.key_kernel", "attention.value_kernel",
               "attention.out_kernel", "ffn.in_kernel", "ffn.out_kernel")
    trainable, total = lora.count_params(model)
    assert trainable == _closed_form(rank, targets or default) + head
    assert total == CONFIG.num_params() + _closed_form(rank, targets or default) + head
    assert set(encoder.lora.targets) == set(targets or default)


def test_full_model_trains_everything():
    model = TaskModel(Encoder(CONFIG, rngs=nnx.Rngs(0)), ClassificationHead(CONFIG, 3, rngs=nnx.Rngs(2)))
    assert lora.trainable_mask(model) is None
    trainable, total = lora.count_params(model)
    assert trainable == total


def test_every_head_of_a_mixture_trains():
    model = MultiTaskModel(_adapted(lora.LoRAConfig(rank=2)), {
        "nli": ClassificationHead(CONFIG, 3, rngs=nnx.Rngs(2)),
        "mlm": MaskedLMHead(CONFIG, rngs=nnx.Rngs(3))})
    mask = lora.trainable_mask(model)
    assert all(jax.tree.leaves(mask["heads"]))
    assert all(jax.tree.leaves(mask["encoder"]["lora"]))
    assert not any(jax.tree.leaves({k: v for k, v in mask["encoder"].items() if k != "lora"}))


def test_starts_as_the_base_model_and_adapters_change_it():
    ids = _ids()
    base = _hidden_states(Encoder(CONFIG, rngs=nnx.Rngs(0)), ids)
    adapted = _hidden_states(_adapted(lora.LoRAConfig(rank=4)), ids)
    for a, b in zip(adapted, base):
        np.testing.assert_array_equal(a, b)  # B = 0: bit for bit
    moved = _hidden_states(_adapted(lora.LoRAConfig(rank=4), random_b=True), ids)[-1]
    assert float(jnp.abs(moved - base[-1]).max()) > 1e-2


def test_truncated_depth_reads_the_adapted_layers():
    encoder = _adapted(lora.LoRAConfig(rank=4), random_b=True)
    ids = _ids()
    full = encoder(ids).hidden_states
    first = encoder(ids, num_layers=1).hidden_states
    np.testing.assert_allclose(first[1], full[1], atol=1e-6, rtol=0)


def test_adapters_carry_their_kernels_logical_axes():
    encoder = _adapted(lora.LoRAConfig(rank=4))
    adapters = nnx.state(encoder.lora)["adapters"]
    axes = lambda v: v.get_metadata()["out_sharding"]  # noqa: E731
    query, out = adapters["attention"]["query_kernel"], adapters["attention"]["out_kernel"]
    assert axes(query["a"]) == ("layers", "embed", None)
    assert axes(query["b"]) == ("layers", None, "heads", "kv")
    assert query["a"].shape == (2, 64, 4) and query["b"].shape == (2, 4, 4, 16)
    assert axes(out["a"]) == ("layers", "heads", "kv", None)
    assert axes(out["b"]) == ("layers", None, "embed")
    assert axes(adapters["ffn"]["in_kernel"]["b"]) == ("layers", None, "mlp")
    # PEFT's default: A kaiming-uniform (bound 1 / sqrt(fan_in)), B zero.
    a = np.asarray(out["a"][...])
    assert 0.5 / 8 < np.abs(a).max() <= 1 / 8  # fan_in = heads * kv = 64
    assert not np.asarray(out["b"][...]).any()


def test_frozen_weights_in_bf16():
    config = lora.LoRAConfig(rank=4, frozen_dtype="bfloat16")
    encoder = _adapted(config, random_b=True)
    dtypes = {k: v.dtype for k, v in nnx.to_flat_state(nnx.state(encoder))}
    assert {str(d) for path, d in dtypes.items() if path[0] != "lora"} == {"bfloat16"}
    assert {str(d) for path, d in dtypes.items() if path[0] == "lora"} == {"float32"}
    ids = _ids()
    out = _hidden_states(encoder, ids)[-1]
    assert out.dtype == jnp.float32  # the compute dtype is the config's, not the storage's
    reference = _hidden_states(_adapted(lora.LoRAConfig(rank=4), random_b=True), ids)[-1]
    np.testing.assert_allclose(out, reference, atol=0.1)  # bf16 rounding of the weights only


def test_merged_export_equals_the_adapted_model(tmp_path):
    encoder = _adapted(lora.LoRAConfig(rank=4, frozen_dtype="bfloat16"), random_b=True)
    merged = lora.merge(encoder)
    assert merged.lora is None and encoder.lora is not None  # a copy; the original keeps them
    assert {str(v.dtype) for _, v in nnx.to_flat_state(nnx.state(merged))} == {"float32"}
    ids = _ids()
    adapted_states = _hidden_states(encoder, ids)
    for a, m in zip(adapted_states, _hidden_states(merged, ids)):
        np.testing.assert_allclose(m, a, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="has LoRA adapters.*lora.merge"):
        save_hf_checkpoint(encoder, tmp_path / "unmerged")  # would drop the adapters silently
    save_hf_checkpoint(merged, tmp_path / "merged")
    loaded, _ = load_encoder(tmp_path / "merged", hidden_dropout=0.0, attention_dropout=0.0)
    assert loaded.lora is None
    for a, m in zip(adapted_states, _hidden_states(loaded, ids)):
        np.testing.assert_allclose(m, a, atol=1e-5, rtol=0)


def test_merge_of_a_plain_backbone_is_a_copy():
    encoder = Encoder(CONFIG, rngs=nnx.Rngs(0))
    merged = lora.merge(encoder)
    for (_, a), (_, b) in zip(nnx.to_flat_state(nnx.state(encoder)),
                              nnx.to_flat_state(nnx.state(merged))):
        np.testing.assert_array_equal(a[...], b[...])


def test_works_on_an_abstract_model():
    """A planner builds the adapted model from shapes alone."""
    abstract = nnx.eval_shape(lambda: lora.add_adapters(
        Encoder(CONFIG, rngs=nnx.Rngs(0)), lora.LoRAConfig(rank=4, frozen_dtype="bfloat16"),
        nnx.Rngs(1)))
    query = nnx.state(abstract.lora)["adapters"]["attention"]["query_kernel"]
    assert query["a"].shape == (2, 64, 4)
    assert nnx.state(abstract.layers)["ffn"]["in_kernel"].dtype == jnp.bfloat16


def test_settings_from_the_cell_config_and_errors():
    assert lora.LoRAConfig.from_model_config({"lora_rank": 0}) is None
    assert lora.LoRAConfig.from_model_config({}) is None
    config = lora.LoRAConfig.from_model_config(dict(
        lora_rank=8, lora_alpha=16, lora_targets=["ffn.in_kernel"], frozen_dtype="bfloat16"))
    assert config == lora.LoRAConfig(rank=8, alpha=16.0, targets=("ffn.in_kernel",),
                                     frozen_dtype="bfloat16")
    assert config.scale == 2.0
    assert lora.finetuning_label(None) == "full"
    assert lora.finetuning_label(lora.LoRAConfig(rank=8)) == "lora-r8-a8"
    assert lora.finetuning_label(config) == "lora-r8-a16-ffn.in_kernel-frozen-bf16"
    with pytest.raises(ValueError, match="needs LoRA"):
        lora.LoRAConfig.from_model_config({"lora_rank": 0, "frozen_dtype": "bfloat16"})
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        lora.LoRAConfig(rank=-1)
    with pytest.raises(ValueError, match="frozen_dtype"):
        lora.LoRAConfig(frozen_dtype="float16")
    with pytest.raises(ValueError, match="tuple of kernel paths"):
        lora.LoRAConfig(targets="attention.query_kernel")
    with pytest.raises(ValueError, match=r"\['attention.query'\] are not projection kernels.*"
                                         r"attention.key_kernel"):
        _adapted(lora.LoRAConfig(targets=("attention.query",)))
    with pytest.raises(ValueError, match="name a kernel twice"):
        _adapted(lora.LoRAConfig(targets=("ffn.in_kernel", "ffn.in_kernel")))
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        lora.add_adapters(_adapted(lora.LoRAConfig()), lora.LoRAConfig(), nnx.Rngs(0))
    with pytest.raises(ValueError, match="does not support LoRA"):
        lora.add_adapters(ClassificationHead(CONFIG, 3, rngs=nnx.Rngs(0)), lora.LoRAConfig(),
                          nnx.Rngs(0))
