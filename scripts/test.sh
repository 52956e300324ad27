#!/usr/bin/env bash
# The project's test command (see README): installs what the integration tests run against,
# then builds and runs every test in release mode. Idempotent: installs only what is missing.
# Runs on a fresh Debian/Ubuntu machine as root, or as a user with sudo.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { echo "==> $*"; }

# Root runs apt-get directly; anyone else goes through sudo.
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: need root or sudo to install test dependencies" >&2
    exit 1
fi

# `apt-get update` is slow and needs the network, so it runs at most once, and only when a
# package is actually missing.
apt_updated=false
apt_install() {
    if [ "$apt_updated" = false ]; then
        step "apt-get update"
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=true
    fi
    step "apt-get install $*"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# A real Prometheus for the query-API tests (integration/support/prometheus.rs); the package
# also ships promtool, which checks alerts/sloguard.rules.yml (integration/promtool.rs).
if command -v prometheus >/dev/null 2>&1 || dpkg -s prometheus >/dev/null 2>&1; then
    step "prometheus present: $(prometheus --version 2>&1 | head -n 1)"
else
    apt_install prometheus
fi
# The Debian package enables a system service; the tests start their own instances on free
# ports, so a service on :9090 is harmless but not needed.

# aiosmtpd is the real SMTP server for the email tests. pip first (it installs into whichever
# python3 is on PATH); Debian's system Python refuses pip installs (PEP 668), so fall back to
# the distribution package there.
if python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    step "aiosmtpd present"
else
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3
    fi
    step "installing aiosmtpd"
    if ! python3 -m pip install --quiet aiosmtpd 2>/dev/null; then
        apt_install python3-aiosmtpd
    fi
    python3 -c 'import aiosmtpd' || {
        echo "error: aiosmtpd is still not importable by $(command -v python3)" >&2
        exit 1
    }
fi

step "cargo build --release"
cargo build --release

# --all-targets runs unit tests, the integration binary, and compiles benches; doc tests are
# not part of --all-targets, so they run separately.
step "cargo test --release --all-targets"
cargo test --release --all-targets
step "cargo test --release --doc"
cargo test --release --doc

step "all tests passed"
