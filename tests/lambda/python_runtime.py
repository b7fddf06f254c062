"""Stand-in for the managed Python runtime in tests: the Lambda Runtime API loop around the
handler named by _HANDLER, importing the function package from LAMBDA_TASK_ROOT first."""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import urllib.request

ROOT = os.environ["LAMBDA_TASK_ROOT"]
sys.path.insert(0, ROOT)
BASE = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(path: str, payload: object) -> None:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(BASE + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    OPENER.open(request).read()


def error(e: BaseException) -> dict:
    return {"errorType": type(e).__name__, "errorMessage": str(e),
            "stackTrace": traceback.format_exception(type(e), e, e.__traceback__)}  # fmt: skip


def main() -> None:
    module_name, _, name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), name)
        package = sys.modules[module_name.split(".")[0]].__file__ or ""
        if not os.path.realpath(package).startswith(os.path.realpath(ROOT)):
            raise ImportError(f"{module_name} came from {package}, not the function package")
    except Exception as e:
        print(f"init failed: {e}", flush=True)
        post("/init/error", error(e))
        sys.exit(1)
    while True:
        with OPENER.open(BASE + "/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            body = response.read()
        try:
            event = json.loads(body)
        except Exception as e:  # as the managed runtime: an invocation error, keep serving
            post(f"/invocation/{request_id}/error",
                 {"errorType": "Runtime.UnmarshalError",
                  "errorMessage": f"Unable to unmarshal input: {e}"})  # fmt: skip
            continue
        try:
            result = handler(event, None)
        except Exception as e:
            post(f"/invocation/{request_id}/error", error(e))
        else:
            post(f"/invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
