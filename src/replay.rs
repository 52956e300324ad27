//! `sloguard replay`: drives the engine over a recorded series file, as a backtest.
//!
//! Owns turning a text-exposition file with millisecond timestamps (a concatenation of scrapes,
//! or `promtool tsdb dump` output, which is ordered by series rather than time) into evaluation
//! instants. It evaluates at every distinct sample timestamp and at every whole minute from the
//! first sample to the last, exactly as the conformance suite specifies: the minutes are what
//! the daemon's clock would give, so a gap in the data is seen (`no_data`) while it lasts. It
//! writes nothing itself: events go to a callback, so the CLI decides the format.

use crate::clock::{MINUTE, Millis};
use crate::engine::{Engine, EngineOptions, Event, SeriesId, Serves};
use crate::exposition::{self, ParseError};
use crate::spec::ServiceSpec;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The series file is not valid text exposition.
    #[error("series file: {0}")]
    Parse(#[from] ParseError),
    /// A sample without a timestamp cannot be placed in time.
    #[error("series file: sample {series} has no timestamp (replay needs millisecond timestamps)")]
    MissingTimestamp { series: String },
}

/// What a replay saw, per SLO, for the human summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloSummary {
    pub budget_remaining: Option<f64>,
    /// Highest burn seen in the SLO's fastest long alert window, and when.
    pub worst_burn: Option<(f64, Millis)>,
    pub n_events: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub n_samples: usize,
    pub n_instants: usize,
    pub first: Option<Millis>,
    pub last: Option<Millis>,
    /// `(SLO id, summary)` in spec order.
    pub slos: Vec<(String, SloSummary)>,
}

/// Replays `series` (exposition bytes) against `specs`, calling `on_event` for every state change
/// in time order, and returns a summary.
pub fn replay(specs: &[ServiceSpec], series: &[u8], mut on_event: impl FnMut(&Event)) -> Result<Summary, ReplayError> {
    let mut engine = Engine::new(specs, EngineOptions::default());
    let samples = timeline(&mut engine, series)?;
    let mut summary = Summary { n_samples: samples.len(), ..Summary::default() };
    summary.slos = engine.slo_views().map(|v| (v.id().to_string(), SloSummary::default())).collect();

    let mut batches = samples.chunk_by(|a, b| a.at == b.at).peekable();
    let mut next_minute = samples.first().map(|s| ceil_to_minute(s.at));
    loop {
        let next_batch = batches.peek().map(|b| b[0].at);
        let at = match (next_batch, next_minute) {
            (Some(b), Some(m)) => b.min(m),
            (Some(b), None) => b,
            (None, _) => break,
        };
        if next_batch == Some(at) {
            for sample in batches.next().expect("peeked") {
                engine.observe(sample.series, at, sample.value);
            }
        }
        if next_minute == Some(at) {
            next_minute = Some(at + MINUTE);
        }
        for event in engine.evaluate(at) {
            if let Some(entry) = summary.slos.iter_mut().find(|(id, _)| Some(id.as_str()) == event_slo(&event)) {
                entry.1.n_events += 1;
            }
            on_event(&event);
        }
        record_worst_burn(&engine, at, &mut summary);
        summary.first.get_or_insert(at);
        summary.last = Some(at);
        summary.n_instants += 1;
    }
    for (view, (_, entry)) in engine.slo_views().zip(&mut summary.slos) {
        entry.budget_remaining = view.budget_remaining();
    }
    Ok(summary)
}

/// The first whole minute (a multiple of 60 s since the epoch) at or after `at`.
fn ceil_to_minute(at: Millis) -> Millis {
    at.div_euclid(MINUTE) * MINUTE + if at.rem_euclid(MINUTE) == 0 { 0 } else { MINUTE }
}

#[derive(Debug, Clone, Copy)]
struct TimedSample {
    at: Millis,
    series: SeriesId,
    value: f64,
}

/// Resolves every sample to a series handle and orders them by time (stable, so duplicate
/// timestamps keep file order).
fn timeline(engine: &mut Engine, series: &[u8]) -> Result<Vec<TimedSample>, ReplayError> {
    let parsed = exposition::parse_strict(series)?;
    let source = engine.source("replay", Serves::Every);
    let mut samples = Vec::with_capacity(parsed.len());
    for s in &parsed {
        let at = s.timestamp_ms.ok_or_else(|| ReplayError::MissingTimestamp { series: s.series.to_string() })?;
        let id = engine.series(source, s.series, s.name, &s.labels);
        samples.push(TimedSample { at, series: id, value: s.value });
    }
    if !samples.is_sorted_by_key(|s| s.at) {
        samples.sort_by_key(|s| s.at);
    }
    Ok(samples)
}

fn event_slo(event: &Event) -> Option<&str> {
    match &event.kind {
        crate::engine::EventKind::AlertFiring(a) | crate::engine::EventKind::AlertResolved(a) => Some(&a.slo),
        crate::engine::EventKind::NoData(n) | crate::engine::EventKind::DataReturned(n) => Some(&n.slo),
        _ => None,
    }
}

fn record_worst_burn(engine: &Engine, at: Millis, summary: &mut Summary) {
    for (view, (_, entry)) in engine.slo_views().zip(&mut summary.slos) {
        let Some(burn) = view.current_burn() else { continue };
        if entry.worst_burn.is_none_or(|(worst, _)| burn > worst) {
            entry.worst_burn = Some((burn, at));
        }
    }
}
