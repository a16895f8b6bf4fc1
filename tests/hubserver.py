"""A Hugging Face hub stand-in on a loopback port, for downloads (``HF_ENDPOINT`` points huggingface_hub at it).

It serves model folders as hub repos through the routes huggingface_hub uses to download: the model info
(``/api/models/ORG/NAME/revision/REV``: commit and file list), the tree listing (``/api/models/.../tree/REV``)
and ``/ORG/NAME/resolve/REV/PATH`` (HEAD for the metadata, GET with ``Range`` for the bytes). Weights are
served as LFS files are (``X-Linked-Etag``: their sha256, ``X-Linked-Size``); every request is logged.

Faults, for resume tests: ``drop[path] = n`` sends the first GET of ``path`` with its full length announced but
closes the connection after ``n`` bytes; ``stall`` (a set of paths) holds a GET of those until ``release`` is
set, with ``stalled`` set when one is held.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS = (".safetensors", ".bin", ".pt", ".ckpt")


@dataclass
class Repo:
    folder: Path
    commit: str
    files: dict[str, bytes]


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class HubServer:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    drop: dict[str, int] = field(default_factory=dict)
    stall: set[str] = field(default_factory=set)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def add(self, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> Repo:
        """Serve ``folder`` (plus ``extra`` files: path -> bytes) as ``repo_id``; its commit hashes the content."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        files.update(extra or {})
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
        repo = self.repos[repo_id] = Repo(folder, digest.hexdigest(), files)
        return repo

    def gets(self, repo_id: str) -> list[str]:
        """The paths of ``repo_id`` fetched (GET) so far, in order."""
        prefix = f"/{repo_id}/resolve/"
        return [r.path[len(prefix):].split("/", 1)[1] for r in self.log if r.method == "GET" and r.path.startswith(prefix)]


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def tree_entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "oid": blob_id(data), "size": len(data), "path": path}
    if path.endswith(LFS):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


class Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.route(body=False)

    def do_GET(self) -> None:
        self.route(body=True)

    def send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def not_found(self, what: str, code: str = "RepoNotFound") -> None:
        self.send_json(404, {"error": what}, {"X-Error-Code": code, "X-Error-Message": what})

    def route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.log.append(Request(self.command, path, self.headers.get("Range")))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
            return self.model_info(m[1], m[2])
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path):
            return self.tree(m[1], m[2], m[3] or "")
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self.resolve(m[1], m[3], body)
        self.not_found(f"no route {path}", "EntryNotFound")

    def model_info(self, repo_id: str, revision: str) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self.not_found(f"Repository not found: {repo_id}")
        self.send_json(200, {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                             "siblings": [{"rfilename": p} for p in repo.files]})

    def tree(self, repo_id: str, revision: str, under: str) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self.not_found(f"Repository not found: {repo_id}")
        self.send_json(200, [tree_entry(p, d) for p, d in repo.files.items() if p.startswith(under)])

    def resolve(self, repo_id: str, path: str, body: bool) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self.not_found(f"Repository not found: {repo_id}")
        data = repo.files.get(path)
        if data is None:
            return self.not_found(f"Entry not found: {path}", "EntryNotFound")
        start = 0
        if body and (rng := self.headers.get("Range")):
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{blob_id(data)}"')
        if path.endswith(LFS):
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        if path in self.hub.stall:
            self.hub.stalled.set()
            self.hub.release.wait(120)
        cut = self.hub.drop.pop(path, None)
        if cut is not None:
            self.wfile.write(data[start:start + cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])


def start(hub: HubServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("HubHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="hub-server", daemon=True)
    thread.start()
    return server, thread
