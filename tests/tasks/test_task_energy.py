"""A task's energy adds up, and tasks overlapping in time never count a joule twice.

On a recorded power trace (the timeline of a real managed run, tests/fixtures/runs/), two
tasks of three calls each overlap; their calls, tool runs and gaps are attributed in one
exact split (what the runner does at finalize), and the task rows are built from that.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import record
from perwatt.energy.attribution import attribute
from perwatt.energy.timeline import PowerTimeline, TimelineRow
from perwatt.records import ToolRun
from perwatt.tasks import build_tasks, group_calls, task_spans, whole_tasks

TRACE = Path(__file__).parent.parent / "fixtures" / "runs" / "before-issue-13" / "power.parquet"


@pytest.fixture(scope="module")
def timeline() -> PowerTimeline:
    rows = [TimelineRow(**row) for row in pq.read_table(TRACE).to_pylist()]
    return PowerTimeline.from_rows(rows)


def _tool(call_id: str, start: float, end: float, ok: bool = True) -> dict:
    return ToolRun(call_id, "calculator", '{"expression": "6*7"}', ok, "42",
                   None if ok else "error", start, end).__dict__  # fmt: skip


def _task(task_id: str, t0: float, tools: bool) -> list:
    """Three calls of 4 s with 1 s between them; with `tools`, a 0.5 s tool run in each gap."""
    calls = []
    for turn in range(1, 4):
        sent = t0 + 5.0 * (turn - 1)
        runs = [_tool(f"{task_id}-{turn}", sent + 4.2, sent + 4.7)] if tools and turn < 3 else []
        calls.append(record(
            item_id=task_id, task_id=task_id, turn=turn, t_sent=sent, t_first_token=sent + 0.5,
            t_done=sent + 4.0, retried=turn < 3, correct=turn == 3 and not tools,
            tool_calls=json.dumps(runs) if runs else None,
        ))  # fmt: skip
    return calls


def _attribute(timeline: PowerTimeline, records: list, idle_w: float = 0.0):
    tasks = group_calls(records)
    spans = task_spans(tasks)
    n = len(records)
    result = attribute(
        timeline.combined(),
        [(r.t_sent, r.t_done) for r in records] + [(s.start, s.end) for s in spans],
        idle_power_w=idle_w,
    )
    for r, gross, net in zip(records, result.gross_j[:n], result.net_j[:n], strict=True):
        r.energy_j, r.energy_net_j = float(gross), float(net)
    rows = build_tasks("run", "tools", tasks, spans, result.gross_j[n:].tolist(),
                       result.net_j[n:].tolist())  # fmt: skip
    return rows, spans, result


@pytest.mark.parametrize("tools", [False, True])
def test_overlapping_tasks_share_every_joule_once(timeline, tools):
    # Task b starts 2 s after task a: their calls overlap for most of both tasks.
    records = _task("a", 10.0, tools) + _task("b", 12.0, tools)
    rows, spans, result = _attribute(timeline, records, idle_w=1.5)
    a, b = rows
    for task in rows:
        parts = task.calls_energy_j + task.tool_energy_j + task.gap_energy_j
        assert task.energy_j == pytest.approx(parts, abs=1e-9)
        assert task.n_calls == 3
    # Every joule of the trace is in one task or unattributed, exactly.
    assert a.energy_j + b.energy_j + result.unattributed_j == pytest.approx(
        result.total_j, abs=1e-9
    )
    # A per-task window (the whole-device counter between a task's start and end, the
    # reference harness's agentic mode) counts the overlap twice.
    windows = sum(timeline.energy_between(t.t_sent, t.t_done) for t in rows)
    covered = timeline.energy_between(min(t.t_sent for t in rows), max(t.t_done for t in rows))
    assert windows > covered + 1.0
    assert a.energy_j + b.energy_j == pytest.approx(covered, abs=1e-9)
    if tools:
        assert a.n_tool_calls == 2 and a.tool_s == pytest.approx(1.0)
        assert a.tool_energy_j > 0 and a.gap_energy_j > 0
        assert {s.kind for s in spans} == {"tool", "gap"}
    else:
        assert a.tool_energy_j == 0 and a.gap_s == pytest.approx(2.0)
        assert a.outcome == "solved" and a.correct


def test_a_task_out_of_turns_while_calling_tools_failed():
    calls = _task("a", 0.0, tools=True)
    calls[-1].tool_calls = json.dumps([_tool("a-3", 14.2, 14.6, ok=False)])
    calls[-1].correct = None
    (task,) = build_tasks("run", "tools", group_calls(calls), [], [], [])
    assert task.outcome == "max_turns" and task.status == "truncated" and task.correct is False
    assert task.n_tool_calls == 3 and task.n_tool_errors == 1
    assert task.t_done == pytest.approx(14.6)  # its last tool ran after its last call


def test_a_resume_keeps_whole_tasks_only():
    whole = _task("a", 0.0, tools=False)
    cut = _task("b", 20.0, tools=False)[:2]  # a crash before its last call reached the disk
    single = [record(item_id="c")]
    kept = whole_tasks(whole + cut + single)
    assert [r.item_id for r in kept] == ["a", "a", "a", "c"]


def test_spans_fill_a_task_between_its_calls_exactly():
    calls = _task("a", 0.0, tools=True)
    spans = task_spans(group_calls(calls))
    busy = sum(c.t_done - c.t_sent for c in calls) + sum(s.end - s.start for s in spans)
    assert busy == pytest.approx(calls[-1].t_done - calls[0].t_sent)
    starts = sorted([(c.t_sent, c.t_done) for c in calls] + [(s.start, s.end) for s in spans])
    assert all(np.isclose(x[1], y[0]) for x, y in itertools.pairwise(starts))
