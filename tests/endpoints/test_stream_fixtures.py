"""The parser on each server's real stream shape (tests/fixtures/streams/, served verbatim)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hostile_server import STREAMS, ThreadServer, serve_in_thread

from perwatt.endpoints.client import ChatMessage, Completion, Prompt, StreamingClient


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with serve_in_thread() as s:
        yield s


def replay(server: ThreadServer, name: str) -> Completion:
    api = "completions" if "completions" in name else "chat"
    prompt = Prompt(api=api, messages=(ChatMessage("user", "6 × 7?"),), text="Q: 6 × 7?\nA:")

    async def go() -> Completion:
        url = f"http://127.0.0.1:{server.port}/replay/{name}/v1"
        async with StreamingClient(url, "m") as client:
            return await client.complete(prompt)

    return asyncio.run(go())


ANSWER = "The answer is 42."
TEXT = " 42\n\nQuestion: What is"
CONTINUOUS = "vllm_completions_continuous_usage"
# name: (status, text, prompt, completion, cached, source, prompt_n, prompt_ms, predicted_ms)
EXPECTED = {
    "llama_server_chat": ("ok", ANSWER, 31, 7, 0, "usage", 31, 95.812, 61.337),
    "llama_server_chat_cached": ("ok", ANSWER, 31, 7, 30, "usage", 1, 9.104, 61.337),
    "llama_server_completions": ("truncated", TEXT, 57, 8, 0, "usage", 57, 140.5, 70.25),
    "ollama_chat": ("ok", ANSWER, 31, 7, None, "usage", None, None, None),
    # every chunk has a zero usage; the last chunk's real one wins
    "ollama_completions": ("ok", " 42\n\nQuestion", 57, 5, None, "usage", None, None, None),
    "vllm_chat": ("ok", ANSWER, 31, 7, 16, "usage", None, None, None),
    CONTINUOUS: ("truncated", TEXT, 57, 8, None, "usage", None, None, None),
    "openai_chat": ("ok", ANSWER, 31, 7, 0, "usage", None, None, None),
}


def test_every_fixture_is_covered():
    names = {p.stem for p in STREAMS.glob("*.sse")}
    assert names == set(EXPECTED) | {"llama_server_error"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_stream_shapes_parse_to_the_servers_figures(server, name):
    status, text, prompt, completion, cached, source, prompt_n, prompt_ms, predicted_ms = EXPECTED[
        name
    ]
    result = replay(server, name)
    assert result.error is None and result.status == status
    assert result.text == text
    assert (result.prompt_tokens, result.completion_tokens) == (prompt, completion)
    assert result.cached_tokens == cached and result.token_count_source == source
    assert (result.server_prompt_n, result.server_prompt_ms) == (prompt_n, prompt_ms)
    assert result.server_predicted_ms == predicted_ms
    # one streamed piece per token in these answers; the role-only first chunks carry none
    assert len(result.chunk_times) == completion
    assert result.t_first_token == result.chunk_times[0]


def test_llama_servers_in_stream_error_is_a_server_error_row(server):
    result = replay(server, "llama_server_error")
    assert result.status == "error" and result.error_kind == "server"
    assert result.error == "server error in stream: Context size has been exceeded."
