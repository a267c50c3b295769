"""Ollama's native counters, on its recorded /api/chat answers (tests/fixtures/server_metrics/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perwatt.endpoints.ollama import OllamaCounters, ollama_counters, stream_counters

FIXTURES = Path(__file__).parents[1] / "fixtures" / "server_metrics"


def test_a_final_answer_gives_tokens_and_prefill_and_decode_milliseconds():
    answer = json.loads((FIXTURES / "ollama_api_chat_docs_tools.json").read_text())
    assert ollama_counters(answer) == OllamaCounters(
        prompt_tokens=122,
        completion_tokens=33,
        prompt_ms=pytest.approx(328.493),
        predicted_ms=pytest.approx(552.222),
        load_ms=pytest.approx(3.7535),
        total_ms=pytest.approx(885.095291),
        done_reason="stop",
    )


def test_a_stream_gives_the_counters_of_its_final_object():
    lines = (FIXTURES / "ollama_api_chat_docs_stream.ndjson").read_text().splitlines()
    assert ollama_counters(json.loads(lines[0])) is None  # a partial object has none
    counters = stream_counters(lines)
    assert counters is not None
    assert (counters.prompt_tokens, counters.completion_tokens) == (26, 282)
    assert counters.prompt_ms == pytest.approx(342.546)
    assert counters.predicted_ms == pytest.approx(4535.599)
    # The durations are consistent: prefill + decode + load fit inside the total.
    assert counters.prompt_ms + counters.predicted_ms + counters.load_ms <= counters.total_ms
    assert stream_counters([line.encode() for line in lines]) == counters


def test_a_cloud_model_sends_counts_without_durations():
    answer = json.loads((FIXTURES / "ollama_api_chat_cloud_gpt_oss.json").read_text())
    counters = ollama_counters(answer)
    assert counters is not None
    assert (counters.prompt_tokens, counters.completion_tokens) == (126, 35)
    assert counters.prompt_ms is None and counters.predicted_ms is None
    assert counters.total_ms == pytest.approx(518.799606)
    assert counters.done_reason is None


@pytest.mark.parametrize("bad", [None, [], "done", {"done": "true"}, {"done": False}])
def test_anything_but_a_final_object_has_no_counters(bad):
    assert ollama_counters(bad) is None


def test_nonsense_values_are_left_out_not_trusted():
    counters = ollama_counters({"done": True, "eval_count": -1, "prompt_eval_count": True,
                                "eval_duration": "5"})  # fmt: skip
    assert counters is not None
    assert counters.completion_tokens is None and counters.prompt_tokens is None
    assert counters.predicted_ms is None
