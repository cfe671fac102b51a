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
    """Fingerprint of a parameter tree (values and paths), to check runs are bit-identical."""
    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(params),
                             key=lambda x: jax.tree_util.keystr(x[0])):
        digest.update(jax.tree_util.keystr(path).encode())
        if not leaf.is_fully_addressable:  # sharded over several hosts: gather it first
            leaf = jax.experimental.multihost_utils.process_allgather(leaf, tiled=True)
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()


def is_phase_dir(path: PathLike) -> bool:
    """A trained phase: a best checkpoint (``ckpt/best``) and what it is (``phase.json``)."""
    path = as_path(path)
    return (path / "ckpt" / "best").is_dir() and (path / PHASE_FILE).is_file()


__all__ = ["CONFIG_FILE", "LABELS_FILE", "PHASE_FILE", "RESULTS_FILE", "as_json", "check_resume",
           "is_phase_dir", "params_sha256", "phase_key", "read_json", "write_json_atomic"]
