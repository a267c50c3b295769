"""Does the server bend with load? Fixed-length streamed requests at rising concurrency.

Every request asks for exactly `--tokens` completion tokens (the end-of-turn tokens are banned
with `logit_bias`, and llama-server also gets `ignore_eos`), so every server and every level
does the same work and only the serving differs. For each concurrency level it sends
`--requests` streamed chat requests, closed loop, and reports requests/s, completion tokens/s,
the median per-stream decode rate, and the server process tree's CPU seconds per request (what
perwatt's `estimated:cputime` energy follows: × 4 W per busy core by default).

By default it starts perwatt's managed llama-server on the packaged SmolLM2 with as many slots
as the largest level; `--endpoint URL --server-pid PID` measures a server you started instead
(e.g. `python -m llama_cpp.server`).

Usage: .venv/bin/python benchmarks/bench_server_load.py [--levels 1,2,4,8] [--requests 16]
       [--tokens 64] [--threads 2] [--endpoint http://127.0.0.1:PORT/v1 --server-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import psutil

# SmolLM2's end-of-text and end-of-turn tokens.
BANNED = {"0": -100, "2": -100}


def tree_cpu_s(pid: int) -> float:
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


async def one(session: aiohttp.ClientSession, url: str, model: str, i: int, tokens: int):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Write a long story about the number {i}."}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": BANNED,
        "ignore_eos": True,
    }
    t0 = time.monotonic()
    first = None
    chunks = 0
    usage = None
    async with session.post(f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.content:
            if not line.startswith(b"data: ") or line[6:12] == b"[DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    first = first or time.monotonic()
    done = time.monotonic()
    n = int(usage["completion_tokens"]) if usage else chunks
    decode = (n - 1) / (done - first) if first and done > first and n > 1 else None
    return n, decode, done - t0


async def level(url: str, model: str, concurrency: int, requests: int, tokens: int):
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def guarded(i: int):
            async with slots:
                return await one(session, url, model, i, tokens)

        await one(session, url, model, -1, 8)  # warm-up, not measured
        t0 = time.monotonic()
        results = await asyncio.gather(*(guarded(i) for i in range(requests)))
        return results, time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--endpoint", help="measure this /v1 URL instead of a managed server")
    parser.add_argument("--server-pid", type=int, help="with --endpoint: its pid, for CPU time")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]

    server = None
    if args.endpoint:
        url, pid, label = args.endpoint.rstrip("/"), args.server_pid, args.label or args.endpoint
    else:
        from perwatt.endpoints.catalogue import get_model
        from perwatt.endpoints.llamacpp import ServerSettings, start_server

        packaged = get_model(args.model)
        settings = ServerSettings(parallel=max(levels), n_threads=args.threads)
        server = start_server(packaged.path(), packaged.name, settings=settings)
        url, pid = server.base_url, server.pid
        label = args.label or f"llama-server -np {max(levels)}"
    rows = []
    try:
        for concurrency in levels:
            cpu0 = tree_cpu_s(pid) if pid else None
            results, wall = asyncio.run(level(url, args.model, concurrency, args.requests,
                                              args.tokens))  # fmt: skip
            cpu = tree_cpu_s(pid) - cpu0 if pid and cpu0 is not None else None
            tokens = sum(n for n, _, _ in results)
            decodes = [d for _, d, _ in results if d]
            rows.append({
                "server": label, "concurrency": concurrency, "requests": len(results),
                "completion_tokens": tokens, "wall_s": round(wall, 2),
                "req_per_s": round(len(results) / wall, 3), "tok_per_s": round(tokens / wall, 1),
                "stream_decode_tok_per_s_p50": round(statistics.median(decodes), 1),
                # includes the unmeasured warm-up request of 8 tokens
                "server_cpu_s_per_request": round(cpu / len(results), 3) if cpu else None,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
