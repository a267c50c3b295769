"""SimpleQA: 4,326 short fact-seeking questions with one indisputable answer (OpenAI).

Schema (`simple_qa_test_set.csv`, and basicv8vc/SimpleQA on the hub): `metadata` (a Python dict
written as text: `topic`, `answer_type`, `urls`), `problem`, `answer`. The topic is the item's
domain, the answer type its task. Scored deterministically by normalised exact match
(`scoring/exact.py`); `perwatt score --scorer judge` grades it with an LLM judge instead, as the
SimpleQA paper does.
"""

from __future__ import annotations

import ast
from pathlib import Path

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.workloads.common import (
    HubDataset,
    SourceRow,
    WorkloadInfo,
    field,
    select_items,
    source_rows,
    text_field,
)

WORKLOAD = "simpleqa"
HUB = HubDataset("basicv8vc/SimpleQA", None, "test", "simple_qa_test_set.csv")
INFO = WorkloadInfo(WORKLOAD, "short factual questions", "exact", "basicv8vc/SimpleQA (test)")
ANSWER_FORMAT = (
    "Give only the final answer, as short as possible, on the last line, in the form "
    "'Answer: <answer>'."
)


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` SimpleQA questions in the seeded order."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item_from_row(row) for row in rows]
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed, example=_example)


def item_from_row(row: SourceRow) -> Item:
    """One question; its metadata text must be a dict literal with a topic."""
    raw = field(row, "metadata")
    try:
        meta = raw if isinstance(raw, dict) else ast.literal_eval(str(raw))
    except (ValueError, SyntaxError):
        meta = None
    if not isinstance(meta, dict):
        raise PerwattError(f"{row.where}: column 'metadata' is not a dict literal")
    problem = text_field(row, "problem")
    return Item(
        item_id=f"{WORKLOAD}/{row.index:04d}",
        workload=WORKLOAD,
        task=str(meta.get("answer_type") or "unknown"),
        domain=str(meta.get("topic") or "unknown"),
        question=f"{problem}\n\n{ANSWER_FORMAT}",
        reference=text_field(row, "answer"),
        metadata={"problem": problem, "urls": [str(u) for u in meta.get("urls") or []]},
    )


def _example(item: Item) -> Example:
    return Example(item.question, item.reference)
