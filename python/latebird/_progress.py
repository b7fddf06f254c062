"""A dependency-free progress bar on stderr, shown only in a terminal."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Draws `label [#####.....] done/total rate` on one terminal line."""

    def __init__(self, total: int, label: str, width: int = 30) -> None:
        self.total = total
        self.label = label
        self.width = width
        self.start = time.perf_counter()
        self.stream = sys.stderr
        self.update(0)

    @staticmethod
    def wanted(show: bool | None, total: int, batch_size: int) -> bool:
        """None means: in a terminal, and more than one batch of work."""
        if show is not None:
            return bool(show)
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty()) and total > batch_size

    def update(self, done: int) -> None:
        filled = self.width * done // max(self.total, 1)
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {rate:.1f}/s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
