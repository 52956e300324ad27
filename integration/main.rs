//! Integration tests: the real sloguard binary against real services on loopback.

mod notify;
mod prometheus_source;
mod promtool;
mod support;
