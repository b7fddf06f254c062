"""Soak and leak tests: the process's resident memory stays flat over many encode calls and
many model create/drop cycles, and a dropped model gives its memory back.

CI runs shortened versions (2,000 encode calls, 40 create/drop cycles). The full-size runs
(10,000 calls, 200 cycles) print their figures:

    LATEBIRD_SOAK_FULL=1 python -m pytest -s tests/python/test_soak.py

Only memory bounds are asserted, never timings. Resident memory is read from
/proc/self/statm (Linux only; elsewhere the tests are skipped).
"""

from __future__ import annotations

import gc
import os
import random
import time
from pathlib import Path

import latebird
import pytest

FULL = os.environ.get("LATEBIRD_SOAK_FULL") == "1"
ENCODE_CALLS = 10_000 if FULL else 2_000
CYCLES = 200 if FULL else 40
MiB = 1 << 20

# Growth allowed above the resident size measured after the warm-up (the first fifth of the
# run). Encodes: the full run grew by at most 1.9 MiB over the 8,000 calls after its warm-up;
# keeping what each call returns (a leaked output) grows by about 22 KiB a call, 16 MiB
# within the first 760 measured calls of the CI run (checked by keeping the outputs in a list).
ENCODE_BOUND_MIB = 12
# Create/drop: at most 1.5 times one model's weights (130 MiB for minilm), whatever the cycle
# count. After a drop the allocator keeps up to one model's worth at times (the full run went
# 62 -> 112 -> 63 MiB); a model kept alive adds about 56 MiB a cycle, so a leak fails the
# bound within 3 cycles after the warm-up (checked by keeping the models in a list).
CYCLE_BOUND_MODELS = 1.5

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
STATM = Path("/proc/self/statm")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

pytestmark = pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")


def rss() -> int:
    """Resident set size of this process in bytes, after a full garbage collection."""
    gc.collect()
    return int(STATM.read_text().split()[1]) * PAGE


def texts(count: int, seed: int, longest: int = 12) -> list[str]:
    """`count` short texts of 1 to `longest` words from the example data, deterministic."""
    words = " ".join(p.read_text() for p in sorted(DATA.glob("*.txt"))).split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(1, longest))) for _ in range(count)]


def report(name: str, figures: dict[str, float]) -> None:
    shown = ", ".join(
        f"{k} {v / MiB:.1f} MiB" if isinstance(v, int) else f"{k} {v:.1f}"
        for k, v in figures.items()
    )
    print(f"\n[soak] {name}: {shown}")


class Tracker:
    """Resident size at the start, after the warm-up, at the end and its peak after warm-up;
    fails as soon as the growth since the warm-up exceeds `bound` (so that a leak stops the
    run before it exhausts the machine)."""

    def __init__(self, warmup: int, bound: int, what: str) -> None:
        self.start = rss()
        self.warmup = warmup
        self.bound = bound
        self.what = what
        self.warm: int | None = None
        self.peak = 0
        self.end = self.start

    def sample(self, i: int) -> None:
        now = rss()
        self.end = now
        if i + 1 == self.warmup:
            self.warm = now
        elif self.warm is not None:
            self.peak = max(self.peak, now)
            growth = now - self.warm
            assert growth <= self.bound, (
                f"{self.what}: resident memory grew by {growth / MiB:.1f} MiB after the "
                f"warm-up (at {i + 1}), more than the bound of {self.bound / MiB:.1f} MiB: "
                f"{self.warm / MiB:.1f} -> {now / MiB:.1f} MiB"
            )

    def figures(self) -> dict[str, float]:
        assert self.warm is not None
        return {
            "start": self.start,
            "after warm-up": self.warm,
            "peak after warm-up": self.peak,
            "end": self.end,
            "drift (end - warm-up)": self.end - self.warm,
            "bound": self.bound,
        }


def test_encode_calls_keep_memory_flat(minilm_dir):
    model = latebird.ColBERT(minilm_dir)
    # Mostly short texts, a few long ones (larger activations, another allocation size).
    pool = texts(480, seed=1) + texts(32, seed=5, longest=150)
    rng = random.Random(2)
    samples = 50
    every = ENCODE_CALLS // samples
    tracker = Tracker(warmup=samples // 5, bound=ENCODE_BOUND_MIB * MiB, what="encode calls")
    rows = 0
    started = time.perf_counter()
    for call in range(ENCODE_CALLS):
        batch = rng.sample(pool, rng.randint(1, 3))
        if call % 2:
            out = model.encode(batch, is_query=True, batch_size=rng.randint(1, 3))
        else:
            out = model.encode(
                batch, is_query=False, batch_size=rng.randint(1, 3), pool_factor=rng.choice([1, 2])
            )
        rows += sum(o.shape[0] for o in out)
        del out
        if call % every == every - 1:
            tracker.sample(call // every)
    elapsed = time.perf_counter() - started
    figures = tracker.figures()
    report(
        f"{ENCODE_CALLS} encode calls ({rows} rows)",
        {**figures, "seconds": elapsed, "calls/s": ENCODE_CALLS / elapsed},
    )


def test_model_create_drop_cycles_free_the_model(minilm_dir):
    """The leak test: a dropped model's memory is given back. Were it kept (a reference cycle,
    a cache, a missing Drop), the growth would be one model per cycle, and the bound of 1.5
    models' weights would fail within a few cycles after the warm-up."""
    text = texts(1, seed=3)
    # The bound's unit: the model's weight files (87 MiB for minilm). The resident size one
    # load adds (about 50 MiB here) is shown for reference.
    footprint = sum(p.stat().st_size for p in Path(minilm_dir).rglob("*.safetensors"))
    before = rss()
    model = latebird.ColBERT(minilm_dir)
    model.encode(text, is_query=False)
    loaded = rss() - before
    del model
    warmup = max(CYCLES // 5, 2)
    tracker = Tracker(
        warmup=warmup, bound=int(CYCLE_BOUND_MODELS * footprint), what="model create/drop"
    )
    started = time.perf_counter()
    for cycle in range(CYCLES):
        model = latebird.ColBERT(minilm_dir)
        model.encode(text, is_query=False)
        del model
        tracker.sample(cycle)
    elapsed = time.perf_counter() - started
    report(
        f"{CYCLES} model create/drop cycles",
        {
            "weights": footprint,
            "resident size one load added": loaded,
            **tracker.figures(),
            "seconds": elapsed,
            "cycles/s": CYCLES / elapsed,
        },
    )
