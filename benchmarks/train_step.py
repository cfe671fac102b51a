"""Train-step throughput: the jitted Flax train step vs torch eager HF, and (on GPU) MFU.

What it measures
    Tokens per second of one full classification training step, forward + loss + backward +
    optimizer update, for

    * ``flax``:  the project's own step, ``xstilts_jax.train.steps.Steps.jit_train_step``
      (``TaskModel`` = ``Encoder`` + ``ClassificationHead``, ``classification_loss``, the
      optimizer of ``train.optimizer.make_optimizer``), jitted with explicit shardings on a
      one-device mesh, state donated and threaded from call to call, with
      ``block_until_ready`` on the returned state and metrics of every call;
    * ``torch``: ``transformers.XLMRobertaForSequenceClassification`` (the ``...XL...`` class
      for the pre-LN presets), ``num_labels=3``, ``.train()``, default attention
      implementation (printed; ``sdpa``), eager: ``model(..., labels=...)`` (its cross
      entropy, mean over the batch) -> ``loss.backward()`` ->
      ``clip_grad_norm_(params, 1.0)`` -> ``torch.optim.AdamW.step()`` -> ``scheduler.step()``
      -> ``zero_grad(set_to_none=True)``. AdamW is torch's ``fused=True`` kernel, the peer
      at its best (``--torch-adamw default`` gives torch's own choice: the multi-tensor
      ``foreach`` kernel on CUDA but a single-tensor for-loop on CPU; ``foreach`` also
      exists; the resolved one is printed).

    Equal work. Both sides hold the SAME initial weights: the torch model is built from a
    seeded init, its encoder ``state_dict`` is converted with ``encoder_from_tensors`` and its
    classification head (``classifier.dense``, ``classifier.out_proj``) is copied into the
    Flax ``ClassificationHead`` (kernels transposed to [in, out]). Both run the same
    optimizer: AdamW (b1 0.9, b2 0.999, eps 1e-8), weight decay 0.01 on matrices and
    embeddings but not on biases / LayerNorm (torch: two parameter groups, as HF/jiant),
    gradients clipped to global norm 1.0, learning rate ``--lr`` (1e-5) decaying linearly to 0
    over 10,000 steps, with no warm-up (optax schedule on one side, ``LambdaLR`` on the
    other), so the learning rate is not 0 on the first step. Dropout is 0.1 and ON on both
    sides (the realistic training setting: torch modules in train mode, the Flax step's
    dropout key); ``--dropout 0`` turns it off on both. Before timing, with dropout OFF
    (torch in ``.eval()`` mode, which for XLM-R only disables dropout, and a dropout-0 copy
    of the Flax graph), the script takes one step on both sides and checks that the loss
    agrees to 1e-4 and the logits after that update agree to 1e-3 (max abs difference); it
    stops if they do not. It also prints both pre-clip gradient norms. Those differ by
    ~5e-5 (xlmr-base, 2 layers) to ~1e-3 (xlmr-xl, 1 layer) relative although the gradients
    themselves agree to ~1e-7 (checked in float64 while writing this): torch's float32
    ``vector_norm`` on CPU, used by ``clip_grad_norm_``, loses that much on tensors of
    millions of elements. It only scales the clip factor, to which Adam is nearly
    insensitive. The timed steps continue from the state after that step, on both sides.

    Shapes are those of ``--preset`` (default ``xlmr-base``: 12 layers, hidden 768, 12 heads,
    ffn 3072; ``--layers`` overrides the depth, e.g. for a fast smoke run) in float32, except
    the vocabulary, which is cut to ``--vocab`` (default 8192) to save RAM and init time: it
    only changes the embedding gather, the (dense) embedding gradient and the AdamW update of
    the embedding matrix, i.e. it makes the step cheaper for both frameworks alike, more so
    for whichever one handles the 250k x 768 embedding update worse; ``--vocab 250002`` is
    XLM-R's real one (about 2.3 GB more per side for the table, its moments and gradient). The batch is ``--batch``
    (8) x ``--seq`` (128) token ids with 3 random labels; the last quarter of the rows is
    padded (real length 3/4 of ``--seq``), so the attention mask is exercised. Tokens/s is
    ``batch * seq / step time``: padded tokens count, the same for both frameworks.

Method
    The comparison runs both frameworks on the same device: the CPU normally; the GPU when
    JAX's default backend is a GPU and torch has CUDA (there both use true float32 matmuls:
    JAX's ``default_matmul_precision('highest')``, torch's default 'highest'; on a GPU
    machine whose torch lacks CUDA, the Flax side of the comparison runs on JAX's CPU
    devices). On CPU both use the same number of threads (``torch.set_num_threads`` = the
    number of cores XLA's CPU client uses, i.e. the CPUs this process may run on; printed).
    After the check step and one untimed step each (the jit compile time is measured and
    reported separately), each of ``--repeats`` rounds times ``--calls`` train steps per
    framework, alternating flax and torch call by call (the order flips every round) so
    machine noise hits both. Reported: median, min and max over the rounds of tokens/s, the
    median step time, the ratio of medians vs torch, the median of the per-round (paired)
    flax/torch ratios, which cancels load that is common to a round, and a verdict on the
    goal (flax >= 1.0x torch, ratio of medians). The same run measures the machine's float32
    matmul peak (``benchmarks/peak.py``, before and after the rounds, the higher median) and
    prints each side's model FLOP/s (the MFU formula below, at float32) as a fraction of it.
    Both sides share the process's C heap, held by default as ``xstilts`` holds it
    (``xstilts_jax/heap.py``); ``--heap glibc`` keeps glibc's default, under which XLA's step
    faults its ~1.5 GB of temporaries in anew every step (and torch's step is slower too).

MFU (GPU, or ``--mfu``)
    When JAX's default backend is a GPU (or with ``--mfu``), a second section reports the
    model FLOPs utilisation of the Flax train step for ``--mfu-preset`` (xlmr-large, full
    vocabulary unless ``--mfu-vocab``), bfloat16 compute (``EncoderConfig.dtype``; params,
    optimizer state, LayerNorm, softmax and the logits stay float32), ``--mfu-batch`` (32) x
    ``--mfu-seq`` (256), same optimizer and dropout as above, on ``jax.devices()[0]`` (its
    ``device_kind`` is printed):

    * peak: a jitted ``jnp.dot`` of two bfloat16 [N, N] matrices (N = ``--peak-size``, 8192),
      ``--peak-calls`` dispatched back to back then blocked, per round; 2 N^3 FLOPs per call;
      the median TFLOP/s over ``--peak-rounds`` rounds is the peak;
    * model FLOPs per step = 6 * N_layers * B * S + 6 * N_head * B + 12 * L * H * S^2 * B,
      where N_layers counts every encoder parameter outside the embeddings (attention, FFN,
      their LayerNorms), N_head the classification head's parameters (it only sees the first
      token of each row), L the layers, H the hidden size; 6 = 2 (multiply-add) x 3
      (forward + backward for activations and weights); 12 L H S^2 B is the attention
      score and value products (QK^T and PV, 4 B S^2 H per layer forward) times 3. Padded
      tokens count; the embedding gather/scatter, softmax, LayerNorm, GELU, dropout and
      AdamW are not counted (they are memory-bound work that lowers MFU);
    * MFU = model FLOPs / median step time / peak; goal >= 45 %.

Run
    HF_HUB_OFFLINE=1 python benchmarks/train_step.py
    HF_HUB_OFFLINE=1 python benchmarks/train_step.py --vocab 250002     # XLM-R's real vocabulary
    HF_HUB_OFFLINE=1 python benchmarks/train_step.py --layers 2 --repeats 2 --calls 2   # smoke
    HF_HUB_OFFLINE=1 python benchmarks/train_step.py --skip-compare --mfu --mfu-preset tiny \\
        --mfu-batch 4 --mfu-seq 64 --peak-size 512                                        # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_forward import (_cpu_count, add_heap_argument, alternating_rounds,  # noqa: E402
                             hf_config_fields, make_batch, print_table)  # shared with the forward benchmark
from peak import describe_peak, measure_peak, of_peak, remeasure_peak  # noqa: E402
from xstilts_jax import heap  # noqa: E402

NUM_LABELS = 3
SCHEDULE_STEPS = 10_000  # linear decay horizon: far beyond any run, so the lr stays ~ --lr
LOSS_TOL = 1e-4
LOGITS_TOL = 1e-3


def make_labelled_batch(batch: int, seq: int, vocab: int, pad_id: int, seed: int = 0) -> dict:
    """numpy batch of the project's train step: ids/mask/type ids, labels, weight (all 1)."""
    import numpy as np

    ids, mask, tt = make_batch(batch, seq, vocab, pad_id, seed)
    labels = np.random.RandomState(seed + 1).randint(0, NUM_LABELS, size=batch).astype(np.int32)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt, labels=labels,
                weight=np.ones(batch, np.float32))


def _task_model_graphdef(config):
    """GraphDef of TaskModel(Encoder, ClassificationHead) for this config, without weights."""
    from flax import nnx

    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel

    def build():
        rngs = nnx.Rngs(0)
        return TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, NUM_LABELS, rngs=rngs))

    graphdef, _ = nnx.split(nnx.eval_shape(build))
    return graphdef


def build_models(config, seed: int = 0):
    """(torch XLMRoberta[XL]ForSequenceClassification, flax TaskModel) with identical weights."""
    import jax.numpy as jnp
    import torch
    import transformers
    from flax import nnx

    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.models.pretrained import encoder_from_tensors

    hf_config_cls, hf_model_cls = (
        (transformers.XLMRobertaXLConfig, transformers.XLMRobertaXLForSequenceClassification)
        if config.pre_layer_norm
        else (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification))
    hf_config = hf_config_cls(
        **hf_config_fields(config),
        hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        classifier_dropout=None,  # = hidden_dropout_prob, as the Flax head's default
        num_labels=NUM_LABELS)
    torch.manual_seed(seed)
    torch_model = hf_model_cls(hf_config).train()
    state = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    encoder_tensors = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    encoder, _, _ = encoder_from_tensors(config, encoder_tensors, source="torch state_dict",
                                         prefix="roberta.")
    head = ClassificationHead(config, NUM_LABELS, rngs=nnx.Rngs(seed))
    for ours, theirs in (("dense", "classifier.dense"), ("out", "classifier.out_proj")):
        kernel, bias = getattr(head, f"{ours}_kernel"), getattr(head, f"{ours}_bias")
        weight = state[f"{theirs}.weight"].T  # torch Linear [out, in] -> ours [in, out]
        assert weight.shape == kernel.shape and state[f"{theirs}.bias"].shape == bias.shape
        kernel.set_value(jnp.asarray(weight, jnp.float32))
        bias.set_value(jnp.asarray(state[f"{theirs}.bias"], jnp.float32))
    return torch_model, TaskModel(encoder, head)


def threaded_step(train, state, batch):
    """A no-argument timed call of the jitted train step: it threads the (donated) state from
    call to call and waits for the result, and returns the step's metrics."""
    import jax

    holder = {"state": state}

    def step():
        new_state, metrics = train(holder["state"], batch)
        jax.block_until_ready((new_state, metrics))
        holder["state"] = new_state
        return metrics

    return step


def make_tx(lr: float, weight_decay: float, max_grad_norm: float):
    from xstilts_jax.train.optimizer import make_optimizer

    # warmup_ratio=0: the schedule is linear decay from lr, lr at step 0 (torch: LambdaLR).
    return make_optimizer(learning_rate=lr, total_steps=SCHEDULE_STEPS, warmup_ratio=0.0,
                          weight_decay=weight_decay, max_grad_norm=max_grad_norm)


def make_torch_optimizer(model, lr: float, weight_decay: float, impl: str):
    """AdamW with the project's decay mask (no decay on biases and LayerNorm) + linear decay."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm." in name or "layer_norm." in name
         else decay).append(param)
    kwargs = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8, **kwargs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: max(0.0, 1.0 - step / SCHEDULE_STEPS))
    return opt, sched, len(decay), len(no_decay)


def _torch_adamw_impl(opt, impl: str) -> str:
    if impl != "default":
        return impl
    from torch.optim.optimizer import _default_to_fused_or_foreach

    params = [p for g in opt.param_groups for p in g["params"]]
    fused, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return "default -> " + ("fused" if fused else "foreach (multi-tensor)" if foreach
                            else "for-loop (single-tensor)")


# --------------------------------------------------------------------------- flax vs torch


def compare(args, p) -> None:
    import jax
    import numpy as np
    import torch
    from flax import nnx

    from xstilts_jax.models.presets import get_preset
    from xstilts_jax import sharding
    from xstilts_jax.train.steps import Steps

    threads = _cpu_count()
    torch.set_num_threads(threads)
    on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
    devices = jax.devices() if on_gpu else jax.devices("cpu")
    torch_device = torch.device("cuda" if on_gpu else "cpu")
    if jax.default_backend() == "gpu" and not on_gpu:
        print("NOTE: torch has no CUDA here, so the comparison runs both frameworks on the CPU "
              "(the MFU section below uses the GPU)")

    preset = get_preset(args.preset)
    overrides = dict(vocab_size=args.vocab, dtype="float32", hidden_dropout=args.dropout,
                     attention_dropout=args.dropout)
    if args.layers:
        overrides["num_layers"] = args.layers
    config = dataclasses.replace(preset, **overrides)
    if args.seq + config.pad_token_id + 1 > config.max_position_embeddings:
        p.error(f"--seq {args.seq} too long for max_position_embeddings "
                f"{config.max_position_embeddings}")

    tokens = args.batch * args.seq
    print(f"preset {args.preset}: {config.num_layers} layers"
          f"{f' (preset has {preset.num_layers})' if args.layers else ''}, hidden "
          f"{config.hidden_size}, {config.num_heads} heads, ffn {config.intermediate_size}; "
          f"vocab {config.vocab_size} (preset has {preset.vocab_size}; only the embedding "
          f"gather/gradient/update depends on it)")
    batch = make_labelled_batch(args.batch, args.seq, config.vocab_size, config.pad_token_id)
    print(f"batch {args.batch} x {args.seq} = {tokens} tokens (padded ones count), "
          f"{args.batch // 4} rows padded to {int(batch['attention_mask'][-1].sum())} real "
          f"tokens; float32 on both; dropout {args.dropout} "
          f"({'on' if args.dropout else 'off'}) on both")
    where = (f"GPU ({devices[0].device_kind}; torch {torch.cuda.get_device_name()})" if on_gpu
             else f"CPU, threads: {threads} (torch.set_num_threads; XLA CPU devices "
                  f"{jax.devices('cpu')})")
    print(f"comparison device: {where}")
    print(f"jax {jax.__version__} (default backend {jax.default_backend()}), "
          f"torch {torch.__version__}")

    t0 = time.perf_counter()
    torch_model, flax_model = build_models(config)
    torch_model.to(torch_device)
    opt, sched, n_decay, n_no_decay = make_torch_optimizer(torch_model, args.lr, args.weight_decay,
                                                           args.torch_adamw)
    print(f"built both models with the same weights in {time.perf_counter() - t0:.1f}s; "
          f"torch attention {torch_model.config._attn_implementation!r}, AdamW "
          f"{_torch_adamw_impl(opt, args.torch_adamw)} ({n_decay} tensors decayed, "
          f"{n_no_decay} not)")
    print(f"optimizer (both): AdamW lr {args.lr:g} linear decay over {SCHEDULE_STEPS} steps, no "
          f"warm-up, weight decay {args.weight_decay:g} (not biases/LayerNorm), clip "
          f"{args.clip:g}")

    peak = measure_peak() if not on_gpu else None
    if peak:
        print(describe_peak(peak))

    # ---- flax: the project's Steps on a one-device mesh
    mesh = sharding.make_mesh({"data": 1}, devices[:1])
    tx = make_tx(args.lr, args.weight_decay, args.clip)
    graphdef, params_state = nnx.split(flax_model)
    params = nnx.to_pure_dict(params_state)
    del flax_model
    step_flops, _, _ = model_flops_per_step(config, params, args.batch, args.seq)
    print(f"model FLOPs per train step (6 N tokens + attention, the MFU formula): "
          f"{step_flops / 1e9:.1f} GFLOP")
    steps = Steps(graphdef, tx, mesh, dropout_seed=0)
    shardings = steps.shardings(params_state)
    batch_shardings = steps.batch_shardings(batch)
    j_batch = sharding.global_batch(batch, mesh)
    state = steps.create_state(params, shardings)
    del params, params_state
    nodrop_config = dataclasses.replace(config, hidden_dropout=0.0, attention_dropout=0.0)
    check_steps = Steps(_task_model_graphdef(nodrop_config), tx, mesh, dropout_seed=0)

    precision = "highest" if on_gpu else None  # CPU dots are always full float32
    with jax.default_matmul_precision(precision):
        t0 = time.perf_counter()
        train = steps.jit_train_step(shardings, batch_shardings).lower(state, j_batch).compile()
        compile_s = time.perf_counter() - t0
        if args.dropout:
            check = check_steps.jit_train_step(shardings, batch_shardings).lower(
                state, j_batch).compile()
        else:
            check = train
        evaluate = check_steps.jit_eval_step(shardings.params, batch_shardings)
        evaluate = evaluate.lower(state.params, j_batch).compile()
    print(f"flax jit compile of the train step: {compile_s:.1f}s")

    # ---- torch
    t_batch = {k: torch.from_numpy(batch[k].astype(np.int64)).to(torch_device)
               for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
    params_list = [p_ for p_ in torch_model.parameters()]
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    def torch_step():
        out = torch_model(input_ids=t_batch["input_ids"], attention_mask=t_batch["attention_mask"],
                          token_type_ids=t_batch["token_type_ids"], labels=t_batch["labels"])
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params_list, args.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return out.loss.detach(), norm

    def torch_logits():
        with torch.no_grad():
            torch_model.eval()
            out = torch_model(input_ids=t_batch["input_ids"],
                              attention_mask=t_batch["attention_mask"],
                              token_type_ids=t_batch["token_type_ids"]).logits.cpu().numpy()
            torch_model.train()
        return out

    # ---- equal work: one step with dropout off on both sides, then compare
    logits_before = torch_logits()
    torch_model.eval()  # XLM-R has no batch norm: eval() only switches dropout off
    loss_t, norm_t = torch_step()
    torch_model.train()
    state, metrics = check(state, j_batch)
    loss_f, norm_f = float(metrics["loss"]), float(metrics["grad_norm"])
    loss_t, norm_t = float(loss_t), float(norm_t)
    logits_t = torch_logits()
    logits_f = np.asarray(evaluate(state.params, j_batch)["logits"])
    loss_ok = abs(loss_f - loss_t) < LOSS_TOL
    logits_diff = float(np.max(np.abs(logits_f - logits_t)))
    logits_ok = logits_diff < LOGITS_TOL
    print(f"equal-work check (dropout off, one step each): loss flax {loss_f:.6f} torch "
          f"{loss_t:.6f}, |diff| {abs(loss_f - loss_t):.2e} (tolerance {LOSS_TOL:g}) -> "
          f"{'OK' if loss_ok else 'FAIL'}")
    print(f"  pre-clip grad norm flax {norm_f:.6f} torch {norm_t:.6f} (rel diff "
          f"{abs(norm_f - norm_t) / max(abs(norm_t), 1e-12):.1e}, see the docstring); max |logits diff| after the update {logits_diff:.2e} "
          f"(tolerance {LOGITS_TOL:g}; the update moved the logits by up to "
          f"{float(np.max(np.abs(logits_t - logits_before))):.2e}) -> "
          f"{'OK' if logits_ok else 'FAIL'}")
    if not (loss_ok and logits_ok):
        raise SystemExit("the two frameworks are not doing the same work")
    del evaluate, check

    flax_step = threaded_step(train, state, j_batch)
    del state

    # Warm-up (untimed): one train-mode step each.
    flax_step()
    torch_step()

    runners = {"flax": flax_step, "torch": torch_step}
    rates = alternating_rounds(runners, repeats=args.repeats, calls=args.calls,
                               work_per_call=tokens, unit="tokens/s")
    last_loss = float(flax_step()["loss"])
    if not math.isfinite(last_loss):
        raise SystemExit(f"flax loss became {last_loss}")
    paired = [f / t for f, t in zip(rates["flax"], rates["torch"])]
    if peak:
        peak = remeasure_peak(peak)

    medians = {name: statistics.median(rates[name]) for name in runners}
    labels = {"flax": "flax (jit train step)", "torch": "torch eager (HF + AdamW)"}
    rows = []
    for name in runners:
        achieved = medians[name] / tokens * step_flops / 1e9
        rows.append((labels[name], f"{medians[name]:.0f}", f"{min(rates[name]):.0f}",
                     f"{max(rates[name]):.0f}", f"{tokens / medians[name] * 1e3:.1f}",
                     of_peak(achieved, peak) if peak else f"{achieved:.1f} GFLOP/s",
                     f"{medians[name] / medians['torch']:.2f}x"))
    print(f"\ntrain step, {args.preset}"
          f"{f' ({config.num_layers} layers)' if args.layers else ''}, float32, "
          f"B={args.batch} S={args.seq}, dropout {args.dropout}, vocab {config.vocab_size}; "
          f"{args.repeats} rounds x {args.calls} steps; "
          + (f"GPU {devices[0].device_kind}" if on_gpu else f"CPU, {threads} threads each"))
    print_table(("framework", "median tokens/s", "min", "max", "median ms/step",
                 "model FLOP/s (median)", "ratio vs torch"), rows)
    ratio = medians["flax"] / medians["torch"]
    print(f"paired flax/torch ratio per round: median {statistics.median(paired):.2f}x "
          f"(min {min(paired):.2f}x, max {max(paired):.2f}x)")
    goal = 1.0
    full = not args.layers and args.preset == "xlmr-base" and (args.batch, args.seq) == (8, 128)
    print(f"goal flax >= {goal}x torch (ratio of medians): {ratio:.2f}x -> "
          f"{'MET' if ratio >= goal else 'NOT MET'}"
          + ("" if full else " (not the issue's shapes: xlmr-base, 12 layers, B=8, S=128)"))


# --------------------------------------------------------------------------- MFU


def model_flops_per_step(config, params, batch: int, seq: int) -> tuple[float, int, int]:
    """(model FLOPs of one train step, non-embedding encoder params, head params)."""
    import jax
    import numpy as np

    def count(tree) -> int:
        return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))

    enc = params["encoder"]
    n_layers = count({k: v for k, v in enc.items() if k != "embeddings"})
    n_head = count(params["head"])
    flops = (6 * n_layers * batch * seq + 6 * n_head * batch
             + 12 * config.num_layers * config.hidden_size * seq ** 2 * batch)
    return float(flops), n_layers, n_head


def mfu(args, p) -> None:
    import jax
    from flax import nnx

    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.models.presets import get_preset
    from xstilts_jax import sharding
    from xstilts_jax.train.steps import Steps

    device = jax.devices()[0]
    print(f"\n=== MFU: Flax train step, bfloat16 compute, on {device.platform} "
          f"device {device.device_kind!r} ({len(jax.devices())} visible, using 1) ===")
    if device.platform != "gpu":
        print("NOTE: not a GPU: this is a smoke run of the MFU code path, not a measurement")

    measured = measure_peak("bfloat16", n=args.peak_size, rounds=args.peak_rounds,
                            calls=args.peak_calls)
    peaks = [r / 1e3 for r in measured["rounds"]]  # TFLOP/s
    peak = statistics.median(peaks)
    print(f"bf16 matmul peak (jitted jnp.dot [{args.peak_size}]^2 x [{args.peak_size}]^2, "
          f"{args.peak_rounds} rounds x {args.peak_calls} calls): median {peak:.4g} TFLOP/s "
          f"(min {min(peaks):.4g}, max {max(peaks):.4g})")

    overrides = dict(dtype="bfloat16", hidden_dropout=args.dropout, attention_dropout=args.dropout)
    if args.mfu_layers:
        overrides["num_layers"] = args.mfu_layers
    if args.mfu_vocab:
        overrides["vocab_size"] = args.mfu_vocab
    config = get_preset(args.mfu_preset, **overrides)
    b, s = args.mfu_batch, args.mfu_seq
    if s + config.pad_token_id + 1 > config.max_position_embeddings:
        p.error(f"--mfu-seq {s} too long for max_position_embeddings "
                f"{config.max_position_embeddings}")

    t0 = time.perf_counter()
    rngs = nnx.Rngs(0)
    model = TaskModel(Encoder(config, rngs=rngs), ClassificationHead(config, NUM_LABELS, rngs=rngs))
    graphdef, params_state = nnx.split(model)
    del model
    mesh = sharding.make_mesh({"data": 1}, [device])
    steps = Steps(graphdef, make_tx(args.lr, args.weight_decay, args.clip), mesh, dropout_seed=0)
    shardings = steps.shardings(params_state)
    params = nnx.to_pure_dict(params_state)
    flops, n_layers, n_head = model_flops_per_step(config, params, b, s)
    batch = make_labelled_batch(b, s, config.vocab_size, config.pad_token_id)
    j_batch = sharding.global_batch(batch, mesh)
    state = steps.create_state(params, shardings)
    del params, params_state
    jax.block_until_ready(state)
    print(f"preset {args.mfu_preset}: {config.num_layers} layers, hidden {config.hidden_size}, "
          f"{config.num_heads} heads, ffn {config.intermediate_size}, vocab {config.vocab_size}; "
          f"B={b} S={s} ({b * s} tokens, padded ones count), dropout {args.dropout}; "
          f"random init in {time.perf_counter() - t0:.1f}s")
    print(f"model FLOPs/step = 6*{n_layers:,}*{b * s} + 6*{n_head:,}*{b} + "
          f"12*{config.num_layers}*{config.hidden_size}*{s}^2*{b} = {flops / 1e12:.4g} TFLOP")

    t0 = time.perf_counter()
    train = steps.jit_train_step(shardings, steps.batch_shardings(batch)).lower(
        state, j_batch).compile()
    print(f"jit compile: {time.perf_counter() - t0:.1f}s")
    step = threaded_step(train, state, j_batch)
    del state

    for _ in range(2):  # warm-up
        step()
    times = []
    for r in range(args.mfu_rounds):
        t0 = time.perf_counter()
        for _ in range(args.mfu_calls):
            step()
        times.append((time.perf_counter() - t0) / args.mfu_calls)
    loss = float(step()["loss"])
    if not math.isfinite(loss):
        raise SystemExit(f"bfloat16 train step loss became {loss}")
    med = statistics.median(times)
    achieved = flops / med / 1e12
    rows = [(f"flax jit, bf16, {args.mfu_preset}", f"{med * 1e3:.1f}",
             f"{min(times) * 1e3:.1f}", f"{max(times) * 1e3:.1f}", f"{b * s / med:.0f}",
             f"{achieved:.4g}", f"{100 * achieved / peak:.1f} %")]
    print(f"\n{args.mfu_rounds} rounds x {args.mfu_calls} steps on {device.device_kind}")
    print_table(("step", "median ms", "min", "max", "tokens/s", "model TFLOP/s", "MFU"), rows)
    goal = 45.0
    mfu_pct = 100 * achieved / peak
    print(f"goal MFU >= {goal:g} % of the measured bf16 matmul peak ({peak:.4g} TFLOP/s): "
          f"{mfu_pct:.1f} % -> {'MET' if mfu_pct >= goal else 'NOT MET'}"
          + ("" if device.platform == "gpu" else " (CPU smoke run: meaningless)"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="xlmr-base")
    p.add_argument("--layers", type=int, default=0,
                   help="number of layers instead of the preset's (e.g. 2 for a smoke run)")
    p.add_argument("--vocab", type=int, default=8192,
                   help="vocabulary size used instead of the preset's (RAM/init time)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per framework")
    p.add_argument("--calls", type=int, default=3, help="train steps timed per round")
    p.add_argument("--dropout", type=float, default=0.1,
                   help="hidden/attention/classifier dropout on both sides (0 = off)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--torch-adamw", default="fused", choices=("default", "foreach", "fused"),
                   help="torch AdamW implementation (fused: the peer at its best; default: "
                        "torch's choice, a per-tensor loop on CPU)")
    p.add_argument("--skip-compare", action="store_true", help="only the MFU section")
    p.add_argument("--mfu", action="store_true",
                   help="run the MFU section even when JAX's backend is not a GPU")
    p.add_argument("--mfu-preset", default="xlmr-large")
    p.add_argument("--mfu-layers", type=int, default=0)
    p.add_argument("--mfu-vocab", type=int, default=0, help="0: the preset's vocabulary")
    p.add_argument("--mfu-batch", type=int, default=32)
    p.add_argument("--mfu-seq", type=int, default=256)
    p.add_argument("--mfu-rounds", type=int, default=5)
    p.add_argument("--mfu-calls", type=int, default=5)
    p.add_argument("--peak-size", type=int, default=8192)
    p.add_argument("--peak-rounds", type=int, default=7)
    p.add_argument("--peak-calls", type=int, default=10)
    add_heap_argument(p)
    args = p.parse_args(argv)
    heap_line = heap.apply_policy(args.heap)  # before JAX's CPU runtime starts

    import jax

    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(heap_line)
    if os.environ.get("XLA_FLAGS"):
        print(f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    if not args.skip_compare:
        compare(args, p)
    if args.mfu or jax.default_backend() == "gpu":
        mfu(args, p)
    elif args.skip_compare:
        print("nothing to do: --skip-compare without a GPU or --mfu")


if __name__ == "__main__":
    main()
