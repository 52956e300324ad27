# Shared by the daemon benchmarks (gate_load.sh, restart.sh): the binaries, free loopback ports,
# bounded waits, and cleanup of exactly the processes the script started. Source, don't run.

# sloguard_bin DIR: the release binary, copied into DIR so that a build running meanwhile (a
# shared CARGO_TARGET_DIR) cannot swap it mid-run: $SLOGUARD if set, else built (incrementally).
sloguard_bin() {
    local built=${SLOGUARD:-}
    if [ -z "$built" ]; then
        cargo build --release --quiet --bin sloguard >&2
        built="${CARGO_TARGET_DIR:-$PWD/target}/release/sloguard"
    fi
    cp "$built" "$1/sloguard"
    echo "$1/sloguard"
}

# bench_bin NAME DIR: the release build of the harness-less bench benches/NAME.rs, built now so
# that no compilation runs inside a timed region, and copied into DIR as sloguard_bin does.
bench_bin() {
    local built
    built=$(cargo bench --quiet --bench "$1" --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == sys.argv[1] and msg.get("executable"):
        print(msg["executable"])
' "$1")
    cp "$built" "$2/$1"
    echo "$2/$1"
}

# A loopback port that was free a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

# wait_http URL SECONDS: polls every 10 ms until URL answers 200; fails after SECONDS.
wait_http() {
    local deadline=$(( $(now_ms) + $2 * 1000 ))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "error: $1 not answering after $2 s" >&2
            return 1
        fi
        sleep 0.01
    done
}

# wait_exit PID SECONDS: waits for a child to exit; fails (and kills it) after SECONDS.
wait_exit() {
    local deadline=$(( $(now_ms) + $2 * 1000 ))
    while kill -0 "$1" 2>/dev/null; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "error: pid $1 still running after $2 s; killing it" >&2
            kill -KILL "$1" 2>/dev/null || true
            return 1
        fi
        sleep 0.01
    done
    wait "$1" 2>/dev/null || true
}

# Processes this script started; each is stopped by its own pid on exit.
started_pids=()
cleanup() {
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${work:-}" ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    fi
}
