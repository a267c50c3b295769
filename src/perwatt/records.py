"""The records that move between stages: workload items, scores and request rows.

Every stage reads and writes these typed records, never loose dicts, so that a newcomer can
follow a request from the workload to the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["ok", "error", "timeout", "truncated"]
STATUSES: tuple[Status, ...] = ("ok", "error", "timeout", "truncated")


@dataclass(frozen=True)
class Example:
    """A solved example shown to a base model in a few-shot prompt; or a later turn of a
    conversation and the reply it is judged against (`Item.follow_ups`)."""

    question: str
    answer: str


@dataclass(frozen=True)
class Item:
    """One question of a workload, with everything needed to ask it and to check the answer.

    `question` already states the answer format. `metadata` is the source's own record (for
    reasoning-gym, the generated entry its verifier needs); it must be JSON-serialisable.
    `scorer` names the scorer that decides its answers (the workload's default unless the source
    names one).
    """

    item_id: str
    workload: str
    task: str
    domain: str
    question: str
    reference: str
    metadata: dict[str, Any] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    scorer: str = ""
    # A conversation's later user turns, each with the reply it is judged against: sent one by
    # one after the model's own answer to the one before (--task replay); unused otherwise.
    follow_ups: tuple[Example, ...] = ()


@dataclass(frozen=True)
class Score:
    """What a scorer concluded about one response (None: left for a judge to decide later)."""

    answer: str | None
    correct: bool | None
    score: float | None


@dataclass
class RequestRecord:
    """One row of `requests.parquet` (DESIGN.md, "A run directory").

    Times are seconds since the run started, on the monotonic clock. `correct` is True only
    for a complete answer (status `ok`) that its scorer accepted: the scoring layer decides it
    once (`scoring.verdict`), and every figure counts it as it stands.
    """

    run_id: str
    request_id: int
    model: str
    endpoint: str
    workload: str
    task: str
    domain: str
    item_id: str
    prompt_tokens: int | None
    completion_tokens: int | None
    t_scheduled: float
    t_sent: float
    t_first_token: float | None
    t_done: float
    ttft_s: float | None
    e2e_s: float
    tpot_s: float | None
    status: Status
    error: str | None
    finish_reason: str | None
    response_text: str
    answer: str | None
    reference: str
    correct: bool | None
    score: float | None
    energy_j: float | None = None
    energy_net_j: float | None = None
    energy_source: str = ""
    # Gaps between consecutive streamed chunks (inter-token latency), in seconds.
    itl_s: list[float] | None = None
    # Where the token counts came from: the server's `usage` ("usage"), the endpoint's own
    # tokenizer ("tokenizer:server"), the model's GGUF vocabulary ("tokenizer:gguf"), or nowhere
    # ("none": the counts are null). Never a count of streamed chunks (endpoints/tokenizer.py).
    token_count_source: str | None = None
    cached_tokens: int | None = None  # prompt tokens the server took from its prefix cache
    # The server's own timings (llama-server's `timings`), beside perwatt's client-side ones.
    server_prompt_ms: float | None = None
    server_predicted_ms: float | None = None
    # Why a request failed: connect | rate_limited | http | protocol | server | disconnected |
    # timeout | too_large (None when it did not); the HTTP status when one came back.
    error_kind: str | None = None
    http_status: int | None = None
    attempt: int | None = 1  # the k-th attempt at its item (--retries); 1 without retries
    # A later attempt at the item followed this one (--retries): the row's energy counts toward
    # its item's answer, its verdict does not (analysis/_columns.py folds it into the next).
    retried: bool = False
    # Its energy split at the first token: prefill (sent → first token) + decode (→ done).
    prefill_energy_j: float | None = None
    decode_energy_j: float | None = None
    # A call of a multi-turn task (--task): the task it belongs to and its turn (1, 2, ...);
    # None for a single-turn run. `tool_calls`: the tools this response called and what each
    # returned, as JSON (a list of `ToolRun`s), None when it called none.
    task_id: str | None = None
    turn: int | None = None
    tool_calls: str | None = None

    @classmethod
    def column_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


TaskKind = Literal["single", "retry", "tools", "replay"]
TASK_KINDS: tuple[TaskKind, ...] = ("single", "retry", "tools", "replay")
# How a task ended: solved; answered but wrong; out of turns (--max-turns) before an answer;
# a call failed (error or timeout, the run went on); answered but left unscored (a judge's).
TaskOutcome = Literal["solved", "wrong", "max_turns", "call_failed", "unscored"]


@dataclass(frozen=True)
class ToolRun:
    """One tool call a model made and what the harness answered, with its wall time."""

    call_id: str
    name: str
    arguments: str  # as the model sent them (JSON text, perhaps malformed)
    ok: bool
    result: str  # what went back to the model as the tool message
    error: str | None
    t_start: float
    t_end: float


@dataclass
class TaskRecord:
    """One row of `tasks.parquet`: a conversation of model calls with one verdict.

    The kernel counts a task run's answers in tasks, not calls: the columns that share a name
    with `RequestRecord`'s mean the same for the task as a whole (`t_sent` its first call's,
    `t_done` its last's, tokens summed over its calls, `correct` its verdict). Its energy is
    that of its calls, of the tools it ran and of the gaps between its calls (the harness
    scoring and building the next turn), each attributed exactly like a request's, so tasks
    overlapping under --concurrency never count a joule twice.
    """

    run_id: str
    task_id: str
    kind: str
    item_id: str
    workload: str
    task: str
    domain: str
    status: Status  # the last call's; "truncated" when out of turns
    outcome: str
    correct: bool | None
    answer: str | None
    reference: str
    n_calls: int
    n_tool_calls: int
    n_tool_errors: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    t_scheduled: float
    t_sent: float
    t_first_token: float | None
    t_done: float
    energy_j: float | None
    energy_net_j: float | None
    calls_energy_j: float | None
    tool_energy_j: float | None
    gap_energy_j: float | None
    tool_s: float
    gap_s: float
    http_status: int | None

    @classmethod
    def column_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
