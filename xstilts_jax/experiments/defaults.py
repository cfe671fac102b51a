"""The default config of one cell (what ``configs/xtreme.py`` and ``xstilts demo`` start from):
every field a cell reads, with the paper's hyperparameters (jiant's: AdamW, lr 1e-5, weight
decay 0.01 off biases and LayerNorms, 10 % linear warmup then linear decay; sequences of 128
tokens, QA windows of XTREME's 384, doc stride 128, questions cut to 64 tokens)."""

from __future__ import annotations

import dataclasses

import ml_collections

from xstilts_jax.sharding import DEFAULT_RULES
from xstilts_jax.tasks import get_task, task_names
from xstilts_jax.train.loop import PhaseConfig

# The paper's nine intermediate tasks (its Table 1), the "all9" mixture, and the targets: from
# the task catalog, where each task is declared once.
ALL_NINE = task_names(role="intermediate")
TARGETS = task_names(role="target")


def _max_length(task: str) -> int:
    """The sequence length of a task list: the longest its tasks' specs ask for (QA: 384)."""
    names = [t for t in task.split("+") if t and t != "mlm"]
    return max((get_task(t).max_length for t in names), default=128)


def phase(task: str, **overrides) -> ml_collections.ConfigDict:
    """One phase's section; ``task`` is a task name or a ``+``-joined mixture. Its fields are
    ``PhaseConfig``'s, with PhaseConfig's defaults (the one schema of a phase) but for what
    a cell changes on purpose, and the keys only a cell's phase has."""
    qa = _max_length(task) > 128
    fields: dict = {"task": task}
    fields.update({f.name: f.default for f in dataclasses.fields(PhaseConfig)
                   if f.name not in ("name", "seed")})
    fields.update(
        # PhaseConfig asks for a length (num_steps or num_epochs); a cell trains two epochs.
        num_epochs=2.0,
        # The task's own length: XTREME's 384-token windows for QA, 128 otherwise.
        max_length=_max_length(task),
        # Three lengths, so three compiled programs a phase; shorter buckets would save
        # little padding on the paper's tasks.
        buckets=(128, 256, 384) if qa else (32, 64, 128))
    fields.update(
        # mixtures only (train/multitask.py): how tasks are drawn per update
        sampling="proportional", temperature=1.0, examples_cap=0,  # 0: no cap
        # alternative (ii): train on English plus machine translations, e.g.
        # ('en', 'de', 'fr'); () : English only
        train_languages=(),
        # this phase's seed (data order, head initialisation, dropout); None: the
        # config's top-level seed. A sweep varies target seeds on one intermediate.
        seed=None)
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def cell_config(intermediate: str = "mnli", target: str = "xnli", *,
                tiny: bool = False) -> ml_collections.ConfigDict:
    """The config of a cell training ``intermediate`` (a task, a ``+`` mixture, ``all9``, or
    ``none``/"" for direct fine-tuning) then ``target``; ``tiny``: smoke-test sizes."""
    if intermediate == "all9":
        intermediate = "+".join(ALL_NINE)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict(dict(
        name="FacebookAI/xlm-roberta-base",  # a checkpoint directory, offline name or hub id
        dtype="float32", hidden_dropout=0.1, attention_dropout=0.1,
        # What the backward pass recomputes: "none", "full" (each block) or "dots_saveable"
        # (keeps the matrix products); memory against compute, same results.
        remat="none",
        # LoRA (models/lora.py): rank 0 = full fine-tuning. Rank R > 0 trains only adapters
        # W + lora_alpha / R * A @ B on lora_targets (kernel paths in a block, e.g.
        # "attention.query_kernel"; () = every attention and MLP projection) and the heads;
        # frozen_dtype "bfloat16" stores the frozen backbone weights in bf16.
        lora_rank=0, lora_alpha=8.0, lora_targets=(), frozen_dtype="float32"))
    config.data = ml_collections.ConfigDict(dict(
        source="files",  # "files": XTREME's download/ folder; "tfds": prepared TFDS datasets
        dir="data",  # XTREME's download/ folder (mnli/ and squad/ beside xnli/, ...)
        tfds_dir=""))  # TFDS data_dir for source="tfds" ("": $TFDS_DATA_DIR or ~/tensorflow_datasets)
    # Alternative (i): "mlm" in an intermediate mixture (e.g. mnli+mlm) adds masked-LM on plain
    # multilingual text: <dir>/<lang>.txt, one sentence or document a line ("" : data.dir/mlm;
    # languages () : every .txt there), languages drawn with XLM-R's alpha 0.3 (T = 1/0.3),
    # each language's last dev_lines lines held out.
    config.mlm = ml_collections.ConfigDict(dict(dir="", languages=(), temperature=1 / 0.3,
                                                dev_lines=100))
    # Devices per mesh axis (one may be -1: the rest), and the logical-axis rules that place
    # parameters, batches and activations on them (MaxText/flax style: (name, mesh axes)).
    config.mesh = ml_collections.ConfigDict(dict(shape=dict(data=-1, fsdp=1, tensor=1),
                                                 rules=DEFAULT_RULES))
    config.distributed = False  # jax.distributed.initialize() first (multi-host TPU pods)
    config.intermediate = phase("" if intermediate in ("none", "") else intermediate)
    config.target = phase(target)
    config.eval = ml_collections.ConfigDict(dict(languages=()))  # () = every language of the task
    # The fingerprint of the target phase's parameters in results.json (computed from each
    # host's own shards: experiments/rundir.params_sha256); not part of the experiment.
    config.debug = ml_collections.ConfigDict(dict(params_checksum=True))
    # `xstilts plan` only (not part of the experiment: runs ignore it): on-demand prices per
    # chip-hour in USD by TPU generation (Google Cloud list prices, us-central1, late 2024;
    # override for your region, commitments or spot), and the model-FLOPs utilisation that
    # turns the compute roofline into an estimated step time.
    config.plan = ml_collections.ConfigDict(dict(
        prices=dict(v4=3.22, v5e=1.20, v5p=4.20, v6e=2.70), mfu=0.4))
    if tiny:
        for section in (config.intermediate, config.target):
            qa = _max_length(section.task) > 128
            section.update(num_epochs=None, num_steps=20, eval_every=10, batch_size=8,
                           max_length=96 if qa else 64, buckets=(96,) if qa else (32, 64),
                           doc_stride=32, learning_rate=1e-4)
    return config


__all__ = ["ALL_NINE", "TARGETS", "cell_config", "phase"]
