"""A Hugging Face compatible hub on 127.0.0.1 for tests: the model-info API and `resolve`
downloads of local folders, with switches for failures (5xx, hangs, cut transfers, tokens)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Repo:
    """`commits` maps a commit hash to a folder; `refs` maps branches and tags to commits."""

    commits: dict[str, Path]
    refs: dict[str, str]
    extra_files: list[str] = field(default_factory=list)  # listed, served as a few bytes
    missing_files: list[str] = field(default_factory=list)  # listed, answered 404
    token: str | None = None  # required Bearer token (private repository)

    def files(self, commit: str) -> list[str]:
        root = self.commits[commit]
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return names + self.extra_files + self.missing_files


class FakeHub:
    """Runs in a thread; `url` is its endpoint. Counts requests by kind in `hits`."""

    def __init__(self, repos: dict[str, Repo], error_codes: bool = True) -> None:
        self.repos = repos
        self.error_codes = error_codes  # send X-Error-Code as the real hub does
        self.fail_api = 0  # answer this many API calls with 500 first
        self.hang = False  # accept requests but never answer (until stopped)
        self.truncate = False  # announce full Content-Length, send half, close
        self.hits: dict[str, int] = {"api": 0, "resolve": 0}
        self.requests: list[str] = []
        self._stop = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hub._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, code: str = "") -> None:
        h.send_response(status)
        if code and self.error_codes:
            h.send_header("X-Error-Code", code)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = urllib.parse.urlsplit(h.path).path
        self.requests.append(path)
        if self.hang:
            self._stop.wait(10)
            return
        if path.startswith("/api/models/"):
            self.hits["api"] += 1
            if self.fail_api > 0:
                self.fail_api -= 1
                self._send(h, 500, b"internal error")
                return
            rest = path[len("/api/models/") :]
            repo_id, _, revision = rest.partition("/revision/")
            repo = self._repo(h, repo_id)
            if repo is None:
                return
            revision = urllib.parse.unquote(revision) or "main"
            commit = repo.refs.get(revision, revision)
            if commit not in repo.commits:
                self._send(h, 404, b'{"error":"Invalid rev id"}', "RevisionNotFound")
                return
            info = {
                "id": repo_id,
                "sha": commit,
                "siblings": [{"rfilename": f} for f in repo.files(commit)],
            }
            self._send(h, 200, json.dumps(info).encode())
            return
        if "/resolve/" in path:
            self.hits["resolve"] += 1
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, file = rest.partition("/")
            file = urllib.parse.unquote(file)
            repo = self._repo(h, repo_id)
            if repo is None:
                return
            commit = repo.refs.get(revision, revision)
            if commit not in repo.commits:
                self._send(h, 404, b"", "RevisionNotFound")
                return
            target = repo.commits[commit] / file
            if file in repo.extra_files:
                self._send(h, 200, b"not a model file")
            elif file in repo.missing_files or not target.is_file():
                self._send(h, 404, b"Entry not found", "EntryNotFound")
            elif self.truncate:
                body = target.read_bytes()
                h.send_response(200)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h.close_connection = True
            else:
                self._send(h, 200, target.read_bytes())
            return
        self._send(h, 404, b"not found")

    def _repo(self, h: BaseHTTPRequestHandler, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is not None and repo.token is not None:
            if h.headers.get("Authorization") != f"Bearer {repo.token}":
                # The real hub hides private repositories: 401 and RepoNotFound.
                self._send(h, 401, b"Repository not found", "RepoNotFound")
                return None
        if repo is None:
            self._send(h, 404, b"Repository not found", "RepoNotFound")
        return repo
