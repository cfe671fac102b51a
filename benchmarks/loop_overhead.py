"""What the host adds to the device's critical path: the training loop and dev/test prediction
on a simulated device.

What it measures
    On a CPU the real step and the host's own work share the cores, so the host's cost hides
    inside a big step. Here the device is simulated: the loss of the project's own train and
    eval steps (``train.program.build_program``: ``Steps.train_step`` / ``eval_step``) starts
    with a host callback (``jax.pure_callback``) that sleeps D ms, so the "device" is busy for
    D ms without using a core, in the data path of everything after it (the loss, the
    backward pass, the update). The model is a 1-block encoder of hidden size 32 without
    dropout (on a CPU drawing the dropout masks took most of its step); batches are 32 x 128
    token ids, one bucket.

    * ``train``: ``train.loop.run_phase`` trains ``--updates`` updates (no evaluation before
      the last update), as ``xstilts run`` does: progress, the metrics log and TensorBoard on.
    * ``predict``: ``train.loop.predict_logits`` over ``--batches`` batches, as the dev
      evaluation and the zero-shot test prediction call it.
    * ``alone``: the same jitted train (eval) step dispatched back to back on one placed
      batch, nothing fetched until the end: the device-bound pace, D plus the model's own
      compute on XLA:CPU (which is not small: ~14 ms for this train step at 128 tokens, the
      cost of XLA:CPU's small kernels; ~3 ms for the eval step).

    The callback records when each sleep starts: at steady state (the first ``--skip`` steps
    left out) the mean interval between two starts is T, the time the device takes per
    update (or per batch). T - alone is what the loop adds to the critical path, and
    (T - alone) / T the part of each update the device waits for the host. T - D (D the
    median measured sleep, a little over the one asked) is printed too: it is the host's
    share only where the model's own compute is negligible, as on a real chip for a small
    model.

How to run
    HF_HUB_OFFLINE=1 python benchmarks/loop_overhead.py --label after
    # the code of another checkout (e.g. a git worktree of an older commit), same machine:
    PYTHONPATH=/tmp/old-worktree python benchmarks/loop_overhead.py --label before

    Each run appends its numbers, with the date, the machine and the commit of the code it
    measured, to ``benchmarks/results/loop_overhead.json`` (``--out``), which
    ``docs/DESIGN.md`` quotes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "loop_overhead.json"
BATCH, LENGTH = 32, 128


class SimulatedDevice:
    """A host callback that sleeps ``delay`` seconds inside a jitted step, and when it ran."""

    def __init__(self, delay: float):
        self.delay = delay
        self.starts: list[float] = []
        self.slept: list[float] = []

    def _busy(self, x):
        start = time.perf_counter()
        if self.delay:
            time.sleep(self.delay)
        self.starts.append(start)
        self.slept.append(time.perf_counter() - start)
        return np.zeros((), np.float32)

    def loss(self, base):
        """``base`` (a loss: logits, batch -> (total, count)) after the simulated device's
        D ms: the logits wait for the callback (0, added), and so does everything after them."""
        import jax
        import jax.numpy as jnp

        def loss(logits, batch):
            wait = jax.pure_callback(self._busy, jax.ShapeDtypeStruct((), jnp.float32),
                                     jax.lax.stop_gradient(logits).sum())
            return base(logits + wait.astype(logits.dtype), batch)

        return loss

    def reset(self) -> None:
        self.starts.clear()
        self.slept.clear()

    def period(self, first: int, last: int, skip: int) -> tuple[float, float]:
        """(mean interval between the starts of steps [first + skip, last): the pace, epoch
        boundaries and other bursts included; median sleep)."""
        starts = np.asarray(self.starts[first:last])
        return (float(np.mean(np.diff(starts[skip:]))),
                float(np.median(self.slept[first + skip:last])))


def model():
    from flax import nnx

    from xstilts_jax.models.encoder import Encoder, EncoderConfig
    from xstilts_jax.models.heads import ClassificationHead, TaskModel

    config = EncoderConfig(vocab_size=1000, hidden_size=32, num_layers=1, num_heads=2,
                           intermediate_size=64, max_position_embeddings=LENGTH + 2,
                           hidden_dropout=0.0, attention_dropout=0.0)
    rngs = nnx.Rngs(0)
    return TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, 3, rngs=rngs))


def inputs(n: int, seed: int):
    from xstilts_jax.data.inputs import ModelInputs

    rng = np.random.default_rng(seed)
    rows = [[0, *rng.integers(5, 1000, LENGTH - 2).tolist(), 2] for _ in range(n)]
    return ModelInputs(rows, [[0] * LENGTH for _ in rows],
                       {"labels": rng.integers(0, 3, n).astype(np.int32)})


def compiled_steps(program, batch):
    """(state, placed batch, train step, eval step) of ``program``, both steps compiled and
    run a few times on ``batch``."""
    import jax

    train_step, eval_step = program.jitted(None, batch)
    state = program.initial_state()
    placed = program.feed(batch)
    for _ in range(3):  # compiled here
        state, metrics = train_step(state, placed)
        jax.block_until_ready(eval_step(state.params, placed))
    jax.block_until_ready(metrics)
    return state, placed, train_step, eval_step


def measure(delay_ms: float, updates: int, batches: int, skip: int, workdir: pathlib.Path):
    import jax

    from xstilts_jax import sharding
    from xstilts_jax.losses import classification_loss
    from xstilts_jax.train.loop import PhaseConfig, SupervisedData, predict_logits, run_phase
    from xstilts_jax.train.program import build_program

    device = SimulatedDevice(delay_ms / 1e3)
    loss = device.loss(classification_loss)
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    test = inputs(BATCH * batches, seed=3)
    sample = next(iter(test.batches(batch_size=BATCH, pad_id=1, buckets=(LENGTH,)))).arrays()
    program = build_program(model(), loss, mesh=mesh, learning_rate=1e-5,
                            total_updates=updates)
    state, placed, train_step, eval_step = compiled_steps(program, sample)
    out = {}
    # Alone: each step dispatched back to back on one placed batch, nothing else on the
    # host and nothing fetched until the end: the device-bound pace.
    device.reset()
    for _ in range(updates):
        state, metrics = train_step(state, placed)
    jax.block_until_ready(metrics)
    alone_train = device.period(0, updates, skip)
    device.reset()
    results = [eval_step(state.params, placed) for _ in range(batches)]
    jax.block_until_ready(results)
    alone_predict = device.period(0, batches, skip)
    del results

    train = inputs(BATCH * 16, seed=1)
    cfg = PhaseConfig(name=f"bench-{delay_ms:g}ms", batch_size=BATCH, num_steps=updates,
                      eval_every=updates, max_length=LENGTH, buckets=(LENGTH,))
    data = SupervisedData(train, inputs(BATCH, seed=2), cfg, 1,
                          dev_metrics=lambda logits: {"dev_accuracy": 0.0})
    device.reset()
    run_phase(cfg, model(), data, losses=loss, phase_dir=workdir / cfg.name, mesh=mesh,
              progress=True, tensorboard=True)
    out["train"] = _row(device.period(0, updates, skip), alone_train)

    kwargs = dict(batch_size=BATCH, pad_id=1, max_length=LENGTH, buckets=(LENGTH,),
                  feed=program.feed)
    device.reset()
    predict_logits(eval_step, state.params, test, **kwargs)
    out["predict"] = _row(device.period(0, batches, skip), alone_predict)
    return out


def _row(loop: tuple[float, float], alone: tuple[float, float]) -> dict:
    (period, slept), (alone_period, _) = loop, alone
    return {"T_ms": 1e3 * period, "D_slept_ms": 1e3 * slept, "alone_ms": 1e3 * alone_period,
            "T_minus_D_ms": 1e3 * (period - slept), "host_ms": 1e3 * (period - alone_period),
            "device_waits": (period - alone_period) / period}


def commit_of_code() -> str:
    import xstilts_jax

    root = pathlib.Path(xstilts_jax.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "xstilts_jax"], capture_output=True, text=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[1.0, 3.0, 10.0],
                        help="D, the simulated device's ms per step")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--skip", type=int, default=20, help="steps left out at the start")
    parser.add_argument("--label", default="", help="e.g. before / after")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    import jax

    commit = commit_of_code()
    print(f"code {commit}, jax {jax.__version__}, {jax.devices()[0].platform}, "
          f"batch {BATCH} x {LENGTH}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for delay in args.delays:
            results[f"{delay:g}"] = measure(delay, args.updates, args.batches, args.skip,
                                            pathlib.Path(tmp))
    print(f"\n{'D ms':>6} {'what':>8} {'T ms':>8} {'D slept':>8} {'alone':>8} {'T - D':>8} "
          f"{'T-alone':>8} {'waits':>7}")
    for delay, parts in results.items():
        for what, r in parts.items():
            print(f"{delay:>6} {what:>8} {r['T_ms']:8.3f} {r['D_slept_ms']:8.3f} "
                  f"{r['alone_ms']:8.3f} {r['T_minus_D_ms']:8.3f} {r['host_ms']:8.3f} "
                  f"{100 * r['device_waits']:6.1f}%")
    record = {"date": datetime.date.today().isoformat(), "machine": platform.node(),
              "cpus": len(os.sched_getaffinity(0)), "commit": commit, "label": args.label,
              "platform": jax.devices()[0].platform, "updates": args.updates,
              "batches": args.batches,
              "delays_ms": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.write_text(json.dumps(previous + [record], indent=1) + "\n")
    print(f"\nappended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
