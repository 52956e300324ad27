#!/usr/bin/env python3
"""A generated fleet for the daemon benchmarks (gate_load.sh, restart.sh).

    fleet.py specs DIR --services N --slos K --target URL   # N spec files, K SLOs each
    fleet.py serve PORT --services N --slos K [--noise M]   # their scrape target, on loopback

`--noise M` adds M series no SLO selects (other services' requests on the same metric name), as
on a shared target where the SLOs use a small part of what is exposed.

The target serves `gen_requests_total{svc,slo,code}` for every SLO, with counters that are a
function of time since start (10 req/s per SLO, as floats, so every ratio is exact). Every 50th SLO fails 5% of its requests, so
its page fires and its service freezes (events, transitions); the rest fail 0.05%, half a
99.9% budget. Standard library only.
"""

import argparse
import http.server
import os
import sys
import time

RATE = 10.0
BASE = 1_000_000


def names(services, slos):
    for i in range(services):
        svc = f"gen-{i:05d}"
        yield svc, [f"s{k:02d}" for k in range(slos)]


METRIC = "gen_requests_total"


def error_share(svc_index, slo_index, slos):
    return 0.05 if (svc_index * slos + slo_index) % 50 == 0 else 0.0005


def write_specs(args):
    os.makedirs(args.dir, exist_ok=True)
    for i, (svc, slo_names) in enumerate(names(args.services, args.slos)):
        lines = [f"service: {svc}", "slos:"]
        for name in slo_names:
            lines += [
                f"  - name: {name}",
                "    objective: 99.9",
                "    window: 30d",
                "    sli:",
                f"      errors: '{METRIC}{{svc=\"{svc}\",slo=\"{name}\",code=\"500\"}}'",
                f"      total: '{METRIC}{{svc=\"{svc}\",slo=\"{name}\"}}'",
            ]
        lines += [
            "source:",
            "  scrape:",
            f"    targets: ['{args.target}']",
            f"    interval: {args.interval}",
            f"    timeout: {args.interval}",
        ]
        with open(os.path.join(args.dir, f"{svc}.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")


def serve(args):
    started = time.monotonic()
    fleet = list(names(args.services, args.slos))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            elapsed = time.monotonic() - started
            out = [f"# TYPE {METRIC} counter"]
            for i, (svc, slo_names) in enumerate(fleet):
                for k, name in enumerate(slo_names):
                    # Float counters (valid in the text format) keep every ratio exact.
                    total = BASE + RATE * elapsed
                    errors = total * error_share(i, k, args.slos)
                    ok = total - errors
                    out.append(f'{METRIC}{{svc="{svc}",slo="{name}",code="200"}} {ok}')
                    out.append(f'{METRIC}{{svc="{svc}",slo="{name}",code="500"}} {errors}')
            noise = BASE + RATE * elapsed
            out.extend(f'{METRIC}{{svc="noise-{j}",slo="s00",code="200"}} {noise}' for j in range(args.noise))
            body = ("\n".join(out) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("specs")
    s.add_argument("dir")
    s.add_argument("--target", required=True)
    s.add_argument("--interval", default="5s")
    t = sub.add_parser("serve")
    t.add_argument("port", type=int)
    t.add_argument("--noise", type=int, default=0)
    for q in (s, t):
        q.add_argument("--services", type=int, required=True)
        q.add_argument("--slos", type=int, required=True)
    args = p.parse_args()
    write_specs(args) if args.cmd == "specs" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
