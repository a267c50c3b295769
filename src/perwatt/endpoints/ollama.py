"""Ollama's native counters: what the last message of `/api/chat` (or `/api/generate`) reports.

Ollama's OpenAI-compatible endpoint (`/v1/chat/completions`) carries `usage` but no timings; its
native API ends every answer (the `"done": true` object, streamed or not) with its own counts
and durations in nanoseconds (server/routes.go, api/types.go `Metrics`):
`prompt_eval_count` (prompt tokens evaluated), `eval_count` (tokens generated),
`prompt_eval_duration`, `eval_duration`, `load_duration`, `total_duration`. `ollama_counters`
turns that object into the same quantities llama-server's `timings` give (prefill and decode
milliseconds), so a row from either server reads the same. A field Ollama left out (it omits
zero values; its cloud models send only counts) stays None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_NS_PER_MS = 1e6


@dataclass(frozen=True)
class OllamaCounters:
    """The server-side counts of one Ollama answer."""

    prompt_tokens: int | None
    completion_tokens: int | None
    prompt_ms: float | None  # prefill: prompt_eval_duration
    predicted_ms: float | None  # decode: eval_duration
    load_ms: float | None  # loading the model (0 when it was loaded already)
    total_ms: float | None
    done_reason: str | None


def ollama_counters(message: dict[str, Any]) -> OllamaCounters | None:
    """The counters of a final (`"done": true`) `/api/chat` or `/api/generate` object; None for
    a partial one (those carry no counters)."""
    if not isinstance(message, dict) or message.get("done") is not True:
        return None
    reason = message.get("done_reason")
    return OllamaCounters(
        prompt_tokens=_count(message.get("prompt_eval_count")),
        completion_tokens=_count(message.get("eval_count")),
        prompt_ms=_ms(message.get("prompt_eval_duration")),
        predicted_ms=_ms(message.get("eval_duration")),
        load_ms=_ms(message.get("load_duration")),
        total_ms=_ms(message.get("total_duration")),
        done_reason=reason if isinstance(reason, str) else None,
    )


def stream_counters(lines: Iterable[str | bytes]) -> OllamaCounters | None:
    """The counters of a streamed (NDJSON) answer: those of its final object."""
    found = None
    for line in lines:
        text = line.decode() if isinstance(line, bytes) else line
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            continue
        counters = ollama_counters(obj)
        if counters is not None:
            found = counters
    return found


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return value / _NS_PER_MS
