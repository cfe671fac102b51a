"""PhaseConfig.train_order: the length-grouped epoch sees every example once, pads less than a
plain shuffle on varied lengths, is a pure function of (seed, epoch) (exact resume), and the
default leaves the order and the phase keys as they were."""

import numpy as np
import pytest

from xstilts_jax.data.inputs import ModelInputs
from xstilts_jax.train.loop import PhaseConfig, SupervisedData, epoch_order


def _inputs(n=200, group=1, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.choice([6, 10, 14, 30, 60, 120], size=n * group, p=[.3, .25, .2, .12, .08, .05])
    rows = [[0, *rng.integers(5, 900, m - 2), 2] for m in lengths]
    # each row's example index, to follow the examples through the batches
    labels = np.repeat(np.arange(n, dtype=np.int32), group)
    return ModelInputs(rows, [[0] * len(r) for r in rows], {"labels": labels}, group=group)


def _data(inputs, order, seed=3, batch_size=8):
    cfg = PhaseConfig(name="p", batch_size=batch_size, num_steps=100, max_length=128,
                      buckets=(16, 32, 64, 128), seed=seed, train_order=order)
    return SupervisedData(inputs, inputs, cfg, 1, dev_metrics=lambda logits: {})


def _epoch(data, epoch=0):
    return [data.train_batch(epoch * data.per_epoch + i) for i in range(data.per_epoch)]


@pytest.mark.parametrize("group", [1, 2])
def test_length_grouped_epoch_sees_every_example_once_with_less_padding(group):
    inputs = _inputs(group=group)
    grouped, shuffled = _epoch(_data(inputs, "length_grouped")), _epoch(_data(inputs, "shuffled"))
    for batches in (grouped, shuffled):
        seen = np.concatenate([b["labels"][b["weight"] > 0] for b in batches])
        assert sorted(seen[::group]) == list(range(inputs.num_examples))

    def padded_tokens(batches):
        return sum(b["input_ids"].size - b["attention_mask"].sum() for b in batches)

    assert padded_tokens(grouped) < 0.6 * padded_tokens(shuffled)


def test_length_grouped_order_is_a_pure_function_of_seed_and_epoch():
    inputs = _inputs()
    a, b = _data(inputs, "length_grouped"), _data(inputs, "length_grouped")
    step = a.per_epoch + 5  # epoch 1, read cold by b
    np.testing.assert_array_equal(a.train_batch(step)["labels"], b.train_batch(step)["labels"])
    first = [x["labels"] for x in _epoch(a, 0)]
    second = [x["labels"] for x in _epoch(a, 1)]
    assert any(not np.array_equal(x, y) for x, y in zip(first, second))  # epochs differ
    other_seed = [x["labels"] for x in _epoch(_data(inputs, "length_grouped", seed=4))]
    assert any(not np.array_equal(x, y) for x, y in zip(first, other_seed))


def test_shuffled_is_the_order_it_always_was():
    inputs = _inputs()
    data = _data(inputs, "shuffled")
    expected = epoch_order(inputs.num_examples, 3, 1)[:8]
    np.testing.assert_array_equal(data.train_batch(data.per_epoch)["labels"], expected)


def test_an_examples_length_is_its_longest_row():
    inputs = ModelInputs([[0, 5, 2], [0, 5, 6, 7, 2], [0, 2], [0, 9, 2]], [[0] * 3, [0] * 5,
                                                                          [0] * 2, [0] * 3],
                         group=2)
    np.testing.assert_array_equal(inputs.example_lengths(), [5, 3])


def test_an_unknown_order_is_refused():
    with pytest.raises(ValueError, match="train_order must be one of"):
        _data(_inputs(n=16), "sorted")


def test_the_default_order_keeps_phase_keys():
    """A config that does not ask for another order keeps the phase keys it had before the
    field existed; asking for length_grouped makes another phase."""
    from xstilts_jax.experiments.cell import phase_identity
    from xstilts_jax.experiments.defaults import cell_config

    config = cell_config()
    section = config.intermediate
    identity = phase_identity(config, section, seed=0, previous=None)
    assert "train_order" not in identity["section"]
    section.train_order = "length_grouped"
    grouped = phase_identity(config, section, seed=0, previous=None)
    assert grouped["section"]["train_order"] == "length_grouped"
