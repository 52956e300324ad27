#!/usr/bin/env bash
# The daemon at 20,000 grouped SLO instances (issue 11): SERVICES x SLOS SLOs (default 100 x 2),
# each with `group_by: [route]` and ROUTES routes on the generated target (default 100), so
# 20,000 instances from 40,000 series scraped every INTERVAL (15 s). After every instance exists
# and WARMUP seconds more, for MEASURE seconds (default 180) it measures:
#   - the daemon's CPU: user + system time from /proc/PID/stat over wall time, in cores;
#   - its memory: VmRSS (sampled every second: max and at the end), VmHWM, and at the end
#     smaps_rollup's Rss, Pss and anonymous memory; KiB per instance is VmRSS / instances
#     (everything the process holds, so the fixed cost is charged to the instances too).
#     At 20,000 instances it was ~740 MiB until the first flush, which exports every page of
#     20,000 new windows at once (as does each full save of the window log); that peaks near
#     2 GiB, and glibc keeps the freed heap, so VmRSS stays near 1.45 GiB after it. Run with
#     FLUSH_INTERVAL=1h to see the daemon without a flush;
#   - the gate: GATE_RATE requests/s (default 20, open loop, one keep-alive connection) to
#     random services' GET /v1/gate/{service}, timed by the daemon's own handler histogram
#     (sloguard_http_request_duration_seconds, the increase over the period) and, for
#     comparison, by the client (which adds Python and the kernel).
# /metrics is read only before and after the CPU window: rendering 20,000 instances' series is
# real work, done whenever Prometheus scrapes the daemon, and is timed separately below.
# Also prints the machine's CPU and steal over the period: on 2 cores the target, the load
# generator and anything else running share the daemon's CPUs.
# Loopback only; bounded (about WARMUP + MEASURE + 60 s once instances exist, at most 300 s
# waiting for them). KEEP=1 keeps the temp directory (logs, specs, data).
#
#   benches/groups_20k.sh
#   MEASURE=60 WARMUP=10 benches/groups_20k.sh
#   SERVICES=10 SLOS=2 ROUTES=10 INTERVAL=5s MEASURE=20 benches/groups_20k.sh   # a quick check
#   FLUSH_INTERVAL=1h EVALUATION_INTERVAL=10s benches/groups_20k.sh             # the daemon's config
#
# (The group count is ROUTES, not GROUPS: bash owns that name, the user's group ids, and
# ignores it in the environment.)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh

SERVICES=${SERVICES:-100}
SLOS=${SLOS:-2}
ROUTES=${ROUTES:-100}
INTERVAL=${INTERVAL:-15s}
EVALUATION_INTERVAL=${EVALUATION_INTERVAL:-10s}
FLUSH_INTERVAL=${FLUSH_INTERVAL:-10s}
WARMUP=${WARMUP:-30}
MEASURE=${MEASURE:-180}
GATE_RATE=${GATE_RATE:-20}
INSTANCES_TIMEOUT=${INSTANCES_TIMEOUT:-300}
fleet_args=(--services "$SERVICES" --slos "$SLOS" --groups "$ROUTES")
expected=$(( SERVICES * SLOS * ROUTES ))

work=$(mktemp -d)
trap cleanup EXIT
bin=$(sloguard_bin "$work")
gen_port=$(free_port)
api_port=$(free_port)
api="http://127.0.0.1:$api_port"

python3 benches/fleet.py serve "$gen_port" "${fleet_args[@]}" &
target=$!
started_pids+=($target)
python3 benches/fleet.py specs "$work/specs" "${fleet_args[@]}" --interval "$INTERVAL" \
    --target "http://127.0.0.1:$gen_port/metrics"
cat > "$work/sloguard.yaml" <<YAML
listen: 127.0.0.1:$api_port
data_dir: data
specs: specs
evaluation_interval: $EVALUATION_INTERVAL
flush_interval: $FLUSH_INTERVAL
YAML
wait_http "http://127.0.0.1:$gen_port/metrics" 30
echo "target: $(curl -fsS "http://127.0.0.1:$gen_port/metrics" | grep -vc '^#') series," \
    "$(curl -fsS "http://127.0.0.1:$gen_port/metrics" | wc -c) bytes, scraped every $INTERVAL"

t0=$(now_ms)
"$bin" run --config "$work/sloguard.yaml" > "$work/sloguard.log" 2>&1 &
daemon=$!
started_pids+=($daemon)
wait_http "$api/readyz" 120
echo "ready in $(( $(now_ms) - t0 )) ms; waiting for $expected instances"

# instances: grouped SLO instances the daemon reports (one objective gauge each; an instance's
# `slo` label carries its group, `gen-00000/s00{route="r0"}`).
instances() {
    curl -fsS "$api/metrics" | grep -c '^sloguard_slo_objective_ratio{.*route=' || true
}
deadline=$(( $(now_ms) + INSTANCES_TIMEOUT * 1000 ))
until [ "$(instances)" -ge "$expected" ]; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
        echo "error: $(instances) of $expected instances after ${INSTANCES_TIMEOUT}s" >&2
        grep -E 'ERROR|WARN' "$work/sloguard.log" | tail -5 >&2
        exit 1
    fi
    sleep 2
done
n_instances=$(instances)
echo "all $n_instances instances after $(( $(now_ms) - t0 )) ms; warming up ${WARMUP}s"
sleep "$WARMUP"

metrics_ms=$(now_ms)
curl -fsS "$api/metrics" > "$work/metrics.before"
metrics_ms=$(( $(now_ms) - metrics_ms ))

# cpu_ticks PID: user + system time of the process so far, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
# The machine's CPU time so far, as /proc/stat's first line: "cpu user nice system idle ...".
machine_cpu() { head -1 /proc/stat; }

cat > "$work/gate_load.py" <<'PY'
import http.client, random, sys, time
port, rate, duration, services = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
latencies, statuses, errors = [], {}, 0
start = time.monotonic()
n = 0
while True:
    due = start + n / rate
    if due - start >= duration:
        break
    time.sleep(max(0.0, due - time.monotonic()))
    n += 1
    sent = time.perf_counter()
    try:
        conn.request("GET", f"/v1/gate/gen-{random.randrange(services):05d}")
        response = conn.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        latencies.append(time.perf_counter() - sent)
    except (OSError, http.client.HTTPException):
        errors += 1
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
latencies.sort()
pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")
print(f"gate client: {n} requests, statuses {dict(sorted(statuses.items()))}, {errors} errors; "
      f"p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {pct(1.0):.2f} ms (client side)")
sys.exit(1 if errors or set(statuses) != {200} else 0)
PY

echo "measuring ${MEASURE}s: CPU, memory, gate at ${GATE_RATE} req/s"
cpu0=$(cpu_ticks "$daemon"); target0=$(cpu_ticks "$target"); machine0=$(machine_cpu); wall0=$(now_ms)
python3 "$work/gate_load.py" "$api_port" "$GATE_RATE" "$MEASURE" "$SERVICES" > "$work/gate_load.out" &
loader=$!
started_pids+=($loader)
rss_max=0
while kill -0 "$loader" 2>/dev/null; do
    rss=$(status_kib "$daemon" VmRSS)
    [ "$rss" -le "$rss_max" ] || rss_max=$rss
    sleep 1
done
gate_ok=0
wait "$loader" || gate_ok=$?
cpu1=$(cpu_ticks "$daemon"); target1=$(cpu_ticks "$target"); machine1=$(machine_cpu); wall1=$(now_ms)
rss_end=$(status_kib "$daemon" VmRSS)
hwm=$(status_kib "$daemon" VmHWM)
rollup=$(awk '$1 ~ /^(Rss|Pss|Anonymous):$/ { printf "%s %s KiB  ", $1, $2 }' "/proc/$daemon/smaps_rollup")
pss=$(awk '$1 == "Pss:" { print $2 }' "/proc/$daemon/smaps_rollup")
curl -fsS "$api/metrics" > "$work/metrics.after"
n_after=$(grep -c '^sloguard_slo_objective_ratio{.*route=' "$work/metrics.after" || true)

t0=$(now_ms)
kill -TERM "$daemon"
wait_exit "$daemon" 60
drain_ms=$(( $(now_ms) - t0 ))

# The summary, from the readings above (passed in the environment) and the two /metrics pages.
export SERVICES SLOS ROUTES INTERVAL EVALUATION_INTERVAL n_instances n_after wall0 wall1 cpu0 cpu1 \
    target0 target1 machine0 machine1 rss_end rss_max hwm pss rollup metrics_ms drain_ms
HZ=$(getconf CLK_TCK) python3 - "$work/metrics.before" "$work/metrics.after" <<'PY'
import os, re, sys
e = os.environ
num = lambda key: float(e[key])
before, after = (open(path).read() for path in sys.argv[1:3])
def sum_of(text, name):
    return sum(float(m[1]) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
def buckets(text):
    pattern = r'^sloguard_http_request_duration_seconds_bucket\{route="/v1/gate/\{service\}",le="([^"]+)"\} (\S+)$'
    return {float(m[1]): float(m[2]) for m in re.finditer(pattern, text, re.M)}
wall = (num("wall1") - num("wall0")) / 1e3
cores = (num("cpu1") - num("cpu0")) / num("HZ") / wall
target_cores = (num("target1") - num("target0")) / num("HZ") / wall
machine = [[int(v) for v in e[key].split()[1:]] for key in ("machine0", "machine1")]
delta = [a - b for a, b in zip(machine[1], machine[0])]
busy = 1 - (delta[3] + delta[4]) / sum(delta)
fetches = sum_of(after, "sloguard_source_fetches_total") - sum_of(before, "sloguard_source_fetches_total")
evaluations = sum_of(after, "sloguard_evaluations_total") - sum_of(before, "sloguard_evaluations_total")
b0, b1 = buckets(before), buckets(after)
increase = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
n_gate = increase[-1][1] if increase else 0
nan = float("nan")
under_1ms = next((n for le, n in increase if le == 0.001), 0) / n_gate if n_gate else nan
p99 = next((le for le, n in increase if n >= 0.99 * n_gate), nan) if n_gate else nan
n = num("n_instances")
print()
print("=== groups_20k summary ===")
print(f"fleet                   {e['SERVICES']} services x {e['SLOS']} SLOs x {e['ROUTES']} routes ="
      f" {n:.0f} instances ({e['n_after']} at the end), scrape every {e['INTERVAL']},"
      f" evaluate every {e['EVALUATION_INTERVAL']}")
print(f"period                  {wall:.1f} s: {fetches:.0f} scrapes ingested, {evaluations:.0f} evaluations;"
      f" last evaluation {sum_of(after, 'sloguard_evaluation_duration_seconds') * 1e3:.0f} ms,"
      f" last fetch {sum_of(after, 'sloguard_source_fetch_duration_seconds') * 1e3:.0f} ms")
print(f"daemon CPU              {cores:.3f} cores (goal <= 0.2)")
print(f"daemon memory           VmRSS {num('rss_end') / 1024:.0f} MiB at the end,"
      f" {num('rss_max') / 1024:.0f} MiB max sampled, VmHWM {num('hwm') / 1024:.0f} MiB;"
      f" smaps_rollup {e['rollup'].strip()}")
print(f"per instance            {num('rss_end') / n:.1f} KiB VmRSS, {num('pss') / n:.1f} KiB Pss (goal <= 40)")
print(f"gate (daemon histogram) {n_gate:.0f} requests, {100 * under_1ms:.2f}% <= 1 ms,"
      f" p99 <= {p99 * 1e3:g} ms (a bucket bound; goal < 1 ms)")
print(f"machine                 {100 * busy:.0f}% of {os.cpu_count()} CPUs busy,"
      f" steal {100 * delta[7] / sum(delta):.2f}%; the target (fleet.py) used {target_cores:.3f} cores")
print(f"/metrics                {len(after)} bytes, fetched in {e['metrics_ms']} ms (outside the CPU window)")
print(f"SIGTERM to exit         {e['drain_ms']} ms")
PY
cat "$work/gate_load.out"
grep -cE ' (ERROR|WARN) ' "$work/sloguard.log" | sed 's/^/daemon log warnings and errors: /'
[ "$gate_ok" -eq 0 ] || { echo "error: some gate requests failed or were not 200" >&2; exit 1; }
