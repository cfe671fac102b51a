"""The results store of a sweep: one typed row per (cell, target task, language), and each
row's per-example statistics, under ``DIR/store/``:

    scores.jsonl            a JSON object a line (:class:`ScoreRow`), appended cell by cell
    examples/<cell>.npz     "<task>/<language>" -> float64 [examples, k] (``metrics.STAT_KINDS``)

JSON lines, not Parquet or SQLite: a finished cell appends its rows in one write (a torn last
line from a kill is detected and ignored, and ``reindex`` rebuilds the store), the file needs no
library beyond the standard one, ``pandas.read_json(path, lines=True)`` loads it as a frame,
and it reads fine over ``gs://`` with ``etils.epath``. The per-example arrays, which are large,
stay in NumPy files beside it. Everything here can be rebuilt from the cells' ``cell.json``,
``results.json`` and ``stats/`` (:meth:`Store.reindex`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import logging
import os
import pathlib
import tempfile
from typing import Any, Iterable

import numpy as np

from xstilts_jax.experiments.cell import STATS_DIR, CellResult
from xstilts_jax.experiments.rundir import RESULTS_FILE, write_json_atomic

log = logging.getLogger(__name__)

STORE_DIR = "store"
SCORES_FILE = "scores.jsonl"
EXAMPLES_DIR = "examples"
LOCK_FILE = ".lock"  # in the store: held while a cell is appended (several writers at once)
CELL_FILE = "cell.json"  # in a cell's directory: what the cell is and its state


@dataclasses.dataclass(frozen=True)
class ScoreRow:
    """One zero-shot score: a cell's target task in one language, with what the cell was."""

    cell: str
    sweep: str
    model: str  # the model axis's name for it (xlmr-large, synthetic-m)
    model_path: str
    parameters: int | None  # the backbone's, embeddings included
    pretrain_languages: list[str] | None  # None: not known
    intermediate: str  # "none": direct fine-tuning
    target: str
    intermediate_seed: int | None
    target_seed: int
    language: str
    metric: str
    score: float  # XTREME's number for the language, in %
    metrics: dict[str, float]
    examples: int
    stats_kind: str
    phase_keys: dict[str, str]
    config_hash: str
    degenerate: list[str]  # phases of the cell whose dev curve stayed at chance
    retry_of: str | None = None  # the cell this one retrains with another seed


def cell_rows(cell: dict, result: CellResult) -> list[ScoreRow]:
    """The rows of a finished cell, from its ``cell.json`` record and its results."""
    rows = []
    for task, record in result.zero_shot.items():
        for language, score in record["per_language"].items():
            rows.append(ScoreRow(
                cell=cell["name"], sweep=cell["sweep"], model=cell["model"],
                model_path=cell["model_path"], parameters=cell.get("parameters"),
                pretrain_languages=cell.get("pretrain_languages"),
                intermediate=cell["intermediate"], target=task,
                intermediate_seed=cell.get("intermediate_seed"), target_seed=cell["target_seed"],
                language=language, metric=record["metric"], score=float(score),
                metrics=record["metrics"][language], examples=record["examples"][language],
                stats_kind=record["stats_kind"], phase_keys=dict(cell["phase_keys"]),
                config_hash=cell["config_hash"], degenerate=list(cell.get("degenerate", [])),
                retry_of=cell.get("retry_of")))
    return rows


def cell_stats(cell_dir: pathlib.Path, result: CellResult) -> dict[str, np.ndarray]:
    """``"<task>/<language>"`` -> the cell's per-example statistics, read from ``stats/``."""
    return {f"{task}/{language}": np.load(cell_dir / STATS_DIR / task / f"test-{language}.npy")
            for task, record in result.zero_shot.items() for language in record["per_language"]}


class Store:
    """The store of the sweep run directory ``run_dir``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = pathlib.Path(run_dir)
        self.dir = self.run_dir / STORE_DIR
        self.scores_path = self.dir / SCORES_FILE

    def exists(self) -> bool:
        return self.scores_path.is_file()

    def rows(self) -> list[dict[str, Any]]:
        """Every row, as dicts (a torn last line, from a kill mid-append, is left out)."""
        if not self.scores_path.is_file():
            return []
        rows, lines = [], self.scores_path.read_text(encoding="utf-8").split("\n")
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if lineno >= len(lines) - 1:  # the last line: an append cut short
                    log.warning("%s:%d: incomplete last line ignored (run --reindex)",
                                self.scores_path, lineno)
                    continue
                raise ValueError(f"{self.scores_path}:{lineno}: not a JSON row ({e})") from None
        return rows

    def cells(self) -> set[str]:
        return {row["cell"] for row in self.rows()}

    def example_stats(self, cell: str, task: str, language: str) -> np.ndarray:
        path = self.dir / EXAMPLES_DIR / f"{cell}.npz"
        with np.load(path) as arrays:
            key = f"{task}/{language}"
            if key not in arrays:
                raise KeyError(f"{path}: no statistics for {key}")
            return arrays[key]

    def append(self, rows: Iterable[ScoreRow], stats: dict[str, np.ndarray]) -> None:
        """Add one cell's rows (its statistics first, then its lines in one write); a cell
        already in the store is not added twice. Safe with several writers at once (workers of
        a Ray sweep): the check and the append hold an exclusive ``flock`` on the store's lock
        file (local disks and NFS; not object-store mounts such as gcsfuse)."""
        rows = list(rows)
        if not rows:
            return
        cell = rows[0].cell
        examples_dir = self.dir / EXAMPLES_DIR
        examples_dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            if cell in self.cells():
                return
            buffer = io.BytesIO()
            np.savez(buffer, **stats)
            with tempfile.NamedTemporaryFile("wb", dir=examples_dir, delete=False) as f:
                f.write(buffer.getvalue())
                tmp = f.name
            os.replace(tmp, examples_dir / f"{cell}.npz")
            text = "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in rows)
            with open(self.scores_path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

    def reindex(self) -> int:
        """Rebuild the store from the cells' directories (finished cells only, in name
        order); returns the number of cells indexed."""
        cells_dir = self.run_dir / "cells"
        if self.scores_path.exists():
            self.scores_path.unlink()
        count = 0
        for cell_dir in sorted(p for p in cells_dir.iterdir() if p.is_dir()) \
                if cells_dir.is_dir() else []:
            record_path = cell_dir / CELL_FILE
            if not (record_path.is_file() and (cell_dir / RESULTS_FILE).is_file()):
                continue
            cell = json.loads(record_path.read_text())
            if cell.get("state") != "done":
                continue
            result = CellResult.load(cell_dir / RESULTS_FILE)
            self.append(cell_rows(cell, result), cell_stats(cell_dir, result))
            count += 1
        return count


def write_cell_record(cell_dir: pathlib.Path, record: dict) -> None:
    write_json_atomic(cell_dir / CELL_FILE, record)


__all__ = ["CELL_FILE", "LOCK_FILE", "SCORES_FILE", "STORE_DIR", "ScoreRow", "Store",
           "cell_rows", "cell_stats", "write_cell_record"]
