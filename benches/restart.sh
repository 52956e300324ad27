#!/usr/bin/env bash
# Restart time with persisted state: SERVICES x SLOS SLOs (default 1,000 x 10 = 10,000) scrape a
# generated target for RUN_FOR seconds (so every SLO has window pages, series values, and some
# alerts and freezes), then SIGTERM, then a restart on the same data_dir timed until /readyz
# answers 200. Also reports the cold start, the SIGTERM drain and the store size. Loopback only;
# bounded (about RUN_FOR + 60 s).
#
# With FULL_WINDOW=1 it then also times a start on a full 30-day window of state for the same
# fleet, seeded through the real engine and store by `benches/restore.rs` (about 3 more
# minutes and 300 MiB of disk): a store that has run for a month, not for RUN_FOR seconds.
# Then it restarts on that store three times warm and, as root, three times after dropping
# the page cache.
#
# With ROUTES=G (default 0: ungrouped) every SLO is grouped by `route` and the target serves G
# routes per SLO (`fleet.py --groups`), so the fleet is SERVICES x SLOS x G instances, live and
# seeded alike; `SERVICES=100 SLOS=2 ROUTES=100` is the 20,000-instance fleet of issue 11. (Not
# `GROUPS`: bash owns that name, the user's group ids, and ignores it in the environment.)
#
#   benches/restart.sh
#   SERVICES=100 RUN_FOR=20 benches/restart.sh
#   FULL_WINDOW=1 benches/restart.sh
#   SERVICES=100 SLOS=2 ROUTES=100 FULL_WINDOW=1 benches/restart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh

SERVICES=${SERVICES:-1000}
SLOS=${SLOS:-10}
RUN_FOR=${RUN_FOR:-60}
ROUTES=${ROUTES:-0}
fleet_args=(--services "$SERVICES" --slos "$SLOS" --groups "$ROUTES")

work=$(mktemp -d)
trap cleanup EXIT
bin=$(sloguard_bin "$work")
[ -z "${FULL_WINDOW:-}" ] || seeder=$(bench_bin restore "$work")

# first_scrape API T0: waits until an evaluation has seen the first scrape (the core has ingested
# it), and prints how long after T0 that was. Series are matched to SLOs when first seen, so the
# first scrape after a start costs far more than the following ones.
first_scrape() {
    local deadline=$(( $(now_ms) + 600000 ))
    until curl -fsS "$1/metrics" | grep -q '^sloguard_source_fetches_total{[^}]*} [1-9]'; do
        [ "$(now_ms)" -lt "$deadline" ] || { echo "error: no scrape ingested after 600 s" >&2; return 1; }
        sleep 0.1
    done
    echo "  first scrape ingested and evaluated: $(( $(now_ms) - $2 )) ms after start"
}

gen_port=$(free_port)
api_port=$(free_port)
python3 benches/fleet.py serve "$gen_port" "${fleet_args[@]}" &
started_pids+=($!)
python3 benches/fleet.py specs "$work/specs" "${fleet_args[@]}" --target "http://127.0.0.1:$gen_port/metrics"
cat > "$work/sloguard.yaml" <<YAML
listen: 127.0.0.1:$api_port
data_dir: data
specs: specs
evaluation_interval: 5s
flush_interval: 5s
shutdown_grace: 30s
YAML
wait_http "http://127.0.0.1:$gen_port/metrics" 30

api="http://127.0.0.1:$api_port"

# start_timed CONFIG LOG WHAT: starts the daemon (pid in $daemon, start in $t0), prints how long
# until /readyz answered, the store's restore line if any, and when the first scrape was in.
start_timed() {
    t0=$(now_ms)
    "$bin" run --config "$1" > "$2" 2>&1 &
    daemon=$!
    started_pids+=($daemon)
    wait_http "$api/readyz" 120
    echo "$3: ready in $(( $(now_ms) - t0 )) ms"
    grep -h 'state restored' "$2" | grep -v 'windows=0 ' | sed 's/^.*INFO /  /' || true
    first_scrape "$api" "$t0"
}

start_timed "$work/sloguard.yaml" "$work/run1.log" "cold start (no state)"
echo "running ${RUN_FOR}s..."
sleep "$RUN_FOR"
curl -fsS "$api/metrics" | grep -E '^sloguard_evaluation_duration_seconds |^sloguard_evaluations_total '
echo "frozen services: $(curl -fsS "$api/v1/services" | grep -o '"frozen":true' | wc -l)"
echo "rss before stop: $(( $(awk '/VmRSS/ {print $2}' "/proc/$daemon/status") / 1024 )) MiB"
frozen_before=$(curl -fsS "$api/v1/gate/gen-00000" | grep -o '"frozen_since":[^,]*')

t0=$(now_ms)
kill -TERM "$daemon"
wait_exit "$daemon" 60
echo "SIGTERM to exit: $(( $(now_ms) - t0 )) ms; store: $(du -sh "$work/data" | cut -f1)"

start_timed "$work/sloguard.yaml" "$work/run2.log" "restart with state"
frozen_after=$(curl -fsS "$api/v1/gate/gen-00000" | grep -o '"frozen_since":[^,]*')
echo "gen-00000 before: $frozen_before; after: $frozen_after"
[ "$frozen_before" = "$frozen_after" ] || { echo "error: freeze not restored" >&2; exit 1; }

[ -n "${FULL_WINDOW:-}" ] || exit 0
kill -TERM "$daemon"
wait_exit "$daemon" 60
echo "seeding 30 days of state for the same fleet..."
"$seeder" --bench "${fleet_args[@]}" --days 30 --keep "$work/full" \
    --target "http://127.0.0.1:$gen_port/metrics" | sed 's/^/  /'
sed -e 's#^data_dir: .*#data_dir: full/data#' -e 's#^specs: .*#specs: full/specs#' \
    "$work/sloguard.yaml" > "$work/full.yaml"
start_timed "$work/full.yaml" "$work/run3.log" "start with 30 days of state"

# Then three more starts each with the page cache as it is and after dropping it (root only):
# a reboot, or a host that reclaimed the idle store's pages, reads the whole store from disk.
for round in 1 2 3; do
    for cache in warm cold; do
        kill -TERM "$daemon"
        wait_exit "$daemon" 60
        if [ "$cache" = cold ]; then
            sync
            if ! echo 3 2>/dev/null > /proc/sys/vm/drop_caches; then
                echo "  (cannot drop the page cache without root: cold starts skipped)"
                continue
            fi
        fi
        echo "  window log: $(du -h "$work/full/data/windows.log" | cut -f1)"
        start_timed "$work/full.yaml" "$work/run3.log" "restart, 30 days of state, $cache page cache"
    done
done
