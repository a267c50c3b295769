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
    """A solved example shown to a base model in a few-shot prompt."""

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
    # Where the token counts came from: the server's `usage` ("usage"), the model's tokenizer
    # ("tokenizer") or a count of streamed chunks ("chunks", an approximation).
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

    @classmethod
    def column_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
