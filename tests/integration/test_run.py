"""`xstilts run` end to end: exact resume after kill -9, a non-finite loss stops cleanly, clear
config errors; the installed entry point, ``python -m`` and the compilation cache's default."""

from __future__ import annotations

import pathlib

import pytest

from conftest import run_xstilts
from faults import NonFiniteLoss
from reference_runs import assert_same_run, cell_args
from xstilts_jax.cli import main
from xstilts_jax.train import hooks


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path, tiny_checkpoints, nli_data, tiny_cell):
    """kill -9 in the intermediate phase, again in the target phase: the same results,
    parameters, logs and predictions as the uninterrupted cell."""
    resumed = tmp_path / "resumed"
    args = cell_args(tiny_checkpoints("xlmr"), nli_data, resumed)
    first = run_xstilts(args, faults=["kill:intermediate:15"])
    assert first.returncode == -9, first.stderr  # SIGKILL: no cleanup ran
    second = run_xstilts(args, faults=["kill:target:13"])
    assert second.returncode == -9, second.stderr
    assert not (resumed / "results.json").exists()
    assert main(args) == 0
    assert_same_run(resumed, tiny_cell)  # includes target_params_sha256
    lines = (resumed / "predictions" / "xnli" / "test-de.tsv").read_text().splitlines()
    assert len(lines) == 40 and set(lines) <= {"contradiction", "entailment", "neutral"}
    assert (resumed / "tb" / "intermediate").is_dir() and (resumed / "config.json").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_checkpoints, nli_data, capsys):
    workdir = tmp_path / "run"
    with hooks.installed(NonFiniteLoss("intermediate", 12)):  # the 13th update's batch
        code = main(cell_args(tiny_checkpoints("xlmr"), nli_data, workdir))
    assert code == 2
    err = capsys.readouterr().err
    assert "phase intermediate: non-finite loss (nan) at step 13" in err
    assert "Last good checkpoint: step 10" in err
    assert sorted(p.name for p in (workdir / "intermediate" / "ckpt" / "latest").iterdir()) == ["10"]


def test_run_config_errors(tmp_path, tiny_checkpoints, nli_data, capsys):
    checkpoint = tiny_checkpoints("xlmr")
    assert main(cell_args(checkpoint, nli_data, tmp_path / "a", "--config.eval.languages=('en','xx')")) == 2
    assert "eval.languages: ['xx'] are not languages of xnli" in capsys.readouterr().err
    assert main(cell_args(checkpoint, nli_data, tmp_path / "b", "--config.target.learning_rat=1e-3")) == 2
    assert "--config.target.learning_rat: unknown config key; did you mean target.learning_rate" in \
        capsys.readouterr().err
    assert main(cell_args(checkpoint, nli_data, tmp_path / "c", "--config.seed=abc")) == 2
    assert "--config.seed=abc: not a valid int" in capsys.readouterr().err
    assert main(cell_args(checkpoint, nli_data, tmp_path / "d", "--config.target.task=xnly")) == 2
    assert "unknown task 'xnly'" in capsys.readouterr().err
    assert main(cell_args(checkpoint, nli_data, tmp_path / "e", "--config.model.remat=all")) == 2
    assert "model.remat 'all': expected one of none, full, dots_saveable" in capsys.readouterr().err
    assert main(cell_args(checkpoint, nli_data, tmp_path / "f",
                          "--config.mesh.rules=(('embed', 'model'),)")) == 2
    assert "'model' is not a mesh axis" in capsys.readouterr().err


def test_the_installed_entry_point(tmp_path, tiny_checkpoints, nli_data):
    """``xstilts``, the console script pip installs (the suite's one run of it; the other CLI
    tests call ``cli.main`` in-process): a config mistake ends in one line, exit status 2,
    and no run directory."""
    import shutil
    import subprocess
    import sys

    script = shutil.which("xstilts", path=pathlib.Path(sys.executable).parent)
    if script is None:
        pytest.skip("the xstilts entry point is not installed (pip install -e .)")
    workdir = tmp_path / "run"
    args = cell_args(tiny_checkpoints("xlmr"), nli_data, workdir, "--config.target.learning_rat=1")
    result = subprocess.run([script, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and not result.stdout
    assert result.stderr.splitlines()[-1].startswith(
        "xstilts run: error: --config.target.learning_rat: unknown config key; did you mean "
        "target.learning_rate")
    assert not workdir.exists()


def test_python_dash_m_runs_the_same_cli(tmp_path, tiny_checkpoints, nli_data, monkeypatch,
                                         capsys):
    """``python -m xstilts_jax.cli`` is the same command (its ``__main__`` block run here
    in-process by runpy)."""
    import runpy
    import sys

    from xstilts_jax import cli

    args = cell_args(tiny_checkpoints("xlmr"), nli_data, tmp_path / "run", "--config.seed=abc")
    monkeypatch.setattr(sys, "argv", ["xstilts", *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(cli.__file__, run_name="__main__")
    assert exited.value.code == 2
    assert "--config.seed=abc: not a valid int" in capsys.readouterr().err


def test_the_compilation_cache_defaults_to_the_xstilts_cache(tmp_path, monkeypatch):
    """Without ``$JAX_COMPILATION_CACHE_DIR`` (the test run sets one), ``xstilts`` keeps its
    compiled programs in ``<xstilts cache>/jax``; with it, JAX's own setting stands."""
    import jax

    from xstilts_jax.cli import enable_compilation_cache

    saved = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path / "cache"))
    try:
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
        enable_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache" / "jax")
        jax.config.update("jax_compilation_cache_dir", saved)
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", saved)
        enable_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == saved
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    finally:
        jax.config.update("jax_compilation_cache_dir", saved)
