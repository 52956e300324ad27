//! Integration tests: the real sloguard binary against real services on loopback.

mod daemon;
mod daemon_prometheus;
mod prometheus_source;
mod promtool;
mod support;
