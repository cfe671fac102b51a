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
from xstilts_jax.train.partitioning import make_mesh


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


def demo_encoder_config(vocab_size: int) -> EncoderConfig:
    return EncoderConfig(vocab_size=vocab_size, hidden_size=128, num_layers=2, num_heads=4,
                         intermediate_size=256, max_position_embeddings=130,
                         pad_token_id=synthetic.PAD_ID, hidden_dropout=0.1, attention_dropout=0.1)


DEMO_PHASES = dict(
    pretrain=dict(learning_rate=2e-3, batch_size=64, num_steps=1500, eval_every=500, max_length=64,
                  buckets=(32, 64)),
    intermediate=dict(learning_rate=5e-4, batch_size=32, num_epochs=2.0, eval_every=250,
                      max_length=64, buckets=(64,)),
    target=dict(learning_rate=5e-4, batch_size=32, num_epochs=10.0, eval_every=50, max_length=64,
                buckets=(64,)),
)


def run_demo(workdir: str | pathlib.Path, *, seed: int = 0, progress: bool = True) -> dict:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world = synthetic.make_world(synthetic.SyntheticConfig(seed=seed))
    mesh = make_mesh({"data": -1})
    config = demo_encoder_config(world.vocab_size)

    # 1. Masked-LM pretraining on every language.
    bos, eos = synthetic.BOS_ID, synthetic.EOS_ID
    corpus = [[bos, *s, eos] for s in world.mlm_corpus()]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(corpus))
    n_dev = min(1000, len(corpus) // 10)
    pretrain_cfg = PhaseConfig(name="pretrain", num_labels=0, seed=seed, **DEMO_PHASES["pretrain"])
    mlm = MlmData([corpus[i] for i in order[n_dev:]], [corpus[i] for i in order[:n_dev]],
                  batch_size=pretrain_cfg.batch_size, max_length=pretrain_cfg.max_length,
                  pad_id=synthetic.PAD_ID, mask_id=synthetic.MASK_ID, vocab_size=world.vocab_size,
                  special_ids=range(len(synthetic.SPECIAL_TOKENS)),
                  first_regular_id=len(synthetic.SPECIAL_TOKENS), seed=seed)
    rngs = nnx.Rngs(params=seed)
    model = TaskModel(Encoder(config, rngs=rngs), MaskedLMHead(config, rngs=rngs))
    pretrained = run_phase(pretrain_cfg, model, mlm, workdir=workdir, mesh=mesh, progress=progress)

    target = {split: pair_features(world.target_task(split)) for split in ("train", "dev")}
    tests = {lang: pair_features(world.target_task("test", lang)) for lang in world.languages}
    intermediate = {split: pair_features(world.intermediate_task(split)) for split in ("train", "dev")}
    label_names = world.target_task("dev").label_names
    results = {"seed": seed, "pretrain_dev_mlm_accuracy": pretrained.best_dev, "arms": {}}

    def phase(name, arm, num_labels):
        return PhaseConfig(name=f"{arm}-{name}", num_labels=num_labels, seed=seed, **DEMO_PHASES[name])

    arms = {"direct": None, "xstilts": "intermediate"}
    for arm, intermediate_phase in arms.items():
        encoder = encoder_of(pretrained)
        if intermediate_phase:
            cfg = phase("intermediate", arm, len(world.intermediate_task("dev").label_names))
            stage = train_classification_phase(cfg, encoder, train=intermediate["train"],
                                               dev=intermediate["dev"], pad_id=synthetic.PAD_ID,
                                               workdir=workdir, mesh=mesh, progress=progress)
            results["arms"].setdefault(arm, {})["intermediate_dev_accuracy"] = stage.best_dev
            encoder = encoder_of(stage)
        cfg = phase("target", arm, len(label_names))
        stage = train_classification_phase(cfg, encoder, train=target["train"], dev=target["dev"],
                                           pad_id=synthetic.PAD_ID, workdir=workdir, mesh=mesh,
                                           progress=progress)
        scores = zero_shot_eval(stage, tests, task=f"synthetic-paraphrase-{arm}",
                                label_names=label_names, cfg=cfg, pad_id=synthetic.PAD_ID,
                                mesh=mesh, workdir=workdir)
        results["arms"].setdefault(arm, {}).update(target_dev_accuracy=stage.best_dev,
                                                   zero_shot=summarize(scores))
    results["seconds"] = time.perf_counter() - started
    write_json_atomic(workdir / "results.json", results)
    return results


def format_table(results: dict) -> str:
    direct = results["arms"]["direct"]["zero_shot"]["per_language"]
    stilts = results["arms"]["xstilts"]["zero_shot"]["per_language"]
    lines = ["zero-shot accuracy (%) on the synthetic target task (paraphrase), English training only",
             f"{'language':>10} {'direct':>8} {'X-STILTs':>9} {'gain':>7}"]
    for lang in direct:
        lines.append(f"{lang:>10} {direct[lang]:8.2f} {stilts[lang]:9.2f} {stilts[lang] - direct[lang]:+7.2f}")
    d = results["arms"]["direct"]["zero_shot"]["average"]
    s = results["arms"]["xstilts"]["zero_shot"]["average"]
    lines.append(f"{'average':>10} {d:8.2f} {s:9.2f} {s - d:+7.2f}")
    return "\n".join(lines)
