"""One cell of the X-STILTs grid: [pretrained] -> intermediate -> target -> zero-shot evaluation.

Every phase is resumable and a finished phase is not re-run, so re-running the same command
after a crash continues where it stopped. Phases live in the cell's directory, or in a shared
``phases_dir`` by content key (``rundir``), where cells with the same phase reuse it. The
result is a typed, versioned :class:`CellResult`, written atomically to ``results.json``;
predictions go to ``predictions/<task>/test-<lang>.<tsv|json>`` in XTREME's format.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
from flax import nnx

from xstilts_jax.config import ConfigError
from xstilts_jax.experiments.evaluate import evaluate_zero_shot
from xstilts_jax.experiments.phases import (MLM_TASK, encoder_of, load_model, lora_config,
                                            multilingual_mlm, phase_config, phase_tasks,
                                            train_mixture_phase, train_phase)
from xstilts_jax.experiments.rundir import (LABELS_FILE, PHASE_FILE, RESULTS_FILE, as_json,
                                            check_resume, params_sha256, phase_key, read_json,
                                            write_json_atomic)
from xstilts_jax.models.encoder import REMAT_POLICIES
from xstilts_jax.models import lora
from xstilts_jax.sharding import make_mesh, rules_table
from xstilts_jax.storage import PathLike, as_path
from xstilts_jax.tasks import TaskSpec, get_task, read
from xstilts_jax.tasks.families import FAMILIES, Featurized, featurize
from xstilts_jax.tokenization import load_tokenizer, task_tokenizer
from xstilts_jax.train.loop import PhaseConfig
from xstilts_jax.train.multitask import task_probabilities

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # of results.json; bumped when a field changes meaning
PHASES = ("intermediate", "target")
PHASE_RECORD_FILE = "record.json"  # in a phase's directory once it is trained: its PhaseRecord
STATS_DIR = "stats"  # per-example statistics of the zero-shot tests (bootstrap CIs)
# Model settings that change how a phase is computed, not what it computes.
_NOT_IDENTITY = ("remat",)
# LoRA's settings, part of a phase's identity only when LoRA is on (so full fine-tuning's
# phase keys are those of run directories made before LoRA existed).
_LORA_FIELDS = ("lora_rank", "lora_alpha", "lora_targets", "frozen_dtype")


def _set_fields(record) -> dict:
    """A record's fields as JSON, those left None out (they do not apply to it)."""
    return {k: v for k, v in dataclasses.asdict(record).items() if v is not None}


@dataclasses.dataclass
class DataRecord:
    """One split as read and featurized: where from, how many examples, what the reader
    skipped and why, how many rows featurization made (a union of translations: no path)."""

    examples: int
    path: str | None = None
    skipped: dict[str, int] | None = None
    rows: int | None = None

    def to_json(self) -> dict:
        return _set_fields(self)


@dataclasses.dataclass
class PhaseRecord:
    """A phase of the cell: what it trained, with which seed, where it lives (its key), and
    its best dev score. Mixtures add their tasks' training rows and draw probabilities."""

    task: str
    seed: int
    key: str
    dev_metric: str
    best_dev: float
    best_step: int
    steps: int
    stopped_early: bool
    train_rows: dict[str, int] | None = None
    probabilities: dict[str, float] | None = None
    mlm: dict | None = None

    def to_json(self) -> dict:
        return _set_fields(self)


@dataclasses.dataclass
class CellResult:
    """What a cell produced: ``results.json`` is written from it and read back by
    :meth:`from_json`. ``zero_shot[task]`` is ``evaluate_zero_shot``'s record."""

    model: str
    seed: int
    phases: dict[str, PhaseRecord] = dataclasses.field(default_factory=dict)
    data: dict[str, DataRecord] = dataclasses.field(default_factory=dict)
    zero_shot: dict[str, dict] = dataclasses.field(default_factory=dict)
    target_params_sha256: str | None = None
    # How the backbone was tuned ("full", or LoRA's "lora-r8-a8"...) and how many parameters
    # trained: the report tells full fine-tuning from LoRA cells by these.
    finetuning: str = "full"
    trainable_parameters: int | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        out = {"schema_version": self.schema_version, "model": self.model, "seed": self.seed,
               "finetuning": self.finetuning,
               "trainable_parameters": self.trainable_parameters,
               "phases": {k: v.to_json() for k, v in self.phases.items()},
               "data": {k: v.to_json() for k, v in self.data.items()},
               "zero_shot": self.zero_shot}
        if self.target_params_sha256 is not None:
            out["target_params_sha256"] = self.target_params_sha256
        return out

    @classmethod
    def from_json(cls, value: dict) -> "CellResult":
        version = value.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"results schema_version {version!r}, this code reads "
                             f"{SCHEMA_VERSION}")
        return cls(model=value["model"], seed=value["seed"],
                   phases={k: PhaseRecord(**v) for k, v in value["phases"].items()},
                   data={k: DataRecord(**v) for k, v in value["data"].items()},
                   zero_shot=value["zero_shot"],
                   target_params_sha256=value.get("target_params_sha256"),
                   finetuning=value.get("finetuning", "full"),
                   trainable_parameters=value.get("trainable_parameters"),
                   schema_version=version)

    @classmethod
    def load(cls, path: PathLike) -> "CellResult":
        return cls.from_json(read_json(path))


def phase_seed(config, section) -> int:
    """A phase's seed: its section's ``seed``, or the config's top-level one."""
    return config.seed if section.get("seed") is None else section.seed


def phase_identity(config, section, *, seed: int, previous: str | None) -> dict:
    """What a phase is, for its key: the model and data it starts from and reads, the phase
    before it (its key), its config section and seed, and the MLM text when it trains on it."""
    section = as_json(section.to_dict())
    section["seed"] = seed
    if section.get("train_order") == "shuffled":  # the order before the field: keys unchanged
        del section["train_order"]
    with_mlm = MLM_TASK in phase_tasks(section["task"])
    model = {k: v for k, v in as_json(config.model.to_dict()).items() if k not in _NOT_IDENTITY}
    if not model.get("lora_rank"):
        model = {k: v for k, v in model.items() if k not in _LORA_FIELDS}
    return {"model": model,
            "data": as_json(config.data.to_dict()), "previous": previous, "section": section,
            "mlm": as_json(config.mlm.to_dict()) if with_mlm else None}


def cell_phases(config) -> list[tuple[str, Any, int, dict, str]]:
    """The cell's phases in order, as ``(name, section, seed, identity, key)``: what each is
    and its content key, computed from the config alone (a sweep plans with these)."""
    phases, previous = [], None
    for name in PHASES:
        section = config[name]
        if not section.task:
            continue
        seed = phase_seed(config, section)
        identity = phase_identity(config, section, seed=seed, previous=previous)
        previous = phase_key(identity)
        phases.append((name, section, seed, identity, previous))
    return phases


class _Data:
    """Reads and featurizes the cell's splits, recording each in the result (never a split
    dropped or cut silently: what a reader skipped and what featurization made are kept)."""

    def __init__(self, config, tokenizer, result: CellResult):
        self.config, self.tokenizer, self.result = config, tokenizer, result

    def read(self, task: TaskSpec, split: str, language: str | None = None):
        data = self.config.data
        return read(task, data.dir, split, language or task.train_language, source=data.source,
                    tfds_dir=data.tfds_dir or None)

    def record(self, task, split, language, read_result, features) -> None:
        self.result.data[f"{task.name}/{split}/{language}"] = DataRecord(
            examples=len(read_result.examples), path=str(read_result.path),
            skipped=dict(read_result.skipped),
            rows=None if features is None else len(features.input_ids))

    def featurized(self, task: TaskSpec, split: str, cfg: PhaseConfig,
                   language: str | None = None, read_result=None) -> Featurized:
        language = language or task.train_language
        read_result = read_result or self.read(task, split, language)
        result = featurize(self.tokenizer, task, language, read_result.examples, cfg)
        self.record(task, split, language, read_result, result.features)
        return result

    def training_set(self, task: TaskSpec, section, cfg: PhaseConfig,
                     read_result=None) -> Featurized:
        """English training data, or (``train_languages``, the paper's alternative (ii)) the
        union of the English data and its machine translations into those languages."""
        languages = tuple(section.train_languages)
        if not languages:
            return self.featurized(task, "train", cfg, read_result=read_result)
        available = task.translate_train_languages
        wrong = [lang for lang in languages
                 if lang != task.train_language and lang not in available]
        if wrong or len(set(languages)) != len(languages):
            raise ConfigError(f"train_languages {list(languages)}: {task.name} has translated "
                              f"training data in {', '.join(available) or 'no language'} "
                              f"(and {task.train_language!r} is its own)")
        examples = []
        for lang in languages:
            split = "train" if lang == task.train_language else "translate_train"
            part = (read_result if split == "train" and read_result is not None
                    else self.read(task, split, lang))
            examples.extend(part.examples)
            self.record(task, split, lang, part, None)
        result = featurize(self.tokenizer, task, "+".join(languages), examples, cfg)
        self.result.data[f"{task.name}/train/{'+'.join(languages)}"] = DataRecord(
            examples=len(examples), rows=len(result.features.input_ids))
        return result


def _phase_tasks(name: str, section) -> tuple[tuple[str, ...], list[TaskSpec]]:
    """The phase's task names and the trainable tasks among them, checked."""
    try:
        names = phase_tasks(section.task)
        tasks = [get_task(t) for t in names if t != MLM_TASK]
    except ValueError as e:
        raise ConfigError(f"{name}.task: {e}") from None
    if MLM_TASK in names and name == "target":
        raise ConfigError(f"target.task: {MLM_TASK} belongs in the intermediate phase")
    for task in tasks:
        if task.family not in FAMILIES or not task.trainable:
            raise ConfigError(f"{name}.task: {task.name} cannot be trained (a "
                              f"{task.family} task)")
    if name == "target" and len(tasks) > 1:
        raise ConfigError(f"target.task: one target task, not a mixture ({section.task})")
    return names, tasks


NUM_PROCESSES_ENV, PROCESS_ID_ENV = "XSTILTS_NUM_PROCESSES", "XSTILTS_PROCESS_ID"


def start_distributed() -> None:
    """``jax.distributed.initialize`` for ``config.distributed``, once per process.

    On a TPU pod, a GPU cluster under SLURM or MPI, JAX finds the coordinator, the process
    count and this process's id itself. Elsewhere (several processes on one machine, a
    cluster JAX does not know) give them in the environment: ``JAX_COORDINATOR_ADDRESS``
    (host:port of process 0, read by JAX), ``XSTILTS_NUM_PROCESSES`` and
    ``XSTILTS_PROCESS_ID``. CPU devices of several processes exchange through gloo."""
    from jax._src import distributed

    if getattr(distributed.global_state, "client", None) is not None:
        return  # already joined (a sweep's second cell, or the caller did it)
    count, index = os.environ.get(NUM_PROCESSES_ENV), os.environ.get(PROCESS_ID_ENV)
    if (count is None) != (index is None):
        raise ConfigError(f"distributed: set both {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV}, "
                          f"or neither")
    try:
        kwargs = {} if count is None else {"num_processes": int(count), "process_id": int(index)}
    except ValueError:
        raise ConfigError(f"distributed: {NUM_PROCESSES_ENV}={count!r} and {PROCESS_ID_ENV}="
                          f"{index!r} must be integers") from None
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only
    jax.distributed.initialize(**kwargs)


def run_cell(config, workdir: PathLike | None, *, progress: bool = True,
             phases_dir: PathLike | None = None,
             stop_after: str | None = None) -> CellResult:
    """Run (or resume) one (model, intermediate, target, seeds) cell from a config.

    ``phases_dir``: where phases live by content key, shared with other cells (default: in
    ``workdir`` by name). ``stop_after="intermediate"`` trains (or finds) that phase in
    ``phases_dir`` and returns, evaluating nothing and writing no cell (``workdir`` None): a
    sweep trains a row's shared phase this way before its targets. Returns the cell's
    :class:`CellResult`."""
    if stop_after is not None and (phases_dir is None or stop_after not in
                                   [name for name, *_ in cell_phases(config)]):
        raise ValueError(f"stop_after={stop_after!r} needs a phases_dir and a phase the cell "
                         f"has ({', '.join(name for name, *_ in cell_phases(config))})")
    if config.distributed:
        start_distributed()
    if stop_after is None:
        workdir = as_path(workdir)  # a local directory or a bucket's (gs://)
        workdir.mkdir(parents=True, exist_ok=True)
        check_resume(workdir, config.to_dict())

    target_task = get_task(config.target.task)
    if target_task.test_split is None or not target_task.trainable:
        raise ConfigError(f"target.task: {target_task.name} is not a zero-shot target task "
                          f"(it has no {'test split' if target_task.trainable else 'training data'})")
    languages = tuple(config.eval.languages) or target_task.languages
    unknown = [lang for lang in languages if lang not in target_task.languages]
    if unknown:
        raise ConfigError(f"eval.languages: {unknown} are not languages of {target_task.name} "
                          f"({', '.join(target_task.languages)})")
    remat = config.model.get("remat", "none")
    if remat not in REMAT_POLICIES:
        raise ConfigError(f"model.remat {remat!r}: expected one of {', '.join(REMAT_POLICIES)}")
    try:
        mesh = make_mesh(dict(config.mesh.shape))
        rules = rules_table(config.mesh.rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    phases = cell_phases(config)
    # Each host reads only its own devices' shards of the checkpoint (no host holds it whole).
    encoder, report = load_model(config.model, adapter_seed=phases[0][2], mesh=mesh,
                                 rules=rules, hidden_dropout=config.model.hidden_dropout,
                                 attention_dropout=config.model.attention_dropout, remat=remat)
    # The task format: a tokenizer without a pair template (BLOOM's) gets `A </s> B </s>`.
    tokenizer = task_tokenizer(load_tokenizer(report.path))
    pad_id = tokenizer.pad_token_id
    result = CellResult(model=str(config.model.name), seed=config.seed,
                        finetuning=lora.finetuning_label(lora_config(config.model)))
    data = _Data(config, tokenizer, result)

    for name, section, seed, identity, key in phases:
        names, tasks = _phase_tasks(name, section)
        phase_dir = (as_path(phases_dir) / key if phases_dir is not None
                     else workdir / name)
        check_resume(phase_dir, {"key": key, **identity}, file=PHASE_FILE, what="phase")
        # Label sets made from training data (CCG supertags): saved with the phase, for
        # load_phase_model to rebuild its heads.
        train_reads, derived = {}, {}
        for i, task in enumerate(tasks):
            if FAMILIES[task.family].labels_from_data and not task.labels:
                train_reads[task.name] = data.read(task, "train")
                labels = FAMILIES[task.family].labels_from(train_reads[task.name].examples)
                tasks[i] = derived[task.name] = dataclasses.replace(task, labels=labels)
        if derived:
            write_json_atomic(phase_dir / LABELS_FILE,
                              {t: list(task.labels) for t, task in derived.items()})
        cfg = phase_config(name, section, seed=seed)
        splits = {t.name: (data.training_set(t, section, cfg, train_reads.get(t.name)),
                           data.featurized(t, "dev", cfg)) for t in tasks}
        where = dict(phase_dir=phase_dir, log_dir=phase_dir if phases_dir is not None else workdir,
                     mesh=mesh, rules=rules, progress=progress)
        extra: dict[str, Any] = {}
        if len(tasks) == 1 and MLM_TASK not in names:
            train, dev = splits[tasks[0].name]
            phase = train_phase(cfg, encoder, train=train, dev=dev, pad_id=pad_id, **where)
            record = PhaseRecord(section.task, seed, key, FAMILIES[tasks[0].family].metric,
                                 phase.best_dev, phase.best_step, phase.steps_done,
                                 phase.stopped_early)
        else:
            # jiant counts a task's cached training rows: QA windows, examples otherwise.
            sizes = {t: train.inputs().num_examples for t, (train, _) in splits.items()}
            mlm_report = None
            if MLM_TASK in names:
                mlm_data, mlm_head, mlm_loss, mlm_report = multilingual_mlm(
                    config.mlm, config.data.dir, tokenizer, encoder, report.path, cfg)
                extra[MLM_TASK] = (mlm_data, mlm_head, mlm_loss)
                sizes[MLM_TASK] = mlm_data.num_train_examples()
            try:
                probabilities = task_probabilities(
                    sizes, sampling=section.sampling, temperature=section.temperature,
                    examples_cap=section.examples_cap or None)
            except ValueError as e:
                raise ConfigError(f"{name}: {e}") from None
            phase = train_mixture_phase(cfg, encoder, tasks=splits, probabilities=probabilities,
                                        pad_id=pad_id, extra=extra, **where)
            record = PhaseRecord(section.task, seed, key, "average", phase.best_dev,
                                 phase.best_step, phase.steps_done, phase.stopped_early,
                                 train_rows=sizes, probabilities=probabilities, mlm=mlm_report)
        result.phases[name] = record
        write_json_atomic(phase_dir / PHASE_RECORD_FILE, record.to_json())
        if name == stop_after:
            return result
        encoder = encoder_of(phase)
    test_sets = {lang: data.featurized(target_task, "test", cfg, lang) for lang in languages}
    result.zero_shot[target_task.name] = evaluate_zero_shot(
        phase, test_sets, cfg=cfg, pad_id=pad_id, predictions_dir=workdir / "predictions",
        stats_dir=workdir / STATS_DIR)
    if config.debug.params_checksum:
        result.target_params_sha256 = params_sha256(phase.params)
    result.trainable_parameters = lora.count_params(nnx.merge(phase.graphdef, phase.params))[0]
    write_json_atomic(workdir / RESULTS_FILE, result.to_json())
    return result


__all__ = ["PHASE_RECORD_FILE", "SCHEMA_VERSION", "STATS_DIR", "CellResult", "cell_phases", "DataRecord", "PhaseRecord", "phase_identity",
           "phase_seed", "run_cell"]
