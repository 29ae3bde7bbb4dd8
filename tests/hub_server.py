"""A small Hugging Face Hub server on loopback, for testing against the real `huggingface_hub`.

It speaks the subset of the Hub protocol that `hf_hub_download`, `snapshot_download`,
`HfApi.create_repo` and `HfApi.upload_folder` use (checked against huggingface_hub 2.4.0):

- `HEAD|GET /{repo_id}/resolve/{revision}/{path}`: the file, with `X-Repo-Commit`, a quoted
  sha256 `ETag`, `Content-Length` and `Range` support. Errors carry the `X-Error-Code` the client
  maps to exceptions: `RepoNotFound` -> RepositoryNotFoundError, `RevisionNotFound` ->
  RevisionNotFoundError, `EntryNotFound` -> RemoteEntryNotFoundError (an EntryNotFoundError).
- `GET /api/models/{repo_id}[/revision/{revision}]`: repo info (`id`, `sha`, `siblings`).
- `GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=...`: the listing, in one page.
- `POST /api/repos/create`: 200 `{"url"}`, or 409 `{"error", "url"}` when it exists.
- `POST /api/models/{repo_id}/preupload/{branch}`: every file in "regular" upload mode.
- `POST /api/models/{repo_id}/commit/{branch}`: NDJSON header + base64 files + deletions.
- `POST /api/validate-yaml`: always valid (the client calls it for README.md uploads).
- `reject_uploads`: 403 `{"error": message}` from preupload, commit and new-repo creation.
- Faults on file requests (`/resolve/`): `fail_status` answers every one with that status,
  `delay` waits that many seconds before answering, `cut_body` sends the headers and half the
  body of every GET, then closes the connection.

Only model repos are served. Every commit stores a full snapshot; shas are sha1 digests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Path segment after the repo id in /api/models/{repo_id}/{action}/...
API_ACTIONS = ("revision", "tree", "preupload", "commit")


class _HubError(Exception):
    """An HTTP error answer: status, `X-Error-Code` (if any) and message."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass
class _Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, bytes]
    date: str


@dataclass
class _Repo:
    repo_id: str
    private: bool = False
    created: str = ""
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def git_blob_sha(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub calls a file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _repo_object_id(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()[:24]


def _header_safe(text: str) -> str:
    return " ".join(text.split()).encode("latin-1", "replace").decode("latin-1")


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def _json_reply(status: int, payload: Any) -> _Reply:
    return _Reply(status, json.dumps(payload).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: HubServer, address: tuple[str, int]) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class HubServer:
    """An in-memory Hub on 127.0.0.1 (random port), served by a daemon thread.

    `requests` records every (method, unquoted path) received. Set `reject_uploads` to a message
    to answer 403 `{"error": message}` (and `X-Error-Message`) to preupload and commit requests
    and to the creation of a new repo (creating an existing one still answers 409).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[tuple[str, str]] = []
        self.reject_uploads: str | None = None
        self.fail_status: int | None = None
        self.delay = 0.0
        self.cut_body = False
        self._address = (host, port)
        self._repos: dict[str, _Repo] = {}
        self._corrupt: dict[tuple[str, str], bytes] = {}
        self._lock = threading.RLock()
        self._counter = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> HubServer:
        """Bind the port and start serving; returns self."""
        if self._httpd is None:
            self._httpd = _Server(self, self._address)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.connections_lock:
            connections = list(httpd.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL to pass as `endpoint=` to the client, e.g. "http://127.0.0.1:PORT"."""
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- seeding and inspection ------------------------------------------------------------

    def create_repo(self, repo_id: str, private: bool = False) -> str:
        """Create `repo_id` (if missing) with an empty initial commit on "main"; returns its sha."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = _Repo(repo_id=repo_id, private=private, created=_now())
                self._repos[repo_id] = repo
                repo.branches["main"] = self._new_commit(repo, None, "initial commit", {})
            return repo.branches["main"]

    def add_files(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit `files` on top of `branch` (repo, branch created if needed); returns the sha."""
        with self._lock:
            self.create_repo(repo_id)
            repo = self._repos[repo_id]
            parent = repo.branches.get(branch, repo.branches["main"])
            snapshot = {**repo.commits[parent].files, **{k: bytes(v) for k, v in files.items()}}
            sha = self._new_commit(repo, parent, f"Add {len(files)} file(s)", snapshot)
            repo.branches[branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The stored files of `repo_id` at a branch or commit sha (not affected by `corrupt`)."""
        with self._lock:
            repo = self._repo(repo_id)
            return dict(repo.commits[self._resolve(repo, revision)].files)

    def head(self, repo_id: str, branch: str = "main") -> str:
        """The commit sha `branch` points to."""
        with self._lock:
            return self._resolve(self._repo(repo_id), branch)

    def corrupt(self, repo_id: str, filename: str, data: bytes) -> None:
        """Serve `data` for `filename` (at every revision) instead of the stored bytes.

        Listings keep describing the stored file; the resolve endpoint's ETag and Content-Length
        describe `data`, so the client accepts it as is. `restore` undoes it.
        """
        with self._lock:
            repo = self._repo(repo_id)
            if not any(filename in commit.files for commit in repo.commits.values()):
                raise KeyError(f"{repo_id} has no file {filename!r}")
            self._corrupt[(repo_id, filename)] = bytes(data)

    def restore(self, repo_id: str, filename: str | None = None) -> None:
        """Serve the stored bytes again for `filename` (every file of the repo when None)."""
        with self._lock:
            for key in list(self._corrupt):
                if key[0] == repo_id and filename in (None, key[1]):
                    del self._corrupt[key]

    # -- internals -------------------------------------------------------------------------

    def _new_commit(
        self, repo: _Repo, parent: str | None, message: str, files: dict[str, bytes]
    ) -> str:
        self._counter += 1
        digest = {
            "repo": repo.repo_id,
            "parent": parent,
            "message": message,
            "files": {path: hashlib.sha256(data).hexdigest() for path, data in files.items()},
            "n": self._counter,
        }
        sha = hashlib.sha1(json.dumps(digest, sort_keys=True).encode()).hexdigest()
        repo.commits[sha] = _Commit(sha, parent, message, dict(files), _now())
        return sha

    def _repo(self, repo_id: str) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: _Repo, revision: str) -> str:
        if revision in repo.branches:
            return repo.branches[revision]
        if COMMIT_SHA.fullmatch(revision) and revision in repo.commits:
            return revision
        raise _HubError(404, f"Invalid rev id: {revision} for {repo.repo_id}", "RevisionNotFound")

    def _check_uploads(self) -> None:
        if self.reject_uploads is not None:
            raise _HubError(403, self.reject_uploads)

    def _url(self, *parts: str) -> str:
        return "/".join([self.endpoint, *parts])

    # -- endpoints (called by the handler with the lock held) ------------------------------

    def resolve(self, repo_id: str, revision: str, filename: str) -> tuple[bytes, str]:
        """(bytes to serve, commit sha) of a file; _HubError when missing."""
        repo = self._repo(repo_id)
        sha = self._resolve(repo, revision)
        files = repo.commits[sha].files
        if filename not in files:
            raise _HubError(
                404,
                f"{filename} does not exist on {revision}",
                "EntryNotFound",
                {"X-Repo-Commit": sha},
            )
        return self._corrupt.get((repo_id, filename), files[filename]), sha

    def repo_info(self, repo_id: str, revision: str | None, query: dict) -> dict[str, Any]:
        """The `/api/models/{repo_id}[/revision/{revision}]` answer."""
        repo = self._repo(repo_id)
        commit = repo.commits[self._resolve(repo, revision or "main")]
        blobs = query.get("blobs", [""])[0].lower() in ("1", "true")
        siblings = []
        for path in sorted(commit.files):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(
                    size=len(commit.files[path]), blobId=git_blob_sha(commit.files[path])
                )
            siblings.append(sibling)
        author = repo_id.split("/")[0] if "/" in repo_id else None
        return {
            "_id": _repo_object_id(repo_id),
            "id": repo_id,
            "modelId": repo_id,
            "author": author,
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }

    def tree(self, repo_id: str, revision: str, path: str, query: dict) -> list[dict[str, Any]]:
        """The `/api/models/{repo_id}/tree/{revision}[/{path}]` answer (a single page)."""
        repo = self._repo(repo_id)
        commit = repo.commits[self._resolve(repo, revision)]
        recursive = query.get("recursive", [""])[0].lower() in ("1", "true")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        below = {p[len(prefix) :]: data for p, data in commit.files.items() if p.startswith(prefix)}
        if prefix and not below:
            raise _HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        folders: set[str] = set()
        entries = []
        for relative, data in below.items():
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                folders.add("/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(
                    {
                        "type": "file",
                        "oid": git_blob_sha(data),
                        "size": len(data),
                        "path": prefix + relative,
                    }
                )
        for folder in folders:
            if recursive or "/" not in folder:
                oid = hashlib.sha1(f"tree {commit.sha} {prefix}{folder}".encode()).hexdigest()
                entries.append(
                    {"type": "directory", "oid": oid, "size": 0, "path": prefix + folder}
                )
        return sorted(entries, key=lambda entry: (entry["type"] != "directory", entry["path"]))

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The `/api/repos/create` answer: (status, json).

        An existing repo gets 409 even when uploads are rejected: on a 403 with `exist_ok=True`,
        huggingface_hub 2.4.0 builds `RepoUrl` without the custom endpoint and raises HfUriError.
        """
        if body.get("type", "model") != "model":
            raise _HubError(400, "This test server only serves model repos")
        name, organization = body.get("name"), body.get("organization")
        if not name:
            raise _HubError(400, "Missing repo name")
        repo_id = f"{organization}/{name}" if organization else name
        url = self._url(repo_id)
        if repo_id in self._repos:
            return 409, {"error": "You already created this model repo", "url": url}
        self._check_uploads()
        private = body.get("visibility") == "private" or bool(body.get("private"))
        self.create_repo(repo_id, private=private)
        return 200, {"url": url, "name": repo_id, "id": _repo_object_id(repo_id)}

    def preupload(self, repo_id: str, revision: str, body: dict[str, Any]) -> dict[str, Any]:
        """The preupload answer: every file goes in the commit payload ("regular" mode)."""
        repo = self._repo(repo_id)
        self._check_uploads()
        files = repo.commits[self._resolve(repo, revision)].files
        answer = []
        for item in body.get("files", []):
            path = item["path"]
            entry: dict[str, Any] = {"path": path, "uploadMode": "regular", "shouldIgnore": False}
            if path in files:
                entry["oid"] = git_blob_sha(files[path])
            answer.append(entry)
        return {"files": answer, "commitOid": self._resolve(repo, revision)}

    def commit(self, repo_id: str, branch: str, body: bytes, query: dict) -> dict[str, Any]:
        """Apply an NDJSON commit payload to `branch`; returns the commit answer."""
        repo = self._repo(repo_id)
        self._check_uploads()
        if query.get("create_pr", ["0"])[0] not in ("", "0", "false"):
            raise _HubError(400, "Pull requests are not supported by this test server")
        if branch not in repo.branches:
            raise _HubError(404, f"Branch {branch} not found in {repo_id}", "RevisionNotFound")
        parent = repo.branches[branch]
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _HubError(400, f"Invalid NDJSON commit payload: {error}") from error
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The commit payload must start with a header line")
        header = lines[0].get("value", {})
        expected_parent = header.get("parentCommit")
        if expected_parent is not None and expected_parent != parent:
            raise _HubError(412, f"Parent commit {expected_parent} is not the head of {branch}")
        files = dict(repo.commits[parent].files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise _HubError(400, f"Unsupported encoding for {path}")
                files[path] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise _HubError(
                        404, f"A file with this name doesn't exist: {path}", "EntryNotFound"
                    )
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise _HubError(
                        404, f"A file with this name doesn't exist: {path}", "EntryNotFound"
                    )
                for doomed_path in doomed:
                    del files[doomed_path]
            elif key == "lfsFile":
                raise _HubError(400, "LFS files are not supported by this test server")
            else:
                raise _HubError(400, f"Unknown commit operation {key!r}")
        message = header.get("summary") or "commit"
        sha = self._new_commit(repo, parent, message, files)
        repo.branches[branch] = sha
        return {
            "success": True,
            "commitOid": sha,
            "commitUrl": self._url(repo_id, "commit", sha),
            "commitMessage": message,
            "hookOutput": "",
            "pullRequestUrl": None,
        }


def _split_repo(parts: list[str]) -> tuple[str, str | None, list[str]]:
    """(repo_id, action, rest) from the segments after /api/models/."""
    for size in (2, 1):
        if len(parts) > size and parts[size] in API_ACTIONS:
            return "/".join(parts[:size]), parts[size], parts[size + 1 :]
    return "/".join(parts), None, []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing --------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, method: str, reply: _Reply, cut: bool = False) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and cut:
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif method != "HEAD":
            self.wfile.write(reply.body)

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        parts = [unquote(segment) for segment in url.path.split("/") if segment]
        query = parse_qs(url.query, keep_blank_values=True)
        with hub._lock:
            hub.requests.append((method, unquote(url.path)))
        body = self._read_body() if method == "POST" else b""
        is_file = "resolve" in parts[1:3] and parts[:1] != ["api"]
        if is_file and hub.delay:
            time.sleep(hub.delay)
        try:
            if is_file and hub.fail_status is not None:
                raise _HubError(hub.fail_status, "Injected failure")
            with hub._lock:
                reply = self._route(method, parts, query, body)
        except _HubError as error:
            headers = {**error.headers, "X-Error-Message": _header_safe(error.message)}
            if error.code:
                headers["X-Error-Code"] = error.code
            reply = _Reply(error.status, json.dumps({"error": error.message}).encode(), headers)
        self._send(method, reply, cut=is_file and hub.cut_body and reply.status < 300)

    def _route(self, method: str, parts: list[str], query: dict, body: bytes) -> _Reply:
        hub = self.server.hub
        if parts[:1] == ["api"]:
            if method == "POST" and parts[1:] == ["repos", "create"]:
                return _json_reply(*hub.create(_json_body(body)))
            if method == "POST" and parts[1:] == ["validate-yaml"]:
                return _json_reply(200, {"errors": [], "warnings": []})
            if parts[1:2] == ["models"]:
                repo_id, action, rest = _split_repo(parts[2:])
                revision = rest[0] if rest else None
                if method == "GET" and action is None:
                    return _json_reply(200, hub.repo_info(repo_id, None, query))
                if method == "GET" and action == "revision" and revision:
                    return _json_reply(200, hub.repo_info(repo_id, revision, query))
                if method == "GET" and action == "tree" and revision:
                    path = "/".join(rest[1:])
                    return _json_reply(200, hub.tree(repo_id, revision, path, query))
                if method == "POST" and action == "preupload" and revision:
                    return _json_reply(200, hub.preupload(repo_id, revision, _json_body(body)))
                if method == "POST" and action == "commit" and revision:
                    return _json_reply(200, hub.commit(repo_id, revision, body, query))
            raise _HubError(404, f"Unknown endpoint {method} /{'/'.join(parts)}")
        if method in ("GET", "HEAD"):
            for size in (2, 1):
                if len(parts) > size + 2 and parts[size] == "resolve":
                    repo_id, revision = "/".join(parts[:size]), parts[size + 1]
                    data, sha = hub.resolve(repo_id, revision, "/".join(parts[size + 2 :]))
                    return self._file_reply(method, data, sha)
        raise _HubError(404, f"Repository not found for /{'/'.join(parts)}", "RepoNotFound")

    def _file_reply(self, method: str, data: bytes, sha: str) -> _Reply:
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
        }
        reply = _Reply(200, data, headers, "application/octet-stream")
        match = RANGE.fullmatch(self.headers.get("Range", "").strip())
        if method == "GET" and match and (match.group(1) or match.group(2)):
            total = len(data)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
            else:
                start, end = max(total - int(match.group(2)), 0), total - 1
            if start >= total or start > end:
                headers["Content-Range"] = f"bytes */{total}"
                raise _HubError(416, "Requested range not satisfiable", headers=headers)
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            reply = _Reply(206, data[start : end + 1], headers, "application/octet-stream")
        return reply


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except json.JSONDecodeError as error:
        raise _HubError(400, f"Invalid JSON body: {error}") from error
    if not isinstance(payload, dict):
        raise _HubError(400, "Expected a JSON object")
    return payload
