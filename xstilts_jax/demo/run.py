"""``xstilts demo``: the X-STILTs method, end to end, offline, on the synthetic testbed.

1. Write the synthetic world's tasks as files in XTREME's pair layout (``data/synthetic/``,
   tasks ``synthetic_nli`` and ``synthetic_paraphrase`` of the catalog) and its vocabulary as
   a tokenizer.
2. Pretrain a tiny encoder by masked LM on every synthetic language (the "XLM-R" step) and
   save it as a Hugging Face checkpoint with that tokenizer (``pretrained/``).
3. Run the grid's cells with ``run_cell``, exactly as ``xstilts run`` does: arm X-STILTs
   (English NLI, then the English paraphrase task) and arm direct (the paraphrase task only),
   each with several target seeds; the X-STILTs cells share their intermediate phase
   (``phases/<key>/``), as a sweep's cells do.
4. Compare the arms zero-shot in every language, paired by target seed.

Deterministic from the seed, and resumable like any run.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np
from flax import nnx

from xstilts_jax.data.mlm import MlmData
from xstilts_jax.demo import synthetic
from xstilts_jax.experiments import run_cell, write_json_atomic
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.experiments.phases import encoder_of
from xstilts_jax.losses import mlm_loss
from xstilts_jax.models.encoder import Encoder, EncoderConfig
from xstilts_jax.models.heads import MaskedLMHead, TaskModel
from xstilts_jax.models.pretrained import save_hf_checkpoint
from xstilts_jax.sharding import make_mesh
from xstilts_jax.tasks.catalog.synthetic import (SYNTHETIC_NLI, SYNTHETIC_NLI_LABELS,
                                                 SYNTHETIC_PARAPHRASE,
                                                 SYNTHETIC_PARAPHRASE_LABELS)
from xstilts_jax.train.loop import PhaseConfig, run_phase

INTERMEDIATE, TARGET = SYNTHETIC_NLI.name, SYNTHETIC_PARAPHRASE.name


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


def synthetic_tokenizer(world: synthetic.SyntheticWorld):
    """A fast tokenizer whose words are the world's tokens, one id each, with XLM-R's pair
    template (``<s> A </s></s> B </s>``): tokenizing the written text gives back the world's
    token ids exactly."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(world.token_strings)},
                                     unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", synthetic.BOS_ID), ("</s>", synthetic.EOS_ID)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
        model_input_names=["input_ids", "attention_mask"], model_max_length=512)


def write_synthetic_data(world: synthetic.SyntheticWorld, data_dir: pathlib.Path) -> None:
    """The world's tasks in the catalog's layout: ``synthetic/<task>/<split>-<lang>.tsv``,
    ``text_a<TAB>text_b<TAB>label`` a line (written once; the world is a function of its seed)."""
    files = [("nli", split, "en", world.intermediate_task(split)) for split in ("train", "dev")]
    files += [("paraphrase", split, "en", world.target_task(split)) for split in ("train", "dev")]
    files += [("paraphrase", "test", lang, world.target_task("test", lang))
              for lang in world.languages]
    for task, split, lang, pairs in files:
        path = data_dir / "synthetic" / task / f"{split}-{lang}.tsv"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"{world.decode(a)}\t{world.decode(b)}\t{pairs.label_names[y]}\n"
                 for a, b, y in zip(pairs.a, pairs.b, pairs.labels))
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        tmp.rename(path)


def pretrain(world: synthetic.SyntheticWorld, workdir: pathlib.Path, *, seed: int, phase: dict,
             encoder: dict, mesh, progress: bool) -> tuple[pathlib.Path, float]:
    """Masked-LM pretraining of the demo encoder on every language (resumable), saved as a
    Hugging Face checkpoint with the world's tokenizer: (its directory, best dev MLM
    accuracy)."""
    config = demo_encoder_config(world.vocab_size, **encoder)
    bos, eos = synthetic.BOS_ID, synthetic.EOS_ID
    corpus = [[bos, *s, eos] for s in world.mlm_corpus()]
    order = np.random.default_rng(seed).permutation(len(corpus))
    n_dev = min(1000, len(corpus) // 10)
    cfg = PhaseConfig(name="pretrain", seed=seed, **phase)
    mlm = MlmData([corpus[i] for i in order[n_dev:]], [corpus[i] for i in order[:n_dev]],
                  batch_size=cfg.batch_size, max_length=cfg.max_length, buckets=cfg.buckets,
                  pad_id=synthetic.PAD_ID, mask_id=synthetic.MASK_ID, vocab_size=world.vocab_size,
                  special_ids=range(len(synthetic.SPECIAL_TOKENS)),
                  first_regular_id=len(synthetic.SPECIAL_TOKENS), seed=seed)
    rngs = nnx.Rngs(params=seed)
    model = TaskModel(Encoder(config, rngs=rngs), MaskedLMHead(config, rngs=rngs))
    result = run_phase(cfg, model, mlm, losses=mlm_loss, phase_dir=workdir / "pretrain",
                       mesh=mesh, progress=progress)
    model_dir = workdir / "pretrained"
    if not (model_dir / "model.safetensors").is_file():
        save_hf_checkpoint(encoder_of(result), model_dir, tokenizer=synthetic_tokenizer(world))
    return model_dir, result.best_dev


def demo_cell_config(arm: str, *, seed: int, target_seed: int, model_dir, data_dir,
                     phases: dict, encoder: EncoderConfig):
    """The config of one cell: ``xstilts`` (synthetic NLI, then the paraphrase task) or
    ``direct`` (the paraphrase task only), with the demo's phase sizes."""
    config = cell_config(INTERMEDIATE if arm == "xstilts" else "none", TARGET)
    config.seed = seed
    config.model.update(name=str(model_dir), hidden_dropout=encoder.hidden_dropout,
                        attention_dropout=encoder.attention_dropout)
    config.data.dir = str(data_dir)
    for name in ("intermediate", "target"):
        config[name].update({"num_epochs": None, "num_steps": None, **phases[name]})
    config.target.seed = target_seed
    return config


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
    if (world.label_names["intermediate"], world.label_names["target"]) != (
            SYNTHETIC_NLI_LABELS, SYNTHETIC_PARAPHRASE_LABELS):
        raise AssertionError("the synthetic world's labels differ from the catalog's")
    data_dir = workdir / "data"
    write_synthetic_data(world, data_dir)
    mesh = make_mesh({"data": -1})
    model_dir, pretrain_accuracy = pretrain(world, workdir, seed=seed, phase=phases["pretrain"],
                                            encoder=encoder or {}, mesh=mesh, progress=progress)
    encoder_config = demo_encoder_config(world.vocab_size, **(encoder or {}))
    results = {"seed": seed, "target_seeds": target_seeds,
               "encoder": dataclasses.asdict(encoder_config),
               "phases": phases, "pretrain_dev_mlm_accuracy": pretrain_accuracy,
               "world": world.stats(), "model": str(model_dir), "data": str(data_dir),
               "arms": {}, "cells": {}}
    for arm in ("direct", "xstilts"):
        runs = []
        for target_seed in range(seed, seed + target_seeds):
            name = f"{arm}-s{target_seed}"
            config = demo_cell_config(arm, seed=seed, target_seed=target_seed,
                                      model_dir=model_dir, data_dir=data_dir, phases=phases,
                                      encoder=encoder_config)
            cell = run_cell(config, workdir / "cells" / name, progress=progress,
                            phases_dir=workdir / "phases")
            zero_shot = cell.zero_shot[TARGET]
            runs.append({"seed": target_seed, "target_dev_accuracy": cell.phases["target"].best_dev,
                         "zero_shot": {"per_language": zero_shot["per_language"],
                                       "average": zero_shot["average"]}})
            results["cells"][name] = {"dir": str(workdir / "cells" / name),
                                      "phases": {k: p.key for k, p in cell.phases.items()}}
            if arm == "xstilts":
                results["arms"].setdefault(arm, {})["intermediate_dev_accuracy"] = \
                    cell.phases["intermediate"].best_dev
        languages = list(runs[0]["zero_shot"]["per_language"])
        per_language = {lang: float(np.mean([r["zero_shot"]["per_language"][lang] for r in runs]))
                        for lang in languages}
        results["arms"].setdefault(arm, {}).update(
            runs=runs, zero_shot={"per_language": per_language,
                                  "average": float(np.mean(list(per_language.values())))},
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
