"""GSM8K from a fixture in the real test.jsonl schema; and a real offline run on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perwatt.errors import PerwattError
from perwatt.scoring import score_response
from perwatt.store import read_run
from perwatt.workloads import load_workload
from perwatt.workloads.gsm8k import ANSWER_FORMAT

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gsm8k" / "test.jsonl"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"


def test_items_from_the_real_schema() -> None:
    items = load_workload("gsm8k", limit=10, data_file=FIXTURE)
    assert len(items) == 5  # the whole fixture
    by_id = {i.item_id: i for i in items}
    janet = by_id["gsm8k/0000"]
    assert janet.reference == "18"
    assert janet.question.startswith("Janet’s ducks lay 16 eggs per day.")
    assert janet.question.endswith("\n\n" + ANSWER_FORMAT)
    assert janet.metadata["answer"].endswith("#### 18")
    assert (janet.workload, janet.task) == ("gsm8k", "gsm8k")
    assert by_id["gsm8k/0002"].reference == "70000"  # "#### 70000"
    for item in items:
        assert score_response(item, f"Answer: {item.reference}").correct
        assert len(item.examples) == 2
        assert item.question not in {e.question for e in item.examples}


def test_seeded_order_and_prefixes() -> None:
    full = load_workload("gsm8k", limit=5, data_file=FIXTURE)
    assert load_workload("gsm8k", limit=3, data_file=FIXTURE) == full[:3]
    assert load_workload("gsm8k", limit=5, data_file=FIXTURE) == full
    other = load_workload("gsm8k", limit=5, seed=1, data_file=FIXTURE)
    assert sorted(i.item_id for i in other) == sorted(i.item_id for i in full)
    assert [i.item_id for i in other] != [i.item_id for i in full]


def test_an_answer_without_its_final_line_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "test.jsonl"
    lines = FIXTURE.read_text().splitlines()
    broken = json.loads(lines[2]) | {"answer": "no final line"}
    bad.write_text("\n".join([*lines[:2], json.dumps(broken), *lines[3:]]) + "\n")
    with pytest.raises(PerwattError, match=rf"^{bad}:3: the answer has no final '#### <number>'"):
        load_workload("gsm8k", limit=2, data_file=bad)


def test_without_a_data_file_or_the_hub_extra_the_error_says_what_to_do() -> None:
    pytest.importorskip("reasoning_gym")  # any environment: the message is the point
    try:
        import datasets  # noqa: F401

        pytest.skip("datasets is installed: the hub would be tried")
    except ImportError:
        pass
    with pytest.raises(PerwattError, match=r"openai/gsm8k.*'hub' extra.*--data-file PATH"):
        load_workload("gsm8k", limit=2)


def test_options_are_refused() -> None:
    with pytest.raises(PerwattError, match="takes no options"):
        load_workload("gsm8k:main", limit=2, data_file=FIXTURE)


@pytest.mark.slow
def test_perwatt_run_on_gsm8k_offline(tmp_path: Path) -> None:
    """`perwatt run --workload gsm8k --data-file ...` with the real server, no network."""
    data = SHARED if SHARED.is_file() else FIXTURE
    out = tmp_path / "run"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "perwatt", "run", "--model", "smollm2-135m", "--workload", "gsm8k",
         "--data-file", str(data), "--limit", "3", "--max-tokens", "128", "--idle-seconds", "0",
         "--warmup", "0",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = read_run(out)
    rows = run.records()
    expected = load_workload("gsm8k", limit=3, data_file=data)
    assert [r.item_id for r in rows] == [i.item_id for i in expected]
    assert [r.reference for r in rows] == [i.reference for i in expected]
    assert run.manifest.workload == "gsm8k"
    for row in rows:
        assert row.workload == "gsm8k" and row.domain == "math word problems"
        assert row.correct is not None
        if row.status != "ok":
            assert row.correct is False
        if row.correct:
            assert row.answer is not None and float(row.answer) == float(row.reference)
