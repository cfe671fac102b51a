"""`xstilts run` end to end: exact resume after kill -9, a non-finite loss stops cleanly, clear
config errors."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, run_xstilts, write_nli_data
from xstilts_jax.cli import main


@pytest.fixture(scope="module")
def nli_data(tmp_path_factory):
    return write_nli_data(tmp_path_factory.mktemp("nli"))


def _run_args(checkpoint, data, workdir, *extra):
    return ["run", "--config", str(REPO / "configs" / "xtreme.py") + ":mnli,xnli,tiny", "--workdir", str(workdir),
            f"--config.model.name={checkpoint}", f"--config.data.dir={data}",
            "--config.eval.languages=('en','de')", "-q",
            # One bucket: fewer XLA programs to compile per run keeps these tests fast.
            "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)", *extra]


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path, tiny_checkpoints, nli_data):
    """kill -9 in the intermediate phase, again in the target phase: same results and params."""
    checkpoint = tiny_checkpoints("xlmr")
    cache = tmp_path / "cache"  # the later runs reuse the first one's compiled programs
    clean = run_xstilts(_run_args(checkpoint, nli_data, tmp_path / "clean"), cache)
    assert clean.returncode == 0, clean.stderr
    resumed = tmp_path / "resumed"
    first = run_xstilts(_run_args(checkpoint, nli_data, resumed, "--config.debug.kill_at_step=15"), cache)
    assert first.returncode == -9, first.stderr  # SIGKILL: no cleanup ran
    second = run_xstilts(_run_args(checkpoint, nli_data, resumed, "--config.debug.phase=target",
                                "--config.debug.kill_at_step=13"), cache)
    assert second.returncode == -9, second.stderr
    assert not (resumed / "results.json").exists()
    final = run_xstilts(_run_args(checkpoint, nli_data, resumed), cache)
    assert final.returncode == 0, final.stderr
    expected = json.loads((tmp_path / "clean" / "results.json").read_text())
    got = json.loads((resumed / "results.json").read_text())
    assert got == expected  # includes target_params_sha256: parameters are bit-identical
    assert (resumed / "metrics.jsonl").read_text() == (tmp_path / "clean" / "metrics.jsonl").read_text()
    for lang in ("en", "de"):
        assert (resumed / "predictions" / "xnli" / f"test-{lang}.tsv").read_text() == \
            (tmp_path / "clean" / "predictions" / "xnli" / f"test-{lang}.tsv").read_text()
    lines = (resumed / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()
    assert len(lines) == 40 and set(lines) <= {"contradiction", "entailment", "neutral"}
    assert (resumed / "tb" / "intermediate").is_dir() and (resumed / "config.json").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_checkpoints, nli_data, capsys):
    workdir = tmp_path / "run"
    code = main(_run_args(tiny_checkpoints("xlmr"), nli_data, workdir, "--config.debug.inject_nan_at_step=12"))
    assert code == 2
    err = capsys.readouterr().err
    assert "phase intermediate: non-finite loss (nan) at step 13" in err
    assert "Last good checkpoint: step 10" in err
    assert sorted(p.name for p in (workdir / "intermediate" / "ckpt" / "latest").iterdir()) == ["10"]


def test_run_config_errors(tmp_path, tiny_checkpoints, nli_data, capsys):
    checkpoint = tiny_checkpoints("xlmr")
    assert main(_run_args(checkpoint, nli_data, tmp_path / "a", "--config.eval.languages=('en','xx')")) == 2
    assert "eval.languages: ['xx'] are not languages of xnli" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "b", "--config.target.learning_rat=1e-3")) == 2
    assert "--config.target.learning_rat: unknown config key; did you mean target.learning_rate" in \
        capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "c", "--config.seed=abc")) == 2
    assert "--config.seed=abc: not a valid int" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "d", "--config.target.task=xnly")) == 2
    assert "unknown task 'xnly'" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "e", "--config.model.remat=all")) == 2
    assert "model.remat 'all': expected one of none, full, dots_saveable" in capsys.readouterr().err
    assert main(_run_args(checkpoint, nli_data, tmp_path / "f",
                          "--config.mesh.rules=(('embed', 'model'),)")) == 2
    assert "'model' is not a mesh axis" in capsys.readouterr().err
