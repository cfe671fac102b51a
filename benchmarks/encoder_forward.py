"""Encoder forward throughput on CPU: the Flax NNX encoder (jitted) vs torch eager HF.

What it measures
    Sentences per second of one encoder forward pass (embeddings + all layers, returning the
    last hidden state; no pooler, no dropout) for

    * ``flax``:  ``xstilts_jax.models.encoder.Encoder`` under ``jax.jit`` (split/merge), with
      ``block_until_ready`` on the output;
    * ``torch``: ``transformers.XLMRobertaModel`` (``XLMRobertaXLModel`` for the pre-LN presets;
      ``add_pooling_layer=False``), ``.eval()``, ``torch.inference_mode()``, default attention
      implementation, eager.

    Both hold the SAME weights: the torch model is built from a seeded init and its
    ``state_dict`` is converted with ``encoder_from_tensors``. Before timing, the script checks
    that both produce the same last hidden state (max abs difference, must be < 1e-4 in
    float32), so the comparison is of equal work.

    Shapes are those of ``--preset`` (default ``xlmr-base``: 12 layers, hidden 768, 12 heads,
    ffn 3072) except the vocabulary, which is cut to ``--vocab`` (default 8192) to save RAM and
    init time; it only changes the size of the embedding gather, not the forward FLOPs.

    The batch is ``--batch`` x ``--seq`` token ids; the last quarter of the rows is padded
    (real length 3/4 of ``--seq``), so the attention mask is exercised.

Method
    Both frameworks use the same number of threads (``torch.set_num_threads`` = the number of
    cores XLA's CPU client uses, i.e. the CPUs this process may run on; printed). After a
    warm-up (the jit compile time is measured and reported separately), each of ``--repeats``
    rounds times ``--calls`` forward calls per framework, alternating flax and torch call by
    call (the order flips every round) so machine noise hits both. Reported: median, min and
    max over the rounds of sentences/s, the ratio of medians vs torch, and the median of the
    per-round (paired) flax/torch ratios, which cancels load that is common to a round.

    ``--dtype bfloat16`` runs the Flax model with bfloat16 compute (float32 params, float32
    softmax / LayerNorm) against float32 torch; that row is labelled and is *not* equal work
    in precision, so the output difference is printed for information only.

Run
    HF_HUB_OFFLINE=1 python benchmarks/encoder_forward.py
    HF_HUB_OFFLINE=1 python benchmarks/encoder_forward.py --repeats 5 --batch 16 --seq 64
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peak import describe_peak, measure_peak, of_peak, remeasure_peak  # noqa: E402
from xstilts_jax import heap  # noqa: E402


def add_heap_argument(parser: argparse.ArgumentParser, default: str = "hold",
                      whose: str = "both sides share it") -> None:
    """``--heap``: the C heap policy of a benchmark's process (``heap.apply_policy``)."""
    parser.add_argument("--heap", choices=heap.POLICIES, default=default,
                        help=f"hold: the C heap keeps freed blocks (as `xstilts` runs; {whose}); "
                             f"glibc: its default, big blocks unmapped on free (default {default})")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def alternating_rounds(runners: dict, *, repeats: int, calls: int, work_per_call: float,
                       unit: str, digits: int = 0) -> dict[str, list[float]]:
    """Rate (work per second) of each runner in each round.

    Calls alternate one by one and the order flips every round, so a burst of load from
    elsewhere on the machine lands on every runner alike. Shared by the benchmarks here.
    """
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(repeats):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        spent = {name: 0.0 for name in runners}
        for _ in range(calls):
            for name in order:
                t0 = time.perf_counter()
                runners[name]()
                spent[name] += time.perf_counter() - t0
        for name in runners:
            rates[name].append(calls * work_per_call / spent[name])
        print(f"  round {r + 1}/{repeats}: " +
              ", ".join(f"{n} {rates[n][-1]:.{digits}f}" for n in runners) + f" {unit}", flush=True)
    return rates


def print_table(header, rows, *, left_columns: int = 1) -> None:
    """A plain-text table: the first ``left_columns`` columns left-aligned, the rest right."""
    rows = [tuple(map(str, header)), *(tuple(map(str, r)) for r in rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(" | ".join(c.ljust(w) if j < left_columns else c.rjust(w)
                         for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def make_batch(batch: int, seq: int, vocab: int, pad_id: int, seed: int = 0):
    """int32 ids/mask/type ids [batch, seq]; the last quarter of rows has 3/4 real tokens."""
    import numpy as np

    rng = np.random.RandomState(seed)
    ids = rng.randint(3, vocab, size=(batch, seq)).astype(np.int32)
    ids[:, 0] = 0  # <s>
    mask = np.ones_like(ids)
    n_padded = batch // 4
    real = max(1, (3 * seq) // 4)
    if n_padded:
        mask[batch - n_padded:, real:] = 0
    ids[mask == 0] = pad_id
    return ids, mask, np.zeros_like(ids)


def forward_flops(config, encoder_state, batch: int, seq: int) -> float:
    """Model FLOPs of one forward: 2 x (non-embedding parameters) per token, plus the two
    attention products (QK^T and PV: 4 S^2 H per layer and sequence). Padded tokens count,
    the same for both frameworks; LayerNorm, softmax and GELU are not counted."""
    import jax
    import numpy as np
    from flax import nnx

    pure = nnx.to_pure_dict(encoder_state)
    weights = sum(int(np.prod(x.shape)) for name, sub in pure.items() if name != "embeddings"
                  for x in jax.tree.leaves(sub))
    return float(2 * weights * batch * seq + 4 * config.num_layers * config.hidden_size
                 * seq ** 2 * batch)


def hf_config_fields(config) -> dict:
    """The HF XLM-R config fields of an EncoderConfig's shapes (for torch models with equal shapes)."""
    return dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                max_position_embeddings=config.max_position_embeddings,
                type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
                pad_token_id=config.pad_token_id, hidden_act="gelu")


def build_models(config, seed: int = 0):
    """(torch XLMRoberta[XL]Model, flax Encoder) with identical weights."""
    import torch
    import transformers

    from xstilts_jax.models.pretrained import encoder_from_tensors

    # Pre-LN presets (xlmr-xl, xlmr-xxl) are HF's XLM-RoBERTa-XL architecture.
    hf_config_cls, hf_model_cls = (
        (transformers.XLMRobertaXLConfig, transformers.XLMRobertaXLModel) if config.pre_layer_norm
        else (transformers.XLMRobertaConfig, transformers.XLMRobertaModel))
    hf_config = hf_config_cls(**hf_config_fields(config))
    torch.manual_seed(seed)
    torch_model = hf_model_cls(hf_config, add_pooling_layer=False).eval()
    tensors = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    flax_model, _, _ = encoder_from_tensors(config, tensors, source="torch state_dict")
    return torch_model, flax_model


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="xlmr-base")
    p.add_argument("--vocab", type=int, default=8192,
                   help="vocabulary size used instead of the preset's (RAM/init time only)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per framework")
    p.add_argument("--calls", type=int, default=2, help="forward calls timed per round")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="Flax compute dtype (torch always runs float32)")
    add_heap_argument(p)
    args = p.parse_args(argv)
    heap_line = heap.apply_policy(args.heap)  # before JAX's CPU runtime starts

    import jax
    import numpy as np
    import torch
    from flax import nnx

    from xstilts_jax.models.presets import get_preset

    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(heap_line)
    if os.environ.get("XLA_FLAGS"):
        print(f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    threads = _cpu_count()
    torch.set_num_threads(threads)
    preset = get_preset(args.preset)
    config = dataclasses.replace(preset, vocab_size=args.vocab, dtype=args.dtype,
                                 hidden_dropout=0.0, attention_dropout=0.0)
    if args.seq + config.pad_token_id + 1 > config.max_position_embeddings:
        p.error(f"--seq {args.seq} too long for max_position_embeddings "
                f"{config.max_position_embeddings}")

    print(f"preset {args.preset}: {config.num_layers} layers, hidden {config.hidden_size}, "
          f"{config.num_heads} heads, ffn {config.intermediate_size}; vocab {config.vocab_size} "
          f"(preset has {preset.vocab_size}; only the embedding gather depends on it)")
    ids, mask, tt = make_batch(args.batch, args.seq, config.vocab_size, config.pad_token_id)
    print(f"batch {args.batch} x {args.seq} tokens, {args.batch // 4} rows padded to "
          f"{int(mask[-1].sum())} real tokens; flax dtype {args.dtype}, torch float32")
    print(f"threads: {threads} (torch.set_num_threads; XLA CPU devices {jax.devices()}), "
          f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}")

    t0 = time.perf_counter()
    torch_model, flax_model = build_models(config)
    print(f"built both models with the same weights in {time.perf_counter() - t0:.1f}s")

    graphdef, state = nnx.split(flax_model)
    flops = forward_flops(config, state, args.batch, args.seq)
    peak = measure_peak()
    print(describe_peak(peak))
    print(f"model FLOPs per forward call: {flops / 1e9:.1f} GFLOP ({flops / args.batch / 1e9:.2f} "
          f"a sentence)")

    @jax.jit
    def flax_forward(state, ids, mask, tt):
        return nnx.merge(graphdef, state)(ids, mask, tt).last_hidden_state

    j_ids, j_mask, j_tt = (jax.device_put(a) for a in (ids, mask, tt))
    t_ids, t_mask, t_tt = (torch.from_numpy(a.astype(np.int64)) for a in (ids, mask, tt))

    def run_torch():
        with torch.inference_mode():
            return torch_model(input_ids=t_ids, attention_mask=t_mask,
                               token_type_ids=t_tt).last_hidden_state

    # Warm-up: compile (reported separately), then one call each outside the timing.
    t0 = time.perf_counter()
    compiled = flax_forward.lower(state, j_ids, j_mask, j_tt).compile()
    compile_s = time.perf_counter() - t0

    def run_flax():
        return compiled(state, j_ids, j_mask, j_tt).block_until_ready()

    out_f = np.asarray(run_flax(), dtype=np.float32)
    out_t = run_torch().numpy()
    real = mask.astype(bool)
    diff_all = float(np.max(np.abs(out_f - out_t)))
    diff_real = float(np.max(np.abs(out_f[real] - out_t[real])))
    print(f"flax jit compile: {compile_s:.1f}s")
    if args.dtype == "float32":
        tol = 1e-4
        ok = diff_all < tol
        print(f"max |flax - torch| of last_hidden_state: {diff_all:.2e} (real tokens "
              f"{diff_real:.2e}); tolerance {tol:g} -> {'OK' if ok else 'FAIL'}")
        if not ok:
            raise SystemExit("outputs differ: the two frameworks are not doing the same work")
    else:  # bfloat16 compute against float32 torch: informative only
        print(f"max |flax(bfloat16) - torch(float32)| of last_hidden_state: {diff_all:.2e} "
              f"(real tokens {diff_real:.2e}); not equal precision, so no tolerance applied")

    runners = {"flax": run_flax, "torch": run_torch}
    rates = alternating_rounds(runners, repeats=args.repeats, calls=args.calls,
                               work_per_call=args.batch, unit="sent/s", digits=1)
    paired = [f / t for f, t in zip(rates["flax"], rates["torch"])]
    peak = remeasure_peak(peak)

    torch_median = statistics.median(rates["torch"])
    flax_label = "flax (jit)" if args.dtype == "float32" else "flax (jit, bfloat16 compute)"
    labels = {"flax": flax_label, "torch": "torch eager (float32)"}
    rows = []
    for name in runners:
        med = statistics.median(rates[name])
        rows.append((labels[name], f"{med:.1f}", f"{min(rates[name]):.1f}",
                     f"{max(rates[name]):.1f}", of_peak(med * flops / args.batch / 1e9, peak),
                     f"{med / torch_median:.2f}x"))
    print(f"\n{args.repeats} rounds x {args.calls} calls x {args.batch} sentences, "
          f"{threads} threads each")
    print_table(("framework", "median sent/s", "min", "max", "model FLOP/s (median)",
                 "ratio vs torch"), rows)
    print(f"paired flax/torch ratio per round: median {statistics.median(paired):.2f}x "
          f"(min {min(paired):.2f}x, max {max(paired):.2f}x)")
    ratio = statistics.median(rates["flax"]) / torch_median
    goal = 0.9  # parity: both frameworks run near this machine's peak (see the fractions)
    print(f"goal flax >= {goal}x torch (ratio of medians): {ratio:.2f}x -> "
          f"{'MET' if ratio >= goal else 'NOT MET'}")


if __name__ == "__main__":
    main()
