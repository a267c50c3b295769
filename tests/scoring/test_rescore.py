"""Re-scoring recorded rows: the run's rules for failed and truncated requests hold."""

from __future__ import annotations

import pytest

from conftest import record
from perwatt.errors import PerwattError
from perwatt.records import Item, RequestRecord
from perwatt.scoring.rescore import (
    OutputRow,
    agreement_by_model,
    needs_questions,
    rescore_records,
    score_outputs,
)


def _record(i: int, response: str, status: str = "ok") -> RequestRecord:
    return record(
        request_id=i,
        endpoint="http://127.0.0.1:1/v1",
        workload="gsm8k",
        task="gsm8k",
        domain="math",
        item_id=f"gsm8k/{i:04d}",
        prompt_tokens=10,
        completion_tokens=5,
        t_scheduled=float(i),
        t_sent=float(i),
        t_first_token=i + 0.1,
        t_done=i + 1.0,
        tpot_s=0.2,
        status=status,
        error=None if status in ("ok", "truncated") else "boom",
        finish_reason={"ok": "stop", "truncated": "length"}.get(status),
        response_text=response,
        answer=None,
        reference="18",
        correct=False,
        score=0.0,
        energy_j=1.0 + i,
        energy_net_j=0.5 + i,
        energy_source="estimated:cputime",
    )


def _items(n: int) -> dict[str, Item]:
    return {
        f"gsm8k/{i:04d}": Item(
            f"gsm8k/{i:04d}", "gsm8k", "gsm8k", "math", "Q?", "18", scorer="numeric"
        )
        for i in range(n)
    }


def test_rows_are_rescored_by_the_rules_of_a_run() -> None:
    records = [
        _record(0, "Answer: 18"),
        _record(1, "Answer: 17"),
        _record(2, "Answer: 18", status="truncated"),  # cut off: never correct
        _record(3, "Answer: 18", status="error"),  # failed: no answer, incorrect
        _record(4, "", status="timeout"),
    ]
    result = rescore_records(records, _items(5))
    assert [r.correct for r in result.records] == [True, False, False, False, False]
    assert [r.answer for r in result.records] == ["18", "17", "18", None, None]
    assert [r.score for r in result.records] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert [d.scorer for d in result.details] == ["numeric"] * 5
    assert result.judge is None
    # Everything else about a row is kept.
    assert [r.energy_j for r in result.records] == [r.energy_j for r in records]
    assert [r.status for r in result.records] == [r.status for r in records]


def test_another_scorer() -> None:
    records = [_record(0, "It is 18.")]
    assert rescore_records(records, _items(1)).records[0].correct is True
    exact = rescore_records(records, _items(1), scorer="exact")
    assert exact.records[0].correct is False  # "It is 18" is not "18"
    assert exact.details[0].scorer == "exact"


def test_judge_rows_need_a_judge() -> None:
    with pytest.raises(PerwattError, match="--judge-model"):
        rescore_records([_record(0, "Answer: 18")], _items(1), scorer="judge")
    # Rows a judge would not be asked about need none.
    cut = rescore_records([_record(0, "Answer: 18", status="truncated")], _items(1), scorer="judge")
    assert cut.records[0].correct is False


def test_a_row_without_its_item_is_an_error() -> None:
    with pytest.raises(PerwattError, match="no item 'gsm8k/0003'"):
        rescore_records([_record(3, "Answer: 18")], _items(1))


def test_which_scorers_need_the_items() -> None:
    items = list(_items(1).values())
    assert not needs_questions(None, items)
    assert needs_questions("judge", items)
    assert needs_questions("reasoning-gym", items)


def test_outputs_agreement_per_model() -> None:
    rows = [
        OutputRow("f:1", "m1", "1", "Q", "A: 18", "A: 18", label=True),
        OutputRow("f:1", "m2", "1", "Q", "A: 18", "A: 19", label=True),  # disagrees
        OutputRow("f:2", "m1", "2", "Q", "A: 5", "A: 6", label=False),
        OutputRow("f:2", "m2", "2", "Q", "A: 5", "A: 5", label=None),
    ]
    scored, stats = score_outputs(rows, "gsm8k", scorer="numeric")
    assert stats is None
    assert [s.detail.correct for s in scored] == [True, False, False, True]
    m1, m2 = agreement_by_model(scored)
    assert (m1.model, m1.n, m1.accuracy, m1.labelled_accuracy, m1.agreement) == (
        "m1", 2, 0.5, 0.5, 1.0,
    )  # fmt: skip
    assert (m2.accuracy, m2.labelled_accuracy, m2.agreement) == (0.5, 1.0, 0.0)
