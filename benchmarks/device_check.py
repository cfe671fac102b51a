"""The accelerator check in one go: every number a GPU lease is for, measured in one run and
written to one JSON, so a short lease is spent measuring, not typing.

What it measures (each part in its own subprocess, under its own time limit)
    =================  ===========================================================  ========
    part               what                                                         limit
    =================  ===========================================================  ========
    device             platform, device kind and count, jax/jaxlib versions, and   25 s
                       the attention implementation the encoder will use for
                       xlmr-large in bf16 on this platform
    peak               the bf16 matmul peak: ``peak.measure_peak(dtype="bfloat16",  40 s
                       n=8192, rounds=7, calls=50)``, median TFLOP/s (and the
                       same at the default precision, ``train_step``'s own peak)
    train_xlmr_large   the project's jitted train step (``Steps``, as               145 s
                       ``train_step.py``'s MFU section), xlmr-large, full vocab,
                       bf16 compute, B=32 S=256, dropout 0.1: ms/step, tokens/s,
                       model TFLOP/s (``train_step.model_flops_per_step``), MFU
                       = model TFLOP/s / the peak part's median
    train_xlmr_base    the same for xlmr-base                                       65 s
    retrieval          ``xstilts_jax.retrieval.knn`` top-4 of 100k queries against  60 s
                       100k keys, d = 768, device arrays, float32 (its default,
                       ``Precision.HIGHEST``) and bfloat16 compute: seconds per
                       search and TFLOP/s (2 N^2 d FLOPs)
    xstilts_run        a tiny ``xstilts run`` end to end on the device: the demo's  100 s
                       synthetic tasks (a small world), a random-init demo-sized
                       encoder saved as an HF checkpoint, ``configs/xtreme.py:
                       synthetic_nli,synthetic_paraphrase,tiny``, a fresh compile
                       cache; its exit code, wall time, results file and metric
    loop_overhead      ``loop_overhead.py`` on the device: the training loop and     40 s
                       dev/test prediction with a simulated device step of D = 1,
                       3, 10 ms (a host callback sleeping D ms), 200 updates and
                       200 batches each: T - D and the share of each step the
                       device waits for the host (issue 25: <= 0.15 ms at 3 ms)
    =================  ===========================================================  ========

    The limits add up to 475 s, so the measuring fits in 8 minutes on a GPU (the install of
    ``device_check.sh`` comes before and is timed apart). A part that hangs, runs out of
    memory or fails is killed or recorded (``status`` timeout | error, its log's tail) and the
    others still run. Every child sees one GPU after another, never two at once, since JAX
    preallocates most of the device's memory per process.

Attention
    The train parts ask the encoder for ``attention="auto"`` (``--attention`` overrides) when
    ``EncoderConfig`` has that field, and record what
    ``models.encoder.resolve_attention(config, platform)`` says will run (cuDNN's fused
    kernel through ``jax.nn.dot_product_attention`` on a GPU where the shapes allow, XLA
    elsewhere). If the cuDNN step fails to build, the part retries with ``"xla"`` and records
    why. Without that field or function it records ``"xla (encoder has no attention
    option)"``: the encoder's own einsum attention is what runs.

--dry-run
    The same parts on the CPU with tiny shapes (the ``tiny`` preset, B=4 S=32, a [256]^2
    peak, 2048 x 2048 retrieval, a direct-fine-tuning ``xstilts run`` on two languages), the
    same JSON, so the script is exercised by the test suite and cannot rot. Its numbers
    mean nothing.

The JSON (``SCHEMA`` lists every field and its type; a part that failed leaves its numbers
null): ``mode``, ``device``, versions, ``attention``, ``bf16_peak_tflops``,
``train.xlmr_large`` / ``train.xlmr_base`` (ms/step, tokens/s, model TFLOP/s, MFU %),
``retrieval``, ``xstilts_run``, ``loop_overhead``, ``goal`` (xlmr-large MFU >= 45 % of the measured bf16 peak,
``met`` null when there is no MFU or not a GPU), ``parts`` (status, seconds, limit, error,
log tail each), ``total_seconds``.

Run (from the repository root)
    bash benchmarks/device_check.sh --out device_check.json          # a GPU machine: installs, runs
    bash benchmarks/device_check.sh --dry-run --out /tmp/dc.json     # CPU, tiny, no install
    bash benchmarks/device_check.sh --no-install                     # the environment as it is
    python benchmarks/device_check.py --parts peak train_xlmr_large  # some parts, no install
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))  # peak.py, train_step.py beside this file

# name -> (limit on a GPU, limit in --dry-run), seconds. The dry-run limits only stop a hang
# on a loaded CI machine; the GPU ones sum to 475 s (< 8 minutes).
PARTS = {
    "device": (25, 120),
    "peak": (40, 120),
    "train_xlmr_large": (145, 240),
    "train_xlmr_base": (65, 240),
    "retrieval": (60, 240),
    "xstilts_run": (100, 300),
    "loop_overhead": (40, 240),
}
GOAL_MFU_PERCENT = 45.0
ATTENTION_UNAVAILABLE = "xla (encoder has no attention option)"
TRAIN_PRESETS = {"train_xlmr_large": "xlmr-large", "train_xlmr_base": "xlmr-base"}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Shapes of one mode: the issue's on a GPU, tiny ones in --dry-run."""

    peak_n: int
    peak_rounds: int
    peak_calls: int
    train_preset: str | None  # None: the part's own preset (xlmr-large / xlmr-base)
    train_batch: int
    train_seq: int
    train_rounds: int
    train_calls: int
    retrieval_n: int
    retrieval_d: int
    retrieval_k: int
    retrieval_rounds: int
    run_config: str
    run_overrides: tuple[str, ...]
    loop_delays_ms: tuple[float, ...]
    loop_steps: int  # updates trained, and batches predicted, per delay
    loop_skip: int


FULL = Sizes(peak_n=8192, peak_rounds=7, peak_calls=50, train_preset=None, train_batch=32,
             train_seq=256, train_rounds=5, train_calls=5, retrieval_n=100_000,
             retrieval_d=768, retrieval_k=4, retrieval_rounds=3,
             run_config="synthetic_nli,synthetic_paraphrase,tiny", run_overrides=(),
             loop_delays_ms=(1.0, 3.0, 10.0), loop_steps=200, loop_skip=20)
DRY = Sizes(peak_n=256, peak_rounds=2, peak_calls=2, train_preset="tiny", train_batch=4,
            train_seq=32, train_rounds=2, train_calls=2, retrieval_n=2048, retrieval_d=768,
            retrieval_k=4, retrieval_rounds=2, run_config="none,synthetic_paraphrase,tiny",
            # One phase, few steps, two languages: the whole CLI path, in seconds.
            run_overrides=("--config.target.num_steps=4", "--config.target.eval_every=4",
                           "--config.eval.languages=('en','xa')"),
            loop_delays_ms=(3.0,), loop_steps=12, loop_skip=2)

NUM, STR, BOOL, INT = (int, float), (str,), (bool,), (int,)
NULL = (type(None),)
_PART = {"status": STR, "seconds": NUM, "limit_seconds": NUM, "error": STR + NULL,
         "log_tail": STR}
_TRAIN = {"preset": STR, "layers": INT, "hidden": INT, "heads": INT, "vocab": INT, "batch": INT,
          "seq": INT, "dtype": STR, "attention": STR, "attention_fallback": STR + NULL,
          "compile_seconds": NUM, "ms_per_step": NUM, "tokens_per_s": NUM,
          "model_tflop_per_step": NUM, "model_tflops": NUM, "mfu_percent": NUM + NULL,
          "loss": NUM}
_SEARCH = {"seconds": NUM, "tflops": NUM}
# Every field of the JSON and its types; a dict is a nested object, and a part that failed
# leaves its object null (its `parts` entry says why).
SCHEMA = {
    "schema_version": INT, "mode": STR, "command": STR, "started_utc": STR,
    "install": [{"command": STR, "rc": INT, "seconds": NUM}],
    "device": {"platform": STR, "device_kind": STR, "count": INT},
    "jax_version": STR + NULL, "jaxlib_version": STR + NULL, "python_version": STR,
    "attention": {"requested": STR + NULL, "resolved": STR},
    "bf16_peak_tflops": NUM + NULL,
    "peak": {"dtype": STR, "n": INT, "rounds_tflops": [NUM], "median_tflops": NUM,
             "max_tflops": NUM, "default_precision_median_tflops": NUM},
    "train": {"xlmr_large": _TRAIN, "xlmr_base": _TRAIN},
    "retrieval": {"n_queries": INT, "n_keys": INT, "d": INT, "k": INT, "flop_per_search": NUM,
                  "float32": _SEARCH, "bfloat16": _SEARCH},
    "xstilts_run": {"config": STR, "command": STR, "exit_code": INT, "seconds": NUM,
                    "results_path": STR, "target": STR, "metric": STR, "average": NUM,
                    "per_language": {}},
    "loop_overhead": {"batch": INT, "length": INT, "steps": INT, "delays_ms": {},
                      "train_T_minus_D_ms_at_3": NUM + NULL,
                      "predict_T_minus_D_ms_at_3": NUM + NULL},
    "goal": {"what": STR, "threshold_percent": NUM, "value_percent": NUM + NULL,
             "met": BOOL + NULL},
    "parts": {name: _PART for name in PARTS},
    "time_limit_seconds": NUM, "total_seconds": NUM, "all_ok": BOOL,
}


def schema_errors(value, schema=SCHEMA, *, nulls: bool = True, path: str = "") -> list[str]:
    """Where ``value`` departs from ``schema`` (missing fields, wrong types); ``nulls``: a
    nested object may be null (its part failed). Extra fields are allowed."""
    where = path or "report"
    if isinstance(schema, dict):
        if value is None and nulls and path:
            return []
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        errors = []
        for key, sub in schema.items():
            if key not in value:
                errors.append(f"{path}.{key}: missing" if path else f"{key}: missing")
            else:
                errors += schema_errors(value[key], sub, nulls=nulls,
                                        path=f"{path}.{key}" if path else key)
        return errors
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [e for i, item in enumerate(value)
                for e in schema_errors(item, schema[0], nulls=nulls, path=f"{where}[{i}]")]
    if isinstance(value, bool) and bool not in schema:  # bool is an int to isinstance
        return [f"{where}: expected {'/'.join(t.__name__ for t in schema)}, got bool"]
    if not isinstance(value, schema):
        return [f"{where}: expected {'/'.join(t.__name__ for t in schema)}, "
                f"got {type(value).__name__}"]
    return []


class PartFailed(Exception):
    """A part that finished but did not do its job; ``result`` is still recorded."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------- the parts
# Each runs in a child process (`--part NAME`) and returns a JSON-able dict.


def attention_choice(config, platform_name: str) -> dict:
    """{'requested', 'resolved'}: what the encoder is asked for and what will run."""
    from xstilts_jax.models import encoder

    requested = getattr(config, "attention", None)
    resolve = getattr(encoder, "resolve_attention", None)
    if requested is None or resolve is None:
        return {"requested": requested, "resolved": ATTENTION_UNAVAILABLE}
    return {"requested": requested, "resolved": str(resolve(config, platform_name))}


def _encoder_has_attention() -> bool:
    from xstilts_jax.models.encoder import EncoderConfig

    return "attention" in {f.name for f in dataclasses.fields(EncoderConfig)}


def _train_config(preset: str, attention: str, **overrides):
    from xstilts_jax.models.presets import get_preset

    overrides.update(dtype="bfloat16", hidden_dropout=0.1, attention_dropout=0.1)
    if _encoder_has_attention():
        overrides["attention"] = attention
    return get_preset(preset, **overrides)


def part_device(args, sizes: Sizes) -> dict:
    import jax
    import jaxlib

    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    config = _train_config(sizes.train_preset or "xlmr-large", args.attention)
    return {"platform": device.platform, "device_kind": device.device_kind,
            "count": jax.device_count(), "memory_bytes": stats.get("bytes_limit"),
            "jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__,
            "attention": attention_choice(config, device.platform)}


def part_peak(args, sizes: Sizes) -> dict:
    from peak import measure_peak

    peak = measure_peak(dtype="bfloat16", n=sizes.peak_n, rounds=sizes.peak_rounds,
                        calls=sizes.peak_calls)
    # The same product at the default precision : a check that
    # Precision.HIGHEST does not slow bf16 inputs down on this device.
    plain = [g / 1e3 for g in measure_peak(dtype="bfloat16", n=sizes.peak_n,
                                           rounds=sizes.peak_rounds, calls=sizes.peak_calls,
                                           precision="default")["rounds"]]
    return {"dtype": peak["dtype"], "n": peak["n"],
            "rounds_tflops": [g / 1e3 for g in peak["rounds"]],
            "median_tflops": peak["median"] / 1e3, "max_tflops": peak["max"] / 1e3,
            "default_precision_median_tflops": statistics.median(plain),
            "device": peak["device"]}


def _time_train_step(config, sizes: Sizes) -> dict:
    """The project's jitted train step on one device, as train_step.py's MFU section."""
    import jax
    from flax import nnx

    from train_step import (NUM_LABELS, make_labelled_batch, make_tx, model_flops_per_step,
                            threaded_step)
    from xstilts_jax import sharding
    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.train.steps import Steps

    device = jax.devices()[0]
    b, s = sizes.train_batch, sizes.train_seq
    rngs = nnx.Rngs(0)
    model = TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, NUM_LABELS, rngs=rngs))
    graphdef, params_state = nnx.split(model)
    del model
    mesh = sharding.make_mesh({"data": 1}, [device])
    steps = Steps(graphdef, make_tx(1e-5, 0.01, 1.0), mesh, dropout_seed=0)
    shardings = steps.shardings(params_state)
    params = nnx.to_pure_dict(params_state)
    flops, _, _ = model_flops_per_step(config, params, b, s)
    batch = make_labelled_batch(b, s, config.vocab_size, config.pad_token_id)
    j_batch = sharding.global_batch(batch, mesh)
    state = steps.create_state(params, shardings)
    del params, params_state
    t0 = time.perf_counter()
    train = steps.jit_train_step(shardings, steps.batch_shardings(batch)).lower(
        state, j_batch).compile()
    compile_s = time.perf_counter() - t0
    step = threaded_step(train, state, j_batch)
    del state
    for _ in range(2):  # warm-up
        step()
    times = []
    for _ in range(sizes.train_rounds):
        t0 = time.perf_counter()
        for _ in range(sizes.train_calls):
            step()
        times.append((time.perf_counter() - t0) / sizes.train_calls)
    loss = float(step()["loss"])
    med = statistics.median(times)
    return {"layers": config.num_layers, "hidden": config.hidden_size, "heads": config.num_heads,
            "vocab": config.vocab_size, "batch": b, "seq": s, "dtype": config.dtype,
            "compile_seconds": compile_s, "ms_per_step": med * 1e3,
            "tokens_per_s": b * s / med, "model_tflop_per_step": flops / 1e12,
            "model_tflops": flops / med / 1e12, "loss": loss}


def part_train(args, sizes: Sizes, preset: str) -> dict:
    import math

    import jax

    name = sizes.train_preset or preset
    platform_name = jax.devices()[0].platform
    config = _train_config(name, args.attention)
    chosen = attention_choice(config, platform_name)
    fallback = result = None
    try:
        result = _time_train_step(config, sizes)
    except Exception as e:  # cuDNN refused these shapes: the XLA step is the next best
        if chosen["resolved"] != "cudnn":
            raise
        fallback = f"cudnn failed ({type(e).__name__}: {str(e)[:500]}); retried with xla"
        print(fallback, flush=True)
    if result is None:  # outside the except block, so the failed try's arrays are freed
        config = _train_config(name, "xla")
        chosen = attention_choice(config, platform_name)
        result = _time_train_step(config, sizes)
    result.update(preset=name, attention=chosen["resolved"], attention_fallback=fallback)
    if not math.isfinite(result["loss"]):
        raise PartFailed(f"the bf16 train step's loss became {result['loss']}", result)
    return result


def _unit_rows(n: int, d: int, seed: int):
    """[n, d] float32 standard normal rows scaled to unit norm."""
    import numpy as np

    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def part_retrieval(args, sizes: Sizes) -> dict:
    import jax
    import jax.numpy as jnp

    from xstilts_jax.retrieval import knn

    n, d, k = sizes.retrieval_n, sizes.retrieval_d, sizes.retrieval_k
    queries, keys = jax.device_put(_unit_rows(n, d, 0)), jax.device_put(_unit_rows(n, d, 1))
    jax.block_until_ready((queries, keys))
    flop = 2.0 * n * n * d
    result = {"n_queries": n, "n_keys": n, "d": d, "k": k, "flop_per_search": flop}
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        knn(queries, keys, k, compute_dtype=dtype)  # compile + warm-up
        seconds = []
        for _ in range(sizes.retrieval_rounds):
            t0 = time.perf_counter()
            knn(queries, keys, k, compute_dtype=dtype)  # returns numpy: waits for the result
            seconds.append(time.perf_counter() - t0)
        med = statistics.median(seconds)
        result[name] = {"seconds": med, "tflops": flop / med / 1e12,
                        "rounds_seconds": seconds}
    return result


def _prepare_run_inputs(work: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The demo's synthetic tasks (a small world) and a random demo-sized encoder as an HF
    checkpoint: (data dir, model dir). A pipeline check, so nothing is pretrained."""
    from flax import nnx

    from xstilts_jax.demo import synthetic
    from xstilts_jax.demo.run import demo_encoder_config, synthetic_tokenizer, write_synthetic_data
    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.pretrained import save_hf_checkpoint

    world = synthetic.make_world(synthetic.SyntheticConfig(
        seed=0, mlm_sentences_per_language=10, intermediate_train_size=400,
        intermediate_dev_size=50, intermediate_test_size=10, target_train_size=200,
        target_dev_size=50, target_test_size=100))
    data, model = work / "data", work / "model"
    write_synthetic_data(world, data)
    encoder = Encoder(demo_encoder_config(world.vocab_size), rngs=nnx.Rngs(0))
    save_hf_checkpoint(encoder, model, tokenizer=synthetic_tokenizer(world))
    return data, model


def _xstilts_command() -> list[str]:
    """The installed ``xstilts`` entry point beside this interpreter, else its module."""
    script = pathlib.Path(sys.executable).with_name("xstilts")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "xstilts_jax.cli"]


def part_xstilts_run(args, sizes: Sizes, device_env: dict) -> dict:
    import shlex

    work = pathlib.Path(args.workdir) / "xstilts_run"
    data, model = _prepare_run_inputs(work)
    run_dir = work / "run"
    command = [*_xstilts_command(), "run", "--config",
               f"{REPO / 'configs' / 'xtreme.py'}:{sizes.run_config}", "--workdir", str(run_dir),
               f"--config.model.name={model}", f"--config.data.dir={data}", "-q",
               # Every pair fits 32 tokens: one bucket, one program per step kind.
               "--config.intermediate.buckets=(32,)", "--config.target.buckets=(32,)",
               "--config.intermediate.max_length=32", "--config.target.max_length=32",
               *sizes.run_overrides]
    env = dict(device_env, JAX_COMPILATION_CACHE_DIR=str(work / "jax-cache"))  # a cold start
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=REPO)
    seconds = time.perf_counter() - t0
    results_path = run_dir / "results.json"
    result = {"config": sizes.run_config, "command": shlex.join(command),
              "exit_code": proc.returncode, "seconds": seconds, "results_path": str(results_path)}
    if proc.returncode != 0 or not results_path.is_file():
        raise PartFailed(f"xstilts run exited {proc.returncode}", result)
    target, scores = next(iter(json.loads(results_path.read_text())["zero_shot"].items()))
    result.update(target=target, metric=scores.get("metric", "accuracy"),
                  average=scores["average"], per_language=scores["per_language"])
    return result


def part_loop_overhead(args, sizes: Sizes) -> dict:
    """``loop_overhead.measure`` for each delay: T, D, T - D and the device's wait per step."""
    import loop_overhead

    delays = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for delay in sizes.loop_delays_ms:
            delays[f"{delay:g}"] = loop_overhead.measure(
                delay, sizes.loop_steps, sizes.loop_steps, sizes.loop_skip, pathlib.Path(tmp))
    at_3 = delays.get("3") or {}
    return {"batch": loop_overhead.BATCH, "length": loop_overhead.LENGTH,
            "steps": sizes.loop_steps, "delays_ms": delays,
            "train_T_minus_D_ms_at_3": (at_3.get("train") or {}).get("T_minus_D_ms"),
            "predict_T_minus_D_ms_at_3": (at_3.get("predict") or {}).get("T_minus_D_ms")}


def run_part(args) -> None:
    """Child side: run one part, write {'result', 'error'} to --result."""
    sizes = DRY if args.dry_run else FULL
    device_env = dict(os.environ)
    if args.part == "xstilts_run":
        # The inputs are made on the CPU so that this process leaves the device whole to
        # `xstilts run` (JAX preallocates most of a GPU's memory per process).
        os.environ["JAX_PLATFORMS"] = "cpu"
    out = {"result": None, "error": None}
    try:
        if args.part == "device":
            out["result"] = part_device(args, sizes)
        elif args.part == "peak":
            out["result"] = part_peak(args, sizes)
        elif args.part in TRAIN_PRESETS:
            out["result"] = part_train(args, sizes, TRAIN_PRESETS[args.part])
        elif args.part == "retrieval":
            out["result"] = part_retrieval(args, sizes)
        elif args.part == "xstilts_run":
            out["result"] = part_xstilts_run(args, sizes, device_env)
        elif args.part == "loop_overhead":
            out["result"] = part_loop_overhead(args, sizes)
        else:
            raise ValueError(f"unknown part {args.part!r}")
    except PartFailed as e:
        out.update(result=e.result, error=str(e))
    except Exception as e:
        traceback.print_exc()
        out["error"] = f"{type(e).__name__}: {e}"
    pathlib.Path(args.result).write_text(json.dumps(out))
    sys.exit(0 if out["error"] is None else 1)


# --------------------------------------------------------------------------- the parent


def _tail(path: pathlib.Path, chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return text[-chars:]


def launch(name: str, args, limit: float, env: dict,
           logs: pathlib.Path) -> tuple[dict, dict | None]:
    """Run one part in a child with a time limit: (its `parts` entry, its result or None)."""
    log = logs / f"{name}.log"
    result_file = logs / f"{name}.result.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--part", name,
               "--result", str(result_file), "--workdir", args.workdir,
               "--attention", args.attention] + (["--dry-run"] if args.dry_run else [])
    t0 = time.perf_counter()
    with open(log, "w") as out:
        # Its own process group: a timeout kills the part and whatever it started.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO, start_new_session=True)
        try:
            proc.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            timed_out = True
    seconds = time.perf_counter() - t0
    reply = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if timed_out:
        status, error = "timeout", f"killed after its limit of {limit:g} s"
    elif proc.returncode == 0 and reply.get("error") is None and "result" in reply:
        status, error = "ok", None
    else:
        status = "error"
        error = reply.get("error") or f"exited {proc.returncode} without a result"
    entry = {"status": status, "seconds": seconds, "limit_seconds": float(limit), "error": error,
             "log_tail": _tail(log)}
    return entry, reply.get("result")


def _describe(name: str, entry: dict, result: dict | None) -> str:
    line = (f"{name:<17} {entry['status']:<8} {entry['seconds']:6.1f} s / "
            f"{entry['limit_seconds']:g} s")
    if entry["error"]:
        return f"{line}  {entry['error'].splitlines()[0][:160]}"
    if name == "device":
        return (f"{line}  {result['platform']} {result['device_kind']} x{result['count']}, jax "
                f"{result['jax_version']}, attention {result['attention']['resolved']}")
    if name == "peak":
        return f"{line}  bf16 peak {result['median_tflops']:.4g} TFLOP/s"
    if name in TRAIN_PRESETS:
        mfu = result.get("mfu_percent")
        return (f"{line}  {result['preset']} {result['ms_per_step']:.1f} ms/step, "
                f"{result['tokens_per_s']:.0f} tokens/s, {result['model_tflops']:.4g} TFLOP/s"
                + (f", MFU {mfu:.1f} %" if mfu is not None else "") +
                f", attention {result['attention']}")
    if name == "retrieval":
        return (f"{line}  N={result['n_queries']} d={result['d']}: float32 "
                f"{result['float32']['tflops']:.4g} TFLOP/s, "
                f"bf16 {result['bfloat16']['tflops']:.4g}")
    if name == "loop_overhead":
        return line + "  T - D: " + ", ".join(
            f"D {d} ms train {r['train']['T_minus_D_ms']:.3f} predict "
            f"{r['predict']['T_minus_D_ms']:.3f}" for d, r in result["delays_ms"].items())
    return (f"{line}  exit {result['exit_code']} in {result['seconds']:.1f} s, "
            f"{result['target']} {result['metric']} {result['average']:.2f}")


def assemble(args, started: str, entries: dict, results: dict, total: float) -> dict:
    """The report: flat fields for reading, `parts` for what happened to each part."""
    dev = results.get("device") or {}
    peak = results.get("peak")
    peak_tflops = peak["median_tflops"] if peak else None
    train = {}
    for part, key in (("train_xlmr_large", "xlmr_large"), ("train_xlmr_base", "xlmr_base")):
        r = results.get(part)
        if r is not None:
            r = dict(r, mfu_percent=100 * r["model_tflops"] / peak_tflops if peak_tflops else None)
        train[key] = r
    large = train["xlmr_large"]
    value = large["mfu_percent"] if large else None
    on_gpu = dev.get("platform") == "gpu"
    attention = dev.get("attention") or {"requested": None,
                                         "resolved": "unknown (device part failed)"}
    return {
        "schema_version": 1,
        "mode": "dry-run" if args.dry_run else "full",
        "command": " ".join([os.path.relpath(__file__, REPO), *args.argv]),
        "started_utc": started,
        "install": [{"command": c, "rc": int(rc), "seconds": float(s)}
                    for c, rc, s in args.install_step or []],
        "device": {k: dev.get(k) for k in ("platform", "device_kind", "count", "memory_bytes")},
        "jax_version": dev.get("jax_version"), "jaxlib_version": dev.get("jaxlib_version"),
        "python_version": platform.python_version(),
        "attention": attention,
        "bf16_peak_tflops": peak_tflops,
        "peak": peak,
        "train": train,
        "retrieval": results.get("retrieval"),
        "xstilts_run": results.get("xstilts_run"),
        "loop_overhead": results.get("loop_overhead"),
        "goal": {"what": "train step MFU, xlmr-large bf16 B=32 S=256, % of the measured bf16 "
                         "matmul peak (a GPU only)",
                 "threshold_percent": GOAL_MFU_PERCENT, "value_percent": value,
                 "met": (value >= GOAL_MFU_PERCENT) if (value is not None and on_gpu) else None},
        "parts": entries,
        "time_limit_seconds": float(sum(e["limit_seconds"] for e in entries.values())),
        "total_seconds": total,
        "all_ok": all(e["status"] in ("ok", "skipped") for e in entries.values()),
    }


def orchestrate(args) -> int:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    if not args.workdir:
        args.workdir = tempfile.mkdtemp(prefix="device-check-")
    workdir = pathlib.Path(args.workdir).resolve()
    args.workdir = str(workdir)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                          if p))
    if args.dry_run:
        env["JAX_PLATFORMS"] = "cpu"
        # The two train parts compile the same tiny step: the second loads it (CI time).
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(workdir / "jax-cache"))
    names = args.parts or list(PARTS)
    entries, results = {}, {}
    for name in PARTS:
        limit = PARTS[name][1 if args.dry_run else 0]
        if name not in names:
            entries[name] = {"status": "skipped", "seconds": 0.0, "limit_seconds": 0.0,
                             "error": "not asked for (--parts)", "log_tail": ""}
            continue
        entries[name], results[name] = launch(name, args, limit, env, logs)
        print(_describe(name, entries[name], results[name]), flush=True)
    report = assemble(args, started, entries, results, time.perf_counter() - t0)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    for error in schema_errors(report):
        print(f"BUG: the report departs from SCHEMA: {error}", file=sys.stderr)
    goal = report["goal"]
    verdict = ("MET" if goal["met"] else "NOT MET") if goal["met"] is not None else "n/a"
    value = goal["value_percent"]
    print(f"goal MFU >= {GOAL_MFU_PERCENT:g} % (xlmr-large): "
          f"{'-' if value is None else f'{value:.1f} %'} -> {verdict}"
          + ("" if report["device"]["platform"] == "gpu" else " (not a GPU)"))
    print(f"{report['total_seconds']:.0f} s in all (limits {report['time_limit_seconds']:g} s); "
          f"logs in {logs}; report: {out}")
    return 0 if report["all_ok"] and not schema_errors(report) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, same JSON")
    p.add_argument("--out", default="device_check.json", help="the JSON report")
    p.add_argument("--workdir", default="",
                   help="logs and the xstilts run's files (default: a new temporary folder)")
    p.add_argument("--parts", nargs="+", choices=list(PARTS), help="only these parts")
    p.add_argument("--attention", default="auto", choices=("auto", "xla", "cudnn"),
                   help="EncoderConfig.attention for the train parts, where it exists")
    p.add_argument("--install-step", nargs=3, action="append", metavar=("COMMAND", "RC", "SECONDS"),
                   help="an install step device_check.sh ran, to record (repeatable)")
    p.add_argument("--part", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # The command as given, less the install steps (recorded in `install`).
    args.argv = [a for i, a in enumerate(argv)
                 if not any(argv[j] == "--install-step" for j in range(max(0, i - 3), i + 1))]
    if args.part:
        run_part(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
