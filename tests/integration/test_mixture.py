"""Multi-task intermediate training end to end: three families, then a target, resumed
bit-identically after kill -9."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_xstilts
from reference_runs import MIXTURE, assert_same_run, mixture_args
from xstilts_jax.cli import main


@pytest.mark.slow
def test_three_task_mixture_then_xnli_resumes_bit_identical(tmp_path, tiny_checkpoints,
                                                             mixture_data, mixture_cell):
    """hellaswag + squad_v2 + ccg multi-task -> xnli -> zero-shot; kill -9 inside the mixture
    at update 13 and resume: results, metrics and parameters equal the uninterrupted run's."""
    resumed = tmp_path / "resumed"
    args = mixture_args(tiny_checkpoints("xlmr"), mixture_data, resumed)
    killed = run_xstilts(args, faults=["kill:intermediate:13"])
    assert killed.returncode == -9, killed.stderr
    assert main(args) == 0
    expected = assert_same_run(resumed, mixture_cell)  # includes target_params_sha256
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
