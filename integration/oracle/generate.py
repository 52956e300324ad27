#!/usr/bin/env python3
"""Seeded random replay scenarios for the oracle test: writes spec.yaml, series.prom and
scenario.json (what was generated, for humans) into a directory.

    python3 generate.py --seed 7 --out /tmp/s7

The same seed always gives the same files (only `random.Random(seed)` is used). A scenario is
one service with 1-3 SLOs over 2-4 days of 60 s samples, with features drawn at random so that
many seeds together cover what real recorded data does to `sloguard replay`: counter resets,
scrape gaps, series that appear or vanish mid-file, incidents from full outages to slow burns,
labels that only an unanchored regex would match, `!=`/`!~` selectors and missing labels, alert
tier overrides, freeze policies, HELP/TYPE per block, and series-major (promtool dump) order.
Incidents are sized against each SLO's error budget so most scenarios cross some threshold.
Python 3 standard library only.
"""

import argparse
import json
import math
import os
import random
import sys

T0 = 1767225600000  # 2026-01-01T00:00:00Z, as in the shipped scenarios
MINUTE = 60000
DAY_MIN = 1440
# Files stay under ~3 MB (lines are ~85 bytes) so 25 scenarios replay and check in well under a minute on 2 cores.
MAX_LINES = 35000

SERVICES = ["checkout", "payments", "search", "cart", "auth", "ledger", "shipping"]
OBJECTIVES = ["99", "99.5", "99.9", "99.95"]
# Mostly 30d (the SLO window never fills: budget over all data), sometimes short enough that an
# incident leaves the budget window before the data ends, which is what lifts a freeze.
WINDOWS = ["30d"] * 6 + ["28d", "7d", "2d", "1d"]
PAGE_POOL = [("1h", "5m", "14.4"), ("6h", "30m", "6"), ("2h", "10m", "10"), ("30m", "5m", "20"),
             ("12h", "1h", "4")]
# ("3d", "1d", "1"): both edges on 5-minute buckets, where sloguard interpolates.
TICKET_POOL = [("1d", "2h", "3"), ("3d", "6h", "1"), ("12h", "1h", "2"), ("2d", "4h", "1.5"), ("3d", "1d", "1")]
POLICIES = [None, ("0%", "10%"), ("5%", "20%"), ("10%", "10%"), ("25%", "40%"), ("0", "5"), ("50%", "60%")]


class Target:
    """One scraped process: its series, traffic shape and life events."""

    def __init__(self, rng, job, instance, extra=None):
        self.job, self.instance, self.extra = job, instance, dict(extra or {})
        self.rate = rng.uniform(20, 150)  # req/s, as in the shipped scenarios
        self.amp = rng.uniform(0.2, 0.6)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.start, self.end = 0, None
        self.gaps = []  # [(from, to)) minutes with no samples written
        self.resets = set()  # minutes at whose start the process restarted
        self.series = []  # [Series]

    def alive(self, m):
        return m >= self.start and (self.end is None or m < self.end)

    def scraped(self, m):
        return self.alive(m) and not any(a <= m < b for a, b in self.gaps)

    def requests(self, rng, m):
        day = 2 * math.pi * m / DAY_MIN
        r = self.rate * (1 + self.amp * math.sin(day + self.phase)) * (1 + rng.gauss(0, 0.05))
        return max(0, int(round(r * 60)))


class Series:
    def __init__(self, family, labels, value, first=0):
        self.family, self.labels, self.value, self.first = family, labels, value, first
        self.text = "%s{%s}" % (family.sample_name(labels), ",".join('%s="%s"' % kv for kv in labels
                                                                      if kv[0] != "__name__"))


class Family:
    def __init__(self, name, kind, help_text):
        self.name, self.kind, self.help = name, kind, help_text

    def sample_name(self, labels):
        return dict(labels).get("__name__", self.name)


def split(rng, n, p):
    """A binomial-ish draw of n events with probability p, cheap and deterministic."""
    if p <= 0 or n == 0:
        return 0
    if p >= 1:
        return n
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return min(n, max(0, int(round(rng.gauss(mean, sd)))))


def budget(objective):
    return (100 - float(objective)) / 100


def pick_incidents(rng, minutes, kind_pool, budget_frac):
    """Incidents as (start, end, error fraction, kind), sized against the SLO's budget."""
    out = []
    n = rng.choices([0, 1, 2, 3], weights=[1, 5, 3, 1])[0]
    for _ in range(n):
        kind = rng.choice(kind_pool)
        if kind == "outage":
            length, frac = rng.randint(5, 40), 1.0
        elif kind == "partial":
            length, frac = rng.randint(10, 120), min(0.9, budget_frac * rng.uniform(8, 60))
        else:  # slow burn: hours at a few times the budget rate; ticket territory
            length, frac = rng.randint(120, 16 * 60), budget_frac * rng.uniform(1.5, 8)
        start = rng.randint(30, max(31, minutes - length - 10))
        out.append((start, start + length, frac, kind))
    return out


def frac_at(incidents, m, base):
    f = base
    for a, b, frac, _ in incidents:
        if a <= m < b:
            f = max(f, frac)
    return f


def generate(seed):
    rng = random.Random(seed)
    svc = rng.choice(SERVICES)
    features = []
    slo_kinds = rng.sample(["availability", "latency", "rpc"], rng.choice([1, 1, 2, 2, 3]))
    if "availability" not in slo_kinds and rng.random() < 0.5:
        slo_kinds.insert(0, "availability")
    families = {
        "http": Family("http_requests_total", "counter", "Total HTTP requests by status code."),
        "lat": Family("http_request_duration_seconds", "histogram", "Request latency."),
        "rpc": Family("grpc_server_handled_total", "counter", "Completed RPCs by status."),
    }

    av_variant = rng.choice(["regex", "name_matcher", "alternation", "canary", "not_429", "good_not_5xx",
                             "job_regex"])
    n_http = rng.choice([1, 2])
    near_miss_code = rng.random() < 0.6
    near_miss_job = av_variant == "job_regex" or rng.random() < 0.2
    canary = av_variant == "canary"
    want_429 = av_variant == "not_429" or rng.random() < 0.3
    want_404 = rng.random() < 0.6  # not an error unless a selector says so; a distractor
    if "availability" not in slo_kinds:
        canary = near_miss_job = False  # only an availability selector could trip over them

    # Layout: time-major blocks (a concatenation of scrapes) or series-major (promtool dump).
    layout = rng.choices(["time", "series"], weights=[4, 1])[0]
    meta = rng.choice(["top", "per_block", "none"]) if layout == "time" else rng.choice(["top", "none"])

    def series_per_minute():
        """Lines per minute, the file size driver (HELP+TYPE per block cost about a line each)."""
        http = 3.5 + want_404 + want_429  # 200 500 503 [404] [429], and a 502 that may appear
        families = 1 + ("latency" in slo_kinds) + ("rpc" in slo_kinds)
        return (n_http * http + near_miss_code + canary * 3 + near_miss_job * 2
                + ("latency" in slo_kinds) * 2 * n_http + ("rpc" in slo_kinds) * 4
                + (meta == "per_block") * 1.5 * families)

    # Trim extras until the drawn length fits the line budget, and shorten only as a last resort:
    # long scenarios are the simpler ones (one SLO, one instance).
    days = rng.choice([2, 3, 4])
    while series_per_minute() * days * DAY_MIN > MAX_LINES:
        if want_429 and av_variant != "not_429":
            want_429 = False
        elif want_404:
            want_404 = False
        elif near_miss_job and av_variant != "job_regex":
            near_miss_job = False
        elif n_http > 1:
            n_http = 1
        elif len(slo_kinds) > 1:
            slo_kinds.pop()
        elif days > 2:
            days -= 1
        else:
            break
    minutes = days * DAY_MIN

    slos, targets = [], []
    http_targets = [Target(rng, svc, "i%d" % i) for i in range(n_http)]
    targets += http_targets
    if canary:
        targets.append(Target(rng, svc, "canary0", {"canary": "true"}))
        features.append("canary excluded via !=/!~ and a missing label")
    staging = None
    if near_miss_job:
        staging = Target(rng, svc + "-staging", "s0")
        targets.append(staging)
        features.append("near-miss job %s-staging" % svc)

    for kind in slo_kinds:
        objective = rng.choice(OBJECTIVES)
        slo = {"name": {"availability": "availability", "latency": "latency", "rpc": "rpc-availability"}[kind],
               "objective": objective, "window": rng.choice(WINDOWS), "kind": kind}
        j = 'job="%s"' % svc
        if kind == "availability":
            if av_variant == "regex":
                slo["sli"] = ("errors", 'http_requests_total{%s,code=~"5.."}' % j, "http_requests_total{%s}" % j)
            elif av_variant == "name_matcher":
                slo["sli"] = ("errors", '{__name__="http_requests_total",%s,code=~"5.."}' % j,
                              '{__name__="http_requests_total",%s}' % j)
            elif av_variant == "alternation":
                slo["sli"] = ("errors", 'http_requests_total{%s,code=~"500|502|503|504"}' % j,
                              "http_requests_total{%s}" % j)
            elif av_variant == "canary":
                excl = rng.choice(['canary!="true"', 'canary=""', 'instance!~"canary.*"'])
                slo["sli"] = ("errors", 'http_requests_total{%s,code=~"5..",%s}' % (j, excl),
                              "http_requests_total{%s,%s}" % (j, excl))
            elif av_variant == "not_429":
                slo["sli"] = ("errors", 'http_requests_total{%s,code=~"5.."}' % j,
                              'http_requests_total{%s,code!="429"}' % j)
            elif av_variant == "good_not_5xx":
                slo["sli"] = ("good", 'http_requests_total{%s,code!~"5.."}' % j, "http_requests_total{%s}" % j)
            else:
                slo["sli"] = ("errors", 'http_requests_total{job=~"%s",code=~"5.."}' % svc,
                              'http_requests_total{job=~"%s"}' % svc)
            features.append("availability selector: %s" % av_variant)
        elif kind == "latency":
            total = rng.choice(['http_request_duration_seconds_count{%s}' % j,
                                'http_request_duration_seconds_bucket{%s,le="+Inf"}' % j])
            slo["sli"] = ("good", 'http_request_duration_seconds_bucket{%s,le="0.25"}' % j, total)
        else:
            if rng.random() < 0.5:
                slo["sli"] = ("errors", 'grpc_server_handled_total{job="%s-rpc",grpc_code=~"Unavailable|Internal|'
                              'DeadlineExceeded"}' % svc, 'grpc_server_handled_total{job="%s-rpc"}' % svc)
            else:
                slo["sli"] = ("good", 'grpc_server_handled_total{job="%s-rpc",grpc_code=~"OK|NotFound"}' % svc,
                              'grpc_server_handled_total{job="%s-rpc",grpc_code!="Canceled"}' % svc)
        alerting = {}
        for sev, pool in (("page", PAGE_POOL), ("ticket", TICKET_POOL)):
            choice = rng.choices(["default", "list", "disabled"], weights=[10, 7, 2])[0]
            if choice == "list":
                alerting[sev] = rng.sample(pool, rng.randint(1, min(3, len(pool))))
            elif choice == "disabled":
                alerting[sev] = "disabled"
        if alerting:
            slo["alerting"] = alerting
            features.append("%s tiers: %s" % (slo["name"], {k: v if v == "disabled" else len(v)
                                                             for k, v in alerting.items()}))
        slos.append(slo)

    rpc_target = None
    if "rpc" in slo_kinds:
        rpc_target = Target(rng, svc + "-rpc", "r0")
        targets.append(rpc_target)

    # Incidents, per SLO kind, scaled to that SLO's budget.
    budgets = {s["kind"]: budget(s["objective"]) for s in slos}
    inc = {k: pick_incidents(rng, minutes, ["outage", "partial", "slow"], budgets[k]) if k in budgets else []
           for k in ("availability", "latency", "rpc")}
    for k, lst in inc.items():
        for a, b, frac, kind in lst:
            features.append("%s %s %s..%s min, %.3f%% bad" % (k, kind, a, b, frac * 100))
    # An outage may hit one instance only (partial outage of the service as a whole).
    outage_scope = {id(t): True for t in http_targets}
    if len(http_targets) > 1 and rng.random() < 0.5:
        outage_scope[id(http_targets[1])] = False
        features.append("availability incidents hit instance i0 only")

    # Life events: resets, gaps, late and vanishing series.
    # Half the restarts and gaps fall in an incident: there the first value after a reset, or
    # the jump after a gap, carries errors that a wrong reset or gap rule would lose or invent.
    incident_spans = [(a, b) for spans in inc.values() for a, b, _, _ in spans]

    def near_incident(lo, hi):
        if incident_spans and rng.random() < 0.5:
            a, b = rng.choice(incident_spans)
            return min(max(rng.randint(a - 20, b), lo), hi)
        return rng.randint(lo, hi)

    for t in targets:
        for _ in range(rng.choice([0, 0, 1, 2])):
            at = near_incident(1, minutes - 1)
            t.resets.add(at)
            features.append("reset %s at %d" % (t.instance, at))
    gap_pool = [t for t in targets if t is not staging]
    if len(targets) > 1 and rng.random() < 0.6:
        t = rng.choice(gap_pool)
        a = near_incident(10, minutes - 100)
        b = a + rng.randint(10, 90)
        t.gaps.append((a, b))
        if rng.random() < 0.5:
            # Restarted while nobody scraped it: the first value after the gap is everything
            # since the restart, all of which is increase under Prometheus' rule.
            t.resets.add(rng.randint(a + 1, b))
        features.append("gap %s %d..%d" % (t.instance, a, b))
    if len(http_targets) > 1 and rng.random() < 0.7:
        t = http_targets[1]
        t.start = rng.randint(60, minutes // 2)
        features.append("instance %s appears at %d" % (t.instance, t.start))
        if rng.random() < 0.5:
            t.end = rng.randint(t.start + 120, minutes - 1)
            features.append("instance %s vanishes at %d" % (t.instance, t.end))

    # Series per target; a code that first appears mid-file starts at its first increment.
    first_502 = min([a for a, _, f, k in inc["availability"] if k == "outage"], default=None)
    for t in targets:
        base = lambda lo, hi: rng.randint(lo, hi) if t.start == 0 else 0
        lab = [("job", t.job), ("instance", t.instance)] + sorted(t.extra.items())
        if t is rpc_target:
            for code in ["OK", "NotFound", "Unavailable", "Canceled"]:
                t.series.append(Series(families["rpc"], [("job", t.job), ("grpc_code", code)],
                                       base(10 ** 4, 10 ** 8) if code == "OK" else base(10, 10 ** 5)))
            continue
        fam = families["http"]
        if t is staging:
            codes = ["200", "503"]
        elif "canary" in t.extra:
            codes = ["200", "500", "503"]
        else:
            codes = ["200", "500", "503"] + ["404"] * want_404 + ["429"] * want_429
        if near_miss_code and t is http_targets[0]:
            codes.append("5000")  # a buggy exporter's status: `5..` must not match it
            features.append("near-miss code 5000")
        for code in codes:
            t.series.append(Series(fam, lab + [("code", code)],
                                   base(10 ** 6, 10 ** 8) if code == "200" else base(10, 10 ** 5)))
        if first_502 is not None and t in http_targets:
            t.series.append(Series(fam, lab + [("code", "502")], 0, first=first_502))
        if "latency" in slo_kinds and t in http_targets:
            # Only the two series the SLO reads: the file budget is better spent on more days.
            lf = families["lat"]
            start = base(10 ** 6, 10 ** 8)
            bucket = [("__name__", "http_request_duration_seconds_bucket")] + lab
            t.series.append(Series(lf, bucket + [("le", "0.25")], start))
            if any("_count" in s["sli"][2] for s in slos):
                t.series.append(Series(lf, [("__name__", "http_request_duration_seconds_count")] + lab, start))
            else:
                t.series.append(Series(lf, bucket + [("le", "+Inf")], start))
    if first_502 is not None:
        features.append("code 502 series appears at %d" % first_502)

    # Quiet-time error rates, well below every alert threshold.
    base_bad = {k: b * rng.uniform(0.02, 0.3) for k, b in budgets.items()}
    for k in ("availability", "latency", "rpc"):
        base_bad.setdefault(k, 0.0005)

    # Simulate minute by minute: counters advance while a process lives (also during a gap in
    # scraping); a restart zeroes them first; only scraped minutes are written.
    samples = []  # (minute, series index in `order`, value)
    order = [s for t in targets for s in t.series]
    index = {id(s): i for i, s in enumerate(order)}
    for m in range(minutes):
        for t in targets:
            if not t.alive(m):
                continue
            if m in t.resets:
                for s in t.series:
                    s.value = 0
            n = t.requests(rng, m)
            by = {}
            if t is rpc_target:
                bad = split(rng, n, frac_at(inc["rpc"], m, base_bad["rpc"]))
                nf = split(rng, n - bad, 0.02)
                canc = split(rng, n - bad - nf, 0.01)
                by = {"OK": n - bad - nf - canc, "NotFound": nf, "Unavailable": bad, "Canceled": canc}
                for s in t.series:
                    s.value += by[dict(s.labels)["grpc_code"]]
            else:
                if t is staging:
                    p = 0.5  # a broken staging job: only a selector that leaks onto it sees this
                elif canary:
                    p = base_bad["availability"] if "canary" not in t.extra else 0.3
                else:
                    p = base_bad["availability"]
                if t in http_targets and outage_scope.get(id(t), True):
                    p = frac_at(inc["availability"], m, p)
                bad = split(rng, n, p)
                n404 = split(rng, n - bad, 0.015)
                n429 = split(rng, n - bad - n404, 0.005)
                n5000 = split(rng, n - bad - n404 - n429, rng.uniform(0.02, 0.05))
                by = {"404": n404, "429": n429, "5000": n5000}
                codes = {dict(s.labels).get("code") for s in t.series}
                if "502" in codes and m >= first_502 and p >= 0.5:
                    by["502"] = bad // 2
                    bad -= bad // 2
                by["500"] = bad // 4
                by["503"] = bad - bad // 4
                by["200"] = n - sum(v for c, v in by.items() if c in codes)
                slow = split(rng, n, frac_at(inc["latency"], m, base_bad["latency"]))
                for s in t.series:
                    d = dict(s.labels)
                    if "code" in d:
                        if m >= s.first:
                            s.value += by.get(d["code"], 0)
                    elif d.get("le") == "0.25":
                        s.value += n - slow
                    else:
                        s.value += n
            if t.scraped(m):
                for s in t.series:
                    if m >= s.first:
                        samples.append((m, index[id(s)], s.value))

    features.append("layout %s, HELP/TYPE %s" % (layout, meta))
    fam_of = [s.family for s in order]
    fam_order = [families[k] for k in ("http", "lat", "rpc") if any(f is families[k] for f in fam_of)]

    def header(fams):
        return ["# HELP %s %s\n# TYPE %s %s\n" % (f.name, f.help, f.name, f.kind) for f in fams]

    out = []
    if layout == "time":
        if meta == "top":
            out += header(fam_order)
        by_minute = {}
        for m, i, v in samples:
            by_minute.setdefault(m, []).append((i, v))
        for m in sorted(by_minute):
            ts = T0 + m * MINUTE
            rows = by_minute[m]
            for f in fam_order:
                fam_rows = [(i, v) for i, v in rows if fam_of[i] is f]
                if not fam_rows:
                    continue
                if meta == "per_block":
                    out += header([f])
                out += ["%s %d %d\n" % (order[i].text, v, ts) for i, v in fam_rows]
    else:
        by_series = {}
        for m, i, v in samples:
            by_series.setdefault(i, []).append((m, v))
        for f in fam_order:
            if meta == "top":
                out += header([f])
            for i in sorted(by_series):
                if fam_of[i] is f:
                    out += ["%s %d %d\n" % (order[i].text, v, T0 + m * MINUTE) for m, v in by_series[i]]

    policy = rng.choice(POLICIES)
    spec = render_spec(seed, svc, slos, policy, features[:3])
    info = {"seed": seed, "service": svc, "days": days, "series": len(order), "samples": len(samples),
            "layout": layout, "help_type": meta, "policy": policy, "features": features,
            "slos": [{k: v for k, v in s.items() if k != "sli"} for s in slos]}
    return spec, "".join(out), info


def render_spec(seed, svc, slos, policy, notes):
    lines = ["# sloguard oracle scenario, generate.py --seed %d" % seed,
             "# %s" % "; ".join(notes),
             "service: %s" % svc, "slos:"]
    for s in slos:
        kind, sel, total = s["sli"]
        lines += ["  - name: %s" % s["name"], "    objective: %s" % s["objective"],
                  "    window: %s" % s["window"], "    sli:",
                  "      %s: '%s'" % (kind, sel), "      total: '%s'" % total]
        if "alerting" in s:
            lines.append("    alerting:")
            for sev, conf in s["alerting"].items():
                if conf == "disabled":
                    lines.append("      %s: disabled" % sev)
                else:
                    lines.append("      %s:" % sev)
                    lines += ["        - { long: %s, short: %s, burn: %s }" % c for c in conf]
    if policy:
        lines += ["policy:", "  freeze_below: %s" % policy[0], "  unfreeze_above: %s" % policy[1]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="generate one seeded replay scenario")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="directory to write spec.yaml, series.prom, scenario.json")
    args = ap.parse_args(argv)
    spec, series, info = generate(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name, text in (("spec.yaml", spec), ("series.prom", series),
                       ("scenario.json", json.dumps(info, indent=1) + "\n")):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
