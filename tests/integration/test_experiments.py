"""The experiment path: a task declared by one spec trains through ``run_cell``; per-phase
seeds and content-keyed phases; the config's sharding rules reach the program; the typed
results record; progress output that suits a log file."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import NLI_WORDS, write_nli_data
from xstilts_jax import sharding
from xstilts_jax.experiments import CellResult, run_cell
from xstilts_jax.experiments.defaults import cell_config
from xstilts_jax.tasks import registry
from xstilts_jax.tasks.spec import TaskSpec, at, split

TOY = TaskSpec(
    name="toy_paraphrase", family="classification", roles=("target",), labels=("no", "yes"),
    languages=("en", "de"), test_split="test", metric="accuracy",
    splits=(split("train", at("xtreme_tsv", "toy-release/{lang}/training.txt", origin="toy")),
            split("dev", at("xtreme_tsv", "toy-release/{lang}/validation.txt", origin="toy"),
                  languages=("en",)),
            split("test", at("xtreme_tsv", "toy-release/{lang}/evaluation.txt", origin="toy"))))


@pytest.fixture
def toy_task(monkeypatch):
    """TOY registered for one test (the registry is the process's)."""
    monkeypatch.setitem(registry._REGISTRY, TOY.name, TOY)
    return TOY


def write_toy(root: pathlib.Path) -> pathlib.Path:
    """A learnable pair task in its own layout: 'yes' iff the two sentences share a word."""
    rng = np.random.default_rng(3)
    words = np.array(NLI_WORDS)
    for lang, splits in (("en", (("training", 96), ("validation", 24), ("evaluation", 20))),
                         ("de", (("evaluation", 16),))):
        for name, n in splits:
            lines = []
            for i in range(n):
                a = rng.choice(words[:7], 3)
                b = rng.choice(words[:7] if i % 2 else words[7:], 3)
                lines.append(f"{' '.join(a)}\t{' '.join(b)}\t{'yes' if set(a) & set(b) else 'no'}")
            path = root / "toy-release" / lang / f"{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
    return root


def _tiny(config, checkpoint, data):
    config.model.name = str(checkpoint)
    config.data.dir = str(data)
    return config


@pytest.mark.slow
def test_a_new_pair_task_is_one_spec(tmp_path, tiny_checkpoints, toy_task):
    """A sentence-pair task with its own file layout: declaring its spec is all it takes to
    read, train, evaluate zero-shot and write XTREME-format predictions through run_cell."""
    data = write_toy(tmp_path / "data")
    config = _tiny(cell_config("none", "toy_paraphrase", tiny=True),
                   tiny_checkpoints("xlmr"), data)
    result = run_cell(config, tmp_path / "run", progress=False)
    zero_shot = result.zero_shot["toy_paraphrase"]
    assert list(zero_shot["per_language"]) == ["en", "de"] and zero_shot["metric"] == "accuracy"
    assert result.data["toy_paraphrase/train/en"].path == str(
        data / "toy-release/en/training.txt") and result.data["toy_paraphrase/train/en"].examples == 96
    for lang, n in (("en", 20), ("de", 16)):
        lines = (tmp_path / "run/predictions/toy_paraphrase" / f"test-{lang}.tsv").read_text()
        assert len(lines.splitlines()) == n and set(lines.split()) <= {"yes", "no"}
    assert result.phases["target"].dev_metric == "accuracy"


@pytest.mark.slow
def test_phase_seeds_are_recorded_and_vary_the_target_alone(tmp_path, tiny_checkpoints):
    """Target seeds vary on one intermediate phase: with a shared phases folder, two cells
    that differ in target.seed train their intermediate once (one key, one directory) and
    record each phase's seed."""
    data = write_nli_data(tmp_path / "data", languages=("en", "de"))
    phases = tmp_path / "phases"
    results = []
    for target_seed in (5, 6):
        config = _tiny(cell_config("mnli", "xnli", tiny=True), tiny_checkpoints("xlmr"), data)
        config.update_from_flattened_dict({"seed": 2, "target.seed": target_seed,
                                           "intermediate.num_steps": 4,
                                           "target.num_steps": 4, "eval.languages": ("de",)})
        results.append(run_cell(config, tmp_path / f"cell-{target_seed}", progress=False,
                                phases_dir=phases))
    first, second = results
    assert first.phases["intermediate"].seed == second.phases["intermediate"].seed == 2
    assert (first.phases["target"].seed, second.phases["target"].seed) == (5, 6)
    assert first.phases["intermediate"].key == second.phases["intermediate"].key
    assert first.phases["target"].key != second.phases["target"].key
    assert len(list(phases.iterdir())) == 3
    described = json.loads((phases / first.phases["target"].key / "phase.json").read_text())
    assert described["previous"] == first.phases["intermediate"].key
    assert described["section"]["seed"] == 5
    # The typed record round-trips through results.json.
    stored = CellResult.load(tmp_path / "cell-6" / "results.json")
    assert stored == second and stored.schema_version == 1
    with pytest.raises(ValueError, match="schema_version"):
        CellResult.from_json({**second.to_json(), "schema_version": 99})


def test_config_rules_reach_parameters_activations_and_batches():
    """``config.mesh.rules`` is what places the program: replicating ``embed`` instead of
    fsdp-sharding it changes the parameters' shardings; the default table shards them."""
    from xstilts_jax.losses import classification_loss
    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import ClassificationHead, TaskModel
    from xstilts_jax.models.presets import get_preset
    from xstilts_jax.train.program import build_program

    config = get_preset("tiny")
    model = nnx.eval_shape(lambda: TaskModel(Encoder(config, rngs=nnx.Rngs(0)),
                                             ClassificationHead(config, 3, rngs=nnx.Rngs(1))))
    mesh = sharding.make_mesh({"fsdp": 2, "data": 4})

    def spec(rules):
        program = build_program(model, classification_loss, mesh=mesh, rules=rules,
                                learning_rate=1e-3, total_updates=10)
        word = program.shardings.params["encoder"]["embeddings"]["word"]
        return word.spec, program.steps(None).batch_shardings(
            {"input_ids": np.zeros((8, 16), np.int32)})["input_ids"].spec

    assert spec(sharding.DEFAULT_RULES) == (jax.sharding.PartitionSpec(None, "fsdp"),
                                            jax.sharding.PartitionSpec(("data", "fsdp"), None))
    replicated = [(n, None if n == "embed" else a) for n, a in sharding.DEFAULT_RULES]
    replicated = [(n, "data" if n == "batch" else a) for n, a in replicated]
    assert spec(replicated) == (jax.sharding.PartitionSpec(None, None),
                                jax.sharding.PartitionSpec("data", None))
    # And a config value, as JSON gives it back, is the same table.
    as_json = json.loads(json.dumps(replicated))
    assert spec(as_json) == spec(replicated)


def test_progress_in_a_log_file_is_a_few_plain_lines(tmp_path):
    """Redirected to a file, a 1000-step phase writes about ten plain lines, no carriage
    returns; on a terminal it would be a tqdm bar."""
    script = ("from xstilts_jax.progress import Progress\n"
              "p = Progress(1000, 0, 'phase')\n"
              "for u in range(1, 1001):\n"
              "    p.update(u, 0.5)\n"
              "    p.note('dev accuracy 50.00') if u % 100 == 0 else None\n"
              "p.close()\n")
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", script], stdout=f, stderr=f, check=True)
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert 8 <= len(lines) <= 12 and lines[-1].startswith("phase: 1000/1000 steps")
    assert "loss 0.5000" in lines[-1] and "dev accuracy" in lines[-1]
