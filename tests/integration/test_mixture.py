"""Multi-task intermediate training end to end: three families, then a target, resumed
bit-identically after kill -9."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, run_xstilts, write_nli_data
from release_fixtures import write_all

MIXTURE = "hellaswag+squad_v2+ccg"  # three families; CCG's labels come from its data


def _mixture_args(checkpoint, data, workdir, *extra):
    return ["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:{MIXTURE},xnli,tiny",
            "--workdir", str(workdir), f"--config.model.name={checkpoint}",
            f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
            "--config.intermediate.buckets=(96,)", "--config.target.buckets=(64,)",
            "--config.intermediate.num_steps=24", "--config.intermediate.eval_every=8",
            "--config.target.num_steps=10", "--config.target.eval_every=5", *extra]


@pytest.mark.slow
def test_three_task_mixture_then_xnli_resumes_bit_identical(tmp_path, tiny_checkpoints):
    """hellaswag + squad_v2 + ccg multi-task -> xnli -> zero-shot; kill -9 inside the mixture
    at update 13 and resume: results, metrics and parameters equal the uninterrupted run's."""
    data = write_all(tmp_path / "data")
    write_nli_data(data, languages=("en", "de"))
    checkpoint = tiny_checkpoints("xlmr")
    cache = tmp_path / "cache"
    clean = run_xstilts(_mixture_args(checkpoint, data, tmp_path / "clean"), cache)
    assert clean.returncode == 0, clean.stderr
    resumed = tmp_path / "resumed"
    killed = run_xstilts(_mixture_args(checkpoint, data, resumed, "--config.debug.kill_at_step=13"),
                      cache)
    assert killed.returncode == -9, killed.stderr
    final = run_xstilts(_mixture_args(checkpoint, data, resumed), cache)
    assert final.returncode == 0, final.stderr
    expected = json.loads((tmp_path / "clean" / "results.json").read_text())
    got = json.loads((resumed / "results.json").read_text())
    assert got == expected  # includes target_params_sha256
    assert (resumed / "metrics.jsonl").read_text() == \
        (tmp_path / "clean" / "metrics.jsonl").read_text()
    phase = expected["phases"]["intermediate"]
    assert phase["task"] == MIXTURE and phase["dev_metric"] == "average"
    names = set(MIXTURE.split("+"))
    assert set(phase["probabilities"]) == names
    assert sum(phase["probabilities"].values()) == pytest.approx(1.0)
    rows = phase["train_rows"]
    assert rows["hellaswag"] == 24 and rows["ccg"] == 40 and rows["squad_v2"] >= 30
    records = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("phase") == "intermediate" and "dev_average" in r]
    assert evals and all({"hellaswag/dev_accuracy", "squad_v2/dev_f1", "ccg/dev_accuracy"}
                         <= set(r) for r in evals)
    assert all(r["dev_average"] == pytest.approx(np.mean(
        [r["hellaswag/dev_accuracy"], r["squad_v2/dev_f1"], r["ccg/dev_accuracy"]])) for r in evals)
    assert len((resumed / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()) == 40
    # The mixture's phase loads back (its CCG labels from labels.json), heads for all three.
    from xstilts_jax.experiments import load_phase_model

    labels = json.loads((resumed / "intermediate" / "labels.json").read_text())
    assert labels["ccg"][-1] == "<unk>" and "N" in labels["ccg"]
    model, _ = load_phase_model(resumed / "intermediate")
    assert set(model.heads) == names
    assert model.heads["ccg"].num_labels == len(labels["ccg"])
