"""The parameter fingerprint (``rundir.params_sha256``): the same however the parameters are
split over devices, and different when any element changes or moves; computed from each
device's own shard (nothing is gathered)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xstilts_jax.experiments import rundir
from xstilts_jax.experiments.rundir import params_sha256


def _tree():
    rng = np.random.default_rng(0)
    return {"layer": {"kernel": rng.standard_normal((16, 24)).astype(np.float32),
                      "bias": rng.standard_normal(24).astype(np.float32)},
            "scale": np.float32(3.0), "ids": np.arange(10, dtype=np.int32),
            "half": jnp.asarray(rng.standard_normal((4, 6)), jnp.bfloat16)}


def test_the_same_on_one_device_and_split_over_eight():
    tree = _tree()
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("x", "y"))
    specs = {"layer": {"kernel": P("x", "y"), "bias": P("y")}, "scale": P(), "ids": P(),
             "half": P(None, "y")}
    split = jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), tree, specs)
    assert params_sha256(split) == params_sha256(tree) == params_sha256(
        jax.tree.map(jnp.asarray, tree))


def test_any_changed_or_moved_element_changes_it():
    tree = _tree()
    reference = params_sha256(tree)
    kernel = tree["layer"]["kernel"]
    one_ulp = kernel.copy()
    one_ulp[3, 5] = np.nextafter(one_ulp[3, 5], np.float32(np.inf))
    swapped = kernel.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    transposed_shape = kernel.reshape(24, 16)  # same bytes, another shape
    for changed in (one_ulp, swapped, transposed_shape):
        assert params_sha256({**tree, "layer": {**tree["layer"], "kernel": changed}}) != reference
    renamed = {**tree, "layer": {"w": kernel, "bias": tree["layer"]["bias"]}}
    assert params_sha256(renamed) != reference
    assert params_sha256({**tree, "ids": tree["ids"].astype(np.int64)}) != reference


def test_each_shard_is_hashed_where_it_lives(monkeypatch):
    """Only shards of the devices' own size are read (replica 0 of each), never a whole
    parameter: each of the 8 devices' 2 x 24 rows of a 16 x 24 kernel once."""
    seen = []
    original = rundir._element_sum
    monkeypatch.setattr(rundir, "_element_sum",
                        lambda block, shape, index: seen.append(block.shape) or
                        original(block, shape, index))
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(8, 1), ("x", "y"))
    kernel = jax.device_put(_tree()["layer"]["kernel"], NamedSharding(mesh, P("x")))
    params_sha256({"kernel": kernel})
    assert seen == [(2, 24)] * 8
    seen.clear()
    params_sha256({"kernel": jax.device_put(kernel, NamedSharding(mesh, P()))})  # replicated
    assert seen == [(16, 24)]  # one replica counted


def test_elements_of_an_unknown_width_are_refused():
    with pytest.raises(TypeError, match="cannot fingerprint elements of"):
        params_sha256({"x": np.zeros(3, np.dtype("V3"))})
