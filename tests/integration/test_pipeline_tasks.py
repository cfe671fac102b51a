"""End to end on tagging and QA targets: train on English, predict every language, write the
XTREME submission files, and check that the scores in results.json are what ``xstilts score``
computes from those files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from release_fixtures import write_qa, write_udpos
from conftest import REPO, mesh_losses
from xstilts_jax import metrics
from xstilts_jax.cli import main
from xstilts_jax.models.heads import SpanHead, TaggingHead
from xstilts_jax.models.encoder import EncoderConfig
from xstilts_jax.losses import span_loss, token_classification_loss

def _run(config_arg, checkpoint, data, workdir, *extra):
    return main(["run", "--config", f"{REPO / 'configs' / 'xtreme.py'}:{config_arg}",
                 "--workdir", str(workdir), f"--config.model.name={checkpoint}",
                 f"--config.data.dir={data}", "--config.eval.languages=('en','de')", "-q",
                 *extra])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["udpos", "xquad"])
def test_target_task_end_to_end(task, tmp_path, tiny_checkpoints, capsys):
    data = (write_udpos if task == "udpos" else write_qa)(tmp_path / "data")
    workdir = tmp_path / "run"
    extra = ("--config.target.num_steps=60", "--config.target.learning_rate=3e-3",
             "--config.target.eval_every=30")
    assert _run(f"none,{task},tiny", tiny_checkpoints("xlmr"), data, workdir, *extra) == 0
    printed = capsys.readouterr().out
    assert f"{task} zero-shot" in printed
    results = json.loads((workdir / "results.json").read_text())
    zero_shot = results["zero_shot"][task]
    # The pipeline's scores are the official scorer's on the files it wrote.
    scored = metrics.score_task(task, workdir / "predictions", data / "labels", ["en", "de"])
    for lang in ("en", "de"):
        assert zero_shot["metrics"][lang] == pytest.approx(scored["per_language"][lang], abs=1e-9)
    assert zero_shot["average"] == pytest.approx(scored["score"], abs=1e-9)
    phase = results["phases"]["target"]
    assert phase["dev_metric"] == "f1" and phase["steps"] == 60
    # A run's phase loads back with its best parameters (what `xstilts retrieve --model
    # WORKDIR/target` embeds with): bit-identical to the ones the run evaluated.
    from flax import nnx

    from xstilts_jax.experiments import load_phase_model
    from xstilts_jax.experiments.rundir import params_sha256

    model, _ = load_phase_model(workdir / "target")
    assert params_sha256(nnx.to_pure_dict(nnx.state(model))) == results["target_params_sha256"]
    from xstilts_jax.config import ConfigError

    with pytest.raises(ConfigError, match=r"not a trained phase \(expected .*ckpt/best and "
                                          r".*phase\.json\)"):
        load_phase_model(workdir)  # the cell, not a phase
    if task == "udpos":
        from test_retrieve import write_tatoeba

        tatoeba = write_tatoeba(tmp_path / "tatoeba")
        assert main(["retrieve", "tatoeba", "--model", str(workdir / "target"), "--data",
                     str(tatoeba), "--languages", "de", "--output", str(tmp_path / "p"), "-q"]) == 0
        assert f"{workdir / 'target'}, layer 1/2" in capsys.readouterr().out
        assert len((tmp_path / "p" / "tatoeba" / "test-de.tsv").read_text().split()) == 30
    if task == "udpos":  # word -> tag is learnable: far above the 1-in-17 chance
        assert zero_shot["per_language"]["en"] > 60.0, zero_shot
        assert metrics.read_tags(workdir / "predictions" / "udpos" / "test-de.tsv")
    else:
        answers = json.loads((workdir / "predictions" / "xquad" / "test-de.json").read_text())
        assert sorted(answers) == sorted(f"de-{i}" for i in range(15))


def test_untrainable_target_is_refused(tmp_path, tiny_checkpoints, capsys):
    assert _run("none,tatoeba,tiny", tiny_checkpoints("xlmr"), tmp_path, tmp_path / "r") == 2
    assert "tatoeba is not a zero-shot target task" in capsys.readouterr().err


def test_token_losses_ignore_padding_and_unlabelled_tokens():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    config = EncoderConfig(vocab_size=10, hidden_size=8, num_layers=1, num_heads=2,
                           intermediate_size=16, max_position_embeddings=40)
    hidden = jax.random.normal(jax.random.key(0), (2, 6, 8))
    tag_logits = TaggingHead(config, 5, rngs=nnx.Rngs(0))(hidden, None, rngs=None)
    span_logits = SpanHead(config, rngs=nnx.Rngs(0))(hidden, None, rngs=None)
    assert tag_logits.shape == (2, 6, 5) and span_logits.shape == (2, 6, 2)
    labels = jnp.array([[-1, 2, -1, 4, -1, -1], [-1, 1, -1, -1, -1, -1]])
    batch = {"token_labels": labels, "weight": jnp.array([1.0, 0.0])}
    total, count = token_classification_loss(tag_logits, batch)
    logp = jax.nn.log_softmax(tag_logits[0])
    assert float(count) == 2.0  # the second row is padding
    assert float(total) == pytest.approx(-float(logp[1, 2] + logp[3, 4]), rel=1e-6)
    # Span loss: a longer bucket with masked padding gives the same loss.
    mask = jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    batch = {"attention_mask": mask, "start_positions": jnp.array([1, 2]),
             "end_positions": jnp.array([2, 5]), "weight": jnp.array([1.0, 1.0])}
    short = {"attention_mask": mask[:1, :4], "start_positions": jnp.array([1]),
             "end_positions": jnp.array([2]), "weight": jnp.array([1.0])}
    total, count = span_loss(span_logits, batch)
    total_short, _ = span_loss(span_logits[:1, :4], short)
    row1 = jax.nn.log_softmax(span_logits[1], axis=0)
    assert float(count) == 2.0
    assert float(total) == pytest.approx(float(total_short) - float(row1[2, 0] + row1[5, 1]) / 2,
                                         rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["tagging", "qa"])
def test_token_heads_train_the_same_on_8_devices(family):
    """5 steps of the tagging / span train step, dropout on: 1 device vs fsdp=2 x data=4 and
    tensor=2 x data=4 give the same losses."""
    import jax
    from flax import nnx

    from xstilts_jax.models.encoder import Encoder
    from xstilts_jax.models.heads import TaskModel
    from xstilts_jax.models.presets import get_preset

    rng = np.random.default_rng(0)
    batches = []
    for _ in range(5):
        ids = rng.integers(5, 900, (16, 32)).astype(np.int32)
        mask = np.ones_like(ids)
        mask[8:, 20:] = 0
        ids[mask == 0] = 1
        batch = dict(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                     weight=np.r_[np.ones(13), np.zeros(3)].astype(np.float32))
        if family == "tagging":
            labels = np.where(rng.random(ids.shape) < 0.5, ids % 5, -1).astype(np.int32)
            batch["token_labels"] = np.where(mask > 0, labels, -1).astype(np.int32)
        else:
            batch["start_positions"] = rng.integers(0, 20, 16).astype(np.int32)
            batch["end_positions"] = np.minimum(batch["start_positions"] + 2, 19).astype(np.int32)
        batches.append(batch)

    def losses(mesh_shape, devices):
        config = get_preset("tiny")
        rngs = nnx.Rngs(0)
        head = TaggingHead(config, 5, rngs=rngs) if family == "tagging" else SpanHead(config, rngs=rngs)
        return mesh_losses(TaskModel(Encoder(config, rngs=rngs), head),
                           token_classification_loss if family == "tagging" else span_loss,
                           batches, mesh_shape, devices)

    one = losses({"data": 1}, jax.devices()[:1])
    assert one[-1] < one[0]
    for shape in ({"fsdp": 2, "data": 4}, {"tensor": 2, "data": 4}):
        np.testing.assert_allclose(losses(shape, jax.devices()[:8]), one, rtol=1e-5, err_msg=str(shape))
