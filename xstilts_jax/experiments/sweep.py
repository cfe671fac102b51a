"""A sweep: the grid of cells (model x intermediate x target x seeds) declared in a config file,
expanded into cells and the phases they share, run (or resumed) cell by cell, each finished
cell's scores appended to the run directory's store.

    DIR/sweep.json                the expanded plan (cells, their phase keys)
    DIR/phases/<key>/             one per distinct phase (content key: model, previous phase,
                                  section, seed); an intermediate phase is trained once for
                                  every target of its row
    DIR/cells/<name>/             config.json, cell.json (state, phase keys, error),
                                  results.json, predictions/, stats/
    DIR/store/                    scores.jsonl + examples/ (``store.py``)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import traceback
from typing import Any, Callable

import ml_collections
from etils import epath

from xstilts_jax.config import ConfigError, call_in_file
from xstilts_jax.experiments.cell import PHASE_RECORD_FILE, cell_phases, run_cell
from xstilts_jax.experiments.defaults import ALL_NINE, cell_config
from xstilts_jax.experiments.rundir import (RESULTS_FILE, experiment_fields, phase_key,
                                            read_json, write_json_atomic)
from xstilts_jax.experiments.store import (CELL_FILE, Store, cell_rows, cell_stats,
                                           write_cell_record)
from xstilts_jax.storage import as_path
from xstilts_jax.tasks import get_task

log = logging.getLogger(__name__)

NONE = "none"  # the intermediate "task" of direct fine-tuning


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One value of the model axis.

    ``name`` is what tables and plots call it (``xlmr-large``, ``synthetic-m``); ``path`` what
    ``config.model.name`` gets (a checkpoint directory, an offline name or a hub id);
    ``parameters`` the backbone's parameter count and ``languages`` its pretraining languages,
    where known (the report averages over the languages every model has seen); ``overrides``
    the config fields this model needs (``{"data.dir": ...}``); ``prepare`` makes ``path``
    exist (e.g. pretrains a synthetic model; idempotent), called once before its first phase.
    """

    name: str
    path: str
    parameters: int | None = None
    languages: tuple[str, ...] | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    prepare: Callable[[], None] | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass
class SweepSpec:
    """What ``configs/sweep.py:get_sweep(arg)`` returns: the axes and what every cell shares.

    ``intermediates``: ``none`` (direct fine-tuning), a task, a ``+`` mixture or ``all9``.
    ``overrides``: dotted config fields set on every cell (``{"target.num_steps": 20}``).
    ``base``: the config of one (intermediate, target) cell before overrides.
    ``resources``: what one phase asks of a Ray cluster (``--backend ray``).
    """

    name: str
    models: list[ModelSpec]
    intermediates: list[str]
    targets: list[str]
    intermediate_seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    target_seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    base: Callable[[str, str], ml_collections.ConfigDict] = cell_config
    resources: dict[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1})
    # A phase whose best dev score stays within this many points of chance is degenerate.
    degenerate_margin: float = 2.0



SWEEP_FILE = "sweep.json"
STATES = ("done", "running", "failed", "pending")


@dataclasses.dataclass
class Cell:
    """One cell of the expanded grid: its config, and the content keys of its phases."""

    name: str
    model: ModelSpec
    intermediate: str  # the axis value: "none", a task, "a+b", "all9"
    target: str
    intermediate_seed: int | None
    target_seed: int
    config: ml_collections.ConfigDict
    phase_keys: dict[str, str]
    retry_of: str | None = None

    @property
    def config_hash(self) -> str:
        return phase_key(experiment_fields(self.config.to_dict()))

    def describe(self, sweep: str) -> dict:
        """What ``cell.json`` records of the cell (the store's rows are built from it)."""
        return {"name": self.name, "sweep": sweep, "model": self.model.name,
                "model_path": self.model.path, "parameters": self.model.parameters,
                "pretrain_languages": (None if self.model.languages is None
                                       else list(self.model.languages)),
                "intermediate": self.intermediate, "target": self.target,
                "intermediate_seed": self.intermediate_seed, "target_seed": self.target_seed,
                "phase_keys": self.phase_keys, "config_hash": self.config_hash,
                "retry_of": self.retry_of}


def load_sweep(spec: str) -> SweepSpec:
    """``path/to/file.py:NAME`` -> the :class:`SweepSpec` its ``get_sweep(NAME)`` returns."""
    sweep = call_in_file(spec, "get_sweep", what="sweep config")
    if not isinstance(sweep, SweepSpec):
        raise ConfigError(f"{spec}: get_sweep returned {type(sweep).__name__}, expected a "
                          f"SweepSpec")
    return sweep


def _safe(text: str) -> str:
    """A name usable as one path component."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in text)


def _intermediate_task(intermediate: str) -> str:
    return "+".join(ALL_NINE) if intermediate == "all9" else intermediate


def set_fields(config: ml_collections.ConfigDict, fields: dict[str, Any], *, where: str) -> None:
    """Set dotted ``fields`` (``{"target.num_steps": 20}``) on ``config``; unknown keys are
    refused, naming ``where`` they came from."""
    for key, value in fields.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if part not in node:
                raise ConfigError(f"{where}: unknown config key {key!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{where}: unknown config key {key!r}")
        with node.ignore_type():
            node[leaf] = value


def make_cell(spec: SweepSpec, model: ModelSpec, intermediate: str, target: str,
              intermediate_seed: int | None, target_seed: int, *,
              retry_of: str | None = None) -> Cell:
    """One cell's config (base, then the model's and the sweep's overrides, then the
    model path and the seeds) and its phase keys."""
    config = spec.base(intermediate, target)
    set_fields(config, model.overrides, where=f"model {model.name!r} overrides")
    set_fields(config, spec.overrides, where=f"sweep {spec.name!r} overrides")
    config.model.name = model.path
    if intermediate != NONE:
        config.intermediate.seed = intermediate_seed
    config.target.seed = target_seed
    keys = {name: key for name, _, _, _, key in cell_phases(config)}
    seeds = (f"t{target_seed}" if intermediate == NONE
             else f"i{intermediate_seed}-t{target_seed}")
    label = intermediate if len(intermediate) <= 40 else f"mix{len(intermediate.split('+'))}-" \
        + phase_key({"task": intermediate})[:8]
    name = "--".join(_safe(x) for x in (model.name, label, target, seeds))
    return Cell(name=name, model=model, intermediate=intermediate, target=target,
                intermediate_seed=None if intermediate == NONE else intermediate_seed,
                target_seed=target_seed, config=config, phase_keys=keys, retry_of=retry_of)


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, rows of one shared intermediate phase together; the axes are
    checked (known tasks, distinct names, at least one value each)."""
    for axis in ("models", "intermediates", "targets", "target_seeds"):
        values = getattr(spec, axis)
        if not values:
            raise ConfigError(f"sweep {spec.name!r}: the {axis} axis is empty")
    if any(i != NONE for i in spec.intermediates) and not spec.intermediate_seeds:
        raise ConfigError(f"sweep {spec.name!r}: the intermediate_seeds axis is empty")
    names = [m.name for m in spec.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep {spec.name!r}: model names repeat: {names}")
    for target in spec.targets:
        try:
            get_task(target)
        except ValueError as e:
            raise ConfigError(f"sweep {spec.name!r}: target {target!r}: {e}") from None
    cells = []
    for model in spec.models:
        for intermediate in spec.intermediates:
            seeds = [None] if intermediate == NONE else spec.intermediate_seeds
            for intermediate_seed in seeds:
                for target in spec.targets:
                    for target_seed in spec.target_seeds:
                        cells.append(make_cell(spec, model, intermediate, target,
                                               intermediate_seed, target_seed))
    return cells


# --------------------------------------------------------------------------- state

def phase_done(run_dir: epath.Path, key: str) -> bool:
    """A phase is trained once its record is written (after its best checkpoint)."""
    return (run_dir / "phases" / key / PHASE_RECORD_FILE).is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cell_state(run_dir: epath.Path, name: str) -> dict:
    """``{"state": done | running | failed | pending, ...}`` of a cell from its ``cell.json``;
    a cell left "running" by a process that is gone (killed) is pending again."""
    path = run_dir / "cells" / name / CELL_FILE
    if not path.is_file():
        return {"state": "pending"}
    record = read_json(path)
    state = record.get("state", "pending")
    if state == "done" and not (run_dir / "cells" / name / RESULTS_FILE).is_file():
        state = "pending"
    if state == "running":
        here = record.get("host") == socket.gethostname()
        if here and not _pid_alive(int(record.get("pid", -1))):
            state = "pending"
            record["note"] = "interrupted"
    record["state"] = state
    return record


@dataclasses.dataclass
class Plan:
    """The expanded sweep against what its run directory already holds."""

    spec: SweepSpec
    cells: list[Cell]
    phases: dict[str, dict]  # key -> {"phase", "task", "model", "seed", "cells": [names]}
    states: dict[str, dict]  # cell name -> cell_state
    phases_done: set[str]

    def to_json(self) -> dict:
        return {"name": self.spec.name,
                "cells": [c.describe(self.spec.name) for c in self.cells],
                "phases": self.phases}


def make_plan(spec: SweepSpec, run_dir: str | os.PathLike, cells: list[Cell] | None = None) -> Plan:
    run_dir = as_path(run_dir)
    cells = expand(spec) if cells is None else cells
    phases: dict[str, dict] = {}
    for cell in cells:
        for phase, key in cell.phase_keys.items():
            section = cell.config[phase]
            entry = phases.setdefault(key, {
                "phase": phase, "task": cell.intermediate if phase == "intermediate"
                else cell.target, "model": cell.model.name, "seed": section.seed, "cells": []})
            entry["cells"].append(cell.name)
    return Plan(spec, cells, phases, {c.name: cell_state(run_dir, c.name) for c in cells},
                {k for k in phases if phase_done(run_dir, k)})


def format_plan(plan: Plan) -> str:
    counts = {s: sum(st["state"] == s for st in plan.states.values()) for s in STATES}
    by_phase = {p: sum(v["phase"] == p for v in plan.phases.values())
                for p in ("intermediate", "target")}
    done_by_phase = {p: sum(v["phase"] == p and k in plan.phases_done
                            for k, v in plan.phases.items()) for p in by_phase}
    spec = plan.spec
    lines = [f"sweep {spec.name}: {len(plan.cells)} cells = {len(spec.models)} models x "
             f"{len(spec.intermediates)} intermediates x {len(spec.targets)} targets x seeds "
             f"(intermediate {list(spec.intermediate_seeds)}, target {list(spec.target_seeds)})",
             f"  distinct phases: {by_phase['intermediate']} intermediate "
             f"({done_by_phase['intermediate']} trained), {by_phase['target']} target "
             f"({done_by_phase['target']} trained); without sharing: "
             f"{sum(1 for c in plan.cells if 'intermediate' in c.phase_keys)} intermediate",
             "  cells: " + ", ".join(f"{counts[s]} {s}" for s in STATES)]
    for model in spec.models:
        size = f"{model.parameters:,} parameters" if model.parameters else "size unknown"
        lines.append(f"  model {model.name}: {model.path} ({size})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- running

def chance_level(task_name: str) -> float | None:
    """The dev score of a constant prediction, where the task has one (classification and
    multiple choice: 100 / classes); None for mixtures, tagging and QA."""
    if "+" in task_name:
        return None
    try:
        task = get_task(task_name)
    except ValueError:
        return None
    if task.family == "classification" and task.labels:
        return 100.0 / len(task.labels)
    if task.family == "multiple_choice" and task.num_choices:
        return 100.0 / task.num_choices
    return None


def degenerate_phase(run_dir: epath.Path, key: str, margin: float) -> bool:
    """A phase whose dev curve never rose above chance (+ ``margin`` points): XLM-R's known
    collapse on NLI, where every example gets one class (33.3 %)."""
    path = run_dir / "phases" / key / PHASE_RECORD_FILE
    if not path.is_file():
        return False
    record = read_json(path)
    chance = chance_level(record["task"])
    return chance is not None and record["best_dev"] < chance + margin


def is_preemption(error: BaseException) -> bool:
    from xstilts_jax.train import loop
    preempted = getattr(loop, "Preempted", None)
    return preempted is not None and isinstance(error, preempted)


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def train_shared_phase(run_dir: epath.Path, cell: Cell, *, progress: bool) -> None:
    """Train (or resume, or find) the intermediate phase of ``cell``'s row, once for all
    the targets that start from it."""
    run_cell(cell.config, None, progress=progress, phases_dir=run_dir / "phases",
             stop_after="intermediate")


def run_one_cell(run_dir: epath.Path, cell: Cell, sweep: str, *, margin: float,
                 progress: bool) -> dict:
    """Run (or resume) a cell, record its state in ``cell.json`` and, when it finishes, its
    rows in the store. A failure is recorded (error and traceback), not raised; preemption is
    raised (the sweep stops and saves; the next run resumes)."""
    cell_dir = run_dir / "cells" / cell.name
    record = cell.describe(sweep)
    write_cell_record(cell_dir, {**record, "state": "running", "pid": os.getpid(),
                                 "host": socket.gethostname()})
    try:
        result = run_cell(cell.config, cell_dir, progress=progress,
                          phases_dir=run_dir / "phases")
    except Exception as e:  # noqa: BLE001 - recorded; the sweep goes on
        if is_preemption(e):
            write_cell_record(cell_dir, {**record, "state": "pending", "note": "preempted"})
            raise
        log.error("cell %s failed: %s", cell.name, error_text(e))
        (cell_dir / "error.txt").write_text(traceback.format_exc())
        failed = {**record, "state": "failed", "error": error_text(e)}
        write_cell_record(cell_dir, failed)
        return failed
    degenerate = [name for name, key in cell.phase_keys.items()
                  if degenerate_phase(run_dir, key, margin)]
    done = {**record, "state": "done", "degenerate": degenerate,
            "best_dev": {name: p.best_dev for name, p in result.phases.items()}}
    write_cell_record(cell_dir, done)
    Store(run_dir).append(cell_rows(done, result), cell_stats(cell_dir, result))
    return done


def prepare_failed(model: ModelSpec, error: BaseException) -> str:
    """The error every cell of ``model`` fails with when its ``prepare`` raised ``error``."""
    return f"preparing model {model.name}: {error_text(error)}"


def intermediate_failed(cell: Cell, key: str, error: BaseException) -> str:
    """The error every cell of a row fails with when its intermediate phase raised ``error``."""
    return (f"its intermediate phase {key} ({cell.intermediate}, seed {cell.intermediate_seed}) "
            f"failed: {error_text(error)}")


def fail_cell(run_dir: epath.Path, cell: Cell, sweep: str, error: str) -> dict:
    """Record ``cell`` as failed with ``error`` (it did not run: what it needs failed)."""
    failed = {**cell.describe(sweep), "state": "failed", "error": error}
    write_cell_record(run_dir / "cells" / cell.name, failed)
    return failed


def _next_seed(seed: int, used: set[int]) -> int:
    """The smallest seed after ``seed`` not used on its axis (nor by an earlier retry)."""
    candidate = seed + 1
    while candidate in used:
        candidate += 1
    used.add(candidate)
    return candidate


@dataclasses.dataclass
class SweepSummary:
    cells: int
    done: int
    failed: dict[str, str]  # cell -> its error's first line
    already_done: int
    trained_phases: int  # phases this run trained (or finished training)
    degenerate: list[str]  # cells with a degenerate phase
    retries: list[str]  # cells added by --retry-degenerate
    preempted: bool = False

    def format(self) -> str:
        lines = [f"{self.done} of {self.cells} cells done ({self.already_done} before this run), "
                 f"{len(self.failed)} failed; {self.trained_phases} phases trained by this run"]
        lines += [f"  failed: {name}: {error}" for name, error in self.failed.items()]
        if self.degenerate:
            lines.append(f"  degenerate (dev at chance): {', '.join(self.degenerate)}")
        if self.retries:
            lines.append(f"  retried with the next seed: {', '.join(self.retries)}")
        if self.preempted:
            lines.append("  preempted: saved; run the same command to resume")
        return "\n".join(lines)

    def skip_done(self, run_dir: epath.Path, cells: list[Cell]) -> list[Cell]:
        """Count the cells of ``cells`` finished before this run; the others, to run."""
        pending = [c for c in cells if cell_state(run_dir, c.name)["state"] != "done"]
        self.already_done += len(cells) - len(pending)
        self.done += len(cells) - len(pending)
        for c in cells:
            if c not in pending and cell_state(run_dir, c.name).get("degenerate"):
                self.degenerate.append(c.name)
        return pending

    def add(self, name: str, state: dict) -> None:
        """Count a cell this run finished or failed (``state``: its ``cell.json`` record)."""
        if state["state"] == "failed":
            self.failed[name] = state["error"].splitlines()[0]
            return
        self.done += 1
        if state["degenerate"]:
            self.degenerate.append(name)


def degenerate_retries(spec: SweepSpec, run_dir: epath.Path, cells: list[Cell], attempt: int,
                       used_seeds: dict[str, set[int]],
                       retry_seeds: dict[str, int]) -> list[list[Cell]]:
    """--retry-degenerate: the cells retrying the degenerate phases of ``cells`` with the next
    seed (both are recorded), grouped by intermediate phase. A degenerate intermediate phase
    gets one new seed for its row (``retry_seeds``: phase key -> that seed); ``used_seeds``
    (phase -> seeds taken) is updated."""
    retries: dict[str | None, list[Cell]] = {}
    for cell in cells:
        flagged = cell_state(run_dir, cell.name).get("degenerate") or []
        if not flagged:
            continue
        iseed, tseed = cell.intermediate_seed, cell.target_seed
        if "intermediate" in flagged:  # one new seed for the row's shared phase
            key = cell.phase_keys["intermediate"]
            if key not in retry_seeds:
                retry_seeds[key] = _next_seed(iseed, used_seeds["intermediate"])
            iseed = retry_seeds[key]
        else:
            tseed = _next_seed(tseed, used_seeds["target"])
        again = make_cell(spec, cell.model, cell.intermediate, cell.target, iseed, tseed,
                          retry_of=cell.name)
        again.name += f"--retry{attempt + 1}"
        retries.setdefault(again.phase_keys.get("intermediate"), []).append(again)
    return list(retries.values())


def sweep_groups(cells: list[Cell]) -> list[list[Cell]]:
    """The cells grouped by (model, intermediate phase): a row trains its phase once."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.model.name, cell.phase_keys.get("intermediate")), []).append(cell)
    return list(groups.values())


def start_sweep(spec: SweepSpec, run_dir: str | os.PathLike) -> Plan:
    """The plan of ``spec`` against ``run_dir``, written to ``sweep.json`` (every backend
    starts here)."""
    plan = make_plan(spec, run_dir)
    write_json_atomic(as_path(run_dir) / SWEEP_FILE, plan.to_json())
    return plan


def run_sweep_locally(spec: SweepSpec, run_dir: str | os.PathLike, plan: Plan, *,
                      retry_degenerate: int = 0, progress: bool = True) -> SweepSummary:
    """Run (or resume) every cell of ``plan`` in this process; finished phases and cells are
    skipped, failed ones retried. Rows of one intermediate phase run together: the phase
    first (once), then its targets."""
    run_dir = as_path(run_dir)
    summary = SweepSummary(cells=len(plan.cells), done=0, failed={}, already_done=0,
                           trained_phases=0, degenerate=[], retries=[])
    used_seeds = {"intermediate": set(spec.intermediate_seeds),
                  "target": set(spec.target_seeds)}
    prepared: dict[str, str | None] = {}  # model name -> its preparation's error, if any

    def prepare(model: ModelSpec) -> str | None:
        if model.name not in prepared:
            prepared[model.name] = None
            if model.prepare is not None:
                try:
                    model.prepare()
                except Exception as e:  # noqa: BLE001 - its cells fail with this error
                    prepared[model.name] = prepare_failed(model, e)
        return prepared[model.name]

    def fail(cell: Cell, error: str) -> None:
        summary.add(cell.name, fail_cell(run_dir, cell, spec.name, error))

    def run_group(cells: list[Cell], attempt: int) -> None:
        pending = summary.skip_done(run_dir, cells)
        if pending:
            run_pending(pending)
        if attempt < retry_degenerate:
            retry(cells, attempt)

    def run_pending(pending: list[Cell]) -> None:
        error = prepare(pending[0].model)
        if error is not None:
            for c in pending:
                fail(c, error)
            return
        key = pending[0].phase_keys.get("intermediate")
        if key is not None and not phase_done(run_dir, key):
            try:
                train_shared_phase(run_dir, pending[0], progress=progress)
                summary.trained_phases += 1
            except Exception as e:  # noqa: BLE001 - recorded on every cell of the row
                if is_preemption(e):
                    raise
                log.error("intermediate phase %s failed: %s", key, error_text(e))
                for c in pending:
                    fail(c, intermediate_failed(c, key, e))
                return
        for cell in pending:
            trained = sum(not phase_done(run_dir, k) for k in cell.phase_keys.values())
            state = run_one_cell(run_dir, cell, spec.name, margin=spec.degenerate_margin,
                                 progress=progress)
            summary.trained_phases += trained - sum(not phase_done(run_dir, k)
                                                    for k in cell.phase_keys.values())
            summary.add(cell.name, state)

    def retry(cells: list[Cell], attempt: int) -> None:
        """--retry-degenerate: a degenerate phase again with the next seed, both recorded."""
        for group in degenerate_retries(spec, run_dir, cells, attempt, used_seeds, retry_seeds):
            summary.retries += [c.name for c in group]
            summary.cells += len(group)
            run_group(group, attempt + 1)

    retry_seeds: dict[str, int] = {}
    try:
        for cells in sweep_groups(plan.cells):
            run_group(cells, 0)
    except Exception as e:
        if not is_preemption(e):
            raise
        summary.preempted = True
    return summary


def status_table(run_dir: str | os.PathLike) -> str:
    """``xstilts sweep --status DIR``: every cell of the sweep's plan (``sweep.json``) and any
    retry cells, with its state."""
    run_dir = as_path(run_dir)
    path = run_dir / SWEEP_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (not a sweep run directory, or never run)")
    names = [c["name"] for c in read_json(path)["cells"]]
    cells_dir = run_dir / "cells"
    if cells_dir.is_dir():
        names += sorted(p.name for p in cells_dir.iterdir() if p.is_dir() and p.name not in names)
    states = {name: cell_state(run_dir, name) for name in names}
    width = max([len(n) for n in names] + [4])
    lines = [f"{'cell':<{width}}  {'state':<8}  detail"]
    for name, st in states.items():
        detail = ""
        if st["state"] == "failed" and st.get("error"):
            detail = st["error"].splitlines()[0]
        elif st["state"] == "done" and st.get("degenerate"):
            detail = f"degenerate: {', '.join(st['degenerate'])}"
        elif st["state"] == "running":
            detail = f"pid {st.get('pid')} on {st.get('host')}"
        elif st.get("note"):
            detail = st["note"]
        lines.append(f"{name:<{width}}  {st['state']:<8}  {detail}")
    counts = {s: sum(st["state"] == s for st in states.values()) for s in STATES}
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATES))
    return "\n".join(lines)


__all__ = ["NONE", "STATES", "SWEEP_FILE", "Cell", "cell_state", "chance_level",
           "degenerate_phase", "degenerate_retries", "error_text", "expand", "fail_cell",
           "format_plan", "intermediate_failed", "is_preemption", "load_sweep", "make_cell",
           "make_plan", "ModelSpec", "phase_done", "Plan", "prepare_failed", "run_one_cell",
           "run_sweep_locally", "set_fields", "start_sweep", "status_table", "sweep_groups",
           "SweepSpec", "SweepSummary", "train_shared_phase"]
