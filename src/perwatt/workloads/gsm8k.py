"""GSM8K (grade-school math word problems), test split: 1,319 problems with a numeric answer.

Schema (openai/gsm8k, config `main`, and the repository's test.jsonl): `question`, `answer` — a
worked solution whose last line is `#### <number>`. The reference is that number without
thousands separators; the response is scored by its final number (`scoring/numeric.py`).
"""

from __future__ import annotations

from pathlib import Path

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.scoring.numeric import reference_number
from perwatt.workloads.common import (
    HubDataset,
    SourceRow,
    WorkloadInfo,
    select_items,
    source_rows,
    text_field,
)

WORKLOAD = "gsm8k"
DOMAIN = "math word problems"
HUB = HubDataset("openai/gsm8k", "main", "test", "the GSM8K test split: test.jsonl")
INFO = WorkloadInfo(WORKLOAD, "grade-school math word problems", "numeric", "openai/gsm8k (test)")
ANSWER_FORMAT = (
    "Solve the problem step by step. Give the final answer on the last line, in the form "
    "'Answer: <number>'."
)


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` GSM8K problems in the seeded order."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item_from_row(row) for row in rows]
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed, example=_example)


def item_from_row(row: SourceRow) -> Item:
    """One problem; its answer must end in a `#### <number>` line."""
    question = text_field(row, "question")
    solution = text_field(row, "answer")
    marker = solution.rfind("####")
    reference = reference_number(solution[marker:]) if marker != -1 else None
    if reference is None:
        raise PerwattError(f"{row.where}: the answer has no final '#### <number>' line")
    return Item(
        item_id=f"{WORKLOAD}/{row.index:04d}",
        workload=WORKLOAD,
        task=WORKLOAD,
        domain=DOMAIN,
        question=f"{question}\n\n{ANSWER_FORMAT}",
        reference=reference,
        metadata={"question": question, "answer": solution},
    )


def _example(item: Item) -> Example:
    return Example(item.question, item.reference)
