//! The SLO engine: window counters, burn rates, error budgets, alert and freeze state machines.
//!
//! Pure code with an injected clock: drivers hand it samples with their instants and ask it to
//! evaluate at an instant; it returns [`Event`]s. It does no I/O, reads no clock, spawns nothing,
//! and knows nothing of HTTP, sled, Slack or files. `sloguard replay` and the live daemon drive
//! the same engine, which is what makes a replayed backtest a faithful preview of production.
//!
//! Semantics (see `../shared/conformance/v2/README.md`): the increase of a series over `(t-W, t]`
//! is the sum of its reset-aware deltas whose later sample lies in the window; a selector sums
//! its series; `burn(W) = error ratio / (1 - objective)`; a window with no traffic has no burn,
//! and a missing burn makes every comparison false, so no data never reads as good or bad.

mod event;
mod group;
mod index;
mod persist;
mod slice;
#[cfg(test)]
mod tests;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use event::{
    AlertChange, ConditionReport, Event, EventKind, FreezeChange, Group, NoDataChange, Postmortem, SloBudget,
};
use group::Family;
use index::SelectorIndex;
pub use persist::{
    CountersHeader, Detail, Page, RestoreError, RestoreReport, Restored, SeriesRecord, TierRecord, Transition,
    WindowRecord,
};
use slice::Slicer;
use window::{Counters, SELECTED, TOTAL, WindowRef, prefetch, prefetch_all};

/// The feed slot of a time-slice SLI's gauge: its samples go to the SLO's [`Slicer`].
const GAUGE: u8 = 2;

use crate::calendar::CalendarWindow;
use crate::clock::{Millis, duration_millis, format_span};
use crate::selector::LabelSet;
use crate::spec::{Policy, ServiceSpec, Severity, Sli};

/// Identifies where samples come from (a scrape target, a Prometheus server). Series are keyed
/// per source, so two replicas exposing identical series text are two series, summed as usual.
pub type SourceId = u32;

/// Which services' SLOs a source's series may feed.
///
/// A series is matched only against the selectors of the services its source serves, so a
/// target listed by one service can never page or freeze another that happens to select the
/// same metric names and labels. Two services share a target only by each listing it.
#[derive(Debug, Clone, Copy)]
pub enum Serves<'a> {
    /// Every service of the engine: `replay`, whose series file is the specs' only input.
    Every,
    /// These services (by name); a name the engine does not know is ignored.
    Services(&'a [String]),
}

/// A handle to a series the engine has seen, for drivers that resolve once and observe often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesId(u32);

/// Knobs that differ between drivers.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineOptions {
    /// A series silent for longer than this restarts from its next sample instead of counting
    /// the increase across the gap. The daemon sets it so that time it was down is "no data"
    /// rather than a burst at restart; replay leaves it `None` to match Prometheus' `increase`.
    pub max_sample_gap: Option<Millis>,
}

/// A budget correction: events in `(start, end]` neither count as good nor bad for one SLO, or
/// for every SLO of a service (a maintenance window, a load test, another team's outage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusion {
    pub id: String,
    /// SLO name within the service; `None` covers every SLO of the service.
    pub slo: Option<String>,
    pub start: Millis,
    pub end: Millis,
}

/// What to do with a sample older than an SLO's latest instant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lateness<'a> {
    CountAtLatest,
    /// Skip samples at or before each SLO's horizon (indexed like `Engine::slos`).
    SkipUntil(&'a [Option<Millis>]),
}

/// A `Feed::slo` whose group has no instance: none yet, evicted, or refused for `max_groups`.
const UNBOUND: u32 = u32::MAX;

/// How one series feeds one SLO instance.
#[derive(Debug, Clone, Copy)]
struct Feed {
    /// Index into `Engine::slos`, or [`UNBOUND`].
    slo: u32,
    slot: u8,
    /// Index into `Engine::families`, and the series' group in it.
    family: u32,
    group: u32,
}

/// A new group a grouped SLO refused because it already held `max_groups` instances.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRefusal {
    pub service: String,
    /// `service/name`.
    pub slo: String,
    /// The instance id the group would have had.
    pub group: String,
    /// The source of the series that asked for it.
    pub source: String,
    pub max_groups: usize,
}

/// A counter sample the engine did not count: a counter is a finite number at or above zero.
/// Reported once per series while its samples stay invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRejection {
    pub source: String,
    /// The series as its source keys it: `http_requests_total{code="500"}`.
    pub series: String,
    /// `NaN`, `+Inf`, `-Inf` or `negative`.
    pub reason: &'static str,
}

impl SampleRejection {
    /// Why `value` is not a counter value, if it is not.
    fn reason(value: f64) -> Option<&'static str> {
        match value {
            v if v.is_nan() => Some("NaN"),
            f64::INFINITY => Some("+Inf"),
            f64::NEG_INFINITY => Some("-Inf"),
            v if v < 0.0 => Some("negative"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct SeriesState {
    /// The series' key within its source, shared with `Engine::series_by_source`.
    key: Arc<str>,
    source: SourceId,
    /// The series its source listed right after this one the last time: what `Engine::series`
    /// tries before a hash lookup.
    next: Option<SeriesId>,
    last: Option<(Millis, f64)>,
    feeds: Vec<Feed>,
    /// `last` changed since the last export.
    dirty: bool,
    /// Its last sample was rejected (and reported): later ones are counted, not reported again.
    rejected: bool,
    /// The instant of its latest sample, `Millis::MIN` before the first: what
    /// [`Engine::forget_silent_series`] goes by.
    seen: Millis,
}

/// The ratio an SLI yields from its two counters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RatioKind {
    /// `selected` counts errors.
    Errors,
    /// `selected` counts good events.
    Good,
}

#[derive(Debug, Clone)]
struct TierState {
    severity: Severity,
    /// `(long window index, short window index, factor)` into `SloState::windows`.
    /// This tier's run of `SloState::conditions`.
    conditions: std::ops::Range<usize>,
    firing_since: Option<Millis>,
    /// The condition that fired, reported again on resolve.
    fired_condition: usize,
}

#[derive(Debug, Clone)]
struct SloState {
    /// `service/name`, or for an instance of a grouped SLO `service/name{route="/pay"}`.
    id: String,
    /// Index into `Engine::families`, and the instance's group there.
    family: u32,
    group: u32,
    /// Hash of what the counters count (SLI selectors and window plan), see `persist`.
    fingerprint: u64,
    /// Hash of the SLI alone, which `fingerprint` extends: equal SLIs keep counters across plans.
    sli_hash: u64,
    service: usize,
    objective: f64,
    /// `1 - objective`, exact for decimal objectives (see `SloSpec::budget_fraction`).
    budget: f64,
    kind: RatioKind,
    counters: Counters,
    /// Distinct windows; `windows[0]` is the SLO window (the budget), the rest feed the tiers.
    windows: Vec<WindowRef>,
    /// Burn per window at the last evaluation, parallel to `windows`.
    burns: Vec<Option<f64>>,
    /// Index into `windows` used for "time to exhaustion at the current burn".
    current_burn_window: usize,
    tiers: Vec<TierState>,
    /// `(long window index, short window index, factor)` into `windows`, every tier's in one
    /// block: one cache line to fetch per evaluation rather than one per tier.
    conditions: Vec<(usize, usize, f64)>,
    /// Corrections applying to this SLO; their events are subtracted from every window.
    exclusions: Vec<(Millis, Millis)>,
    /// A single incident burning more than this fraction of the budget flags a postmortem.
    postmortem_above: f64,
    min_events: f64,
    min_bad_events: f64,
    /// Tickets are silent while the page tier fires.
    inhibit: bool,
    /// No series feeds the good counter yet although the SLI needs one (a latency SLI whose
    /// threshold has no bucket): every window is no data, not "every event bad".
    awaiting_good: bool,
    /// A calendar budget: `windows[0]` then keeps the longest period, and the budget counts
    /// from the current period's start. Boxed: the zone is large, and evaluating 10,000 SLOs
    /// streams every `SloState` through the cache, so its size is evaluation time.
    calendar: Option<Box<CalendarState>>,
    /// A time-slice SLI's open slice, turned into counts as slices close. Boxed like
    /// `calendar`: most SLOs count requests.
    slices: Option<Box<Slicer>>,
}

/// A calendar budget window and the period of the last evaluation.
#[derive(Debug, Clone)]
struct CalendarState {
    window: CalendarWindow,
    /// `[start, end)`.
    period: (Millis, Millis),
}

impl CalendarState {
    /// The period holding `now`, recomputed only when `now` leaves the cached one.
    fn start_at(&mut self, now: Millis) -> Millis {
        if now < self.period.0 || now >= self.period.1 {
            self.period = self.window.bounds(now);
        }
        self.period.0
    }

    fn length(&self) -> Millis {
        self.period.1 - self.period.0
    }
}

#[derive(Debug, Clone)]
struct ServiceState {
    name: String,
    policy: Policy,
    /// This service's SLO instances, indices into `Engine::slos`.
    slos: Vec<usize>,
    frozen_since: Option<Millis>,
}

/// The engine for a set of services.
#[derive(Debug, Clone)]
pub struct Engine {
    options: EngineOptions,
    /// Every SLO instance; an instance of a grouped SLO comes and goes with its group's data.
    slos: Vec<SloState>,
    families: Vec<Family>,
    services: Vec<ServiceState>,
    selectors: SelectorIndex,
    source_names: Vec<String>,
    /// Per source, the services (indices into `services`) whose SLOs its series may feed;
    /// `None` for every service.
    source_services: Vec<Option<Vec<usize>>>,
    series_by_source: Vec<HashMap<Arc<str>, SeriesId>>,
    /// Per source, the series resolved last, whose `next` guesses the following one.
    last_resolved: Vec<Option<SeriesId>>,
    series: Vec<SeriesState>,
    /// Restored last values of series not seen yet in this run, by `(source, series)`.
    pending_last: HashMap<(String, String), (Millis, f64)>,
    /// Groups refused since the driver last asked (`take_refusals`).
    refusals: Vec<GroupRefusal>,
    /// Counter samples rejected since the driver last asked (`take_rejections`): the first of
    /// each run per series, and how many in all per source and reason.
    rejections: Vec<SampleRejection>,
    rejected: BTreeMap<(SourceId, &'static str), u64>,
    /// Instances evicted since the driver last asked (`take_evicted`), by id.
    evicted: Vec<String>,
}

impl Engine {
    pub fn new(specs: &[ServiceSpec], options: EngineOptions) -> Engine {
        let mut engine = Engine {
            options,
            slos: Vec::new(),
            families: Vec::new(),
            services: Vec::new(),
            selectors: SelectorIndex::default(),
            source_names: Vec::new(),
            source_services: Vec::new(),
            series_by_source: Vec::new(),
            last_resolved: Vec::new(),
            series: Vec::new(),
            pending_last: HashMap::new(),
            refusals: Vec::new(),
            rejections: Vec::new(),
            rejected: BTreeMap::new(),
            evicted: Vec::new(),
        };
        for spec in specs {
            engine.add_service(spec);
        }
        engine
    }

    fn add_service(&mut self, spec: &ServiceSpec) {
        let service = self.services.len();
        let mut instances = Vec::new();
        for slo in &spec.slos {
            let family = self.families.len() as u32;
            // What the counters count, for `sli_hash`: equal SLIs keep counters across plans.
            let (kind, sli_text, slices) = match &slo.sli {
                Sli::TimeSlice { gauge, good, slice, reduce } => {
                    self.selectors.insert(gauge, Feed { slo: UNBOUND, slot: GAUGE, family, group: 0 });
                    let slicer = Slicer::new(duration_millis(*slice), *good, *reduce);
                    let text = vec![gauge.as_str().to_string(), format!("{good:?} {slice:?} {reduce:?}")];
                    (RatioKind::Errors, text, Some(Box::new(slicer)))
                }
                sli => {
                    let (selected, total, good) = sli.counters().expect("a counter SLI");
                    self.selectors.insert(selected, Feed { slo: UNBOUND, slot: SELECTED as u8, family, group: 0 });
                    self.selectors.insert(total, Feed { slo: UNBOUND, slot: TOTAL as u8, family, group: 0 });
                    let mut text = vec![selected.as_str().to_string(), total.as_str().to_string()];
                    // A latency SLI's bucket selector reads `le` numerically, which its text omits.
                    if let Sli::Latency { threshold, .. } = sli {
                        text.push(format!("le={}", threshold.as_secs_f64()));
                    }
                    (if good { RatioKind::Good } else { RatioKind::Errors }, text, None)
                }
            };

            let mut spans = vec![duration_millis(slo.window)];
            // A calendar budget reads `windows[0]` from the period start, so no rolling tier
            // window may share it.
            let shared_from = usize::from(slo.calendar.is_some());
            let mut span_index = |span: Millis| match spans.iter().skip(shared_from).position(|&s| s == span) {
                Some(i) => i + shared_from,
                None => {
                    spans.push(span);
                    spans.len() - 1
                }
            };
            let mut conditions = Vec::new();
            let tiers: Vec<TierState> = slo
                .tiers
                .iter()
                .map(|tier| {
                    let start = conditions.len();
                    conditions.extend(tier.conditions.iter().map(|c| {
                        (span_index(duration_millis(c.long)), span_index(duration_millis(c.short)), c.factor)
                    }));
                    TierState {
                        severity: tier.severity,
                        conditions: start..conditions.len(),
                        firing_since: None,
                        fired_condition: 0,
                    }
                })
                .collect();
            // "Current burn" for time-to-exhaustion: the shortest long window of any tier (1h with
            // the Workbook tiers), which reacts quickly yet is not a five-minute blip.
            let current_burn_window =
                conditions.iter().map(|&(long, _, _)| long).min_by_key(|&i| spans[i]).unwrap_or(0);
            let (counters, windows) = Counters::plan(&spans);
            let plan = format!("{:?}", counters.plan_signature());
            let kind_text = format!("{kind:?}");
            let sli_parts: Vec<&str> =
                std::iter::once(kind_text.as_str()).chain(sli_text.iter().map(String::as_str)).collect();
            let sli_hash = persist::fnv1a(&sli_parts);
            let fingerprint = persist::fnv1a_extend(sli_hash, &[&plan]);
            let id = format!("{}/{}", spec.service, slo.name);
            let prototype = SloState {
                id: id.clone(),
                family,
                group: 0,
                fingerprint,
                sli_hash,
                service,
                objective: slo.objective,
                budget: slo.budget_fraction(),
                kind,
                counters,
                burns: vec![None; windows.len()],
                windows,
                current_burn_window,
                tiers,
                conditions,
                exclusions: Vec::new(),
                postmortem_above: spec.policy.postmortem_above,
                min_events: slo.alerting.min_events,
                min_bad_events: slo.alerting.min_bad_events,
                inhibit: slo.alerting.inhibit,
                awaiting_good: matches!(slo.sli, Sli::Latency { .. }),
                calendar: slo.calendar.clone().map(|window| Box::new(CalendarState { window, period: (0, 0) })),
                slices,
            };
            let mut family = Family::new(id, slo.name.clone(), service, &slo.group_by, slo.max_groups, prototype);
            family.no_data_after = slo.alerting.no_data.map(duration_millis);
            // An ungrouped SLO is listed, with no data, before its first sample.
            if !family.grouped() {
                family.groups[0].instance = Some(self.slos.len() as u32);
                family.n_instances = 1;
                instances.push(self.slos.len());
                // The one instance takes the prototype's rings rather than a copy: only grouped
                // families create instances from the prototype, and a second ring set per SLO
                // (interleaved with the live one) tripled evaluation time at 10,000 SLOs.
                let (empty, _) = Counters::plan(&[]);
                let counters = std::mem::replace(&mut family.prototype.counters, empty);
                let mut instance = (*family.prototype).clone();
                instance.counters = counters;
                self.slos.push(instance);
            }
            self.families.push(family);
        }
        self.services.push(ServiceState {
            name: spec.service.clone(),
            policy: spec.policy.clone(),
            slos: instances,
            frozen_since: None,
        });
    }

    /// The instance of `group` in `family`, created if the group has none and the family has
    /// room; `None` (and a refusal, once) when it is full.
    fn instance(&mut self, family: u32, group: u32, source: SourceId) -> Option<u32> {
        if let Some(i) = self.create_instance(family, group) {
            return Some(i);
        }
        let f = &mut self.families[family as usize];
        if !std::mem::replace(&mut f.groups[group as usize].refused, true) {
            self.refusals.push(GroupRefusal {
                service: self.services[f.service].name.clone(),
                slo: f.id.clone(),
                group: f.instance_id(group),
                source: self.source_names[source as usize].clone(),
                max_groups: f.max_groups,
            });
        }
        None
    }

    /// The instance of `group`, created if the family has room for it.
    fn create_instance(&mut self, family: u32, group: u32) -> Option<u32> {
        let f = &mut self.families[family as usize];
        let slot = &mut f.groups[group as usize];
        if let Some(i) = slot.instance {
            return Some(i);
        }
        if f.n_instances >= f.max_groups {
            return None;
        }
        slot.refused = false;
        let i = self.slos.len() as u32;
        slot.instance = Some(i);
        f.n_instances += 1;
        let mut instance = (*f.prototype).clone();
        instance.id = f.instance_id(group);
        instance.group = group;
        self.services[f.service].slos.push(i as usize);
        self.slos.push(instance);
        Some(i)
    }

    /// Binds a series' unbound feeds to their groups' instances, creating those that fit.
    fn bind_feeds(&mut self, series: usize) {
        for k in 0..self.series[series].feeds.len() {
            let feed = self.series[series].feeds[k];
            if feed.slo != UNBOUND {
                continue;
            }
            let source = self.series[series].source;
            if let Some(i) = self.instance(feed.family, feed.group, source) {
                self.series[series].feeds[k].slo = i;
                if feed.slot as usize == SELECTED {
                    self.slos[i as usize].awaiting_good = false;
                }
            }
        }
    }

    /// Removes instance `i` of a grouped SLO: its series feed no instance until their group's
    /// next sample, and the last instance takes its index.
    fn evict(&mut self, i: usize) {
        let removed = &self.slos[i];
        let family = &mut self.families[removed.family as usize];
        family.groups[removed.group as usize].instance = None;
        family.n_instances -= 1;
        let service = &mut self.services[removed.service];
        service.slos.retain(|&n| n != i);
        self.evicted.push(removed.id.clone());
        let moved = self.slos.len() - 1;
        for series in &mut self.series {
            for feed in &mut series.feeds {
                if feed.slo as usize == i {
                    feed.slo = UNBOUND;
                } else if feed.slo as usize == moved {
                    feed.slo = i as u32;
                }
            }
        }
        self.slos.swap_remove(i);
        if i < self.slos.len() {
            let slo = &self.slos[i];
            self.families[slo.family as usize].groups[slo.group as usize].instance = Some(i as u32);
            for n in &mut self.services[slo.service].slos {
                if *n == moved {
                    *n = i;
                }
            }
        }
    }

    /// Groups refused for `max_groups` since the last call, each once until it gets an instance.
    pub fn take_refusals(&mut self) -> Vec<GroupRefusal> {
        std::mem::take(&mut self.refusals)
    }

    /// Forgets the series that have had no sample for longer than `max_sample_gap`, and the
    /// restored last values of series that have not come back in that time; returns how many
    /// series it forgot. A sample after such a gap is a baseline anyway, so nothing counted
    /// changes; what it bounds is memory when a label churns (a pod name, a request id). Series
    /// ids change: drivers resolve series afresh each scrape (`replay`, which keeps ids and has
    /// no `max_sample_gap`, never forgets).
    pub fn forget_silent_series(&mut self, now: Millis) -> usize {
        let Some(gap) = self.options.max_sample_gap else { return 0 };
        let since = now - gap;
        self.pending_last.retain(|_, &mut (at, _)| at >= since);
        if self.series.iter().all(|s| s.seen >= since) {
            return 0;
        }
        let mut ids = Vec::with_capacity(self.series.len());
        let mut kept = 0;
        for series in &self.series {
            ids.push((series.seen >= since).then(|| {
                kept += 1;
                SeriesId(kept - 1)
            }));
        }
        let renumber = |id: SeriesId| ids[id.0 as usize];
        let forgotten = self.series.len() - kept as usize;
        let old = std::mem::take(&mut self.series);
        self.series = old
            .into_iter()
            .filter(|s| s.seen >= since)
            .map(|mut s| {
                s.next = s.next.and_then(renumber);
                s
            })
            .collect();
        for names in &mut self.series_by_source {
            names.retain(|_, id| renumber(*id).map(|new| *id = new).is_some());
        }
        for last in &mut self.last_resolved {
            *last = last.and_then(renumber);
        }
        forgotten
    }

    /// How many series the engine holds, across sources.
    pub fn n_series(&self) -> usize {
        self.series.len()
    }

    /// Counter samples rejected since the last call: the first of each series' run of invalid
    /// samples, and counts per `(source, reason)`.
    pub fn take_rejections(&mut self) -> (Vec<SampleRejection>, Vec<(String, &'static str, u64)>) {
        let counts = std::mem::take(&mut self.rejected)
            .into_iter()
            .map(|((source, reason), n)| (self.source_names[source as usize].clone(), reason, n))
            .collect();
        (std::mem::take(&mut self.rejections), counts)
    }

    /// Ids of instances evicted since the last call, whose stored state the driver drops.
    pub fn take_evicted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.evicted)
    }

    /// Registers (or finds) a sample source by a name stable across restarts, such as a target
    /// URL; persisted series last values are keyed by it. `serves` is fixed at registration:
    /// drivers register a source with the services that list it, and a reload builds a new
    /// engine, so a source's services cannot change under series already resolved.
    pub fn source(&mut self, name: &str, serves: Serves) -> SourceId {
        if let Some(i) = self.source_names.iter().position(|n| n == name) {
            return i as SourceId;
        }
        let services = match serves {
            Serves::Every => None,
            Serves::Services(names) => Some(
                self.services.iter().enumerate().filter(|(_, s)| names.contains(&s.name)).map(|(i, _)| i).collect(),
            ),
        };
        self.source_names.push(name.to_string());
        self.source_services.push(services);
        self.series_by_source.push(HashMap::new());
        self.last_resolved.push(None);
        (self.source_names.len() - 1) as SourceId
    }

    /// Resolves a series to a handle, matching it against the selectors of the services its
    /// source serves the first time it is seen. `key` identifies the series within `source` (the exposition's `name{labels}` text).
    pub fn series<L: LabelSet + ?Sized>(&mut self, source: SourceId, key: &str, name: &str, labels: &L) -> SeriesId {
        let source = source as usize;
        // A target lists its series in the same order every scrape, so the series that followed
        // the previous one last time is nearly always the one asked for. Checking that guess
        // compares keys that lie in memory in scrape order; the hash lookup it replaces missed
        // the cache about once per series and cost a quarter of the daemon's CPU on a 50k-series
        // target (`benches/scrape_cpu.sh`). A wrong guess costs one failed comparison.
        let previous = self.last_resolved[source];
        let guess = previous.and_then(|p| self.series[p.0 as usize].next);
        let id = match guess {
            Some(id) if *self.series[id.0 as usize].key == *key => id,
            _ => {
                let id = self.lookup_or_add(source, key, name, labels);
                if let Some(p) = previous {
                    self.series[p.0 as usize].next = Some(id);
                }
                id
            }
        };
        self.last_resolved[source] = Some(id);
        id
    }

    fn lookup_or_add<L: LabelSet + ?Sized>(&mut self, source: usize, key: &str, name: &str, labels: &L) -> SeriesId {
        if let Some(&id) = self.series_by_source[source].get(key) {
            return id;
        }
        let mut feeds = self.selectors.matching(name, labels);
        if let Some(services) = &self.source_services[source] {
            feeds.retain(|feed| services.contains(&self.families[feed.family as usize].service));
        }
        for feed in &mut feeds {
            feed.group = self.families[feed.family as usize].group_of(labels);
            // An existing instance (an ungrouped SLO's) is bound now; a group's first sample
            // creates its instance.
            if let Some(i) = self.families[feed.family as usize].groups[feed.group as usize].instance {
                feed.slo = i;
                if feed.slot as usize == SELECTED {
                    self.slos[i as usize].awaiting_good = false;
                }
            }
        }
        let last = if self.pending_last.is_empty() {
            None
        } else {
            self.pending_last.remove(&(self.source_names[source].clone(), key.to_string()))
        };
        let id = SeriesId(self.series.len() as u32);
        let key: Arc<str> = key.into();
        self.series_by_source[source].insert(key.clone(), id);
        self.series.push(SeriesState {
            key,
            source: source as SourceId,
            next: None,
            last: last.filter(|_| !feeds.is_empty()),
            feeds,
            dirty: false,
            rejected: false,
            seen: Millis::MIN,
        });
        id
    }

    /// Records a counter sample. NaN (including Prometheus' stale marker) is no sample; a sample
    /// not newer than the series' previous one is a duplicate and ignored. A sample older than an
    /// SLO's latest instant (a scrape that finished after an evaluation) counts at that instant.
    pub fn observe(&mut self, series: SeriesId, at: Millis, value: f64) {
        self.record(series, at, value, Lateness::CountAtLatest);
    }

    /// Feeds historical samples (a backfill from a query API), sorted by time. An SLO skips every
    /// sample at or before the latest instant it held when the backfill began, so a backfill can
    /// never count a period twice or pile history onto the present; within the batch every
    /// series counts at every instant.
    pub fn backfill(&mut self, points: &[(Millis, SeriesId, f64)]) {
        debug_assert!(points.is_sorted_by_key(|&(at, _, _)| at));
        // Indexed like `Engine::slos`; an instance created during the backfill has none.
        let horizons: Vec<Option<Millis>> = self.slos.iter().map(|s| s.counters.latest()).collect();
        for &(at, series, value) in points {
            self.record(series, at, value, Lateness::SkipUntil(&horizons));
        }
    }

    fn record(&mut self, series: SeriesId, at: Millis, value: f64, lateness: Lateness) {
        let state = &mut self.series[series.0 as usize];
        state.seen = state.seen.max(at);
        if state.feeds.is_empty() {
            return;
        }
        // A counter that is NaN, infinite or below zero would turn every window it feeds into
        // NaN or a negative count, silently: such a sample is left out, counted and reported,
        // and the next valid one continues from the last valid value. A gauge (a time-slice
        // SLI's) may be any number; NaN there is a staleness marker and means no sample.
        if let Some(reason) = SampleRejection::reason(value) {
            if state.feeds.iter().any(|f| f.slot != GAUGE) {
                *self.rejected.entry((state.source, reason)).or_default() += 1;
                if !std::mem::replace(&mut state.rejected, true) {
                    self.rejections.push(SampleRejection {
                        source: self.source_names[state.source as usize].clone(),
                        series: state.key.to_string(),
                        reason,
                    });
                }
                return;
            }
            if value.is_nan() {
                return;
            }
        }
        state.rejected = false;
        let previous = state.last;
        if matches!(previous, Some((t, _)) if at <= t) {
            return;
        }
        state.last = Some((at, value));
        state.dirty = true;
        // A drop means the counter reset; Prometheus counts the new value as the increase. The
        // first sample, and the first after a gap too long to bridge, is a baseline: no delta.
        let delta = previous.and_then(|(prev_at, prev_value)| {
            let bridged = self.options.max_sample_gap.is_none_or(|gap| at - prev_at <= gap);
            bridged.then_some(if value >= prev_value { value - prev_value } else { value })
        });
        if state.feeds.iter().any(|f| f.slo == UNBOUND) {
            self.bind_feeds(series.0 as usize);
        }
        for feed in &self.series[series.0 as usize].feeds {
            if feed.slo == UNBOUND {
                continue;
            }
            if let Lateness::SkipUntil(horizons) = lateness
                && horizons.get(feed.slo as usize).copied().flatten().is_some_and(|horizon| at <= horizon)
            {
                continue;
            }
            let slo = &mut self.slos[feed.slo as usize];
            if feed.slot == GAUGE {
                if let Some(slices) = slo.slices.as_deref_mut() {
                    slices.observe(at, value, &mut slo.counters);
                }
                slo.counters.note_sample(at);
                continue;
            }
            let counters = &mut slo.counters;
            counters.note_sample(at);
            if let Some(delta) = delta {
                counters.add(at, feed.slot as usize, delta);
            }
        }
    }

    /// Evaluates every SLO and service at `now` and returns the state changes, alerts first.
    ///
    /// At 10,000 SLOs their state lives in RAM, not cache, and an evaluation is a dozen
    /// independent cache misses; so the loop asks for an SLO's memory before it gets there,
    /// and decides each service's freeze while its SLOs' burns are still cached.
    pub fn evaluate(&mut self, now: Millis) -> Vec<Event> {
        let (mut alerts, mut freezes) = (Vec::new(), Vec::new());
        let mut stale = Vec::new();
        for s in 0..self.services.len() {
            for k in 0..self.services[s].slos.len() {
                let n = self.services[s].slos[k];
                // Two SLOs ahead the state blocks; one ahead, with those cached, the ring lines.
                // By index, not by the service's list: a service's SLOs are mostly consecutive,
                // and reading the next service's list is itself a cache miss per SLO.
                if let Some(after_next) = self.slos.get(n + 2) {
                    after_next.prefetch_state();
                }
                if let Some(next) = self.slos.get(n + 1) {
                    next.prefetch_rings(now);
                }
                let service = &self.services[s];
                let slo = &mut self.slos[n];
                let family = &mut self.families[slo.family as usize];
                slo.evaluate(now, &service.name, family, &mut alerts);
                if let Some(samples) = slo.counters.samples() {
                    family.last_sample = family.last_sample.max(Some(samples.last));
                    // A group silent for a whole window has nothing left to say.
                    if family.grouped() && now - samples.last >= slo.windows[0].span {
                        stale.push(n);
                    }
                }
            }
            self.services[s].evaluate(now, &self.slos, &mut freezes);
        }
        for family in &mut self.families {
            family.evaluate_no_data(now, &self.services[family.service].name, &mut alerts);
        }
        // Highest index first: `evict` moves the last instance into the hole.
        stale.sort_unstable_by(|a, b| b.cmp(a));
        for n in stale {
            self.evict(n);
        }
        alerts.append(&mut freezes);
        alerts
    }

    /// Read-only views of every SLO instance as of the last evaluation.
    pub fn slo_views(&self) -> impl Iterator<Item = SloView<'_>> {
        self.slos.iter().map(|slo| SloView {
            slo,
            family: &self.families[slo.family as usize],
            service: &self.services[slo.service],
        })
    }

    /// Read-only views of every service as of the last evaluation.
    pub fn service_views(&self) -> impl Iterator<Item = ServiceView<'_>> {
        self.services.iter().map(|service| ServiceView { service })
    }

    /// Replaces the corrections of `service` (all of them: callers pass the full current list).
    /// Takes effect at the next evaluation; returns `false` for an unknown service.
    pub fn set_exclusions(&mut self, service: &str, exclusions: &[Exclusion]) -> bool {
        let Some(service) = self.services.iter().position(|s| s.name == service) else { return false };
        for family in self.families.iter_mut().filter(|f| f.service == service) {
            family.prototype.exclusions = exclusions
                .iter()
                .filter(|e| e.slo.as_deref().is_none_or(|s| s == family.name))
                .map(|e| (e.start, e.end))
                .collect();
        }
        for &i in &self.services[service].slos {
            let slo = &mut self.slos[i];
            slo.exclusions = self.families[slo.family as usize].prototype.exclusions.clone();
        }
        true
    }

    /// Where a backfill for `service` should start at `now`: the start of the SLO window for an
    /// SLO without data, the latest instant it holds otherwise (`observe_history` skips what an
    /// SLO already has). `None` for an unknown service.
    pub fn backfill_start(&self, service: &str, now: Millis) -> Option<Millis> {
        let index = self.services.iter().position(|s| s.name == service)?;
        let instances = self.services[index].slos.iter().map(|&i| &self.slos[i]);
        // A grouped SLO's groups yet to appear have a whole window to fill.
        let empty_families = self.families.iter().filter(|f| f.service == index && f.n_instances == 0);
        instances
            .map(|slo| slo.counters.latest().unwrap_or(now - slo.windows[0].span))
            .chain(empty_families.map(|f| now - f.prototype.windows[0].span))
            .min()
    }

    /// Heap bytes held by window counters across all SLOs (the dominant per-SLO cost).
    pub fn window_heap_bytes(&self) -> usize {
        self.slos.iter().map(|s| s.counters.heap_bytes()).sum()
    }
}

impl SloState {
    /// The heap blocks `evaluate` reads besides the rings.
    fn prefetch_state(&self) {
        self.counters.prefetch_levels();
        prefetch_all(&self.windows);
        prefetch_all(&self.burns);
        prefetch_all(&self.tiers);
        prefetch_all(&self.conditions);
        // The boxed kinds' state: one more miss per SLO of those kinds otherwise.
        if let Some(calendar) = self.calendar.as_deref() {
            prefetch(calendar);
        }
        if let Some(slices) = self.slices.as_deref() {
            prefetch(slices);
        }
    }

    /// The ring lines `evaluate(now)` will read; wants [`SloState::prefetch_state`]'s blocks cached.
    fn prefetch_rings(&self, now: Millis) {
        self.counters.prefetch(now, &self.windows);
        // A calendar budget reads its ring at the period start (the last evaluation's period,
        // which is the coming one's but at a period's turn).
        if let Some(calendar) = self.calendar.as_deref() {
            self.counters.prefetch_at(self.windows[0], calendar.period.0);
        }
    }

    fn evaluate(&mut self, now: Millis, service: &str, family: &Family, events: &mut Vec<Event>) {
        if let Some(slices) = self.slices.as_deref_mut() {
            slices.close_before(now, &mut self.counters);
        }
        self.counters.advance(now);
        let budget = self.budget;
        let period_start = self.calendar.as_mut().map(|c| c.start_at(now));
        for index in 0..self.windows.len() {
            let inc = self.window_increase(index, now, period_start);
            // A calendar period that has counted no event yet has its whole budget: it is the
            // period's promise, not a measurement of traffic that might be missing.
            let whole = (index == 0 && period_start.is_some()).then_some(0.0);
            self.burns[index] = if self.awaiting_good {
                None
            } else if inc.total > 0.0 {
                let ratio = match self.kind {
                    RatioKind::Errors => inc.selected / inc.total,
                    RatioKind::Good => 1.0 - inc.selected / inc.total,
                };
                Some(ratio / budget)
            } else {
                whole
            };
        }
        // Which condition of each tier holds; tiers are at most one per severity. The
        // low-traffic guards re-read the long window only for a condition whose burns are over:
        // keeping event counts beside every burn cost 10% of evaluation at 10,000 SLOs.
        let mut holding = [None; Severity::ALL.len()];
        for (tier, held) in self.tiers.iter().zip(&mut holding) {
            *held = self.conditions[tier.conditions.clone()].iter().position(|&(long, short, factor)| {
                let over = |w: usize| self.burns[w].is_some_and(|b| b > factor);
                over(long) && over(short) && self.enough_events(long, now, period_start)
            });
        }
        let paging = self.tiers.iter().zip(&holding).any(|(t, h)| t.severity == Severity::Page && h.is_some());
        for tier_index in 0..self.tiers.len() {
            let tier = &self.tiers[tier_index];
            let own = holding[tier_index];
            // One incident, one notification: the page speaks for it while it fires.
            let inhibited = self.inhibit && paging && tier.severity == Severity::Ticket;
            let holding = own.filter(|_| !inhibited);
            let change = match (holding, tier.firing_since) {
                (Some(cond), None) => {
                    let tier = &mut self.tiers[tier_index];
                    tier.firing_since = Some(now);
                    tier.fired_condition = cond;
                    Some(EventKind::AlertFiring(self.alert_change(tier_index, service, family, now)))
                }
                (None, Some(_)) => {
                    let mut change = self.alert_change(tier_index, service, family, now);
                    if inhibited && own.is_some() {
                        change.inhibited_by = Some(Severity::Page.as_str().to_string());
                    }
                    change.postmortem = self.incident_burn(tier_index, now).map(|budget_burned| Postmortem {
                        budget_burned,
                        required: budget_burned > self.postmortem_above,
                        threshold: self.postmortem_above,
                    });
                    self.tiers[tier_index].firing_since = None;
                    Some(EventKind::AlertResolved(change))
                }
                _ => None,
            };
            if let Some(kind) = change {
                events.push(Event { at: now, kind });
            }
        }
    }

    /// The increase over window `index` at `now`, less corrections: from the calendar period's
    /// start for a calendar budget's window, over the rolling span otherwise.
    fn window_increase(&self, index: usize, now: Millis, period_start: Option<Millis>) -> window::Increase {
        let window = self.windows[index];
        let (mut inc, since) = match period_start {
            Some(start) if index == 0 => (self.counters.increase_between(window, start, now), start),
            _ => match self.slices.as_deref() {
                // A slice counts where it lies wholly inside the window, `start >= now - W`.
                // It was counted at its end, a multiple of its length, so the counts to leave
                // out are those up to the first slice start at or after `now - W`.
                Some(slices) => {
                    let start = now - window.span;
                    let from =
                        (start + (slices.length() - start.rem_euclid(slices.length())) % slices.length()).min(now);
                    (self.counters.increase_between(window, from, now), from)
                }
                None => (self.counters.increase(window), now - window.span),
            },
        };
        for &(start, end) in &self.exclusions {
            let (from, to) = (start.max(since), end.min(now));
            if from < to {
                let excluded = self.counters.increase_between(window, from, to);
                inc.selected -= excluded.selected;
                inc.total -= excluded.total;
            }
        }
        inc
    }

    /// Whether window `index` counted at least `min_events` events and `min_bad_events` bad ones.
    fn enough_events(&self, index: usize, now: Millis, period_start: Option<Millis>) -> bool {
        if self.min_events <= 0.0 && self.min_bad_events <= 0.0 {
            return true;
        }
        let inc = self.window_increase(index, now, period_start);
        let bad = match self.kind {
            RatioKind::Errors => inc.selected,
            RatioKind::Good => inc.total - inc.selected,
        };
        inc.total >= self.min_events && bad >= self.min_bad_events
    }

    fn alert_change(&self, tier_index: usize, service: &str, family: &Family, now: Millis) -> AlertChange {
        let tier = &self.tiers[tier_index];
        let (long, short, factor) = self.fired_condition(tier);
        AlertChange {
            slo: self.id.clone(),
            group: family.group_labels(self.group),
            service: service.to_string(),
            severity: tier.severity.as_str().to_string(),
            condition: ConditionReport {
                long: format_span(self.windows[long].span),
                short: format_span(self.windows[short].span),
                factor,
                long_burn: self.burns[long],
                short_burn: self.burns[short],
            },
            burn_rates: self.windows.iter().zip(&self.burns).map(|(w, &b)| (format_span(w.span), b)).collect(),
            budget_remaining: self.budget_remaining(),
            time_to_exhaustion_s: self.time_to_exhaustion_s(),
            since: tier.firing_since.unwrap_or(now),
            postmortem: None,
            inhibited_by: None,
        }
    }

    /// The share of the SLO window's budget spent by bad events since the incident began, taken
    /// as the fired condition's long window before the alert fired: that window is what caught
    /// the incident, so it holds its start even when the alert fired late into it.
    fn incident_burn(&self, tier_index: usize, now: Millis) -> Option<f64> {
        let tier = &self.tiers[tier_index];
        let since = tier.firing_since?;
        let long_span = self.windows[self.fired_condition(tier).0].span;
        let budget_window = self.windows[0];
        let from = (since - long_span).max(now - budget_window.span);
        let during = self.counters.increase_between(budget_window, from, now);
        let bad = match self.kind {
            RatioKind::Errors => during.selected,
            RatioKind::Good => during.total - during.selected,
        };
        let total = self.counters.increase(budget_window).total;
        (total > 0.0).then(|| bad / total / self.budget)
    }

    fn fired_condition(&self, tier: &TierState) -> (usize, usize, f64) {
        self.conditions[tier.conditions.start + tier.fired_condition]
    }

    /// Whether this SLO's page tier is firing (for `freeze_on_page`).
    fn page_firing(&self) -> bool {
        self.tiers.iter().any(|t| t.severity == Severity::Page && t.firing_since.is_some())
    }

    /// How long the budget window has held data: from the later of the window's start and the
    /// first sample to `now`. Zero before any sample.
    fn coverage(&self, now: Millis) -> Millis {
        let start = self.calendar.as_ref().map_or(now - self.windows[0].span, |c| c.period.0);
        self.counters.samples().map_or(0, |s| (now - s.first.max(start)).max(0))
    }

    /// The budget window's length: the rolling window, or the current calendar period.
    fn budget_span(&self) -> Millis {
        self.calendar.as_ref().map_or(self.windows[0].span, |c| c.length())
    }

    /// Whether the window holds enough data for its budget to freeze: `min_coverage`, or the
    /// whole window when that is shorter. (A full window's coverage is exactly its span.)
    fn covered(&self, now: Millis, min_coverage: Millis) -> bool {
        self.counters.samples().is_some_and(|_| self.coverage(now) >= min_coverage.min(self.budget_span()))
    }

    fn budget_remaining(&self) -> Option<f64> {
        self.burns[0].map(|burn| 1.0 - burn)
    }

    /// At burn rate `b` the whole budget lasts `window / b`; what is left lasts that fraction.
    /// A calendar budget that outlasts its period has no time to exhaustion: the next period
    /// starts whole.
    fn time_to_exhaustion_s(&self) -> Option<f64> {
        let remaining = self.budget_remaining()?;
        let burn = self.burns[self.current_burn_window].filter(|&b| b > 0.0)?;
        let window_s = self.budget_span() as f64 / 1000.0;
        let seconds = (remaining.max(0.0) * window_s / burn).round();
        match (&self.calendar, self.counters.latest()) {
            (Some(c), Some(now)) if seconds * 1000.0 > (c.period.1 - now) as f64 => None,
            _ => Some(seconds),
        }
    }
}

impl ServiceState {
    /// Decides on the remaining budgets alone and builds the event's budget list only on a
    /// change: at 10,000 services, cloning every SLO id per evaluation cost ~15% of it.
    fn evaluate(&mut self, now: Millis, slos: &[SloState], events: &mut Vec<Event>) {
        let paging = |i: usize| self.policy.freeze_on_page && slos[i].page_firing();
        // A budget computed over minutes of data is no evidence: a young window holds back the
        // budget's freeze (not a page's) until it covers `min_coverage`.
        let min_coverage = duration_millis(self.policy.min_coverage);
        let freezes = |i: usize| {
            let spent = slos[i].budget_remaining().is_some_and(|r| r <= self.policy.freeze_below);
            (spent && slos[i].covered(now, min_coverage)) || paging(i)
        };
        let kind = match self.frozen_since {
            None => {
                if !self.slos.iter().any(|&i| freezes(i)) {
                    return;
                }
                let frozen_by = self.slos.iter().filter(|&&i| freezes(i)).map(|&i| slo_budget(&slos[i])).collect();
                self.frozen_since = Some(now);
                EventKind::Freeze(self.freeze_change(now, frozen_by, slos))
            }
            Some(since) => {
                // An SLO with no data keeps the freeze: only evidence of a healthy budget lifts it.
                // With `freeze_on_page`, a page still firing holds the freeze too, or it would
                // lift and re-freeze on alternate evaluations.
                let healthy = self
                    .slos
                    .iter()
                    .all(|&i| slos[i].budget_remaining().is_some_and(|r| r > self.policy.unfreeze_above) && !paging(i));
                if !healthy {
                    return;
                }
                self.frozen_since = None;
                EventKind::Unfreeze(self.freeze_change(since, Vec::new(), slos))
            }
        };
        events.push(Event { at: now, kind });
    }

    fn freeze_change(&self, since: Millis, frozen_by: Vec<SloBudget>, slos: &[SloState]) -> FreezeChange {
        FreezeChange {
            service: self.name.clone(),
            frozen_by,
            budgets: self.slos.iter().map(|&i| slo_budget(&slos[i])).collect(),
            freeze_below: self.policy.freeze_below,
            unfreeze_above: self.policy.unfreeze_above,
            since,
        }
    }
}

fn slo_budget(slo: &SloState) -> SloBudget {
    SloBudget { slo: slo.id.clone(), budget_remaining: slo.budget_remaining() }
}

/// A read-only view of one SLO's state as of the last evaluation.
#[derive(Clone, Copy)]
pub struct SloView<'a> {
    slo: &'a SloState,
    family: &'a Family,
    service: &'a ServiceState,
}

impl<'a> SloView<'a> {
    /// `service/name`, or the instance id of a group.
    pub fn id(&self) -> &'a str {
        &self.slo.id
    }
    /// The SLO's name within its service, the same for every instance of a group.
    pub fn name(&self) -> &'a str {
        &self.family.name
    }
    /// `service/name`: the SLO as the spec declares it.
    pub fn family_id(&self) -> &'a str {
        &self.family.id
    }
    /// The group label values of an instance of a grouped SLO.
    pub fn group(&self) -> Option<Group> {
        self.family.group_labels(self.slo.group)
    }
    pub fn service(&self) -> &'a str {
        &self.service.name
    }
    pub fn objective(&self) -> f64 {
        self.slo.objective
    }
    pub fn window(&self) -> Millis {
        self.slo.windows[0].span
    }
    pub fn budget_remaining(&self) -> Option<f64> {
        self.slo.budget_remaining()
    }
    /// The calendar period of the budget at the last evaluation, `[start, end)`; `None` for a
    /// rolling window.
    pub fn period(&self) -> Option<(Millis, Millis)> {
        self.slo.calendar.as_ref().map(|c| c.period)
    }
    /// `30d`, or `month (Europe/Berlin)`.
    pub fn window_text(&self) -> String {
        self.slo.calendar.as_ref().map_or_else(|| format_span(self.slo.windows[0].span), |c| c.window.describe())
    }
    /// How long the budget window has held data at `now` (see `policy.min_coverage`).
    pub fn coverage(&self, now: Millis) -> Millis {
        self.slo.coverage(now)
    }
    /// Series of all events arrive but none of good ones: a latency threshold without a bucket
    /// of its own. The budget is no data, and this says why.
    pub fn missing_good_series(&self) -> bool {
        self.slo.awaiting_good && self.slo.counters.samples().is_some()
    }

    /// The budget is spent to the freeze line, but the window is too young for that to freeze.
    pub fn freeze_held_back(&self, now: Millis) -> bool {
        let policy = &self.service.policy;
        self.slo.budget_remaining().is_some_and(|r| r <= policy.freeze_below)
            && !self.slo.covered(now, duration_millis(policy.min_coverage))
    }
    pub fn time_to_exhaustion_s(&self) -> Option<f64> {
        self.slo.time_to_exhaustion_s()
    }
    /// Burn in the window used for "current burn": the shortest long window of any tier.
    pub fn current_burn(&self) -> Option<f64> {
        self.slo.burns[self.slo.current_burn_window]
    }
    /// `(window span, burn)` for every window the SLO evaluates, budget window first.
    pub fn burn_rates(&self) -> impl Iterator<Item = (Millis, Option<f64>)> + 'a {
        self.slo.windows.iter().zip(&self.slo.burns).map(|(w, &b)| (w.span, b))
    }
    /// `(severity, firing since)` per configured tier.
    pub fn alerts(&self) -> impl Iterator<Item = (Severity, Option<Millis>)> + 'a {
        self.slo.tiers.iter().map(|t| (t.severity, t.firing_since))
    }
}

/// A read-only view of one service's freeze state.
#[derive(Clone, Copy)]
pub struct ServiceView<'a> {
    service: &'a ServiceState,
}

impl<'a> ServiceView<'a> {
    pub fn name(&self) -> &'a str {
        &self.service.name
    }
    pub fn frozen_since(&self) -> Option<Millis> {
        self.service.frozen_since
    }
    pub fn policy(&self) -> &'a Policy {
        &self.service.policy
    }
}
