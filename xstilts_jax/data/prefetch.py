"""A bounded background producer: the host builds and places the next batches while the device
runs the current one.

On an accelerator a small model's update takes milliseconds; a batch built (and put on the
mesh) on the loop's own thread is time the chip waits. ``Prefetch(items)`` iterates ``items``
(a generator that builds and places each batch) in a daemon thread and keeps at most
``depth`` of them ready. They come out the same, in the same order, as if the loop iterated
``items`` itself, so a stream that is a pure function of its step stays one (exact resume).
An exception raised while producing comes out of the consumer's ``next``, with its own type
and message; ``close`` (or leaving the ``with`` block) stops the producer before its next
item, so a preempted or failed phase leaves no thread working behind it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator


class Prefetch:
    """The items of ``items``, produced up to ``depth`` ahead in a daemon thread."""

    _DONE = object()

    def __init__(self, items: Iterable[Any], *, depth: int = 2, name: str = "prefetch"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name,
                                        daemon=True)
        self._thread.start()

    def _put(self, entry) -> bool:
        """Queue ``entry`` unless stopped meanwhile (checked while the queue is full)."""
        while not self._stopped.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[Any]) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((None, e))
            return
        self._put((self._DONE, None))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        """The next item; raises what producing it raised; StopIteration after the last."""
        if self._stopped.is_set():
            raise StopIteration
        item, error = self._queue.get()
        if error is not None:
            self.close()
            raise error
        if item is self._DONE:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer (it finishes the item it is making, then ends) and drop what it
        made ahead."""
        self._stopped.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Prefetch"]
