"""The figures only a multi-turn run has: turns, tool calls, tokens and cached tokens per task.

A task run's accuracy, J/query, J/correct and correct/kJ are already per task — the kernel
counts its tasks as answers (`RunData.answer_columns`): task success rate, J per task, J per
solved task, solved tasks per kJ. What this adds, each a mean or share over the run's tasks
with a 95% interval from the same paired bootstrap over tasks (`_bootstrap.bootstrap_sums`):

| figure | definition |
|---|---|
| turns per task | Σ model calls / tasks |
| tool calls per task | Σ tool calls / tasks (and how many failed: unknown tool, bad input) |
| tokens per task | Σ (prompt + completion tokens) / tasks |
| cached-token share | Σ cached prompt tokens / Σ prompt tokens (the server's prefix cache) |
| harness share | Σ (tool + gap energy) / Σ task energy: what the joules between calls add |
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from perwatt.analysis._bootstrap import Estimate, bootstrap_sums, estimate, ratio
from perwatt.records import RequestRecord

UNDEFINED = Estimate(None)


@dataclass(frozen=True)
class TaskFigures:
    """What a task run adds to its summary (all empty for a single-turn run)."""

    kind: str = ""  # retry | tools ("" for a single-turn run)
    n_calls: int = 0
    n_tool_calls: int = 0
    n_tool_errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # solved, wrong, max_turns, ...
    turns_per_task: Estimate = UNDEFINED
    tool_calls_per_task: Estimate = UNDEFINED
    tokens_per_task: Estimate = UNDEFINED
    cached_token_share: Estimate = UNDEFINED
    harness_energy_share: Estimate = UNDEFINED


def _column(tasks: pa.Table, name: str) -> np.ndarray:
    return np.nan_to_num(tasks.column(name).to_numpy(zero_copy_only=False).astype(float))


def task_figures(tasks: pa.Table, *, resamples: int, seed: int) -> TaskFigures:
    """The figures of a (checked) tasks table, resampled over its tasks."""
    n = tasks.num_rows
    if n == 0:
        return TaskFigures(kind="")
    kinds = tasks.column("kind").to_pylist()
    calls = _column(tasks, "n_calls")
    tools = _column(tasks, "n_tool_calls")
    prompt = _column(tasks, "prompt_tokens")
    tokens = prompt + _column(tasks, "completion_tokens")
    cached = _column(tasks, "cached_tokens")
    harness = _column(tasks, "tool_energy_j") + _column(tasks, "gap_energy_j")
    energy = _column(tasks, "energy_j")
    ones = np.ones(n)
    columns = np.column_stack([ones, calls, tools, tokens, cached, prompt, harness, energy])
    point = columns.sum(axis=0)
    boot = bootstrap_sums(columns, resamples, seed) if resamples > 0 else None

    def share(num: int, den: int) -> Estimate:
        value = point[num] / point[den] if point[den] > 0 else None
        return estimate(value, None if boot is None else ratio(boot[:, num], boot[:, den]))

    outcomes: dict[str, int] = {}
    for outcome in tasks.column("outcome").to_pylist():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    has_prompt = tasks.column("prompt_tokens").null_count < n
    return TaskFigures(
        kind=kinds[0],
        n_calls=int(point[1]),
        n_tool_calls=int(point[2]),
        n_tool_errors=int(_column(tasks, "n_tool_errors").sum()),
        outcomes=outcomes,
        turns_per_task=share(1, 0),
        tool_calls_per_task=share(2, 0),
        tokens_per_task=share(3, 0) if has_prompt else UNDEFINED,
        cached_token_share=share(4, 5) if has_prompt else UNDEFINED,
        harness_energy_share=share(6, 7),
    )


@dataclass(frozen=True)
class TaskBar:
    """One stretch of a task on the run's clock: a model call (sent to done) or a tool the
    harness ran for it; the HTML report draws a task's bars on one row."""

    task_id: str
    kind: Literal["call", "tool"]
    start_s: float
    end_s: float
    label: str  # "turn 2: correct", "calculator: error: division by zero"
    state: Literal["correct", "incorrect", "failed", "tool", "unjudged"]


def task_timeline(records: Sequence[RequestRecord]) -> list[TaskBar]:
    """The calls and tool runs of a task run's rows, in order of time (empty for a single-turn
    run). What lies between a task's bars is its gaps."""
    bars: list[TaskBar] = []
    for r in records:
        if r.task_id is None:
            continue
        if r.status not in ("ok", "truncated"):
            state = "failed"
        elif r.correct is None:
            state = "unjudged"
        else:
            state = "correct" if r.correct else "incorrect"
        verdict = r.status if state == "failed" else state
        bars.append(TaskBar(r.task_id, "call", r.t_sent, r.t_done, f"turn {r.turn}: {verdict}",
                            state))  # fmt: skip
        for run in json.loads(r.tool_calls) if r.tool_calls else []:
            shown = run["result"] if run["ok"] else f"error: {run['error']}"
            bars.append(TaskBar(r.task_id, "tool", run["t_start"], run["t_end"],
                                f"{run['name']}: {shown}", "tool"))  # fmt: skip
    return sorted(bars, key=lambda b: (b.start_s, b.task_id))
