#!/usr/bin/env python3
"""A generated fleet for the daemon benchmarks (gate_load.sh, restart.sh, groups_20k.sh).

    fleet.py specs DIR --services N --slos K --target URL [--groups G]  # N spec files, K SLOs each
    fleet.py serve PORT --services N --slos K [--noise M] [--groups G]  # their target, on loopback

`--noise M` adds M series no SLO selects (other services' requests on the same metric name), as
on a shared target where the SLOs use a small part of what is exposed.

The target serves `gen_requests_total{svc,slo,code}` for every SLO, with counters that are a
function of time since start (10 req/s per SLO, as floats, so every ratio is exact). Every 50th SLO fails 5% of its requests, so
its page fires and its service freezes (events, transitions); the rest fail 0.05%, half a
99.9% budget. Standard library only.

`--groups G` (G > 0; both commands need the same G) makes every SLO grouped: its spec gets
`group_by: [route]` (and `max_groups: G` when G is above the default 1,000), and the target
serves `gen_requests_total{svc,slo,route,code}` for routes `r0` .. `r{G-1}`, each route 10 req/s,
so an SLO becomes G instances, each with the traffic of one ungrouped SLO. Every route of every
50th SLO fails 5% (2% of the instances, the same 4 services in 100 frozen as without groups);
the rest fail 0.05%. The default, 0, is the ungrouped fleet above.

The page is built from label strings made once at start, so 40,000 series (100 x 2 x 100
groups x 2 codes) render in tens of milliseconds. With groups, each body is also cached for the
second it was made in, so scrapes within a second share one rendering (counters then advance
in whole seconds); without, every scrape renders its own instant, as before.
"""

import argparse
import http.server
import os
import sys
import threading
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


def routes(groups):
    """The `route` label values of a grouped fleet: `r0` .. `r{G-1}`; `[None]` without groups."""
    return [f"r{g}" for g in range(groups)] if groups > 0 else [None]

# Above this, a grouped spec must raise `max_groups` (the engine's default cap).
DEFAULT_MAX_GROUPS = 1000


def write_specs(args):
    os.makedirs(args.dir, exist_ok=True)
    for i, (svc, slo_names) in enumerate(names(args.services, args.slos)):
        lines = [f"service: {svc}", "slos:"]
        for name in slo_names:
            lines += [
                f"  - name: {name}",
                "    objective: 99.9",
                "    window: 30d",
            ]
            if args.groups > 0:
                lines.append("    group_by: [route]")
                if args.groups > DEFAULT_MAX_GROUPS:
                    lines.append(f"    max_groups: {args.groups}")
            lines += [
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
    # Per line, in the order the page lists them: (text up to the value, index of its SLO's
    # error share, whether it is the error series). Labels are formatted once here; a rendering
    # formats only the four distinct values (two shares, ok and error).
    shares = (0.0005, 0.05)
    lines = []
    for i, (svc, slo_names) in enumerate(names(args.services, args.slos)):
        for k, name in enumerate(slo_names):
            share = shares.index(error_share(i, k, args.slos))
            for route in routes(args.groups):
                labels = f'svc="{svc}",slo="{name}"' + (f',route="{route}"' if route else "")
                lines.append((f"{METRIC}{{{labels},code=\"200\"}} ", share, False))
                lines.append((f"{METRIC}{{{labels},code=\"500\"}} ", share, True))
    noise = [f'{METRIC}{{svc="noise-{j}",slo="s00",code="200"}} ' for j in range(args.noise)]
    cache = {"second": None, "body": b""}
    lock = threading.Lock()

    def render(elapsed):
        # Float counters (valid in the text format) keep every ratio exact.
        total = BASE + RATE * elapsed
        values = []
        for share in shares:
            errors = total * share
            values.append((f"{total - errors}\n", f"{errors}\n"))
        out = [f"# TYPE {METRIC} counter\n"]
        out.extend(prefix + values[share][is_error] for prefix, share, is_error in lines)
        total_text = f"{total}\n"
        out.extend(prefix + total_text for prefix in noise)
        return "".join(out).encode()

    def body():
        elapsed = time.monotonic() - started
        if args.groups == 0:
            return render(elapsed)
        with lock:
            if cache["second"] != int(elapsed):
                cache["second"], cache["body"] = int(elapsed), render(elapsed)
            return cache["body"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            page = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

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
        q.add_argument("--groups", type=int, default=0, help="routes per SLO (0: ungrouped)")
    args = p.parse_args()
    write_specs(args) if args.cmd == "specs" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
