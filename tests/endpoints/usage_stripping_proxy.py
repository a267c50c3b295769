"""A proxy in front of a real server that strips `usage` and `timings` from every streamed chunk,
as llama-cpp-python's server and many proxies send them: the answers are the server's own, the
token counts are gone. For tests of what perwatt counts then (endpoints/tokenizer.py).

``with serve_in_thread(upstream_root, hide_tokenizer=..., model_id=...) as proxy: proxy.base_url``

- every request is forwarded to `upstream_root` (e.g. ``http://127.0.0.1:8080``), the streamed
  ones rewritten chunk by chunk (each `data:` event re-serialised without the two keys);
- `hide_tokenizer`: `/tokenize`, `/detokenize`, `/apply-template` and `/extras/tokenize` answer
  404, as behind a proxy that passes only the OpenAI routes;
- `model_id`: `GET /v1/models` names this model instead of the server's (a model perwatt does
  not know, so that no packaged GGUF applies either).

`proxy.log` lists the paths it was asked for, in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKENIZER_ROUTES = ("/tokenize", "/detokenize", "/apply-template", "/extras/tokenize")


@dataclass
class Proxy:
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _strip(line: bytes) -> bytes:
    if not line.startswith(b"data:"):
        return line
    data = line[5:].strip()
    if not data or data == b"[DONE]":
        return line
    event = json.loads(data)
    if isinstance(event, dict):
        event.pop("usage", None)
        event.pop("timings", None)
    return b"data: " + json.dumps(event).encode() + b"\n"


def make_app(
    upstream: str, proxy: Proxy, hide_tokenizer: bool, model_id: str | None
) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def on_startup(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def on_cleanup(app: web.Application) -> None:
        await session["s"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        path = request.path
        proxy.log.append(path)
        if hide_tokenizer and path in TOKENIZER_ROUTES:
            raise web.HTTPNotFound(text="not here")
        if model_id is not None and path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": model_id}]})
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "accept", "authorization")
        }
        async with session["s"].request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as upstream_response:
            kind = upstream_response.headers.get("Content-Type", "")
            if "text/event-stream" not in kind:
                payload: Any = await upstream_response.read()
                return web.Response(
                    body=payload,
                    status=upstream_response.status,
                    content_type=kind.split(";")[0] or None,
                )
            response = web.StreamResponse(
                status=upstream_response.status, headers={"Content-Type": "text/event-stream"}
            )
            await response.prepare(request)
            async for line in upstream_response.content:
                await response.write(_strip(line))
            await response.write_eof()
            return response

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@contextmanager
def serve_in_thread(
    upstream_root: str, *, hide_tokenizer: bool = False, model_id: str | None = None
) -> Iterator[Proxy]:
    """The proxy on a free loopback port, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}
    proxy = Proxy(port=0)

    async def start() -> None:
        runner = web.AppRunner(
            make_app(upstream_root.rstrip("/"), proxy, hide_tokenizer, model_id),
            handle_signals=False,
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        proxy.port = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="usage-stripping-proxy", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the proxy did not start")
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
