//! sloguard: SLO burn-rate alerting, durable error budgets and deploy gates.
//!
//! The library holds every domain module; `main.rs` is only the CLI edge. See
//! `ARCHITECTURE.md` for the module map, the data flow and the invariants.
#![deny(unsafe_code)]

pub mod api;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod duration;
pub mod engine;
pub mod exposition;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod prometheus;
pub mod replay;
pub mod scrape;
pub mod selector;
pub mod spec;
pub mod status;
pub mod store;
