"""Recognising a user's endpoint: by its /metrics names, or as Ollama by its own answers
(its root text and /api/version, served here by a real HTTP server on loopback)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from perwatt.endpoints.server_software import (
    ServerIdentity,
    identify_server,
    ollama_version,
    root_url,
)


def _serve(routes: dict[str, tuple[int, str, bytes]]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = routes.get(self.path, (404, "text/plain", b"404 page not found"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ollama() -> Iterator[str]:
    # Ollama's answers (server/routes.go): the root's plain text, /api/version's JSON.
    yield from _serve({
        "/": (200, "text/plain; charset=utf-8", b"Ollama is running"),
        "/api/version": (200, "application/json; charset=utf-8",
                         json.dumps({"version": "0.11.4"}).encode()),
    })  # fmt: skip


@pytest.fixture
def plain() -> Iterator[str]:
    yield from _serve({"/": (200, "text/html", b"<html>an OpenAI-compatible proxy</html>")})


def test_ollama_is_recognised_with_its_version(ollama):
    identity = identify_server(ollama)
    assert identity == ServerIdentity("Ollama", "0.11.4", "its root and /api/version")
    assert identity.describe() == "Ollama 0.11.4"


def test_metrics_names_decide_first(ollama):
    identity = identify_server(ollama, metrics_software="vLLM")
    assert identity.software == "vLLM" and identity.describe() == "vLLM"


def test_an_unknown_server_is_recorded_as_not_recognised(plain):
    identity = identify_server(plain)
    assert identity.software == "" and identity.describe() == ""
    assert "not Ollama" in identity.evidence


def test_an_endpoint_that_does_not_answer_is_not_recognised_and_no_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    identity = identify_server(f"http://127.0.0.1:{port}/v1", timeout_s=1.0)
    assert identity.software == "" and "did not answer" in identity.evidence


def test_ollama_needs_its_root_text():
    assert ollama_version("Ollama is running", {"version": "0.5.1"}) == "0.5.1"
    assert ollama_version("Ollama is running", None) == ""
    assert ollama_version("llama.cpp server", {"version": "0.5.1"}) is None


@pytest.mark.parametrize(
    ("base", "root"),
    [("http://h:11434/v1", "http://h:11434"), ("http://k@h:1/v1/?q=1", "http://h:1"),
     ("http://h:8000", "http://h:8000")],
)  # fmt: skip
def test_root_url(base, root):
    assert root_url(base) == root
