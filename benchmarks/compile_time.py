"""Compile time of the xlmr-large train step, for each remat policy of the encoder.

What it measures
    Seconds to trace + lower (``jax.jit(...).lower``) and to compile (``.compile()``) the
    project's own train step, ``xstilts_jax.train.steps.Steps.jit_train_step``: ``TaskModel``
    = ``Encoder`` + ``ClassificationHead`` (3 labels), ``classification_loss``, the AdamW of
    ``train.optimizer.make_optimizer``, forward + backward + update, on a one-device mesh of
    the default backend. Parameters, optimizer state and batch are ``ShapeDtypeStruct``s
    with their shardings: no weight is materialised, so xlmr-large (560M parameters) costs
    no memory and no initialisation time. Batch 8 x 128 by default.

    Compile time grows with the program: with the 24 blocks unrolled XLA optimises 24 copies
    of the block's forward and backward, with the blocks under ``scan`` one. The remat
    policy changes what the backward recomputes ("none": nothing; "full": the whole block;
    "dots_saveable": everything but the matrix products).

    A train step traced for CPU devices unrolls the blocks (``encoder.unrolled_on_cpu``: XLA:CPU
    runs them ~10 % faster so), so on a CPU every policy compiles 24 blocks; ``--keep-scan``
    measures the scanned program an accelerator compiles, on this CPU.
    Code without ``EncoderConfig.remat`` (before the layers were scanned) is measured once,
    as "unrolled". Each measurement runs in a fresh process, so neither jax's nor XLA's
    in-memory caches carry over, and the persistent compilation cache is off.

How to run
    HF_HUB_OFFLINE=1 python benchmarks/compile_time.py                      # xlmr-large, 8x128
    HF_HUB_OFFLINE=1 python benchmarks/compile_time.py --keep-scan          # as on a TPU/GPU
    HF_HUB_OFFLINE=1 python benchmarks/compile_time.py --preset tiny        # smoke run
    # the code of another checkout (e.g. a git worktree of an older commit):
    PYTHONPATH=/tmp/old-worktree python benchmarks/compile_time.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

NUM_LABELS = 3


def measure(preset: str, remat: str | None, batch: int, seq: int, keep_scan: bool = False) -> dict:
    """(lower seconds, compile seconds) of one train step, in this process. ``keep_scan``: on
    a CPU too, the blocks under ``scan`` as accelerators compile them (a CPU train step is
    traced with them unrolled: ``encoder.unrolled_on_cpu``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    import xstilts_jax
    from xstilts_jax import sharding
    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.models.presets import get_preset
    from xstilts_jax.train.optimizer import make_optimizer
    from xstilts_jax.train.steps import Steps, TrainState

    jax.config.update("jax_enable_compilation_cache", False)
    config = get_preset(preset) if remat is None else get_preset(preset, remat=remat)

    def build():
        rngs = nnx.Rngs(0)
        return TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, NUM_LABELS, rngs=rngs))

    graphdef, abstract_params = nnx.split(nnx.eval_shape(build))
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    tx = make_optimizer(learning_rate=1e-5, total_steps=10_000)
    steps = Steps(graphdef, tx, mesh)
    state_shardings = steps.shardings(abstract_params)
    params = nnx.to_pure_dict(abstract_params)
    abstract_state = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p),
                                                         jnp.zeros((), jnp.int32)),
                                    params)
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                         abstract_state, state_shardings)
    batch_arrays = dict(input_ids=np.zeros((batch, seq), np.int32),
                        attention_mask=np.ones((batch, seq), np.int32),
                        token_type_ids=np.zeros((batch, seq), np.int32),
                        labels=np.zeros((batch,), np.int32),
                        weight=np.ones((batch,), np.float32))
    batch_shardings = steps.batch_shardings(batch_arrays)
    batch_structs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_shardings[k])
                     for k, v in batch_arrays.items()}
    train_step = steps.jit_train_step(state_shardings, batch_shardings)
    if keep_scan:
        import contextlib

        from xstilts_jax.train import steps as steps_module

        steps_module.unrolled_on_cpu = contextlib.nullcontext  # what an accelerator traces

    t0 = time.perf_counter()
    lowered = train_step.lower(state, batch_structs)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return {"preset": preset, "remat": remat or "unrolled", "lower_s": t1 - t0,
            "compile_s": t2 - t1, "code": os.path.dirname(os.path.dirname(xstilts_jax.__file__)),
            "backend": jax.default_backend(), "layers": config.num_layers,
            "blocks": "scan" if keep_scan or jax.default_backend() != "cpu" else "unrolled on cpu",
            "params_m": config.num_params() / 1e6}


def remat_policies() -> list[str | None]:
    """The encoder's remat policies, or [None] for code that has none (unrolled layers)."""
    from xstilts_jax.models.encoder import EncoderConfig

    if "remat" not in {f.name for f in dataclasses.fields(EncoderConfig)}:
        return [None]
    from xstilts_jax.models.encoder import REMAT_POLICIES

    return list(REMAT_POLICIES)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="xlmr-large")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--remat", nargs="*", default=None,
                   help="policies to measure (default: all the code has)")
    p.add_argument("--keep-scan", action="store_true",
                   help="on a CPU, compile the blocks under scan as an accelerator does (a CPU "
                        "train step unrolls them by default)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process: one policy
    args = p.parse_args(argv)
    if args.one is not None:
        remat = None if args.one == "unrolled" else args.one
        print(json.dumps(measure(args.preset, remat, args.batch, args.seq, args.keep_scan)))
        return 0

    policies = remat_policies() if args.remat is None else args.remat
    rows = []
    for remat in policies:
        cmd = [sys.executable, __file__, "--preset", args.preset, "--batch", str(args.batch),
               "--seq", str(args.seq), "--one", remat or "unrolled"] + (
                   ["--keep-scan"] if args.keep_scan else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"  measured {rows[-1]['remat']}: {rows[-1]['lower_s'] + rows[-1]['compile_s']:.1f} s",
              file=sys.stderr)
    first = rows[0]
    print(f"train-step compile time: preset {first['preset']} ({first['layers']} layers, "
          f"{first['params_m']:.0f}M params), batch {args.batch} x {args.seq}, "
          f"backend {first['backend']}, blocks {first.get('blocks', 'unrolled')}, "
          f"code {first['code']}")
    print(f"  {'remat':>14}  {'lower (s)':>9}  {'compile (s)':>11}  {'total (s)':>9}")
    for r in rows:
        print(f"  {r['remat']:>14}  {r['lower_s']:9.1f}  {r['compile_s']:11.1f}  "
              f"{r['lower_s'] + r['compile_s']:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
