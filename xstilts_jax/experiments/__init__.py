"""Experiments: a cell of the grid (``cell.py``), its phases (``phases.py``), zero-shot
evaluation (``evaluate.py``) and the run-directory rules (``rundir.py``). ``xstilts run`` and
``xstilts demo`` both go through :func:`run_cell`."""

from xstilts_jax.experiments.cell import CellResult, DataRecord, PhaseRecord, run_cell
from xstilts_jax.experiments.phases import load_phase_model
from xstilts_jax.experiments.rundir import is_phase_dir, write_json_atomic

__all__ = ["CellResult", "DataRecord", "PhaseRecord", "is_phase_dir", "load_phase_model",
           "run_cell", "write_json_atomic"]
