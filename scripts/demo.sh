#!/usr/bin/env bash
# The README's run command: sloguard's main job on the shipped example specs, against the
# built-in demo target, narrated. Within about a minute you see checkout's incident start, burn
# rates rise, a page decided, the service freeze and the deploy gate say deny.
#
#   scripts/demo.sh                 # ~90 s, then stops everything
#   DEMO_SECONDS=0 scripts/demo.sh  # keeps running until Ctrl-C; try the curl lines it prints
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-90}
api=http://127.0.0.1:9464
bin=target/release/sloguard

command -v curl >/dev/null || { echo "demo needs curl (apt-get install -y curl)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "demo needs python3 (apt-get install -y python3)" >&2; exit 1; }
echo "==> building sloguard (release; the first build takes a few minutes)"
cargo build --release --quiet

# A fresh demo each time: the state directory is git-ignored scratch.
rm -rf examples/demo-state
logs=$(mktemp -d)
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "==> stopped; logs in $logs"
}
pids=()
trap cleanup EXIT

"$bin" demo-target --listen 127.0.0.1:9100 --incident-after 20s --incident-for 3m >"$logs/demo-target.log" 2>&1 &
pids+=($!)
"$bin" validate slo-specs
"$bin" run --config examples/sloguard.yaml >"$logs/sloguard.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
    curl -fsS "$api/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$api/readyz" >/dev/null || { echo "sloguard did not become ready:"; cat "$logs/sloguard.log"; exit 1; }
echo "==> sloguard is up on $api; the demo target's checkout incident starts in 20 s (50% errors for 3 min)"
echo

# Prints one line per tick: gate decision, budget, 5m/1h burn and alerts for checkout.
narrate() {
    curl -fsS "$api/v1/services/checkout" | python3 -c '
import json, sys
s = json.load(sys.stdin)
a = next(x for x in s["slos"] if x["slo"] == "checkout/availability")
burn = {b["window"]: b["burn"] for b in a["burn_rates"]}
fmt = lambda v: "-" if v is None else "%.1fx" % v
budget = "no data" if a["budget_remaining"] is None else "%.1f%%" % (100 * a["budget_remaining"])
firing = [x["severity"] for x in a["alerts"] if x["firing"]] or ["none"]
print("availability: budget %-9s burn 5m %-8s 1h %-8s alerts %-12s frozen %s" % (
    budget, fmt(burn.get("5m")), fmt(burn.get("1h")), ",".join(firing), s["frozen"]), end="")'
    curl -fsS "$api/v1/gate/checkout" | python3 -c '
import json, sys
g = json.load(sys.stdin)
print("  gate: %s" % g["decision"])'
}

start=$(date +%s)
last_decision=""
while :; do
    elapsed=$(( $(date +%s) - start ))
    printf '[%3ss] ' "$elapsed"
    narrate
    decision=$(curl -fsS "$api/v1/gate/checkout" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decision"])')
    if [ "$decision" != "$last_decision" ]; then
        echo "       GET /v1/gate/checkout says $decision because:"
        curl -fsS "$api/v1/gate/checkout" | python3 -c 'import json,sys; [print("         -", r) for r in json.load(sys.stdin)["reasons"]]'
        last_decision=$decision
    fi
    if [ "$seconds" -gt 0 ] && [ "$elapsed" -ge "$seconds" ]; then
        break
    fi
    sleep 5
done

echo
echo "==> events sloguard committed (GET /v1/events):"
curl -fsS "$api/v1/events" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["events"]:
    print("   ", e["at"], e["event"], e.get("slo", e.get("service")), e.get("severity", ""))'
echo
echo "Try: curl $api/v1/gate/checkout | curl $api/v1/services | curl $api/metrics"
