"""Run logs: one JSON line per logged step or evaluation, plus TensorBoard event files."""

from __future__ import annotations

import io
import json
import math
from typing import Any, Mapping

from xstilts_jax.sharding import is_primary_host
from xstilts_jax.storage import PathLike, as_path, is_local


class MetricWriter:
    """Appends to ``metrics.jsonl`` and writes TensorBoard scalars under ``tb/<phase>``.

    On resume, ``truncate_after(phase, step)`` drops the lines a killed run wrote after its
    last checkpoint, so the log reads as if the run had never stopped. On several hosts only
    process 0 writes (the others would append the same lines to a shared file).

    In a bucket (``gs://``), where objects cannot be appended to, the log is kept in memory
    and written whole by ``flush()``, which the loop calls with every checkpoint: the log in
    the bucket then always ends where a resumed run starts.
    """

    def __init__(self, workdir: PathLike, phase: str, *, tensorboard: bool = True):
        self.path = as_path(workdir) / "metrics.jsonl"
        self.phase = phase
        self.local = is_local(self.path)
        self._lines: list[str] | None = None  # the whole log, kept for a bucket
        self._tb = None
        self.enabled = is_primary_host()
        if not self.enabled:
            return
        if not self.local:
            self._lines = self.path.read_text().splitlines() if self.path.exists() else []
        if tensorboard:
            from tensorboardX import SummaryWriter

            if not self.local:
                _register_tensorboard_bucket_writer()
            self._tb = SummaryWriter(str(as_path(workdir) / "tb" / phase), flush_secs=30)

    def truncate_after(self, step: int) -> None:
        if not self.enabled:
            return
        if self._lines is None and not self.path.exists():
            return
        lines = self._lines if self._lines is not None else self.path.read_text().splitlines()
        kept = [line for line in lines
                if line and not (json.loads(line).get("phase") == self.phase
                                 and json.loads(line).get("step", -1) > step)]
        if self._lines is not None:
            self._lines = kept
            self.flush()
        else:
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"phase": self.phase, "step": int(step), "kind": kind,
                  **{k: _jsonable(v) for k, v in values.items()}}
        if self._lines is not None:
            self._lines.append(json.dumps(record))
        else:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def flush(self) -> None:
        """Write what is logged so far where it can be read (a no-op on a local disk, where
        every line is appended as it comes)."""
        if not self.enabled:
            return
        if self._lines is not None:
            self.path.write_text("".join(line + "\n" for line in self._lines))
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self.flush()
        if self._tb is not None:
            self._tb.close()


class _BucketEventFile:
    """A TensorBoard event file in a bucket: bytes kept in memory, the object rewritten whole
    at each flush (tensorboardX's own ``gs://`` writer needs google-cloud-storage's client
    and credentials of its own; this one goes wherever ``epath`` does)."""

    def __init__(self, path: str):
        self.path = as_path(path)
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buffer.write(data)

    def flush(self) -> None:
        self.path.write_bytes(self.buffer.getvalue())

    def close(self) -> None:
        self.flush()


class _BucketEventFiles:
    def open(self, path: str) -> _BucketEventFile:
        return _BucketEventFile(path)

    def directory_check(self, path: str) -> None:
        pass  # a bucket has no directories to create


def _register_tensorboard_bucket_writer() -> None:
    from tensorboardX import record_writer

    for scheme in ("gs", "s3"):
        record_writer.register_writer_factory(scheme, _BucketEventFiles())


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep it visible
    return value
