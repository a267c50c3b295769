"""Issue 12's hostile-server acceptance test, through the real CLI: every response shape of
items 9-11 (malformed chunks, a 10 MB line, an in-stream error, 500, 429 with Retry-After, a JSON
body, a dropped stream, resets, and kept-alive connections closed while idle) at concurrency 1
and 16. The run completes (exit 0), each failed request is one error row with its reason, and
nothing prints a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile_server import CYCLE, SHAPES

from perwatt.store import read_run

SERVER = Path(__file__).with_name("hostile_server.py")
MARKER = "QUERY-SECRET-7f3a"


@contextmanager
def hostile(*args: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), *args],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def category(error: str | None) -> str:
    """The shape an error row came from: the one whose (longest) expected reason it contains."""
    if error is None:
        return "ok"
    matches = [n for n in CYCLE if SHAPES[n].kind and SHAPES[n].reason in error]
    assert matches, f"unexpected error text: {error}"
    return max(matches, key=lambda n: len(SHAPES[n].reason))


@pytest.mark.parametrize("concurrency", [1, 16])
def test_a_hostile_server_gives_one_error_row_per_failed_request(tmp_path, concurrency):
    limit = 2 * len(CYCLE)
    out = tmp_path / "run"
    with hostile("--idle-close", "0.1") as root:
        result = subprocess.run(
            [sys.executable, "-m", "perwatt", "run", "--endpoint", f"{root}/v1?k={MARKER}",
             "--model", "hostile", "--limit", str(limit), "--concurrency", str(concurrency),
             "--idle-seconds", "0.2", "--out", str(out)],
            capture_output=True, text=True, timeout=240,
            env={k: v for k, v in os.environ.items() if not k.endswith("API_KEY")},
        )  # fmt: skip
        with urllib.request.urlopen(f"{root}/__log", timeout=10) as response:
            log = json.load(response)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout

    rows = read_run(out).records()
    assert len(rows) == limit and len({r.request_id for r in rows}) == limit
    for r in rows:
        assert (r.status == "ok") == (r.error is None), r
        assert r.correct is not True or r.status == "ok"
        assert MARKER not in r.endpoint and "?k=***" in r.endpoint

    # Each prompt got one shape (its first arrival's; the warm-up repeats the first item, whose
    # shape is "ok"), so the rows must hold exactly one outcome per prompt, shape for shape.
    served = [e for e in log if e["event"] == "served"]
    shape_of = {e["prompt"]: e["shape"] for e in served}
    assert served[0]["shape"] == "ok"
    assert len(shape_of) == limit
    assert Counter(category(r.error) for r in rows) == Counter(shape_of.values())
    assert set(shape_of.values()) == set(CYCLE)  # every shape was served

    # The query string reached the server as a query, on the request path.
    assert all(e["path"] == f"/v1/chat/completions?k={MARKER}" for e in log)
    # Kept-alive connections closed while idle were dropped by the server, and retried: the only
    # `connect` rows are the prompts whose every attempt is reset.
    assert any(e["event"] == "idle_abort" for e in log)
    connect_rows = [r for r in rows if (r.error or "").startswith("could not reach")]
    assert len(connect_rows) == Counter(shape_of.values())["reset"]
