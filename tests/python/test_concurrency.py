"""Concurrency: threads sharing one model get bitwise the outputs a single thread gets from a
fresh model, and an encode stopped in the middle (Ctrl-C, a progress callback that raises),
also while other threads encode with the same model, leaves that model as good as new.

Only equality is asserted, never timings. `LATEBIRD_SOAK_FULL=1` runs more rounds.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import latebird
import numpy as np
import pytest
from latebird import colbert as colbert_module

FULL = os.environ.get("LATEBIRD_SOAK_FULL") == "1"
THREADS = 8
ROUNDS = 20 if FULL else 3
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"

# One encode call: texts, is_query, batch_size, pool_factor.
Call = tuple[list[str], bool, int, int]


def texts(count: int, seed: int, longest: int = 12) -> list[str]:
    """`count` short texts of 1 to `longest` words from the example data, deterministic."""
    words = " ".join(p.read_text() for p in sorted(DATA.glob("*.txt"))).split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(1, longest))) for _ in range(count)]


def calls(seed: int) -> list[Call]:
    """A few calls of different shapes on texts of their own (queries, documents, pooled)."""
    own = texts(12, seed, longest=24)
    return [
        (own[0:4], True, 2, 1),
        (own[4:9], False, 3, 1),
        (own[9:12], False, 2, 2),
        (own[0:1], True, 1, 1),
        (own[2:8], False, 32, 1),
    ]


def run(model: latebird.ColBERT, call: Call) -> list[np.ndarray]:
    batch, is_query, batch_size, pool_factor = call
    return model.encode(batch, is_query=is_query, batch_size=batch_size, pool_factor=pool_factor)


def same(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(
        g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got, want)
    )


class Workers:
    """Threads encoding their own calls with one model, over and over until stopped (and at
    least one round each), recording every output that differs from the reference."""

    def __init__(self, model, work: list[list[Call]], want: list[list[list[np.ndarray]]]):
        self.model = model
        self.stop = threading.Event()
        self.mismatches: list[str] = []
        self.errors: list[BaseException] = []
        self.rounds = [0] * len(work)
        self.threads = [
            threading.Thread(target=self._loop, args=(i, work[i], want[i]))
            for i in range(len(work))
        ]

    def _loop(self, i: int, work: list[Call], want: list[list[np.ndarray]]) -> None:
        try:
            while self.rounds[i] == 0 or not self.stop.is_set():
                for j, call in enumerate(work):
                    if not same(run(self.model, call), want[j]):
                        self.mismatches.append(f"thread {i} round {self.rounds[i]} call {j}")
                self.rounds[i] += 1
        except BaseException as e:
            self.errors.append(e)

    def __enter__(self) -> Workers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def check(self) -> None:
        assert not self.errors, self.errors
        assert not self.mismatches, f"outputs differ from a fresh model's: {self.mismatches[:5]}"
        assert all(self.rounds)


def assert_as_good_as_new(model, reference, long_texts, work, want) -> None:
    """After a stopped encode the same model gives the outputs of a fresh one."""
    got = model.encode(long_texts, is_query=False)
    assert same(got, reference.encode(long_texts, is_query=False))
    for w, expected in zip(work, want):
        assert all(same(run(model, c), e) for c, e in zip(w, expected))


@pytest.fixture(scope="module")
def reference(minilm_dir) -> latebird.ColBERT:
    """A model used by one thread only: the outputs the shared models must give."""
    return latebird.ColBERT(minilm_dir)


def test_threads_sharing_a_model_match_one_thread_bitwise(minilm_dir, reference):
    work = [calls(100 + t) for t in range(THREADS)]
    want = [[run(reference, c) for c in w] for w in work]
    shared = latebird.ColBERT(minilm_dir)
    barrier = threading.Barrier(THREADS)
    mismatches: list[str] = []
    errors: list[BaseException] = []

    def thread(t: int) -> None:
        try:
            barrier.wait()
            for r in range(ROUNDS):
                for j, call in enumerate(work[t]):
                    if not same(run(shared, call), want[t][j]):
                        mismatches.append(f"thread {t} round {r} call {j}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not mismatches, f"outputs differ from one thread's: {mismatches[:5]}"


def test_ctrl_c_in_the_middle_while_other_threads_encode(minilm_dir, reference):
    model = latebird.ColBERT(minilm_dir)
    work = [calls(200 + t) for t in range(3)]
    want = [[run(reference, c) for c in w] for w in work]
    long_texts = texts(120, seed=9)
    reached = 0
    first = threading.Event()

    def progress(done: int) -> None:
        nonlocal reached
        reached = done
        first.set()

    def ctrl_c() -> None:
        first.wait()
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in a terminal sends

    sender = threading.Thread(target=ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Workers(model, work, want) as workers:
            sender.start()
            with pytest.raises(KeyboardInterrupt):
                # The engine's call with a progress callback (what ColBERT.encode drives its
                # progress bar with), one text per batch: 120 batches.
                model._model.encode(long_texts, False, 1, None, progress)
            sender.join()
        workers.check()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 1 <= reached < len(long_texts), "the interrupt did not stop the encode midway"
    assert_as_good_as_new(model, reference, long_texts, work, want)


class Boom(Exception):
    pass


def test_progress_callback_raising_in_the_middle_while_other_threads_encode(
    minilm_dir, reference, monkeypatch
):
    model = latebird.ColBERT(minilm_dir)
    work = [calls(300 + t) for t in range(3)]
    want = [[run(reference, c) for c in w] for w in work]
    long_texts = texts(40, seed=11)
    boom = Boom("stop here")
    reached = 0

    def progress(done: int) -> None:
        nonlocal reached
        reached = done
        if done == 5:
            raise boom

    with Workers(model, work, want) as workers:
        with pytest.raises(Boom) as raised:
            model._model.encode(long_texts, False, 1, None, progress)
        assert raised.value is boom
        assert reached == 5

        # The same through the public API: the progress bar's update raising.
        updates = 0

        def update(self, done: int) -> None:
            nonlocal updates
            updates += 1
            if updates == 4:
                raise boom

        monkeypatch.setattr(colbert_module.ProgressBar, "update", update)
        with pytest.raises(Boom):
            model.encode(long_texts, is_query=False, batch_size=2, show_progress_bar=True)
        assert updates == 4
    workers.check()
    assert_as_good_as_new(model, reference, long_texts, work, want)
