"""`xstilts run` preempted by SIGTERM: exit status 143 and a one-line message after saving the
phase's checkpoint at that update; running the same command again finishes with the results,
logs and parameters of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_xstilts, write_nli_data
from xstilts_jax.cli import PREEMPTED_EXIT

# The CLI, with PhaseConfig.sigterm_at_step set for one phase (argv: PHASE STEP CLI-ARGS...):
# the loop sends itself SIGTERM after that update, deterministically.
_SIGTERM_AT = """
import dataclasses, sys
from xstilts_jax import cli
from xstilts_jax.experiments import cell

phase, step, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
make = cell.phase_config

def phase_config(name, section, **kwargs):
    cfg = make(name, section, **kwargs)
    return dataclasses.replace(cfg, sigterm_at_step=step) if name == phase else cfg

cell.phase_config = phase_config
sys.exit(cli.main(args))
"""


@pytest.fixture(scope="module")
def nli_data(tmp_path_factory):
    return write_nli_data(tmp_path_factory.mktemp("nli"))


def _run_args(checkpoint, data, workdir):
    return ["run", "--config", str(REPO / "configs" / "xtreme.py") + ":mnli,xnli,tiny",
            "--workdir", str(workdir), f"--config.model.name={checkpoint}",
            f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
            "--config.intermediate.buckets=(64,)", "--config.target.buckets=(64,)"]


def _run_with_sigterm(phase, step, args, cache_dir):
    env = {**os.environ, "XLA_FLAGS": "", "XSTILTS_CACHE": str(cache_dir)}
    return subprocess.run([sys.executable, "-c", _SIGTERM_AT, phase, str(step), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_sigterm_exits_143_and_resumes_bit_identical(tmp_path, tiny_checkpoints, nli_data):
    """SIGTERM after update 13 of the intermediate phase (its checkpoints are due at 10 and
    20): exit 143, a checkpoint at 13, and a plain re-run equals the uninterrupted run."""
    checkpoint = tiny_checkpoints("xlmr")
    cache = tmp_path / "cache"  # the later runs reuse the first one's compiled programs
    clean = run_xstilts(_run_args(checkpoint, nli_data, tmp_path / "clean"), cache)
    assert clean.returncode == 0, clean.stderr

    resumed = tmp_path / "resumed"
    args = _run_args(checkpoint, nli_data, resumed)
    stopped = _run_with_sigterm("intermediate", 13, args, cache)
    assert stopped.returncode == PREEMPTED_EXIT == 143, stopped.stderr
    ckpt = resumed / "intermediate" / "ckpt"
    assert stopped.stderr.splitlines()[-1] == (
        f"xstilts run: phase intermediate: preempted at step 13; checkpoint saved in {ckpt}; "
        "re-run the same command to resume")
    assert sorted(p.name for p in (ckpt / "latest").iterdir()) == ["13"]
    assert not (resumed / "target").exists() and not (resumed / "results.json").exists()

    final = run_xstilts(args, cache)
    assert final.returncode == 0, final.stderr
    expected = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert json.loads((resumed / "results.json").read_text()) == expected  # params sha256 too
    assert (resumed / "metrics.jsonl").read_text() == \
        (tmp_path / "clean" / "metrics.jsonl").read_text()
    for lang in ("en", "de"):
        assert (resumed / "predictions" / "xnli" / f"test-{lang}.tsv").read_text() == \
            (tmp_path / "clean" / "predictions" / "xnli" / f"test-{lang}.tsv").read_text()
