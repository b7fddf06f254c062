"""`latebird` command line: encode texts to files, rank documents for queries.

    latebird encode --model DIR_OR_ID --documents docs.txt --output docs.npz
    latebird encode --model DIR_OR_ID --documents corpus.jsonl --output corpus/ --format parquet
    latebird rank --model DIR_OR_ID --queries q.jsonl --documents d.jsonl --top-k 10

Inputs are plain text (one text per line, blank lines skipped, ids 0, 1, ...), JSONL (one
object per line; the text in `--field`, the id in `--id-field` if present, else the line's
index) or Parquet (the same names as columns), chosen by the extension (.jsonl, .ndjson;
.parquet, .pq) or `--input-format`. `-` reads stdin. `encode` streams: it reads and writes
chunk by chunk, so its memory does not grow with the input (see `_outputs` for each output
format); Parquet output is a resumable folder of shards. Exit codes: 0 done, 1 the model
could not be loaded or encoding failed, 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from ._inputs import InputError, Scan, Source, detect_format, open_source, require_pyarrow
from ._outputs import JsonlSink, NpySink, NpzSink, ParquetFolder, Sink
from ._progress import ProgressBar

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class Texts:
    ids: list[Any]
    texts: list[str]


def _fail(message: str, code: int) -> NoReturn:
    print(f"latebird: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def read_texts(path: str, fmt: str, field: str, id_field: str) -> Texts:
    """Reads all of `path` (plain text lines, JSONL objects or Parquet rows) into memory."""
    ids: list[Any] = []
    texts: list[str] = []
    for i, text in open_source(path, fmt, field, id_field).records():
        ids.append(i)
        texts.append(text)
    return Texts(ids, texts)


def _load_model(args: argparse.Namespace) -> Any:
    from . import InvalidInputError, LatebirdError
    from .colbert import ColBERT

    if args.threads is not None:
        # Read by the engine's thread pool when it first runs, which is after this.
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    try:
        return ColBERT(
            args.model, revision=args.revision, device=args.device, precision=args.precision
        )
    except InvalidInputError as e:
        _fail(str(e), EXIT_USAGE)
    except LatebirdError as e:
        _fail(f"cannot load model {args.model!r}: {e}", EXIT_FAILURE)


def _encode(
    model: Any,
    texts: list[str],
    is_query: bool,
    args: argparse.Namespace,
    progress: Callable[[int], object] | None = None,
) -> list:
    from . import InvalidInputError, LatebirdError
    from ._arrays import positive_int

    try:
        positive_int(args.batch_size, "batch_size")
        positive_int(args.pool_factor, "pool_factor")
        return model._model.encode(
            texts, is_query, args.batch_size, 1 if is_query else args.pool_factor, progress
        )
    except InvalidInputError as e:
        _fail(str(e), EXIT_USAGE)
    except LatebirdError as e:
        _fail(f"encoding failed: {e}", EXIT_FAILURE)


def _output_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    output = args.output
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return "parquet"
    ext = os.path.splitext(output)[1].lower().lstrip(".")
    return {"npy": "npy", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet"}.get(ext, "npz")


class _open_out:
    """`-` is stdout (left open), anything else a new file."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def __enter__(self) -> Any:
        if self.path in (None, "-"):
            self.f = sys.stdout
        else:
            self.f = open(self.path, "w", encoding="utf-8")
        return self.f

    def __exit__(self, *exc: object) -> None:
        if self.f is not sys.stdout:
            self.f.close()
        else:
            self.f.flush()


# Texts per engine call. Chunks start at multiples of this from the start of each shard, so a
# resumed run encodes exactly the chunks the first run would have.
CHUNK_TEXTS = 256
DEFAULT_SHARD_SIZE = 10_000


def _chunks(
    records: Iterator[tuple[Any, str]], size: int, room: Callable[[], int]
) -> Iterator[tuple[list[Any], list[str]]]:
    """Groups records into chunks of at most `size` that never pass `room()` (the texts the
    current shard can still take)."""
    ids: list[Any] = []
    texts: list[str] = []
    for i, text in records:
        ids.append(i)
        texts.append(text)
        if len(texts) >= min(size, room()):
            yield ids, texts
            ids, texts = [], []
    if texts:
        yield ids, texts


def _model_fingerprint(folder: str) -> str:
    """SHA-256 over the names, sizes and contents of the model folder's files."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            digest.update(str(os.path.getsize(path)).encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _identity(
    args: argparse.Namespace, model: Any, source: Source, scan: Scan | None, is_query: bool
) -> dict:
    """What a resumable output must have been made from: compared on resume."""
    from . import __version__

    return {
        "latebird_version": __version__,
        "input": {
            "path": source.path if source.path == "-" else os.path.abspath(source.path),
            "format": detect_format(source.path, args.input_format),
            "field": args.field,
            "id_field": args.id_field,
            "texts": scan.count if scan else None,
            "sha256": scan.sha256 if scan else None,
        },
        "model": {
            "path": os.path.abspath(model.model_name_or_path),
            "files_sha256": _model_fingerprint(model.model_name_or_path),
            "precision": model.precision,
            "dim": model.embedding_dim,
            "settings": model._model.settings,
        },
        "encoding": {
            "kind": "queries" if is_query else "documents",
            "pool_factor": 1 if is_query else args.pool_factor,
            "batch_size": args.batch_size,
            "shard_size": args.shard_size,
            "chunk_texts": CHUNK_TEXTS,
        },
    }


def cmd_encode(args: argparse.Namespace) -> None:
    is_query = args.queries is not None
    if is_query and args.pool_factor > 1:
        raise InputError(
            "--pool-factor applies to documents only (queries are never pooled, as in every "
            "latebird front end); use it with --documents"
        )
    fmt = _output_format(args)
    if fmt != "jsonl" and args.output == "-":
        raise InputError(f"--format {fmt} cannot be written to stdout; give a file name")
    if fmt == "parquet":
        require_pyarrow("Parquet output")
        args.shard_size = args.shard_size or DEFAULT_SHARD_SIZE
    elif args.shard_size is not None:
        raise InputError("--shard-size applies to Parquet output (a folder of shards) only")
    source = open_source(args.queries or args.documents, args.input_format, args.field,
                         args.id_field)  # fmt: skip
    # A file is checked whole before anything is written (and counted, for the progress bar
    # and the resume check); standard input is checked as it is encoded.
    scan = source.scan() if source.path != "-" else None
    _check_output_dir(args.output)
    model = _load_model(args)
    total = scan.count if scan else None
    sink: Sink
    skip = 0
    room: Callable[[], int] = lambda: CHUNK_TEXTS  # noqa: E731
    if fmt == "parquet":
        folder = ParquetFolder(
            args.output,
            _identity(args, model, source, scan, is_query),
            model.embedding_dim,
            args.shard_size,
        )
        skip = folder.open(total)
        if skip < 0:
            print(
                f"latebird: {args.output}: already complete ({total} texts in "
                f"{folder.shard} shards); nothing to do",
                file=sys.stderr,
            )
            return
        sink, room = folder, folder.room
    elif fmt == "npz":
        sink = NpzSink(args.output)
    elif fmt == "npy":
        sink = NpySink(args.output, model.embedding_dim)
    else:
        sink = JsonlSink(args.output)

    bar = None
    if ProgressBar.wanted(None, total, args.batch_size):
        label = "Encoding queries" if is_query else "Encoding documents"
        bar = ProgressBar(total, label, initial=skip)
    done = skip
    try:
        records = itertools.islice(source.records(), skip, None)
        for ids, texts in _chunks(records, CHUNK_TEXTS, room):
            update = None
            if bar is not None:
                update = lambda n, base=done: bar.update(base + n)  # noqa: E731
            sink.add(ids, _encode(model, texts, is_query, args, update))
            done += len(texts)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    finally:
        if bar is not None:
            bar.close()


def cmd_rank(args: argparse.Namespace) -> None:
    from .scores import colbert_scores

    queries = read_texts(args.queries, args.input_format, args.field, args.id_field)
    documents = read_texts(args.documents, args.input_format, args.field, args.id_field)
    if args.output is not None:
        _check_output_dir(args.output)
    model = _load_model(args)
    q = _encode(model, queries.texts, True, args)
    d = _encode(model, documents.texts, False, args)
    matrix = colbert_scores(q, d)
    k = min(args.top_k, len(documents.texts))
    with _open_out(args.output) as f:
        for row, query_id in enumerate(queries.ids):
            # Stable sort: equal scores keep input order, as latebird.rank does.
            order = np.argsort(-matrix[row], kind="stable")[:k]
            results = [
                {"id": documents.ids[j], "score": float(matrix[row, j]), "rank": r + 1}
                for r, j in enumerate(order)
            ]
            line = {"query_id": query_id, "query": queries.texts[row], "results": results}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def cmd_quantize(args: argparse.Namespace) -> None:
    from . import InvalidInputError, LatebirdError
    from .quantize import quantize

    try:
        report = quantize(args.model, args.output, args.precision)
    except InvalidInputError as e:
        _fail(str(e), EXIT_USAGE)
    except LatebirdError as e:
        _fail(f"cannot quantize {args.model!r}: {e}", EXIT_FAILURE)
    before, after = report["bytes_before"], report["bytes_after"]
    print(
        f"{args.output}: {report['quantized']} tensors in {args.precision}; "
        f"backbone weights {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB",
        file=sys.stderr,
    )
    if report["skipped"]:
        left_out = ", ".join(report["skipped"])
        print(f"left out (float copies of the same weights): {left_out}", file=sys.stderr)


def _check_output_dir(path: str) -> None:
    if path == "-":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, build_features

    parser = argparse.ArgumentParser(
        prog="latebird",
        description="PyLate-exact ColBERT encoding and ranking without PyTorch.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"latebird {__version__} (backends: {', '.join(build_features)})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="model folder or hub id (org/name)")
        p.add_argument("--revision", help="hub branch, tag or commit (default main)")
        p.add_argument(
            "--device",
            default="cpu",
            help="cpu (default), cuda, cuda:N, mps or metal; "
            "one this build or machine lacks is an error",
        )
        p.add_argument("--batch-size", type=_positive, default=32)
        p.add_argument("--pool-factor", type=_positive, default=1, help="documents only")
        p.add_argument(
            "--precision",
            choices=["float32", "bfloat16", "int8", "float16"],
            help="arithmetic of the linear layers (default: as the model folder stores them)",
        )
        p.add_argument(
            "--input-format",
            choices=["auto", "text", "jsonl", "parquet"],
            default="auto",
            help="auto: jsonl for .jsonl/.ndjson files, parquet for .parquet/.pq files, "
            "else one text per line",
        )
        p.add_argument("--field", default="text", help="JSONL field or Parquet column of the text")
        p.add_argument("--id-field", default="id", help="JSONL field or Parquet column of the id")
        p.add_argument(
            "--threads",
            type=_positive,
            help="encoding threads (default: RAYON_NUM_THREADS, else every core)",
        )

    encode = sub.add_parser("encode", help="encode queries or documents to a file")
    common(encode)
    which = encode.add_mutually_exclusive_group(required=True)
    which.add_argument("--queries", help="file of queries (- for stdin)")
    which.add_argument("--documents", help="file of documents (- for stdin)")
    encode.add_argument(
        "--output", required=True, help="output file (- for stdout, jsonl) or Parquet folder"
    )
    encode.add_argument(
        "--format",
        choices=["npz", "npy", "jsonl", "parquet"],
        help="npz: one array per text plus ids; npy: padded [n, tokens, dim]; "
        "jsonl: one {id, embedding} per line; parquet: a resumable folder of "
        "part-NNNNN.parquet shards (needs latebird[parquet]) (default: from --output: a "
        "folder, a name ending in / or .parquet, else by extension, else npz)",
    )
    encode.add_argument(
        "--shard-size",
        type=_positive,
        help=f"texts per Parquet shard (default {DEFAULT_SHARD_SIZE})",
    )
    encode.set_defaults(run=cmd_encode)

    rank = sub.add_parser("rank", help="rank documents for each query (JSONL out)")
    common(rank)
    rank.add_argument("--queries", required=True, help="file of queries")
    rank.add_argument("--documents", required=True, help="file of documents")
    rank.add_argument("--top-k", type=_positive, default=10)
    rank.add_argument("--output", help="JSONL file (default: stdout)")
    rank.set_defaults(run=cmd_rank)

    quantize = sub.add_parser(
        "quantize",
        help="write an int8 copy (about 1/4 of the linear weights) or a float16 copy "
        "(half of every weight) of a model folder",
    )
    quantize.add_argument("model", help="PyLate model folder")
    quantize.add_argument("output", help="new or empty folder to write")
    quantize.add_argument("--precision", choices=["int8", "float16"], default="int8")
    quantize.set_defaults(run=cmd_quantize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as e:
        _fail(str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        print("latebird: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `latebird rank ... | head`: the reader left; not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
