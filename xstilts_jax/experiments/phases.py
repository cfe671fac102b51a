"""Phases: a fresh head per task on the backbone, trained on one task or a mixture, and loading a
trained phase back.

The backbone carries over from phase to phase; each phase starts fresh heads (jiant's
``encoder_only`` handoff). A phase pairs each head with its family's loss; ``run_phase``
trains them (resumable, best checkpoint on the English dev metric).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Mapping

import jax
from flax import nnx

from xstilts_jax.config import ConfigError
from xstilts_jax.data.mlm import MultilingualMlmData, tokenize_text
from xstilts_jax.experiments.rundir import LABELS_FILE, PHASE_FILE, is_phase_dir, read_json
from xstilts_jax.losses import mlm_loss
from xstilts_jax.models import lora
from xstilts_jax.models.heads import MaskedLMHead, MultiTaskModel, TaskModel
from xstilts_jax.models.pretrained import load_backbone, load_mlm_head
from xstilts_jax.sharding import DEFAULT_RULES
from xstilts_jax.storage import as_path
from xstilts_jax.tasks import TaskSpec, get_task
from xstilts_jax.tasks.families import FAMILIES, Featurized
from xstilts_jax.tasks.formats.text import read_text_corpus
from xstilts_jax.train.checkpoints import PhaseCheckpoints
from xstilts_jax.train.loop import PhaseConfig, PhaseResult, SupervisedData, run_phase
from xstilts_jax.train.multitask import MultiTaskData, task_probabilities

log = logging.getLogger(__name__)

MLM_TASK = "mlm"  # in a phase's task list: multilingual masked-LM text (alternative (i))
# A phase section's keys that are not PhaseConfig fields: how a mixture draws its tasks, and
# the languages of (translated) training data.
SECTION_ONLY_FIELDS = ("sampling", "temperature", "examples_cap", "train_languages")


def phase_config(name: str, section, *, seed: int) -> PhaseConfig:
    """PhaseConfig from a config section (every PhaseConfig field but ``name``; ``seed`` is the
    phase's resolved seed)."""
    fields = {k: v for k, v in section.items()
              if k not in ("task", "seed", *SECTION_ONLY_FIELDS)}
    if "buckets" in fields:
        fields["buckets"] = tuple(fields["buckets"])
    return PhaseConfig(name=name, seed=seed, **fields)


def phase_tasks(spec: str) -> tuple[str, ...]:
    """The task names of a phase's ``task`` field: one name, or a ``+``-joined mixture."""
    names = tuple(name.strip() for name in spec.split("+"))
    if not all(names):
        raise ValueError(f"bad task list {spec!r}: expected NAME or NAME+NAME+...")
    if len(set(names)) != len(names):
        raise ValueError(f"task list {spec!r} names a task twice")
    return names


def lora_config(model_config: Mapping[str, Any]) -> lora.LoRAConfig | None:
    """The cell's LoRA settings (``model.lora_rank`` ...), None for full fine-tuning."""
    try:
        return lora.LoRAConfig.from_model_config(model_config)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None


def load_model(model_config: Mapping[str, Any], *, adapter_seed: int, **overrides):
    """(backbone, load report): the pretrained checkpoint ``model.name`` of either family,
    with LoRA adapters when ``model.lora_rank`` > 0, drawn from ``adapter_seed`` (the first
    phase's seed, part of that phase's key: a shared phase must not depend on which cell
    trains it)."""
    overrides.setdefault("dtype", model_config["dtype"])
    backbone, report = load_backbone(model_config["name"], **overrides)
    settings = lora_config(model_config)
    if settings is not None:
        lora.add_adapters(backbone, settings, nnx.Rngs(params=adapter_seed))
    return backbone, report


def new_head(task: TaskSpec, backbone_config, seed: int) -> nnx.Module:
    """A fresh head of ``task``'s family, initialised from ``seed``."""
    family = FAMILIES[task.family]
    return family.head(backbone_config, family.num_outputs(task), rngs=nnx.Rngs(params=seed))


def encoder_of(result: PhaseResult):
    """The trained backbone of a phase (best checkpoint), for the next phase or retrieval."""
    return nnx.merge(result.graphdef, result.params).encoder


def supervised_data(cfg: PhaseConfig, train: Featurized, dev: Featurized,
                    pad_id: int) -> SupervisedData:
    """Training batches of ``train``; dev metrics through the family's predictions and
    official metric (the first, the family's metric, selects checkpoints)."""
    family = train.family

    def dev_metrics(logits):
        scores = dev.score(dev.predict(logits, cfg))
        first = {f"dev_{family.metric}": scores[family.metric]}
        return first | {f"dev_{k}": v for k, v in scores.items() if k != family.metric}

    return SupervisedData(train.inputs(), dev.inputs(), cfg, pad_id, dev_metrics=dev_metrics)


def train_phase(cfg: PhaseConfig, encoder, *, train: Featurized, dev: Featurized, pad_id: int,
                phase_dir, log_dir=None, mesh, rules=DEFAULT_RULES,
                progress: bool = True) -> PhaseResult:
    """A fresh head of ``train``'s task family on ``encoder``; the best checkpoint on the
    family's dev metric (the official XTREME metric of the English dev set) is returned."""
    head = new_head(train.task, encoder.config, cfg.seed + 1)
    return run_phase(cfg, TaskModel(encoder, head), supervised_data(cfg, train, dev, pad_id),
                     losses=train.family.loss(train.task), phase_dir=phase_dir, log_dir=log_dir,
                     mesh=mesh, rules=rules, progress=progress)


def train_mixture_phase(cfg: PhaseConfig, encoder, *,
                        tasks: Mapping[str, tuple[Featurized, Featurized]],
                        probabilities: Mapping[str, float], pad_id: int, phase_dir,
                        log_dir=None, mesh, rules=DEFAULT_RULES, progress: bool = True,
                        extra: Mapping[str, tuple[Any, nnx.Module, Any]] | None = None
                        ) -> PhaseResult:
    """Multi-task training (``train.multitask``): a fresh head per task on ``encoder``, one
    sampled task per update; the best checkpoint on the mean of the tasks' dev metrics.

    ``extra``: more members as (PhaseData, head, loss), e.g. the multilingual MLM of the
    paper's alternative (i); they train like the tasks but do not count in the dev average
    (unless there is no task).
    """
    heads = {name: new_head(train.task, encoder.config, cfg.seed + 1 + i)
             for i, (name, (train, _)) in enumerate(tasks.items())}
    members = {name: supervised_data(cfg, train, dev, pad_id)
               for name, (train, dev) in tasks.items()}
    losses = {name: train.family.loss(train.task) for name, (train, _) in tasks.items()}
    for name, (member, head, loss) in (extra or {}).items():
        members[name], heads[name], losses[name] = member, head, loss
    data = MultiTaskData(members, probabilities, seed=cfg.seed,
                         grad_accumulation=cfg.grad_accumulation,
                         selection=tuple(tasks) or None)
    return run_phase(cfg, MultiTaskModel(encoder, heads), data, losses=losses,
                     phase_dir=phase_dir, log_dir=log_dir, mesh=mesh, rules=rules,
                     progress=progress)


def multilingual_mlm(mlm_config, data_dir, tokenizer, encoder, model_dir,
                     cfg: PhaseConfig) -> tuple[MultilingualMlmData, nnx.Module, Any, dict]:
    """The paper's alternative (i): masked-LM on plain multilingual text as one more member of
    the intermediate mixture. Text: ``<mlm.dir or data.dir/mlm>/<lang>.txt`` (every ``*.txt``
    there when ``mlm.languages`` is empty); each language's last ``mlm.dev_lines`` lines are
    its dev text; languages are drawn with ``mlm.temperature`` (XLM-R: alpha 0.3, i.e. T =
    1/0.3). The head is the checkpoint's own MLM head when it has one, else a fresh one.
    Returns (data, head, loss, what to report)."""
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"mlm: masked-LM needs a mask token, and {model_dir}'s tokenizer has "
                          f"none (a decoder such as BLOOM is pretrained as a causal LM)")
    directory = pathlib.Path(mlm_config.dir or pathlib.Path(data_dir) / "mlm")
    languages = tuple(mlm_config.languages)
    if not languages and directory.is_dir():
        languages = tuple(sorted(p.stem for p in directory.glob("*.txt")))
    if not languages:
        raise ConfigError(f"mlm: no text in {directory} (expected <lang>.txt files, one sentence "
                          f"or document a line)")
    corpus = read_text_corpus(directory, languages)
    rows, dev_rows, report = {}, [], {"files": {}, "train_rows": {}, "dev_rows": {},
                                      "skipped": corpus.skipped}
    for lang, lines in corpus.lines.items():
        n_dev = min(mlm_config.dev_lines, len(lines) // 2)
        rows[lang] = tokenize_text(tokenizer, lines[:len(lines) - n_dev], cfg.max_length)
        dev = tokenize_text(tokenizer, lines[len(lines) - n_dev:], cfg.max_length)
        dev_rows.extend(dev)
        report["files"][lang] = str(corpus.files[lang])
        report["train_rows"][lang], report["dev_rows"][lang] = len(rows[lang]), len(dev)
    if not dev_rows:
        raise ConfigError(f"mlm: no dev text (each language needs at least 2 lines; "
                          f"mlm.dev_lines={mlm_config.dev_lines})")
    try:
        language_probabilities = task_probabilities(
            {lang: len(r) for lang, r in rows.items()}, sampling="temperature",
            temperature=mlm_config.temperature)
    except ValueError as e:
        raise ConfigError(f"mlm: {e}") from None
    specials = set(tokenizer.all_special_ids)
    vocab = min(len(tokenizer), encoder.config.vocab_size)
    data = MultilingualMlmData(
        rows, dev_rows, language_probabilities=language_probabilities,
        batch_size=cfg.batch_size, max_length=cfg.max_length, buckets=cfg.buckets,
        pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id, vocab_size=vocab,
        special_ids=sorted(specials),
        first_regular_id=next(i for i in range(vocab) if i not in specials), seed=cfg.seed)
    head = load_mlm_head(model_dir, encoder.config)
    report.update(language_probabilities=language_probabilities,
                  head="checkpoint" if head is not None else "fresh")
    if head is None:
        log.warning("%s has no masked-LM head: continued MLM starts from a fresh one", model_dir)
        head = MaskedLMHead(encoder.config, rngs=nnx.Rngs(params=cfg.seed + 1000))
    return data, head, mlm_loss, report


def load_phase_model(phase_dir, *, dtype: str | None = None):
    """(TaskModel or MultiTaskModel with the phase's best parameters, the tokenizer's
    directory) of a trained phase, e.g. ``runs/mnli-xnli/intermediate``: its encoder is the
    intermediate-trained one the paper's retrieval results use."""
    phase_dir = as_path(phase_dir)
    if not is_phase_dir(phase_dir):
        raise ConfigError(f"{phase_dir}: not a trained phase (expected {phase_dir / 'ckpt' / 'best'} "
                          f"and {phase_dir / PHASE_FILE})")
    described_in = phase_dir / PHASE_FILE
    identity = read_json(described_in)
    model_config, section = identity["model"], identity["section"]
    names = phase_tasks(section["task"])
    tasks = [get_task(t) for t in names if t != MLM_TASK]
    labels_path = phase_dir / LABELS_FILE
    derived = read_json(labels_path) if labels_path.exists() else {}
    for i, task in enumerate(tasks):
        if FAMILIES[task.family].labels_from_data and not task.labels:
            if task.name not in derived:
                raise ConfigError(f"{labels_path}: no label set of task {task.name!r} (its "
                                  f"labels come from its training data)")
            tasks[i] = dataclasses.replace(task, labels=tuple(derived[task.name]))
    # Adapters of any seed: the checkpoint's values replace them.
    encoder, report = load_model(model_config, adapter_seed=0,
                                 dtype=dtype or model_config["dtype"])
    heads = {t.name: new_head(t, encoder.config, 0) for t in tasks}
    if MLM_TASK in names:
        heads[MLM_TASK] = MaskedLMHead(encoder.config, rngs=nnx.Rngs(params=0))
    model = (TaskModel(encoder, heads[tasks[0].name]) if len(names) == 1 and tasks else
             MultiTaskModel(encoder, heads))
    graphdef, params_state = nnx.split(model)
    params = nnx.to_pure_dict(params_state)
    abstract = jax.eval_shape(lambda p: p, params)
    checkpoints = PhaseCheckpoints(phase_dir / "ckpt")
    try:
        restored = checkpoints.restore_best(abstract)
    finally:
        checkpoints.close()
    if restored is None:
        raise ConfigError(f"{phase_dir / 'ckpt' / 'best'}: no checkpoint saved yet "
                          f"(described in {described_in})")
    best_params, _ = restored
    return nnx.merge(graphdef, best_params), report.path


__all__ = ["MLM_TASK", "SECTION_ONLY_FIELDS", "encoder_of", "load_model", "load_phase_model",
           "lora_config",
           "multilingual_mlm", "new_head", "phase_config", "phase_tasks", "supervised_data",
           "train_mixture_phase", "train_phase"]
