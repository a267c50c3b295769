"""MMLU-Pro: 12,032 ten-option multiple-choice questions over 14 subjects (TIGER-Lab).

Schema (TIGER-Lab/MMLU-Pro, test split, Parquet): `question_id`, `question`, `options` (a list
of up to ten strings), `answer` (the letter), `answer_index`, `cot_content`, `category`
(e.g. "law": the item's domain), `src` (the original source: the item's task). The response is
scored by the letter it gives (`scoring/choice.py`).
"""

from __future__ import annotations

from pathlib import Path

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.workloads.choices import LETTERS, format_question
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

WORKLOAD = "mmlu-pro"
HUB = HubDataset("TIGER-Lab/MMLU-Pro", None, "test", "MMLU-Pro's test split as Parquet or JSONL")
INFO = WorkloadInfo(
    WORKLOAD, "ten-option multiple choice, 14 subjects", "choice", "TIGER-Lab/MMLU-Pro (test)"
)


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` MMLU-Pro questions in the seeded order (all subjects mixed)."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item_from_row(row) for row in rows]
    check_unique_ids(items, rows)
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed, example=_example)


def item_from_row(row: SourceRow) -> Item:
    """One question; its `answer` letter must agree with `answer_index` and the options."""
    question = text_field(row, "question")
    options = field(row, "options")
    if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
        raise PerwattError(f"{row.where}: column 'options' should be a list of strings")
    if len(options) > len(LETTERS):
        raise PerwattError(f"{row.where}: {len(options)} options; at most {len(LETTERS)} supported")
    letter = text_field(row, "answer").upper()
    index = field(row, "answer_index")
    valid = LETTERS[: len(options)]
    if letter not in valid or isinstance(index, bool) or index != valid.index(letter):
        raise PerwattError(
            f"{row.where}: answer {letter!r} and answer_index {index!r} do not name the same "
            f"one of {len(options)} options"
        )
    return Item(
        item_id=f"{WORKLOAD}/{text_field(row, 'question_id')}",
        workload=WORKLOAD,
        task=text_field(row, "src"),
        domain=text_field(row, "category"),
        question=format_question(question, options),
        reference=letter,
        metadata={"options": [o.strip() for o in options], "answer_index": index},
    )


def _example(item: Item) -> Example:
    return Example(item.question, item.reference)
