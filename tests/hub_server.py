"""A loopback Hugging Face Hub: what the real huggingface_hub client asks to publish and load.

- `HEAD|GET /{repo}/resolve/{revision}/{path}`: a file, with the headers the client reads
  (`X-Repo-Commit`, `ETag`, `Content-Length`) and `Range: bytes=N-`; a missing repo, revision or
  file is a 404 with the Hub's `X-Error-Code`.
- `POST /api/repos/create`, `/api/models/{repo}/preupload/{branch}` (every file "regular"),
  `/api/models/{repo}/commit/{branch}` (NDJSON, base64 contents), `/api/validate-yaml`.

Faults, for the file requests: `status` (answer every one with it), `delay` (seconds before
answering), `cut` (send half the body, then close). `reject` answers 403 to uploads.
`requests` records every (method, path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

ERROR_CODES = {"repo": "RepoNotFound", "revision": "RevisionNotFound", "file": "EntryNotFound"}


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.commits: dict[str, list[tuple[str, dict[str, bytes]]]] = {}  # repo: [(sha, files)]
        self.requests: list[tuple[str, str]] = []
        self.status: int | None = None
        self.delay = 0.0
        self.cut = False
        self.reject: str | None = None
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()

    def commit(self, repo: str, files: dict[str, bytes]) -> str:
        """Add a commit of `files` (on top of the last one) to `repo`; returns its sha."""
        history = self.commits.setdefault(repo, [])
        snapshot = {**(history[-1][1] if history else {}), **files}
        sha = hashlib.sha1(f"{repo} {len(history)} {sorted(files)}".encode()).hexdigest()
        history.append((sha, snapshot))
        return sha

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        return self._snapshot(repo, revision)[1]

    def _snapshot(self, repo: str, revision: str) -> tuple[str, dict[str, bytes]]:
        """(sha, files) of a branch ("main") or commit; KeyError("repo" / "revision")."""
        if repo not in self.commits:
            raise KeyError("repo")
        history = self.commits[repo]
        for sha, files in history:
            if revision in (sha, "main" if sha == history[-1][0] else None):
                return sha, files
        raise KeyError("revision")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, *args: object) -> None:
        """No access log on stderr."""

    def _reply(self, status: int, body: bytes, headers: dict | None = None, cut=False) -> None:
        """Headers, then the body (half of it and a closed connection when `cut`)."""
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[: len(body) // 2] if cut else body)
        self.close_connection = cut

    def do_GET(self) -> None:
        hub = self.server
        path = unquote(urlsplit(self.path).path)
        hub.requests.append((self.command, path))
        time.sleep(hub.delay)
        if hub.status is not None:
            return self._reply(hub.status, b'{"error": "injected failure"}')
        parts = path.strip("/").split("/", 4)
        try:
            if len(parts) < 5 or parts[2] != "resolve":  # e.g. repo info: not served
                raise KeyError("repo")
            owner, name, _, revision, filename = parts
            sha, files = hub._snapshot(f"{owner}/{name}", revision)
            data = files[filename]
        except KeyError as missing:
            code = ERROR_CODES.get(missing.args[0], "EntryNotFound")
            return self._reply(404, b"{}", {"X-Error-Code": code})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        if self.command == "HEAD" or not (start or hub.cut):
            return self._reply(200, data, headers)
        if start:  # resuming a download that was cut short
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._reply(206, data[start:], headers)
        self._reply(200, data, headers, cut=True)
        return None

    do_HEAD = do_GET

    def do_POST(self) -> None:
        hub = self.server
        path = unquote(urlsplit(self.path).path)
        hub.requests.append(("POST", path))
        body = self._body()
        if hub.reject is not None and not path.endswith("validate-yaml"):
            return self._json(403, {"error": hub.reject})
        if path == "/api/repos/create":
            request = json.loads(body)
            repo = f"{request['organization']}/{request['name']}"
            exists = repo in hub.commits
            hub.commits.setdefault(repo, [])
            return self._json(409 if exists else 200, {"url": f"{hub.endpoint}/{repo}"})
        if path == "/api/validate-yaml":
            return self._json(200, {})
        _, _, owner, name, action, _ = path.strip("/").split("/")
        if action == "preupload":
            paths = [item["path"] for item in json.loads(body)["files"]]
            modes = [{"path": p, "uploadMode": "regular", "shouldIgnore": False} for p in paths]
            return self._json(200, {"files": modes})
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        files = {
            line["value"]["path"]: base64.b64decode(line["value"]["content"])
            for line in lines
            if line["key"] == "file"
        }
        sha = hub.commit(f"{owner}/{name}", files)
        url = f"{hub.endpoint}/{owner}/{name}/commit/{sha}"
        return self._json(200, {"commitOid": sha, "commitUrl": url})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()  # the empty line after the last chunk
        return b"".join(chunks)

    def _json(self, status: int, payload: dict) -> None:
        self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})
