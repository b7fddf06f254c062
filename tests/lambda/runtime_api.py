"""A local AWS Lambda Runtime API (2018-06-01) on 127.0.0.1, for end-to-end tests of a
function's runtime loop: `invoke()` queues an event, the function fetches it from
`/runtime/invocation/next` and posts `/response` or `/error`."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: dict[str, queue.Queue[tuple[str, Any]]] = {}
        self.first_next: float | None = None  # when the function first asked for work
        self.init_error: Any = None
        self._stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404)
                    return
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                while not api._stop.is_set():
                    try:
                        request_id, body = api.pending.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    deadline = int((time.time() + 60) * 1000)
                    self._reply(200, body, {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn":
                            "arn:aws:lambda:us-east-1:000000000000:function:latebird",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    })  # fmt: skip
                    return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = body.decode(errors="replace")
                    self._reply(202, b'{"status":"OK"}')
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[1] in api.results:
                    kind = parts[2]
                    if kind in ("response", "error"):
                        try:
                            payload = json.loads(body) if body else None
                        except json.JSONDecodeError:
                            payload = body.decode(errors="replace")
                        api.results[parts[1]].put((kind, payload))
                        self._reply(202, b'{"status":"OK"}')
                        return
                self._reply(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event: Any, timeout: float = 60) -> tuple[str, Any]:
        """Runs one invocation; returns ("response" or "error", payload)."""
        request_id = str(uuid.uuid4())
        self.results[request_id] = queue.Queue()
        self.pending.put((request_id, json.dumps(event).encode()))
        try:
            return self.results[request_id].get(timeout=timeout)
        finally:
            del self.results[request_id]

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def lambda_env(api: RuntimeApi, **extra: str) -> dict[str, str]:
    """The environment Lambda gives a function, pointed at `api`."""
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "latebird",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/latebird",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_REGION": "us-east-1",
        "_HANDLER": "latebird.lambda_handler.handler",
    })  # fmt: skip
    env.update(extra)
    return env


class Function:
    """A function process against a fresh RuntimeApi; measures its cold init (process start
    to its first request for work)."""

    def __init__(self, command: list[str], cwd: str | None = None, **env: str) -> None:
        self.api = RuntimeApi()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=lambda_env(self.api, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds from process start to the first `next` request (the cold init)."""
        end = time.perf_counter() + timeout
        while self.api.first_next is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"function exited during init:\n{self.output()}")
            if time.perf_counter() > end:
                raise TimeoutError("function did not ask for work in time")
            time.sleep(0.005)
        return self.api.first_next - self.started

    def output(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        out, _ = self.process.communicate(timeout=10)
        return out or ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.api.stop()
