"""``xstilts sweep --backend ray``: the sweep's graph as Ray tasks on an existing cluster.

Every phase is a task asking for ``SweepSpec.resources``: one per model that has a
``prepare`` step, one per intermediate phase not yet trained (a row's shared phase, trained
once), and one per cell not yet done (its target phase, then the zero-shot tests). A cell's
task takes its intermediate phase's task (and its model's) as arguments, so Ray starts it once
they have finished, and not at all when they failed. The run directory, on storage every node
sees, is the only state: the tasks write the phases, ``cell.json`` and the store exactly as
the local backend does, so a sweep started on Ray can be resumed locally and the other way
round.

A task whose worker dies (a preempted VM, an OOM kill) is retried (``MAX_RETRIES``) and resumes
its phase from the phase's last checkpoint (a SIGTERM that the training loop turns into a saved
``Preempted`` is retried too). Each task runs in a fresh worker process (``max_calls=1``): the
accelerator and the JAX caches of one phase are released before the next; the tasks use the
driver's persistent compilation cache, when it has one, so that they load programs instead of
compiling them again.

A failure inside a phase is recorded in its cells as the local backend records it (a failed
intermediate phase or model preparation fails every cell that needs it, naming it); a cell whose
task could not finish after its retries is recorded failed with Ray's error.

``retry_degenerate`` is supported: the cells retrying degenerate phases run as a further wave
once every cell of the previous wave has finished. The seeds picked are those of the local
backend for ``retry_degenerate=1``; with more rounds, several rows retrying, the local backend
goes depth first (a row's second retry before the next row's first) and may number the spare
seeds differently.

Ray is imported only when the backend is used: ``pip install 'xstilts_jax[ray]'``.
"""

from __future__ import annotations

import logging
import numbers
import os
from typing import Any

from etils import epath

from xstilts_jax.config import ConfigError
from xstilts_jax.storage import as_path
from xstilts_jax.experiments.sweep import (Cell, ModelSpec, Plan, SweepSpec, SweepSummary,
                                           error_text, is_preemption, degenerate_retries,
                                           fail_cell, intermediate_failed, phase_done,
                                           prepare_failed, run_one_cell, sweep_groups,
                                           train_shared_phase)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'xstilts_jax[ray]'"
MAX_RETRIES = 3  # a task whose worker died is run again this many times at most


def import_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed: "
                          f"{INSTALL_HINT}") from None
    return ray


def task_options(spec: SweepSpec) -> dict[str, Any]:
    """``spec.resources`` as Ray task options: CPU -> ``num_cpus``, GPU -> ``num_gpus``,
    memory (bytes) -> ``memory``, anything else (TPU, a custom resource) -> ``resources``."""
    options: dict[str, Any] = {"max_retries": MAX_RETRIES, "max_calls": 1}
    custom: dict[str, float] = {}
    for name, amount in spec.resources.items():
        if (not isinstance(amount, numbers.Real) or isinstance(amount, bool) or amount < 0):
            raise ConfigError(f"sweep {spec.name!r}: resources[{name!r}] = {amount!r}: expected "
                              f"a number >= 0")
        if name == "CPU":
            options["num_cpus"] = amount
        elif name == "GPU":
            options["num_gpus"] = amount
        elif name == "memory":
            options["memory"] = amount
        else:
            custom[name] = amount
    if custom:
        options["resources"] = custom
    return options


def connect(ray) -> None:
    """Use the Ray session this process already has, or connect to the cluster at
    ``RAY_ADDRESS`` or the one running on this machine (``ray start --head``)."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=address)
    except ConnectionError as e:
        raise ConfigError(f"--backend ray: no Ray cluster at {address!r} ({e}); start one "
                          f"(`ray start --head` here, or on the cluster) or set RAY_ADDRESS") \
            from None


def _warn_missing_resources(ray, options: dict[str, Any]) -> None:
    """Tasks asking for more than the cluster has wait (for an autoscaler to add nodes)."""
    wanted = {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0),
              **options.get("resources", {})}
    have = ray.cluster_resources()
    for name, amount in wanted.items():
        if amount and have.get(name, 0) < amount:
            log.warning("each phase asks for %s %s, the Ray cluster has %s now: its tasks wait "
                        "until a node with them joins", amount, name, have.get(name, 0))


# ----------------------------------------------------------------------- the tasks

_CACHE_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


def _driver_settings() -> dict[str, Any]:
    """What a task takes from the driver: its persistent compilation cache (``xstilts sweep``
    turns it on in its own process; each task runs in a fresh process that would compile
    every program again; on a cluster, point ``JAX_COMPILATION_CACHE_DIR`` at storage the
    nodes share), and the phase hooks installed in it (``train.hooks.install``), pickled
    with the task so that they run where its phases train."""
    import jax

    from xstilts_jax.train import hooks

    settings: dict[str, Any] = {"hooks": hooks.active()}
    if jax.config.jax_compilation_cache_dir:
        settings.update({name: getattr(jax.config, name) for name in _CACHE_SETTINGS})
    return settings


def _use(settings: dict[str, Any]) -> None:
    """A task's process set up as ``xstilts`` sets up its own: the driver's compilation cache
    and hooks, and the C heap held (heap.py) before the task starts JAX's CPU runtime."""
    import jax

    from xstilts_jax import heap
    from xstilts_jax.train import hooks

    heap.hold_freed_memory()
    for name, value in settings.items():
        if name == "hooks":
            hooks.install(*value)  # a task's process runs one task (max_calls 1)
        else:
            jax.config.update(name, value)


def _prepare_task(settings: dict, model: ModelSpec) -> None:
    _use(settings)
    model.prepare()


def _intermediate_task(settings: dict, _prepared, run_dir: epath.Path, cell: Cell) -> None:
    _use(settings)
    train_shared_phase(run_dir, cell, progress=False)


def _cell_task(settings: dict, _prepared, _intermediate, run_dir: epath.Path, cell: Cell,
               sweep: str, margin: float) -> tuple[dict, int]:
    """Run the cell; its ``cell.json`` record and how many of its phases this task trained."""
    _use(settings)
    trained = sum(not phase_done(run_dir, k) for k in cell.phase_keys.values())
    state = run_one_cell(run_dir, cell, sweep, margin=margin, progress=False)
    return state, trained - sum(not phase_done(run_dir, k) for k in cell.phase_keys.values())


def _cause(error: BaseException) -> BaseException:
    """The exception a task raised, out of Ray's wrapper (Ray's own error otherwise)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def _preempted_class():
    from xstilts_jax.train import loop
    return getattr(loop, "Preempted", None)


# ----------------------------------------------------------------------- the driver

def run_sweep_on_ray(spec: SweepSpec, run_dir: str | os.PathLike, plan: Plan, *,
                     retry_degenerate: int = 0) -> SweepSummary:
    """Run (or resume) ``plan``'s pending cells as Ray tasks and wait for them; the summary
    counts what the local backend counts. ``run_dir`` must be on storage every node sees."""
    ray = import_ray()
    options = task_options(spec)
    connect(ray)
    _warn_missing_resources(ray, options)
    preempted = _preempted_class()
    if preempted is not None:  # a SIGTERMed worker saved and raised: run the task again
        options["retry_exceptions"] = [preempted]
    # (max_calls is an option of ray.remote only, not of .options())
    prepare_remote = ray.remote(**options)(_prepare_task)
    intermediate_remote = ray.remote(**options)(_intermediate_task)
    cell_remote = ray.remote(**options)(_cell_task)

    settings = _driver_settings()
    run_dir = as_path(run_dir)
    summary = SweepSummary(cells=len(plan.cells), done=0, failed={}, already_done=0,
                           trained_phases=0, degenerate=[], retries=[])
    used_seeds = {"intermediate": set(spec.intermediate_seeds),
                  "target": set(spec.target_seeds)}
    retry_seeds: dict[str, int] = {}
    prepared: dict[str, Any] = {}  # model name -> its prepare task (None: nothing to do)
    wave = [(cells, 0) for cells in sweep_groups(plan.cells)]
    while wave:
        intermediates: dict[str, Any] = {}  # phase key -> its task
        submitted = []  # (cell, prepare task, intermediate key, its task, cell task)
        for cells, _ in wave:
            pending = summary.skip_done(run_dir, cells)
            if not pending:
                continue
            model = pending[0].model
            if model.name not in prepared:
                prepared[model.name] = (None if model.prepare is None
                                        else prepare_remote.remote(settings, model))
            prepare_ref = prepared[model.name]
            key = pending[0].phase_keys.get("intermediate")
            if key is not None and key not in intermediates and not phase_done(run_dir, key):
                intermediates[key] = intermediate_remote.remote(settings, prepare_ref, run_dir,
                                                               pending[0])
            intermediate_ref = intermediates.get(key)
            for cell in pending:
                submitted.append((cell, prepare_ref, key, intermediate_ref,
                                  cell_remote.remote(settings, prepare_ref, intermediate_ref,
                                                     run_dir, cell, spec.name,
                                                     spec.degenerate_margin)))
        if submitted:
            log.info("%d cells and %d intermediate phases submitted to Ray", len(submitted),
                     len(intermediates))
        _wait_logging(ray, {ref: cell.name for cell, *_, ref in submitted})
        for key, ref in intermediates.items():
            if _get(ray, ref)[1] is None:
                summary.trained_phases += 1
        for cell, prepare_ref, key, intermediate_ref, cell_ref in submitted:
            _collect(ray, run_dir, spec, summary, cell, prepare_ref, key, intermediate_ref,
                     cell_ref)
        if summary.preempted:
            break
        next_wave = []
        for cells, attempt in wave:
            if attempt >= retry_degenerate:
                continue
            for group in degenerate_retries(spec, run_dir, cells, attempt, used_seeds,
                                            retry_seeds):
                summary.retries += [c.name for c in group]
                summary.cells += len(group)
                next_wave.append((group, attempt + 1))
        wave = next_wave
    return summary


def _get(ray, ref) -> tuple[Any, BaseException | None]:
    """A task's value, or the exception it (or Ray) raised."""
    try:
        return ray.get(ref), None
    except ray.exceptions.RayError as e:
        return None, _cause(e)


def _wait_logging(ray, names: dict) -> None:
    """Wait for every cell task, logging each as it ends."""
    remaining = list(names)
    while remaining:
        ready, remaining = ray.wait(remaining, num_returns=1)
        value, error = _get(ray, ready[0])
        state = "failed" if error is not None else value[0]["state"]
        log.info("cell %s: %s (%d still running or waiting)", names[ready[0]], state,
                 len(remaining))


def _collect(ray, run_dir: epath.Path, spec: SweepSpec, summary: SweepSummary, cell: Cell,
             prepare_ref, key: str | None, intermediate_ref, cell_ref) -> None:
    """Count a submitted cell in ``summary``; record it failed where what it needed failed
    (its cell task never ran) or its task could not finish."""
    error = None
    if prepare_ref is not None and (cause := _get(ray, prepare_ref)[1]) is not None:
        error = cause, prepare_failed(cell.model, cause)
    elif intermediate_ref is not None and (cause := _get(ray, intermediate_ref)[1]) is not None:
        error = cause, intermediate_failed(cell, key, cause)
    else:
        value, cause = _get(ray, cell_ref)
        if cause is None:
            state, trained = value
            summary.trained_phases += trained
            summary.add(cell.name, state)
            return
        error = cause, f"its Ray task did not finish ({MAX_RETRIES} retries): {error_text(cause)}"
    cause, text = error
    if is_preemption(cause):  # retried and preempted again: saved, resumed by the next run
        summary.preempted = True
        return
    log.error("cell %s failed: %s", cell.name, text.splitlines()[0])
    summary.add(cell.name, fail_cell(run_dir, cell, spec.name, text))


__all__ = ["INSTALL_HINT", "MAX_RETRIES", "connect", "import_ray", "run_sweep_on_ray",
           "task_options"]
