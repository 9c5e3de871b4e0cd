"""A small Hub-shaped HTTP server on 127.0.0.1 for tests of the real huggingface_hub code paths.

It answers what ``hf_hub_download`` asks (HEAD/GET ``/{repo}/resolve/{revision}/{file}`` with the
X-Repo-Commit / ETag / X-Linked-* headers and the X-Error-Code values huggingface_hub turns into its
errors) and what ``HfApi.create_repo`` / ``create_branch`` / ``upload_folder`` send (repo creation,
branch creation, ``preupload`` answering "regular" for every file, README YAML validation, and the
NDJSON ``commit`` endpoint). Repos live in memory as commits of {path: bytes}.

The header names and error codes follow huggingface_hub's own reader (file_download.get_hf_file_metadata
and utils._http.hf_raise_for_status). The server runs in a daemon thread, serves at most
``max_requests`` requests and shuts itself down after ``lifetime_s`` seconds in any case.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files


class FakeHub:
    def __init__(self, max_requests: int = 500, lifetime_s: float = 300.0):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path), for assertions
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    # -- state ---------------------------------------------------------------------------------
    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` on top of ``branch`` (creating repo and branch as needed); return the sha."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            parent = repo.branches.get(branch)
            tree = dict(repo.commits[parent]) if parent else {}
            tree.update(files)
            digest = hashlib.sha1(repr((parent, sorted((k, hashlib.sha256(v).hexdigest())
                                                        for k, v in tree.items()))).encode())
            sha = digest.hexdigest()
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.branches.get(revision, revision)]

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # never outlives a stuck test
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    # One request per connection: after stop() nothing stays reachable through a pooled keep-alive
    # socket, so "the Hub went away" really looks like that to the client.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def _count(self) -> bool:
        with self.fake._lock:
            self.fake.requests.append((self.command, self.path))
            over = len(self.fake.requests) > self.fake.max_requests
        if over:
            self._send(503, b"request budget of the test server exhausted")
            threading.Thread(target=self.fake.stop, daemon=True).start()
        return not over

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              head_only: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, head_only: bool = False, extra=None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})}
        if head_only:
            self._send(status, b"", headers, head_only=True)
        else:
            self._json(status, {"error": message}, headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _repo(self, repo_id: str, head_only: bool = False) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head_only)
        return repo

    # -- downloads -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        if self._count():
            self._resolve(head_only=True)

    def do_GET(self) -> None:
        if not self._count():
            return
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo(repo_id)
            if repo is not None:
                rev = unquote("/".join(parts[5:]))
                sha = repo.branches.get(rev, rev)
                if sha not in repo.commits:
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                self._json(200, {"id": repo_id, "sha": sha, "private": repo.private,
                                 "siblings": [{"rfilename": f} for f in sorted(repo.commits[sha])]})
            return
        self._resolve(head_only=False)

    def _resolve(self, head_only: bool) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._send(404, b"not found", head_only=head_only)
        repo_id, revision, filename = f"{parts[0]}/{parts[1]}", unquote(parts[3]), "/".join(parts[4:])
        repo = self._repo(repo_id, head_only)
        if repo is None:
            return
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            return self._error(404, "RevisionNotFound", "Invalid rev id", head_only)
        tree = repo.commits[sha]
        if filename not in tree:
            return self._error(404, "EntryNotFound", "Entry not found", head_only, {"X-Repo-Commit": sha})
        data = tree[filename]
        headers = {"X-Repo-Commit": sha, "Content-Type": "application/octet-stream"}
        if filename.endswith(".safetensors"):  # stored with LFS on the Hub: sha256 etag, linked size
            headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                            "X-Linked-Size": str(len(data)), "ETag": f'"{_git_blob_sha(data)}"'})
        else:
            headers["ETag"] = f'"{_git_blob_sha(data)}"'
        self._send(200, data, headers, head_only=head_only)

    # -- uploads -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        if not self._count():
            return
        body = self._body()
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts == ["api", "repos", "create"]:
            payload = json.loads(body or b"{}")
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") \
                else payload["name"]
            with self.fake._lock:
                if repo_id in self.fake.repos:
                    return self._json(409, {"error": "You already created this model repo"})
                self.fake.repos[repo_id] = Repo(private=payload.get("visibility") == "private"
                                                or bool(payload.get("private")))
            self.fake.add_commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
            return self._json(200, {"url": f"{self.fake.url}/{repo_id}", "name": repo_id})
        if parts == ["api", "validate-yaml"]:
            return self._json(200, {"errors": [], "warnings": []})
        if len(parts) >= 6 and parts[:2] == ["api", "models"]:
            repo_id, action, rev = f"{parts[2]}/{parts[3]}", parts[4], unquote("/".join(parts[5:]))
            repo = self._repo(repo_id)
            if repo is None:
                return
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                   "shouldIgnore": False} for f in files]})
            if action == "branch":
                if rev in repo.branches:
                    return self._json(409, {"error": "Reference already exists"})
                start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
                repo.branches[rev] = repo.branches.get(start, start)
                return self._json(200, {})
            if action == "commit":
                return self._commit(repo_id, repo, rev, body)
        self._send(404, b"not found")

    def _commit(self, repo_id: str, repo: Repo, branch: str, body: bytes) -> None:
        files = {}
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                value = item["value"]
                if value.get("encoding") != "base64":
                    return self._json(400, {"error": "expected base64 content"})
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] != "header":  # lfsFile/deletedFile: not offered by this server's preupload
                return self._json(400, {"error": f"unsupported operation {item['key']}"})
        if branch not in repo.branches:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        sha = self.fake.add_commit(repo_id, files, branch)
        self._json(200, {"commitUrl": f"{self.fake.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                         "success": True})


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hf_cache(cache_dir, repo_id: str, files: dict[str, bytes], commit: str,
                     refs: tuple[str, ...] = ("main",)) -> None:
    """Write ``files`` into ``cache_dir`` the way huggingface_hub's cache stores a downloaded commit:
    models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/<ref>}."""
    import os
    from pathlib import Path

    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else _git_blob_sha(data)
        (root / "blobs" / etag).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / "blobs" / etag, link.parent), link)
    for ref in refs:
        (root / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)

