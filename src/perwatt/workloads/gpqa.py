"""GPQA diamond: 198 graduate-level multiple-choice questions in physics, chemistry and biology.

Schema (Idavidrein/gpqa, config `gpqa_diamond`; the same columns as `gpqa_diamond.csv`):
`Question`, `Correct Answer`, `Incorrect Answer 1`..`3`, `Subdomain`, `High-level domain`,
`Record ID` and some thirty validation columns. The four options are shuffled with a random
generator seeded by the workload seed and the record id (so an item's order does not depend on
which other items are loaded) and the correct letter is recorded as the reference.
"""

from __future__ import annotations

import random
from pathlib import Path

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.workloads.choices import LETTERS, format_question
from perwatt.workloads.common import (
    HubDataset,
    SourceRow,
    WorkloadInfo,
    check_unique_ids,
    select_items,
    source_rows,
    text_field,
)

WORKLOAD = "gpqa"
HUB = HubDataset(
    "Idavidrein/gpqa",
    "gpqa_diamond",
    "train",
    "gpqa_diamond.csv (gated on the hub: accept its terms)",
)
INFO = WorkloadInfo(
    WORKLOAD,
    "graduate-level science multiple choice (diamond)",
    "choice",
    "Idavidrein/gpqa (gpqa_diamond)",
)
_WRONG = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` GPQA diamond questions in the seeded order, options shuffled."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item_from_row(row, seed) for row in rows]
    check_unique_ids(items, rows)
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed, example=_example)


def item_from_row(row: SourceRow, seed: int = 0) -> Item:
    """One question with its options in a seeded order and the correct letter as reference."""
    record_id = text_field(row, "Record ID")
    correct = text_field(row, "Correct Answer")
    options = [correct, *(text_field(row, name) for name in _WRONG)]
    if len(set(options)) != len(options):
        raise PerwattError(f"{row.where}: two options have the same text")
    order = list(range(len(options)))
    random.Random(f"perwatt:gpqa:{seed}:{record_id}").shuffle(order)
    shuffled = [options[i] for i in order]
    letter = LETTERS[order.index(0)]
    return Item(
        item_id=f"{WORKLOAD}/{record_id}",
        workload=WORKLOAD,
        task=text_field(row, "Subdomain"),
        domain=text_field(row, "High-level domain"),
        question=format_question(text_field(row, "Question"), shuffled),
        reference=letter,
        metadata={"options": shuffled, "record_id": record_id, "correct_answer": correct},
    )


def _example(item: Item) -> Example:
    return Example(item.question, item.reference)
