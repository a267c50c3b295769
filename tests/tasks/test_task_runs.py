"""`perwatt run --task retry` through the CLI: per-call and per-task rows, energy that adds up.

Fast tests use the loopback server (it answers "Answer: 42" to everything: an item whose
reference is 42 is solved at the first turn, any other never); the slow ones run the packaged
SmolLM2 on the real llama-server at concurrency 1 and 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from load.test_faulty_endpoint import loopback, perwatt
from perwatt.store import read_run


def _items(tmp_path: Path, answers: list[str]) -> Path:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is 6 times 7? ({k})", "a": a}) + "\n"
                            for k, a in enumerate(answers)))  # fmt: skip
    return data


def _check_energy_adds_up(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """Per task: Σ its calls + tools + gaps = its energy; Σ tasks + unattributed = metered."""
    run = read_run(run_dir)
    calls = pq.read_table(run_dir / "requests.parquet").to_pylist()
    tasks = pq.read_table(run_dir / "tasks.parquet").to_pylist()
    for task in tasks:
        mine = [c for c in calls if c["task_id"] == task["task_id"]]
        assert [c["turn"] for c in mine] == list(range(1, task["n_calls"] + 1))
        assert [c["retried"] for c in mine] == [True] * (len(mine) - 1) + [False]
        assert sum(c["energy_j"] for c in mine) == pytest.approx(task["calls_energy_j"], abs=1e-9)
        parts = task["calls_energy_j"] + task["tool_energy_j"] + task["gap_energy_j"]
        assert task["energy_j"] == pytest.approx(parts, abs=1e-9)
    totals = run.manifest.energy.totals
    assert sum(t["energy_j"] for t in tasks) + totals.unattributed_j == pytest.approx(
        totals.metered_total_j, abs=1e-9
    )
    return calls, tasks


def test_a_retry_run_asks_again_until_solved_or_out_of_turns(tmp_path):
    data = _items(tmp_path, ["42", "41", "42", "7"])
    out = tmp_path / "run"
    with loopback("--tokens", "4") as url:
        result = perwatt("run", "--endpoint", url, "--model", "loopback", "--workload",
                         "file:question=q,answer=a", "--data-file", str(data), "--task", "retry",
                         "--max-turns", "3", "--concurrency", "2", "--idle-seconds", "0",
                         "--warmup", "0", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls, tasks = _check_energy_adds_up(out)
    by_item = {t["item_id"]: t for t in tasks}
    assert len(tasks) == 4 and len(calls) == 1 + 3 + 1 + 3
    solved = [t for t in tasks if t["outcome"] == "solved"]
    assert len(solved) == 2 and all(t["n_calls"] == 1 for t in solved)
    wrong = [t for t in tasks if t["outcome"] == "wrong"]
    assert len(wrong) == 2 and all(t["n_calls"] == 3 and t["correct"] is False for t in wrong)
    assert set(by_item) == {c["item_id"] for c in calls}
    # The figures count tasks: 2 of 4 solved, whatever the number of calls.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and summary["accuracy"]["value"] == 0.5
    assert summary["tasks"]["kind"] == "retry" and summary["tasks"]["n_calls"] == 8
    assert summary["tasks"]["turns_per_task"]["value"] == 2.0
    assert "a retry run" in result.stdout and "tasks" in result.stdout


def test_max_turns_below_one_is_a_clear_error(tmp_path):
    result = perwatt("run", "--model", "smollm2-135m", "--task", "retry", "--max-turns", "0",
                     "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2
    assert "--max-turns" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_kind_is_a_clear_error(tmp_path):
    result = perwatt("run", "--model", "smollm2-135m", "--task", "agentic",
                     "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2
    assert "--task" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_retry_run_of_the_packaged_model_on_llama_server(tmp_path, concurrency):
    out = tmp_path / "run"
    result = perwatt("run", "--model", "smollm2-135m", "--task", "retry", "--max-turns", "2",
                     "--limit", "4", "--concurrency", str(concurrency), "--idle-seconds", "1",
                     "--max-tokens", "32", "--out", str(out), timeout=800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    calls, tasks = _check_energy_adds_up(out)
    assert len(tasks) == 4 and 4 <= len(calls) <= 8
    assert all(c["prompt_tokens"] for c in calls)  # the server's own counts
    later = [c for c in calls if c["turn"] > 1]
    if concurrency == 1 and later:
        # A later turn repeats the conversation so far: the server's prefix cache serves it.
        assert all((c["cached_tokens"] or 0) > 0 for c in later)
