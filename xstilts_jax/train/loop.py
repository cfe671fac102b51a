"""The phase runner: train one model on one task, evaluate on the English dev set, keep the best.

A phase is resumable at any point: its data order, dropout keys and learning-rate schedule are
functions of (seed, step), and the checkpoint holds the train state and the loop's own state
(best dev score, evaluations without improvement). Re-running after a kill continues from the
latest checkpoint and produces bit-identical parameters and logs.

Preemption: a SIGTERM (a preemptible VM's notice) during a phase, or JAX's preemption sync
point in a multi-host run with ``jax.distributed`` and its preemption service, makes the loop
save its latest checkpoint at the next update boundary and raise :class:`Preempted`; re-running
resumes from that step, exactly as after a kill.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import threading
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from flax import nnx

from xstilts_jax import sharding
from xstilts_jax.progress import Progress
from xstilts_jax.storage import PathLike, as_path, write_atomic
from xstilts_jax.data.batching import DEFAULT_BUCKETS, bucket_lengths, length_grouped_order
from xstilts_jax.data.prefetch import Prefetch
from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.train import hooks as hook_registry
from xstilts_jax.train.checkpoints import PhaseCheckpoints
from xstilts_jax.train.hooks import Boundary, PhaseHook
from xstilts_jax.train.program import build_program
from xstilts_jax.train.writer import MetricWriter

log = logging.getLogger(__name__)

SHARDINGS_FILE = "shardings.json"  # beside a phase's checkpoints: Program.sharding_table()


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and what is kept."""


class Preempted(TrainingError):
    """The phase stopped on a preemption notice after saving its latest checkpoint at ``step``
    (in ``checkpoint_dir``); re-running the same command resumes there exactly."""

    def __init__(self, phase: str, step: int, checkpoint_dir: str | os.PathLike):
        self.phase, self.step, self.checkpoint_dir = phase, step, as_path(checkpoint_dir)
        super().__init__(f"phase {phase}: preempted at step {step}; checkpoint saved in "
                         f"{self.checkpoint_dir}; re-run the same command to resume")

    def __reduce__(self):  # rebuilt from its fields, not from the message
        return type(self), (self.phase, self.step, self.checkpoint_dir)


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
    """A phase's fields and their defaults: the one schema (a cell's config section,
    ``experiments/defaults.phase``, is made from it)."""

    name: str
    learning_rate: float = 1e-5
    batch_size: int = 32
    num_steps: int | None = None  # optimizer updates; or give num_epochs
    num_epochs: float | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    grad_accumulation: int = 1
    eval_every: int = 1000  # optimizer updates
    checkpoint_every: int | None = None  # default: at every evaluation
    patience: int | None = None  # evaluations without improvement before stopping
    max_length: int = 128
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    # "shuffled": a permutation per epoch; "length_grouped": shuffled, then sorted by length
    # within groups of 32 batches and the batches shuffled (HF's group_by_length): far less
    # padding computed on real lengths (benchmarks/epoch.py), another (as random) data order
    train_order: str = "shuffled"
    eval_batch_size: int | None = None
    # Extractive QA (XTREME's values): windows of max_length tokens starting every doc_stride
    # context tokens, questions cut to max_query_length; answers up to max_answer_length
    # tokens, searched among the n_best_size best starts and ends of each window.
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    seed: int = 0

    def total_updates(self, num_examples: int) -> int:
        if self.num_steps is not None:
            return self.num_steps
        if self.num_epochs is None:
            raise ValueError(f"phase {self.name}: set num_steps or num_epochs")
        micro_per_epoch = math.ceil(num_examples / self.batch_size)
        return max(1, math.ceil(self.num_epochs * micro_per_epoch / self.grad_accumulation))


TRAIN_ORDERS = ("shuffled", "length_grouped")


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled example order of one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


class PhaseData(Protocol):
    """What a phase trains and evaluates on (``SupervisedData``, ``MlmData``, a mixture of
    them); the loss is the head's, paired with it by whoever builds the phase."""

    def num_train_examples(self) -> int: ...

    def train_batch(self, micro_step: int) -> dict[str, np.ndarray]:
        """Micro-batch ``micro_step`` of the training stream, computable for any step (exact resume)."""

    def evaluate(self, eval_step, params, feed) -> dict[str, float]:
        """Dev metrics; the first one is the one early stopping and 'best' follow (higher is
        better). ``feed(batch)`` places a host batch on the mesh (``sharding.feed``)."""


class SupervisedData:
    """A fine-tuning task: shuffled fixed-shape train batches and dev metrics from logits.

    ``dev_metrics(logits)`` gets the dev rows' logits in input order (see ``predict_logits``)
    and returns the metrics, the first of which selects the best checkpoint.
    """

    def __init__(self, train: ModelInputs, dev: ModelInputs, cfg: PhaseConfig, pad_id: int, *,
                 dev_metrics: Callable[[np.ndarray], dict[str, float]]):
        self.train, self.dev, self.cfg, self.pad_id = train, dev, cfg, pad_id
        self.dev_metrics = dev_metrics
        self.per_epoch = math.ceil(train.num_examples / cfg.batch_size)
        self.buckets = bucket_lengths(cfg.max_length, cfg.buckets)
        if cfg.train_order not in TRAIN_ORDERS:
            raise ValueError(f"phase {cfg.name}: train_order must be one of {TRAIN_ORDERS}, "
                             f"got {cfg.train_order!r}")
        self._lengths = train.example_lengths() if cfg.train_order == "length_grouped" else None
        self._epoch, self._batches = None, None

    def num_train_examples(self) -> int:
        return self.train.num_examples

    def train_batch(self, micro_step: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(micro_step, self.per_epoch)
        if epoch != self._epoch:
            if self._lengths is None:
                order = epoch_order(self.num_train_examples(), self.cfg.seed, epoch)
            else:
                order = length_grouped_order(self._lengths, self.cfg.batch_size,
                                             np.random.default_rng([self.cfg.seed, epoch]))
            self._batches = list(self.train.batches(batch_size=self.cfg.batch_size,
                                                    pad_id=self.pad_id, buckets=self.buckets,
                                                    order=order))
            self._epoch = epoch
        return self._batches[index].arrays()

    def evaluate(self, eval_step, params, feed) -> dict[str, float]:
        logits = predict_logits(eval_step, params, self.dev,
                                batch_size=self.cfg.eval_batch_size or self.cfg.batch_size,
                                pad_id=self.pad_id, max_length=self.cfg.max_length,
                                buckets=self.cfg.buckets, feed=feed)
        return self.dev_metrics(logits)


def predict_logits(eval_step, params, inputs: ModelInputs, *, batch_size: int, pad_id: int,
                   max_length: int, buckets: Sequence[int], feed) -> np.ndarray:
    """float32 logits for every row, in input order (nothing dropped): [n, classes] for
    sentence heads, [n, max_length, k] for token heads (positions past a row's bucket are 0).
    ``feed(batch)`` places each host batch on the mesh (``sharding.feed``).

    The device never waits for the host: batches are built and placed ahead in a producer
    thread (``Prefetch``), and a batch's logits are fetched only after the next batch is
    dispatched."""
    out = None

    def collect(batch, result) -> None:
        nonlocal out
        logits = np.asarray(result["logits"])
        if out is None:
            shape = logits.shape[1:] if logits.ndim == 2 else (max_length, *logits.shape[2:])
            out = np.zeros((len(inputs), *shape), np.float32)
        real = batch.example_index >= 0
        if logits.ndim == 2:
            out[batch.example_index[real]] = logits[real]
        else:
            out[batch.example_index[real], :logits.shape[1]] = logits[real]

    placed = ((batch, feed(batch.arrays())) for batch in inputs.batches(
        batch_size=batch_size, pad_id=pad_id, buckets=bucket_lengths(max_length, buckets)))
    running = None  # (host batch, its result on the device) not fetched yet
    with Prefetch(placed, depth=2, name="predict-batches") as ahead:
        for batch, arrays in ahead:
            result = eval_step(params, arrays)
            if running is not None:
                collect(*running)
            running = (batch, result)
    if running is not None:
        collect(*running)
    return out


def preemption_service_active() -> bool:
    """Whether ``jax.distributed`` runs with JAX's preemption service (on by default with
    ``jax.distributed.initialize()``; config ``jax_enable_preemption_service``). Its notifier
    then owns SIGTERM (a C handler, which a Python one would replace) and
    ``multihost_utils.reached_preemption_sync_point`` names a step all hosts save at."""
    try:
        from jax._src import distributed
    except ImportError:  # pragma: no cover - a JAX without it
        return False
    state = distributed.global_state
    return (getattr(state, "client", None) is not None
            and getattr(state, "preemption_sync_manager", None) is not None)


class PreemptionWatch:
    """Whether a preemption notice came, asked at every update boundary (``requested``).

    One process: for the ``with`` block, a SIGTERM handler that only sets a flag, installed in
    the main thread only; the previous handler is put back after the block and is not called
    meanwhile (a warning says so when it was not the default). A second SIGTERM just sets the
    flag again. Outside the block SIGTERM has its previous action (by default the process
    ends; the next run resumes from the last scheduled checkpoint, as after a kill).

    With JAX's preemption service (``jax.distributed``), its notifier owns SIGTERM and the
    notice is its sync point: every host gets True at the same boundary. The step ids are the
    phase's updates, as orbax's ``CheckpointManager.save`` passes them too; the sync point is
    the highest step any host had reached plus one, so a notice between two phases may name a
    step the next phase does not reach (then the hard kill loses the updates since the last
    checkpoint). Several processes without the service get no handler: their hosts could not
    agree on a step to save at.
    """

    def __init__(self, name: str):
        self.name = name
        self.notified = False  # a SIGTERM came (or the sync point was reached)
        self.handling = False  # our handler is installed
        self.service = False
        self._previous = None

    def __enter__(self) -> "PreemptionWatch":
        self.service = preemption_service_active()
        if self.service:
            return self
        if threading.current_thread() is not threading.main_thread():
            log.warning("%s: not in the main thread; SIGTERM is not handled here", self.name)
            return self
        import jax

        if jax.process_count() > 1:
            log.warning("%s: %d processes without JAX's preemption service: SIGTERM is not "
                        "handled (hosts could not agree on a step to save at)",
                        self.name, jax.process_count())
            return self
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # set outside Python: it could not be put back
            log.warning("%s: SIGTERM has a handler not set from Python; left in place",
                        self.name)
            return self
        if previous not in (signal.SIG_DFL, signal.SIG_IGN):
            log.warning("%s: SIGTERM handler %r is replaced during the phase (not called; "
                        "restored after it)", self.name, previous)
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.handling = True
        return self

    def _on_sigterm(self, signum, frame) -> None:
        self.notified = True  # nothing else: the loop acts at its next update boundary

    def __exit__(self, *exc) -> None:
        if self.handling:
            signal.signal(signal.SIGTERM, self._previous)
            self.handling = False

    def requested(self, step: int) -> bool:
        """Whether to stop at update boundary ``step``; asked at every one, on every host."""
        if self.service and not self.notified:
            from jax.experimental import multihost_utils

            self.notified = multihost_utils.reached_preemption_sync_point(step)
        return self.notified


@dataclasses.dataclass
class PhaseResult:
    params: Any  # best parameters (plain dict, on the mesh)
    graphdef: Any
    best_dev: float
    best_step: int
    steps_done: int
    stopped_early: bool
    eval_step: Any  # jitted eval step for these params, reused for zero-shot evaluation
    # (multi-task phases: a function task -> that task's eval step)
    eval_batch_size: int
    feed: Any  # batch -> device arrays on the phase's mesh, by its rules (``sharding.feed``)


def run_phase(cfg: PhaseConfig, model: nnx.Module, data: PhaseData, *, losses,
              phase_dir: PathLike, log_dir: PathLike | None = None, mesh,
              rules=sharding.DEFAULT_RULES, progress: bool = True,
              tensorboard: bool = True, hooks: Sequence[PhaseHook] = ()) -> PhaseResult:
    """Train ``model`` on ``data`` with ``losses`` (one loss, or ``{task: loss}`` for a
    multi-task model and data); evaluate on the dev set every ``eval_every`` updates and keep
    the best. Checkpoints go to ``phase_dir/ckpt``, logs (``metrics.jsonl``, ``tb/``) to
    ``log_dir`` (default ``phase_dir``). Parameters, batches and activations are placed on
    ``mesh`` by the logical-axis ``rules`` (``config.mesh.rules``).

    On a preemption notice (see :class:`PreemptionWatch`) the phase saves its latest checkpoint
    at the current update, whatever the ``checkpoint_every`` schedule, and raises
    :class:`Preempted`; a notice during the last update's evaluation or the final restore
    raises it too (the process was asked to stop).

    ``hooks`` (``train.hooks.PhaseHook``), and those installed in the process, see every
    host micro-batch before it is placed and every update boundary."""
    with PreemptionWatch(cfg.name) as watch:
        return _run_phase(cfg, model, data, losses=losses, phase_dir=phase_dir, log_dir=log_dir,
                          mesh=mesh, rules=rules, progress=progress, tensorboard=tensorboard,
                          watch=watch, hooks=hook_registry.active(hooks))


def _run_phase(cfg: PhaseConfig, model: nnx.Module, data: PhaseData, *, losses, phase_dir,
               log_dir, mesh, rules, progress: bool, tensorboard: bool,
               watch: PreemptionWatch, hooks: Sequence[PhaseHook]) -> PhaseResult:
    phase_dir = as_path(phase_dir)
    total = cfg.total_updates(data.num_train_examples())
    accumulation = cfg.grad_accumulation
    program = build_program(model, losses, mesh=mesh, rules=rules,
                            learning_rate=cfg.learning_rate, total_updates=total,
                            warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
                            max_grad_norm=cfg.max_grad_norm,
                            grad_accumulation=cfg.grad_accumulation, dropout_seed=cfg.seed)
    if sharding.is_primary_host():  # where everything lives; `xstilts plan` prints the same
        phase_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(phase_dir / SHARDINGS_FILE,
                     json.dumps(program.sharding_table(), indent=1, sort_keys=True))
    # Multi-task data (train.multitask.MultiTaskData) names the task of every micro-step; the
    # model then has a head per task, and each task its own jitted steps.
    multitask = None not in program.losses

    # The producer thread (``Prefetch``) reads the training data while this thread may ask
    # it for a task's sample batch (a multi-task phase's eval step, jitted on first use).
    data_lock = threading.Lock()

    def steps_for(task: str | None):
        """(train step, eval step) of ``task``, jitted on its first use with the shardings of
        a sample batch (made only then: making one can cost a whole epoch's batching)."""
        def sample():
            with data_lock:
                return data.train_batch(0) if task is None else data.sample_batch(task)

        return program.jitted(task, sample)

    if multitask:
        def eval_step(task: str):
            return steps_for(task)[1]
    else:
        eval_step = steps_for(None)[1]
    eval_batch_size = cfg.eval_batch_size or cfg.batch_size
    checkpoints = PhaseCheckpoints(phase_dir / "ckpt")
    writer = MetricWriter(log_dir if log_dir is not None else phase_dir, cfg.name,
                          tensorboard=tensorboard)

    restored = checkpoints.restore_latest(program.abstract_state)
    if restored is None:
        state = program.initial_state()
        loop = {"best_dev": -math.inf, "best_step": -1, "bad_evals": 0, "finished": False,
                "stopped_early": False}
    else:
        state, loop = restored
        loop["best_dev"] = float(loop["best_dev"])
        log.info("%s: resuming from update %d", cfg.name, int(state.step))
        writer.truncate_after(int(state.step))

    checkpoint_every = cfg.checkpoint_every or cfg.eval_every

    def preempted(update: int):
        """Save the latest checkpoint at ``update`` (unless the schedule just did) and stop."""
        if checkpoints.latest.latest_step() != update:
            checkpoints.save_latest(update, state, loop)  # waits until written
        writer.flush()
        checkpoints.close()
        log.warning("%s: preempted; saved step %d", cfg.name, update)
        return Preempted(cfg.name, update, phase_dir / "ckpt")

    done = int(state.step)  # updates taken
    bar = Progress(total, done, cfg.name, enabled=progress and not loop["finished"])

    def placed_batches(start: int):
        """(task, the update's micro-batches on the mesh) of every update from ``start``:
        made in the producer thread, ahead of the device (``Prefetch``). With accumulation
        an update's micro-batches (all of one task) go to its step together, as a tuple."""
        for update in range(start, total):
            placed = []
            for m in range(update * accumulation, (update + 1) * accumulation):
                with data_lock:
                    task = data.task_of(m) if multitask else None
                    batch = data.train_batch(m)
                for hook in hooks:
                    batch = hook.on_batch(cfg.name, m, batch)
                placed.append(program.feed(batch))
            yield task, (placed[0] if accumulation == 1 else tuple(placed))

    # The device's metrics of the last update not read yet: an update's are read after the
    # next update is dispatched (the device never waits for the host in between), or at once
    # before anything is saved or evaluated after it.
    unread: tuple | None = None

    def read_metrics() -> None:
        """Fetch the unread update's metrics: a non-finite loss stops the phase, naming that
        update, before anything after it is saved; otherwise log them."""
        nonlocal unread
        if unread is None:
            return
        update, task, metrics = unread
        unread = None
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
            latest = checkpoints.latest.latest_step()
            raise TrainingError(
                f"phase {cfg.name}: non-finite loss ({loss}) at step {update}; stopped without "
                f"saving. Last good checkpoint: "
                f"{'step ' + str(latest) if latest is not None else 'none'} in {phase_dir / 'ckpt'}")
        bar.update(update, loss)
        if update % 10 == 0 or update == total:
            logged = {"loss": loss, "grad_norm": float(metrics["grad_norm"])}
            if task is not None:  # which task this update trained, by its loss
                logged[f"loss/{task}"] = loss
            writer.write(update, "train", logged)

    ahead = Prefetch(placed_batches(total if loop["finished"] else done), depth=2,
                     name=f"{cfg.name}-batches")
    try:
        while not loop["finished"] and done < total:
            if watch.requested(done):
                read_metrics()  # nothing is saved after a non-finite update
                raise preempted(done)
            task, placed = next(ahead)
            state, metrics = steps_for(task)[0](state, placed)  # one dispatch per update
            done += 1
            update = done
            read_metrics()  # the previous update's, while this one runs
            unread = (update, task, metrics)
            is_eval = update % cfg.eval_every == 0 or update == total
            if is_eval:
                read_metrics()  # its train line is logged before the evaluation's
                dev_metrics = data.evaluate(eval_step, state.params, program.feed)
                writer.write(update, "eval", dev_metrics)
                score = next(iter(dev_metrics.values()))
                bar.note(f"{next(iter(dev_metrics))} {score:.2f}")
                if score > loop["best_dev"]:
                    loop.update(best_dev=score, best_step=update, bad_evals=0)
                    checkpoints.save_best(update, state.params, loop)
                else:
                    loop["bad_evals"] += 1
                if cfg.patience is not None and loop["bad_evals"] >= cfg.patience:
                    loop.update(finished=True, stopped_early=True)
            if update == total:
                loop["finished"] = True
            saved = loop["finished"] or update % checkpoint_every == 0 or is_eval
            if saved:
                read_metrics()
                checkpoints.save_latest(update, state, loop)
                writer.flush()  # a bucket's log ends where a resumed run will start
            if hooks:
                boundary = Boundary(cfg.name, update, total, phase_dir, saved, state, metrics)
                for hook in hooks:
                    hook.on_update(boundary)
        read_metrics()
    finally:
        ahead.close()
        bar.close()
        writer.close()

    # The train state is saved (latest): dropped before the best parameters are read back,
    # so that they take its place rather than add to it.
    last = done  # int(state.step), without asking the device
    state = metrics = None
    best = checkpoints.restore_best(program.abstract_state.params)
    # A notice during the last update or the restore (the phase is done and saved), or the
    # sync point at the last boundary: stop all the same (the process was asked to).
    if watch.requested(last):
        raise preempted(last)
    checkpoints.close()
    if best is None:
        raise TrainingError(f"phase {cfg.name}: no best checkpoint in {phase_dir / 'ckpt' / 'best'}")
    best_params, _ = best
    return PhaseResult(params=best_params, graphdef=program.graphdef,
                       best_dev=loop["best_dev"], best_step=loop["best_step"],
                       steps_done=last,
                       stopped_early=loop["stopped_early"], eval_step=eval_step,
                       eval_batch_size=eval_batch_size, feed=program.feed)
