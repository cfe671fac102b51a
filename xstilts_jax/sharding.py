"""Device mesh and the logical-axis rules that place parameters, batches and activations on it.

Parameters name their axes logically (``vocab, embed, heads, kv, mlp`` ...; see
``models/encoder.py``); a short rules table maps each logical name to mesh axes
(``data``, ``fsdp``, ``tensor``). The trainer never hard-codes a placement: changing the
mesh shape in the config moves from 1 CPU to data parallel, FSDP or tensor parallel.

Activations have their own logical names (``act_batch, act_length, act_embed`` ..., MaxText
style), pinned by ``constrain`` inside a step traced under ``activation_sharding``. Without
them XLA propagates the parameters' FSDP sharding (embed over ``fsdp``) into the hidden
states and reshards them back to the batch sharding by replicating ("involuntary full
rematerialization").
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from typing import Any, Iterator, Mapping, Sequence

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
    ("layers", None),
    # Activations: the batch over the data axes, embed replicated (all-gathered FSDP weights
    # meet whole hidden vectors), heads / FFN hidden / vocabulary logits over tensor.
    ("act_batch", ("data", "fsdp")),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv", None),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)


def rules_table(rules: Sequence[Sequence[Any]]) -> tuple[tuple[str, Any], ...]:
    """``config.mesh.rules`` as the rules functions take them: ``(logical name, mesh axes)``
    pairs, the axes None, one mesh axis or a tuple of them (lists, as JSON gives them back,
    become tuples). A ValueError names the entry that is not so."""
    table = []
    for i, entry in enumerate(rules):
        if isinstance(entry, (str, bytes)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise ValueError(f"mesh.rules[{i}] = {entry!r}: expected (logical axis name, mesh "
                             f"axes)")
        name, axes = entry
        axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
        for axis in (axes if isinstance(axes, tuple) else () if axes is None else (axes,)):
            if axis not in MESH_AXES:
                raise ValueError(f"mesh.rules[{i}] = {entry!r}: {axis!r} is not a mesh axis "
                                 f"({', '.join(MESH_AXES)})")
        table.append((name, axes))
    names = [name for name, _ in table]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"mesh.rules names {', '.join(repeated)} more than once")
    return tuple(table)


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
    try:
        return jax.make_mesh(tuple(sizes), MESH_AXES,
                             axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)
    except NotImplementedError:
        # A TPU torus whose physical axes no product of mesh sizes matches (fsdp 32 x tensor 2
        # on a 4x4x4 slice): split a physical axis between two mesh axes, as MaxText allows.
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(tuple(sizes), devices,
                                             allow_split_physical_axes=True)
        return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


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
    """Leading (batch) dimension over the mesh axes the ``batch`` rule names (one axis or a
    tuple), the rest replicated."""
    target = dict(rules).get("batch")
    batch_axes = tuple(a for a in ((target,) if isinstance(target, str) else target or ())
                       if mesh.shape[a] > 1)
    lead = batch_axes[0] if len(batch_axes) == 1 else (batch_axes or None)
    return NamedSharding(mesh, PartitionSpec(lead, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def is_primary_host() -> bool:
    """Whether this process writes the run's files: hosts of a multi-host run share one run
    directory, so only process 0 writes logs, predictions and results."""
    return jax.process_index() == 0


def put(tree, shardings):
    """``jax.device_put`` of a tree that every process holds whole (e.g. loaded parameters).

    On several processes, device_put checks each host value against the other processes by
    gathering it whole from all of them (``multihost_utils.assert_equal``): one compiled
    all-gather per array shape, and every host briefly holding N copies of every tensor.
    Here each process cuts its own devices' shards from its own copy instead. Arrays already
    spread over the processes (a previous phase's parameters) are resharded by device_put.
    """
    def one(x, sharding):
        if sharding.is_fully_addressable or (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return jax.device_put(x, sharding)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree, shardings)


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh, rules=DEFAULT_RULES) -> dict[str, jax.Array]:
    """Device arrays of the global batch from this host's rows (multi-host ready).

    On one host the rows are the whole batch; on N hosts each passes its own rows,
    ``host_slice(batch, mesh)``.
    """
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim, rules), v)
            for k, v in local.items()}


def host_slice(batch: Mapping[str, np.ndarray], mesh: Mesh, rules=DEFAULT_RULES) -> dict[str, np.ndarray]:
    """This process's rows of a global batch: what ``global_batch`` expects from it.

    The rows a process feeds are those its own devices hold under ``batch_sharding``, in
    increasing order (``make_array_from_process_local_data`` maps them so). They are not a
    contiguous 1/N block when the mesh interleaves the hosts' devices along the data axes.
    On one process this is the whole batch.
    """
    out = {}
    for key, value in batch.items():
        n = value.shape[0]
        indices = batch_sharding(mesh, value.ndim, rules).addressable_devices_indices_map(value.shape)
        blocks = sorted({(index[0].start or 0, n if index[0].stop is None else index[0].stop)
                         for index in indices.values()})
        out[key] = np.concatenate([value[start:stop] for start, stop in blocks])
    return out


def feed(batch: Mapping[str, np.ndarray], mesh: Mesh, rules=DEFAULT_RULES) -> dict[str, jax.Array]:
    """The global batch, which every host computes whole, as device arrays: each host puts
    only its own rows (``host_slice``) on its own devices. The training loop's one entry."""
    return global_batch(host_slice(batch, mesh, rules), mesh, rules)


_ACTIVATIONS: contextvars.ContextVar[tuple[Mesh, tuple] | None] = contextvars.ContextVar(
    "xstilts_activation_sharding", default=None)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules=DEFAULT_RULES) -> Iterator[None]:
    """Trace the model inside this to pin its activations to ``mesh`` by ``rules``.

    A context rather than arguments, so the model's signature stays mesh-free: outside it
    (``xstilts embed``, parity tests) ``constrain`` does nothing.
    """
    token = _ACTIVATIONS.set((mesh, tuple(rules)))
    try:
        yield
    finally:
        _ACTIVATIONS.reset(token)


def activation_mesh() -> Mesh | None:
    """The mesh of the enclosing ``activation_sharding``, or None."""
    context = _ACTIVATIONS.get()
    return None if context is None else context[0]


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """``with_sharding_constraint`` by logical names inside ``activation_sharding``; else x.

    Only placement changes, never values.
    """
    context = _ACTIVATIONS.get()
    if context is None:
        return x
    mesh, rules = context
    spec = logical_to_spec(logical_axes, x.shape, mesh, rules)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
