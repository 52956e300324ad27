//! Integration tests: the real sloguard binary against real services on loopback.

mod prometheus_source;
mod replay_oracle;
mod support;
