//! Stand-in for the engine's corrections API (`Engine::set_exclusions`, `engine::Exclusion`)
//! until it lands in main: the same names and shape, and no effect. Delete it at that merge.

use crate::clock::Millis;
use crate::engine::Engine;

/// A correction as the engine sees it: events of the service (or one SLO) in `[start, end)` do
/// not count against the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub id: String,
    /// SLO name within the service; `None` covers every SLO of the service.
    pub slo: Option<String>,
    pub start: Millis,
    pub end: Millis,
}

impl Engine {
    pub fn set_exclusions(&mut self, _service: &str, _exclusions: Vec<Exclusion>) {}
}
