"""`perwatt score` through the CLI, on run directories and output files made here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import make_manifest, record
from perwatt.analysis.summaries import compute_summaries
from perwatt.cli import main
from perwatt.endpoints.prompts import build_prompt
from perwatt.energy.timeline import TimelineRow
from perwatt.records import Item, RequestRecord
from perwatt.scoring import verdict
from perwatt.store import RunData, RunWriter, check_requests, power_table, read_run, records_table
from perwatt.workloads import load_workload

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K = FIXTURES / "gsm8k" / "test.jsonl"
NATURAL = FIXTURES / "natural_reasoning" / "natural_reasoning.jsonl"


def _row(run_id: str, i: int, item: Item, response: str, status: str = "ok") -> RequestRecord:
    return record(
        run_id=run_id,
        request_id=i,
        endpoint="http://127.0.0.1:1/v1",
        workload=item.workload,
        task=item.task,
        domain=item.domain,
        item_id=item.item_id,
        prompt_tokens=50,
        completion_tokens=20,
        t_scheduled=2.0 * i,
        t_sent=2.0 * i,
        t_first_token=2.0 * i + 0.1,
        t_done=2.0 * i + 1.0,
        tpot_s=0.05,
        status=status,
        finish_reason="length" if status == "truncated" else "stop",
        response_text=response,
        answer=None,
        reference=item.reference,
        energy_j=10.0 + i,
        energy_net_j=8.0 + i,
        energy_source="estimated:cputime",
        prefill_energy_j=1.0 + i,
        decode_energy_j=9.0,
    )


def make_run(
    path: Path, workload: str, data_file: Path, responses: list[tuple[str, str]], *,
    items_file: bool = True,
) -> Path:  # fmt: skip
    """A finished run directory for the first len(responses) items of `workload`, as the
    runner writes it (rows scored by the one verdict rule, items.parquet beside them)."""
    items = load_workload(workload, limit=len(responses), data_file=data_file)
    run_id = path.name
    records = []
    for i, (item, (text, status)) in enumerate(zip(items, responses, strict=True)):
        row = _row(run_id, i, item, text, status)
        scored = verdict(item, status, text)
        row.answer, row.correct, row.score = scored.answer, scored.correct, scored.score
        records.append(row)
    power = [TimelineRow(t, "cpu", 10.0 * t, 10.0, "estimated:cputime") for t in range(12)]
    manifest = make_manifest(run_id, model="m", n=len(records), workload=workload,
                             window_s=10.0, window_j=100.0, metered_j=120.0,
                             label="estimated:cputime", band="×/÷2")  # fmt: skip
    config = manifest.config.model_copy(update={"data_file": data_file})
    manifest = manifest.model_copy(update={"config": config})
    table = check_requests(records_table(records), path)
    (summary,) = compute_summaries([RunData(path, manifest, table, power_table(power))])
    writer = RunWriter(path)
    if items_file:
        writer.write_items(items, {i.item_id: build_prompt(i, "chat") for i in items})
    writer.finalize(records, power, manifest, summary, complete=True)
    return path


def _digests(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code)


@pytest.fixture
def gsm_run_args() -> list[tuple[str, str]]:
    items = load_workload("gsm8k", limit=4, data_file=GSM8K)
    return [
        (f"Work.\nAnswer: {items[0].reference}", "ok"),
        ("Answer: 999999", "ok"),
        (f"It is {items[2].reference} in the end.", "ok"),
        (f"Answer: {items[3].reference}", "truncated"),
    ]


@pytest.fixture
def gsm_run(tmp_path: Path, gsm_run_args) -> Path:
    return make_run(tmp_path / "run", "gsm8k", GSM8K, gsm_run_args)


def summary_phase(run_dir: Path) -> tuple[float, float]:
    """A run's prefill and decode J/query, from the kernel."""
    (s,) = compute_summaries([read_run(run_dir)])
    return s.prefill_energy_per_query_j.value, s.decode_energy_per_query_j.value


def test_rescoring_writes_a_new_run_and_leaves_the_old_one(gsm_run: Path, capsys) -> None:
    before = _digests(gsm_run)
    main(["score", str(gsm_run)])
    assert _digests(gsm_run) == before  # the original run is not modified
    new = gsm_run.with_name("run-rescored")
    assert {p.name for p in new.iterdir()} == {
        "requests.parquet", "power.parquet", "manifest.json", "summary.json", "scores.parquet",
        "items.parquet",
    }  # fmt: skip
    run = read_run(new)
    rows = run.records()  # the contract's schema, readable by every other part
    assert [r.correct for r in rows] == [True, False, True, False]  # truncated: never correct
    assert rows[3].answer is not None  # ...though its answer is kept
    assert {r.run_id for r in rows} == {"run.rescored"} == {run.manifest.run_id}
    assert [r.energy_j for r in rows] == [r.energy_j for r in read_run(gsm_run).records()]
    assert [(r.prefill_energy_j, r.decode_energy_j) for r in rows] == [
        (1.0 + i, 9.0) for i in range(4)
    ]  # the phase split travels with the rows
    assert summary_phase(new) == summary_phase(gsm_run)
    scoring = run.manifest.scoring[-1]
    assert (scoring.correct_before, scoring.correct_after, scoring.changed) == (2, 2, 0)
    assert scoring.source_run_id == "run"
    summary = json.loads((new / "summary.json").read_text())
    assert summary["n_correct"] == 2 and summary["accuracy"]["value"] == 0.5
    assert pq.read_table(new / "power.parquet") == pq.read_table(gsm_run / "power.parquet")
    details = pq.read_table(new / "scores.parquet").to_pylist()
    assert [d["scorer"] for d in details] == ["numeric"] * 4
    out = capsys.readouterr().out
    assert "2 → 2 correct" in out and "per domain" in out


def test_another_scorer_into_a_table_file(gsm_run: Path) -> None:
    table = gsm_run.parent / "scored.jsonl"
    main(["score", str(gsm_run), "--scorer", "exact", "--out", str(table)])
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [r["scorer"] for r in rows] == ["exact"] * 4
    # "It is 18 in the end." is a right number but not an exact answer.
    assert [r["correct"] for r in rows] == [True, False, False, False]
    assert {"response_text", "energy_j", "judge_verdict"} <= set(rows[0])


def test_in_place(gsm_run: Path) -> None:
    main(["score", str(gsm_run), "--in-place"])
    run = read_run(gsm_run)
    assert [r.correct for r in run.records()] == [True, False, True, False]
    assert run.manifest.run_id == "run"
    assert len(run.manifest.scoring) == 1
    assert (gsm_run / "scores.parquet").is_file()


def test_refusals_change_nothing(gsm_run: Path, capsys) -> None:
    before = _digests(gsm_run)
    taken = gsm_run.parent / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    assert _exit_code(["score", str(gsm_run), "--out", str(taken)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _exit_code(["score", str(gsm_run), "--scorer", "fuzzy"]) == 2
    assert _exit_code(["score", str(gsm_run), "--in-place", "--out", str(taken / "y")]) == 2
    assert _exit_code(["score", str(taken)]) == 2  # not a run directory
    assert _digests(gsm_run) == before and (taken / "x").read_text() == "mine"
    assert sorted(p.name for p in gsm_run.parent.iterdir()) == ["run", "taken"]


def test_a_run_rescores_from_its_items_even_when_its_workload_is_gone(
    tmp_path: Path, monkeypatch
) -> None:
    data = tmp_path / "copy.jsonl"
    data.write_text(GSM8K.read_text())
    first = load_workload("gsm8k", limit=1, data_file=data)[0]
    answers = [(f"Answer: {first.reference}", "ok"), ("Answer: -1", "ok")]
    run = make_run(tmp_path / "run", "gsm8k", data, answers)
    data.unlink()  # the data file moved away
    import perwatt.workloads

    def gone(*args: object, **kwargs: object) -> None:
        raise AssertionError("re-scoring must not load the workload")

    monkeypatch.setattr(perwatt.workloads, "load_workload", gone)
    main(["score", str(run), "--out", str(tmp_path / "new")])
    assert [r.correct for r in read_run(tmp_path / "new").records()] == [True, False]


def test_an_old_run_without_items_rescores_from_the_references(gsm_run_args, tmp_path) -> None:
    run = make_run(tmp_path / "old", "gsm8k", GSM8K, gsm_run_args, items_file=False)
    main(["score", str(run), "--out", str(tmp_path / "new")])
    assert [r.correct for r in read_run(tmp_path / "new").records()] == [True, False, True, False]


def _outputs(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_scoring_a_file_of_outputs(tmp_path: Path, capsys) -> None:
    def record(question: str, truth: int, said: int) -> dict:
        solution = {"solution": f"A: {said}", "is_correct": True}
        return {"question": question, "ground_truth": f"...\nA: {truth}", "m": solution}

    data = _outputs(tmp_path / "outputs.jsonl", [record("Q1", 18, 18), record("Q2", 5, 6)])
    out = tmp_path / "scored.parquet"
    main(["score", "--workload", "gsm8k", "--outputs", str(data), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "agreement with the file's labels: 1 / 2 (50.00%)" in printed
    rows = pq.read_table(out).to_pylist()
    assert [(r["model"], r["correct"], r["label"]) for r in rows] == [
        ("m", True, True), ("m", False, True),
    ]  # fmt: skip


def test_a_malformed_outputs_line_writes_nothing(tmp_path: Path, capsys) -> None:
    data = tmp_path / "outputs.jsonl"
    data.write_text('{"reference": "1", "response": "1"}\n{"reference": "2", "response": \n')
    out = tmp_path / "scored.jsonl"
    code = _exit_code(["score", "--workload", "gsm8k", "--outputs", str(data), "--out", str(out)])
    assert code == 2
    assert f"{data}:2: not valid JSON" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["outputs.jsonl"]


@pytest.mark.parametrize(
    ("content", "workload", "where"),
    [
        ('{"question": "a", "answer": "1"}\n{"question": "b", "answer": 2\n', "file",
         ":2: not valid JSON"),
        ('{"prompt": "a", "target": "1"}\n{"prompt": "b"}\n', "file:question=prompt,answer=target",
         ":2: no column 'target'"),
    ],
)  # fmt: skip
def test_a_malformed_user_file_stops_a_run_before_anything_is_written(
    tmp_path: Path, capsys, content: str, workload: str, where: str
) -> None:
    bad = tmp_path / "questions.jsonl"
    bad.write_text(content)
    runs = tmp_path / "runs"
    code = _exit_code(["run", "--model", "smollm2-135m", "--workload", workload,
                       "--data-file", str(bad), "--limit", "2", "--runs-dir", str(runs),
                       "--idle-seconds", "0"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bad}{where}" in " ".join(err.split())
    assert "Traceback" not in err
    assert not runs.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["questions.jsonl"]


@pytest.mark.slow
def test_judge_scoring_records_each_verdict_and_caches_it(tmp_path: Path, capsys) -> None:
    """The packaged SmolLM2 as judge, served by perwatt; the second re-score asks it nothing."""
    items = load_workload("natural-reasoning", limit=2, data_file=NATURAL)
    run = make_run(tmp_path / "nr", "natural-reasoning", NATURAL, [
        (f"Answer: {items[0].reference}", "ok"), ("Answer: no idea", "ok"),
    ])  # fmt: skip
    assert [r.correct for r in read_run(run).records()] == [None, None]
    cache = tmp_path / "cache"
    args = ["--judge-model", "smollm2-135m", "--judge-cache", str(cache), "--judge-max-tokens", "8"]
    main(["score", str(run), "--out", str(tmp_path / "judged"), *args])
    first = capsys.readouterr().out
    assert "judge: 2 requests, 0 verdicts from the cache, 0 failed" in first
    details = pq.read_table(tmp_path / "judged" / "scores.parquet").to_pylist()
    for detail, item in zip(details, items, strict=True):
        assert detail["scorer"] == "judge"
        assert detail["judge_model"] == "smollm2-135m"
        assert detail["judge_template"].startswith("reference-v1@")
        assert item.reference in detail["judge_prompt"]
        assert detail["judge_verdict"] in ("TRUE", "FALSE", "unparsed")
        assert detail["correct"] is (detail["judge_verdict"] == "TRUE")
    manifest = read_run(tmp_path / "judged").manifest
    assert manifest.scoring[-1].judge["requests"] == 2
    # Again: every verdict comes from the cache, and they are the same.
    main(["score", str(run), "--out", str(tmp_path / "again"), *args])
    assert "judge: 0 requests, 2 verdicts from the cache" in capsys.readouterr().out
    again = pq.read_table(tmp_path / "again" / "scores.parquet").to_pylist()
    assert [d["judge_verdict"] for d in again] == [d["judge_verdict"] for d in details]
    assert all(d["judge_cached"] for d in again)


@pytest.mark.slow
def test_wildchat_is_judged_pairwise_in_both_orders(tmp_path: Path, capsys) -> None:
    wildchat = FIXTURES / "wildchat" / "train.parquet"
    run = make_run(tmp_path / "wc", "wildchat", wildchat, [
        ("Leaves fall softly down", "ok"), ("Sleep more.", "truncated"),
    ])  # fmt: skip
    cache = tmp_path / "cache"
    main(["score", str(run), "--out", str(tmp_path / "judged"), "--judge-model", "smollm2-135m",
          "--judge-cache", str(cache), "--judge-max-tokens", "4"])  # fmt: skip
    # One comparison in two orders; the truncated row is incorrect without asking.
    assert "judge: 2 requests" in capsys.readouterr().out
    judged, cut = pq.read_table(tmp_path / "judged" / "scores.parquet").to_pylist()
    assert judged["scorer"] == "judge-pairwise"
    assert judged["judge_verdict"] in ("win", "tie", "loss", "unparsed")
    assert judged["judge_template"].startswith("pairwise-v1@")
    assert judged["judge_prompt"].count("Leaves fall softly down") == 2
    assert (cut["correct"], cut["judge_verdict"]) == (False, None)


def test_a_new_scorer_is_one_module(gsm_run: Path, tmp_path: Path, monkeypatch) -> None:
    """A scorer is registered by defining SCORERS in a module of the scoring package: nothing
    else is touched. The module here sits in a folder added to the package's path."""
    import perwatt.scoring

    extra = tmp_path / "plugins"
    extra.mkdir()
    (extra / "toy.py").write_text(
        "from perwatt.records import Score\n"
        "from perwatt.scoring import Scorer\n\n\n"
        "def score(item, text):\n"
        "    return Score('toy', 'toy' in text, 1.0 if 'toy' in text else 0.0)\n\n\n"
        "SCORERS = (Scorer('toy', 'says yes to answers that mention a toy', score),)\n"
    )
    monkeypatch.setattr(perwatt.scoring, "__path__", [*perwatt.scoring.__path__, str(extra)])
    perwatt.scoring.scorers.cache_clear()
    try:
        main(["score", str(gsm_run), "--scorer", "toy", "--out", str(tmp_path / "toyed")])
        assert {r.answer for r in read_run(tmp_path / "toyed").records()} <= {"toy", None}
    finally:
        monkeypatch.undo()
        perwatt.scoring.scorers.cache_clear()
    assert _exit_code(["score", str(gsm_run), "--scorer", "toy"]) == 2  # gone again: unknown
