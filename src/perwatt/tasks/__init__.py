"""Multi-turn tasks: a conversation of model calls with one verdict (--task retry|tools).

`run_task` drives one task against the server (`_driver`); `group_calls`, `task_spans` and
`build_tasks` turn a run's call rows into its tasks table at finalize (`_build`); the tools a
model may call live in `_tools`.
"""

from perwatt.tasks._build import TaskSpan, build_tasks, group_calls, task_spans, whole_tasks
from perwatt.tasks._driver import (
    FEEDBACK,
    UNANSWERED,
    TaskCall,
    check_kind,
    run_task,
    task_prompt,
    tool_runs_json,
    with_feedback,
)

__all__ = [
    "FEEDBACK",
    "UNANSWERED",
    "TaskCall",
    "TaskSpan",
    "build_tasks",
    "check_kind",
    "group_calls",
    "run_task",
    "task_prompt",
    "task_spans",
    "tool_runs_json",
    "whole_tasks",
    "with_feedback",
]
