"""Benchmark: ``minroots serve`` under 1, 4 and 16 concurrent clients, with the ``openai`` client.

Book chapter 14, "Deployment" (``book/14_deployment.md``); results in ``benchmarks/README.md``.

Run:  minroots train --out runs/default
      python benchmarks/serve.py --checkpoint runs/default [--requests 96] [--soak 500]

The script starts ``minroots serve`` on a free port of 127.0.0.1 (or uses ``--url``), then for
each concurrency level runs that many client threads, each sending streamed completions one
after another until ``--requests`` have been sent at that level (or ``--max-seconds`` have
passed). Each request asks for ``--tokens`` tokens (sampled, temperature 0.8). Reported per
level:

- **aggregate tokens/s**: completion tokens of all requests / wall time of the level;
- **TTFT p50 / p99**: time from sending a request to its first piece of text;
- **per-request tokens/s** (median): a request's tokens / its time from first to last piece;
- **errors**: requests that failed (must be 0).

The clients run on the same machine as the server: the last column (CPU seconds of the server
and of the client threads during the level) shows how much of the machine the clients took.

Then a soak: ``--soak`` requests at the highest concurrency, with the server's resident memory
(``/proc/PID/status``) read before and after; it should not grow. The goals of the issue: 16
clients get at least 4x the aggregate tokens/s of 1 client, and p99 TTFT stays under 1 s at 4.
Every loop is bounded in count and in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "minroots", "serve", "--checkpoint", checkpoint, "--port",
         str(port), "--max-batch", str(max_batch), "--max-queue", "256"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=5).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("minroots serve did not start") from None
            time.sleep(0.2)


def rss_mib(pid: int | None) -> float | None:
    path = Path(f"/proc/{pid}/status")
    if pid is None or not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid`` (Linux), or of this process when None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    path = Path(f"/proc/{pid}/stat")
    if not path.exists():
        return None
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_request(client, model: str, tokens: int, seed: int) -> dict:
    """Send one streamed completion; its TTFT, duration, tokens, or the error."""
    start = time.perf_counter()
    first = last = None
    usage = 0
    try:
        stream = client.completions.create(model=model, prompt="\n", max_tokens=tokens,
                                           temperature=0.8, seed=seed, stream=True,
                                           stream_options={"include_usage": True})  # fmt: skip
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].text:
                last = time.perf_counter()
                first = first or last
    except Exception as exc:  # counted, reported, never hidden
        return {"error": f"{type(exc).__name__}: {exc}"}
    if first is None:
        return {"error": "no text came back"}
    return {"ttft": first - start, "time": last - start, "stream": last - first, "tokens": usage}


def run_level(url: str, model: str, clients: int, requests: int, tokens: int,
              max_seconds: float) -> tuple[list[dict], float]:  # fmt: skip
    """``clients`` threads sending requests until ``requests`` are done or time runs out."""
    import openai

    results: list[dict] = []
    lock = threading.Lock()
    sent = [0]
    deadline = time.monotonic() + max_seconds

    def worker(k: int) -> None:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= requests:
                    return
                sent[0] += 1
                seed = sent[0]
            r = one_request(client, model, tokens, seed)
            with lock:
                results.append(r)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/default", help="run or checkpoint to serve")
    parser.add_argument("--url", default=None, help="use a running server instead")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=96, help="requests per level (96)")
    parser.add_argument("--tokens", type=int, default=48, help="tokens per request (48)")
    parser.add_argument("--soak", type=int, default=500, help="requests of the RSS soak (500)")
    parser.add_argument("--max-seconds", type=float, default=300, help="time cap per level (300)")
    args = parser.parse_args(argv)
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.checkpoint, max(args.levels))
    try:
        import openai

        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        model = client.models.list().data[0].id
        run_level(url, model, 2, 4, args.tokens, 60)  # warm-up
        print(f"server {url}, model {model!r}, {args.tokens} tokens per request")
        print()
        print("| clients | requests | errors | aggregate tokens/s | TTFT p50 (s) | TTFT p99 (s) "
              "| per-request tokens/s (median) | CPU s server / clients |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        pid = proc.pid if proc is not None else None
        aggregate, p99 = {}, {}
        for clients in args.levels:
            cpu = cpu_seconds(pid) if pid is not None else None, cpu_seconds(None)
            results, wall = run_level(url, model, clients, args.requests, args.tokens,
                                      args.max_seconds)  # fmt: skip
            server_cpu = "n/a" if cpu[0] is None else f"{cpu_seconds(pid) - cpu[0]:.1f}"
            client_cpu = cpu_seconds(None) - cpu[1]
            ok = [r for r in results if "error" not in r]
            errors = [r["error"] for r in results if "error" in r]
            aggregate[clients] = sum(r["tokens"] for r in ok) / wall
            ttft = [r["ttft"] for r in ok] or [float("nan")]
            p99[clients] = percentile(ttft, 99)
            per = statistics.median(
                [r["tokens"] / r["stream"] for r in ok if r["stream"] > 0] or [0]
            )
            print(f"| {clients} | {len(results)} | {len(errors)} | {aggregate[clients]:,.0f} | "
                  f"{percentile(ttft, 50):.3f} | {p99[clients]:.3f} | {per:,.0f} | "
                  f"{server_cpu} / {client_cpu:.1f} |")  # fmt: skip
            for e in errors[:3]:
                print(f"    error: {e}")
        print()
        lo, hi = min(args.levels), max(args.levels)
        if lo in aggregate and aggregate[lo] > 0:
            print(f"{hi} clients / {lo} client aggregate: {aggregate[hi] / aggregate[lo]:.2f}x "
                  "(goal >= 4x)")  # fmt: skip
        if 4 in p99:
            print(f"TTFT p99 at 4 clients: {p99[4]:.3f} s (goal < 1 s)")
        before = rss_mib(pid)
        results, wall = run_level(url, model, hi, args.soak, args.tokens, args.max_seconds * 4)
        after = rss_mib(pid)
        errors = sum("error" in r for r in results)
        rss = "n/a (--url)" if before is None else f"{before:.1f} -> {after:.1f} MiB"
        print(f"soak: {len(results)} requests at {hi} clients in {wall:.1f} s, {errors} errors; "
              f"server RSS {rss}")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
