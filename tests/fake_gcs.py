"""A Google Cloud Storage stand-in for tests: ``gs://BUCKET/KEY`` is ``ROOT/BUCKET/KEY`` on disk.

Two doors open onto the same directory, the two through which a run reaches a bucket:

* ``epath`` (our run files, orbax's directories and metadata) goes through fsspec's ``gcs``
  protocol: :class:`FakeGCSFileSystem` is registered for it and answers with bucket-relative
  names, as ``gcsfs`` does;
* TensorStore (orbax's array data) speaks GCS's JSON API over HTTP: :class:`FakeGCSServer`
  serves the subset it uses (media upload with generation preconditions, ranged and
  conditional reads, listing, delete), and ``TENSORSTORE_GCS_HTTP_URL`` points it there.

Object semantics are GCS's: no directories to create, an upload replaces an object whole, and
an object's generation (its file's ``st_mtime_ns``) changes with every write.
"""

from __future__ import annotations

import contextlib
import importlib
import http.server
import json
import os
import pathlib
import threading
import urllib.parse

from fsspec.implementations.local import LocalFileSystem


class FakeGCSFileSystem(LocalFileSystem):
    """fsspec's local file system with ``gs://bucket/key`` mapped under ``root``."""

    protocol = ("gs", "gcs")
    root = ""  # set by fake_gcs()

    def __init__(self, *args, **kwargs):
        kwargs.pop("finalize_on_close", None)  # a gcsfs option epath passes
        super().__init__(auto_mkdir=True)

    @classmethod
    def _strip_protocol(cls, path):
        path = os.fspath(path)
        if path.startswith(cls.root):  # already mapped
            return path.rstrip("/") or "/"
        for prefix in ("gs://", "gcs://"):
            if path.startswith(prefix):
                path = path[len(prefix):]
        return os.path.join(cls.root, path.lstrip("/")).rstrip("/")

    def _unmap(self, path: str) -> str:
        """A local path back to ``bucket/key`` (gcsfs's names carry no protocol)."""
        return os.path.relpath(path, self.root) if path.startswith(self.root) else path

    def glob(self, path, **kwargs):
        # Only what goes out is renamed: fsspec's own walk/find/ls work on the local names.
        return [self._unmap(p) for p in super().glob(path, **kwargs)]

    def isdir(self, path):
        # A bucket has no directories, only key prefixes: any existing prefix is one.
        return os.path.isdir(self._strip_protocol(path))


def _object_path(root: str, bucket: str, name: str) -> pathlib.Path:
    return pathlib.Path(root, bucket, name)


def _metadata(bucket: str, name: str, path: pathlib.Path) -> dict:
    stat = path.stat()
    return {"kind": "storage#object", "bucket": bucket, "name": name,
            "generation": str(stat.st_mtime_ns), "metageneration": "1", "size": str(stat.st_size)}


class _Handler(http.server.BaseHTTPRequestHandler):
    """GCS's JSON API, the part TensorStore's ``gcs`` kvstore uses."""

    protocol_version = "HTTP/1.1"
    root = ""

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None,
               content_type: str = "application/json") -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: dict) -> None:
        self._reply(status, json.dumps(value).encode())

    def _parse(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
        return parts, query

    def _precondition_fails(self, path: pathlib.Path, query: dict) -> bool:
        generation = path.stat().st_mtime_ns if path.is_file() else 0
        if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != generation:
            return True
        return False

    def do_POST(self):  # media upload: /upload/storage/v1/b/<bucket>/o?uploadType=media&name=
        parts, query = self._parse()
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        if parts[1:6] != ["upload", "storage", "v1", "b", parts[5]] or "name" not in query:
            return self._json(400, {"error": f"unsupported upload {self.path}"})
        bucket, name = parts[5], query["name"]
        path = _object_path(self.root, bucket, name)
        if self._precondition_fails(path, query):
            return self._json(412, {"error": "precondition failed"})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.upload-{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._json(200, _metadata(bucket, name, path))

    def do_GET(self):
        parts, query = self._parse()
        # /storage/v1/b/<bucket>/o[/<name>]
        if parts[1:4] != ["storage", "v1", "b"] or len(parts) < 5:
            return self._json(400, {"error": f"unsupported request {self.path}"})
        bucket = parts[4]
        if len(parts) == 5:  # the bucket's metadata (orbax asks for its namespace kind)
            return self._json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket,
                                    "hierarchicalNamespace": {"enabled": False}})
        if parts[5] != "o":
            return self._json(400, {"error": f"unsupported request {self.path}"})
        if len(parts) == 6 or parts[6] == "":
            return self._list(bucket, query)
        name = "/".join(parts[6:])
        path = _object_path(self.root, bucket, name)
        if not path.is_file():
            return self._json(404, {"error": "not found"})
        if self._precondition_fails(path, query):
            return self._json(412, {"error": "precondition failed"})
        generation = str(path.stat().st_mtime_ns)
        if query.get("ifGenerationNotMatch") == generation:
            return self._reply(304, headers={"x-goog-generation": generation})
        if query.get("alt") != "media":
            return self._json(200, _metadata(bucket, name, path))
        data = path.read_bytes()
        headers = {"x-goog-generation": generation}
        status = 200
        if "Range" in self.headers:  # bytes=a-b
            first, _, last = self.headers["Range"].split("=", 1)[1].partition("-")
            start, end = int(first), (int(last) if last else len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._reply(status, data, headers, "application/octet-stream")

    def _list(self, bucket: str, query: dict) -> None:
        base = pathlib.Path(self.root, bucket)
        prefix = query.get("prefix", "")
        names = sorted(str(p.relative_to(base)) for p in base.rglob("*")
                       if p.is_file() and not p.name.startswith(".")) if base.is_dir() else []
        items = [_metadata(bucket, n, base / n) for n in names
                 if n.startswith(prefix) and n >= query.get("startOffset", "")
                 and (not query.get("endOffset") or n < query["endOffset"])]
        self._json(200, {"kind": "storage#objects", "items": items})

    def do_DELETE(self):
        parts, query = self._parse()
        bucket, name = parts[4], "/".join(parts[6:])
        path = _object_path(self.root, bucket, name)
        if not path.is_file():
            return self._json(404, {"error": "not found"})
        if self._precondition_fails(path, query):
            return self._json(412, {"error": "precondition failed"})
        path.unlink()
        self._reply(204)


def _clear_orbax_bucket_cache() -> None:
    """orbax caches bucket clients, which hold the server's address."""
    from orbax.checkpoint._src.path import gcs_utils

    gcs_utils.get_bucket.cache_clear()


@contextlib.contextmanager
def fake_gcs(root: str | os.PathLike, monkeypatch):
    """``gs://`` under ``root`` for epath, fsspec and TensorStore, while the context is open."""
    from etils.epath import backend
    registry = importlib.import_module("fsspec.registry")

    root = os.fspath(pathlib.Path(root).absolute())
    monkeypatch.setattr(FakeGCSFileSystem, "root", root)
    for protocol in ("gs", "gcs"):
        monkeypatch.setitem(registry._registry, protocol, FakeGCSFileSystem)
    backend.fsspec_backend._get_filesystem.cache_clear()
    handler = type("Handler", (_Handler,), {"root": root})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TENSORSTORE_GCS_HTTP_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("GOOGLE_AUTH_TOKEN_FOR_TESTING", "fake-token")
    # google-cloud-storage (orbax's bucket queries) talks to an emulator, without credentials.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    _clear_orbax_bucket_cache()
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()
        backend.fsspec_backend._get_filesystem.cache_clear()
