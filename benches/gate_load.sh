#!/usr/bin/env bash
# Gate latency under load: the daemon runs the shipped demo specs (against its own demo target)
# plus a generated fleet of SERVICES x SLOS SLOs (default 100 x 10 = 1,000) scraping a generated
# target, and GET /v1/gate/checkout is loaded twice for DURATION each:
#   1. wrk, closed loop (CONNECTIONS, THREADS): the maximum throughput, as wrk's req/s and its
#      latency distribution at that saturation;
#   2. benches/gate_rate.rs, open loop at a constant RATE req/s (default 5,000) over
#      RATE_CONNECTIONS keep-alive connections: the achieved rate, answered / non-200 / errors,
#      and p50, p90, p99, p99.9 and max in µs measured from each request's scheduled time
#      (corrected for coordinated omission), then from its send time (uncorrected), then the
#      generator's own pacing lateness. It fails the script if any request failed or was not 200.
# As root, gate_rate then runs a second time with /dev/cpu_dma_latency held at 0, which keeps idle
# CPUs polling instead of halting (what tuned's latency-performance profile does). On a VM with
# the haltpoll idle driver, waking a halted vCPU waits on the host: on the 2-core dev VM a bare
# 200 µs sleep overshoots by 0.7-1.1 ms at p99 with halting allowed and 0.12 ms with polling, so
# the first run measures the machine's wake-ups as much as the daemon, and the second the daemon.
# Each run also prints the steal time over it (a host that preempts the VM stalls the generator
# and the daemon alike, for milliseconds) and the gate's latency as the daemon's handler
# histogram timed it, which leaves out the kernel, the client and such stalls between requests.
# Then the daemon's own evaluation time. Loopback only; bounded (about 65 s with the defaults).
#
#   benches/gate_load.sh                      # defaults
#   SERVICES=10 SLOS=10 DURATION=5s benches/gate_load.sh
#   RATE=2000 RATE_CONNECTIONS=8 benches/gate_load.sh
#
# Needs curl, python3 and wrk (`apt-get install -y wrk`). The load generators, the target and
# the daemon share the machine: on 2 cores the figures include that contention.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh

SERVICES=${SERVICES:-100}
SLOS=${SLOS:-10}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-12}
RATE=${RATE:-5000}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-32}

command -v wrk >/dev/null || { echo "error: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
work=$(mktemp -d)
trap cleanup EXIT
bin=$(sloguard_bin "$work")
rate_bin=$(bench_bin gate_rate "$work")

demo_port=$(free_port)
gen_port=$(free_port)
api_port=$(free_port)

"$bin" demo-target --listen "127.0.0.1:$demo_port" > "$work/demo.log" 2>&1 &
started_pids+=($!)
python3 benches/fleet.py serve "$gen_port" --services "$SERVICES" --slos "$SLOS" &
started_pids+=($!)

mkdir "$work/specs"
for spec in slo-specs/*.yaml; do
    sed "s#127.0.0.1:9100#127.0.0.1:$demo_port#" "$spec" > "$work/specs/$(basename "$spec")"
done
python3 benches/fleet.py specs "$work/specs" --services "$SERVICES" --slos "$SLOS" \
    --target "http://127.0.0.1:$gen_port/metrics"
cat > "$work/sloguard.yaml" <<YAML
listen: 127.0.0.1:$api_port
data_dir: data
specs: specs
evaluation_interval: 5s
flush_interval: 5s
YAML

wait_http "http://127.0.0.1:$gen_port/metrics" 30
wait_http "http://127.0.0.1:$demo_port/metrics" 30
"$bin" run --config "$work/sloguard.yaml" > "$work/sloguard.log" 2>&1 &
started_pids+=($!)
wait_http "http://127.0.0.1:$api_port/readyz" 60
n_slos=$(curl -fsS "http://127.0.0.1:$api_port/metrics" | grep -c '^sloguard_slo_objective_ratio{' || true)
echo "sloguard ready with $n_slos SLOs; warming up ${WARMUP}s (scrapes, evaluations)"
sleep "$WARMUP"
gate_url="http://127.0.0.1:$api_port/v1/gate/checkout"
echo "gate: $(curl -fsS "$gate_url" | head -c 160)..."

wrk "-t$THREADS" "-c$CONNECTIONS" "-d$DURATION" --latency "$gate_url"
gate_buckets() {
    # Empty for a build from before the histogram (SLOGUARD= an older binary, for A/B runs).
    curl -fsS "http://127.0.0.1:$api_port/metrics" | grep -F 'sloguard_http_request_duration_seconds_bucket{route="/v1/gate/{service}"' || true
}
# gate_rate, then the same requests as the daemon timed them (its handler histogram's increase
# over the run): the part of the latency that is sloguard's, without the kernel or the client.
# The machine's CPU time so far, as /proc/stat's first line: "cpu user nice system idle ...".
cpu_times() { head -1 /proc/stat; }
rate() {
    local before cpu_before
    before=$(gate_buckets)
    cpu_before=$(cpu_times)
    "$rate_bin" --url "$gate_url" --rate "$RATE" --duration "$DURATION" --connections "$RATE_CONNECTIONS"
    # Steal: time a VM's vCPUs were runnable but the host ran something else. Every process
    # stalls then, the generator included, so a run with steal measures the host's tail.
    python3 -c '
import sys
before, after = ([int(v) for v in line.split()[1:]] for line in sys.argv[1:])
delta = [a - b for a, b in zip(after, before)]
print(f"steal during the run                 {100 * delta[7] / sum(delta):.2f}% of CPU time")
' "$cpu_before" "$(cpu_times)"
    python3 -c '
import re, sys
def buckets(text):
    return {m[1]: float(m[2]) for m in re.finditer(r"le=\"([^\"]+)\"\} (\S+)", text)}
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
if not after:
    sys.exit(print("in the daemon (handler)              not exported by this build"))
delta = sorted(((float(le), after[le] - before.get(le, 0)) for le in after), key=lambda b: b[0])
total = delta[-1][1]
shares = "  ".join(f"<= {le * 1e6:g} µs {100 * n / total:.2f}%" for le, n in delta if le <= 0.001)
p99 = next(le for le, n in delta if n >= 0.99 * total)
print(f"in the daemon (handler)              {int(total)} requests: {shares}  p99 <= {p99 * 1e6:g} µs")
' "$before" "$(gate_buckets)"
}
echo "--- idle states as the machine has them"
rate
if [ -w /dev/cpu_dma_latency ]; then
    echo "--- idle states held at polling (/dev/cpu_dma_latency = 0)"
    # The latency request lasts as long as the file stays open.
    python3 -c 'import os, signal, struct
fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
os.write(fd, struct.pack("i", 0))
signal.pause()' &
    polling_pid=$!
    started_pids+=("$polling_pid")
    sleep 0.2
    rate
    kill "$polling_pid"
fi

curl -fsS "http://127.0.0.1:$api_port/metrics" | grep -E '^sloguard_evaluation_duration_seconds |^sloguard_evaluations_total '
