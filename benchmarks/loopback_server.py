"""A fast OpenAI-compatible streaming server on loopback, with fault injection.

It answers POST /v1/chat/completions and /v1/completions with a streamed (SSE) answer of a fixed
number of chunks, and GET /v1/models. It exists to measure a load generator (the client must
never be the bottleneck) and to test how perwatt handles failing endpoints. Faults, each drawn
per request from a seeded RNG:

- ``--error-rate``: answer HTTP 500;
- ``--drop-rate``: send half the stream, then close the connection mid-stream;
- ``--stall-rate``: send the headers and one chunk, then never finish (the client must time out).

With ``--stamp`` it is also an independent clock for TTFT: it stamps ``time.monotonic()``
(CLOCK_MONOTONIC, system-wide on Linux, so comparable with the client's) when the first byte of
a request arrives and just before it writes the first token (after ``--first-token-ms``), keyed
by the ``[[id=N]]`` marker in the request body; ``GET /stamps`` returns them as JSON
``{"N": [t_arrive, t_first_write], ...}`` (benchmarks/bench_ttft.py reads them).

Written on raw asyncio protocols so that one process serves several thousand streamed
requests per second on one core.

Usage: python benchmarks/loopback_server.py --port 8999 [--tokens 8] [--error-rate 0.1] ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import time

MODEL = "loopback"


def _sse_chunks(tokens: int, chat: bool) -> list[bytes]:
    chunks = []
    for i in range(tokens):
        text = f"t{i} " if i < tokens - 1 else "Answer: 42"
        if chat:
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            event = {"id": "x", "object": "chat.completion.chunk", "model": MODEL,
                     "choices": [choice]}  # fmt: skip
        else:
            choice = {"index": 0, "text": text, "finish_reason": None}
            event = {"id": "x", "object": "text_completion", "model": MODEL, "choices": [choice]}
        chunks.append(f"data: {json.dumps(event)}\n\n".encode())
    final = {"index": 0, "finish_reason": "stop"}
    final |= {"delta": {}} if chat else {"text": ""}
    usage = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
    last = {"id": "x", "choices": [final], "usage": usage}
    chunks.append(f"data: {json.dumps(last)}\n\n".encode())
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b'Content-Length: 40\r\n\r\n{"error": "injected fault (error-rate)"}'
)
MODELS_BODY = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
MODELS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(MODELS_BODY),
    MODELS_BODY,
)


class Options:
    def __init__(self, args: argparse.Namespace) -> None:
        self.tokens = args.tokens
        self.error_rate = args.error_rate
        self.drop_rate = args.drop_rate
        self.stall_rate = args.stall_rate
        self.rng = random.Random(args.seed)
        full = {chat: _sse_chunks(args.tokens, chat) for chat in (True, False)}
        self.full = {chat: HEAD + b"".join(_chunked(c) for c in cs) + b"0\r\n\r\n"
                     for chat, cs in full.items()}  # fmt: skip
        self.half = {chat: HEAD + b"".join(_chunked(c) for c in cs[: len(cs) // 2])
                     for chat, cs in full.items()}  # fmt: skip
        self.stall = {chat: HEAD + _chunked(cs[0]) for chat, cs in full.items()}
        self.stamp = args.stamp
        self.first_token_s = args.first_token_ms / 1000
        self.first = {chat: HEAD + _chunked(cs[0]) for chat, cs in full.items()}
        self.rest = {chat: b"".join(_chunked(c) for c in cs[1:]) + b"0\r\n\r\n"
                     for chat, cs in full.items()}  # fmt: skip
        self.stamps: dict[str, list[float]] = {}


_ID = re.compile(rb"\[\[id=(\d+)\]\]")


class Http(asyncio.Protocol):
    def __init__(self, options: Options) -> None:
        self.options = options
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.t_arrive = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.buffer:  # the first bytes of a request
            self.t_arrive = time.monotonic()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.respond(head.split(b" ", 2), body)

    def respond(self, request_line: list[bytes], body: bytes = b"") -> None:
        assert self.transport is not None
        method, path = request_line[0], request_line[1]
        opts = self.options
        if method == b"GET":
            if path.endswith(b"/stamps"):
                payload = json.dumps(opts.stamps).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
            else:
                self.transport.write(MODELS)
            return
        chat = path.endswith(b"/chat/completions")
        if opts.stamp:
            found = _ID.search(body)
            key = found.group(1).decode() if found else str(len(opts.stamps))
            asyncio.get_running_loop().call_later(
                opts.first_token_s, self.first_token, chat, key, self.t_arrive
            )
            return
        draw = opts.rng.random()
        if draw < opts.error_rate:
            self.transport.write(ERROR)
        elif draw < opts.error_rate + opts.drop_rate:
            self.transport.write(opts.half[chat])
            self.transport.close()
        elif draw < opts.error_rate + opts.drop_rate + opts.stall_rate:
            self.transport.write(opts.stall[chat])  # and never finish
        else:
            self.transport.write(opts.full[chat])

    def first_token(self, chat: bool, key: str, t_arrive: float) -> None:
        assert self.transport is not None
        opts = self.options
        t_first = time.monotonic()
        self.transport.write(opts.first[chat])
        opts.stamps[key] = [t_arrive, t_first]
        # The other tokens a little later, as a server decoding them would.
        asyncio.get_running_loop().call_later(0.001, self.transport.write, opts.rest[chat])


async def serve(args: argparse.Namespace) -> None:
    options = Options(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Http(options), "127.0.0.1", args.port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{args.port}/v1", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--stall-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stamp", action="store_true", help="stamp arrival and first write")
    parser.add_argument("--first-token-ms", type=float, default=5.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
