"""`xstilts run` preempted by SIGTERM: exit status 143 and a one-line message after saving the
phase's checkpoint at that update; running the same command again finishes with the results,
logs and parameters of an uninterrupted run."""

from __future__ import annotations

import pytest

from conftest import run_xstilts
from reference_runs import assert_same_run, cell_args
from xstilts_jax.cli import PREEMPTED_EXIT, main


@pytest.mark.slow
def test_sigterm_exits_143_and_resumes_bit_identical(tmp_path, tiny_checkpoints, nli_data,
                                                     tiny_cell):
    """SIGTERM after update 13 of the intermediate phase (its checkpoints are due at 10 and
    20): exit 143, a checkpoint at 13, and a plain re-run equals the uninterrupted run."""
    resumed = tmp_path / "resumed"
    args = cell_args(tiny_checkpoints("xlmr"), nli_data, resumed)
    stopped = run_xstilts(args, faults=["sigterm:intermediate:13"])
    assert stopped.returncode == PREEMPTED_EXIT == 143, stopped.stderr
    ckpt = resumed / "intermediate" / "ckpt"
    assert stopped.stderr.splitlines()[-1] == (
        f"xstilts run: phase intermediate: preempted at step 13; checkpoint saved in {ckpt}; "
        "re-run the same command to resume")
    assert sorted(p.name for p in (ckpt / "latest").iterdir()) == ["13"]
    assert not (resumed / "target").exists() and not (resumed / "results.json").exists()

    assert main(args) == 0
    assert_same_run(resumed, tiny_cell)  # params sha256 too
