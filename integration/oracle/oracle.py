#!/usr/bin/env python3
"""Reference oracle for `sloguard replay`: the semantics of shared/conformance/v2/README.md for
counter SLOs (instants at every sample and whole minute, inhibition, low-traffic guards, missing
data, young windows), exactly.

    python3 oracle.py --spec spec.yaml --series series.prom        # JSON Lines on stdout
    python3 oracle.py --spec ... --series ... --trace 2026-01-03T04:05:00Z

It is deliberately naive and shares nothing with the Rust engine: no buckets, no interpolation,
no floating point in any decision. Counter values are read as exact rationals, every window's
increase is computed from the raw samples at every instant, and every threshold comparison is
done by integer/rational cross-multiplication, so a disagreement with sloguard is sloguard's
approximation (or a bug on one side), never rounding here. Python 3 standard library only.

It reads the spec subset the generator (generate.py) and the shipped conformance scenarios use:
block mappings and lists, flow mappings for alert conditions, quoted and plain scalars.
"""

import argparse
import bisect
import datetime
import json
import re
import sys
from fractions import Fraction

# ---------------------------------------------------------------------------------------------
# Spec: a tiny YAML subset


def _strip_comment(line):
    """Drops a `#` comment that starts the line or follows a blank, outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)  # YAML double quotes escape like JSON for this subset
    return text


def _split_key(text):
    """`key: value` -> (key, value text); `key:` -> (key, '')."""
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*))?$", text)
    if not m:
        raise ValueError("spec: expected 'key: value', got %r" % text)
    return m.group(1), (m.group(2) or "").strip()


def _flow_or_scalar(text):
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ValueError("spec: unterminated flow mapping %r" % text)
        out = {}
        for part in text[1:-1].split(","):
            if part.strip():
                k, v = _split_key(part.strip())
                out[k] = _scalar(v)
        return out
    return _scalar(text)


def parse_yaml(text):
    lines = []
    for raw in text.splitlines():
        s = _strip_comment(raw.replace("\t", "    "))
        if s.strip():
            lines.append((len(s) - len(s.lstrip(" ")), s.strip()))
    if not lines:
        raise ValueError("spec: empty")
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError("spec: cannot read line %r" % (lines[end][1],))
    return value


def _block(lines, i, indent):
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _list(lines, i, indent)
    return _map(lines, i, indent)


def _map(lines, i, indent):
    out = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, rest = _split_key(lines[i][1])
        i += 1
        if rest:
            out[key] = _flow_or_scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    return out, i


def _list(lines, i, indent):
    out = []
    while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
        rest = lines[i][1][2:].lstrip()
        if rest.startswith("{") or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*:(\s|$)", rest):
            out.append(_flow_or_scalar(rest))
            i += 1
        else:
            # `- key: v` opens a mapping whose keys sit at the column after the dash.
            col = indent + len(lines[i][1]) - len(rest)
            lines = lines[:i] + [(col, rest)] + lines[i + 1:]
            item, i = _map(lines, i, col)
            out.append(item)
    return out, i


# ---------------------------------------------------------------------------------------------
# Values

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000, "y": 31536000000}


def duration_ms(text):
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("bad duration %r" % text)
    return sum(int(n) * _UNITS_MS[u] for n, u in parts)


def percent(text):
    """`10%` or `10` -> Fraction(1, 10)."""
    text = str(text).strip()
    if text.endswith("%"):
        text = text[:-1]
    return Fraction(text) / 100


# ---------------------------------------------------------------------------------------------
# Selectors

_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", "'": "'", '"': '"'}


def _quoted(text, i):
    """Reads a quoted string at text[i]; returns (value, index after it)."""
    q = text[i]
    i += 1
    out = []
    while True:
        c = text[i]
        if c == q:
            return "".join(out), i + 1
        if c == "\\" and q != "`":
            e = text[i + 1]
            if e in _GO_ESCAPES:
                out.append(_GO_ESCAPES[e])
                i += 2
            elif e in "uU":
                n = 4 if e == "u" else 8
                out.append(chr(int(text[i + 2:i + 2 + n], 16)))
                i += 2 + n
            else:
                raise ValueError("unsupported escape in %r" % text)
        else:
            out.append(c)
            i += 1


class Selector:
    """A list of (label, op, value) matchers; the metric name is the label `__name__`."""

    def __init__(self, text):
        self.text = text
        self.matchers = []
        m = re.match(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*", text)
        if m.group(1):
            self.matchers.append(("__name__", "=", m.group(1)))
        i = m.end()
        if i < len(text):
            if text[i] != "{":
                raise ValueError("bad selector %r" % text)
            i += 1
            while True:
                m = re.compile(r"\s*,?\s*").match(text, i)
                i = m.end()
                if text[i] == "}":
                    break
                m = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*").match(text, i)
                if not m:
                    raise ValueError("bad matcher in %r at %d" % (text, i))
                value, i = _quoted(text, m.end())
                self.matchers.append((m.group(1), m.group(2), value))

    def matches(self, labels):
        for name, op, value in self.matchers:
            have = labels.get(name, "")  # a missing label reads as ""
            if op == "=":
                ok = have == value
            elif op == "!=":
                ok = have != value
            elif op == "=~":
                ok = re.fullmatch(value, have) is not None  # PromQL anchors regexes
            else:
                ok = re.fullmatch(value, have) is None
            if not ok:
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Series file

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s+(-?\d+)\s*$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape_label(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def read_series(path):
    """{labels tuple: [(t_ms, value)] in file order}. Identity is the label set, as in Prometheus."""
    series = {}
    keys = {}  # series text as written -> label set; every series repeats thousands of times
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                raise ValueError("%s:%d: cannot read sample line %r" % (path, n, line))
            key = keys.get(m.group(1, 2))
            if key is None:
                labels = {"__name__": m.group(1)}
                body = m.group(2) or ""
                pos = 0
                while pos < len(body):
                    lm = _LABEL.match(body, pos)
                    if not lm or lm.end() == pos:
                        raise ValueError("%s:%d: cannot read labels %r" % (path, n, body))
                    labels[lm.group(1)] = _unescape_label(lm.group(2))
                    pos = lm.end()
                key = keys[m.group(1, 2)] = tuple(sorted(labels.items()))
            raw = m.group(3)
            if raw.lower() in ("nan", "+inf", "-inf", "inf"):
                continue  # never produced by the generator; a counter has no such value
            # Integers stay ints (fast and exact); anything else is an exact rational.
            value = int(raw) if re.fullmatch(r"-?\d+", raw) else Fraction(raw)
            series.setdefault(key, []).append((int(m.group(4)), value))
    return series


# ---------------------------------------------------------------------------------------------
# Semantics

WORKBOOK = {
    "page": [(3600000, 300000, Fraction("14.4")), (21600000, 1800000, Fraction(6))],
    "ticket": [(86400000, 7200000, Fraction(3)), (259200000, 21600000, Fraction(1))],
}


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        doc = parse_yaml(f.read())
    policy = doc.get("policy") or {}
    service = {
        "name": doc["service"],
        "freeze_below": percent(policy.get("freeze_below", "0%")),
        "unfreeze_above": percent(policy.get("unfreeze_above", "10%")),
        "min_coverage": duration_ms(policy.get("min_coverage", "1d")),
        "slos": [],
    }
    for s in doc["slos"]:
        sli = s["sli"]
        kind = "errors" if "errors" in sli else "good"
        tiers = []
        alerting = s.get("alerting") or {}
        for sev in ("page", "ticket"):
            conf = alerting.get(sev, None)
            if conf is None:
                conds = WORKBOOK[sev]
            elif conf == "disabled":
                continue
            else:
                conds = [(duration_ms(c["long"]), duration_ms(c["short"]), Fraction(c["burn"])) for c in conf]
            tiers.append((sev, conds))
        no_data = alerting.get("no_data", "15m")
        service["slos"].append({
            "id": "%s/%s" % (doc["service"], s["name"]),
            "kind": kind,
            "selected": Selector(sli[kind]),
            "total": Selector(sli["total"]),
            "budget": 1 - Fraction(str(s["objective"])) / 100,
            "window": duration_ms(s["window"]),
            "tiers": tiers,
            "min_events": int(alerting.get("min_events", 0)),
            "min_bad_events": int(alerting.get("min_bad_events", 0)),
            "inhibit": alerting.get("inhibit", True) not in (False, "false"),
            "no_data": None if no_data == "disabled" else duration_ms(no_data),
        })
    return service


def increase(samples, start, end):
    """Reset-aware increase of one series over (start, end]: the deltas from the last sample at
    or before `start` (or the first sample, with less history) to the last sample at or before
    `end`. A drop is a reset, and the new value is the increase since it."""
    times = [t for t, _ in samples]
    hi = bisect.bisect_right(times, end) - 1
    if hi < 0:
        return 0
    lo = max(bisect.bisect_right(times, start) - 1, 0)
    total = 0
    for k in range(lo + 1, hi + 1):
        prev, cur = samples[k - 1][1], samples[k][1]
        total += cur - prev if cur >= prev else cur
    return total


class Cumulative:
    """The summed per-series increases of one selector, computed once per instant.

    Summing `increase(s, t-W, t)` over series, per instant and window, is the definition but
    too slow in Python for 4 days x 8 windows. Every series' running sum of deltas is a step
    function that only changes at sample timestamps, and every sample timestamp is an instant,
    so `increase(s, a, b) = R_s(b) - R_s(a)` with R_s read at the last instant <= a (0 before
    the series' first sample). `check_against_naive` verifies this against `increase`.
    """

    def __init__(self, matched, instants):
        self.values = [0] * len(instants)
        for samples in matched:
            running, k = 0, 0
            for j, t in enumerate(instants):
                while k < len(samples) and samples[k][0] <= t:
                    if k > 0:
                        prev, cur = samples[k - 1][1], samples[k][1]
                        running += cur - prev if cur >= prev else cur
                    k += 1
                self.values[j] += running

    def over(self, j_start, j_end):
        """Increase over (instants[j_start], instants[j_end]]; j_start < 0 means all history."""
        return self.values[j_end] - (self.values[j_start] if j_start >= 0 else 0)


def clean(samples):
    """Stable-sorts by time and keeps the first sample per timestamp (a duplicate adds nothing)."""
    out = []
    for t, v in sorted(samples, key=lambda s: s[0]):
        if not out or t > out[-1][0]:
            out.append((t, v))
    return out


def rfc3339(ms):
    dt = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += ".%03d" % (ms % 1000)
    return text + "Z"


def parse_rfc3339(text):
    dt = datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    return int(dt.timestamp()) * 1000


def run(spec_path, series_path, out, trace=None, check_naive=0):
    service = load_spec(spec_path)
    raw = read_series(series_path)
    # Every sample timestamp, and every whole minute from the first sample to the last.
    stamps = {t for samples in raw.values() for t, _ in samples}
    minutes = range(-(-min(stamps) // 60000) * 60000, max(stamps) + 1, 60000) if stamps else []
    instants = sorted(stamps | set(minutes))
    series = [(dict(k), clean(v)) for k, v in raw.items()]

    slos = []
    for slo in service["slos"]:
        sel = [s for labels, s in series if slo["selected"].matches(labels)]
        tot = [s for labels, s in series if slo["total"].matches(labels)]
        windows = sorted({slo["window"]} | {w for _, conds in slo["tiers"] for c in conds for w in c[:2]})
        stamps_of = sorted({t for s in sel + tot for t, _ in s})
        slos.append(dict(slo, sel=sel, tot=tot, windows=windows, cum_sel=Cumulative(sel, instants),
                         cum_tot=Cumulative(tot, instants), firing={sev: False for sev, _ in slo["tiers"]},
                         stamps=stamps_of, no_data_since=None))
    frozen = False
    trace_at = parse_rfc3339(trace) if trace else None

    def burn_above(burn, budget, x):
        """burn > x, exactly: burn = bad / (total * budget) with total > 0 and budget > 0."""
        bad, total = burn
        return bad * budget.denominator * x.denominator > x.numerator * total * budget.numerator

    def burn_below(burn, budget, x):
        bad, total = burn
        return bad * budget.denominator * x.denominator < x.numerator * total * budget.numerator

    for j, t in enumerate(instants):
        for slo in slos:
            budget = slo["budget"]
            # burn(W) as (bad events, total events) with total > 0, or None when undefined.
            burns = {}
            for w in slo["windows"]:
                j0 = bisect.bisect_right(instants, t - w) - 1
                s_inc, t_inc = slo["cum_sel"].over(j0, j), slo["cum_tot"].over(j0, j)
                if check_naive and j % check_naive == 0:
                    assert s_inc == sum(increase(s, t - w, t) for s in slo["sel"])
                    assert t_inc == sum(increase(s, t - w, t) for s in slo["tot"])
                if t_inc == 0:
                    burns[w] = None  # no traffic: undefined, every comparison false
                    continue
                burns[w] = (s_inc if slo["kind"] == "errors" else t_inc - s_inc, t_inc)
            slo["burns"] = burns
            if trace_at == t:
                print("%s %s: %s" % (rfc3339(t), slo["id"], ", ".join(
                    "%dm=%s" % (w // 60000, "-" if b is None else "%.6f" % float(Fraction(b[0], b[1]) / budget))
                    for w, b in burns.items())),
                    file=sys.stderr)

            def over(w, factor):
                return burns[w] is not None and burn_above(burns[w], budget, factor)

            def enough(w):
                bad, total = burns[w] if burns[w] is not None else (0, 0)
                return total >= slo["min_events"] and bad >= slo["min_bad_events"]

            own = {sev: any(over(long_w, f) and over(short_w, f) and enough(long_w) for long_w, short_w, f in conds)
                   for sev, conds in slo["tiers"]}
            paging = own.get("page", False)
            for sev, _ in slo["tiers"]:
                inhibited = slo["inhibit"] and paging and sev == "ticket"
                holding = own[sev] and not inhibited
                if holding != slo["firing"][sev]:
                    slo["firing"][sev] = holding
                    event = {"at": rfc3339(t), "event": "alert_firing" if holding else "alert_resolved",
                             "slo": slo["id"], "severity": sev}
                    if not holding and inhibited and own[sev]:
                        event["inhibited_by"] = "page"
                    out.write(json.dumps(event) + "\n")

            # Samples so far: the first gives coverage, the last says whether data is missing.
            k = bisect.bisect_right(slo["stamps"], t)
            slo["first"] = slo["stamps"][0] if k else None
            last = slo["stamps"][k - 1] if k else None
            if slo["no_data"] is not None and last is not None:
                silent = t - last >= slo["no_data"]
                if silent and slo["no_data_since"] is None:
                    slo["no_data_since"] = last
                    out.write(json.dumps({"at": rfc3339(t), "event": "no_data", "slo": slo["id"],
                                          "since": rfc3339(last)}) + "\n")
                elif not silent and slo["no_data_since"] is not None:
                    slo["no_data_since"] = None
                    out.write(json.dumps({"at": rfc3339(t), "event": "data_returned", "slo": slo["id"]}) + "\n")

        # Remaining budget is 1 - burn(SLO window): r <= freeze_below  <=>  burn >= 1 - freeze_below,
        # and r > unfreeze_above  <=>  burn < 1 - unfreeze_above.
        budgets = [(s["burns"][s["window"]], s["budget"]) for s in slos]
        # A budget freezes only once its window holds min(min_coverage, window) of data.
        covered = [s["first"] is not None and t - s["first"] >= min(service["min_coverage"], s["window"]) for s in slos]
        if not frozen and any(b is not None and c and not burn_below(b, budget, 1 - service["freeze_below"])
                              for (b, budget), c in zip(budgets, covered)):
            frozen = True
            out.write(json.dumps({"at": rfc3339(t), "event": "freeze", "service": service["name"]}) + "\n")
        elif frozen and all(b is not None and burn_below(b, budget, 1 - service["unfreeze_above"])
                            for b, budget in budgets):
            frozen = False
            out.write(json.dumps({"at": rfc3339(t), "event": "unfreeze", "service": service["name"]}) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--series", required=True)
    ap.add_argument("--trace", help="print every window's burn at this RFC 3339 instant to stderr")
    ap.add_argument("--check-naive", type=int, default=0, metavar="N",
                    help="at every Nth instant, also sum each series' deltas one by one and assert "
                         "that equals the fast path (slow)")
    args = ap.parse_args(argv)
    run(args.spec, args.series, sys.stdout, args.trace, args.check_naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
