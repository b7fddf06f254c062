"""A local AWS Lambda Runtime API (2018-06-01) on 127.0.0.1, for end-to-end tests of a
function's runtime loop: `invoke()` queues an event, a function process fetches it from
`/runtime/invocation/next` and posts `/response` or `/error`.

As on Lambda, each execution environment (function process) has its own Runtime API endpoint
and runs one invocation at a time; `Pool` starts several that take events from one shared
queue, so that concurrent callers are served by whichever environment is idle.

Each reply is written in one piece on a socket with TCP_NODELAY (like Lambda's own Runtime
API): BaseHTTPRequestHandler otherwise sends the headers and the body in two small writes,
and Nagle's algorithm holds the body back until the function's kernel acknowledges the
headers, which it delays by up to 40 ms: two such stalls per invocation made a 29 ms
invocation take 116 ms here."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    """One invocation's answer and timing (seconds, time.perf_counter)."""

    kind: str  # "response" or "error" (an invocation error posted by the runtime)
    payload: Any
    submitted: float
    dispatched: float = float("nan")  # handed to a function by /invocation/next
    answered: float = float("nan")  # its /response or /error arrived
    environment: int = -1  # which RuntimeApi (function process) served it

    @property
    def round_trip(self) -> float:
        return self.answered - self.submitted

    @property
    def in_function(self) -> float:
        """From the event leaving the Runtime API to the answer arriving back."""
        return self.answered - self.dispatched


@dataclass
class _Record:
    submitted: float
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    dispatched: float = float("nan")
    environment: int = -1


class Invocations:
    """The service side shared by execution environments: events waiting for an idle
    function, and the answers."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.records: dict[str, _Record] = {}
        self.lock = threading.Lock()

    def submit(self, body: bytes) -> str:
        request_id = str(uuid.uuid4())
        with self.lock:
            self.records[request_id] = _Record(time.perf_counter())
        self.pending.put((request_id, body))
        return request_id

    def dispatched(self, request_id: str, environment: int) -> None:
        with self.lock:
            record = self.records.get(request_id)
            if record is not None:
                record.dispatched, record.environment = time.perf_counter(), environment

    def answer(self, request_id: str, kind: str, payload: Any) -> bool:
        with self.lock:
            record = self.records.get(request_id)
            if record is None or record.outcome is not None:
                return False
            record.outcome = Outcome(kind, payload, record.submitted, record.dispatched,
                                     time.perf_counter(), record.environment)  # fmt: skip
        record.done.set()
        return True

    def invoke_timed(self, event: Any = None, timeout: float = 60, *, raw: bytes | None = None,
                     alive: Callable[[], bool] | None = None) -> Outcome:  # fmt: skip
        """Runs one invocation (the event as JSON, or `raw` bytes as the payload); gives up
        early when `alive()` says that no function is left to answer."""
        request_id = self.submit(raw if raw is not None else json.dumps(event).encode())
        record = self.records[request_id]
        end = time.perf_counter() + timeout
        try:
            while not record.done.wait(0.25):
                if alive is not None and not alive():
                    raise RuntimeError(f"invocation {request_id}: no function process left")
                if time.perf_counter() > end:
                    raise TimeoutError(f"no answer to invocation {request_id} in {timeout} s")
            assert record.outcome is not None
            return record.outcome
        finally:
            with self.lock:
                del self.records[request_id]

    def invoke(self, event: Any, timeout: float = 60) -> tuple[str, Any]:
        """Runs one invocation; returns ("response" or "error", payload)."""
        outcome = self.invoke_timed(event, timeout)
        return outcome.kind, outcome.payload


class RuntimeApi:
    """The Runtime API endpoint of one execution environment."""

    def __init__(self, invocations: Invocations | None = None, environment: int = 0) -> None:
        self.invocations = invocations or Invocations()
        self.environment = environment
        self.first_next: float | None = None  # when the function first asked for work
        self.init_error: Any = None
        self.served = 0  # events handed to the function
        self.errors = 0  # invocation errors it posted
        self._stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # TCP_NODELAY on each accepted connection
            wbufsize = -1  # buffer each reply; handle_one_request flushes it in one write

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
                pending = api.invocations.pending
                while not api._stop.is_set():
                    try:
                        request_id, body = pending.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    api.invocations.dispatched(request_id, api.environment)
                    api.served += 1
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
                kind = parts[2] if len(parts) == 3 and parts[0] == "invocation" else ""
                if kind in ("response", "error"):
                    try:
                        payload = json.loads(body) if body else None
                    except json.JSONDecodeError:
                        payload = body.decode(errors="replace")
                    if api.invocations.answer(parts[1], kind, payload):
                        api.errors += kind == "error"
                        self._reply(202, b'{"status":"OK"}')
                        return
                self._reply(404)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event: Any, timeout: float = 60) -> tuple[str, Any]:
        """Runs one invocation; returns ("response" or "error", payload)."""
        return self.invocations.invoke(event, timeout)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a function process ended
            super().handle_error(request, client_address)


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
    """A function process against its own RuntimeApi (sharing `invocations` when given);
    measures its cold init (process start to its first request for work). Its output goes to
    a file, so that a chatty function never blocks on a full pipe."""

    def __init__(self, command: list[str], cwd: str | None = None, *,
                 invocations: Invocations | None = None, environment: int = 0,
                 **env: str) -> None:  # fmt: skip
        self.api = RuntimeApi(invocations, environment)
        self.log = tempfile.TemporaryFile("w+")  # closed by close()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=lambda_env(self.api, **env),
            stdout=self.log,
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

    def rss_kib(self) -> int:
        """The process's resident memory (VmRSS), KiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def output(self) -> str:
        """Everything the process printed (ends it first if it still runs)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.api.stop()
        self.log.close()


class Pool:
    """`size` function processes (execution environments), each with its own Runtime API,
    taking invocations from one queue."""

    def __init__(self, command: list[str], size: int = 2, cwd: str | None = None,
                 **env: str) -> None:  # fmt: skip
        self.invocations = Invocations()
        self.functions: list[Function] = []
        try:
            for i in range(size):
                self.functions.append(Function(command, cwd, invocations=self.invocations,
                                               environment=i, **env))  # fmt: skip
        except BaseException:
            self.close()
            raise

    def wait_ready(self, timeout: float = 60) -> float:
        """The slowest cold init, seconds."""
        return max(f.wait_ready(timeout) for f in self.functions)

    def invoke(self, event: Any, timeout: float = 60) -> tuple[str, Any]:
        return self.invocations.invoke(event, timeout)

    def invoke_timed(self, event: Any = None, timeout: float = 60, *,
                     raw: bytes | None = None) -> Outcome:  # fmt: skip
        return self.invocations.invoke_timed(event, timeout, raw=raw, alive=self.alive)

    def alive(self) -> bool:
        return any(f.process.poll() is None for f in self.functions)

    def close(self) -> None:
        for f in self.functions:
            f.close()
