"""Device mesh and the logical-axis rules that place parameters and batches on it.

Parameters name their axes logically (``vocab, embed, heads, kv, mlp`` ...; see
``models/encoder.py``); a short rules table maps each logical name to mesh axes
(``data``, ``fsdp``, ``tensor``). The trainer never hard-codes a placement: changing the
mesh shape in the config moves from 1 CPU to data parallel, FSDP or tensor parallel.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axes (a tuple shards over several). Anything unnamed is replicated.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv", None),
    ("mlp", "tensor"),
    ("positions", None),
    ("types", None),
    ("norm", None),
    ("classes", None),
)


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with axes (data, fsdp, tensor); one size may be -1 (all remaining devices).

    Axes are Auto (jit propagates shardings), not jax.make_mesh's Explicit default.
    """
    devices = list(jax.devices() if devices is None else devices)
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"mesh.shape has unknown axes {sorted(unknown)}; expected {MESH_AXES}")
    sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh.shape {dict(shape)}: at most one axis may be -1")
    known = math.prod(s for s in sizes if s != -1)
    if any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh.shape {dict(shape)}: sizes must be positive or -1")
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"mesh.shape {dict(shape)}: {len(devices)} devices are not divisible by {known}")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(f"mesh.shape {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                         f"found {len(devices)}")
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                         devices=devices)


def logical_to_spec(logical_axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Sequence[tuple[str, Any]] = DEFAULT_RULES) -> PartitionSpec:
    """PartitionSpec for an array with these logical axes.

    A mesh axis is used at most once per array, axes of size 1 are left out, and a dimension
    that the mesh axes do not divide evenly is replicated (logged), so any checkpoint shape
    fits any mesh.
    """
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name, dim in zip(logical_axes, shape, strict=True):
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
        size = math.prod(mesh.shape[a] for a in axes)
        if axes and dim % size:
            log.info("replicating logical axis %r (size %d): not divisible by mesh axes %s (%d)",
                     name, dim, axes, size)
            axes = ()
        used.update(axes)
        spec.append(axes[0] if len(axes) == 1 else (axes or None))
    return PartitionSpec(*spec)


def shardings_from_metadata(abstract_state, mesh: Mesh, rules=DEFAULT_RULES):
    """NamedShardings for an nnx State, from each Variable's ``out_sharding`` logical names."""
    from flax import nnx

    def one(variable):
        axes = variable.get_metadata().get("out_sharding") or (None,) * len(variable.shape)
        return variable.replace(NamedSharding(mesh, logical_to_spec(axes, variable.shape, mesh, rules)))

    return jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, ndim: int, rules=DEFAULT_RULES) -> NamedSharding:
    """Leading (batch) dimension over the data axes, the rest replicated."""
    batch_axes = tuple(a for a in (dict(rules).get("batch") or ()) if mesh.shape[a] > 1)
    lead = batch_axes[0] if len(batch_axes) == 1 else (batch_axes or None)
    return NamedSharding(mesh, PartitionSpec(lead, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh, rules=DEFAULT_RULES) -> dict[str, jax.Array]:
    """Device arrays of the global batch from this host's slice (multi-host ready).

    On one host the slice is the whole batch; on N hosts each passes its 1/N of the rows.
    """
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim, rules), v)
            for k, v in local.items()}
