#!/usr/bin/env python3
"""Slow and silent clients against the daemon's HTTP API (issue 14, "Bounded API").

    benches/slow_clients.py --binary target/release/sloguard [--partial-wait 30] [--silent 1000]

Starts the given sloguard binary on loopback (a temp data dir, one service scraping a tiny
target this script serves, an API token configured, the daemon's fd limit set to
--daemon-nofile, 1024 by default as in a shell) and measures, in this order:

1. RSS before and after 100 unauthenticated POSTs to the overrides endpoint, each announcing
   1.9 MB and withholding the last byte, with the 100 sockets still held; and after they close.
2. How long a connection that sent half a request head stays open (capped at --partial-wait).
3. The daemon's fds and RSS with --silent connections that never send a byte, and how many of
   them the daemon still holds open after a second.
4. Gate latency (fresh connection per request: connect, GET /v1/gate/<service>, read) while those
   silent connections are held: median and max over --gate-requests requests, and failures (no
   answer within 5 s).

The daemon uses its default API limits (the config sets only the token), so the same config runs
the old build, which refuses unknown keys. Loopback only, every loop bounded, every process and
socket this script opened is closed at the end. Standard library only.
"""

import argparse
import http.server
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SERVICE = "bench"
TOKEN = "slow-clients-bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_target(port):
    """A scrape target with one good/total pair of counters."""
    started = time.monotonic()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            total = 1000 + 10 * (time.monotonic() - started)
            body = (
                "# TYPE bench_requests_total counter\n"
                f'bench_requests_total{{code="200"}} {total * 0.999}\n'
                f'bench_requests_total{{code="500"}} {total * 0.001}\n'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_config(dir, api_port, target_port):
    with open(os.path.join(dir, "spec.yaml"), "w") as f:
        f.write(
            f"service: {SERVICE}\n"
            "slos:\n"
            "  - name: availability\n"
            "    objective: 99.9\n"
            "    window: 30d\n"
            "    sli:\n"
            "      errors: 'bench_requests_total{code=\"500\"}'\n"
            "      total: 'bench_requests_total'\n"
            "source:\n"
            "  scrape:\n"
            f"    targets: ['http://127.0.0.1:{target_port}/metrics']\n"
            "    interval: 5s\n"
            "    timeout: 2s\n"
        )
    with open(os.path.join(dir, "sloguard.yaml"), "w") as f:
        f.write(
            f"listen: 127.0.0.1:{api_port}\n"
            "data_dir: state\n"
            "specs: spec.yaml\n"
            "api: { token_env: SLOGUARD_API_TOKEN }\n"
        )
    return os.path.join(dir, "sloguard.yaml")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def n_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def gate_once(port, timeout=5.0):
    """Seconds for one gate answer on a fresh connection, or None if none came within timeout."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET /v1/gate/{SERVICE} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return None
        return time.monotonic() - started
    except OSError:
        return None


def wait_ready(port, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"daemon exited with {proc.returncode}")
        if gate_once(port, timeout=1.0) is not None:
            return
        time.sleep(0.1)
    sys.exit(f"daemon not answering the gate within {seconds}s")


def is_open(s):
    """Whether the server still holds the connection: reads what it sent (an answer, if any)
    without blocking, and looks for the EOF or reset behind it."""
    s.setblocking(False)
    try:
        for _ in range(1000):
            if s.recv(65536) == b"":
                return False
        return True
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def withheld_posts(port, n, size):
    """n unauthenticated POSTs announcing `size` bytes and sending all but the last."""
    head = (
        f"POST /v1/services/{SERVICE}/overrides HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    body = b" " * (size - 1)
    socks, n_refused_early = [], 0
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(head + body)
        except OSError:
            # The server answered and closed before taking the whole body.
            n_refused_early += 1
        socks.append(s)
    return socks, n_refused_early


def partial_head_open_for(port, cap):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /v1/gate/{SERVICE} HTTP/1.1\r\nHost: bench\r\nX-Slow: ".encode())
    s.settimeout(cap)
    started = time.monotonic()
    try:
        s.recv(1)
        return time.monotonic() - started
    except socket.timeout:
        return None
    except OSError:
        return time.monotonic() - started
    finally:
        s.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--post-size", type=int, default=1_900_000)
    parser.add_argument("--partial-wait", type=float, default=30.0)
    parser.add_argument("--silent", type=int, default=1000)
    parser.add_argument("--gate-requests", type=int, default=50)
    parser.add_argument("--daemon-nofile", type=int, default=1024)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.silent + 256)), hard))

    dir = tempfile.mkdtemp(prefix="slow-clients-")
    api_port, target_port = free_port(), free_port()
    target = serve_target(target_port)
    config = write_config(dir, api_port, target_port)
    binary = os.path.join(dir, "sloguard")
    shutil.copy(args.binary, binary)
    nofile = args.daemon_nofile
    proc = subprocess.Popen(
        [binary, "run", "--config", config],
        env={**os.environ, "SLOGUARD_API_TOKEN": TOKEN, "RUST_LOG": "warn"},
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(dir, "daemon.log"), "w"),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)),
    )
    figures = {"label": args.label}
    held = []
    try:
        wait_ready(api_port, proc)
        time.sleep(1)
        figures["rss_start_kib"] = rss_kib(proc.pid)

        started = time.monotonic()
        socks, n_early = withheld_posts(api_port, args.posts, args.post_size)
        figures["posts_seconds"] = round(time.monotonic() - started, 2)
        figures["posts_refused_before_body"] = n_early
        time.sleep(1)
        figures["rss_posts_held_kib"] = rss_kib(proc.pid)
        figures["posts_still_open"] = sum(is_open(s) for s in socks)
        for s in socks:
            s.close()
        time.sleep(2)
        figures["rss_posts_closed_kib"] = rss_kib(proc.pid)

        open_for = partial_head_open_for(api_port, args.partial_wait)
        figures["partial_head_open_s"] = round(open_for, 2) if open_for is not None else f">{args.partial_wait}"

        figures["fds_before_silent"] = n_fds(proc.pid)
        n_connect_failures = 0
        for _ in range(args.silent):
            try:
                held.append(socket.create_connection(("127.0.0.1", api_port), timeout=2))
            except OSError:
                n_connect_failures += 1
        time.sleep(1)
        figures["silent_connect_failures"] = n_connect_failures
        figures["fds_silent_held"] = n_fds(proc.pid)
        figures["rss_silent_held_kib"] = rss_kib(proc.pid)
        figures["silent_still_open"] = sum(is_open(s) for s in held)

        latencies, n_failed = [], 0
        for _ in range(args.gate_requests):
            took = gate_once(api_port)
            if took is None:
                n_failed += 1
            else:
                latencies.append(took)
        figures["gate_answered"] = len(latencies)
        figures["gate_failed"] = n_failed
        if latencies:
            figures["gate_median_ms"] = round(statistics.median(latencies) * 1000, 2)
            figures["gate_max_ms"] = round(max(latencies) * 1000, 2)
        figures["daemon_alive"] = proc.poll() is None
    finally:
        for s in held:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        target.shutdown()
        shutil.rmtree(dir, ignore_errors=True)

    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
