"""One cell of the X-STILTs grid: [pretrained] -> intermediate -> target -> zero-shot evaluation.

The encoder carries over from phase to phase; each phase starts a fresh head (jiant's
``encoder_only`` handoff). Every phase is resumable and a finished phase is not re-run, so
re-running the same command after a crash continues where it stopped. Results are written
atomically to ``results.json``; predictions in the XTREME submission format to
``predictions/<task>/test-<lang>.tsv``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import tempfile
from typing import Any, Mapping

import jax
import jax.experimental.multihost_utils
import numpy as np
from flax import nnx

from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, MultiTaskModel, TaskModel
from xstilts_jax.tasks.families import FAMILIES, Featurized
from xstilts_jax.train.loop import (ClassificationData, Features, PhaseConfig, PhaseResult,
                                    SupervisedData, accuracy, classification_inputs,
                                    predict_logits, run_phase)
from xstilts_jax.data.mlm import MultilingualMlmData, read_text_corpus, tokenize_text
from xstilts_jax.train.multitask import MultiTaskData, task_probabilities
from xstilts_jax.sharding import DEFAULT_RULES, is_primary_host

log = logging.getLogger(__name__)


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one
    (on process 0 only: hosts of a multi-host run share the run directory)."""
    if not is_primary_host():
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
        tmp = f.name
    os.replace(tmp, path)


def train_classification_phase(cfg: PhaseConfig, encoder: Encoder, *, train: Features, dev: Features,
                               pad_id: int, workdir, mesh, progress: bool = True) -> PhaseResult:
    """A fresh classification head on ``encoder``, trained on ``train``; best-on-dev returned."""
    head = ClassificationHead(encoder.config, cfg.num_labels, rngs=nnx.Rngs(params=cfg.seed + 1))
    data = ClassificationData(train, dev, cfg, pad_id)
    return run_phase(cfg, TaskModel(encoder, head), data, workdir=workdir, mesh=mesh, progress=progress)


def encoder_of(result: PhaseResult) -> Encoder:
    """The trained encoder of a phase (best checkpoint), for the next phase or retrieval."""
    return nnx.merge(result.graphdef, result.params).encoder


def zero_shot_eval(result: PhaseResult, test_sets: Mapping[str, Features], *, task: str,
                   label_names, cfg: PhaseConfig, pad_id: int, mesh, workdir) -> dict[str, float]:
    """Accuracy per language; predictions written as XTREME expects (one label per line)."""
    scores = {}
    out_dir = pathlib.Path(workdir) / "predictions" / task
    out_dir.mkdir(parents=True, exist_ok=True)
    for language, features in test_sets.items():
        logits = predict_logits(result.eval_step, result.params, classification_inputs(features),
                                batch_size=result.eval_batch_size, pad_id=pad_id,
                                max_length=cfg.max_length, buckets=cfg.buckets, feed=result.feed)
        predicted = np.argmax(logits, axis=-1)
        if is_primary_host():
            (out_dir / f"test-{language}.tsv").write_text(
                "".join(f"{label_names[i]}\n" for i in predicted), encoding="utf-8")
        scores[language] = accuracy(logits, features.labels)
    return scores


def summarize(per_language: Mapping[str, float]) -> dict:
    return {"per_language": dict(per_language),
            "average": float(np.mean(list(per_language.values()))) if per_language else float("nan")}


# --------------------------------------------------------------------------- real-data cells


MLM_TASK = "mlm"  # in a phase's task list: multilingual masked-LM text (alternative (i))
LABELS_FILE = "labels.json"  # <workdir>/<phase>/: label sets made from training data
# A phase section's keys that are not PhaseConfig fields: how a mixture draws its tasks, and
# the languages of (translated) training data.
SECTION_ONLY_FIELDS = ("sampling", "temperature", "examples_cap", "train_languages")


def phase_config(name: str, section, *, num_labels: int, seed: int, debug=None) -> PhaseConfig:
    """PhaseConfig from a config section (every PhaseConfig field except name/num_labels)."""
    fields = {k: v for k, v in section.items() if k not in ("task", *SECTION_ONLY_FIELDS)}
    if "buckets" in fields:
        fields["buckets"] = tuple(fields["buckets"])
    if debug is not None and debug.phase == name:
        fields["inject_nan_at_step"] = debug.inject_nan_at_step if debug.inject_nan_at_step >= 0 else None
        fields["kill_at_step"] = debug.kill_at_step if debug.kill_at_step >= 0 else None
    return PhaseConfig(name=name, num_labels=num_labels, seed=seed, **fields)


def params_sha256(params) -> str:
    """Fingerprint of a parameter tree (values and paths), to check runs are bit-identical."""
    import hashlib

    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(params), key=lambda x: jax.tree_util.keystr(x[0])):
        digest.update(jax.tree_util.keystr(path).encode())
        if not leaf.is_fully_addressable:  # sharded over several hosts: gather it first
            leaf = jax.experimental.multihost_utils.process_allgather(leaf, tiled=True)
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return digest.hexdigest()


def _check_resume(workdir: pathlib.Path, resolved: dict) -> None:
    """A run directory belongs to one config: resuming under another would mix two runs.

    The ``debug`` section (fault injection, checksums) is not part of the experiment.
    """
    path = workdir / "config.json"
    resolved = {k: v for k, v in resolved.items() if k != "debug"}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != resolved:
            changed = sorted(k for k in set(previous) | set(resolved) if previous.get(k) != resolved.get(k))
            from xstilts_jax.config import ConfigError

            raise ConfigError(f"{path}: this run directory was started with a different config "
                             f"(differs in: {', '.join(changed)}); use a new --workdir")
    else:
        write_json_atomic(path, resolved)


def phase_tasks(spec: str) -> tuple[str, ...]:
    """The task names of a phase's ``task`` field: one name, or a ``+``-joined mixture."""
    names = tuple(name.strip() for name in spec.split("+"))
    if not all(names):
        raise ValueError(f"bad task list {spec!r}: expected NAME or NAME+NAME+...")
    if len(set(names)) != len(names):
        raise ValueError(f"task list {spec!r} names a task twice")
    return names


def _new_head(task, encoder: Encoder, seed: int) -> nnx.Module:
    family = FAMILIES[task.family]
    return family.head(encoder.config, family.num_outputs(task.labels), rngs=nnx.Rngs(params=seed))


def supervised_data(cfg: PhaseConfig, train: Featurized, dev: Featurized,
                    pad_id: int) -> SupervisedData:
    """Training batches of ``train`` with its family's loss; dev metrics through the family's
    predictions and official metric (the first, the family's metric, selects checkpoints)."""
    family = train.family

    def dev_metrics(logits):
        scores = dev.score(dev.predict(logits, cfg))
        first = {f"dev_{family.metric}": scores[family.metric]}
        return first | {f"dev_{k}": v for k, v in scores.items() if k != family.metric}

    return SupervisedData(train.inputs(), dev.inputs(), cfg, pad_id,
                          loss_fn=family.loss(train.task.labels), dev_metrics=dev_metrics)


def train_phase(cfg: PhaseConfig, encoder: Encoder, *, train: Featurized, dev: Featurized,
                pad_id: int, workdir, mesh, rules=DEFAULT_RULES,
                progress: bool = True) -> PhaseResult:
    """A fresh head of ``train``'s task family on ``encoder``; the best checkpoint on the
    family's dev metric (the official XTREME metric of the English dev set) is returned."""
    head = _new_head(train.task, encoder, cfg.seed + 1)
    return run_phase(cfg, TaskModel(encoder, head), supervised_data(cfg, train, dev, pad_id),
                     workdir=workdir, mesh=mesh, rules=rules, progress=progress)


def train_mixture_phase(cfg: PhaseConfig, encoder: Encoder, *,
                        tasks: Mapping[str, tuple[Featurized, Featurized]],
                        probabilities: Mapping[str, float], pad_id: int, workdir, mesh,
                        rules=DEFAULT_RULES, progress: bool = True,
                        extra: Mapping[str, tuple[Any, nnx.Module]] | None = None) -> PhaseResult:
    """Multi-task training (``train.multitask``): a fresh head per task on ``encoder``, one
    sampled task per update; the best checkpoint on the mean of the tasks' dev metrics.

    ``extra``: more members as (PhaseData, head), e.g. the multilingual MLM of the paper's
    alternative (i); they train like the tasks but do not count in the dev average (unless
    there is no task).
    """
    extra = dict(extra or {})
    heads = {name: _new_head(train.task, encoder, cfg.seed + 1 + i)
             for i, (name, (train, _)) in enumerate(tasks.items())}
    members = {name: supervised_data(cfg, train, dev, pad_id)
               for name, (train, dev) in tasks.items()}
    for name, (member, head) in extra.items():
        members[name], heads[name] = member, head
    data = MultiTaskData(members, probabilities, seed=cfg.seed,
                         grad_accumulation=cfg.grad_accumulation,
                         selection=tuple(tasks) or None)
    return run_phase(cfg, MultiTaskModel(encoder, heads), data, workdir=workdir, mesh=mesh,
                     rules=rules, progress=progress)


def multilingual_mlm(mlm_config, data_dir, tokenizer, encoder: Encoder, model_dir,
                     cfg: PhaseConfig) -> tuple[MultilingualMlmData, nnx.Module, dict]:
    """The paper's alternative (i): masked-LM on plain multilingual text as one more member of
    the intermediate mixture. Text: ``<mlm.dir or data.dir/mlm>/<lang>.txt`` (every ``*.txt``
    there when ``mlm.languages`` is empty); each language's last ``mlm.dev_lines`` lines are
    its dev text; languages are drawn with ``mlm.temperature`` (XLM-R: alpha 0.3, i.e. T =
    1/0.3). The head is the checkpoint's own MLM head when it has one, else a fresh one.
    Returns (data, head, what to report)."""
    from xstilts_jax.config import ConfigError
    from xstilts_jax.models.heads import MaskedLMHead
    from xstilts_jax.models.pretrained import load_mlm_head

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
    return data, head, report


def evaluate_zero_shot(result: PhaseResult, test_sets: Mapping[str, Featurized], *,
                       cfg: PhaseConfig, pad_id: int, mesh, workdir) -> dict:
    """Predict every language's test set, write ``predictions/<task>/test-<lang>.<tsv|json>``
    in the XTREME submission format and score it with the official metric.

    Returns ``{"metric", "per_language": {lang: XTREME task score}, "average",
    "metrics": {lang: every metric}}``.
    """
    metrics, per_language, metric_name = {}, {}, None
    for language, test in test_sets.items():
        family = test.family
        logits = predict_logits(result.eval_step, result.params, test.inputs(),
                                batch_size=result.eval_batch_size, pad_id=pad_id,
                                max_length=cfg.max_length, buckets=cfg.buckets, feed=result.feed)
        predictions = test.predict(logits, cfg)
        if is_primary_host():
            out_dir = pathlib.Path(workdir) / "predictions" / test.task.name
            out_dir.mkdir(parents=True, exist_ok=True)
            family.write(out_dir / f"test-{language}.{family.suffix}", predictions)
        metrics[language] = test.score(predictions)
        per_language[language] = family.task_score(metrics[language])
        metric_name = "(exact_match + f1) / 2" if "exact_match" in metrics[language] else family.metric
    return {"metric": metric_name, **summarize(per_language), "metrics": metrics}


def run_cell(config, workdir: str | os.PathLike, *, progress: bool = True) -> dict:
    """Run (or resume) one (model, intermediate, target, seed) cell from a config; returns results."""
    from xstilts_jax.config import ConfigError
    from xstilts_jax.models.pretrained import load_encoder
    from xstilts_jax.tasks import get_task
    from xstilts_jax.tokenization import load_tokenizer
    from xstilts_jax.sharding import make_mesh, rules_table

    if config.distributed:
        jax.distributed.initialize()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_resume(workdir, json.loads(json.dumps(config.to_dict(), default=str)))

    target_task = get_task(config.target.task)
    if target_task.test_split is None or target_task.train is None:
        raise ConfigError(f"target.task: {target_task.name} is not a zero-shot target task "
                          f"(it has no {'test split' if target_task.train else 'training data'})")
    languages = tuple(config.eval.languages) or target_task.languages
    unknown = [lang for lang in languages if lang not in target_task.languages]
    if unknown:
        raise ConfigError(f"eval.languages: {unknown} are not languages of {target_task.name} "
                          f"({', '.join(target_task.languages)})")
    mesh = make_mesh(dict(config.mesh.shape))
    try:
        rules = rules_table(config.mesh.rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    encoder, report = load_encoder(config.model.name, dtype=config.model.dtype,
                                   hidden_dropout=config.model.hidden_dropout,
                                   attention_dropout=config.model.attention_dropout)
    tokenizer = load_tokenizer(report.path)
    pad_id = tokenizer.pad_token_id

    def read_split(task, split, language=None):
        return task.read(config.data.dir, split, language or task.train_language,
                         source=config.data.source, tfds_dir=config.data.tfds_dir or None)

    def training_set(task, section, cfg, read=None) -> Featurized:
        """English training data, or (``train_languages``, the paper's alternative (ii))
        the union of the English data and its machine translations into those languages."""
        languages = tuple(section.train_languages)
        if not languages:
            return featurized(task, "train", cfg, read=read)
        from xstilts_jax.tasks.layout import translate_train_languages

        available = translate_train_languages(task.train[0])
        wrong = [lang for lang in languages
                 if lang != task.train_language and lang not in available]
        if wrong or len(set(languages)) != len(languages):
            raise ConfigError(f"train_languages {list(languages)}: {task.name} has translated "
                              f"training data in {', '.join(available) or 'no language'} "
                              f"(and {task.train_language!r} is its own)")
        examples = []
        for lang in languages:
            split = "train" if lang == task.train_language else "translate_train"
            part = read if split == "train" and read is not None else read_split(task, split, lang)
            examples.extend(part.examples)
            record(task, split, lang, part, None)
        features = FAMILIES[task.family].featurize(tokenizer, examples, task.labels, cfg)
        results["data"][f"{task.name}/train/{'+'.join(languages)}"] = {
            "examples": len(examples), "rows": len(features.input_ids)}
        return Featurized(task, "+".join(languages), examples, features)

    def record(task, split, language, read, features) -> None:
        # Reported, never silently dropped: what the reader skipped, what featurization cut.
        entry = {"path": str(read.path), "examples": len(read.examples),
                 "skipped": dict(read.skipped)}
        if features is not None:
            entry["rows"] = len(features.input_ids)
        results["data"][f"{task.name}/{split}/{language}"] = entry

    def featurized(task, split, cfg, language=None, read=None) -> Featurized:
        language = language or task.train_language
        read = read or read_split(task, split, language)
        examples = read.examples
        features = FAMILIES[task.family].featurize(tokenizer, examples, task.labels, cfg)
        record(task, split, language, read, features)
        return Featurized(task, language, examples, features)

    results: dict = {"model": str(config.model.name), "seed": config.seed, "phases": {},
                     "data": {}}
    phases = [("intermediate", config.intermediate)] if config.intermediate.task else []
    phases.append(("target", config.target))
    for name, section in phases:
        try:
            names = phase_tasks(section.task)
            tasks = [get_task(t) for t in names if t != MLM_TASK]
        except ValueError as e:
            raise ConfigError(f"{name}.task: {e}") from None
        with_mlm = MLM_TASK in names
        if with_mlm and name == "target":
            raise ConfigError(f"target.task: {MLM_TASK} belongs in the intermediate phase")
        for task in tasks:
            if task.family not in FAMILIES or task.train is None:
                raise ConfigError(f"{name}.task: {task.name} cannot be trained (a "
                                  f"{task.family} task)")
        if name == "target" and len(tasks) > 1:
            raise ConfigError(f"target.task: one target task, not a mixture ({section.task})")
        # Label sets made from training data (CCG supertags): saved with the phase, for
        # load_phase_model to rebuild its heads.
        train_reads, derived = {}, {}
        for i, task in enumerate(tasks):
            if FAMILIES[task.family].labels_from_data and not task.labels:
                train_reads[task.name] = read_split(task, "train")
                labels = FAMILIES[task.family].labels_from(train_reads[task.name].examples)
                tasks[i] = derived[task.name] = dataclasses.replace(task, labels=labels)
        if derived:
            write_json_atomic(workdir / name / LABELS_FILE,
                              {t: list(task.labels) for t, task in derived.items()})
        num_outputs = (FAMILIES[tasks[0].family].num_outputs(tasks[0].labels) if tasks else 0)
        cfg = phase_config(name, section, num_labels=num_outputs, seed=config.seed,
                           debug=config.debug)
        data = {t.name: (training_set(t, section, cfg, read=train_reads.get(t.name)),
                         featurized(t, "dev", cfg)) for t in tasks}
        summary = {"task": section.task}
        if len(tasks) == 1 and not with_mlm:
            train, dev = data[tasks[0].name]
            result = train_phase(cfg, encoder, train=train, dev=dev, pad_id=pad_id,
                                 workdir=workdir, mesh=mesh, rules=rules, progress=progress)
            summary["dev_metric"] = FAMILIES[tasks[0].family].metric
        else:
            # jiant counts a task's cached training rows: QA windows, examples otherwise.
            sizes = {t: train.inputs().num_examples for t, (train, _) in data.items()}
            extra = {}
            if with_mlm:
                mlm_data, mlm_head, summary["mlm"] = multilingual_mlm(
                    config.mlm, config.data.dir, tokenizer, encoder, report.path, cfg)
                extra[MLM_TASK] = (mlm_data, mlm_head)
                sizes[MLM_TASK] = mlm_data.num_train_examples()
            try:
                probabilities = task_probabilities(
                    sizes, sampling=section.sampling, temperature=section.temperature,
                    examples_cap=section.examples_cap or None)
            except ValueError as e:
                raise ConfigError(f"{name}: {e}") from None
            result = train_mixture_phase(cfg, encoder, tasks=data, probabilities=probabilities,
                                         pad_id=pad_id, workdir=workdir, mesh=mesh, rules=rules,
                                         progress=progress, extra=extra)
            summary.update(dev_metric="average", train_rows=sizes, probabilities=probabilities)
        results["phases"][name] = summary | {
            "best_dev": result.best_dev, "best_step": result.best_step,
            "steps": result.steps_done, "stopped_early": result.stopped_early}
        encoder = encoder_of(result)
    test_sets = {lang: featurized(target_task, "test", cfg, lang) for lang in languages}
    results["zero_shot"] = {target_task.name: evaluate_zero_shot(
        result, test_sets, cfg=cfg, pad_id=pad_id, mesh=mesh, workdir=workdir)}
    if config.debug.params_checksum:
        results["target_params_sha256"] = params_sha256(result.params)
    write_json_atomic(workdir / "results.json", results)
    return results


def is_phase_dir(path: str | os.PathLike) -> bool:
    """A phase of a run directory (``<workdir>/<phase>``, holding ``ckpt/best``)."""
    path = pathlib.Path(path)
    return (path / "ckpt" / "best").is_dir() and (path.parent / "config.json").is_file()


def load_phase_model(phase_dir: str | os.PathLike, *, dtype: str | None = None):
    """(TaskModel with the phase's best parameters, the tokenizer's directory) of a run's
    phase, e.g. ``runs/mnli-xnli/intermediate``: its encoder is the intermediate-trained one
    the paper's retrieval results use. The run's ``config.json`` says which model and head
    it trained."""
    from xstilts_jax.config import ConfigError
    from xstilts_jax.models.pretrained import load_encoder
    from xstilts_jax.tasks import get_task
    from xstilts_jax.train.checkpoints import PhaseCheckpoints
    from xstilts_jax.train.optimizer import make_optimizer
    from xstilts_jax.train.steps import TrainState

    phase_dir = pathlib.Path(phase_dir)
    if not is_phase_dir(phase_dir):
        raise ConfigError(f"{phase_dir}: not a phase of a run directory (expected "
                          f"{phase_dir / 'ckpt' / 'best'} and {phase_dir.parent / 'config.json'})")
    config = json.loads((phase_dir.parent / "config.json").read_text())
    section = config.get(phase_dir.name)
    if not isinstance(section, dict) or not section.get("task"):
        raise ConfigError(f"{phase_dir.parent / 'config.json'}: no trained phase "
                          f"{phase_dir.name!r} (its phases: intermediate, target)")
    names = phase_tasks(section["task"])
    tasks = [get_task(t) for t in names if t != MLM_TASK]
    labels_path = phase_dir / LABELS_FILE
    derived = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    for i, task in enumerate(tasks):
        if FAMILIES[task.family].labels_from_data and not task.labels:
            if task.name not in derived:
                raise ConfigError(f"{labels_path}: no label set of task {task.name!r} (its "
                                  f"labels come from its training data)")
            tasks[i] = dataclasses.replace(task, labels=tuple(derived[task.name]))
    model_config = config["model"]
    encoder, report = load_encoder(model_config["name"], dtype=dtype or model_config["dtype"])
    heads = {t.name: _new_head(t, encoder, 0) for t in tasks}
    if MLM_TASK in names:
        from xstilts_jax.models.heads import MaskedLMHead

        heads[MLM_TASK] = MaskedLMHead(encoder.config, rngs=nnx.Rngs(params=0))
    model = (TaskModel(encoder, heads[tasks[0].name]) if len(names) == 1 and tasks else
             MultiTaskModel(encoder, heads))
    graphdef, params_state = nnx.split(model)
    params = nnx.to_pure_dict(params_state)
    # The optimizer state's structure (not its values) must match what was saved.
    tx = make_optimizer(learning_rate=1.0, total_steps=1,
                        max_grad_norm=section.get("max_grad_norm"),
                        grad_accumulation=section.get("grad_accumulation", 1))
    abstract = jax.eval_shape(lambda p: TrainState(np.int32(0), p, tx.init(p)), params)
    checkpoints = PhaseCheckpoints(phase_dir / "ckpt")
    try:
        restored = checkpoints.restore_best(abstract)
    finally:
        checkpoints.close()
    if restored is None:
        raise ConfigError(f"{phase_dir / 'ckpt' / 'best'}: no checkpoint saved yet")
    state, _ = restored
    return nnx.merge(graphdef, state.params), report.path
