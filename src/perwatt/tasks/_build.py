"""A task's row from its calls' rows: the stretches of its time that are not model calls, and
the `TaskRecord` that sums it all up. Pure functions over records, used at finalize.

A task's time, from its first call's send to its end, is cut into its calls (request rows),
the tools the harness ran for it, and the gaps between (scoring an answer, building the next
turn). The runner attributes energy to all three like to requests — one exact split of the
metered energy over everything in flight — so the task's energy is the sum of its pieces, and
tasks that overlap under --concurrency share each slice instead of each counting it whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from perwatt.records import RequestRecord, TaskRecord, ToolRun


@dataclass(frozen=True)
class TaskSpan:
    """A stretch of one task's time that is not a model call."""

    task: int  # index of the task (in `group_calls` order)
    kind: Literal["tool", "gap"]
    start: float
    end: float


def group_calls(records: Sequence[RequestRecord]) -> list[list[RequestRecord]]:
    """The call rows of each task, tasks in order of first appearance, calls in turn order."""
    tasks: dict[str, list[RequestRecord]] = {}
    for record in records:
        if record.task_id is not None:
            tasks.setdefault(record.task_id, []).append(record)
    return [sorted(calls, key=lambda r: r.turn or 0) for calls in tasks.values()]


def whole_tasks(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """The checkpointed rows without those of tasks cut short by a crash: a task's rows are
    queued in turn order, so one whose last call (the one no later call followed) is on disk
    is on disk whole; the others are dropped and their tasks run again. Single-turn rows are
    all kept."""
    finished = {r.task_id for r in records if r.task_id is not None and not r.retried}
    return [r for r in records if r.task_id is None or r.task_id in finished]


def tool_runs(record: RequestRecord) -> list[ToolRun]:
    """The tools a call's response asked for and what the harness answered (its column)."""
    if not record.tool_calls:
        return []
    return [ToolRun(**run) for run in json.loads(record.tool_calls)]


def task_spans(tasks: Sequence[Sequence[RequestRecord]]) -> list[TaskSpan]:
    """Every task's tool and gap stretches: after each call, until the next call is sent (or,
    after the last call, until the last tool it asked for has run)."""
    spans: list[TaskSpan] = []
    for index, calls in enumerate(tasks):
        for k, call in enumerate(calls):
            runs = tool_runs(call)
            start = call.t_done
            if k + 1 < len(calls):
                end = calls[k + 1].t_sent
            else:
                end = max([start, *(run.t_end for run in runs)])
            t = start
            for run in runs:
                a, b = min(max(run.t_start, t), end), min(max(run.t_end, t), end)
                if a > t:
                    spans.append(TaskSpan(index, "gap", t, a))
                if b > a:
                    spans.append(TaskSpan(index, "tool", a, b))
                t = max(t, b)
            if end > t:
                spans.append(TaskSpan(index, "gap", t, end))
    return spans


def _sum(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def build_tasks(
    run_id: str,
    kind: str,
    tasks: Sequence[Sequence[RequestRecord]],
    spans: Sequence[TaskSpan],
    span_energy_j: Sequence[float],
    span_net_j: Sequence[float],
) -> list[TaskRecord]:
    """One `TaskRecord` per task, from its call rows (energy already attributed) and the
    energy attributed to its spans (in `spans` order)."""
    tool_j = [0.0] * len(tasks)
    gap_j = [0.0] * len(tasks)
    tool_s = [0.0] * len(tasks)
    gap_s = [0.0] * len(tasks)
    net = [0.0] * len(tasks)
    for span, gross, span_net in zip(spans, span_energy_j, span_net_j, strict=True):
        if span.kind == "tool":
            tool_j[span.task] += gross
            tool_s[span.task] += span.end - span.start
        else:
            gap_j[span.task] += gross
            gap_s[span.task] += span.end - span.start
        net[span.task] += span_net
    out = []
    for index, calls in enumerate(tasks):
        first, last = calls[0], calls[-1]
        runs = [run for call in calls for run in tool_runs(call)]
        out_of_turns = bool(tool_runs(last)) and last.status == "ok"
        if last.status in ("error", "timeout"):
            outcome = "call_failed"
        elif out_of_turns:
            outcome = "max_turns"
        elif last.correct is None:
            outcome = "unscored"
        else:
            outcome = "solved" if last.correct else "wrong"
        calls_j = sum(c.energy_j or 0.0 for c in calls)
        energy = calls_j + tool_j[index] + gap_j[index]
        out.append(
            TaskRecord(
                run_id=run_id,
                task_id=first.task_id or first.item_id,
                kind=kind,
                item_id=first.item_id,
                workload=first.workload,
                task=first.task,
                domain=first.domain,
                status="truncated" if out_of_turns else last.status,
                outcome=outcome,
                correct=False if out_of_turns else last.correct,
                answer=None if out_of_turns else last.answer,
                reference=first.reference,
                n_calls=len(calls),
                n_tool_calls=len(runs),
                n_tool_errors=sum(not run.ok for run in runs),
                prompt_tokens=_sum([c.prompt_tokens for c in calls]),
                completion_tokens=_sum([c.completion_tokens for c in calls]),
                cached_tokens=_sum([c.cached_tokens for c in calls]),
                t_scheduled=first.t_scheduled,
                t_sent=first.t_sent,
                t_first_token=first.t_first_token,
                t_done=max([last.t_done, *(run.t_end for run in tool_runs(last))]),
                energy_j=energy,
                energy_net_j=sum(c.energy_net_j or 0.0 for c in calls) + net[index],
                calls_energy_j=calls_j,
                tool_energy_j=tool_j[index],
                gap_energy_j=gap_j[index],
                tool_s=tool_s[index],
                gap_s=gap_s[index],
                http_status=last.http_status,
            )
        )
    return out
