//! Integration tests: the real sloguard binary against real services on loopback.

mod gate;
mod notify;
mod prometheus_source;
mod promtool;
mod recipes;
mod support;
