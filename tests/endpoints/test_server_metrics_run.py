"""Server metrics in a real run: `perwatt run` on the managed llama-server (SmolLM2-135M, the
packaged model) at concurrency 1 and 4 scrapes its /metrics into server_metrics.parquet, the
summary gives each level's mean batch size, and the HTML timeline draws the counters. A user's
endpoint without /metrics runs all the same and the manifest says why there are none."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_server import MODEL, serve_in_thread
from rich.console import Console

from perwatt.analysis.summaries import compute_summaries
from perwatt.config import RunSpec
from perwatt.runner import run_model
from perwatt.store import read_run

PERWATT = [sys.executable, "-m", "perwatt"]
FAST = ["--idle-seconds", "1", "--max-tokens", "48"]


def perwatt(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERWATT_API_KEY": "sk-test-secret-never-written"}
    return subprocess.run([*PERWATT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sweep"
    result = perwatt("run", "--model", "smollm2-135m", "--limit", "8", "--concurrency", "1,4",
                     "--out", str(out), *FAST)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_server_metrics_cover_the_workload_of_each_level(sweep):
    for level, slots in (("c1", 4), ("c4", 4)):
        run = read_run(sweep / level)
        table = run.server_metrics()
        assert table is not None, f"{level}: no server_metrics.parquet"
        rows = table.to_pylist()
        assert {r["software"] for r in rows} == {"llama.cpp"}
        t = [r["t"] for r in rows]
        assert t == sorted(t)
        first = min(r.t_sent for r in run.records())
        last = max(r.t_done for r in run.records())
        inside = [r for r in rows if first <= r["t"] <= last]
        # Every 0.5 s over the workload (a scrape may wait for a decode step on 2 cores).
        assert len(inside) >= max(2, int((last - first) / 1.0)), (level, len(inside))
        assert all(0 <= r["requests_running"] <= slots for r in rows)
        # The server's own token counters grow over the run, and match the rows by the end.
        prompt = [r["prompt_tokens_total"] for r in rows]
        assert prompt == sorted(prompt) and prompt[-1] > prompt[0]
        info = run.manifest.segments[0].server_metrics
        assert info is not None and info.available and info.software == "llama.cpp"
        assert info.samples == len(rows) and "sk-test" not in info.model_dump_json()


@pytest.mark.slow
def test_the_summary_gives_the_mean_batch_size_per_load_level(sweep):
    one, four = (compute_summaries([read_run(sweep / level)])[0] for level in ("c1", "c4"))
    stored = {level: json.loads((sweep / level / "summary.json").read_text())
              for level in ("c1", "c4")}  # fmt: skip
    assert stored["c1"]["mean_batch_size"] == pytest.approx(one.mean_batch_size)
    assert stored["c4"]["mean_batch_size"] == pytest.approx(four.mean_batch_size)
    assert one.mean_batch_size is not None and 0.5 <= one.mean_batch_size <= 1.0 + 1e-9
    assert four.mean_batch_size is not None and four.mean_batch_size > 1.5
    print(f"mean batch size: c=1 {one.mean_batch_size:.2f}, c=4 {four.mean_batch_size:.2f}")


@pytest.mark.slow
def test_the_html_report_draws_the_servers_counters(sweep, tmp_path):
    page = tmp_path / "report.html"
    result = perwatt("report", str(sweep / "c1"), str(sweep / "c4"), "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "server: requests running (batch)" in html
    assert "mean batch size" in html and "Server counters (orange, right axis): llama.cpp" in html


@pytest.mark.slow
def test_terminal_report_shows_the_batch_column(sweep):
    result = perwatt("report", str(sweep / "c4"))
    assert result.returncode == 0, result.stderr
    assert "batch" in result.stdout


def test_an_endpoint_without_metrics_runs_and_the_manifest_says_why(tmp_path):
    """A user's OpenAI-compatible endpoint with no /metrics (404): the run completes, there is
    no server_metrics.parquet, and the manifest records that and why."""
    with serve_in_thread() as server:
        spec = RunSpec(models=(MODEL,), endpoint=f"http://127.0.0.1:{server.port}/replay/"
                       "ollama_chat/v1", limit=3, idle_seconds=0, out=tmp_path / "run")  # fmt: skip
        outcome = run_model(spec, MODEL, Console(file=io.StringIO()))
    assert outcome.summary.n_requests == 3 and outcome.summary.mean_batch_size is None
    run = read_run(tmp_path / "run")
    assert run.server_metrics() is None
    assert not (tmp_path / "run" / "server_metrics.parquet").exists()
    segment = run.manifest.segments[0]
    assert segment.server_metrics is not None and not segment.server_metrics.available
    assert "answered HTTP 404" in segment.server_metrics.reason
    assert segment.server is not None and segment.server.software == ""
    assert segment.server.software_evidence == "no /metrics names and not Ollama"
