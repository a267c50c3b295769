"""`perwatt run --task replay`: a conversation's user turns sent one by one after the model's own
answers, on a file in WildChat's schema (a three-turn conversation built from the fixture's real
row shape). Fast with the loopback server; slow on the packaged SmolLM2 and llama-server, where
turns 2 and 3 reuse the server's cache of the conversation so far."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from load.test_faulty_endpoint import loopback, perwatt
from tasks.test_task_runs import _check_energy_adds_up

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wildchat" / "train.parquet"
TURNS = [
    ("How do I reverse a list in Python?", "Use `my_list.reverse()`, or `my_list[::-1]`."),
    ("And a string?", "Use slicing: `s[::-1]`."),
    ("Which of the two is faster?", "Slicing a string; a list's reverse() avoids a copy."),
]


def conversation_file(tmp_path: Path) -> Path:
    """Two conversations in WildChat's schema: one of three exchanges, one of a single one."""
    rows = pq.read_table(FIXTURE).to_pylist()
    base = next(r for r in rows if r["turn"] == 2)
    long, short = copy.deepcopy(base), copy.deepcopy(base)
    template = base["conversation"][0]
    long["conversation"] = [
        dict(template, role=role, content=text, turn_identifier=k)
        for k, (question, reply) in enumerate(TURNS)
        for role, text in (("user", question), ("assistant", reply))
    ]
    long["turn"], long["conversation_hash"] = 3, "three-turns"
    short["conversation"] = long["conversation"][:2]
    short["turn"], short["conversation_hash"] = 1, "one-turn"
    path = tmp_path / "conversations.parquet"
    pq.write_table(pa.Table.from_pylist([long, short]), path)
    return path


def replay_on_loopback(tmp_path: Path, *, max_turns: int) -> Path:
    """`perwatt run --task replay` of the conversation file on the loopback server; its run."""
    out = tmp_path / "run"
    with loopback("--tokens", "4") as url:
        result = perwatt("run", "--endpoint", url, "--model", "loopback", "--api", "chat",
                         "--workload", "wildchat", "--data-file", str(conversation_file(tmp_path)),
                         "--task", "replay", "--max-turns", str(max_turns), "--idle-seconds", "0",
                         "--warmup", "0", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_each_turn_is_sent_after_the_models_own_answer_and_judged_against_its_reply(tmp_path):
    out = replay_on_loopback(tmp_path, max_turns=5)
    calls, tasks = _check_energy_adds_up(out)
    by = {t["item_id"]: t for t in tasks}
    long, short = by["wildchat/three-turns"], by["wildchat/one-turn"]
    assert (long["n_calls"], short["n_calls"]) == (3, 1)
    # Judge-scored: decided later by `perwatt score --judge-model`, never guessed now.
    assert long["outcome"] == short["outcome"] == "unscored"
    rows = sorted((c for c in calls if c["task_id"] == long["task_id"]), key=lambda c: c["turn"])
    assert [r["reference"] for r in rows] == [reply for _, reply in TURNS]
    assert [r["retried"] for r in rows] == [True, True, False]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"]["kind"] == "replay" and summary["tasks"]["n_calls"] == 4


def test_max_turns_caps_a_long_conversation(tmp_path):
    out = replay_on_loopback(tmp_path, max_turns=2)
    _, tasks = _check_energy_adds_up(out)
    assert sorted(t["n_calls"] for t in tasks) == [1, 2]


def test_replay_for_a_model_prompted_few_shot_is_a_clear_error(tmp_path):
    result = perwatt("run", "--model", "gemma3-270m", "--task", "replay", "--workload", "wildchat",
                     "--data-file", str(conversation_file(tmp_path)), "--idle-seconds", "0",
                     "--out", str(tmp_path / "run"), timeout=300)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "chat model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_replayed_conversation_reuses_the_servers_cache_on_later_turns(tmp_path):
    out = tmp_path / "run"
    result = perwatt("run", "--model", "smollm2-135m", "--task", "replay", "--workload",
                     "wildchat", "--data-file", str(conversation_file(tmp_path)),
                     "--idle-seconds", "1", "--max-tokens", "32", "--out", str(out),
                     timeout=800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    calls, tasks = _check_energy_adds_up(out)
    [long] = [t for t in tasks if t["item_id"] == "wildchat/three-turns"]
    rows = sorted((c for c in calls if c["task_id"] == long["task_id"]), key=lambda c: c["turn"])
    assert [r["turn"] for r in rows] == [1, 2, 3]
    assert all(r["status"] in ("ok", "truncated") for r in rows)
    # Turns 2 and 3 repeat the conversation so far: llama-server serves it from its cache.
    assert all((r["cached_tokens"] or 0) > 0 for r in rows[1:]), rows
    assert rows[2]["prompt_tokens"] > rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"]
    assert long["cached_tokens"] == sum(r["cached_tokens"] or 0 for r in rows)
