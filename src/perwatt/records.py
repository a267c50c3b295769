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

    @classmethod
    def column_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
