"""Python function calls per cache-miss lookup: the gateway against the bare relays of bench_query_miss.py.

    .venv/bin/python bench/bench_miss_calls.py [--seconds 4] [--clients 50]

A steadier figure for comparing two versions on a shared machine, where CPU time per miss moves ±20 % between rounds:
the number of Python-level calls (cProfile's count, coroutine resumes included) the server makes per request moves a
few per cent with load (how many answers one event-loop pass handles), not with what else runs. It is a proxy, not the target: a call into orjson or pydantic-core counts one however long
it runs, so a change that swaps Python code for a C call looks better here than its CPU gain (bench_query_miss.py has
the CPU figures), and the methods dataclasses generate (all named `<string>`) count as one function, so creating
fewer dataclass objects hardly shows. Same load as bench_query_miss.py (wrk -c50, 999 distinct order numbers, 50 ms store latency, the
gateway's cache off); each server runs in this process under cProfile, the store and wrk in others. Needs wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_query_hit as hit  # noqa: E402
from bench_query_miss import _WRK_SCRIPT, _lua_string, drive, order_query  # noqa: E402


def wrk_script(numbers: list[int]) -> str:
    """A wrk Lua script cycling through pre-signed lookups of `numbers` (its path; the caller deletes it)."""
    lookups = [order_query(n) for n in numbers]
    lines = ["bodies = {", *(f"  {_lua_string(body.decode())}," for body, _ in lookups), "}", "headers = {"]
    for _, headers in lookups:
        lines.append("  {" + ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()) + "},")
    lines.append("}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(lines) + _WRK_SCRIPT)
        return fh.name


def run_wrk(script: str, url: str, seconds: float, clients: int) -> int:
    """Requests wrk completed (it fails on any error or non-2xx answer, like bench_query_miss.py)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = next(line for line in out.splitlines() if line.startswith("RESULT ")).split()
    if int(fields[4]) or "Non-2xx" in out:
        raise RuntimeError(f"errors during the run:\n{out}")
    return int(fields[1])


async def calls_per_request(serve: Callable[[], Coroutine[Any, Any, None]], port: int, script: str,
                            seconds: float, clients: int) -> tuple[float, int]:
    """(Python calls per request, requests) of the server `serve` starts on `port`, under wrk after a warm-up."""
    loop = asyncio.get_running_loop()
    # the servers are cancelled, not shut down: their sessions' "unclosed" complaints at exit are expected
    loop.set_exception_handler(lambda _, ctx: None if str(ctx.get("message", "")).startswith("Unclosed")
                               else loop.default_exception_handler(ctx))
    with contextlib.redirect_stdout(io.StringIO()):  # the servers print "ready" for a parent process
        server = asyncio.create_task(serve())
        await asyncio.sleep(1.0)
    url = f"http://127.0.0.1:{port}/bot/bench"
    try:
        await drive(url, [1001 + i for i in range(200)], clients)  # connections and first-use caches
        await loop.run_in_executor(None, run_wrk, script, url, 2, clients)  # settle
        profile = cProfile.Profile()
        profile.enable()
        try:
            requests = await loop.run_in_executor(None, run_wrk, script, url, seconds, clients)
        finally:
            profile.disable()
        stats = pstats.Stats(profile)
        calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
        return calls / requests, requests
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench_miss_calls: needs wrk (apt-get install wrk)")
        return 1
    store_port = hit.free_port()
    store = hit.start_server("--serve", "store", "--port", str(store_port), "--latency", str(args.latency),
                             "--orders", "1000")
    script = wrk_script([1001 + i for i in range(999)])
    servers: list[tuple[str, Callable[[int], Coroutine[Any, Any, None]]]] = [
        ("gateway (cache off)", lambda port: hit.serve_gateway(port, store_port, ttl=0)),
        ("bare relay (json)", lambda port: hit.serve_proxy(port, store_port)),
        ("bare relay (orjson)", lambda port: hit.serve_proxy(port, store_port, fast_json=True)),
    ]
    try:
        figures = []
        for label, serve in servers:
            port = hit.free_port()
            per_request, requests = asyncio.run(
                calls_per_request(lambda s=serve, p=port: s(p), port, script, args.seconds, args.clients))  # type: ignore[misc]
            figures.append(per_request)
            print(f"  {label:<22} {per_request:7.0f} Python calls per request ({requests} requests)", flush=True)
    finally:
        Path(script).unlink()
        hit.stop_server(store)
    print(f"cache-miss orders lookups: the gateway makes {figures[0] / figures[1]:.2f}x the json relay's Python calls "
          f"per request, {figures[0] / figures[2]:.2f}x the orjson relay's (moves a few % with load; CPU: bench_query_miss.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
