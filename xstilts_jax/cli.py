"""The ``xstilts`` command line."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
PREEMPTED_EXIT = 143  # 128 + SIGTERM: saved, resume by running the same command


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def read_sentences(path: pathlib.Path) -> list[str]:
    """One sentence per line, UTF-8; empty lines are kept (they are sentences too)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    sentences = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                sentences.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as e:
                raise CliError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
    if not sentences:
        raise CliError(f"{path}: no sentences (the file is empty)")
    return sentences


def cmd_embed(args: argparse.Namespace) -> None:
    import numpy as np

    from xstilts_jax.embed import embed_sentences

    sentences = read_sentences(pathlib.Path(args.input))
    model_dir, encoder, tokenizer, layer = _encoder_and_tokenizer(args)
    start = time.perf_counter()
    embeddings = embed_sentences(encoder, tokenizer, sentences, layer=layer, pool=args.pool,
                                 max_length=args.max_length, batch_size=args.batch_size,
                                 progress=not args.quiet)
    seconds = time.perf_counter() - start
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as f:  # np.save(path) would append .npy to other suffixes
        np.save(f, embeddings)
    print(f"embedded {len(sentences)} sentences with {model_dir} "
          f"(layer {layer}/{encoder.config.num_layers}, {args.pool} pooling) in {seconds:.1f} s "
          f"-> {output} float32 {list(embeddings.shape)}")


def _encoder_and_tokenizer(args: argparse.Namespace):
    """The encoder of ``--model`` (checkpoint dir, offline name, hub id, or a run's phase
    directory such as ``runs/mnli-xnli/intermediate``), its tokenizer and
    the hidden layer ``--layer`` (default: 14 of 24 scaled to depth), checked."""
    from xstilts_jax.embed import default_retrieval_layer
    from xstilts_jax.models.pretrained import load_backbone, resolve_model_dir
    from xstilts_jax.experiments import is_phase_dir, load_phase_model
    from xstilts_jax.tokenization import load_tokenizer

    if is_phase_dir(args.model):  # a run's phase: its best parameters
        model, tokenizer_dir = load_phase_model(args.model, dtype=args.dtype)
        encoder = model.encoder
        model_dir = pathlib.Path(args.model)
    else:
        model_dir = tokenizer_dir = resolve_model_dir(args.model)
        encoder, _ = load_backbone(model_dir, dtype=args.dtype)
    tokenizer = load_tokenizer(tokenizer_dir)
    layer = default_retrieval_layer(encoder.config.num_layers) if args.layer is None else args.layer
    if not 0 <= layer <= encoder.config.num_layers:
        raise CliError(f"--layer {layer}: the model has layers 0..{encoder.config.num_layers} "
                       "(0 = embedding output)")
    return model_dir, encoder, tokenizer, layer


def cmd_retrieve(args: argparse.Namespace) -> None:
    import json

    from xstilts_jax.retrieve import format_retrieval, retrieve
    from xstilts_jax.sharding import make_mesh

    if args.source == "files" and not args.data:
        raise CliError("--data DIR is required (or --source tfds)")
    enable_compilation_cache()
    model_dir, encoder, tokenizer, layer = _encoder_and_tokenizer(args)
    start = time.perf_counter()
    result = retrieve(args.task, encoder, tokenizer, args.data, languages=args.languages or (),
                      layer=layer, pool=args.pool, max_length=args.max_length,
                      batch_size=args.batch_size, mesh=make_mesh({"data": -1}),
                      direction=args.direction, output_dir=pathlib.Path(args.output),
                      progress=not args.quiet, source=args.source, tfds_dir=args.tfds_dir)
    result.update(model=str(model_dir), layer=layer, pool=args.pool, direction=args.direction,
                  seconds=time.perf_counter() - start)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    print(format_retrieval(result))
    print(f"({result['seconds']:.0f} s; {model_dir}, layer {layer}/{encoder.config.num_layers}, "
          f"{args.pool} pooling; predictions in {pathlib.Path(args.output) / args.task})")


def enable_compilation_cache() -> None:
    """Persist XLA programs across processes, so a resumed (or repeated) run skips compiling.

    Uses $JAX_COMPILATION_CACHE_DIR when set, else <xstilts cache>/jax.
    """
    import os

    import jax

    from xstilts_jax.models.offline import default_cache_dir

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(default_cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def cmd_run(args: argparse.Namespace) -> None:
    from xstilts_jax.config import apply_overrides, load_config_file
    from xstilts_jax.experiments import run_cell
    from xstilts_jax.storage import as_path

    enable_compilation_cache()

    config = apply_overrides(load_config_file(args.config), args.overrides)
    result = run_cell(config, args.workdir, progress=not args.quiet)
    print(format_zero_shot(result.zero_shot))
    print(f"results: {as_path(args.workdir) / 'results.json'}")


def cmd_demo(args: argparse.Namespace) -> None:
    from xstilts_jax.demo import format_table, run_demo

    enable_compilation_cache()
    results = run_demo(args.workdir, seed=args.seed, progress=not args.quiet)
    print(format_table(results))
    print(f"({results['seconds']:.0f} s; results: {pathlib.Path(args.workdir) / 'results.json'})")


def cmd_sweep(args: argparse.Namespace) -> int:
    from xstilts_jax.experiments.store import Store
    from xstilts_jax.experiments.launch import run_sweep
    from xstilts_jax.experiments.sweep import format_plan, load_sweep, make_plan, status_table

    if args.status:
        print(status_table(args.status))
        return 0
    if not args.workdir:
        raise CliError("--workdir DIR is required (or --status DIR)")
    if args.reindex:
        count = Store(args.workdir).reindex()
        print(f"store rebuilt from {count} finished cells: {Store(args.workdir).dir}")
        return 0
    if not args.config:
        raise CliError("--config FILE.py:NAME is required")
    spec = load_sweep(args.config)
    print(format_plan(make_plan(spec, args.workdir)))
    if args.dry_run:
        return 0
    enable_compilation_cache()
    summary = run_sweep(spec, args.workdir, retry_degenerate=args.retry_degenerate,
                        progress=not args.quiet, backend=args.backend)
    print(summary.format())
    print(f"store: {Store(args.workdir).dir}; report: xstilts report {args.workdir}")
    if summary.preempted:
        return PREEMPTED_EXIT
    return 1 if summary.failed else 0


def _use_cpu_devices(topology: str) -> None:
    """``cpu:N`` plans need N host devices, which JAX creates only before it starts."""
    name = topology.strip().lower()
    if name.startswith("cpu:") and name[4:].isdigit():
        import jax

        try:
            jax.config.update("jax_num_cpu_devices", max(int(name[4:]), 1))
            jax.config.update("jax_platforms", "cpu")  # not libtpu's backend, if installed
        except RuntimeError:  # JAX already started (in-process callers): use what it has
            pass


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from xstilts_jax.config import apply_overrides, load_config_file
    from xstilts_jax.plan.planner import PHASES, plan_phase
    from xstilts_jax.plan.render import format_plan
    from xstilts_jax.plan.topology import GIB, parse_topology

    if bool(args.config) == bool(args.sweep):
        raise CliError("give one of --config FILE.py[:ARG] (a cell) or --sweep FILE.py:NAME")
    if args.sweep and args.overrides:
        raise CliError("--config.* overrides apply to --config, not to --sweep")
    _use_cpu_devices(args.topology)
    memory = int(args.chip_memory_gib * GIB) if args.chip_memory_gib else None
    topology = parse_topology(args.topology, cpu_memory_bytes=memory)
    if args.sweep:
        from xstilts_jax.experiments.sweep import load_sweep
        from xstilts_jax.plan.pricing import price_sweep, render_sweep_cost

        cost = price_sweep(load_sweep(args.sweep), topology, mfu=args.mfu,
                           progress=None if args.quiet else _stderr)
        print(json.dumps(cost.to_json(), indent=2) if args.json else render_sweep_cost(cost))
        return 0
    config = apply_overrides(load_config_file(args.config), args.overrides)
    mfu = args.mfu if args.mfu is not None else float(config.plan.mfu)
    phases = [args.phase] if args.phase != "all" else [p for p in PHASES if config[p].task]
    if args.search:
        from xstilts_jax.plan.search import render_frontier, search_plans

        ranks = tuple(int(r) for r in args.lora_ranks.split(","))
        results = {phase: search_plans(config, phase, topology, mfu=mfu, lora_ranks=ranks,
                                       max_compiles=args.max_compiles,
                                       progress=None if args.quiet else _stderr)
                   for phase in phases}
        if args.json:
            print(json.dumps({p: r.to_json() for p, r in results.items()}, indent=2))
        else:
            print("\n\n".join(render_frontier(r) for r in results.values()))
        return 0
    plans = []
    for phase in phases:
        if not args.quiet:
            _stderr(f"compiling the {phase} phase for {topology.name} ...")
        plans.append(plan_phase(config, phase, topology, mfu=mfu))
    if args.json:
        out = {p.phase: p.to_json(with_shardings=args.shardings) for p in plans}
        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(format_plan(p) for p in plans))
    return 0 if all(p.fits for p in plans) else 3


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_report(args: argparse.Namespace) -> None:
    from xstilts_jax.report import write_report

    report = write_report(args.run_dir, args.output, bootstrap=args.bootstrap, seed=args.seed)
    print(report.text)
    print(f"report: {report.out_dir}")


def format_zero_shot(zero_shot: dict) -> str:
    lines = []
    for task, scores in zero_shot.items():
        langs = list(scores["per_language"])
        lines.append(f"{task} zero-shot {scores.get('metric', 'accuracy')} (%)")
        lines.append("  ".join(f"{lang:>6}" for lang in langs) + f"  {'avg':>6}")
        lines.append("  ".join(f"{scores['per_language'][lang]:6.2f}" for lang in langs)
                     + f"  {scores['average']:6.2f}")
    return "\n".join(lines)


def format_task_scores(result: dict) -> str:
    """One task's per-language metrics and their averages, as a table."""
    from xstilts_jax.metrics import TASK_METRICS

    metrics = TASK_METRICS[result["task"]]
    lines = [f"{result['task']} (%)", f"{'lang':<6}" + "".join(f"{m:>13}" for m in metrics)]
    for lang, scores in result["per_language"].items():
        lines.append(f"{lang:<6}" + "".join(f"{scores[m]:13.2f}" for m in metrics))
    lines.append(f"{'avg':<6}" + "".join(f"{result['avg_' + m]:13.2f}" for m in metrics))
    lines.append(f"score: {result['score']:.2f}")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    from xstilts_jax.metrics import TASKS

    lines = ["XTREME summary (%)"]
    lines += [f"  {task:<17}{score:7.2f}" for task, score in summary["tasks"].items()]
    lines += [f"  {'[' + group + ']':<17}{score:7.2f}" for group, score in summary["groups"].items()]
    complete = "" if summary["complete"] else f" (over {len(summary['tasks'])} of {len(TASKS)} tasks)"
    lines.append(f"  {'overall':<17}{summary['overall']:7.2f}{complete}")
    if summary["unpredicted"]:
        lines.append(f"not scored (labels but no predictions): {', '.join(summary['unpredicted'])}")
    return "\n".join(lines)


def cmd_score(args: argparse.Namespace) -> None:
    import json

    from xstilts_jax.metrics import score_all, score_task

    if args.all:
        results = score_all(args.predictions, args.labels)
        if args.json:
            print(json.dumps(results, indent=1))
        else:
            print("\n\n".join([*(format_task_scores(r) for r in results["tasks"].values()),
                                format_summary(results["summary"])]))
    else:
        result = score_task(args.task, args.predictions, args.labels)
        print(json.dumps(result, indent=1) if args.json else format_task_scores(result))


def _embedding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="HF checkpoint directory, an offline model name "
                             "(multilingual-e5-small), a run's phase directory "
                             "(WORKDIR/intermediate: its best checkpoint) or, online, a hub id")
    parser.add_argument("--layer", type=int, default=None,
                        help="hidden state to pool: 0 = embeddings, N = after block N "
                             "(default: 14 of 24, scaled to the model's depth)")
    parser.add_argument("--pool", choices=("mean", "cls"), default="mean",
                        help="masked mean over all tokens incl. <s></s> (default), or the first token")
    parser.add_argument("--max-length", type=int, default=512,
                        help="tokens per sentence, specials included")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sentences per batch at least; short sentences are batched "
                             "more to a batch, up to about 2048 tokens")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="compute dtype (parameters stay float32)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xstilts", description="X-STILTs in JAX: intermediate-task training for "
                                    "zero-shot cross-lingual transfer.")
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser(
        "embed", help="sentence embeddings from one layer of an encoder or decoder",
        description="One sentence per line in, float32 [n, hidden] .npy out.")
    embed.add_argument("input", help="text file, one sentence per line (UTF-8)")
    embed.add_argument("-o", "--output", required=True, help="output .npy file")
    _embedding_arguments(embed)
    embed.set_defaults(func=cmd_embed)

    retrieve = commands.add_parser(
        "retrieve", help="BUCC 2018 / Tatoeba retrieval evaluation straight from an encoder",
        description="Embed both sides of every language, find neighbours with the exact "
                    "blockwise kernel, mine (BUCC: ratio margin, threshold chosen on dev) or "
                    "retrieve (Tatoeba: 1-NN), write XTREME-format predictions and print scores.")
    from xstilts_jax.tasks import task_names  # the catalog's (pure Python, no JAX)

    retrieve.add_argument("task", choices=task_names(role="retrieval"))
    retrieve.add_argument("--data", metavar="DIR",
                          help="XTREME's download/ folder (tatoeba/, bucc2018/) or the releases")
    retrieve.add_argument("--source", choices=("files", "tfds"), default="files",
                          help="read the task from the files under --data (default) or from "
                               "prepared TFDS datasets (--tfds-dir)")
    retrieve.add_argument("--tfds-dir", default=None, metavar="DIR",
                          help="TFDS data_dir for --source tfds (default: TFDS's own)")
    retrieve.add_argument("--languages", nargs="+", metavar="LANG",
                          help="ISO 639-1 codes (default: all of the task's)")
    retrieve.add_argument("--direction", choices=("en2xx", "xx2en"), default="en2xx",
                          help="Tatoeba: English queries against the other language (XTREME's "
                               "code, default) or the other way")
    retrieve.add_argument("--output", default="predictions", metavar="DIR",
                          help="writes DIR/<task>/test-<lang>.tsv (default: ./predictions)")
    retrieve.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _embedding_arguments(retrieve)
    retrieve.set_defaults(func=cmd_retrieve)

    demo = commands.add_parser(
        "demo", help="the whole method offline on a synthetic multilingual testbed (CPU, minutes)",
        description="MLM-pretrain a tiny encoder on synthetic languages, then compare "
                    "intermediate->target (X-STILTs) with target-only training, zero-shot on every language.")
    demo.add_argument("--workdir", default="xstilts-demo", help="run directory (default: ./xstilts-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    run = commands.add_parser(
        "run", help="train and evaluate one grid cell from a config file (resumable)",
        description="pretrained -> [intermediate] -> target -> zero-shot evaluation. Override any "
                    "config field with --config.KEY=VALUE; re-running the same command resumes.")
    run.add_argument("--config", required=True, help="configs/FILE.py[:ARG]")
    run.add_argument("--workdir", required=True, help="run directory (created; reused to resume)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser(
        "sweep", help="run a grid of cells (models x intermediates x targets x seeds) from a "
                      "sweep config, sharing phases; resumable",
        description="Expand configs/sweep.py:NAME, print the plan, and run every cell not done "
                    "yet: each intermediate phase once for all its targets. Failed cells are "
                    "recorded and the rest go on (exit status 1 when any failed).")
    sweep.add_argument("--config", help="configs/sweep.py:NAME (paper, scale, demo, ...)")
    sweep.add_argument("--workdir", help="the sweep's run directory (created; reused to resume)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    sweep.add_argument("--status", metavar="DIR", help="print the state of every cell of DIR")
    sweep.add_argument("--reindex", action="store_true",
                       help="rebuild DIR/store from the cells' results")
    sweep.add_argument("--retry-degenerate", type=int, default=0, metavar="N",
                       help="retrain a phase whose dev score stayed at chance with the next "
                            "seed, up to N times (both runs are kept, the first flagged)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="run cells in this process (default) or as tasks on a Ray "
                            "cluster (pip install 'xstilts_jax[ray]')")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sweep.set_defaults(func=cmd_sweep)

    from xstilts_jax.plan.topology import topology_names

    plan = commands.add_parser(
        "plan", help="what a cell or a sweep costs on a TPU slice: compiled ahead of time, "
                     "no weights, no chips",
        description="Compile the training program of a cell's phases (or of every phase of a "
                    "sweep) for a slice, from the model's shape alone, and print per-chip "
                    "memory against HBM, FLOPs, step time and chip-hours. Exit status 3 when a "
                    "phase does not fit. Topologies: " + topology_names() + ".")
    plan.add_argument("--config", help="configs/FILE.py[:ARG] (a cell); --config.KEY=VALUE "
                                       "overrides, e.g. --config.model.name=bloom-176b")
    plan.add_argument("--sweep", help="configs/sweep.py:NAME: price every phase of the sweep "
                                      "(shared phases once)")
    plan.add_argument("--topology", required=True, metavar="NAME",
                      help="v4:AxBxC, v5e:AxB, v5p:AxBxC, v6e:AxB (the names libtpu accepts; "
                           "needs the tpu extra) or cpu:N")
    plan.add_argument("--phase", choices=("intermediate", "target", "all"), default="all")
    plan.add_argument("--search", action="store_true",
                      help="search mesh, remat, micro-batch and LoRA for the smallest slice "
                           "of the generation that fits, and the fastest plan on it")
    plan.add_argument("--lora-ranks", default="0", metavar="R,R",
                      help="--search: LoRA ranks to try (0 = full fine-tuning; default 0)")
    plan.add_argument("--max-compiles", type=int, default=12, metavar="N",
                      help="--search: compiles per slice at most (default 12)")
    plan.add_argument("--mfu", type=float, default=None,
                      help="model-FLOPs utilisation for the step-time estimate (default: "
                           "config.plan.mfu, 0.4)")
    plan.add_argument("--chip-memory-gib", type=float, default=None, metavar="G",
                      help="cpu:N only: memory per fake device (default: host RAM / N)")
    plan.add_argument("--shardings", action="store_true",
                      help="--json: include every parameter's PartitionSpec")
    plan.add_argument("--json", action="store_true", help="print JSON (bytes, seconds)")
    plan.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    plan.set_defaults(func=cmd_plan)

    report = commands.add_parser(
        "report", help="tables, gains with bootstrap CIs, and gain-vs-size plots of a sweep",
        description="From DIR/store alone: the paper's tables per model, the XTREME score, "
                    "the gain of each intermediate task over direct fine-tuning with 95 %% "
                    "bootstrap CIs (seeds and test examples resampled), and gain vs parameters.")
    report.add_argument("run_dir", metavar="DIR", help="a sweep's run directory")
    report.add_argument("-o", "--output", default=None, metavar="OUT",
                        help="where summary.md, index.html and the PNGs go (default DIR/report)")
    report.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    report.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    report.set_defaults(func=cmd_report)

    score = commands.add_parser(
        "score", help="XTREME metrics of prediction files, as the official XTREME scorer",
        description="Score DIR/<task>/test-<lang>.{tsv,json} predictions against the labels "
                    "laid out the same way (XTREME's format): per-language metrics and averages (%%).")
    which = score.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="one task: pawsx, xnli, udpos, panx, xquad, mlqa, tydiqa, "
                                      "bucc2018 or tatoeba")
    which.add_argument("--all", action="store_true",
                       help="every task with a folder in both DIRs, plus the XTREME summary")
    score.add_argument("--predictions", required=True, metavar="DIR",
                       help="folder holding <task>/test-<lang>.* predictions")
    score.add_argument("--labels", required=True, metavar="DIR",
                       help="folder holding <task>/test-<lang>.* gold labels")
    score.add_argument("--json", action="store_true", help="print JSON instead of tables")
    score.set_defaults(func=cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    from xstilts_jax.config import ConfigError, split_overrides
    from xstilts_jax.metrics import ScoreError

    from xstilts_jax import heap

    heap.hold_freed_memory()  # before JAX starts its CPU threads (heap.py: ~0.5 s a step)
    overrides, rest = split_overrides(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rest)
    args.overrides = overrides
    if overrides and args.command not in ("run", "plan"):
        print(f"xstilts {args.command}: error: --config.* overrides only apply to 'run' and "
              f"'plan'", file=sys.stderr)
        return 2
    from xstilts_jax.models.pretrained import CheckpointError
    from xstilts_jax.plan.topology import TopologyError
    from xstilts_jax.tasks import DataError, UnknownTaskError
    from xstilts_jax.tokenization import TokenizerError
    from xstilts_jax.train.loop import Preempted, TrainingError

    try:
        status = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone early is handled below
    except Preempted as e:
        print(f"xstilts {args.command}: {e}", file=sys.stderr)
        return PREEMPTED_EXIT
    except (CliError, CheckpointError, TokenizerError, ConfigError, DataError,
            UnknownTaskError, TrainingError, ScoreError, TopologyError) as e:
        print(f"xstilts {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`xstilts sweep --status DIR | head`): stop quietly, as
        # coreutils do, instead of a traceback; stdout is pointed at /dev/null so that
        # Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
