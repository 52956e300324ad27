//! Integration tests: the real sloguard binary against real services on loopback.

mod calendar;
mod daemon;
mod daemon_prometheus;
mod gate;
mod notify;
mod prometheus_source;
mod promtool;
mod recipes;
mod replay_oracle;
mod store;
mod support;
