"""Run-directory rules: atomic JSON writes, a directory that belongs to one config, phase keys.

A cell's directory holds ``config.json`` (refused on resume under another config),
``results.json`` and ``predictions/``. A phase's directory holds ``phase.json`` (what the
phase is: model, data, its config section and seed, the phase before it), ``ckpt/`` and
``labels.json`` where its labels came from its data. Phases live in the cell's directory by
name (``WORKDIR/intermediate``), or, shared between cells, in ``PHASES/<key>/``: the key is a
hash of ``phase.json``, so cells whose phases are the same train them once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import jax.experimental.multihost_utils
import numpy as np

from xstilts_jax.config import ConfigError
from xstilts_jax.sharding import is_primary_host
from xstilts_jax.storage import PathLike, as_path, write_atomic

CONFIG_FILE = "config.json"
PHASE_FILE = "phase.json"
LABELS_FILE = "labels.json"  # label sets a phase made from its training data (CCG supertags)
RESULTS_FILE = "results.json"


def write_json_atomic(path: PathLike, value: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one
    (on process 0 only: hosts of a multi-host run share the run directory)."""
    if is_primary_host():
        write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: PathLike) -> Any:
    """The JSON value in ``path`` (a local path or a ``gs://`` URL)."""
    return json.loads(as_path(path).read_text())


def as_json(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(value, default=str))


# Config sections that are not part of the experiment: fault injection and checksums
# (``debug``), and what `xstilts plan` assumes about prices and utilisation (``plan``).
NOT_EXPERIMENT = ("debug", "plan")


def experiment_fields(resolved: dict) -> dict:
    """The config as JSON without the sections that do not change what a run computes."""
    return {k: v for k, v in as_json(resolved).items() if k not in NOT_EXPERIMENT}


def check_resume(directory: PathLike, resolved: dict, *, file: str = CONFIG_FILE,
                 what: str = "run directory") -> None:
    """A directory belongs to one config: resuming under another would mix two runs. The
    first run writes ``file``; later ones must match it, except in ``NOT_EXPERIMENT``."""
    path = as_path(directory) / file
    resolved = experiment_fields(resolved)
    if path.exists():
        previous = read_json(path)
        if previous != resolved:
            changed = sorted(k for k in set(previous) | set(resolved)
                             if previous.get(k) != resolved.get(k))
            raise ConfigError(f"{path}: this {what} was started with a different config "
                              f"(differs in: {', '.join(changed)}); use a new --workdir")
    else:
        write_json_atomic(path, resolved)


def phase_key(identity: dict) -> str:
    """The content key of a phase: a hash of what it is (``phase.json`` without the key)."""
    text = json.dumps(as_json(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def params_sha256(params) -> str:
    """Fingerprint of a parameter tree (paths, shapes, dtypes and values), to check runs are
    bit-identical, computed from each host's own shards: no host gathers a parameter.

    Each element contributes ``mix(mix(global flat index) ^ its bits)`` (splitmix64), summed
    modulo 2**64 per parameter: a sum does not depend on how the parameter is split, so the
    fingerprint is the same on one device, on a mesh and over several hosts. Each shard is
    counted once (replica 0); hosts exchange only these sums (8 bytes a parameter). A changed
    or moved element changes its term, and the sum, but for a 2**-64 chance. The sums, with
    each path, shape and dtype in path order, go through sha256."""
    leaves = sorted(jax.tree_util.tree_leaves_with_path(params),
                    key=lambda x: jax.tree_util.keystr(x[0]))
    sums = np.zeros(len(leaves), np.uint64)
    for i, (_, leaf) in enumerate(leaves):
        if isinstance(leaf, jax.Array):
            parts = [_element_sum(np.asarray(shard.data), leaf.shape, shard.index)
                     for shard in leaf.addressable_shards if shard.replica_id == 0]
        else:
            leaf = np.asarray(leaf)
            parts = [_element_sum(leaf, leaf.shape, (slice(None),) * leaf.ndim)]
        sums[i] = np.sum(np.asarray(parts, np.uint64), dtype=np.uint64)  # wraps mod 2**64
    if jax.process_count() > 1:  # every host's sums of its own shards, added up
        gathered = jax.experimental.multihost_utils.process_allgather(sums.view(np.uint32))
        sums = np.asarray(gathered).reshape(jax.process_count(), -1).copy().view(
            np.uint64).sum(axis=0, dtype=np.uint64)
    digest = hashlib.sha256()
    for (path, leaf), total in zip(leaves, sums):
        digest.update(f"{jax.tree_util.keystr(path)}:{np.dtype(leaf.dtype).name}:"
                      f"{tuple(leaf.shape)}:{int(total)};".encode())
    return digest.hexdigest()


_ELEMENTS_AT_ONCE = 1 << 22  # rows of a shard hashed together: bounded temporaries


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _element_sum(block: np.ndarray, shape: tuple, index: tuple) -> np.uint64:
    """Sum over ``block`` (the part of a ``shape`` array at ``index``, a tuple of slices) of
    mix(mix(global flat index) ^ the element's bits), modulo 2**64."""
    if block.size == 0:
        return np.uint64(0)
    if block.dtype.itemsize not in (1, 2, 4, 8):
        raise TypeError(f"cannot fingerprint elements of {block.dtype} ({block.dtype.itemsize} bytes)")
    bits = np.ascontiguousarray(block).view(f"u{block.dtype.itemsize}")
    starts = [sl.indices(n)[0] for sl, n in zip(index, shape)]
    strides = np.cumprod((1, *shape[::-1]))[:-1][::-1].astype(np.uint64)
    # The global flat index of each element: sum over axes of (start + i) * stride.
    tail = np.zeros(block.shape[1:], np.uint64)
    for axis in range(1, block.ndim):
        positions = (np.arange(block.shape[axis], dtype=np.uint64)
                     + np.uint64(starts[axis])) * strides[axis]
        tail = tail + positions.reshape((-1,) + (1,) * (block.ndim - 1 - axis))
    rows_at_once = max(1, _ELEMENTS_AT_ONCE // max(1, tail.size))
    total = np.uint64(0)
    with np.errstate(over="ignore"):
        for first in range(0, block.shape[0] if block.ndim else 1, rows_at_once):
            if block.ndim:
                rows = np.arange(first, min(first + rows_at_once, block.shape[0]),
                                 dtype=np.uint64)
                flat = ((rows + np.uint64(starts[0])) * strides[0]).reshape(
                    (-1,) + (1,) * (block.ndim - 1)) + tail
                part = bits[first:first + len(rows)]
            else:
                flat, part = np.zeros((), np.uint64), bits
            terms = _mix(_mix(flat) ^ part.astype(np.uint64))
            total = total + terms.sum(dtype=np.uint64)
    return np.uint64(total)


def is_phase_dir(path: PathLike) -> bool:
    """A trained phase: a best checkpoint (``ckpt/best``) and what it is (``phase.json``)."""
    path = as_path(path)
    return (path / "ckpt" / "best").is_dir() and (path / PHASE_FILE).is_file()


__all__ = ["CONFIG_FILE", "LABELS_FILE", "PHASE_FILE", "RESULTS_FILE", "as_json", "check_resume",
           "is_phase_dir", "params_sha256", "phase_key", "read_json", "write_json_atomic"]
