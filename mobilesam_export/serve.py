"""Serve a web bundle with the headers that enable WASM threads (cross-origin isolation):
`Cross-Origin-Opener-Policy: same-origin`, `Cross-Origin-Embedder-Policy: require-corp`."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
              ".json": "application/json", ".onnx": "application/octet-stream",
              ".html": "text/html; charset=utf-8", ".png": "image/png", ".jpg": "image/jpeg"}


class BundleHandler(SimpleHTTPRequestHandler):
    """Static files of one folder, isolation headers on every answer, no caching; `extra` maps
    URL paths to in-memory (content type, bytes) pages (the parity driver's harness)."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    extra: dict[str, tuple[str, bytes]] = {}
    isolate = True
    quiet = True

    def end_headers(self) -> None:
        if self.isolate:
            for k, v in ISOLATION_HEADERS.items():
                self.send_header(k, v)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path in self.extra:
            ctype, body = self.extra[path]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)


def make_server(bundle: str | Path, host: str = "127.0.0.1", port: int = 8000, isolate: bool = True,
                extra: dict[str, tuple[str, bytes]] | None = None,
                quiet: bool = True) -> ThreadingHTTPServer:
    """An HTTP server for `bundle` (port 0 picks a free port: see server.server_address)."""
    folder = Path(bundle)
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"{folder} is not a bundle folder (no manifest.json); export one with "
                                f"`mobilesam-export export --format web`")
    if not (folder / "index.html").is_file():
        raise ValueError(f"{folder} is not a web bundle (no index.html): export with --format web")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    handler = type("Handler", (BundleHandler,), {"extra": dict(extra or {}), "isolate": isolate,
                                                 "quiet": quiet})
    return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(folder)))


def start_background(bundle: str | Path, **kwargs) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns (server, base URL). Stop with server.shutdown()."""
    server = make_server(bundle, port=kwargs.pop("port", 0), **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True, name="mobilesam-serve").start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/"


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (the `mobilesam-export serve` command)."""
    server = make_server(bundle, host, port, quiet=False)
    h, p = server.server_address[:2]
    print(f"serving {bundle} at http://{h}:{p}/ (cross-origin isolated: WASM threads on); Ctrl-C stops")
    try:
        server.serve_forever()
    finally:
        server.server_close()
