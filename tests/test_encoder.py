"""Encoder structure: presets with the real shapes, logical axis names on every parameter."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from xstilts_jax.models.axes import LOGICAL_AXES
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.presets import PRESETS, get_preset


@pytest.mark.parametrize("name,millions", [
    # Published parameter counts (embedding included, no LM head / pooler).
    ("xlmr-base", 277.5), ("xlmr-large", 558.8), ("xlmr-xl", 3473.7), ("xlmr-xxl", 10692.4)])
def test_preset_sizes(name, millions):
    assert get_preset(name).num_params() / 1e6 == pytest.approx(millions, abs=0.1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_param_has_logical_axes(name):
    """Shapes only (eval_shape): even xlmr-xxl is checked without allocating 43 GB."""
    config = get_preset(name)
    abstract = nnx.eval_shape(lambda: Encoder(config, rngs=nnx.Rngs(0)))
    params = nnx.state(abstract, nnx.Param)
    leaves = jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert sum(int(np.prod(v.shape)) for v in leaves) == config.num_params()
    for variable in leaves:
        axes = variable.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == len(variable.shape)
        assert set(axes) <= set(LOGICAL_AXES)
    # Attention kernels are per head, so tensor parallelism can split 'heads'.
    attention = params["layers"][0]["attention"]
    assert attention["query_kernel"].get_metadata()["out_sharding"] == ("embed", "heads", "kv")
    assert attention["out_kernel"].get_metadata()["out_sharding"] == ("heads", "kv", "embed")


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
