"""Mean batch size: the server's requests-running gauge averaged over the workload window, from
server_metrics.parquet into the kernel's summary, the terminal tables and the HTML timeline."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from conftest import record, write_run
from perwatt.analysis.metrics import mean_batch_size
from perwatt.analysis.report_data import build_report_data
from perwatt.analysis.summaries import compute_summaries
from perwatt.endpoints.server_metrics import ServerMetricsRow
from perwatt.energy.timeline import TimelineRow
from perwatt.files import write_table
from perwatt.report.html import build_html_report
from perwatt.report.terminal import latency_table, sweep_table
from perwatt.store import (
    POWER_FILE,
    SERVER_METRICS_FILE,
    ServerMetricsInfo,
    power_table,
    read_run,
    server_metrics_table,
)


def test_each_sample_holds_until_the_next_and_the_window_bounds_the_mean():
    # Window 1 → 3 s. Before it, 0 running; 4 from t=1 to t=2, 2 from t=2 on.
    t, running = [0.0, 1.0, 2.0, 3.5], [0.0, 4.0, 2.0, 0.0]
    assert mean_batch_size(t, running, [1.0, 1.5], [2.5, 3.0]) == pytest.approx(3.0)


def test_the_sample_before_the_window_gives_its_value_at_the_start():
    # Sampled at 0.5, 1.5, 2.5 (every second); window 1 → 3: 1 for 0.5 s, 3 for 1 s, 5 for 0.5 s.
    assert mean_batch_size([0.5, 1.5, 2.5], [1, 3, 5], [1.0], [3.0]) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("t", "running"),
    [([], []), ([5.0, 6.0], [2.0, 2.0]), ([1.5], [None])],
    ids=["no samples", "all after the window", "no value"],
)
def test_without_a_sample_in_the_window_there_is_no_figure(t, running):
    assert mean_batch_size(t, running, [1.0], [3.0]) is None


def _rows(run: str, concurrency: int, n: int = 8) -> list:
    """n one-second requests, `concurrency` at a time, starting at t=2."""
    return [record(run_id=run, request_id=k, item_id=f"i{k}", t_scheduled=2.0 + k // concurrency,
                   t_sent=2.0 + k // concurrency, t_first_token=2.1 + k // concurrency,
                   t_done=3.0 + k // concurrency, completion_tokens=10, correct=k % 2 == 0,
                   energy_j=1.0, energy_net_j=0.5)
            for k in range(n)]  # fmt: skip


def _with_power(path, end: float):
    """A 5 W power timeline over the run (write_run leaves power.parquet empty)."""
    rows = [TimelineRow(0.5 * k, "cpu", 2.5 * k, 5.0, "estimated:cputime")
            for k in range(int(end / 0.5) + 2)]  # fmt: skip
    write_table(path / POWER_FILE, power_table(rows))
    return path


def _scrapes(concurrency: int, end: float) -> list[ServerMetricsRow]:
    """Every 0.5 s from t=0: idle before the workload (t < 2), `concurrency` running in it."""
    out = []
    for k in range(int(end / 0.5) + 3):
        t = 0.5 * k
        running = float(concurrency) if 2.0 <= t < end else 0.0
        out.append(ServerMetricsRow(t, "llama.cpp", running, 0.0, None, 100.0 * k, 10.0 * k, 0.0))
    return out


@pytest.fixture
def sweep(tmp_path):
    runs = []
    for c in (1, 4):
        rows = _rows(f"c{c}", c)
        end = max(r.t_done for r in rows)
        path = _with_power(write_run(tmp_path / f"c{c}", rows, concurrency=c), end)
        write_table(path / SERVER_METRICS_FILE, server_metrics_table(_scrapes(c, end)))
        # The manifest records how the counters were scraped, as the runner does.
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["segments"] = [{"run_id": f"c{c}", "started": "", "t_start": 0.0,
                                 "server_metrics": ServerMetricsInfo(
                                     url="http://127.0.0.1:1/metrics", available=True,
                                     software="llama.cpp", interval_s=0.5,
                                     samples=len(_scrapes(c, end))).model_dump()}]  # fmt: skip
        (path / "manifest.json").write_text(json.dumps(manifest))
        runs.append(read_run(path))
    return runs


def test_the_summary_gives_each_load_levels_mean_batch_size(sweep):
    one, four = compute_summaries(sweep)
    assert one.mean_batch_size == pytest.approx(1.0)
    assert four.mean_batch_size == pytest.approx(4.0)


def test_a_run_without_server_metrics_has_none(tmp_path):
    run = read_run(write_run(tmp_path / "plain", _rows("plain", 1)))
    (summary,) = compute_summaries([run])
    assert summary.mean_batch_size is None


def test_terminal_tables_show_it(sweep):
    summaries = compute_summaries(sweep)
    for table in (latency_table(summaries), sweep_table(summaries)):
        console = Console(width=250, record=True)
        console.print(table)
        text = console.export_text()
        header = next(c for c in table.columns if c.header.startswith("batch"))
        assert list(header.cells) in (["1", "4"], ["4", "1"])
        assert "batch" in text


def test_html_power_timeline_draws_the_servers_batch_and_says_where_it_came_from(sweep):
    page = build_html_report(build_report_data(sweep, routing=False))
    power = page[page.index('id="power"') : page.index('id="samples"')]
    blocks = re.findall(r'data-figure="[^"]+">(.*?)</script>', power)
    figure = json.loads(blocks[-1])
    running = next(t for t in figure["data"] if t.get("name") == "server: requests running (batch)")
    assert running["yaxis"] == "y2" and max(running["y"]) == 4.0
    assert figure["layout"]["yaxis2"]["overlaying"] == "y"
    assert "mean batch size 4 over the workload window" in power
    assert "mean batch size 1 over the workload window" in power


def test_html_says_why_a_run_has_no_server_counters(tmp_path):
    run = read_run(_with_power(write_run(tmp_path / "plain", _rows("plain", 1)), 10.0))
    page = build_html_report(build_report_data([run], routing=False))
    assert "Server counters: none (not recorded" in page
