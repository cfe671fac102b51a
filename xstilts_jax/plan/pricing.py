"""What a whole sweep costs on a slice (``xstilts plan --sweep configs/sweep.py:NAME
--topology v5e:4x4``): every distinct phase of the expanded grid planned with the planner
(``plan_phase``), priced, and summed.

- A phase is counted once by its content key (``Cell.phase_keys``): an intermediate phase a
  row's targets and seeds start from is trained once, so it is paid once.
- A phase's program is compiled once per *program shape*, not per phase: phases that differ
  only in what does not change the compiled step (seeds, learning rate, schedule, number of
  updates, data) share one compile. The shape is the config's model section, its mesh
  section, the phase's section without those fields (:data:`NOT_PROGRAM_FIELDS`; the task
  names stay: two tasks of one family may have heads of different sizes) and the utilisation
  the step time is estimated at. Each phase's updates come from its own section (``num_steps``,
  or ``num_epochs`` over the tasks' published training sizes), and its chip-hours from them:
  updates x gradient accumulation x the shape's estimated step seconds x chips / 3600.
- A phase whose program does not fit the slice's memory, or that cannot be planned (a
  ``ConfigError``: an unknown model, a batch that does not divide over the mesh, a task with
  no published size), is listed and counted, never added to the totals.
- Prices (USD per chip-hour) come from the cells' ``config.plan.prices`` by the topology's
  generation, unless ``prices`` overrides them; ``cpu:N`` has none unless a ``cpu`` entry is
  given (the chip-hours are still summed).

Chip-hours are the planner's: training micro-steps at the estimated step time (a roofline at
``mfu``), evaluation not included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Callable, Mapping

from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.phases import MLM_TASK, phase_config, phase_tasks
from xstilts_jax.plan.planner import PhasePlan, phase_train_rows, plan_phase
from xstilts_jax.plan.render import gib
from xstilts_jax.plan.topology import Topology
from xstilts_jax.tasks import get_task

DEFAULT_MFU = 0.4

# A phase section's fields that do not change the compiled train or eval step: seeds,
# optimizer and schedule constants, how long it trains, when it evaluates and saves, and
# what data it reads (languages, QA windows past max_length). Everything else of the
# section (task names, batch sizes, lengths and buckets, gradient accumulation, clipping,
# and a mixture's sampling, which weighs its tasks' step times) is part of the plan's key.
NOT_PROGRAM_FIELDS = ("seed", "learning_rate", "num_epochs", "num_steps", "warmup_ratio",
                      "weight_decay", "eval_every", "checkpoint_every", "patience",
                      "train_languages", "doc_stride", "max_query_length", "max_answer_length",
                      "n_best_size")


def _jsonable(value: Any) -> Any:
    """A config value as plain JSON (ConfigDicts, tuples, mappings)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def program_key(config, phase: str, *, mfu: float) -> str:
    """What determines ``phase``'s compiled program (and its planned step time): phases with
    equal keys plan alike on a topology; a short hash."""
    section = {k: v for k, v in _jsonable(config[phase]).items() if k not in NOT_PROGRAM_FIELDS}
    identity = {"model": _jsonable(config.model), "mesh": _jsonable(config.mesh),
                "phase": section, "mfu": float(mfu)}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def phase_updates(config, phase: str) -> int:
    """The optimizer updates ``phase`` of ``config`` trains for: ``num_steps``, or
    ``num_epochs`` over its tasks' published training sizes (as the planner counts them)."""
    section = config[phase]
    try:
        names = phase_tasks(section.task)
        tasks = [get_task(t) for t in names if t != MLM_TASK]
    except ValueError as e:
        raise ConfigError(f"{phase}.task: {e}") from None
    seed = section.get("seed")
    cfg = phase_config(phase, section, seed=int(seed if seed is not None else config.seed))
    rows = phase_train_rows(tasks, section) if cfg.num_steps is None else 0
    try:
        return cfg.total_updates(rows)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _plan_settings(config) -> tuple[dict, float]:
    """(prices by generation, mfu) of a cell's ``plan`` section (empty / the default where a
    config has none)."""
    section = config.get("plan") if hasattr(config, "get") else None
    if section is None:
        return {}, DEFAULT_MFU
    prices = section.get("prices")
    mfu = section.get("mfu")
    return (dict(prices) if prices else {}), float(mfu if mfu is not None else DEFAULT_MFU)


def chip_hour_price(prices: Mapping[str, float] | None, topology: Topology) -> float | None:
    """USD per chip-hour of ``topology``'s generation in ``prices`` (``{"v5e": 1.2, ...}``),
    or None where the table has no entry (``cpu:N``, unless a ``cpu`` entry is given)."""
    if not prices:
        return None
    price = prices.get(topology.generation)
    return None if price is None else float(price)


@dataclasses.dataclass
class PhaseCost:
    """One distinct phase of a sweep on a topology. ``chip_hours`` and ``usd`` are what it
    costs if it fits (None where it cannot be planned or has no step-time estimate; ``usd``
    None where the generation has no price); a phase that does not fit is never in totals."""

    key: str  # the phase's content key (DIR/phases/<key>)
    model: str  # the model axis name
    model_path: str
    phase: str  # "intermediate" or "target"
    task: str  # the axis value (an intermediate's "all9", not its nine tasks)
    after: str | None  # a target's intermediate axis value ("none": direct); None: intermediate
    seed: int | None
    cells: list[str]  # the cells that share this phase
    program: str  # its program_key: phases with one program share a compile
    updates: int | None
    grad_accumulation: int | None
    step_seconds: float | None  # one micro-step, estimated (see the planner)
    chips: int
    chip_hours: float | None
    price_per_chip_hour: float | None
    usd: float | None
    fits: bool
    per_chip_bytes: dict | None
    over_by_bytes: int
    error: str | None = None  # why it could not be planned

    @property
    def counted(self) -> bool:
        """In the totals: planned, fits, and has a chip-hour estimate."""
        return self.error is None and self.fits and self.chip_hours is not None


@dataclasses.dataclass
class SweepCost:
    """A sweep's phases on a topology, priced; totals count each distinct phase once and
    only phases that fit."""

    sweep: str
    topology: str
    generation: str
    chips: int
    hbm_bytes: int
    rows: list[PhaseCost]
    cells: int
    compiles: int
    compile_seconds: float
    plans: dict[str, PhasePlan] = dataclasses.field(repr=False, default_factory=dict)

    @property
    def phases(self) -> int:
        return len(self.rows)

    @property
    def chip_hours(self) -> float:
        return sum(r.chip_hours for r in self.rows if r.counted)

    @property
    def usd(self) -> float | None:
        """The counted phases' cost; None where a phase has no price (``cpu:N``, or a
        generation missing from the table)."""
        if any(r.price_per_chip_hour is None for r in self.rows):
            return None
        return sum(r.usd for r in self.rows if r.counted)

    @property
    def unfit(self) -> list[PhaseCost]:
        """Phases planned but too large for the slice (not in the totals)."""
        return [r for r in self.rows if r.error is None and not r.fits]

    @property
    def errors(self) -> list[PhaseCost]:
        """Phases that could not be planned, or have no step-time estimate (not in the
        totals)."""
        return [r for r in self.rows if r.error is not None
                or (r.fits and r.chip_hours is None)]

    @property
    def complete(self) -> bool:
        """Every phase fits and is in the totals."""
        return all(r.counted for r in self.rows)

    def by_model(self) -> dict[str, dict]:
        """Per model: phases, cells, counted chip-hours and USD, unfit and unplanned phases."""
        out: dict[str, dict] = {}
        for row in self.rows:
            entry = out.setdefault(row.model, {"phases": 0, "cells": set(), "chip_hours": 0.0,
                                               "usd": 0.0, "unfit": 0, "errors": 0})
            entry["phases"] += 1
            entry["cells"].update(row.cells)
            if row.price_per_chip_hour is None:
                entry["usd"] = None
            if row.counted:
                entry["chip_hours"] += row.chip_hours
                if entry["usd"] is not None:
                    entry["usd"] += row.usd
            elif row.error is None and not row.fits:
                entry["unfit"] += 1
            else:
                entry["errors"] += 1
        for entry in out.values():
            entry["cells"] = len(entry["cells"])
        return out

    def totals(self) -> dict:
        return {"phases": self.phases, "compiles": self.compiles, "cells": self.cells,
                "chip_hours": self.chip_hours, "usd": self.usd,
                "counted_phases": sum(r.counted for r in self.rows),
                "unfit_phases": len(self.unfit), "unplanned_phases": len(self.errors),
                "compile_seconds": self.compile_seconds}

    def to_json(self) -> dict:
        return {"sweep": self.sweep, "topology": self.topology, "generation": self.generation,
                "chips": self.chips, "hbm_bytes": self.hbm_bytes, "totals": self.totals(),
                "by_model": self.by_model(),
                "phases": [dataclasses.asdict(r) for r in self.rows]}


@dataclasses.dataclass
class _Phase:
    key: str
    phase: str
    cell: Any  # the first cell with this phase (its config plans it)
    cells: list[str]


def distinct_phases(cells) -> list[_Phase]:
    """The cells' phases, one per content key, in grid order, with the cells sharing each."""
    phases: dict[str, _Phase] = {}
    for cell in cells:
        for name, key in cell.phase_keys.items():
            entry = phases.setdefault(key, _Phase(key, name, cell, []))
            entry.cells.append(cell.name)
    return list(phases.values())


def price_sweep(spec, topology: Topology, *, prices: Mapping[str, float] | None = None,
                mfu: float | None = None,
                progress: Callable[[str], None] | None = None) -> SweepCost:
    """Plan and price every distinct phase of ``spec`` (a ``SweepSpec``) on ``topology``,
    compiling once per program shape. ``prices`` (USD per chip-hour by generation) and
    ``mfu`` override the cells' ``config.plan``; ``progress`` gets a line per compile."""
    from xstilts_jax.experiments.sweep import expand

    cells = expand(spec)
    phases = distinct_phases(cells)
    # What each phase needs before compiling: its program, updates, price.
    prepared = []
    for p in phases:
        config = p.cell.config
        table, cell_mfu = _plan_settings(config)
        use_mfu = float(mfu) if mfu is not None else cell_mfu
        price = chip_hour_price(prices if prices is not None else table, topology)
        error, updates = None, None
        try:
            updates = phase_updates(config, p.phase)
        except ConfigError as e:
            error = str(e)
        prepared.append((p, program_key(config, p.phase, mfu=use_mfu), use_mfu, price, updates,
                         error))
    programs: dict[str, tuple[_Phase, float]] = {}
    for p, key, use_mfu, _, _, error in prepared:
        if error is None:
            programs.setdefault(key, (p, use_mfu))
    plans: dict[str, PhasePlan] = {}
    failures: dict[str, str] = {}
    compile_seconds = 0.0
    for i, (key, (p, use_mfu)) in enumerate(programs.items()):
        sharing = sum(1 for q in prepared if q[1] == key)
        if progress is not None:
            progress(f"[{i + 1}/{len(programs)}] compiling {p.cell.model.name} {p.phase} "
                     f"{_task_label(p)} for {topology.name} ({sharing} phase"
                     f"{'s' if sharing != 1 else ''})")
        start = time.perf_counter()
        try:
            plans[key] = plan_phase(p.cell.config, p.phase, topology, mfu=use_mfu)
        except ConfigError as e:
            failures[key] = str(e)
        compile_seconds += time.perf_counter() - start
    rows = [_row(p, key, price, updates, error or failures.get(key), plans.get(key), topology)
            for p, key, _, price, updates, error in prepared]
    return SweepCost(sweep=spec.name, topology=topology.name, generation=topology.generation,
                     chips=topology.num_chips, hbm_bytes=topology.chip.hbm_bytes, rows=rows,
                     cells=len(cells), compiles=len(programs), compile_seconds=compile_seconds,
                     plans=plans)


def _task_label(p: _Phase) -> str:
    return p.cell.intermediate if p.phase == "intermediate" else p.cell.target


def _row(p: _Phase, program: str, price: float | None, updates: int | None, error: str | None,
         plan: PhasePlan | None, topology: Topology) -> PhaseCost:
    section = p.cell.config[p.phase]
    base = dict(key=p.key, model=p.cell.model.name, model_path=str(p.cell.model.path),
                phase=p.phase, task=_task_label(p),
                after=p.cell.intermediate if p.phase == "target" else None,
                seed=section.get("seed"), cells=p.cells,
                program=program, updates=updates, chips=topology.num_chips,
                price_per_chip_hour=price)
    if error is not None or plan is None:
        return PhaseCost(**base, grad_accumulation=None, step_seconds=None, chip_hours=None,
                         usd=None, fits=False, per_chip_bytes=None, over_by_bytes=0,
                         error=error or "not planned")
    step = plan.step_seconds.get("estimate")
    chip_hours = (updates * plan.grad_accumulation * step * plan.chips / 3600
                  if step is not None else None)
    usd = chip_hours * price if chip_hours is not None and price is not None else None
    return PhaseCost(**base, grad_accumulation=plan.grad_accumulation, step_seconds=step,
                     chip_hours=chip_hours, usd=usd, fits=plan.fits,
                     per_chip_bytes=dict(plan.per_chip_bytes), over_by_bytes=plan.over_by_bytes)


# --------------------------------------------------------------------------- text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _number(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    if x and abs(x) < 10 ** -digits:  # tiny (cpu:N, test sizes): significant digits
        return f"{x:.2g}"
    return f"{x:,.{digits}f}"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:,.2f}"


def render_sweep_cost(cost: SweepCost) -> str:
    """The sweep's phases as a plain-text table, per-model subtotals and totals; phases that
    do not fit or could not be planned are listed after, loudly."""
    header = ("model", "phase", "task", "after", "seed", "cells", "updates", "step s", "chip-h",
              "USD", "fits")
    table = [header]
    for r in cost.rows:
        fits = "error" if r.error is not None else ("yes" if r.fits else "NO")
        table.append((r.model, r.phase, r.task, r.after or "-",
                      "-" if r.seed is None else str(r.seed),
                      str(len(r.cells)), "-" if r.updates is None else f"{r.updates:,}",
                      _number(r.step_seconds, 4), _number(r.chip_hours), _usd(r.usd), fits))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {5, 6, 7, 8, 9}

    def line(row) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines = [f"sweep {cost.sweep} on {cost.topology} ({cost.chips} chips, "
             f"{gib(cost.hbm_bytes)} each): {_plural(cost.cells, 'cell')}, "
             f"{_plural(cost.phases, 'distinct phase')}, "
             f"{_plural(cost.compiles, 'program')} compiled ({cost.compile_seconds:.0f} s)",
             "", line(header), line(tuple("-" * w for w in widths))]
    lines += [line(row) for row in table[1:]]
    price = next((r.price_per_chip_hour for r in cost.rows
                  if r.price_per_chip_hour is not None), None)
    lines += ["", "per model (counted phases only):"]
    for model, entry in cost.by_model().items():
        extra = "".join(f", {entry[k]} {label}" for k, label in (
            ("unfit", "do not fit"), ("errors", "not planned")) if entry[k])
        lines.append(f"  {model}: {_plural(entry['phases'], 'phase')}, "
                     f"{_plural(entry['cells'], 'cell')}, "
                     f"{_number(entry['chip_hours'])} chip-hours, {_usd(entry['usd'])}{extra}")
    usd = cost.usd
    lines.append(f"total: {_number(cost.chip_hours)} chip-hours, "
                 + (f"{_usd(usd)}" if usd is not None else
                    f"no price for {cost.generation}" if price is None else "USD unknown (a "
                    "phase has no price)")
                 + (f" at ${price:,.2f}/chip-hour" if price is not None else "")
                 + f"; {sum(r.counted for r in cost.rows)} of {cost.phases} phases counted "
                 f"(each shared phase once); training steps only, evaluation not included")
    if cost.unfit:
        lines += ["", f"!! {len(cost.unfit)} of {cost.phases} phases DO NOT FIT on "
                  f"{cost.topology} ({gib(cost.hbm_bytes)} per chip) and are NOT in the "
                  f"totals: use a larger slice, remat, LoRA or a smaller micro-batch "
                  f"(xstilts plan --search):"]
        for r in cost.unfit:
            total = (r.per_chip_bytes or {}).get("total")
            lines.append(f"!!   {r.model} {r.phase} {r.task} (key {r.key}, "
                         f"{_plural(len(r.cells), 'cell')}): needs {gib(total)} per chip, "
                         f"over by {gib(r.over_by_bytes)}")
    if cost.errors:
        lines += ["", f"!! {len(cost.errors)} of {cost.phases} phases could not be priced and "
                  f"are NOT in the totals:"]
        for r in cost.errors:
            why = r.error or "no step-time estimate (no FLOP count from XLA)"
            lines.append(f"!!   {r.model} {r.phase} {r.task} (key {r.key}): {why}")
    return "\n".join(lines)


__all__ = ["DEFAULT_MFU", "NOT_PROGRAM_FIELDS", "PhaseCost", "SweepCost", "chip_hour_price",
           "distinct_phases", "phase_updates", "price_sweep", "program_key",
           "render_sweep_cost"]
