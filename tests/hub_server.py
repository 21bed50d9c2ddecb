"""A Hugging Face hub on 127.0.0.1 for `data get` tests: dataset repos in the hub's layout, served through the
endpoints huggingface_hub calls (checked against huggingface_hub 2.4's hf_api.py / file_download.py):

    GET  /api/datasets/{repo}/revision/{rev}            repo info; ``sha`` is the commit the branch points to
    GET  /api/datasets/{repo}/tree/{rev}[/{path}]       file listing (size, git oid, lfs {oid: sha256, size})
    POST /api/datasets/{repo}/paths-info/{rev}          the same for named paths (form field ``paths``)
    HEAD /datasets/{repo}/resolve/{rev}/{path}          X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size
    GET  /datasets/{repo}/resolve/{rev}/{path}          the bytes; ``Range: bytes=N-`` answered with 206

``*.tar`` files are LFS files (ETag = sha256 of the content, as the hub does), the others are kept in git
(ETag = git blob id). Faults for the tests: ``drop_once`` (paths whose first GET sends half the bytes and
closes the connection) and ``corrupt`` (paths served with altered bytes, same length), ``stall`` (path -> Event: the first GET sends half the bytes
and waits for the event before sending the rest). ``requests`` logs
(method, path, Range header) of every request.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.drop_once: set[str] = set()
        self.corrupt: set[str] = set()
        self.stall: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_commit(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        h = hashlib.sha1()
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        sha = h.hexdigest()
        r = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        r["commits"][sha] = dict(files)
        r["refs"][branch] = sha
        return sha

    def add_folder(self, repo: str, folder: Path, branch: str = "main") -> str:
        folder = Path(folder)
        return self.add_commit(repo, {p.relative_to(folder).as_posix(): p.read_bytes()
                                      for p in sorted(folder.rglob("*")) if p.is_file()}, branch)

    def log(self, method: str, path: str, rng: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, rng))

    def entry(self, path: str, data: bytes) -> dict:
        if path.endswith(".tar"):
            ptr = lfs_pointer(data)
            return {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(ptr),
                    "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(ptr)}}
        return {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send_first_half(self, data: bytes, headers: dict):
            """Headers announcing all of ``data``, then only its first half (a stalled or dropped download)."""
            self.send_response(200)
            for k, v in {**headers, "Content-Length": len(data)}.items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, obj, status: int = 200):
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def _missing(self, code: str, msg: str):
            self._send(404, json.dumps({"error": msg}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": msg})

        def _commit(self, repo: str, rev: str):
            r = hub.repos.get(repo)
            if r is None:
                self._missing("RepoNotFound", f"Repository {repo} not found")
                return None, None
            sha = r["refs"].get(rev, rev if rev in r["commits"] else None)
            if sha is None:
                self._missing("RevisionNotFound", f"Invalid rev id: {rev}")
                return None, None
            return sha, r["commits"][sha]

        def do_GET(self):
            self._route("GET")

        def do_HEAD(self):
            self._route("HEAD")

        def do_POST(self):
            self._route("POST")

        def _route(self, method: str):
            url = urlsplit(self.path)
            hub.log(method, unquote(url.path), self.headers.get("Range"))
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
                repo, kind, rev = f"{parts[2]}/{parts[3]}", parts[4], unquote(parts[5])
                sha, files = self._commit(repo, rev)
                if sha is None:
                    return
                if kind == "revision":
                    return self._json({"id": repo, "sha": sha, "private": False,
                                       "siblings": [{"rfilename": p} for p in sorted(files)]})
                if kind == "tree":
                    sub = unquote("/".join(parts[6:]))
                    rec = parse_qs(url.query).get("recursive", ["False"])[0].lower() == "true"
                    return self._json(_tree(hub, files, sub, rec))
                if kind == "paths-info" and method == "POST":
                    n = int(self.headers.get("Content-Length") or 0)
                    wanted = parse_qs(self.rfile.read(n).decode()).get("paths", [])
                    return self._json([hub.entry(p, files[p]) for p in wanted if p in files])
            if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                repo, rev, path = f"{parts[1]}/{parts[2]}", unquote(parts[4]), unquote("/".join(parts[5:]))
                sha, files = self._commit(repo, rev)
                if sha is None:
                    return
                if path not in files:
                    return self._missing("EntryNotFound", f"{path} does not exist")
                return self._file(method, sha, path, files[path])
            self._send(404, b"not found")

        def _file(self, method: str, sha: str, path: str, data: bytes):
            e = hub.entry(path, data)
            etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            if "lfs" in e:
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": len(data)})
            if path in hub.corrupt:
                data = data[: len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:][:16]) + \
                    data[len(data) // 2 + 16:]
            if method == "HEAD":
                return self._send(200, b"", {**headers, "Content-Length": len(data)}, head=True)
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                return self._send(206, data[start:], {**headers, "Content-Range":
                                                      f"bytes {start}-{len(data) - 1}/{len(data)}"})
            if path in hub.stall:
                release = hub.stall.pop(path)
                self._send_first_half(data, headers)
                release.wait(30)
                try:
                    self.wfile.write(data[len(data) // 2:])
                except OSError:
                    pass
                return
            if path in hub.drop_once:
                hub.drop_once.discard(path)
                self._send_first_half(data, headers)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(200, data, headers)

    return Handler


def _tree(hub: FakeHub, files: dict, sub: str, recursive: bool) -> list:
    prefix = f"{sub}/" if sub else ""
    out, dirs = [], set()
    for p in sorted(files):
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        if "/" in rest and not recursive:
            dirs.add(prefix + rest.split("/")[0])
            continue
        if recursive:
            bits = rest.split("/")[:-1]
            dirs.update(prefix + "/".join(bits[: i + 1]) for i in range(len(bits)))
        out.append(hub.entry(p, files[p]))
    folders = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
    return folders + out
