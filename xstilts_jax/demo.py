"""``xstilts demo``: the X-STILTs method, end to end, offline, on the synthetic testbed.

1. Pretrain a tiny encoder by masked LM on every synthetic language (the "XLM-R" step).
2. Arm X-STILTs: English intermediate task (NLI) -> English target task (paraphrase).
3. Arm direct: English target task only, from the same pretrained encoder.
4. Zero-shot evaluation of both arms on the target task's test set in every language.

The same phase runner, steps and checkpoints as ``xstilts run``; deterministic from the seed,
and resumable like any run.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np
from flax import nnx

from xstilts_jax import synthetic
from xstilts_jax.data.mlm import MlmData
from xstilts_jax.models.encoder import Encoder, EncoderConfig
from xstilts_jax.models.heads import MaskedLMHead, TaskModel
from xstilts_jax.pipeline import (encoder_of, summarize, train_classification_phase,
                                  write_json_atomic, zero_shot_eval)
from xstilts_jax.train.loop import PhaseConfig, run_phase
from xstilts_jax.sharding import make_mesh


@dataclasses.dataclass(frozen=True)
class PairFeatures:
    """Synthetic pairs as encoder inputs: ``<s> A </s></s> B </s>`` (XLM-R's pair template)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray


def pair_features(data: synthetic.PairData) -> PairFeatures:
    bos, eos = synthetic.BOS_ID, synthetic.EOS_ID
    ids = [[bos, *a, eos, eos, *b, eos] for a, b in zip(data.a, data.b)]
    return PairFeatures(ids, [[0] * len(x) for x in ids], np.asarray(data.labels, np.int32))


def demo_encoder_config(vocab_size: int, **overrides) -> EncoderConfig:
    """The demo's tiny encoder: small enough to pretrain from scratch in a couple of minutes."""
    fields = dict(vocab_size=vocab_size, hidden_size=128, num_layers=2, num_heads=4,
                  intermediate_size=256, max_position_embeddings=130, pad_token_id=synthetic.PAD_ID,
                  hidden_dropout=0.1, attention_dropout=0.1)
    return EncoderConfig(**{**fields, **overrides})


# Every pair of the synthetic tasks fits 32 tokens and most MLM sentences 16 (length-grouped
# batches), so the buckets are the smallest that hold them.
DEMO_PHASES = dict(
    pretrain=dict(learning_rate=2e-3, batch_size=64, num_steps=1500, eval_every=500, max_length=64,
                  buckets=(16, 32)),
    intermediate=dict(learning_rate=1e-3, batch_size=32, num_epochs=4.0, eval_every=500,
                      max_length=32, buckets=(32,), eval_batch_size=128),
    target=dict(learning_rate=5e-4, batch_size=32, num_epochs=10.0, eval_every=50, max_length=32,
                buckets=(32,), eval_batch_size=128),
)
TARGET_SEEDS = 3  # fine-tuning on 500 examples is noisy: each arm's target phase is averaged


def run_demo(workdir: str | pathlib.Path, *, seed: int = 0, target_seeds: int = TARGET_SEEDS,
             progress: bool = True, phases: dict | None = None, encoder: dict | None = None) -> dict:
    """Both arms from one pretrained encoder; ``results.json`` in ``workdir``.

    ``phases`` and ``encoder`` override fields of ``DEMO_PHASES`` and of the demo encoder.
    Each arm trains its target phase with seeds ``seed .. seed + target_seeds - 1`` (head
    initialisation, data order, dropout); seed k of both arms sees the same data order, so
    the per-seed gains are paired.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phases = {name: {**fields, **(phases or {}).get(name, {})} for name, fields in DEMO_PHASES.items()}
    world = synthetic.make_world(synthetic.SyntheticConfig(seed=seed))
    mesh = make_mesh({"data": -1})
    config = demo_encoder_config(world.vocab_size, **(encoder or {}))

    # 1. Masked-LM pretraining on every language.
    bos, eos = synthetic.BOS_ID, synthetic.EOS_ID
    corpus = [[bos, *s, eos] for s in world.mlm_corpus()]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(corpus))
    n_dev = min(1000, len(corpus) // 10)
    pretrain_cfg = PhaseConfig(name="pretrain", num_labels=0, seed=seed, **phases["pretrain"])
    mlm = MlmData([corpus[i] for i in order[n_dev:]], [corpus[i] for i in order[:n_dev]],
                  batch_size=pretrain_cfg.batch_size, max_length=pretrain_cfg.max_length,
                  buckets=pretrain_cfg.buckets, pad_id=synthetic.PAD_ID, mask_id=synthetic.MASK_ID,
                  vocab_size=world.vocab_size, special_ids=range(len(synthetic.SPECIAL_TOKENS)),
                  first_regular_id=len(synthetic.SPECIAL_TOKENS), seed=seed)
    rngs = nnx.Rngs(params=seed)
    model = TaskModel(Encoder(config, rngs=rngs), MaskedLMHead(config, rngs=rngs))
    pretrained = run_phase(pretrain_cfg, model, mlm, workdir=workdir, mesh=mesh, progress=progress)

    target = {split: pair_features(world.target_task(split)) for split in ("train", "dev")}
    tests = {lang: pair_features(world.target_task("test", lang)) for lang in world.languages}
    label_names = world.target_task("dev").label_names
    results = {"seed": seed, "target_seeds": target_seeds, "encoder": dataclasses.asdict(config),
               "phases": phases, "pretrain_dev_mlm_accuracy": pretrained.best_dev,
               "world": world.stats(), "arms": {}}

    # 2. The intermediate phase (X-STILTs arm only): English NLI.
    intermediate = {split: pair_features(world.intermediate_task(split)) for split in ("train", "dev")}
    cfg = PhaseConfig(name="xstilts-intermediate", seed=seed, **phases["intermediate"],
                      num_labels=len(world.intermediate_task("dev").label_names))
    stage = train_classification_phase(cfg, encoder_of(pretrained), train=intermediate["train"],
                                       dev=intermediate["dev"], pad_id=synthetic.PAD_ID,
                                       workdir=workdir, mesh=mesh, progress=progress)
    starts = {"direct": pretrained, "xstilts": stage}
    results["arms"]["xstilts"] = {"intermediate_dev_accuracy": stage.best_dev}

    # 3. The target phase from each starting point, then zero-shot evaluation everywhere.
    for arm, start in starts.items():
        runs = []
        for target_seed in range(seed, seed + target_seeds):
            cfg = PhaseConfig(name=f"{arm}-target-s{target_seed}", num_labels=len(label_names),
                              seed=target_seed, **phases["target"])
            stage = train_classification_phase(cfg, encoder_of(start), train=target["train"],
                                               dev=target["dev"], pad_id=synthetic.PAD_ID,
                                               workdir=workdir, mesh=mesh, progress=progress)
            scores = zero_shot_eval(stage, tests, task=f"synthetic-paraphrase-{arm}-s{target_seed}",
                                    label_names=label_names, cfg=cfg, pad_id=synthetic.PAD_ID,
                                    mesh=mesh, workdir=workdir)
            runs.append({"seed": target_seed, "target_dev_accuracy": stage.best_dev,
                         "zero_shot": summarize(scores)})
        per_language = {lang: float(np.mean([r["zero_shot"]["per_language"][lang] for r in runs]))
                        for lang in world.languages}
        results["arms"].setdefault(arm, {}).update(
            runs=runs, zero_shot=summarize(per_language),
            target_dev_accuracy=float(np.mean([r["target_dev_accuracy"] for r in runs])))
    results["gain"] = paired_gain(results["arms"]["direct"]["runs"], results["arms"]["xstilts"]["runs"])
    results["seconds"] = time.perf_counter() - started
    write_json_atomic(workdir / "results.json", results)
    return results


def paired_gain(direct_runs: list[dict], xstilts_runs: list[dict]) -> dict:
    """Mean and sample std over seeds of (X-STILTs - direct), per language and on average, and
    in how many seeds X-STILTs was ahead."""
    def stats(key):
        diffs = np.array([key(x) - key(d) for d, x in zip(direct_runs, xstilts_runs, strict=True)])
        return {"mean": float(diffs.mean()), "std": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
                "wins": int(np.sum(diffs > 0))}

    languages = direct_runs[0]["zero_shot"]["per_language"]
    return {"per_language": {lang: stats(lambda r: r["zero_shot"]["per_language"][lang]) for lang in languages},
            "average": stats(lambda r: r["zero_shot"]["average"])}


def format_table(results: dict) -> str:
    arms, gain = results["arms"], results["gain"]
    direct, stilts = arms["direct"]["zero_shot"], arms["xstilts"]["zero_shot"]
    n = results["target_seeds"]
    lines = ["zero-shot accuracy (%) on the synthetic paraphrase task, trained on English only",
             f"(mean of {n} target-phase seed{'s' if n > 1 else ''}; gain = X-STILTs - direct, "
             f"mean +- std over seeds; wins = seeds where X-STILTs is ahead)",
             f"{'language':>10} {'direct':>8} {'X-STILTs':>9} {'gain':>16} {'wins':>5}"]

    def row(name, d, s, g):
        return f"{name:>10} {d:8.2f} {s:9.2f} {g['mean']:+8.2f} +- {g['std']:4.2f} {g['wins']:>3}/{n}"

    for lang in direct["per_language"]:
        lines.append(row(lang, direct["per_language"][lang], stilts["per_language"][lang],
                         gain["per_language"][lang]))
    lines.append(row("average", direct["average"], stilts["average"], gain["average"]))
    lines.append(f"pretraining dev MLM accuracy {results['pretrain_dev_mlm_accuracy']:.1f}; English NLI "
                 f"(intermediate) dev accuracy {arms['xstilts']['intermediate_dev_accuracy']:.1f}; "
                 f"English target dev accuracy: direct {arms['direct']['target_dev_accuracy']:.1f}, "
                 f"X-STILTs {arms['xstilts']['target_dev_accuracy']:.1f}")
    return "\n".join(lines)
