"""Progress output that suits where it goes: a tqdm bar on a terminal, a few plain lines in a
log file (a redirected run must not fill its log with carriage-return updates)."""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    """Whether progress goes to a terminal (tqdm writes to stderr)."""
    return sys.stderr.isatty()


class Progress:
    """Counts ``done`` out of ``total`` updates (``initial`` already done when resuming).

    On a terminal a tqdm bar; otherwise one line every tenth of the work (and at the end) with
    the rate and the latest value and note, at most about a dozen lines however long the run.
    ``enabled=False`` prints nothing."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", *, unit: str = "step",
                 enabled: bool = True, lines: int = 10):
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled = enabled and total > 0
        self._bar = None
        self._note = ""
        self._start, self._first = time.perf_counter(), initial
        self._every = max(1, -(-total // lines))
        self._next = (initial // self._every + 1) * self._every
        if self.enabled and interactive():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit)
        elif self.enabled and initial:
            self._print(f"resuming at {initial}/{total}")

    def _print(self, text: str) -> None:
        print(f"{self.desc}: {text}", file=sys.stderr, flush=True)

    def update(self, done: int, value: float | None = None) -> None:
        """``done`` units finished so far; ``value`` the latest loss, shown with them."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if value is not None:
                self._bar.set_postfix(loss=f"{value:.4f}")
            return
        if done >= self._next or done == self.total:
            seconds = time.perf_counter() - self._start
            rate = (done - self._first) / seconds if seconds > 0 else float("nan")
            text = f"{done}/{self.total} {self.unit}s ({rate:.2f}/s)"
            if value is not None:
                text += f" loss {value:.4f}"
            if self._note:
                text += f"; {self._note}"
            self._print(text)
            self._next = (done // self._every + 1) * self._every

    def note(self, text: str) -> None:
        """A short status (the latest dev score), shown with the next line or in the bar."""
        self._note = text
        if self._bar is not None:
            self._bar.set_description(f"{self.desc} ({text})")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["Progress", "interactive"]
