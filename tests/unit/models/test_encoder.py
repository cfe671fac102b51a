"""Encoder structure: presets with the real shapes, logical axis names on every parameter, the
scanned blocks (same init and numerics as separate blocks, truncation, remat)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import scan_lengths, scan_params
from xstilts_jax.models.axes import LOGICAL_AXES
from xstilts_jax.models.encoder import (REMAT_POLICIES, Embeddings, Encoder, EncoderConfig,
                                        EncoderLayer)
from xstilts_jax.models.presets import PRESETS, ShapeOnlyRngs, get_preset


@pytest.mark.parametrize("name,millions", [
    # Published parameter counts (embedding included, no LM head / pooler).
    ("xlmr-base", 277.5), ("xlmr-large", 558.8), ("xlmr-xl", 3473.7), ("xlmr-xxl", 10692.4)])
def test_preset_sizes(name, millions):
    assert get_preset(name).num_params() / 1e6 == pytest.approx(millions, abs=0.1)


@pytest.mark.parametrize("name", ["tiny", "bloom-tiny"])
def test_shape_only_rngs_build_the_abstract_model_nnx_rngs_build(name):
    """What plans and checkpoint slots are built from: the same graph, shapes, dtypes and
    logical axes as with ``nnx.Rngs``, with LoRA adapters too."""
    from xstilts_jax.models import lora
    from xstilts_jax.models.presets import new_backbone

    config = get_preset(name)

    def abstract(rngs):
        def build():
            backbone = new_backbone(config, rngs=rngs())
            return lora.add_adapters(backbone, lora.LoRAConfig(rank=4), rngs())
        graphdef, state = nnx.split(nnx.eval_shape(build))
        leaves = jax.tree.leaves_with_path(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
        return graphdef, [(path, type(v), v.shape, v.dtype, v.get_metadata().get("out_sharding"))
                          for path, v in leaves]

    assert abstract(ShapeOnlyRngs) == abstract(lambda: nnx.Rngs(0))
    # Streams only: no private or special attribute (JAX would take one named
    # __jax_array__ for an array).
    assert not hasattr(ShapeOnlyRngs(), "__jax_array__")


@pytest.mark.parametrize("name", sorted(n for n, c in PRESETS.items()
                                         if isinstance(c, EncoderConfig)))
def test_every_param_has_logical_axes(name):
    """Shapes only (eval_shape): even xlmr-xxl is checked without allocating 43 GB."""
    config = get_preset(name)
    abstract = nnx.eval_shape(lambda: Encoder(config, rngs=ShapeOnlyRngs()))
    params = nnx.state(abstract, nnx.Param)
    leaves = jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert sum(int(np.prod(v.shape)) for v in leaves) == config.num_params()
    for variable in leaves:
        axes = variable.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == len(variable.shape)
        assert set(axes) <= set(LOGICAL_AXES)
    # Attention kernels are per head, so tensor parallelism can split 'heads'; the blocks'
    # parameters are stacked on a leading 'layers' axis (one entry per block).
    attention = params["layers"]["attention"]
    assert attention["query_kernel"].get_metadata()["out_sharding"] == (
        "layers", "embed", "heads", "kv")
    assert attention["out_kernel"].get_metadata()["out_sharding"] == ("layers", "heads", "kv", "embed")
    for variable in jax.tree.leaves(params["layers"], is_leaf=lambda x: isinstance(x, nnx.Variable)):
        assert variable.shape[0] == config.num_layers
        assert variable.get_metadata()["out_sharding"][0] == "layers"


def test_state_is_parameters_only():
    """No RNG streams or counters in the module: checkpoints hold weights and nothing else."""
    encoder = Encoder(get_preset("tiny"), rngs=nnx.Rngs(0))
    _, params, rest = nnx.split(encoder, nnx.Param, ...)
    assert not jax.tree.leaves(rest)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'xlmr-huge'"):
        get_preset("xlmr-huge")


def test_preset_overrides():
    assert get_preset("tiny", dtype="bfloat16").compute_dtype == np.dtype("bfloat16")
    assert get_preset("xlmr-large", remat="dots_saveable").remat == "dots_saveable"


def test_config_errors():
    with pytest.raises(ValueError, match=r"remat must be one of 'none', 'full', "
                                         r"'dots_saveable', got 'all'"):
        get_preset("tiny", remat="all")
    with pytest.raises(ValueError, match="num_layers must be at least 1, got 0"):
        get_preset("tiny", num_layers=0)


# --------------------------------------------------------------------------- scanned blocks


def _unrolled(config, ids, mask, dropout_rng=None, seed=0):
    """The encoder as it was before its blocks were stacked: separate modules, one Python loop
    over them, one dropout stream through the whole pass. The reference for the scan."""
    rngs = nnx.Rngs(seed)
    with nnx.use_eager_sharding(False):
        embeddings = Embeddings(config, rngs=rngs)
        layers = [EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)]
    drop = None if dropout_rng is None else nnx.Rngs(dropout=dropout_rng)
    x = embeddings(ids, np.zeros_like(ids), rngs=drop)
    bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
    hidden = [x]
    for layer in layers:
        x = layer(x, bias, rngs=drop)
        hidden.append(x)
    return layers, hidden


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 1000, size=(3, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    return np.where(mask > 0, ids, 1), mask


@pytest.mark.parametrize("pre_ln", [False, True])
def test_stacked_blocks_initialise_and_run_as_separate_blocks(pre_ln):
    """Same random parameters as separate blocks built in a loop (a from-scratch run starts
    where it did before), the same hidden states, and with dropout the same masks: the
    stream continues from block to block as over unrolled blocks."""
    config = get_preset("tiny", pre_layer_norm=pre_ln)
    ids, mask = _batch()
    encoder = Encoder(config, rngs=nnx.Rngs(0))
    layers, reference = _unrolled(config, ids, mask)
    stacked = dict(nnx.to_flat_state(nnx.state(encoder.layers)))
    for i, layer in enumerate(layers):
        for path, variable in nnx.to_flat_state(nnx.state(layer)):
            np.testing.assert_array_equal(np.asarray(stacked[path][...][i]), variable[...],
                                          err_msg=f"layer {i} {path}")
    out = encoder(ids, mask)
    # The last entry of a pre-LN model is the final LayerNorm's output (HF): not compared here.
    for i in range(config.num_layers if pre_ln else config.num_layers + 1):
        np.testing.assert_allclose(out.hidden_states[i], reference[i], atol=1e-6, rtol=0)
    key = jax.random.key(3)
    _, dropped = _unrolled(config, ids, mask, dropout_rng=key)
    got = encoder(ids, mask, dropout_rng=key).hidden_states
    for i in range(config.num_layers if pre_ln else config.num_layers + 1):
        np.testing.assert_allclose(got[i], dropped[i], atol=1e-6, rtol=0, err_msg=f"layer {i}")
    assert np.abs(np.asarray(got[1]) - np.asarray(out.hidden_states[1])).max() > 0.01  # dropout on


def test_num_layers_runs_only_the_first_blocks():
    config = get_preset("tiny", pre_layer_norm=True)
    encoder = Encoder(config, rngs=nnx.Rngs(1))
    ids, mask = _batch()
    full = encoder(ids, mask)
    one = encoder(ids, mask, num_layers=1)
    assert len(one.hidden_states) == 2
    np.testing.assert_allclose(one.hidden_states[1], full.hidden_states[1], atol=1e-6, rtol=0)
    # The final LayerNorm belongs to the last block's output only (HF's rule).
    np.testing.assert_array_equal(one.last_hidden_state, one.hidden_states[1])
    zero = encoder(ids, mask, num_layers=0)
    np.testing.assert_array_equal(zero.hidden_states[0], full.hidden_states[0])
    graphdef, state = nnx.split(encoder)
    for depth, scans in ((None, [2]), (2, [2]), (1, [1]), (0, [])):
        jaxpr = jax.make_jaxpr(lambda s: nnx.merge(graphdef, s)(ids, mask, num_layers=depth))(state)
        assert scan_lengths(jaxpr) == scans, depth
    with pytest.raises(ValueError, match=r"num_layers must be in 0\.\.2, got 3"):
        encoder(ids, mask, num_layers=3)


def test_blocks_are_unrolled_only_in_a_cpu_train_step():
    """On CPU devices a train step's blocks are unrolled (XLA:CPU copies a scan's stacked
    activations); a forward-only program keeps the loop (it compiles ~10x faster)."""
    from xstilts_jax.models.encoder import unrolled_on_cpu

    encoder = Encoder(get_preset("tiny"), rngs=nnx.Rngs(1))
    ids, mask = _batch()
    graphdef, state = nnx.split(encoder)

    def unroll_of_scans(fn):
        return [params["unroll"] for params in scan_params(jax.make_jaxpr(fn)(state))]

    def loss(s):
        return nnx.merge(graphdef, s)(ids, mask).last_hidden_state.sum()

    def train_grad(s):
        with unrolled_on_cpu():
            return jax.grad(loss)(s)

    assert jax.default_backend() == "cpu"
    assert unroll_of_scans(lambda s: nnx.merge(graphdef, s)(ids, mask).last_hidden_state) == [1]
    assert unroll_of_scans(jax.grad(loss)) == [1, 1]  # forward and backward loops
    assert unroll_of_scans(train_grad) == [2, 2]  # unroll=True: the length, 2 blocks


def test_remat_policies_give_the_same_gradients():
    """Remat changes what the backward pass recomputes, never its values."""
    ids, mask = _batch(1)
    results = {}
    for remat in REMAT_POLICIES:
        graphdef, state = nnx.split(Encoder(get_preset("tiny", remat=remat), rngs=nnx.Rngs(2)))

        def loss(s):
            out = nnx.merge(graphdef, s)(ids, mask, dropout_rng=jax.random.key(0))
            return jnp.sum(jnp.sin(out.last_hidden_state))

        text = str(jax.make_jaxpr(loss)(state))
        assert ("remat2[" in text) == (remat != "none")  # jax.checkpoint's primitive
        assert ("DotsSaveable" in text) == (remat == "dots_saveable")
        results[remat] = jax.jit(jax.value_and_grad(loss))(state)
    for remat in ("full", "dots_saveable"):
        np.testing.assert_allclose(results[remat][0], results["none"][0], rtol=1e-6)
        # Recomputed products round differently: equal to float32 precision of each tensor.
        # (The key bias's gradient is zero up to rounding, softmax being shift-invariant.)
        got, want = (dict(nnx.to_flat_state(results[r][1])) for r in (remat, "none"))
        for path in want:
            if path[-1] != "key_bias":
                a, b = np.asarray(got[path][...]), np.asarray(want[path][...])
                assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), (remat, path)
