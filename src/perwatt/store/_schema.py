"""The tables of a run directory: their Arrow schemas and the records they hold.

`requests.parquet` holds `RequestRecord`s, `power.parquet` the energy timeline's `TimelineRow`s,
`items.parquet` the `Item`s of the run with the exact prompt each was sent, `scores.parquet`
how each row was re-scored. Reading checks a table against its schema, so a file of the wrong
shape is one clear error naming the file, never a traceback later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from perwatt.endpoints.server_metrics import ServerMetricsRow
from perwatt.energy.timeline import TimelineRow
from perwatt.errors import PerwattError
from perwatt.records import STATUSES, Example, Item, RequestRecord, TaskRecord

REQUEST_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("request_id", pa.int64()),
        ("model", pa.string()),
        ("endpoint", pa.string()),
        ("workload", pa.string()),
        ("task", pa.string()),
        ("domain", pa.string()),
        ("item_id", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("t_scheduled", pa.float64()),
        ("t_sent", pa.float64()),
        ("t_first_token", pa.float64()),
        ("t_done", pa.float64()),
        ("ttft_s", pa.float64()),
        ("e2e_s", pa.float64()),
        ("tpot_s", pa.float64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("finish_reason", pa.string()),
        ("response_text", pa.string()),
        ("answer", pa.string()),
        ("reference", pa.string()),
        ("correct", pa.bool_()),
        ("score", pa.float64()),
        ("energy_j", pa.float64()),
        ("energy_net_j", pa.float64()),
        ("energy_source", pa.string()),
        ("itl_s", pa.list_(pa.float64())),
        ("token_count_source", pa.string()),
        ("cached_tokens", pa.int64()),
        ("server_prompt_ms", pa.float64()),
        ("server_predicted_ms", pa.float64()),
        ("error_kind", pa.string()),
        ("http_status", pa.int64()),
        ("attempt", pa.int64()),
        ("retried", pa.bool_()),
        ("prefill_energy_j", pa.float64()),
        ("decode_energy_j", pa.float64()),
        ("task_id", pa.string()),
        ("turn", pa.int64()),
        ("tool_calls", pa.string()),
    ]
)
assert REQUEST_SCHEMA.names == RequestRecord.column_names()
# Columns a requests table must have; the others may be missing in runs written before they
# existed (they read as null).
REQUIRED_REQUEST_COLUMNS = ("run_id", "item_id", "status", "t_sent", "t_done", "correct")

# tasks.parquet: one row per task of a multi-turn run (`TaskRecord`).
TASK_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task_id", pa.string()),
        ("kind", pa.string()),
        ("item_id", pa.string()),
        ("workload", pa.string()),
        ("task", pa.string()),
        ("domain", pa.string()),
        ("status", pa.string()),
        ("outcome", pa.string()),
        ("correct", pa.bool_()),
        ("answer", pa.string()),
        ("reference", pa.string()),
        ("n_calls", pa.int64()),
        ("n_tool_calls", pa.int64()),
        ("n_tool_errors", pa.int64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("t_scheduled", pa.float64()),
        ("t_sent", pa.float64()),
        ("t_first_token", pa.float64()),
        ("t_done", pa.float64()),
        ("energy_j", pa.float64()),
        ("energy_net_j", pa.float64()),
        ("calls_energy_j", pa.float64()),
        ("tool_energy_j", pa.float64()),
        ("gap_energy_j", pa.float64()),
        ("tool_s", pa.float64()),
        ("gap_s", pa.float64()),
        ("http_status", pa.int64()),
    ]
)
assert TASK_SCHEMA.names == TaskRecord.column_names()

POWER_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),
        ("domain", pa.string()),
        ("energy_j", pa.float64()),
        ("power_w", pa.float64()),
        ("source", pa.string()),
    ]
)
assert POWER_SCHEMA.names == [f.name for f in dataclasses.fields(TimelineRow)]

# server_metrics.parquet: one row per scrape of the endpoint's /metrics (`ServerMetricsRow`).
SERVER_METRICS_SCHEMA = pa.schema(
    [
        ("t", pa.float64()),  # seconds since the run's start, the clock of the request rows
        ("software", pa.string()),  # llama.cpp | vLLM | SGLang
        ("requests_running", pa.float64()),  # in the batch (llama.cpp: slots processing)
        ("requests_waiting", pa.float64()),  # queued for a slot
        ("kv_cache_usage", pa.float64()),  # fraction 0..1, where the server reports it
        ("prompt_tokens_total", pa.float64()),  # counters since the server started
        ("generation_tokens_total", pa.float64()),
        ("cached_prompt_tokens_total", pa.float64()),
    ]
)
assert SERVER_METRICS_SCHEMA.names == [f.name for f in dataclasses.fields(ServerMetricsRow)]

ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("workload", pa.string()),
        ("task", pa.string()),
        ("domain", pa.string()),
        ("scorer", pa.string()),
        ("question", pa.string()),
        ("reference", pa.string()),
        # The exact request sent: {"api": "chat", "messages": [...]} or {"api": "completions",
        # "text": ..., "stop": [...]} (JSON).
        ("prompt", pa.string()),
        ("metadata", pa.string()),  # the source's own record (JSON), e.g. a verifier's entry
        ("examples", pa.string()),  # few-shot examples shown with it (JSON list)
    ]
)

SCORE_SCHEMA = pa.schema(
    [
        ("request_id", pa.int64()),
        ("item_id", pa.string()),
        ("scorer", pa.string()),
        ("answer", pa.string()),
        ("correct", pa.bool_()),
        ("score", pa.float64()),
        ("judge_model", pa.string()),
        ("judge_endpoint", pa.string()),
        ("judge_template", pa.string()),
        ("judge_prompt", pa.string()),
        ("judge_output", pa.string()),
        ("judge_verdict", pa.string()),
        ("judge_cached", pa.bool_()),
    ]
)


def records_table(records: Sequence[RequestRecord]) -> pa.Table:
    """requests.parquet's table, in the contract's column order and types."""
    columns = {name: [getattr(r, name) for r in records] for name in REQUEST_SCHEMA.names}
    return pa.table(columns, schema=REQUEST_SCHEMA)


def tasks_table(tasks: Sequence[TaskRecord]) -> pa.Table:
    """tasks.parquet's table, in the contract's column order and types."""
    columns = {name: [getattr(t, name) for t in tasks] for name in TASK_SCHEMA.names}
    return pa.table(columns, schema=TASK_SCHEMA)


def records_from_table(table: pa.Table) -> list[RequestRecord]:
    """The rows of a (checked) requests table as records; missing optional columns are None."""
    known = [n for n in REQUEST_SCHEMA.names if n in table.column_names]
    return [RequestRecord(**row) for row in table.select(known).to_pylist()]


def power_table(rows: Sequence[TimelineRow]) -> pa.Table:
    """power.parquet's table: one row per sample and domain."""
    columns = {name: [getattr(r, name) for r in rows] for name in POWER_SCHEMA.names}
    return pa.table(columns, schema=POWER_SCHEMA)


def server_metrics_table(rows: Sequence[ServerMetricsRow]) -> pa.Table:
    """server_metrics.parquet's table: one row per scrape."""
    columns = {name: [getattr(r, name) for r in rows] for name in SERVER_METRICS_SCHEMA.names}
    return pa.table(columns, schema=SERVER_METRICS_SCHEMA)


def items_table(items: Sequence[Item], prompts: Mapping[str, Any]) -> pa.Table:
    """items.parquet's table: each item with the request it was sent (`prompts[item_id]`, any
    dataclass or JSON-serialisable value)."""
    rows = []
    for item in items:
        prompt = prompts.get(item.item_id)
        if dataclasses.is_dataclass(prompt) and not isinstance(prompt, type):
            prompt = dataclasses.asdict(prompt)
        rows.append(
            {
                "item_id": item.item_id,
                "workload": item.workload,
                "task": item.task,
                "domain": item.domain,
                "scorer": item.scorer,
                "question": item.question,
                "reference": item.reference,
                "prompt": None if prompt is None else json.dumps(prompt, ensure_ascii=False),
                "metadata": json.dumps(item.metadata, ensure_ascii=False, default=str),
                "examples": json.dumps([dataclasses.asdict(e) for e in item.examples]),
            }
        )
    return pa.Table.from_pylist(rows, schema=ITEM_SCHEMA)


def items_from_table(table: pa.Table) -> list[Item]:
    """The items of a (checked) items table."""
    out = []
    for row in table.to_pylist():
        out.append(
            Item(
                item_id=row["item_id"],
                workload=row["workload"],
                task=row["task"],
                domain=row["domain"],
                question=row["question"] or "",
                reference=row["reference"] or "",
                metadata=json.loads(row["metadata"] or "{}"),
                examples=tuple(Example(**e) for e in json.loads(row["examples"] or "[]")),
                scorer=row["scorer"] or "",
            )
        )
    return out


def scores_table(details: Sequence[Any]) -> pa.Table:
    """scores.parquet's table from score details (dataclasses with SCORE_SCHEMA's fields)."""
    return pa.Table.from_pylist([dataclasses.asdict(d) for d in details], schema=SCORE_SCHEMA)


def check_table(
    table: pa.Table, schema: pa.Schema, path: Path, required: Sequence[str]
) -> pa.Table:
    """`table` cast to `schema` (missing optional columns added as null); a clear error naming
    `path` when a required column is missing or a column has a type that does not cast."""
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise PerwattError(f"{path}: not a perwatt table (no column {missing[0]!r})")
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise PerwattError(
                f"{path}: column {field.name!r} is {column.type}, expected {field.type}"
            ) from None
    return pa.table(columns, schema=schema)


def check_requests(table: pa.Table, path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """A requests table checked against the contract: schema, known statuses, and the rule that
    only a complete answer (status `ok`) can be correct.

    With `columns`, only those columns of the contract (in that order, `status` and `correct`
    added when not among them: the checks read them) are checked and returned; the caller
    checks the others' presence (`check_request_schema`)."""
    if columns is None:
        table = check_table(table, REQUEST_SCHEMA, path, REQUIRED_REQUEST_COLUMNS)
    else:
        names = list(dict.fromkeys([*columns, "status", "correct"]))
        schema = pa.schema([REQUEST_SCHEMA.field(name) for name in names])
        required = [name for name in REQUIRED_REQUEST_COLUMNS if name in names]
        table = check_table(table, schema, path, required)
    _check_verdicts(table, path, "request")
    return table


def check_tasks(table: pa.Table, path: Path) -> pa.Table:
    """A tasks table checked against the contract, with the same rules for statuses and
    verdicts as request rows."""
    table = check_table(table, TASK_SCHEMA, path, ("task_id", "item_id", "status", "correct"))
    _check_verdicts(table, path, "task")
    return table


def _check_verdicts(table: pa.Table, path: Path, what: str) -> None:
    """Known statuses only, and only a complete answer (status `ok`) can be correct."""
    status = table.column("status")
    unknown = pc.unique(pc.filter(status, pc.invert(pc.is_in(status, pa.array(STATUSES)))))
    if len(unknown):
        raise PerwattError(f"{path}: unknown {what} status {unknown[0].as_py()!r}")
    wrongly = pc.and_(pc.fill_null(table.column("correct"), False), pc.not_equal(status, "ok"))
    if pc.any(wrongly).as_py():
        row = pc.index(wrongly, True).as_py()
        raise PerwattError(
            f"{path}: row {row} is marked correct but its status is "
            f"{status[row].as_py()!r}; only a complete answer can be correct"
        )
