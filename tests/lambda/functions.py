"""The packaged Lambda functions the tests run, and how each is started:

- "rust": the `bootstrap` of target/lambda/latebird-lambda.zip (scripts/build_lambda.sh);
- "python": the handler of target/lambda/latebird-lambda-python.zip
  (scripts/build_lambda_python.sh) in python_runtime.py, a minimal stand-in runtime loop;
- "python-awslambdaric": the same handler under AWS's own runtime interface client
  (`python -m awslambdaric`, the loop of Lambda's Python base images).

With LATEBIRD_LAMBDA_ARCH=arm64 the tests run the arm64 packages (`--arch arm64` of both
scripts) under user-mode emulation, as scripts/emulated_aarch64.sh sets them up:
LATEBIRD_LAMBDA_RUNNER is the emulator command that runs the aarch64 `bootstrap`,
LATEBIRD_LAMBDA_PYTHON an aarch64 Python, and LATEBIRD_LAMBDA_PYTHONPATH where that Python
finds awslambdaric."""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import zipfile
from pathlib import Path

from runtime_api import Function, Pool

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "lambda"
KINDS = ("rust", "python", "python-awslambdaric")
ARCH = os.environ.get("LATEBIRD_LAMBDA_ARCH", "x86_64")
if ARCH not in ("x86_64", "arm64"):
    raise ValueError(f"LATEBIRD_LAMBDA_ARCH={ARCH!r}: expected x86_64 or arm64")
_SUFFIX = "" if ARCH == "x86_64" else "-" + ARCH
ZIPS = {
    "rust": OUT / f"latebird-lambda{_SUFFIX}.zip",
    "python": OUT / f"latebird-lambda-python{_SUFFIX}.zip",
}
RUNNER = shlex.split(os.environ.get("LATEBIRD_LAMBDA_RUNNER", ""))
PYTHON = os.environ.get("LATEBIRD_LAMBDA_PYTHON", sys.executable)
EXTRA_PATH = os.environ.get("LATEBIRD_LAMBDA_PYTHONPATH", "")
HANDLER = "latebird.lambda_handler.handler"


def model_folder() -> Path:
    for name in ("tests/models/minilm-colbert", "tests/fixtures/models/modernbert-v4"):
        folder = ROOT / name
        if (folder / "modules.json").is_file():
            return folder
    raise FileNotFoundError("no test model; run python scripts/build_test_models.py")


def package(kind: str) -> Path:
    return ZIPS["rust" if kind == "rust" else "python"]


def missing(kind: str) -> str | None:
    """Why `kind` cannot run here (a message for pytest.skip), or None."""
    archive = package(kind)
    if not archive.is_file():
        script = "build_lambda.sh" if kind == "rust" else "build_lambda_python.sh"
        return f"{archive} not built (bash scripts/{script} --arch {ARCH})"
    if ARCH != "x86_64":
        if not RUNNER or PYTHON == sys.executable:
            return f"{ARCH} runs under emulation: set up by bash scripts/emulated_aarch64.sh lambda"
        if kind == "python-awslambdaric" and not (Path(EXTRA_PATH) / "awslambdaric").is_dir():
            return f"no {ARCH} awslambdaric in LATEBIRD_LAMBDA_PYTHONPATH={EXTRA_PATH!r}"
    elif kind == "python-awslambdaric" and importlib.util.find_spec("awslambdaric") is None:
        return "awslambdaric is not installed (pip install -r scripts/requirements-dev.txt)"
    return None


def unpack(kind: str, tmp: Path) -> tuple[list[str], Path]:
    """The command that starts `kind`, and its unpacked package (the task root)."""
    problem = missing(kind)
    if problem:
        raise FileNotFoundError(problem)
    root = tmp / kind
    with zipfile.ZipFile(package(kind)) as z:
        z.extractall(root)
    if kind == "rust":
        (root / "bootstrap").chmod(0o755)
        return [*RUNNER, str(root / "bootstrap")], root
    # The test package is built for this Python's version (scripts/test.sh and
    # scripts/emulated_aarch64.sh pass it).
    if kind == "python":
        return [PYTHON, str(Path(__file__).with_name("python_runtime.py"))], root
    return [PYTHON, "-m", "awslambdaric", HANDLER], root


def _env(root: Path, env: dict[str, str]) -> dict[str, str]:
    # The function package first on the path, as on Lambda (not this checkout's latebird).
    path = os.pathsep.join(p for p in (str(root), EXTRA_PATH) if p)
    return {"LAMBDA_TASK_ROOT": str(root), "PYTHONPATH": path, "PYTHONNOUSERSITE": "1",
            **env}  # fmt: skip


def start(kind: str, tmp: Path, **env: str) -> Function:
    command, root = unpack(kind, tmp)
    return Function(command, cwd=str(root), **_env(root, env))


def start_pool(kind: str, tmp: Path, size: int, **env: str) -> Pool:
    command, root = unpack(kind, tmp)
    return Pool(command, size, cwd=str(root), **_env(root, env))
