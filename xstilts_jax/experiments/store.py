"""The results store of a sweep: one typed row per (cell, target task, language), and each
row's per-example statistics, under ``DIR/store/``:

    rows/<cell>.jsonl       the cell's rows, a JSON object a line (:class:`ScoreRow`)
    examples/<cell>.npz     "<task>/<language>" -> float64 [examples, k] (``metrics.STAT_KINDS``)

A finished cell writes its two files once, whole (its statistics first, so a cell whose rows
are there has them): no file is ever appended to or shared between writers, so the store
needs no lock and lives equally on a local disk, NFS or a bucket (``gs://``, where objects
can be neither appended to nor locked), written by many workers at once (a Ray sweep).
Everything here can be rebuilt from the cells' ``cell.json``, ``results.json`` and
``stats/`` (:meth:`Store.reindex`).

JSON lines, not Parquet or SQLite: a row file needs no library beyond the standard one, each
line is a typed record ``pandas.DataFrame(Store(DIR).rows())`` turns into a frame (or
``pandas.read_json(file, lines=True)`` per file), and it reads fine over ``gs://``. SQLite
cannot live in a bucket nor take concurrent writers over NFS; Parquet would add a dependency
and rewrites. The per-example arrays, which are large, stay in NumPy files beside the rows.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, Iterable

import numpy as np

from xstilts_jax.experiments.cell import STATS_DIR, CellResult
from xstilts_jax.experiments.rundir import RESULTS_FILE, read_json, write_json_atomic
from xstilts_jax.storage import PathLike, as_path, write_atomic

STORE_DIR = "store"
ROWS_DIR = "rows"
EXAMPLES_DIR = "examples"
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
    finetuning: str = "full"  # or LoRA's "lora-r8-a8"...: the report keeps them apart
    trainable_parameters: int | None = None  # of the target phase (backbone or adapters + head)


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
                retry_of=cell.get("retry_of"), finetuning=result.finetuning,
                trainable_parameters=result.trainable_parameters))
    return rows


def cell_stats(cell_dir: PathLike, result: CellResult) -> dict[str, np.ndarray]:
    """``"<task>/<language>"`` -> the cell's per-example statistics, read from ``stats/``."""
    stats = {}
    for task, record in result.zero_shot.items():
        for language in record["per_language"]:
            with (as_path(cell_dir) / STATS_DIR / task / f"test-{language}.npy").open("rb") as f:
                stats[f"{task}/{language}"] = np.load(f)
    return stats


class Store:
    """The store of the sweep run directory ``run_dir`` (a local path or ``gs://``)."""

    def __init__(self, run_dir: PathLike):
        self.run_dir = as_path(run_dir)
        self.dir = self.run_dir / STORE_DIR
        self.rows_dir = self.dir / ROWS_DIR

    def _row_files(self) -> list:
        if not self.rows_dir.is_dir():
            return []
        return sorted((p for p in self.rows_dir.iterdir() if p.name.endswith(".jsonl")),
                      key=lambda p: p.name)

    def exists(self) -> bool:
        return bool(self._row_files())

    def rows(self) -> list[dict[str, Any]]:
        """Every row, as dicts, cell by cell in name order."""
        rows = []
        for path in self._row_files():
            for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not a JSON row ({e}); "
                                     f"rebuild the store with --reindex") from None
        return rows

    def cells(self) -> set[str]:
        return {p.name[:-len(".jsonl")] for p in self._row_files()}

    def example_stats(self, cell: str, task: str, language: str) -> np.ndarray:
        path = self.dir / EXAMPLES_DIR / f"{cell}.npz"
        with path.open("rb") as f, np.load(f) as arrays:
            key = f"{task}/{language}"
            if key not in arrays:
                raise KeyError(f"{path}: no statistics for {key}")
            return arrays[key]

    def append(self, rows: Iterable[ScoreRow], stats: dict[str, np.ndarray]) -> None:
        """Add one cell's rows and statistics (the statistics first); a cell already in the
        store is not written again. Cells write only their own files, so any number of
        writers may add cells at once."""
        rows = list(rows)
        if not rows:
            return
        cell = rows[0].cell
        rows_path = self.rows_dir / f"{cell}.jsonl"
        if rows_path.exists():
            return
        buffer = io.BytesIO()
        np.savez(buffer, **stats)
        write_atomic(self.dir / EXAMPLES_DIR / f"{cell}.npz", buffer.getvalue())
        write_atomic(rows_path, "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n"
                                        for r in rows))

    def reindex(self) -> int:
        """Rebuild the store from the cells' directories (finished cells only, in name
        order); returns the number of cells indexed."""
        cells_dir = self.run_dir / "cells"
        if self.dir.exists():
            self.dir.rmtree()
        count = 0
        for cell_dir in sorted((p for p in cells_dir.iterdir() if p.is_dir()),
                               key=lambda p: p.name) if cells_dir.is_dir() else []:
            record_path = cell_dir / CELL_FILE
            if not (record_path.exists() and (cell_dir / RESULTS_FILE).exists()):
                continue
            cell = read_json(record_path)
            if cell.get("state") != "done":
                continue
            result = CellResult.load(cell_dir / RESULTS_FILE)
            self.append(cell_rows(cell, result), cell_stats(cell_dir, result))
            count += 1
        return count


def write_cell_record(cell_dir: PathLike, record: dict) -> None:
    write_json_atomic(cell_dir / CELL_FILE, record)


__all__ = ["CELL_FILE", "EXAMPLES_DIR", "ROWS_DIR", "STORE_DIR", "ScoreRow", "Store",
           "cell_rows", "cell_stats", "write_cell_record"]
