"""Multi-task intermediate training: one head per task on the shared encoder, one task per update.

The paper's multi-task intermediate phase (jiant's ``multitask`` runner) trains the nine
intermediate tasks together: every optimizer update samples one task, draws that task's
next batch (all micro-batches of a gradient-accumulated update come from the same task) and
updates the encoder and that task's head.

Sampling (``task_probabilities``), as jiant's samplers:

- ``proportional`` (jiant's default ``ProportionalMultiTaskSampler``): p_t ∝ n_t, the number
  of training examples;
- ``temperature`` (``TemperatureMultiTaskSampler``): p_t ∝ n_t ** (1 / T); T = 1 is
  proportional, large T approaches uniform;
- ``uniform`` (``UniformMultiTaskSampler``): p_t = 1 / #tasks.

``examples_cap`` (jiant's ``examples_cap``) replaces n_t by min(n_t, cap) in the weights
only: a capped task is sampled less, and still trained on all of its examples.

Determinism and resuming. The task of update u is a pure function of (seed, u): draws come
in blocks of ``BLOCK`` from ``np.random.default_rng([seed, STREAM, block])``, so a run
resumed at update k recomputes exactly the sequence the killed run would have drawn; how many
updates each task had before u (where its own data stream is) is a running count over those
blocks. Nothing about the sampler needs to be checkpointed.

The optimizer. One AdamW over the encoder and every head, as jiant's single optimizer. A
head whose task is not drawn gets a zero gradient: its Adam moments decay and, once it has
been trained, its momentum keeps moving it, as in jiant under PyTorch 1.x (whose
``zero_grad`` zeroes gradients rather than dropping them). Two small differences from
PyTorch's AdamW remain: a head not yet drawn gets the decoupled weight decay (a relative
1e-7 per update at lr 1e-5), and Adam's bias correction counts every update, not the head's
own (PyTorch keeps a step count per parameter).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

SAMPLING = ("proportional", "temperature", "uniform")
BLOCK = 4096  # updates drawn per block of the sampler
STREAM = 0x7A5C  # the sampler's random stream id, apart from every data stream's


def task_probabilities(sizes: Mapping[str, int], *, sampling: str = "proportional",
                       temperature: float = 1.0, examples_cap: int | None = None
                       ) -> dict[str, float]:
    """Probability of drawing each task, from its number of training examples."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING)}, not {sampling!r}")
    if not sizes:
        raise ValueError("no tasks to sample")
    for name, n in sizes.items():
        if n < 1:
            raise ValueError(f"task {name!r} has no training examples")
    if examples_cap is not None and examples_cap < 1:
        raise ValueError(f"examples_cap must be positive, got {examples_cap}")
    if sampling == "temperature" and not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if sampling == "uniform":
        weights = {name: 1.0 for name in sizes}
    else:
        power = 1.0 / temperature if sampling == "temperature" else 1.0
        weights = {name: float(min(n, examples_cap or n)) ** power for name, n in sizes.items()}
    total = math.fsum(weights.values())
    return {name: w / total for name, w in weights.items()}


class TaskSampler:
    """The task of every update, and how many updates that task had before it."""

    def __init__(self, probabilities: Mapping[str, float], seed: int):
        self.names = tuple(probabilities)
        p = np.asarray([probabilities[n] for n in self.names], np.float64)
        if (p < 0).any() or not p.sum() > 0:
            raise ValueError(f"bad task probabilities {dict(probabilities)}")
        self._cumulative = np.cumsum(p / p.sum())
        self.seed = seed
        self._blocks: list[np.ndarray] = []  # task index of each update, per block
        self._before: list[np.ndarray] = []  # per block: each task's updates before it

    def _block(self, b: int) -> None:
        while len(self._blocks) <= b:
            i = len(self._blocks)
            u = np.random.default_rng([self.seed, STREAM, i]).random(BLOCK)
            draws = np.minimum(np.searchsorted(self._cumulative, u, side="right"),
                               len(self.names) - 1).astype(np.int32)
            before = (np.zeros(len(self.names), np.int64) if i == 0 else
                      self._before[i - 1] + np.bincount(self._blocks[i - 1],
                                                        minlength=len(self.names)))
            self._blocks.append(draws)
            self._before.append(before)

    def draws(self, start: int, stop: int) -> np.ndarray:
        """Task indices (into ``names``) of updates [start, stop)."""
        if start < 0 or stop < start:
            raise ValueError(f"bad update range [{start}, {stop})")
        if stop == start:
            return np.zeros(0, np.int32)
        self._block((stop - 1) // BLOCK)
        out = np.concatenate(self._blocks[start // BLOCK:(stop - 1) // BLOCK + 1])
        offset = start // BLOCK * BLOCK
        return out[start - offset:stop - offset]

    def task(self, update: int) -> str:
        b, i = divmod(update, BLOCK)
        self._block(b)
        return self.names[int(self._blocks[b][i])]

    def position(self, update: int) -> int:
        """How many earlier updates drew this update's task: its place in that task's stream."""
        b, i = divmod(update, BLOCK)
        self._block(b)
        t = self._blocks[b][i]
        return int(self._before[b][t] + np.count_nonzero(self._blocks[b][:i] == t))


class MultiTaskData:
    """PhaseData over several tasks: each update's batches come from the sampled task's own
    data (a ``PhaseData`` per task: ``SupervisedData``, ``MlmData``), read at that task's own
    position, so every task sees its epochs in order whatever the mixture.

    ``selection``: the tasks whose main dev metric is averaged into ``dev_average``, the
    metric that selects the best checkpoint (jiant averages its tasks' metrics); default all.
    """

    def __init__(self, members: Mapping[str, object], probabilities: Mapping[str, float], *,
                 seed: int, grad_accumulation: int = 1, selection: Sequence[str] | None = None):
        if set(members) != set(probabilities):
            raise ValueError(f"tasks {sorted(members)} and probabilities "
                             f"{sorted(probabilities)} differ")
        self.members = dict(members)
        self.probabilities = dict(probabilities)
        self.sampler = TaskSampler({n: probabilities[n] for n in members}, seed)
        self.grad_accumulation = grad_accumulation
        self.selection = tuple(members if selection is None else selection)
        unknown = [t for t in self.selection if t not in members]
        if unknown or not self.selection:
            raise ValueError(f"selection {list(self.selection)} must name some of the tasks "
                             f"{list(members)}")

    def num_train_examples(self) -> int:
        return sum(m.num_train_examples() for m in self.members.values())

    def task_of(self, micro_step: int) -> str:
        return self.sampler.task(micro_step // self.grad_accumulation)

    def train_batch(self, micro_step: int) -> dict[str, np.ndarray]:
        update, micro = divmod(micro_step, self.grad_accumulation)
        name = self.sampler.task(update)
        position = self.sampler.position(update)
        return self.members[name].train_batch(position * self.grad_accumulation + micro)

    def sample_batch(self, task: str) -> dict[str, np.ndarray]:
        """A batch of ``task`` (its first), for shapes and shardings."""
        return self.members[task].train_batch(0)

    def evaluate(self, eval_step_for: Callable[[str], object], params, feed) -> dict[str, float]:
        """``dev_average`` (mean of the selected tasks' main metrics) first, then every task's
        metrics as ``<task>/<metric>``."""
        main, out = {}, {}
        for name, member in self.members.items():
            metrics = member.evaluate(eval_step_for(name), params, feed)
            main[name] = next(iter(metrics.values()))
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
        average = float(np.mean([main[t] for t in self.selection]))
        return {"dev_average": average, **out}


__all__ = ["BLOCK", "SAMPLING", "MultiTaskData", "TaskSampler", "task_probabilities"]
