"""WildChat: real user conversations with ChatGPT (AI2), judged pairwise against ChatGPT's reply.

Schema (allenai/WildChat-1M, Parquet): `conversation_hash`, `model`, `timestamp`, `conversation`
(a list of turns, each with `role`, `content`, `language`, `toxic`, `redacted`, ...), `turn`,
`language`, `openai_moderation`, `detoxify_moderation`, `toxic`, `redacted`, ... (the older
allenai/WildChat names the id `conversation_id`).

Each item is a conversation's first user turn; the reference is the assistant's first reply
(the baseline the model is compared with). Its later exchanges are the item's `follow_ups`, which
`--task replay` sends turn by turn after the model's own answers (each judged against ChatGPT's
reply to that turn, the task on its last). Only English conversations that are neither toxic nor
redacted are used. There is no single right answer, so the workload is judge-scored: an LLM judge
compares the model's response with the baseline in both orders (`perwatt score RUN_DIR
--judge-model ...`); at least as good as the baseline counts as correct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.workloads.common import (
    HubDataset,
    SourceRow,
    WorkloadInfo,
    check_unique_ids,
    field,
    select_items,
    source_rows,
)

WORKLOAD = "wildchat"
DOMAIN = "chat"
LANGUAGE = "English"
HUB = HubDataset(
    "allenai/WildChat-1M", None, "train", "a Parquet shard of WildChat-1M", streaming=True
)
INFO = WorkloadInfo(
    WORKLOAD,
    "real chat requests, compared with ChatGPT's reply",
    "judge-pairwise",
    "allenai/WildChat-1M (train)",
)


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` usable conversations in the seeded order."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    kept = [(item, row) for row in rows if (item := item_from_row(row)) is not None]
    check_unique_ids([i for i, _ in kept], [r for _, r in kept])
    return select_items([i for i, _ in kept], workload=WORKLOAD, limit=limit, seed=seed)


def item_from_row(row: SourceRow) -> Item | None:
    """The first exchange of one conversation, or None when it is not used (language, toxic,
    redacted, or no user turn answered by the assistant)."""
    conversation = field(row, "conversation")
    if not isinstance(conversation, list) or not all(isinstance(t, dict) for t in conversation):
        raise PerwattError(f"{row.where}: column 'conversation' should be a list of turns")
    for turn in conversation[:2]:
        if "role" not in turn or "content" not in turn:
            raise PerwattError(f"{row.where}: a turn of 'conversation' lacks 'role' or 'content'")
    conversation_id = row.data.get("conversation_hash") or row.data.get("conversation_id")
    if not conversation_id:
        raise PerwattError(f"{row.where}: no column 'conversation_hash' (or 'conversation_id')")
    if not _usable(row.data, conversation):
        return None
    question, reply = (str(t["content"]).strip() for t in conversation[:2])
    return Item(
        follow_ups=_follow_ups(conversation[2:]),
        item_id=f"{WORKLOAD}/{conversation_id}",
        workload=WORKLOAD,
        task=WORKLOAD,
        domain=DOMAIN,
        question=question,
        reference=reply,
        metadata={
            "conversation_id": str(conversation_id),
            "baseline_model": str(row.data.get("model") or ""),
            "language": str(row.data.get("language") or ""),
            "turns": int(row.data.get("turn") or 0),
        },
    )


def _follow_ups(rest: list[dict[str, Any]]) -> tuple[Example, ...]:
    """The later exchanges (a user turn, then the assistant's reply it is judged against) for
    --task replay, up to the first that is not a usable pair (toxic, redacted, out of order)."""
    out = []
    for user, reply in zip(rest[::2], rest[1::2], strict=False):
        if user.get("role") != "user" or reply.get("role") != "assistant":
            break
        if any(t.get("toxic") or t.get("redacted") for t in (user, reply)):
            break
        question, answer = (str(t.get("content") or "").strip() for t in (user, reply))
        if not question or not answer:
            break
        out.append(Example(question=question, answer=answer))
    return tuple(out)


def _usable(data: dict[str, Any], conversation: list[dict[str, Any]]) -> bool:
    if data.get("language") != LANGUAGE or data.get("toxic") or data.get("redacted"):
        return False
    if len(conversation) < 2:
        return False
    first, second = conversation[0], conversation[1]
    if first.get("role") != "user" or second.get("role") != "assistant":
        return False
    if any(t.get("toxic") or t.get("redacted") for t in (first, second)):
        return False
    return bool(
        str(first.get("content") or "").strip() and str(second.get("content") or "").strip()
    )
