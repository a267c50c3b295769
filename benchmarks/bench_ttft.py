"""How much of perwatt's TTFT is perwatt? Client TTFT against an independent server-side clock.

Starts benchmarks/loopback_server.py with ``--stamp``: the server stamps ``time.monotonic()``
(CLOCK_MONOTONIC is system-wide on Linux, so the two processes share it) when the first byte of
a request arrives and just before it writes the first token, ``--first-token-ms`` later. For each
request, client TTFT minus server TTFT is the time the client adds on its own:

- send side: t_arrive − t_sent (building and writing the request, the kernel, the server's read);
- receive side: t_first_token − t_first_write (the kernel, reading and parsing the first chunk).

Clients, alternated for ``--rounds`` rounds at each concurrency level:

- ``perwatt``: `StreamingClient.complete`, the path `perwatt run` uses;
- ``aiohttp``: a bare aiohttp loop timing itself the obvious way (t_sent before `post(json=...)`);
- ``aiohttp+trace``: the same, with t_sent taken in a TraceConfig `on_request_headers_sent`
  hook: the latest point aiohttp exposes, to see what taking t_sent there would gain and cost.

Usage: .venv/bin/python benchmarks/bench_ttft.py [--requests 300] [--concurrency 1,16]
(Run it with PYTHONPATH pointing at another checkout's src/ to measure that client.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

import perwatt.endpoints.client as client_module
from perwatt.endpoints.client import ChatMessage, Prompt, StreamingClient

SERVER = Path(__file__).with_name("loopback_server.py")
# A realistic prompt: a few-shot chat prompt of about 2 kB.
SHOTS = "".join(
    f"Question: A farmer has {n} sheep and buys {n + 3} more. How many sheep now?\n"
    f"Answer: {n} + {n + 3} = {2 * n + 3}. The answer is {2 * n + 3}.\n\n"
    for n in range(12, 30)
)

# One sample: (request id, t_sent, t_first_token) on the monotonic clock.
Sample = tuple[int, float, float]
Runner = Callable[[str, list[int], int], Awaitable[list[Sample]]]


def text(i: int) -> str:
    return f"{SHOTS}[[id={i}]] Question: What is 6 times 7?\nAnswer:"


async def perwatt(url: str, ids: list[int], concurrency: int) -> list[Sample]:
    out: list[Sample] = []
    queue = list(reversed(ids))
    async with StreamingClient(url, "loopback", max_connections=concurrency) as client:

        async def worker() -> None:
            while queue:
                i = queue.pop()
                c = await client.complete(Prompt("chat", (ChatMessage("user", text(i)),)))
                assert c.status == "ok" and c.t_first_token is not None, c.error
                out.append((i, c.t_sent, c.t_first_token))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def bare(trace: bool) -> Runner:
    async def run(url: str, ids: list[int], concurrency: int) -> list[Sample]:
        out: list[Sample] = []
        queue = list(reversed(ids))
        sent_at: dict[int, float] = {}
        configs = []
        if trace:
            config = aiohttp.TraceConfig()

            async def headers_sent(session, ctx, params) -> None:  # type: ignore[no-untyped-def]
                sent_at[ctx.trace_request_ctx["id"]] = time.monotonic()

            config.on_request_headers_sent.append(headers_sent)
            configs.append(config)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, trace_configs=configs) as s:

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    body = {"model": "loopback", "stream": True, "max_tokens": 256,
                            "messages": [{"role": "user", "content": text(i)}]}  # fmt: skip
                    t_sent = time.monotonic()
                    t_first = None
                    async with s.post(
                        f"{url}/chat/completions", json=body, trace_request_ctx={"id": i}
                    ) as response:
                        async for line in response.content:
                            if line.startswith(b"data: ") and line[6:12] != b"[DONE]":
                                event = json.loads(line[6:])
                                if t_first is None and event["choices"][0]["delta"].get("content"):
                                    t_first = time.monotonic()
                    assert t_first is not None
                    out.append((i, sent_at.pop(i) if trace else t_sent, t_first))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return out

    return run


CLIENTS: dict[str, Runner] = {
    "perwatt": perwatt,
    "aiohttp": bare(False),
    "aiohttp+trace": bare(True),
}


def stamps(url: str) -> dict[int, tuple[float, float]]:
    async def get() -> dict[str, list[float]]:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/stamps") as response:
            return await response.json()  # type: ignore[no-any-return]

    return {int(k): (v[0], v[1]) for k, v in asyncio.run(get()).items()}


def ms(values: list[float], q: float) -> str:
    values = sorted(values)
    return f"{1000 * values[min(len(values) - 1, int(q * len(values)))]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300, help="per client, level and round")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-token-ms", type=float, default=5.0)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port), "--stamp",
         "--first-token-ms", str(args.first_token_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    print(f"client module: {client_module.__file__}")
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1"
        next_id = 0
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            samples: dict[str, list[Sample]] = {name: [] for name in args.clients.split(",")}
            cpu: dict[str, float] = dict.fromkeys(samples, 0.0)
            for _ in range(args.rounds):
                for name in samples:
                    ids = list(range(next_id, next_id + args.requests))
                    next_id += args.requests
                    cpu0 = time.process_time()
                    samples[name] += asyncio.run(CLIENTS[name](url, ids, concurrency))
                    cpu[name] += time.process_time() - cpu0
            server_stamps = stamps(url)
            print(f"\nconcurrency {concurrency}, {args.rounds} × {args.requests} requests each, "
                  f"server first token after {args.first_token_ms:g} ms "
                  "(ms, median / p90; CPU per request: the whole request)")  # fmt: skip
            print(f"{'client':<14} {'TTFT overhead':>16} {'send side':>16} {'receive side':>16}"
                  f" {'CPU/request':>12}")  # fmt: skip
            for name, rows in samples.items():
                over, send, recv = [], [], []
                for i, t_sent, t_first_token in rows:
                    t_arrive, t_write = server_stamps[i]
                    over.append((t_first_token - t_sent) - (t_write - t_arrive))
                    send.append(t_arrive - t_sent)
                    recv.append(t_first_token - t_write)
                print(f"{name:<14} {ms(over, 0.5):>7} / {ms(over, 0.9):>6} "
                      f"{ms(send, 0.5):>7} / {ms(send, 0.9):>6} {ms(recv, 0.5):>7} / "
                      f"{ms(recv, 0.9):>6} {1000 * cpu[name] / len(rows):>9.3f} ms")  # fmt: skip
            median = {n: statistics.median((f - s) - (w - a) for i, s, f in r
                                           for a, w in [server_stamps[i]])
                      for n, r in samples.items()}  # fmt: skip
            print("medians (ms): " + ", ".join(f"{n} {1000 * v:.3f}" for n, v in median.items()))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
