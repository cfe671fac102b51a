"""Preemption: a SIGTERM (or JAX's preemption sync point) during a phase saves the latest
checkpoint at the current update and raises Preempted; running the phase again resumes there
and ends with the parameters of an uninterrupted run. The SIGTERM handler lives only as long
as the phase."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading

import jax
import numpy as np
import pytest
from flax import nnx

from faults import SigtermAfter
from xstilts_jax import sharding
from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.experiments.rundir import params_sha256
from xstilts_jax.losses import classification_loss
from xstilts_jax.models.decoder import Decoder
from xstilts_jax.models.encoder import Encoder
from xstilts_jax.models.heads import ClassificationHead, TaskModel
from xstilts_jax.models.presets import get_preset
from xstilts_jax.train import loop as loop_module
from xstilts_jax.train.loop import (PhaseConfig, Preempted, PreemptionWatch, SupervisedData,
                                    TrainingError, run_phase)

STEPS = 6
# Checkpoints on the schedule at 3 and 6 only: a preemption at 4 must save on its own.
CFG = PhaseConfig(name="p", batch_size=4, num_steps=STEPS, eval_every=3, max_length=16,
                  buckets=(16,), learning_rate=1e-3, warmup_ratio=0.0)
# The same updates of 4 rows, each as 2 micro-batches of 2 accumulated in one step.
ACCUMULATED = PhaseConfig(**{**CFG.__dict__, "batch_size": 2, "grad_accumulation": 2})


def _phase(tmp_path, cfg=CFG, *, name="phase", family="encoder", hooks=()):
    """Run the tiny phase in tmp_path/name (dropout on: its keys must resume too), on the tiny
    encoder, the tiny BLOOM decoder, or the encoder with accumulated updates (``cfg`` is
    then made ``ACCUMULATED``'s shape)."""
    if family == "accumulated":
        cfg = PhaseConfig(**{**cfg.__dict__, "batch_size": ACCUMULATED.batch_size,
                             "grad_accumulation": ACCUMULATED.grad_accumulation})
    preset, backbone = {"encoder": ("tiny", Encoder), "accumulated": ("tiny", Encoder),
                        "decoder": ("bloom-tiny", Decoder)}[family]
    config = get_preset(preset, hidden_dropout=0.1, attention_dropout=0.1)
    rngs = nnx.Rngs(0)
    model = TaskModel(backbone(config, rngs=rngs), ClassificationHead(config, 3, rngs=rngs))
    rng = np.random.default_rng(0)
    rows = [[0, *rng.integers(5, 900, 6), 2] for _ in range(12)]
    labels = rng.integers(0, 3, 12).astype(np.int32)
    inputs = ModelInputs(rows, [[0] * len(r) for r in rows], {"labels": labels})
    data = SupervisedData(inputs, inputs, cfg, 1, dev_metrics=lambda logits: {
        "dev_accuracy": float((logits.argmax(-1) == labels).mean()),
        "dev_logit_sum": float(logits.sum())})
    return run_phase(cfg, model, data, losses=classification_loss, phase_dir=tmp_path / name,
                     mesh=sharding.make_mesh({"data": 1}, jax.devices()[:1]), progress=False,
                     tensorboard=False, hooks=hooks)


def _latest_steps(phase_dir):
    return sorted(int(p.name) for p in (phase_dir / "ckpt" / "latest").iterdir()
                  if p.name.isdigit())


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """family -> the uninterrupted phase: (params hash, best step, metrics.jsonl), each run
    once."""
    runs = {}

    def get(family):
        if family not in runs:
            tmp = tmp_path_factory.mktemp(f"clean-{family}")
            result = _phase(tmp, family=family)
            runs[family] = (params_sha256(result.params), result.best_step,
                            (tmp / "phase" / "metrics.jsonl").read_text())
        return runs[family]

    return get


@pytest.fixture
def clean(clean_runs):
    return clean_runs("encoder")


@pytest.mark.parametrize("family", ["encoder", "decoder", "accumulated"])
def test_sigterm_saves_and_resumes_bit_identical(tmp_path, clean_runs, family, caplog):
    """SIGTERM after update 4 (between the scheduled checkpoints 3 and 6): Preempted at step 4
    with a checkpoint at 4; the same call again resumes there and matches the clean run. A
    Python handler set before the phase is back after it, both times. On the encoder, on
    BLOOM's decoder (its own parameter tree and left padding restored as exactly), and with
    gradient accumulation (2 micro-batches an update, one step)."""
    clean = clean_runs(family)
    calls = []

    def previous(signum, frame):
        calls.append(signum)

    notice = [SigtermAfter("p", 4)]
    old = signal.signal(signal.SIGTERM, previous)
    try:
        with caplog.at_level(logging.WARNING, logger=loop_module.__name__):
            with pytest.raises(Preempted) as caught:
                _phase(tmp_path, family=family, hooks=notice)
        assert signal.getsignal(signal.SIGTERM) is previous
        assert calls == []  # replaced during the phase, not chained
        assert "is replaced during the phase" in caplog.text
        assert isinstance(caught.value, TrainingError)
        assert (caught.value.phase, caught.value.step) == ("p", 4)
        assert caught.value.checkpoint_dir == tmp_path / "phase" / "ckpt"
        assert str(caught.value) == (f"phase p: preempted at step 4; checkpoint saved in "
                                     f"{tmp_path / 'phase' / 'ckpt'}; re-run the same command "
                                     f"to resume")
        assert _latest_steps(tmp_path / "phase") == [4]
        logged = [json.loads(line)["step"]
                  for line in (tmp_path / "phase" / "metrics.jsonl").read_text().splitlines()]
        assert max(logged) <= 4

        # The same call again (the hook fired at 4, which a resume from 4 does not redo).
        result = _phase(tmp_path, family=family, hooks=notice)
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
    params_hash, best_step, metrics = clean
    assert params_sha256(result.params) == params_hash
    assert result.best_step == best_step and result.steps_done == STEPS
    assert (tmp_path / "phase" / "metrics.jsonl").read_text() == metrics
    assert _latest_steps(tmp_path / "phase") == [STEPS]


def test_sigterm_at_the_last_update_still_stops(tmp_path, clean):
    """A notice at the last update: the phase is complete and saved, and still raises (the
    process was asked to stop); running it again only restores it."""
    notice = [SigtermAfter("p", STEPS)]
    with pytest.raises(Preempted) as caught:
        _phase(tmp_path, hooks=notice)
    assert caught.value.step == STEPS and _latest_steps(tmp_path / "phase") == [STEPS]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert params_sha256(_phase(tmp_path, hooks=notice).params) == clean[0]


def test_preemption_sync_point_saves_without_a_handler(tmp_path, clean, monkeypatch):
    """With JAX's preemption service (faked), its sync point decides, every host at the same
    boundary: no Python SIGTERM handler is installed (it would replace JAX's notifier)."""
    from jax.experimental import multihost_utils

    seen = []

    def reached(step_id):  # orbax's CheckpointManager.save asks it too
        seen.append((step_id, signal.getsignal(signal.SIGTERM)))
        return step_id == 2  # the sync point the hosts agreed on

    monkeypatch.setattr(loop_module, "preemption_service_active", lambda: True)
    monkeypatch.setattr(multihost_utils, "reached_preemption_sync_point", reached)
    with pytest.raises(Preempted) as caught:
        _phase(tmp_path)
    assert caught.value.step == 2 and _latest_steps(tmp_path / "phase") == [2]
    assert [step_id for step_id, _ in seen][:3] == [0, 1, 2]  # asked at every boundary
    assert all(handler is signal.SIG_DFL for _, handler in seen)

    monkeypatch.setattr(loop_module, "preemption_service_active", lambda: False)
    assert params_sha256(_phase(tmp_path).params) == clean[0]


def test_watch_restores_the_previous_handler():
    def previous(signum, frame):
        pass

    old = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises(KeyError):  # put back on errors too
            with PreemptionWatch("p") as watch:
                assert watch.handling and signal.getsignal(signal.SIGTERM) is not previous
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)  # a second notice: just the flag again
                assert watch.requested(0)
                raise KeyError
        assert signal.getsignal(signal.SIGTERM) is previous and not watch.handling
        with PreemptionWatch("p") as watch:
            assert not watch.requested(0)  # a new phase starts without a notice
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)


def test_watch_off_the_main_thread_installs_nothing(caplog):
    seen = {}

    def body():
        with PreemptionWatch("p") as watch:
            seen.update(handling=watch.handling, requested=watch.requested(0))

    with caplog.at_level(logging.WARNING, logger=loop_module.__name__):
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    assert seen == {"handling": False, "requested": False}
    assert "not in the main thread" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_preempted_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(Preempted("target", 7, "/x/ckpt")))
    assert (error.phase, error.step, str(error.checkpoint_dir)) == ("target", 7, "/x/ckpt")
