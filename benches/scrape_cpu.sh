#!/usr/bin/env bash
# CPU per scrape cycle of the real daemon on a 50k-series target: SERVICES x SLOS SLOs (default
# 100 x 10 = 1,000, 2,000 series) on a generated target padded with NOISE series no SLO selects
# (default 48,000: 50,000 in all). The daemon scrapes every second and evaluates every second;
# after a warm-up, its CPU time (user + system, from /proc) over DURATION seconds is divided by
# the scrapes it ingested. Everything the process did in that time is charged to the scrapes:
# the HTTP fetch, parse, series lookup, observe, one evaluation per scrape, the
# API's idle cost, and the flushes. Loopback only; bounded (about WARMUP + DURATION + 20 s).
#
#   benches/scrape_cpu.sh
#   NOISE=0 SERVICES=1000 benches/scrape_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh

SERVICES=${SERVICES:-100}
SLOS=${SLOS:-10}
NOISE=${NOISE:-48000}
WARMUP=${WARMUP:-10}
DURATION=${DURATION:-30}

work=$(mktemp -d)
trap cleanup EXIT
bin=$(sloguard_bin "$work")
gen_port=$(free_port)
api_port=$(free_port)
fleet_args=(--services "$SERVICES" --slos "$SLOS")

python3 benches/fleet.py serve "$gen_port" "${fleet_args[@]}" --noise "$NOISE" &
started_pids+=($!)
python3 benches/fleet.py specs "$work/specs" "${fleet_args[@]}" --interval 1s \
    --target "http://127.0.0.1:$gen_port/metrics"
cat > "$work/sloguard.yaml" <<YAML
listen: 127.0.0.1:$api_port
data_dir: data
specs: specs
evaluation_interval: 1s
flush_interval: 10s
YAML
wait_http "http://127.0.0.1:$gen_port/metrics" 30
echo "target: $(curl -fsS "http://127.0.0.1:$gen_port/metrics" | grep -vc '^#') series," \
    "$(curl -fsS "http://127.0.0.1:$gen_port/metrics" | wc -c) bytes"

"$bin" run --config "$work/sloguard.yaml" > "$work/sloguard.log" 2>&1 &
daemon=$!
started_pids+=($daemon)
wait_http "http://127.0.0.1:$api_port/readyz" 60
sleep "$WARMUP"

# cpu_ms PID: user + system CPU time of the process so far, in ms.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"
}
# fetches: scrapes the daemon has ingested (successful or not), summed over targets.
fetches() {
    curl -fsS "http://127.0.0.1:$api_port/metrics" |
        awk '/^sloguard_source_fetches_total\{/ { n += $NF } END { print n + 0 }'
}

cpu0=$(cpu_ms "$daemon"); n0=$(fetches)
sleep "$DURATION"
cpu1=$(cpu_ms "$daemon"); n1=$(fetches)
scrapes=$(( n1 - n0 ))
echo "over ${DURATION}s: $scrapes scrapes ingested, daemon CPU $(( cpu1 - cpu0 )) ms"
echo "CPU per scrape cycle (fetch + parse + observe + evaluate + everything else): $(( (cpu1 - cpu0) / scrapes )) ms"
curl -fsS "http://127.0.0.1:$api_port/metrics" | grep -E '^sloguard_evaluation_duration_seconds |^sloguard_source_up\{' | head -3
