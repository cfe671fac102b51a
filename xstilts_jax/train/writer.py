"""Run logs: one JSON line per logged step or evaluation, plus TensorBoard event files."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

from xstilts_jax.sharding import is_primary_host


class MetricWriter:
    """Appends to ``metrics.jsonl`` and writes TensorBoard scalars under ``tb/<phase>``.

    On resume, ``truncate_after(phase, step)`` drops the lines a killed run wrote after its
    last checkpoint, so the log reads as if the run had never stopped. On several hosts only
    process 0 writes (the others would append the same lines to a shared file).
    """

    def __init__(self, workdir: str | pathlib.Path, phase: str, *, tensorboard: bool = True):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.phase = phase
        self._tb = None
        self.enabled = is_primary_host()
        if tensorboard and self.enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tb" / phase), flush_secs=30)

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line and not (json.loads(line).get("phase") == self.phase
                                 and json.loads(line).get("step", -1) > step)]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"phase": self.phase, "step": int(step), "kind": kind,
                  **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep it visible
    return value
