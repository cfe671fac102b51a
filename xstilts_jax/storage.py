"""Run directories on a local disk or in a bucket (``gs://``), through ``etils.epath``.

A sweep's run directory is the only state its workers share, so on a cluster it lives on
shared storage: an NFS path, or a bucket that orbax (which uses ``epath`` and TensorStore)
writes checkpoints to natively. Everything else the run writes goes through these helpers,
which keep ``gs://bucket/...`` intact where ``pathlib.Path`` would turn it into ``gs:/bucket``.
``epath`` reads ``gs://`` through ``gcsfs`` (the ``gcs`` extra).

Object stores differ from disks in three ways the writers respect: an object is written whole
(so a write is already atomic: no temporary file and rename), there is no append (logs are
rewritten whole, at checkpoints), and there are no file locks (each cell writes its own files).
"""

from __future__ import annotations

import os
import tempfile

from etils import epath

PathLike = str | os.PathLike


def as_path(path: PathLike) -> epath.Path:
    """``path`` as an ``epath.Path``: a local path, or a ``gs://`` (``s3://``...) URL kept whole."""
    return path if isinstance(path, epath.Path) else epath.Path(path)


def is_local(path: PathLike) -> bool:
    """True for a path on this machine's file system, False for a URL (``gs://bucket/...``)."""
    return "://" not in os.fspath(path)


def write_atomic(path: PathLike, data: bytes | str) -> None:
    """Write a whole file so that readers see the old one or the new one, never half of one.

    Locally: a temporary file beside it, then ``os.replace``. In a bucket an object upload is
    atomic already. The parent directory is created."""
    path = as_path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not is_local(path):
        path.write_bytes(payload)
        return
    local = os.fspath(path)
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(local) or ".",
                                     prefix=f".{os.path.basename(local)}.", delete=False) as f:
        f.write(payload)
        tmp = f.name
    os.replace(tmp, local)


__all__ = ["PathLike", "as_path", "is_local", "write_atomic"]
