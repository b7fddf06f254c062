"""A dependency-free progress bar on stderr, shown only in a terminal."""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class ProgressBar:
    """Draws `label [#####.....] done/total rate/s ETA` on one terminal line.

    `total=None` (a stream of unknown length) shows the count and rate only. `initial` is
    work already done before this run (a resumed job): it fills the bar but does not count
    towards the rate, so the rate and the ETA are this run's own.
    """

    def __init__(self, total: int | None, label: str, width: int = 30, initial: int = 0) -> None:
        self.total = total
        self.label = label
        self.width = width
        self.initial = initial
        self.start = time.perf_counter()
        self.stream = sys.stderr
        self.update(initial)

    @staticmethod
    def wanted(show: bool | None, total: int | None, batch_size: int) -> bool:
        """None means: in a terminal, and more than one batch of work (or an unknown amount)."""
        if show is not None:
            return bool(show)
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty()) and (total is None or total > batch_size)

    def update(self, done: int) -> None:
        elapsed = time.perf_counter() - self.start
        rate = (done - self.initial) / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            self.stream.write(f"\r{self.label} {done} {rate:.1f}/s")
        else:
            filled = self.width * min(done, self.total) // max(self.total, 1)
            bar = "#" * filled + "." * (self.width - filled)
            line = f"\r{self.label} [{bar}] {done}/{self.total} {rate:.1f}/s"
            if 0 < done < self.total and rate > 0:
                line += f" ETA {_duration((self.total - done) / rate)}"
            elif done >= self.total:
                line += f" in {_duration(elapsed)}   "
            self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
