"""`latebird` command line: encode texts to files, rank documents for queries.

    latebird encode --model DIR_OR_ID --documents docs.txt --output docs.npz
    latebird rank --model DIR_OR_ID --queries q.jsonl --documents d.jsonl --top-k 10

Inputs are plain text (one text per line, blank lines skipped, ids 0, 1, ...) or JSONL (one
object per line; the text in `--field`, the id in `--id-field` if present, else the line's
index), chosen by the extension (.jsonl, .ndjson) or `--input-format`. `-` reads stdin.
Exit codes: 0 done, 1 the model could not be loaded or encoding failed, 2 bad arguments or
input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

EXIT_FAILURE = 1
EXIT_USAGE = 2


class InputError(Exception):
    """Bad input file or argument: exit code 2."""


@dataclass
class Texts:
    ids: list[Any]
    texts: list[str]


def _fail(message: str, code: int) -> NoReturn:
    print(f"latebird: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def read_texts(path: str, fmt: str, field: str, id_field: str) -> Texts:
    """Reads `path` as plain text lines or JSONL objects."""
    if fmt == "auto":
        fmt = "jsonl" if path.lower().endswith((".jsonl", ".ndjson")) else "text"
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    ids: list[Any] = []
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fmt == "text":
            ids.append(len(texts))
            texts.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{number}: invalid JSON: {e.msg}") from None
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise InputError(f"{path}:{number}: expected a JSON object, got {kind}")
        if field not in record:
            keys = ", ".join(sorted(record)) or "none"
            raise InputError(f"{path}:{number}: no field {field!r} (fields: {keys}); see --field")
        text = record[field]
        if not isinstance(text, str):
            raise InputError(
                f"{path}:{number}: field {field!r} is {type(text).__name__}; expected a string"
            )
        ids.append(record.get(id_field, len(texts)))
        texts.append(text)
    if not texts:
        raise InputError(f"{path}: no texts (empty file or only blank lines)")
    return Texts(ids, texts)


def _load_model(args: argparse.Namespace) -> Any:
    from . import LatebirdError
    from .colbert import ColBERT

    try:
        return ColBERT(
            args.model, revision=args.revision, device=args.device, precision=args.precision
        )
    except LatebirdError as e:
        _fail(f"cannot load model {args.model!r}: {e}", EXIT_FAILURE)


def _encode(model: Any, texts: Texts, is_query: bool, args: argparse.Namespace) -> list:
    from . import InvalidInputError, LatebirdError

    try:
        return model.encode(
            texts.texts,
            is_query=is_query,
            batch_size=args.batch_size,
            pool_factor=1 if is_query else args.pool_factor,
        )
    except InvalidInputError as e:
        _fail(str(e), EXIT_USAGE)
    except LatebirdError as e:
        _fail(f"encoding failed: {e}", EXIT_FAILURE)


def _output_format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    ext = os.path.splitext(args.output)[1].lower().lstrip(".")
    return {"npy": "npy", "jsonl": "jsonl", "ndjson": "jsonl"}.get(ext, "npz")


def _ids_array(ids: list[Any]) -> np.ndarray:
    return np.array([str(i) for i in ids], dtype=np.str_)


def write_embeddings(path: str, fmt: str, ids: list[Any], embeddings: list[np.ndarray]) -> None:
    """npz: `ids`, `lengths` and `embedding_{i}` per text; npy: one zero-padded
    `[n, max_tokens, dim]` array; jsonl: `{"id", "embedding"}` per line."""
    if fmt == "npz":
        arrays = {f"embedding_{i}": e for i, e in enumerate(embeddings)}
        lengths = np.array([e.shape[0] for e in embeddings], dtype=np.int64)
        with open(path, "wb") as f:
            np.savez(f, ids=_ids_array(ids), lengths=lengths, **arrays)
    elif fmt == "npy":
        dim = embeddings[0].shape[1]
        longest = max(e.shape[0] for e in embeddings)
        padded = np.zeros((len(embeddings), longest, dim), dtype=np.float32)
        for i, e in enumerate(embeddings):
            padded[i, : e.shape[0]] = e
        with open(path, "wb") as f:
            np.save(f, padded)
    else:
        with _open_out(path) as f:
            for i, e in zip(ids, embeddings):
                f.write(json.dumps({"id": i, "embedding": e.tolist()}) + "\n")


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
    texts = read_texts(args.queries or args.documents, args.input_format, args.field, args.id_field)
    _check_output_dir(args.output)
    model = _load_model(args)
    embeddings = _encode(model, texts, is_query, args)
    write_embeddings(args.output, fmt, texts.ids, embeddings)


def cmd_rank(args: argparse.Namespace) -> None:
    from .scores import colbert_scores

    queries = read_texts(args.queries, args.input_format, args.field, args.id_field)
    documents = read_texts(args.documents, args.input_format, args.field, args.id_field)
    if args.output is not None:
        _check_output_dir(args.output)
    model = _load_model(args)
    q = _encode(model, queries, True, args)
    d = _encode(model, documents, False, args)
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
        f"{args.output}: {report['quantized']} weight matrices in {args.precision}; "
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
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="latebird",
        description="PyLate-exact ColBERT encoding and ranking without PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"latebird {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="model folder or hub id (org/name)")
        p.add_argument("--revision", help="hub branch, tag or commit (default main)")
        p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
        p.add_argument("--batch-size", type=_positive, default=32)
        p.add_argument("--pool-factor", type=_positive, default=1, help="documents only")
        p.add_argument(
            "--precision",
            choices=["float32", "bfloat16", "int8"],
            help="arithmetic of the linear layers (default: as the model folder stores them)",
        )
        p.add_argument(
            "--input-format",
            choices=["auto", "text", "jsonl"],
            default="auto",
            help="auto: jsonl for .jsonl/.ndjson files, else one text per line",
        )
        p.add_argument("--field", default="text", help="JSONL field holding the text")
        p.add_argument("--id-field", default="id", help="JSONL field holding the id")

    encode = sub.add_parser("encode", help="encode queries or documents to a file")
    common(encode)
    which = encode.add_mutually_exclusive_group(required=True)
    which.add_argument("--queries", help="file of queries (- for stdin)")
    which.add_argument("--documents", help="file of documents (- for stdin)")
    encode.add_argument("--output", required=True, help="output file (- for stdout, jsonl)")
    encode.add_argument(
        "--format",
        choices=["npz", "npy", "jsonl"],
        help="npz: one array per text plus ids; npy: padded [n, tokens, dim]; "
        "jsonl: one {id, embedding} per line (default: from --output's extension, else npz)",
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
        "quantize", help="write an int8 copy of a model folder (about 1/4 of the weights)"
    )
    quantize.add_argument("model", help="PyLate model folder")
    quantize.add_argument("output", help="new or empty folder to write")
    quantize.add_argument("--precision", choices=["int8"], default="int8")
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
