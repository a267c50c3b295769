"""MATH-500: 500 competition problems (Lightman et al.'s subset of MATH), LaTeX answers.

Schema (HuggingFaceH4/MATH-500, test.jsonl): `problem`, `solution`, `answer`, `subject`, `level`
(1-5), `unique_id` (e.g. "test/precalculus/807.json"). The reference is `answer`; the response's
last `\\boxed{}` is compared with it symbolically (`scoring/mathexpr.py`). Items are grouped by
subject (domain) and level (task).
"""

from __future__ import annotations

from pathlib import Path

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
    text_field,
)

WORKLOAD = "math500"
HUB = HubDataset("HuggingFaceH4/MATH-500", None, "test", "MATH-500's test.jsonl")
INFO = WorkloadInfo(
    WORKLOAD, "competition math, LaTeX answers", "math", "HuggingFaceH4/MATH-500 (test)"
)
ANSWER_FORMAT = "Solve the problem step by step, and put your final answer within \\boxed{}."


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` MATH-500 problems in the seeded order."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item_from_row(row) for row in rows]
    check_unique_ids(items, rows)
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed, example=_example)


def item_from_row(row: SourceRow) -> Item:
    """One problem, identified by its `unique_id`."""
    problem = text_field(row, "problem")
    level = field(row, "level")
    if isinstance(level, bool) or not isinstance(level, int | str) or not str(level).isdigit():
        raise PerwattError(f"{row.where}: column 'level' should be a number from 1 to 5")
    return Item(
        item_id=f"{WORKLOAD}/{text_field(row, 'unique_id')}",
        workload=WORKLOAD,
        task=f"level {level}",
        domain=text_field(row, "subject"),
        question=f"{problem}\n\n{ANSWER_FORMAT}",
        reference=text_field(row, "answer"),
        metadata={
            "problem": problem,
            "level": int(level),
            "solution": str(row.data.get("solution") or ""),
        },
    )


def _example(item: Item) -> Example:
    return Example(item.question, f"\\boxed{{{item.reference}}}")
