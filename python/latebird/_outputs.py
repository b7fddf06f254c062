"""Streaming writers of the CLI's outputs: npz, npy, JSONL and sharded Parquet.

Every writer takes the embeddings chunk by chunk (`add`) and holds none of them after the
call returns, so memory stays bounded whatever the number of texts:

- npz: each `embedding_{i}` entry is written into the zip as it comes; the ids, lengths and
  the zip's central directory, whose sizes grow with the input, are spooled to temporary
  files and copied in at the end (`StoredZip`).
- npy: the padded `[n, max_tokens, dim]` shape is known only at the end, so the rows are
  spooled to a temporary file beside the output and copied, padded, in a second pass over
  that file (no re-encoding; the disk briefly holds the unpadded rows as well).
- jsonl: one line per text, written as it comes.
- Parquet: a folder of `part-NNNNN.parquet` shards of `shard_size` texts, each written
  under a temporary name and renamed when complete, with a manifest that makes a killed run
  resumable (`ParquetFolder`).

Single-file outputs are written under a temporary name in the output's folder and renamed
at the end, so a failed or interrupted run leaves no half-written file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np

from ._inputs import InputError, require_pyarrow

MANIFEST = "_latebird_manifest.json"
MANIFEST_VERSION = 1


def _temp_name(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


def _fsync_replace(temp: str, final: str) -> None:
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)


class Sink:
    """Receives `(ids, embeddings)` chunks in input order."""

    def add(self, ids: Sequence[Any], embeddings: Sequence[np.ndarray]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Completes the output (renames it into place)."""

    def abort(self) -> None:
        """Removes what an unfinished run wrote, except what a resume would keep."""


class JsonlSink(Sink):
    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.temp = None
            self.f: IO[str] = sys.stdout
        else:
            self.temp = _temp_name(path)
            self.f = open(self.temp, "w", encoding="utf-8")

    def add(self, ids: Sequence[Any], embeddings: Sequence[np.ndarray]) -> None:
        for i, e in zip(ids, embeddings):
            self.f.write(json.dumps({"id": i, "embedding": e.tolist()}, default=str) + "\n")

    def finish(self) -> None:
        if self.temp is None:
            self.f.flush()
            return
        self.f.close()
        _fsync_replace(self.temp, self.path)

    def abort(self) -> None:
        if self.temp is None:
            return
        self.f.close()
        if os.path.exists(self.temp):
            os.remove(self.temp)


class _Spool:
    """Ids and lengths of every text so far, on disk: their size grows with the input."""

    def __init__(self, folder: str) -> None:
        self.ids = tempfile.TemporaryFile(dir=folder)
        self.lengths = tempfile.TemporaryFile(dir=folder)
        self.count = 0
        self.longest_id = 1
        self.longest_text = 0

    def add(self, ids: Sequence[Any], lengths: Sequence[int]) -> None:
        for i in ids:
            text = str(i)
            self.longest_id = max(self.longest_id, len(text))
            self.ids.write(json.dumps(text).encode("ascii") + b"\n")
        self.lengths.write(np.asarray(lengths, dtype="<i8").tobytes())
        self.count += len(lengths)
        self.longest_text = max([self.longest_text, *lengths])

    def ids_npy(self) -> Iterator[bytes]:
        """The `ids` array as .npy bytes, block by block, read from the spool."""
        dtype = np.dtype(f"<U{self.longest_id}")
        yield _npy_header({"descr": dtype.str, "fortran_order": False, "shape": (self.count,)})
        self.ids.seek(0)
        chunk: list[str] = []
        for line in self.ids:
            chunk.append(json.loads(line))
            if len(chunk) == 65536:
                yield np.array(chunk, dtype=dtype).tobytes()
                chunk = []
        if chunk:
            yield np.array(chunk, dtype=dtype).tobytes()

    def iter_lengths(self) -> Iterator[int]:
        self.lengths.seek(0)
        while True:
            block = self.lengths.read(8 * 65536)
            if not block:
                return
            yield from np.frombuffer(block, dtype="<i8").tolist()

    def lengths_npy(self) -> Iterator[bytes]:
        """The `lengths` array as .npy bytes, block by block, read from the spool."""
        yield _npy_header({"descr": "<i8", "fortran_order": False, "shape": (self.count,)})
        self.lengths.seek(0)
        yield from iter(lambda: self.lengths.read(1 << 20), b"")

    def close(self) -> None:
        self.ids.close()
        self.lengths.close()


def _npy_header(header: dict) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


class StoredZip:
    """A ZIP archive of uncompressed entries (what `numpy.savez` writes), written entry by
    entry with its central directory spooled to a temporary file: `zipfile.ZipFile` keeps
    one `ZipInfo` (about 400 bytes) per entry in memory until it closes, which grows with
    the number of texts. ZIP64 records are written where sizes, offsets or the entry count
    need them."""

    DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest date ZIP can hold
    LIMIT32 = 0xFFFFFFFF

    def __init__(self, path: str) -> None:
        self.f = open(path, "wb")
        self.directory = tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path)))
        self.count = 0

    def write(self, name: str, data: bytes) -> None:
        """An entry held in memory."""
        self._entry(name, zlib.crc32(data), len(data), [data])

    def write_stream(self, name: str, blocks: Callable[[], Iterator[bytes]]) -> None:
        """An entry too large to hold: `blocks()` is read twice (checksum, then data)."""
        crc, size = 0, 0
        for block in blocks():
            crc = zlib.crc32(block, crc)
            size += len(block)
        self._entry(name, crc, size, blocks())

    def _entry(self, name: str, crc: int, size: int, blocks: Iterable[bytes]) -> None:
        raw = name.encode("ascii")
        offset = self.f.tell()
        big = size >= self.LIMIT32
        local_extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
        short = self.LIMIT32 if big else size
        self.f.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                45 if big else 20,
                0,
                0,
                0,
                self.DOS_DATE,
                crc,
                short,
                short,
                len(raw),
                len(local_extra),
            )
            + raw
            + local_extra
        )
        for block in blocks:
            self.f.write(block)
        fields = [size, size] if big else []
        if offset >= self.LIMIT32:
            fields.append(offset)
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        self.directory.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                (3 << 8) | 45,
                45 if extra else 20,
                0,
                0,
                0,
                self.DOS_DATE,
                crc,
                short,
                short,
                len(raw),
                len(extra),
                0,
                0,
                0,
                0o600 << 16,
                min(offset, self.LIMIT32),
            )
            + raw
            + extra
        )
        self.count += 1

    def close(self) -> None:
        start = self.f.tell()
        self.directory.seek(0)
        shutil.copyfileobj(self.directory, self.f, 1 << 20)
        self.directory.close()
        size = self.f.tell() - start
        if self.count >= 0xFFFF or start >= self.LIMIT32 or size >= self.LIMIT32:
            record = self.f.tell()
            self.f.write(
                struct.pack(
                    "<IQHHIIQQQQ",
                    0x06064B50,
                    44,
                    45,
                    45,
                    0,
                    0,
                    self.count,
                    self.count,
                    size,
                    start,
                )
            )
            self.f.write(struct.pack("<IIQI", 0x07064B50, 0, record, 1))
        entries = min(self.count, 0xFFFF)
        self.f.write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                entries,
                entries,
                min(size, self.LIMIT32),
                min(start, self.LIMIT32),
                0,
            )
        )
        self.f.close()

    def discard(self) -> None:
        self.f.close()
        self.directory.close()


class NpzSink(Sink):
    """`ids`, `lengths` and `embedding_{i}` per text: what `numpy.load` reads as before."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.temp = _temp_name(path)
        self.spool = _Spool(os.path.dirname(self.temp))
        self.zip = StoredZip(self.temp)

    def add(self, ids: Sequence[Any], embeddings: Sequence[np.ndarray]) -> None:
        start = self.spool.count
        for offset, e in enumerate(embeddings):
            self.zip.write(f"embedding_{start + offset}.npy", _npy_bytes(e))
        self.spool.add(ids, [e.shape[0] for e in embeddings])

    def finish(self) -> None:
        self.zip.write_stream("ids.npy", self.spool.ids_npy)
        self.zip.write_stream("lengths.npy", self.spool.lengths_npy)
        self.zip.close()
        self.spool.close()
        _fsync_replace(self.temp, self.path)

    def abort(self) -> None:
        self.zip.discard()
        self.spool.close()
        if os.path.exists(self.temp):
            os.remove(self.temp)


class NpySink(Sink):
    """One zero-padded `[n, max_tokens, dim]` float32 array. Rows are spooled unpadded to a
    temporary file, then copied padded once the longest text is known."""

    def __init__(self, path: str, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.temp = _temp_name(path)
        self.spool = _Spool(os.path.dirname(self.temp))
        self.rows = tempfile.TemporaryFile(dir=os.path.dirname(self.temp))

    def add(self, ids: Sequence[Any], embeddings: Sequence[np.ndarray]) -> None:
        for e in embeddings:
            self.rows.write(np.ascontiguousarray(e, dtype="<f4").tobytes())
        self.spool.add(ids, [e.shape[0] for e in embeddings])

    def finish(self) -> None:
        longest = self.spool.longest_text
        row_bytes = 4 * self.dim
        self.rows.seek(0)
        with open(self.temp, "wb") as out:
            header = {
                "descr": "<f4",
                "fortran_order": False,
                "shape": (self.spool.count, longest, self.dim),
            }
            out.write(_npy_header(header))
            for length in self.spool.iter_lengths():
                out.write(self.rows.read(length * row_bytes))
                out.write(bytes((longest - length) * row_bytes))
        self.rows.close()
        self.spool.close()
        _fsync_replace(self.temp, self.path)

    def abort(self) -> None:
        self.rows.close()
        self.spool.close()
        if os.path.exists(self.temp):
            os.remove(self.temp)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def embeddings_to_arrow(embeddings: Sequence[np.ndarray], dim: int, fixed_size: bool = True) -> Any:
    """`list<fixed_size_list<float32, dim>>` (or, with `fixed_size=False`, `list<list<float32>>`,
    what Spark's `array<array<float>>` is in Arrow): one `[n_tokens, dim]` matrix per row,
    built from one contiguous copy of the values (no Python loop over tokens)."""
    pa = require_pyarrow("Parquet output")
    lengths = np.fromiter((e.shape[0] for e in embeddings), dtype=np.int64, count=len(embeddings))
    offsets = np.zeros(len(embeddings) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    if len(embeddings):
        flat = np.concatenate([np.asarray(e, dtype=np.float32) for e in embeddings]).ravel()
    else:
        flat = np.zeros(0, dtype=np.float32)
    values = pa.array(flat, type=pa.float32())
    if fixed_size:
        rows = pa.FixedSizeListArray.from_arrays(values, dim)
    else:
        starts = np.arange(0, int(offsets[-1]) * dim + 1, dim, dtype=np.int32)
        rows = pa.ListArray.from_arrays(pa.array(starts, type=pa.int32()), values)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), rows)


def parquet_schema(dim: int) -> Any:
    pa = require_pyarrow("Parquet output")
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.list_(pa.float32(), dim)), nullable=False),
        ],
        metadata={"latebird.dim": str(dim)},
    )


def arrow_to_embeddings(column: Any) -> list[np.ndarray]:
    """The inverse of `embeddings_to_arrow`, for one (chunked) Arrow column: one float32
    `[n_tokens, dim]` array per row, without copying the values."""
    out: list[np.ndarray] = []
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    for chunk in chunks:
        dim = chunk.type.value_type.list_size
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        out.extend(values[offsets[i] : offsets[i + 1]] for i in range(len(chunk)))
    return out


def _describe_difference(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _describe_difference(a, b, f"{prefix}{key}.")
        elif a != b:
            shown = [json.dumps(v)[:80] for v in (a, b)]
            changes.append(f"{prefix}{key}: {shown[0]} then, {shown[1]} now")
    return changes


class ParquetFolder(Sink):
    """A folder of shards `part-00000.parquet`, ... of `shard_size` texts each (the last one
    shorter), each with an `id` string column and an `embedding` column of
    `list<fixed_size_list<float32, dim>>` (one row group per encoded chunk), plus a manifest.

    Resume: the manifest records the input (path and SHA-256), the model (folder, settings,
    precision, dimension and a fingerprint of its files), the encoding settings and the
    shard size. A run that finds a manifest with the same record keeps the shards already
    there (each was renamed into place only once complete), deletes any temporary shard a
    killed run left, and starts at the first missing shard; a different record is an error.
    """

    def __init__(self, folder: str, identity: dict, dim: int, shard_size: int) -> None:
        self.pa = require_pyarrow("Parquet output")
        self.folder = folder
        self.identity = identity
        self.dim = dim
        self.shard_size = shard_size
        self.schema = parquet_schema(dim)
        self.writer: Any = None
        self.shard = 0
        self.in_shard = 0
        self.done = 0

    def _manifest_path(self) -> str:
        return os.path.join(self.folder, MANIFEST)

    def _write_manifest(self, complete: bool) -> None:
        record = {"latebird_manifest": MANIFEST_VERSION, **self.identity, "complete": complete}
        if complete:
            record["texts"] = self.done
            record["shards"] = self.shard
        temp = self._manifest_path() + ".tmp"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
        _fsync_replace(temp, self._manifest_path())

    def open(self, total: int | None) -> int:
        """Prepares the folder; returns how many texts finished shards already hold (0 for a
        new folder), or -1 when a complete earlier run left nothing to do."""
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise InputError(f"{self.folder}: exists and is not a folder")
        os.makedirs(self.folder, exist_ok=True)
        entries = set(os.listdir(self.folder))
        if MANIFEST not in entries:
            if entries:
                raise InputError(
                    f"{self.folder}: folder is not empty and holds no latebird manifest "
                    f"({MANIFEST}); give a new or empty folder"
                )
            self._write_manifest(complete=False)
            return 0
        with open(self._manifest_path(), encoding="utf-8") as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError as e:
                raise InputError(f"{self._manifest_path()}: not valid JSON ({e.msg})") from None
        old_identity = {k: old.get(k) for k in self.identity}
        if self.identity["input"]["sha256"] is None or old_identity != self.identity:
            changes = _describe_difference(old_identity, self.identity)
            if self.identity["input"]["sha256"] is None:
                changes.append("input: standard input cannot be checked against the earlier run")
            raise InputError(
                f"{self.folder}: holds the output of a different run, so it cannot be resumed "
                f"({'; '.join(changes)}); use the same command, or a new folder"
            )
        for name in sorted(entries):
            if name.endswith(".tmp"):  # what a killed run was writing
                os.remove(os.path.join(self.folder, name))
                entries.discard(name)
        done = 0
        index = 0
        while shard_name(index) in entries:
            rows = self.pa.parquet.ParquetFile(os.path.join(self.folder, shard_name(index)))
            count = rows.metadata.num_rows
            rows.close()
            if count != self.shard_size and (total is None or done + count != total):
                raise InputError(
                    f"{self.folder}/{shard_name(index)}: {count} rows where {self.shard_size} "
                    "were expected; the folder was changed by hand: remove it and start again"
                )
            done += count
            index += 1
        stray = sorted(n for n in entries if n.startswith("part-") and n >= shard_name(index))
        if stray:
            raise InputError(
                f"{self.folder}: {stray[0]} exists but {shard_name(index)} does not; the folder "
                "was changed by hand: remove it and start again"
            )
        self.shard = index
        self.done = done
        if old.get("complete") and done == total:
            return -1
        return done

    def _temp_path(self) -> str:
        return os.path.join(self.folder, shard_name(self.shard) + ".tmp")

    def room(self) -> int:
        """Texts the current shard can still take: chunks never straddle two shards."""
        return self.shard_size - self.in_shard

    def add(self, ids: Sequence[Any], embeddings: Sequence[np.ndarray]) -> None:
        pa = self.pa
        if len(ids) > self.room():
            raise ValueError("a chunk straddles two shards")
        if self.writer is None:
            self.writer = pa.parquet.ParquetWriter(
                self._temp_path(), self.schema, use_dictionary=["id"]
            )
        table = pa.Table.from_arrays(
            [
                pa.array([str(i) for i in ids], pa.string()),
                embeddings_to_arrow(embeddings, self.dim),
            ],
            schema=self.schema,
        )
        self.writer.write_table(table, row_group_size=max(len(ids), 1))
        self.in_shard += len(ids)
        self.done += len(ids)
        if self.in_shard == self.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        self.writer.close()
        self.writer = None
        _fsync_replace(self._temp_path(), os.path.join(self.folder, shard_name(self.shard)))
        self.shard += 1
        self.in_shard = 0

    def finish(self) -> None:
        if self.writer is not None:
            self._close_shard()
        self._write_manifest(complete=True)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            os.remove(self._temp_path())
