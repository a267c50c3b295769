"""A scripted tool-calling "model" behind an OpenAI-compatible streaming chat endpoint (aiohttp),
for tests of what a tool run does with each way a model can call tools badly.

What it does is chosen by a marker in the item's question (the last user message), and by the
last message of the conversation (a tool answer or not):

- ``[good]``: calls ``calculator`` with ``6 * 7``; after the result, answers ``Answer: <result>``;
- ``[malformed]``: calls ``calculator`` with arguments that are not JSON;
- ``[unknown]``: calls a tool it was not offered (``weather``);
- ``[raising]``: calls ``calculator`` with ``1 / 0`` (the tool fails);
- ``[forever]``: calls ``calculator`` again after every result, never answering;
- ``[broken]``: streams a tool call fragment of the wrong shape (``tool_calls`` an object).

After a tool answer that is an error (``error: …``) the model gives up: ``Answer: unknown``.
Chunks have llama-server's shape (a role chunk, one chunk per call with id, name and the whole
arguments, finish_reason ``tool_calls``, then a usage chunk).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from endpoints.hostile_server import app_in_thread

MODEL = "toolbot"
MARKER = re.compile(r"\[(good|malformed|unknown|raising|forever|broken)\]")


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": choices, **extra}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def _reply(messages: list[dict[str, Any]], turn: int) -> tuple[str, Any]:
    """('call', (name, arguments)) or ('text', answer) or ('broken', None)."""
    asked = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    found = MARKER.search(asked)
    case = found.group(1) if found else "good"
    last = messages[-1]
    if case == "broken":
        return "broken", None
    if last["role"] == "tool" and case != "forever":
        content = str(last["content"])
        return "text", "Answer: unknown" if content.startswith("error:") else f"Answer: {content}"
    calls = {
        "good": ("calculator", '{"expression": "6 * 7"}'),
        "malformed": ("calculator", '{"expression": 6 * 7'),
        "unknown": ("weather", '{"city": "Paris"}'),
        "raising": ("calculator", '{"expression": "1 / 0"}'),
        "forever": ("calculator", '{"expression": "1 + 1"}'),
    }
    return "call", calls[case]


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    messages = body["messages"]
    turn = sum(1 for m in messages if m["role"] == "tool")
    kind, what = _reply(messages, turn)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_chunk({"role": "assistant", "content": None}))
    if kind == "broken":
        await response.write(_chunk({"tool_calls": {"index": 0}}))
        finish = "tool_calls"
    elif kind == "call":
        name, arguments = what
        await response.write(_chunk({"tool_calls": [{"index": 0, "id": f"call_{turn}",
            "type": "function", "function": {"name": name, "arguments": arguments}}]}))  # fmt: skip
        finish = "tool_calls"
    else:
        await response.write(_chunk({"content": what}))
        finish = "stop"
    await response.write(_chunk({}, finish))
    usage = {"prompt_tokens": 20 + 10 * len(messages), "completion_tokens": 8, "total_tokens": 0}
    await response.write(_chunk(None, usage=usage))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    return app


@contextmanager
def serving() -> Iterator[str]:
    """The scripted model on a free loopback port; its base URL (…/v1)."""
    with app_in_thread(make_app) as port:
        yield f"http://127.0.0.1:{port}/v1"
