"""The streaming writers on their own (no model): what numpy and zipfile read back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from latebird._outputs import NpySink, NpzSink, StoredZip


def test_stored_zip_with_zip64_entry_count(tmp_path: Path) -> None:
    """More than 65,535 entries need the ZIP64 end records; zipfile and numpy read them."""
    path = tmp_path / "many.zip"
    archive = StoredZip(str(path))
    n = 70_000
    for i in range(n):
        archive.write(f"e{i}.bin", i.to_bytes(4, "little"))
    archive.write_stream("big.bin", lambda: iter([b"a" * 1000, b"b" * 3000]))
    archive.close()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None  # every CRC checks
        names = z.namelist()
        assert len(names) == n + 1
        assert z.read("e69999.bin") == (69999).to_bytes(4, "little")
        assert z.read("big.bin") == b"a" * 1000 + b"b" * 3000
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist()[:10])


def test_npz_sink_is_what_numpy_savez_gives(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    embeddings = [rng.standard_normal((int(rng.integers(1, 9)), 4), dtype=np.float32)
                  for _ in range(300)]  # fmt: skip
    ids = [f"id-{i}" if i % 3 else i for i in range(300)]
    sink = NpzSink(str(tmp_path / "out.npz"))
    for start in range(0, 300, 128):
        sink.add(ids[start : start + 128], embeddings[start : start + 128])
    sink.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
    np.savez(
        tmp_path / "want.npz",
        ids=np.array([str(i) for i in ids], dtype=np.str_),
        lengths=np.array([e.shape[0] for e in embeddings], dtype=np.int64),
        **{f"embedding_{i}": e for i, e in enumerate(embeddings)},
    )
    with np.load(tmp_path / "out.npz") as got, np.load(tmp_path / "want.npz") as want:
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])


def test_npy_sink_pads_in_a_second_pass(tmp_path: Path) -> None:
    embeddings = [np.full((n, 3), n, dtype=np.float32) for n in (2, 5, 1, 4)]
    sink = NpySink(str(tmp_path / "out.npy"), 3)
    sink.add(["a", "b"], embeddings[:2])
    sink.add(["c", "d"], embeddings[2:])
    sink.finish()
    got = np.load(tmp_path / "out.npy")
    assert got.shape == (4, 5, 3) and got.dtype == np.float32
    for row, e in zip(got, embeddings):
        np.testing.assert_array_equal(row[: e.shape[0]], e)
        assert not row[e.shape[0] :].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_aborted_sinks_leave_nothing(tmp_path: Path) -> None:
    for sink in (NpzSink(str(tmp_path / "a.npz")), NpySink(str(tmp_path / "a.npy"), 2)):
        sink.add(["x"], [np.ones((2, 2), np.float32)])
        sink.abort()
    assert list(tmp_path.iterdir()) == []
