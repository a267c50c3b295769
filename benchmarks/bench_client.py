"""Is the client ever the bottleneck? perwatt's load generator against a bare loop and GuideLLM.

Starts benchmarks/loopback_server.py (a fast OpenAI-compatible streaming server, 8 chunks per
answer) in its own process, then in this one command measures against it:

1. a bare asyncio + aiohttp loop (the floor: stream, split lines, json-decode each chunk);
2. perwatt's load generator: `run_closed_loop` driving `StreamingClient.complete` (the code path
   `perwatt run` uses), recording the same timings a run records;
3. GuideLLM (if `--guidellm PATH_TO_guidellm` is given), throughput mode, same server.

For each: streamed requests/s and client CPU per request (this process's CPU for 1 and 2;
GuideLLM's process-tree CPU for 3). Prints the ratios perwatt/bare and perwatt/GuideLLM.

Usage: .venv/bin/python benchmarks/bench_client.py [--requests 20000] [--concurrency 64]
       [--guidellm /path/to/venv/bin/guidellm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from perwatt.endpoints.client import ChatMessage, Prompt, StreamingClient
from perwatt.load import run_closed_loop

SERVER = Path(__file__).with_name("loopback_server.py")
BODY = {"model": "loopback", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bare_loop(url: str, n: int, concurrency: int) -> int:
    ok = 0
    remaining = n
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                async with s.post(f"{url}/chat/completions", json=BODY) as response:
                    async for line in response.content:
                        if line.startswith(b"data: ") and line[6:12] != b"[DONE]":
                            json.loads(line[6:])
                ok += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def perwatt_loop(url: str, n: int, concurrency: int) -> int:
    prompt = Prompt(api="chat", messages=(ChatMessage("user", "hi"),))
    done: list[str] = []
    clock = time.monotonic
    async with StreamingClient(url, "loopback", max_connections=concurrency, clock=clock) as c:

        async def send(job: int, t_scheduled: float) -> tuple[float, object]:
            return t_scheduled, await c.complete(prompt)

        await run_closed_loop(
            list(range(n)), send, concurrency=concurrency, clock=clock,
            on_done=lambda job, sent: done.append(sent[1].status),  # type: ignore[attr-defined]
        )  # fmt: skip
    return done.count("ok")


def measure(name: str, coro_factory, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    cpu0, t0 = time.process_time(), time.perf_counter()
    ok = asyncio.run(coro_factory())
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert ok == n, f"{name}: only {ok} of {n} requests succeeded"
    print(f"{name:<10} {n / wall:8.0f} req/s   {1000 * cpu / n:6.3f} ms client CPU/request")
    return n / wall, 1000 * cpu / n


def guidellm(exe: str, url: str, n: int, concurrency: int) -> tuple[float, float] | None:
    """GuideLLM 0.8.x, throughput profile, plain prompts from a file (no tokenizer download)."""
    prompts = Path("/tmp/perwatt-guidellm-prompts.json")
    prompts.write_text(json.dumps([{"prompt": "hi"} for _ in range(100)]))
    report = Path("/tmp/perwatt-guidellm-report.json")
    cmd = [exe, "run", "--backend", f"kind=openai_http,target={url.removesuffix('/v1')}",
           "--profile", f"kind=throughput,max_concurrency={concurrency}",
           "--constraint", f"kind=max_requests,count={n}",
           "--data", f"kind=json_file,path={prompts}",
           "--output", f"kind=json,path={report}", "--disable-console-interactive"]  # fmt: skip
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    cpu = 0.0
    out, _ = "", None
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree = [proc, *proc.children(recursive=True)]
            cpu = max(cpu, sum(sum(p.cpu_times()[:2]) for p in tree))
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        print(f"guidellm failed ({proc.returncode}): {out.strip().splitlines()[-3:]}")
        return None
    bench = json.loads(report.read_text())["benchmarks"][0]
    # GuideLLM's own figure: successful requests per second over its measured window.
    rps = float(bench["metrics"]["requests_per_second"]["successful"]["mean"])
    print(f"{'guidellm':<10} {rps:8.0f} req/s   {1000 * cpu / n:6.3f} ms client CPU/request "
          "(process tree, start-up included)")  # fmt: skip
    return rps, 1000 * cpu / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--guidellm", help="path to a guidellm executable (its own venv)")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1"
        n, c = args.requests, args.concurrency
        # Alternate the two and keep each one's best round, so warm-up and noise from this
        # shared machine do not favour whichever runs second.
        rounds = [
            (measure("bare", lambda: bare_loop(url, n, c), n),
             measure("perwatt", lambda: perwatt_loop(url, n, c), n))
            for _ in range(args.rounds)
        ]  # fmt: skip
        bare = max((r[0] for r in rounds), key=lambda m: m[0])
        mine = max((r[1] for r in rounds), key=lambda m: m[0])
        print(f"best: bare {bare[0]:.0f} req/s {bare[1]:.3f} ms; "
              f"perwatt {mine[0]:.0f} req/s {mine[1]:.3f} ms")  # fmt: skip
        print(f"perwatt / bare loop: {mine[0] / bare[0]:.2f}× requests/s, "
              f"{mine[1] / bare[1]:.2f}× CPU per request")  # fmt: skip
        # The same ratio within each round (the two ran back to back), less sensitive to what
        # else the machine was doing than best against best.
        ratios = sorted(r[1][0] / r[0][0] for r in rounds)
        print(f"per-round perwatt / bare requests/s: median {statistics.median(ratios):.2f}× "
              f"(min {ratios[0]:.2f}×, max {ratios[-1]:.2f}×)")  # fmt: skip
        if args.guidellm:
            theirs = guidellm(args.guidellm, url, min(n, 3000), c)
            if theirs:
                print(f"perwatt / GuideLLM: {mine[0] / theirs[0]:.1f}× requests/s")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
