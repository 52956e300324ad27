//! The engine's side of persistence: plain data it exports and accepts, with no idea where it
//! goes. The store decides encoding and durability; the daemon decides when to call these.
//!
//! Two kinds of state with different durability needs:
//! - *Transitions* (alert tiers firing, services frozen) change rarely and must never be lost or
//!   a restart would re-page: the daemon commits them together with the events that caused them.
//! - *Windows* and *series* change every scrape and are flushed periodically; a crash loses at
//!   most one flush interval of samples, which reads as a short gap (no data), never as good.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use super::window::{CountersHeader, Detail, Page, RestoreError};
use super::{Engine, EngineOptions, Event, SloState};
use crate::clock::Millis;
use crate::spec::{ServiceSpec, Severity};

/// Alert or freeze state as of a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition {
    Slo {
        id: String,
        tiers: Vec<TierRecord>,
        /// While the SLO is in `no_data`, its last sample's instant (absent in older stores).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no_data_since: Option<Millis>,
    },
    Service {
        name: String,
        frozen_since: Option<Millis>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierRecord {
    pub severity: Severity,
    pub firing_since: Option<Millis>,
    pub fired_condition: usize,
}

/// An SLO's window counters: the header always, pages that changed (or all, when restoring).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecord {
    pub slo: String,
    /// Identifies what the counters count and their level plan (see [`Engine::restore`]).
    pub fingerprint: u64,
    pub header: CountersHeader,
    pub pages: Vec<Page>,
    /// `pages` holds every page and replaces whatever was stored (the plan changed).
    pub replaces_all: bool,
}

/// The last value of one series that feeds an SLO, so the first sample after a restart is a
/// delta rather than a new baseline (when the restart was shorter than the gap limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub source: String,
    pub series: String,
    pub at: Millis,
    pub value: f64,
}

/// Everything the store hands back at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    pub windows: Vec<WindowRecord>,
    pub transitions: Vec<Transition>,
    pub series: Vec<SeriesRecord>,
}

/// What a restore kept and dropped, for the start-up log line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreReport {
    pub n_windows: usize,
    /// SLOs whose persisted counters no longer fit their spec (SLI or windows changed).
    pub discarded: Vec<String>,
    pub n_transitions: usize,
    pub n_series: usize,
}

impl Engine {
    /// Alert and freeze state of everything `events` touched, to commit with those events.
    pub fn transitions_for(&self, events: &[Event]) -> Vec<Transition> {
        let mut out: Vec<Transition> = Vec::new();
        for event in events {
            let record = match &event.kind {
                super::EventKind::AlertFiring(a) | super::EventKind::AlertResolved(a) => {
                    self.slos.iter().find(|s| s.id == a.slo).map(|slo| self.slo_transition(slo))
                }
                super::EventKind::NoData(n) | super::EventKind::DataReturned(n) => {
                    self.families.iter().find(|f| f.id == n.slo).map(|family| match family.groups[0].instance {
                        // One record per id: an ungrouped SLO's holds its tiers too.
                        Some(i) if !family.grouped() => self.slo_transition(&self.slos[i as usize]),
                        _ => Transition::Slo {
                            id: family.id.clone(),
                            tiers: Vec::new(),
                            no_data_since: family.no_data_since,
                        },
                    })
                }
                super::EventKind::Freeze(f) | super::EventKind::Unfreeze(f) => self
                    .services
                    .iter()
                    .find(|s| s.name == f.service)
                    .map(|s| Transition::Service { name: s.name.clone(), frozen_since: s.frozen_since }),
            };
            if let Some(record) = record.filter(|r| !out.contains(r)) {
                out.push(record);
            }
        }
        out
    }

    /// Makes the next exports return everything, for a save that replaces the stored state.
    pub fn mark_all_dirty(&mut self) {
        for slo in &mut self.slos {
            slo.counters.mark_all_dirty();
        }
        for series in &mut self.series {
            series.dirty = series.last.is_some();
        }
    }

    /// Window counters changed since the last export.
    pub fn export_windows(&mut self) -> Vec<WindowRecord> {
        self.slos
            .iter_mut()
            .map(|slo| {
                let (pages, replaces_all) = slo.counters.take_dirty_pages();
                WindowRecord {
                    slo: slo.id.clone(),
                    fingerprint: slo.fingerprint,
                    header: slo.counters.header(),
                    pages,
                    replaces_all,
                }
            })
            .collect()
    }

    /// Last values of SLO-feeding series that moved since the last export.
    pub fn export_series(&mut self) -> Vec<SeriesRecord> {
        let mut out = Vec::new();
        for (source, names) in self.series_by_source.iter().enumerate() {
            for (key, id) in names {
                let state = &mut self.series[id.0 as usize];
                if !std::mem::take(&mut state.dirty) {
                    continue;
                }
                if let Some((at, value)) = state.last {
                    out.push(SeriesRecord {
                        source: self.source_names[source].clone(),
                        series: key.to_string(),
                        at,
                        value,
                    });
                }
            }
        }
        out
    }

    /// Loads persisted state into a freshly built engine. Counters of another SLI are dropped
    /// (that SLO starts empty), never silently reinterpreted; counters of the same SLI saved
    /// under another level plan (its windows, or sloguard's ladder, changed) are resampled.
    pub fn restore(&mut self, restored: Restored) -> RestoreReport {
        let mut report = RestoreReport::default();
        // Looked up by name: a linear search per record is quadratic, a second at 10,000 SLOs.
        let mut ids = self.instance_ids();
        let services: HashMap<String, usize> =
            self.services.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        for record in restored.windows {
            let Some(i) = self.instance_by_id(&record.slo, &mut ids) else { continue };
            let slo = &mut self.slos[i];
            let saved_plan = format!("{:?}", record.header.plan_signature());
            let fits = record.fingerprint == fnv1a_extend(slo.sli_hash, &[&saved_plan]);
            if fits && slo.counters.restore(&record.header, &record.pages).is_ok() {
                report.n_windows += 1;
            } else {
                report.discarded.push(record.slo);
            }
        }
        for transition in restored.transitions {
            let applied = match transition {
                Transition::Slo { id, tiers, no_data_since } => {
                    if let Some(family) = self.families.iter_mut().find(|f| f.grouped() && f.id == id) {
                        family.no_data_since = no_data_since;
                        Some(())
                    } else {
                        // Windows bring grouped instances back; alert state alone does not
                        // (it outlives an evicted group until the store forgets it).
                        ids.get(&id).copied().map(|i| {
                            apply_tiers(&mut self.slos[i], &tiers);
                            let family = &mut self.families[self.slos[i].family as usize];
                            if !family.grouped() {
                                family.no_data_since = no_data_since;
                            }
                        })
                    }
                }
                Transition::Service { name, frozen_since } => {
                    services.get(&name).map(|&i| self.services[i].frozen_since = frozen_since)
                }
            };
            report.n_transitions += usize::from(applied.is_some());
        }
        // A group whose windows were discarded has nothing to say: kept, it would show "no data"
        // until its next sample, which may never come.
        let mut empty: Vec<usize> = (0..self.slos.len())
            .filter(|&i| {
                self.families[self.slos[i].family as usize].grouped() && self.slos[i].counters.samples().is_none()
            })
            .collect();
        empty.sort_unstable_by(|a, b| b.cmp(a));
        for i in empty {
            self.evict(i);
        }
        report.n_series = restored.series.len();
        for record in restored.series {
            self.pending_last.insert((record.source, record.series), (record.at, record.value));
        }
        report
    }

    /// A new engine for `specs` that keeps the state of every SLO whose counters still fit,
    /// alert tiers by severity, freezes by service, and every series' last value.
    pub fn reload(mut self, specs: &[ServiceSpec], options: EngineOptions) -> Engine {
        let mut next = Engine::new(specs, options);
        let mut ids = next.instance_ids();
        for old in self.slos.drain(..) {
            let Some(i) = next.instance_by_id(&old.id, &mut ids) else { continue };
            let slo = &mut next.slos[i];
            if old.fingerprint == slo.fingerprint {
                slo.counters = old.counters;
            } else if old.sli_hash == slo.sli_hash {
                slo.counters.resample(&old.counters);
            }
            for tier in &mut slo.tiers {
                if let Some(old_tier) = old.tiers.iter().find(|t| t.severity == tier.severity) {
                    tier.firing_since = old_tier.firing_since;
                    tier.fired_condition = old_tier.fired_condition.min(tier.conditions.len() - 1);
                }
            }
        }
        for family in &mut next.families {
            if let Some(old) = self.families.iter().find(|f| f.id == family.id) {
                family.no_data_since = old.no_data_since;
                family.last_sample = old.last_sample;
            }
        }
        for service in &mut next.services {
            if let Some(old) = self.services.iter().find(|s| s.name == service.name) {
                service.frozen_since = old.frozen_since;
            }
        }
        for (source, names) in self.series_by_source.iter().enumerate() {
            for (key, id) in names {
                if let Some(last) = self.series[id.0 as usize].last {
                    next.pending_last.insert((self.source_names[source].clone(), key.to_string()), last);
                }
            }
        }
        next.pending_last.extend(self.pending_last.drain());
        next
    }
}

impl Engine {
    fn instance_ids(&self) -> HashMap<String, usize> {
        self.slos.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect()
    }

    /// The instance with this id: an existing one, or, for an id of a grouped SLO, a new
    /// instance of its group (restored state outlives the process that created the instance).
    /// `None` for an id no spec declares (any more), or beyond the SLO's `max_groups`.
    fn instance_by_id(&mut self, id: &str, ids: &mut HashMap<String, usize>) -> Option<usize> {
        if let Some(&i) = ids.get(id) {
            return Some(i);
        }
        let family_id = &id[..id.find('{')?];
        let family = self.families.iter().position(|f| f.grouped() && f.id == family_id)?;
        let values = self.families[family].parse_instance_id(id)?;
        let group = self.families[family].group(values);
        let i = self.create_instance(family as u32, group)? as usize;
        ids.insert(id.to_string(), i);
        Some(i)
    }

    fn slo_transition(&self, slo: &SloState) -> Transition {
        let family = &self.families[slo.family as usize];
        Transition::Slo {
            id: slo.id.clone(),
            tiers: slo
                .tiers
                .iter()
                .map(|t| TierRecord {
                    severity: t.severity,
                    firing_since: t.firing_since,
                    fired_condition: t.fired_condition,
                })
                .collect(),
            // A grouped SLO's `no_data` is its family's, recorded under the family's id.
            no_data_since: if family.grouped() { None } else { family.no_data_since },
        }
    }
}

fn apply_tiers(slo: &mut SloState, records: &[TierRecord]) {
    for record in records {
        if let Some(tier) = slo.tiers.iter_mut().find(|t| t.severity == record.severity) {
            tier.firing_since = record.firing_since;
            tier.fired_condition = record.fired_condition.min(tier.conditions.len() - 1);
        }
    }
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`, which may change between Rust releases), so
/// fingerprints written by one build are read correctly by the next.
pub(super) fn fnv1a(parts: &[&str]) -> u64 {
    fnv1a_extend(0xcbf2_9ce4_8422_2325, parts)
}

/// Continues an [`fnv1a`] hash: `fnv1a_extend(fnv1a(a), b) == fnv1a(a ++ b)`.
pub(super) fn fnv1a_extend(mut hash: u64, parts: &[&str]) -> u64 {
    for part in parts {
        for &byte in part.as_bytes().iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
