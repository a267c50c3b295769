"""Scoring recorded responses again, with any scorer, without calling the model.

`rescore_records` takes a run's request rows and the items they answered and returns new rows
plus one `ScoreDetail` per row (which scorer, and for a judge: model, template, prompt, raw output
and verdict). `score_outputs` does the same for a file of outputs (`OutputRow`), with the labels
the file may carry. The rules of a run hold: a request that errored or timed out has no answer
and counts as incorrect; a truncated one is scored (its answer is kept) but never counts as
correct. Judged rows that the judge failed on stay unscored (`correct` None).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from perwatt.errors import PerwattError
from perwatt.records import Item, RequestRecord
from perwatt.scoring import get_scorer, scorer_for, verdict
from perwatt.scoring.judge import Judge, JudgeSettings, JudgeStats, JudgeVerdict, judge_all


@dataclass(frozen=True)
class ScoreDetail:
    """How one row was scored; the judge fields are empty for deterministic scorers."""

    request_id: int
    item_id: str
    scorer: str
    answer: str | None
    correct: bool | None
    score: float | None
    judge_model: str | None = None
    judge_endpoint: str | None = None
    judge_template: str | None = None
    judge_prompt: str | None = None
    judge_output: str | None = None
    judge_verdict: str | None = None
    judge_cached: bool | None = None


@dataclass(frozen=True)
class OutputRow:
    """One response from a file of outputs: what was asked, the reference, what was answered,
    and the file's own correctness label when it has one."""

    line: str
    model: str
    item_id: str
    question: str
    reference: str
    response: str
    label: bool | None = None


@dataclass(frozen=True)
class ScoredOutput:
    """An output row with perwatt's verdict."""

    row: OutputRow
    detail: ScoreDetail


@dataclass(frozen=True)
class Rescored:
    """The result of re-scoring: new rows, their details, and what the judge did."""

    records: list[RequestRecord]
    details: list[ScoreDetail]
    judge: JudgeStats | None


@dataclass(frozen=True)
class ModelAgreement:
    """One model's accuracy in a file of outputs, by perwatt and by the file's own labels."""

    model: str
    n: int
    accuracy: float
    labelled_accuracy: float | None
    agreement: float | None


def agreement_by_model(scored: Sequence[ScoredOutput]) -> list[ModelAgreement]:
    """Per model, in order of first appearance: perwatt's accuracy (unscored rows count as
    incorrect), the labels' accuracy and the share of labelled rows where both agree."""
    out = []
    for model in dict.fromkeys(s.row.model for s in scored):
        rows = [s for s in scored if s.row.model == model]
        labelled = [s for s in rows if s.row.label is not None]
        judged = [s for s in labelled if s.detail.correct is not None]
        out.append(
            ModelAgreement(
                model=model,
                n=len(rows),
                accuracy=sum(bool(s.detail.correct) for s in rows) / len(rows),
                labelled_accuracy=(
                    sum(bool(s.row.label) for s in labelled) / len(labelled) if labelled else None
                ),
                agreement=(
                    sum(s.row.label == s.detail.correct for s in judged) / len(judged)
                    if judged
                    else None
                ),
            )
        )
    return out


def needs_questions(scorer: str | None, items: Sequence[Item]) -> bool:
    """Whether scoring these items needs the items themselves (not only the rows' references)."""
    chosen = [get_scorer(scorer)] if scorer else [scorer_for(i) for i in items]
    return any(s.needs_question for s in chosen)


def rescore_records(
    records: Sequence[RequestRecord],
    items: Mapping[str, Item],
    *,
    scorer: str | None = None,
    judge: JudgeSettings | None = None,
) -> Rescored:
    """Score each record's response again with `scorer` (default: each item's own scorer)."""
    targets: list[tuple[Item, str, str]] = []  # (item, response, status)
    for record in records:
        item = items.get(record.item_id)
        if item is None:
            raise PerwattError(f"no item '{record.item_id}' to score request {record.request_id}")
        targets.append((item, record.response_text, record.status))
    details, stats = _score(targets, [r.request_id for r in records], scorer, judge)
    rescored = [
        dataclasses.replace(r, answer=d.answer, correct=d.correct, score=d.score)
        for r, d in zip(records, details, strict=True)
    ]
    return Rescored(rescored, details, stats)


def score_outputs(
    rows: Sequence[OutputRow],
    workload: str,
    *,
    scorer: str | None = None,
    judge: JudgeSettings | None = None,
) -> tuple[list[ScoredOutput], JudgeStats | None]:
    """Score a file's outputs as responses to items of `workload`, with `scorer` (the caller
    gives the workload's default when the user named none)."""
    targets = [
        (
            Item(
                item_id=row.item_id,
                workload=workload,
                task=workload,
                domain=row.model,
                question=row.question,
                reference=row.reference,
                scorer=scorer or "",
            ),
            row.response,
            "ok",
        )
        for row in rows
    ]
    details, stats = _score(targets, list(range(len(rows))), scorer, judge)
    return [ScoredOutput(r, d) for r, d in zip(rows, details, strict=True)], stats


def _score(
    targets: Sequence[tuple[Item, str, str]],
    ids: Sequence[int],
    scorer: str | None,
    judge: JudgeSettings | None,
) -> tuple[list[ScoreDetail], JudgeStats | None]:
    chosen = [scorer_for(item, scorer) for item, _, _ in targets]
    details: list[ScoreDetail | None] = [None] * len(targets)
    to_judge: list[int] = []
    for index, ((item, response, status), s) in enumerate(zip(targets, chosen, strict=True)):
        result = verdict(item, status, response, s.name)  # type: ignore[arg-type]
        if s.is_judge and result.correct is None:
            to_judge.append(index)  # a complete, non-blank answer: the judge decides
            continue
        details[index] = ScoreDetail(
            ids[index], item.item_id, s.name, result.answer, result.correct, result.score
        )
    names = [s.name for s in chosen]
    stats = None
    if to_judge:
        if judge is None:
            raise PerwattError(
                "these rows are judge-scored: pass --judge-model NAME (a packaged model perwatt "
                "serves) or --judge-endpoint URL --judge-model NAME"
            )
        verdicts, stats = asyncio.run(_judge(judge, [(targets[i], names[i]) for i in to_judge]))
        for index, judged in zip(to_judge, verdicts, strict=True):
            details[index] = _judge_detail(ids[index], targets[index][0], names[index], judged)
    return [d for d in details if d is not None], stats


def _judge_detail(request_id: int, item: Item, scorer: str, judged: JudgeVerdict) -> ScoreDetail:
    return ScoreDetail(
        request_id=request_id,
        item_id=item.item_id,
        scorer=scorer,
        answer=None,
        correct=judged.correct,
        score=judged.score,
        judge_model=judged.model,
        judge_endpoint=judged.endpoint,
        judge_template=judged.template,
        judge_prompt=judged.prompt,
        judge_output=judged.output,
        judge_verdict=judged.verdict,
        judge_cached=judged.cached,
    )


async def _judge(
    settings: JudgeSettings, targets: Sequence[tuple[tuple[Item, str, str], str]]
) -> tuple[list[JudgeVerdict], JudgeStats]:
    tasks = []
    for (item, response, _), name in targets:
        if not item.question:
            raise PerwattError(
                f"judging needs each item's question, and item '{item.item_id}' has none here; "
                "give the workload's data (--data-file PATH)"
            )
        mode = "pairwise" if name == "judge-pairwise" else "reference"
        tasks.append((mode, item.question, item.reference, response))
    async with Judge(settings) as judge:
        verdicts = await judge_all(judge, tasks)
        return verdicts, judge.stats
