"""NaturalReasoning: 1.1M reasoning questions backtranslated from pretraining text (Meta).

Schema (facebook/natural_reasoning, JSONL): `question`, `reference_answer` (the final answer
found in the source document, often a sentence or more; empty for about 18% of questions),
`responses` (a list of `{response_model, response}`: Llama-3.3-70B-Instruct's answer). Answers are
free-form, so the workload is judge-scored: an LLM judge grades the response against the reference
answer (`perwatt score RUN_DIR --judge-model ...`). Questions without a reference answer cannot be
graded that way and are left out.
"""

from __future__ import annotations

from pathlib import Path

from perwatt.errors import PerwattError
from perwatt.records import Item
from perwatt.workloads.common import (
    HubDataset,
    SourceRow,
    WorkloadInfo,
    select_items,
    source_rows,
    text_field,
)

WORKLOAD = "natural-reasoning"
DOMAIN = "general reasoning"
HUB = HubDataset(
    "facebook/natural_reasoning", None, "train", "a JSONL part of NaturalReasoning", streaming=True
)
INFO = WorkloadInfo(
    WORKLOAD,
    "free-form reasoning questions with reference answers",
    "judge",
    "facebook/natural_reasoning (train)",
)
ANSWER_FORMAT = (
    "Reason step by step, then give your final answer on the last line, in the form "
    "'Answer: <answer>'."
)


def load(limit: int, seed: int = 0, data_file: Path | None = None) -> list[Item]:
    """The first `limit` questions with a reference answer, in the seeded order."""
    rows = source_rows(WORKLOAD, HUB, data_file)
    items = [item for item in (item_from_row(row) for row in rows) if item is not None]
    return select_items(items, workload=WORKLOAD, limit=limit, seed=seed)


def item_from_row(row: SourceRow) -> Item | None:
    """One question, or None when it has no reference answer to grade against."""
    question = text_field(row, "question")
    if "reference_answer" not in row.data:
        raise PerwattError(f"{row.where}: no column 'reference_answer'")
    reference = row.data["reference_answer"]
    if reference is None or not str(reference).strip():
        return None
    responses = row.data.get("responses") or []
    models = [str(r.get("response_model", "")) for r in responses if isinstance(r, dict)]
    return Item(
        item_id=f"{WORKLOAD}/{row.index:07d}",
        workload=WORKLOAD,
        task=WORKLOAD,
        domain=DOMAIN,
        question=f"{question}\n\n{ANSWER_FORMAT}",
        reference=str(reference).strip(),
        metadata={"question": question, "response_models": models},
    )
