"""The background producer of batches: same items in the same order, bounded, errors raised in
the consumer with their own type and message, nothing left running after close."""

from __future__ import annotations

import threading

import pytest

from xstilts_jax.data.prefetch import Prefetch


def test_items_come_in_order_and_all_of_them():
    with Prefetch((i * i for i in range(50)), depth=3) as ahead:
        assert list(ahead) == [i * i for i in range(50)]
    assert list(Prefetch(iter(()))) == []


def test_the_producer_stays_at_most_depth_ahead():
    made = []
    can_go = threading.Event()

    def items():
        for i in range(100):
            made.append(i)
            yield i

    ahead = Prefetch(items(), depth=2)
    try:
        assert next(ahead) == 0
        # Wait until the producer is blocked on the full queue: 2 queued, 1 in its hand.
        for _ in range(200):
            if len(made) >= 4:
                break
            can_go.wait(0.01)
        assert len(made) == 4  # 0 taken, 1 and 2 queued, 3 made and waiting for room
        assert next(ahead) == 1
    finally:
        ahead.close()


def test_an_error_while_producing_is_raised_in_the_consumer():
    def items():
        yield 0
        yield 1
        raise ValueError("train.tsv:7: expected 3 columns, got 2")

    ahead = Prefetch(items(), depth=4)
    assert [next(ahead), next(ahead)] == [0, 1]
    with pytest.raises(ValueError, match=r"^train.tsv:7: expected 3 columns, got 2$"):
        next(ahead)
    assert not ahead._thread.is_alive()
    with pytest.raises(StopIteration):  # closed: nothing more
        next(ahead)


def test_close_stops_a_producer_blocked_on_a_full_queue():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    ahead = Prefetch(endless(), depth=1)
    assert next(ahead) == 0
    ahead.close()
    assert not ahead._thread.is_alive()
    with Prefetch(endless(), depth=2) as ahead:
        next(ahead)
    assert not ahead._thread.is_alive()  # leaving the block closes it


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        Prefetch(iter(()), depth=0)
