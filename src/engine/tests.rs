//! Data-driven engine tests: a spec, a minute-by-minute traffic script, and the expected events
//! as `day hh:mm event subject`. They drive the engine through `replay`, the same path the CLI
//! and conformance suite use.

use std::fmt::Write;
use std::path::Path;

use crate::clock::{DAY, MINUTE, Millis, rfc3339};
use crate::engine::Serves;
use crate::replay::replay;
use crate::spec::parse_spec;

const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// One step of traffic for the series `req{code="200"}` (good) and `req{code="500"}` (bad).
#[derive(Clone, Copy)]
enum Step {
    /// `minutes` minutes with `ok` good and `err` bad requests per minute.
    Traffic { minutes: i64, ok: u64, err: u64 },
    /// `minutes` minutes in which the target is down: its series are silent while an unrelated
    /// `heartbeat` series keeps the evaluation instants going (another target still up).
    Gap { minutes: i64 },
    /// Both counters restart from zero (process restart), then one minute of `ok`/`err`.
    Reset { ok: u64, err: u64 },
    /// An extra series `req{code=...}` that only increases while the others run `Traffic`.
    Extra { code: &'static str, minutes: i64, ok: u64, extra: u64 },
}
use Step::*;

fn series_text(script: &[Step]) -> String {
    // The error counter starts high so that a reset to a few thousand is visibly a drop.
    let (mut ok_total, mut err_total, mut t) = (1_000_000u64, 50_000u64, T0);
    let mut text = String::from("# TYPE req counter\n");
    let emit = |text: &mut String, t: Millis, ok: u64, err: u64| {
        writeln!(text, "req{{code=\"200\"}} {ok} {t}\nreq{{code=\"500\"}} {err} {t}").unwrap();
    };
    emit(&mut text, t, ok_total, err_total);
    let mut extra_total = 0u64;
    for step in script {
        match *step {
            Traffic { minutes, ok, err } => {
                for _ in 0..minutes {
                    (t, ok_total, err_total) = (t + MINUTE, ok_total + ok, err_total + err);
                    emit(&mut text, t, ok_total, err_total);
                }
            }
            Gap { minutes } => {
                for _ in 0..minutes {
                    t += MINUTE;
                    writeln!(text, "heartbeat 1 {t}").unwrap();
                }
            }
            Reset { ok, err } => {
                (t, ok_total, err_total) = (t + MINUTE, ok, err);
                emit(&mut text, t, ok_total, err_total);
            }
            Extra { code, minutes, ok, extra } => {
                for _ in 0..minutes {
                    (t, ok_total, extra_total) = (t + MINUTE, ok_total + ok, extra_total + extra);
                    emit(&mut text, t, ok_total, err_total);
                    writeln!(text, "req{{code=\"{code}\"}} {extra_total} {t}").unwrap();
                }
            }
        }
    }
    text
}

/// Formats an instant as `d<day> hh:mm` relative to T0, which keeps expectations readable.
fn short_time(at: Millis) -> String {
    let day = (at - T0) / DAY;
    format!("d{day} {}", &rfc3339(at)[11..16])
}

fn check(spec_yaml: &str, script: &[Step], expected: &[&str]) {
    let spec = parse_spec(Path::new("test.yaml"), spec_yaml).unwrap_or_else(|e| panic!("spec: {:?}", e.0));
    let mut actual = Vec::new();
    replay(&[spec], series_text(script).as_bytes(), |e| {
        let subject = match &e.kind {
            crate::engine::EventKind::AlertFiring(a) | crate::engine::EventKind::AlertResolved(a) => a.severity.clone(),
            _ => e.service().to_string(),
        };
        actual.push(format!("{} {} {subject}", short_time(e.at), e.name()));
    })
    .expect("replay");
    assert_eq!(actual, expected);
}

/// 99.9% over 30 days, errors/total, Workbook tiers. The scripts run for hours, not the day of
/// data the default `min_coverage` wants before a budget may freeze, so an hour is enough here
/// (`a_young_window_holds_back_the_freeze_not_the_page` tests the default).
const AVAILABILITY: &str = r#"
service: svc
slos:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
policy:
  min_coverage: 1h
"#;

#[test]
fn healthy_traffic_is_silent() {
    check(AVAILABILITY, &[Traffic { minutes: 3 * 24 * 60, ok: 6000, err: 2 }], &[]);
}

#[test]
fn full_outage_pages_within_a_minute_then_tickets_and_freezes() {
    check(
        AVAILABILITY,
        &[
            Traffic { minutes: 600, ok: 6000, err: 1 },
            Traffic { minutes: 20, ok: 0, err: 6000 },
            Traffic { minutes: 600, ok: 6000, err: 1 },
        ],
        &[
            // The ticket's conditions hold too, but the page speaks for the incident.
            "d0 10:01 alert_firing page",
            "d0 10:01 freeze svc",
            // 1h/5m resolves when the 5m window is clean again; 6h/30m holds until 30m clean.
            // Then the ticket, still burning over 1d/2h, fires: someone should follow up.
            "d0 10:50 alert_resolved page",
            "d0 10:50 alert_firing ticket",
            // 1d/2h and 3d/6h: the 6h window forgets the outage 6h after it ended.
            "d0 16:20 alert_resolved ticket",
        ],
    );
}

#[test]
fn counter_reset_is_not_a_burst_of_errors() {
    // A restart zeroes both counters; the reset rule counts the new small values, not a negative
    // or a huge jump, so healthy traffic stays silent.
    check(
        AVAILABILITY,
        &[
            Traffic { minutes: 120, ok: 6000, err: 1 },
            Reset { ok: 6000, err: 1 },
            Traffic { minutes: 120, ok: 6000, err: 1 },
        ],
        &[],
    );
}

#[test]
fn counter_reset_during_an_outage_keeps_counting_errors() {
    check(
        AVAILABILITY,
        // The error counter drops from 50,120 to 6,000: a reset, so the minute counts 6,000
        // errors and the page fires in that very minute (ignoring the drop would delay it).
        &[
            Traffic { minutes: 120, ok: 6000, err: 1 },
            Reset { ok: 0, err: 6000 },
            Traffic { minutes: 10, ok: 0, err: 6000 },
        ],
        &["d0 02:01 alert_firing page", "d0 02:01 freeze svc"],
    );
}

#[test]
fn a_gap_is_no_data_not_good_traffic() {
    // The outage pages; then the target goes silent for an hour. Once the 5m and then the 30m
    // windows hold no traffic their burn is undefined, so the page condition is false (as in
    // Prometheus, where the rule's expression returns nothing) and the page resolves at 01:35.
    // The ticket's 2h window still holds the outage, and the gap never counts as good traffic:
    // when data returns still failing, the page fires again at once. While the page is quiet the
    // ticket speaks for the incident. Fifteen minutes into the silence the SLO is `no_data`.
    check(
        AVAILABILITY,
        &[
            Traffic { minutes: 60, ok: 6000, err: 1 },
            Traffic { minutes: 5, ok: 0, err: 6000 },
            Gap { minutes: 60 },
            Traffic { minutes: 2, ok: 0, err: 6000 },
        ],
        &[
            "d0 01:01 alert_firing page",
            "d0 01:01 freeze svc",
            "d0 01:20 no_data svc",
            "d0 01:35 alert_resolved page",
            "d0 01:35 alert_firing ticket",
            "d0 02:06 alert_firing page",
            "d0 02:06 alert_resolved ticket",
            "d0 02:06 data_returned svc",
        ],
    );
}

#[test]
fn zero_traffic_has_no_burn_and_no_events() {
    check(AVAILABILITY, &[Traffic { minutes: 600, ok: 0, err: 0 }], &[]);
}

#[test]
fn regex_matchers_are_fully_anchored() {
    // `5..` must not match `5000`: a broken client sending code="5000" is not a server error.
    check(AVAILABILITY, &[Extra { code: "5000", minutes: 120, ok: 6000, extra: 6000 }], &[]);
}

#[test]
fn tier_override_replaces_defaults_and_disables_tickets() {
    let spec = r#"
service: svc
slos:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
    alerting:
      page:
        - { long: 10m, short: 2m, burn: 2 }
      ticket: disabled
"#;
    // 0.5% errors is burn 5: below the Workbook page (14.4) but above its ticket (3). So the page
    // comes from the override alone, and the missing ticket from `ticket: disabled`. The budget
    // is spent from the first minute, but it freezes only once the window holds an hour.
    check(
        &format!("{spec}policy:\n  min_coverage: 1h\n"),
        &[Traffic { minutes: 60, ok: 5970, err: 30 }, Traffic { minutes: 30, ok: 6000, err: 0 }],
        &["d0 00:01 alert_firing page", "d0 01:00 freeze svc", "d0 01:02 alert_resolved page"],
    );
}

#[test]
fn freeze_has_hysteresis() {
    // A 99% SLO over 1h: 6 minutes at 10% errors among 54 clean ones spend exactly the budget
    // (600 errors of 60,000), so the service freezes at 01:00. The budget then returns only as
    // bad minutes leave the hour: remaining 0.5 at 01:57 is not above 50%, 0.67 at 01:58 is.
    let spec = r#"
service: svc
slos:
  - name: availability
    objective: 99
    window: 1h
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
    alerting: { page: disabled, ticket: disabled }
policy:
  freeze_below: 0%
  unfreeze_above: 50%
"#;
    check(
        spec,
        &[
            Traffic { minutes: 54, ok: 1000, err: 0 },
            Traffic { minutes: 6, ok: 900, err: 100 },
            Traffic { minutes: 60, ok: 1000, err: 0 },
        ],
        &["d0 01:00 freeze svc", "d0 01:58 unfreeze svc"],
    );
}

#[test]
fn good_total_slis_use_the_complement() {
    let spec = r#"
service: svc
slos:
  - name: latency
    objective: 99
    window: 30d
    sli:
      good: 'req{code="200"}'
      total: 'req'
policy:
  min_coverage: 10m
"#;
    // Good events stop at minute 31. The 1d/2h ticket (burn 3.2 > 3) and the freeze come at
    // once; the page needs 6h/30m > 6, which the 6h burn reaches a minute later (6.25), and
    // takes over from the ticket.
    check(
        spec,
        &[Traffic { minutes: 30, ok: 100, err: 0 }, Traffic { minutes: 10, ok: 0, err: 100 }],
        &[
            "d0 00:31 alert_firing ticket",
            "d0 00:31 freeze svc",
            "d0 00:32 alert_firing page",
            "d0 00:32 alert_resolved ticket",
        ],
    );
}

/// Feeds `script` into a fresh engine via the real parser and returns it with its events.
fn engine_after(spec_yaml: &str, script: &[Step]) -> (crate::engine::Engine, Vec<crate::engine::Event>) {
    drive(spec_of(spec_yaml), &[], script)
}

/// The one driver behind the persistence, correction and policy tests: `script` on `spec` with
/// `exclusions` in force from the start, evaluating at every sample instant.
fn drive(
    spec: crate::spec::ServiceSpec,
    exclusions: &[crate::engine::Exclusion],
    script: &[Step],
) -> (crate::engine::Engine, Vec<crate::engine::Event>) {
    let mut engine = crate::engine::Engine::new(std::slice::from_ref(&spec), crate::engine::EngineOptions::default());
    assert!(engine.set_exclusions(&spec.service, exclusions));
    let text = series_text(script);
    let samples = crate::exposition::parse_strict(text.as_bytes()).expect("series");
    let source = engine.source("test", Serves::Every);
    let mut events = Vec::new();
    for batch in samples.chunk_by(|a, b| a.timestamp_ms == b.timestamp_ms) {
        let at = batch[0].timestamp_ms.expect("timestamped");
        for s in batch {
            let id = engine.series(source, s.series, s.name, &s.labels);
            engine.observe(id, at, s.value);
        }
        events.extend(engine.evaluate(at));
    }
    (engine, events)
}

/// Everything an operator sees of an engine: budgets, burns, alerts and freezes.
fn views(engine: &crate::engine::Engine) -> Vec<String> {
    let slos = engine.slo_views().map(|v| {
        let alerts: Vec<_> = v.alerts().collect();
        format!("{} {:?} {:?} {:?}", v.id(), v.budget_remaining(), v.burn_rates().collect::<Vec<_>>(), alerts)
    });
    let services = engine.service_views().map(|v| format!("{} {:?}", v.name(), v.frozen_since()));
    slos.chain(services).collect()
}

const OUTAGE: &[Step] = &[Traffic { minutes: 600, ok: 6000, err: 1 }, Traffic { minutes: 20, ok: 0, err: 6000 }];

#[test]
fn restored_engine_matches_and_does_not_fire_again() {
    let (mut original, events) = engine_after(AVAILABILITY, OUTAGE);
    assert_eq!(events.len(), 2, "page and freeze (the ticket waits for the page): {events:?}");
    let restored_state = crate::engine::Restored {
        windows: original.export_windows(),
        transitions: original.transitions_for(&events),
        series: original.export_series(),
    };
    let spec = parse_spec(Path::new("test.yaml"), AVAILABILITY).expect("spec");
    let mut restored = crate::engine::Engine::new(&[spec], crate::engine::EngineOptions::default());
    let report = restored.restore(restored_state);
    assert_eq!((report.n_windows, report.n_transitions, report.discarded.len()), (1, 2, 0));
    let now = T0 + 620 * MINUTE;
    assert_eq!(restored.evaluate(now), Vec::new(), "a restart must not re-fire or re-freeze");
    assert_eq!(original.evaluate(now), Vec::new());
    assert_eq!(views(&restored), views(&original));
}

/// Restores `original`'s exported state into a fresh engine for `spec`.
fn restored_into(
    original: &mut crate::engine::Engine,
    spec: &str,
) -> (crate::engine::Engine, crate::engine::RestoreReport) {
    let state = crate::engine::Restored {
        windows: original.export_windows(),
        transitions: Vec::new(),
        series: original.export_series(),
    };
    let spec = parse_spec(Path::new("test.yaml"), spec).expect("spec");
    let mut restored = crate::engine::Engine::new(&[spec], crate::engine::EngineOptions::default());
    let report = restored.restore(state);
    (restored, report)
}

#[test]
fn changed_alert_windows_keep_the_budget_history() {
    let (mut original, _) = engine_after(AVAILABILITY, OUTAGE);
    let retuned = AVAILABILITY
        .replace("policy:", "    alerting:\n      page:\n        - { long: 12h, short: 1h, burn: 6 }\npolicy:");
    let (mut restored, report) = restored_into(&mut original, &retuned);
    assert_eq!((report.n_windows, report.discarded.len()), (1, 0), "same SLI, new windows: resampled");
    let now = T0 + 620 * MINUTE;
    let budget = |e: &mut crate::engine::Engine| {
        e.evaluate(now);
        e.slo_views().next().expect("one SLO").budget_remaining()
    };
    assert_eq!(budget(&mut restored), budget(&mut original));
    let exported = restored.export_windows();
    assert!(exported[0].replaces_all, "the next flush replaces the pages of the old plan");
}

#[test]
fn a_changed_sli_starts_empty() {
    let (mut original, _) = engine_after(AVAILABILITY, OUTAGE);
    let (_, report) = restored_into(&mut original, &AVAILABILITY.replace("5..", "50."));
    assert_eq!((report.n_windows, report.discarded), (0, vec!["svc/availability".to_string()]));
}

#[test]
fn restored_series_values_continue_counting_across_a_restart() {
    // Ten clean-ish minutes (6 errors per 6006), then a restart, then one minute with 600 errors
    // of 6600. Only if the restored last values are the baseline does that minute count.
    let (mut original, _) = engine_after(AVAILABILITY, &[Traffic { minutes: 10, ok: 6000, err: 6 }]);
    let (mut restored, report) = restored_into(&mut original, AVAILABILITY);
    assert_eq!(report.n_series, 2);
    let at = T0 + 11 * MINUTE;
    let next = format!(
        "req{{code=\"200\"}} {} {at}\nreq{{code=\"500\"}} {} {at}\n",
        1_000_000 + 11 * 6000,
        50_000 + 10 * 6 + 600
    );
    let source = restored.source("test", Serves::Every);
    for s in crate::exposition::parse_strict(next.as_bytes()).expect("series") {
        let id = restored.series(source, s.series, s.name, &s.labels);
        restored.observe(id, at, s.value);
    }
    restored.evaluate(at);
    let burn_5m = restored.slo_views().next().unwrap().burn_rates().find(|&(w, _)| w == 5 * MINUTE).unwrap().1;
    // (4 * 6 + 600) / (4 * 6006 + 6600) / 0.001 = 20.37; a lost baseline would give 1.0.
    let expected = (4.0 * 6.0 + 600.0) / (4.0 * 6006.0 + 6600.0) / 0.001;
    assert!((burn_5m.unwrap() - expected).abs() < 1e-9, "{burn_5m:?} vs {expected}");
}

#[test]
fn reload_keeps_unchanged_slos_and_drops_counters_whose_sli_changed() {
    let (original, _) = engine_after(AVAILABILITY, OUTAGE);
    let before = views(&original);
    let last = T0 + 620 * MINUTE;
    let changed_sli = AVAILABILITY.replace(r#"code=~"5..""#, r#"code=~"50.""#);
    let mut kept = original
        .clone()
        .reload(&[parse_spec(Path::new("test.yaml"), AVAILABILITY).unwrap()], crate::engine::EngineOptions::default());
    assert_eq!(kept.evaluate(last), Vec::new());
    assert_eq!(views(&kept), before);
    let mut reset = original
        .reload(&[parse_spec(Path::new("test.yaml"), &changed_sli).unwrap()], crate::engine::EngineOptions::default());
    // Counters start over (no data), while the freeze and alert states carry over by name.
    // With no data the alert conditions are false, so the alerts resolve: announced, not lost.
    assert!(reset.service_views().next().unwrap().frozen_since().is_some());
    let events: Vec<_> = reset.evaluate(last).iter().map(|e| e.name()).collect();
    assert_eq!(events, ["alert_resolved"]);
    let slo = reset.slo_views().next().unwrap();
    assert_eq!(slo.budget_remaining(), None);
    assert!(reset.service_views().next().unwrap().frozen_since().is_some());
}

/// Resolves every sample of `script` on `source` and returns them as backfill points.
fn backfill_points(
    engine: &mut crate::engine::Engine,
    source: &str,
    script: &[Step],
) -> Vec<(Millis, crate::engine::SeriesId, f64)> {
    let source = engine.source(source, Serves::Every);
    let text = series_text(script);
    crate::exposition::parse_strict(text.as_bytes())
        .unwrap()
        .iter()
        .map(|s| (s.timestamp_ms.unwrap(), engine.series(source, s.series, s.name, &s.labels), s.value))
        .collect()
}

#[test]
fn history_is_never_counted_twice() {
    // Live data has reached minute 30; a backfill replaying minutes 0..30 adds nothing.
    let (mut engine, _) = engine_after(AVAILABILITY, &[Traffic { minutes: 30, ok: 6000, err: 60 }]);
    let before = views(&engine);
    let points = backfill_points(&mut engine, "backfill", &[Traffic { minutes: 30, ok: 6000, err: 6000 }]);
    engine.backfill(&points);
    assert_eq!(engine.evaluate(T0 + 30 * MINUTE), Vec::new());
    assert_eq!(views(&engine), before);
}

#[test]
fn a_backfill_counts_every_series_at_every_instant() {
    // A fresh engine backfilled with the same 30 minutes a live run saw ends in the same state.
    // (Regression: a skip horizon that moved with the backfill kept only the first series'
    // sample at each instant, so totals never counted and the budget stayed unknown.)
    let script = &[Traffic { minutes: 30, ok: 6000, err: 60 }];
    let (mut live, _) = engine_after(AVAILABILITY, script);
    live.evaluate(T0 + 30 * MINUTE);
    let mut backfilled = crate::engine::Engine::new(&[spec_of(AVAILABILITY)], crate::engine::EngineOptions::default());
    let points = backfill_points(&mut backfilled, "test", script);
    backfilled.backfill(&points);
    backfilled.evaluate(T0 + 30 * MINUTE);
    // Same windows; alerts differ only in `since` (a backfill evaluates once, at the end).
    let windows = |e: &crate::engine::Engine| {
        e.slo_views().map(|v| (v.budget_remaining(), v.burn_rates().collect::<Vec<_>>())).collect::<Vec<_>>()
    };
    assert_eq!(windows(&backfilled), windows(&live));
    assert!(backfilled.slo_views().next().unwrap().budget_remaining().is_some());
}

/// [`drive`], with the events in the `check` format.
fn run_with(
    spec: crate::spec::ServiceSpec,
    exclusions: &[crate::engine::Exclusion],
    script: &[Step],
) -> (crate::engine::Engine, Vec<String>) {
    let (engine, events) = drive(spec, exclusions, script);
    (engine, events.iter().map(short_event).collect())
}

fn short_event(e: &crate::engine::Event) -> String {
    let subject = match &e.kind {
        crate::engine::EventKind::AlertFiring(a) | crate::engine::EventKind::AlertResolved(a) => a.severity.clone(),
        _ => e.service().to_string(),
    };
    format!("{} {} {subject}", short_time(e.at), e.name())
}

fn spec_of(yaml: &str) -> crate::spec::ServiceSpec {
    parse_spec(Path::new("test.yaml"), yaml).expect("spec")
}

#[test]
fn a_correction_excludes_an_incident_from_every_window() {
    // The full outage of `full_outage_pages...`, but marked as a load test: nothing fires.
    let load_test =
        crate::engine::Exclusion { id: "c1".into(), slo: None, start: T0 + 600 * MINUTE, end: T0 + 620 * MINUTE };
    let (engine, events) = run_with(spec_of(AVAILABILITY), &[load_test], OUTAGE);
    assert_eq!(events, Vec::<String>::new());
    // What is left is the baseline: 1 error per 6001 requests, burn 1/6.001, 83.3% left.
    let left = engine.slo_views().next().unwrap().budget_remaining().unwrap();
    assert!((left - (1.0 - 1.0 / 6.001)).abs() < 1e-9, "{left}");
}

#[test]
fn a_correction_made_after_the_fact_lifts_the_freeze() {
    let (mut engine, events) = run_with(spec_of(AVAILABILITY), &[], OUTAGE);
    assert_eq!(events.len(), 2, "page and freeze (the ticket waits for the page): {events:?}");
    let correction = crate::engine::Exclusion {
        id: "c1".into(),
        slo: Some("availability".into()),
        start: T0 + 600 * MINUTE,
        end: T0 + 620 * MINUTE,
    };
    engine.set_exclusions("svc", &[correction]);
    let after: Vec<String> = engine.evaluate(T0 + 620 * MINUTE).iter().map(short_event).collect();
    assert_eq!(after, ["d0 10:20 alert_resolved page", "d0 10:20 unfreeze svc"]);
    // A correction naming another SLO changes nothing.
    let other = crate::engine::Exclusion { id: "c2".into(), slo: Some("latency".into()), start: 0, end: 1 };
    assert!(engine.set_exclusions("svc", &[other]));
    assert_eq!(engine.evaluate(T0 + 621 * MINUTE).len(), 2, "without the correction page and freeze come back");
}

/// 99% over 30d after three clean days: a 10-minute outage pages but spends only ~23% of the
/// budget. The 1h burn passes 14.4 at the 9th bad minute (9/60/0.01 = 15); the page resolves
/// once the 5m window is clean (00:15), since 6h/30m needs the 6h burn above 6 (it is 2.8).
const SHORT_OUTAGE: &[Step] = &[
    Traffic { minutes: 3 * 24 * 60, ok: 6000, err: 0 },
    Traffic { minutes: 10, ok: 0, err: 6000 },
    Traffic { minutes: 30, ok: 6000, err: 0 },
];

const NINETY_NINE: &str = r#"
service: svc
slos:
  - name: availability
    objective: 99
    window: 30d
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
"#;

#[test]
fn without_freeze_on_page_a_page_alone_does_not_freeze() {
    let (_, events) = run_with(spec_of(NINETY_NINE), &[], SHORT_OUTAGE);
    assert_eq!(events, ["d3 00:09 alert_firing page", "d3 00:15 alert_resolved page"]);
}

#[test]
fn freeze_on_page_freezes_with_the_page_and_lifts_with_it() {
    let mut spec = spec_of(NINETY_NINE);
    spec.policy.freeze_on_page = true;
    let (_, events) = run_with(spec, &[], SHORT_OUTAGE);
    assert_eq!(
        events,
        ["d3 00:09 alert_firing page", "d3 00:09 freeze svc", "d3 00:15 alert_resolved page", "d3 00:15 unfreeze svc"]
    );
}

#[test]
fn resolve_reports_the_budget_an_incident_burned() {
    let (_, events) = drive(spec_of(NINETY_NINE), &[], SHORT_OUTAGE);
    let resolved = events.into_iter().find_map(|e| match e.kind {
        crate::engine::EventKind::AlertResolved(a) => Some(a.postmortem),
        _ => None,
    });
    // The page fired at minute 4329 on 1h/5m, so the incident is counted from minute 4269: all
    // ten bad minutes (60,000 errors), against a window of 4335 minutes * 6000 requests and a 1%
    // budget: 10/4335/0.01 = 23.1%, over the 20% threshold. (Counting only from the firing
    // instant would see 2 of the 10 bad minutes and miss the postmortem.)
    let postmortem = resolved.flatten().expect("the page resolved with a postmortem assessment");
    let expected = 10.0 / 4335.0 / 0.01;
    assert!((postmortem.budget_burned - expected).abs() < 1e-9, "{postmortem:?} vs {expected}");
    assert!(postmortem.required);
}

/// `Engine::series` first tries the series that followed the previous one last time. Whatever the
/// order of a scrape (reordered, shrunk, grown, two sources interleaved with the same keys), the
/// guess must never hand out another series' handle.
#[test]
fn a_series_keeps_its_handle_whatever_order_the_scrapes_list_it_in() {
    let mut engine = crate::engine::Engine::new(&[], crate::engine::EngineOptions::default());
    let sources = [engine.source("a", Serves::Every), engine.source("b", Serves::Every)];
    let keys: Vec<String> = (0..6).map(|i| format!("req{{i=\"{i}\"}}")).collect();
    let no_labels: &[(String, String)] = &[];
    let scrapes: [&[usize]; 7] =
        [&[0, 1, 2, 3], &[0, 1, 2, 3], &[1, 0, 3, 2], &[0, 2, 3], &[3, 2, 1, 0, 4], &[4, 0, 1, 2, 3], &[5, 4, 0, 1]];
    let mut handles = std::collections::HashMap::new();
    for (n, scrape) in scrapes.iter().enumerate() {
        // Even scrapes interleave the sources line by line, odd ones take them in turn.
        let calls: Vec<(u32, usize)> = if n % 2 == 0 {
            scrape.iter().flat_map(|&k| sources.map(|s| (s, k))).collect()
        } else {
            sources.iter().flat_map(|&s| scrape.iter().map(move |&k| (s, k))).collect()
        };
        for (source, k) in calls {
            let id = engine.series(source, &keys[k], "req", no_labels);
            assert_eq!(*handles.entry((source, k)).or_insert(id), id, "scrape {n}: source {source}, {}", keys[k]);
        }
    }
    let distinct: std::collections::HashSet<_> = handles.values().collect();
    assert_eq!(distinct.len(), handles.len(), "two series share a handle: {handles:?}");
}

/// A series reaches only the SLOs of the services its source serves: a target listed by `a`
/// that fails every request pages and freezes `a`, while `b`, selecting the very same series
/// from its own healthy target, sees only its own traffic. A source listed by both feeds both.
#[test]
fn a_source_feeds_only_the_services_that_list_it() {
    let spec = |service: &str| spec_of(&AVAILABILITY.replace("service: svc", &format!("service: {service}")));
    let specs = [spec("a"), spec("b"), spec("c")];
    let mut engine = crate::engine::Engine::new(&specs, crate::engine::EngineOptions::default());
    let [a, b, c] = ["a", "b", "c"].map(String::from);
    let failing = engine.source("failing", Serves::Services(&[a.clone(), c]));
    let healthy = engine.source("healthy", Serves::Services(&[b]));
    let ok: &[(String, String)] = &[("code".into(), "200".into())];
    let err: &[(String, String)] = &[("code".into(), "500".into())];
    let mut events = Vec::new();
    for minute in 0..30 {
        let at = T0 + minute * MINUTE;
        for (source, errors) in [(failing, 100 * minute as u64), (healthy, 0)] {
            let good = engine.series(source, "req{code=\"200\"}", "req", ok);
            engine.observe(good, at, 1_000.0 * minute as f64);
            let bad = engine.series(source, "req{code=\"500\"}", "req", err);
            engine.observe(bad, at, errors as f64);
        }
        events.extend(engine.evaluate(at).iter().map(|e| format!("{} {}", e.name(), e.service())));
    }
    for paged in ["alert_firing a", "alert_firing c"] {
        assert!(events.contains(&paged.to_string()), "{events:?}");
    }
    assert!(events.iter().all(|e| !e.ends_with(" b")), "b saw another service's target: {events:?}");
    let b_budget = engine.slo_views().find(|v| v.service() == "b").and_then(|v| v.budget_remaining());
    assert_eq!(b_budget, Some(1.0));
}

/// A NaN, infinite or negative counter sample is left out, counted and reported (once per run
/// of bad samples), rather than turning the budget into `null` with no reason given; the next
/// valid sample continues from the last valid value.
#[test]
fn invalid_counter_samples_are_rejected_with_a_reason_and_the_budget_stays_exact() {
    let mut engine = crate::engine::Engine::new(&[spec_of(AVAILABILITY)], crate::engine::EngineOptions::default());
    let source = engine.source("target", Serves::Every);
    let ok: &[(String, String)] = &[("code".into(), "200".into())];
    let err: &[(String, String)] = &[("code".into(), "500".into())];
    let bad_values = [f64::NAN, f64::INFINITY, -5.0, f64::NEG_INFINITY];
    for minute in 0..10 {
        let at = T0 + minute * MINUTE;
        let good = engine.series(source, "req{code=\"200\"}", "req", ok);
        let errors = engine.series(source, "req{code=\"500\"}", "req", err);
        engine.observe(good, at, 999.0 * minute as f64);
        // Minutes 3 to 6 are garbage; the counter really stands at `minute` throughout.
        let value = if (3..7).contains(&minute) { bad_values[minute as usize - 3] } else { minute as f64 };
        engine.observe(errors, at, value);
        engine.evaluate(at);
    }
    // 9 errors in 9,000 requests: exactly the whole 0.1% budget spent, none of it NaN or double.
    let budget = engine.slo_views().next().and_then(|v| v.budget_remaining());
    assert!(budget.is_some_and(|b| b.abs() < 1e-9), "{budget:?}");
    let (reported, counts) = engine.take_rejections();
    assert_eq!(
        reported,
        [crate::engine::SampleRejection { source: "target".into(), series: "req{code=\"500\"}".into(), reason: "NaN" }]
    );
    let counts: Vec<_> = counts.iter().map(|(s, r, n)| format!("{s} {r} {n}")).collect();
    assert_eq!(counts, ["target +Inf 1", "target -Inf 1", "target NaN 1", "target negative 1"]);
    assert_eq!(engine.take_rejections(), (Vec::new(), Vec::new()), "taken once");
}

/// A label that churns (here a pod name that changes every 3 minutes, on series the SLO
/// selects, plus series no SLO selects) leaves the engine holding the live series only, while
/// budgets and events are exactly those of an engine that forgets nothing.
#[test]
fn silent_series_are_forgotten_without_changing_what_is_counted() {
    let options = crate::engine::EngineOptions { max_sample_gap: Some(5 * MINUTE) };
    let spec = [spec_of(AVAILABILITY)];
    let (mut forgetting, mut keeping) =
        (crate::engine::Engine::new(&spec, options.clone()), crate::engine::Engine::new(&spec, options));
    let (mut events, mut expected) = (Vec::new(), Vec::new());
    let mut most = 0;
    for (engine, events, forget) in [(&mut forgetting, &mut events, true), (&mut keeping, &mut expected, false)] {
        let source = engine.source("target", Serves::Every);
        for minute in 0..600i64 {
            let at = T0 + minute * MINUTE;
            let pod = format!("p{}", minute / 3);
            for (code, per_minute) in [("200", 1_000), ("500", if (200..230).contains(&minute) { 500 } else { 1 })] {
                let labels: Vec<(String, String)> = vec![("code".into(), code.into()), ("pod".into(), pod.clone())];
                let key = format!("req{{code=\"{code}\",pod=\"{pod}\"}}");
                let id = engine.series(source, &key, "req", labels.as_slice());
                // The pod's counter starts at zero: its first sample is its baseline.
                engine.observe(id, at, (per_minute * (minute % 3)) as f64);
                let other: Vec<(String, String)> = vec![("pod".into(), pod.clone())];
                let id = engine.series(source, &format!("up{{pod=\"{pod}\"}}"), "up", other.as_slice());
                engine.observe(id, at, 1.0);
            }
            events.extend(engine.evaluate(at).iter().map(short_event));
            if forget {
                engine.forget_silent_series(at);
                most = most.max(engine.n_series());
            }
        }
    }
    assert_eq!(events, expected);
    assert!(events.iter().any(|e| e.contains("alert_firing")), "the incident is seen: {events:?}");
    let budget = |engine: &crate::engine::Engine| engine.slo_views().next().and_then(|v| v.budget_remaining());
    assert_eq!(budget(&forgetting), budget(&keeping));
    // At most three pods (3 series each) had a sample within 5 minutes, against 600 series
    // in an engine that keeps them.
    assert!(most <= 9, "held {most} series");
    assert_eq!(keeping.n_series(), 600);
}

/// The fresh-sidecar bug: a burst in a window holding minutes of data "spent" the budget many
/// times over and froze the service at once. The page is not held back (the burn is real), but
/// the freeze waits until the window covers `min_coverage` (default 1d): here, a day after the
/// first sample, when the day's data still leaves the budget spent.
#[test]
fn a_young_window_holds_back_the_freeze_not_the_page() {
    let young = AVAILABILITY.replace("policy:\n  min_coverage: 1h\n", "");
    check(
        &young,
        &[
            Traffic { minutes: 10, ok: 6000, err: 1 },
            Traffic { minutes: 20, ok: 0, err: 6000 },
            Traffic { minutes: 24 * 60, ok: 6000, err: 1 },
        ],
        &[
            "d0 00:11 alert_firing page",
            "d0 01:00 alert_resolved page",
            "d0 01:00 alert_firing ticket",
            "d0 06:30 alert_resolved ticket",
            "d1 00:00 freeze svc",
        ],
    );
    let (engine, _) = engine_after(&young, &[Traffic { minutes: 10, ok: 0, err: 6000 }]);
    let view = engine.slo_views().next().unwrap();
    assert_eq!(view.coverage(T0 + 10 * MINUTE), 10 * MINUTE);
    assert!(view.freeze_held_back(T0 + 10 * MINUTE));
    assert!(!view.freeze_held_back(T0 + DAY), "covered after a day");
}

/// `min_events` and `min_bad_events`: a handful of requests is not an incident, however bad.
#[test]
fn low_traffic_guards_need_enough_events_in_the_long_window() {
    let quiet = [Traffic { minutes: 60, ok: 1, err: 0 }, Traffic { minutes: 3, ok: 0, err: 1 }];
    check(AVAILABILITY, &quiet, &["d0 01:01 alert_firing page", "d0 01:01 freeze svc"]);
    let guarded = |guards: &str| AVAILABILITY.replace("policy:", &format!("    alerting: {{ {guards} }}\npolicy:"));
    // The 1h window counts 60 events at 01:01, fewer than 100: no page. The budget is spent
    // all the same, and the freeze follows it.
    check(&guarded("min_events: 100"), &quiet, &["d0 01:01 freeze svc"]);
    // Three bad events are enough for `min_bad_events: 3`, but only from the third on.
    check(&guarded("min_bad_events: 3"), &quiet, &["d0 01:01 freeze svc", "d0 01:03 alert_firing page"]);
}

/// `inhibit: false` keeps both tiers independent, as before "one alert per incident".
#[test]
fn without_inhibition_page_and_ticket_both_fire() {
    check(
        &AVAILABILITY.replace("policy:", "    alerting: { inhibit: false }\npolicy:"),
        OUTAGE,
        &["d0 10:01 alert_firing page", "d0 10:01 alert_firing ticket", "d0 10:01 freeze svc"],
    );
}

/// `no_data: disabled` keeps a gap silent; a longer `no_data` waits longer.
#[test]
fn no_data_can_be_tuned_or_turned_off() {
    let script =
        [Traffic { minutes: 60, ok: 6000, err: 0 }, Gap { minutes: 40 }, Traffic { minutes: 2, ok: 6000, err: 0 }];
    check(&AVAILABILITY.replace("policy:", "    alerting: { no_data: disabled }\npolicy:"), &script, &[]);
    check(
        &AVAILABILITY.replace("policy:", "    alerting: { no_data: 30m }\npolicy:"),
        &script,
        &["d0 01:30 no_data svc", "d0 01:41 data_returned svc"],
    );
}

/// A calendar budget counts the current period only: a week's outage spends that week's budget
/// and freezes; the next Monday 00:00 the budget is whole again and the service unfreezes, while
/// the alert tiers keep their rolling windows. (T0, 2026-01-01, is a Thursday.)
#[test]
fn a_calendar_budget_is_whole_again_when_its_period_starts() {
    let weekly = AVAILABILITY.replace("window: 30d", "window: { calendar: week }");
    let (engine, events) = engine_after(
        &weekly,
        &[
            Traffic { minutes: 24 * 60, ok: 6000, err: 0 },
            Traffic { minutes: 10, ok: 0, err: 6000 },
            Traffic { minutes: 4 * 24 * 60, ok: 6000, err: 0 },
        ],
    );
    let events: Vec<String> = events.iter().map(short_event).collect();
    assert_eq!(
        events,
        [
            "d1 00:01 alert_firing page",
            // One bad minute of 1,441 is 69% of this week's budget; the second spends it.
            "d1 00:02 freeze svc",
            "d1 00:40 alert_resolved page",
            "d1 00:40 alert_firing ticket",
            "d1 06:10 alert_resolved ticket",
            // Monday 2026-01-05 00:00 UTC: a new week, a whole budget.
            "d4 00:00 unfreeze svc",
        ]
    );
    let view = engine.slo_views().next().unwrap();
    let monday = T0 + 4 * DAY;
    assert_eq!(view.period(), Some((monday, monday + 7 * DAY)));
    assert_eq!(view.window_text(), "week (UTC)");
}

/// A latency SLI counts the histogram's bucket at the threshold as good and `_count` as all:
/// `le="3e-1"` is the 300ms bucket. A threshold with no bucket of its own has no data (neither
/// good nor bad), never the nearest bucket.
#[test]
fn latency_slis_read_the_bucket_at_their_threshold() {
    let spec = r#"
service: svc
slos:
  - name: fast
    objective: 99
    window: 30d
    sli:
      latency: { histogram: 'h{job="api"}', threshold: 300ms }
  - name: between
    objective: 99
    window: 30d
    sli:
      latency: { histogram: 'h{job="api"}', threshold: 250ms }
policy:
  min_coverage: 1h
"#;
    let mut text = String::from("# TYPE h histogram\n");
    let (mut fast, mut count) = (0u64, 0u64);
    for minute in 0..=70i64 {
        let t = T0 + minute * MINUTE;
        // Every request is fast for an hour, then half of them are slow.
        (fast, count) = (fast + if minute > 60 { 50 } else { 100 }, count + 100);
        for (le, value) in [("0.1", fast / 2), ("3e-1", fast), ("+Inf", count)] {
            writeln!(text, "h_bucket{{job=\"api\",le=\"{le}\"}} {value} {t}").unwrap();
        }
        writeln!(text, "h_count{{job=\"api\"}} {count} {t}\nh_bucket{{job=\"web\",le=\"0.3\"}} 0 {t}").unwrap();
    }
    let mut events = Vec::new();
    let summary = replay(&[spec_of(spec)], text.as_bytes(), |e| events.push(short_event(e))).expect("replay");
    // 01:02: 100 slow of 6,200 is 1.6% (3d/6h burn 1.6 > 1: ticket; the budget is spent).
    // 01:09: 450 of 6,900 over 6h and 450 of 3,000 over 30m, both over 6: the page takes over.
    assert_eq!(
        events,
        [
            "d0 01:02 alert_firing ticket",
            "d0 01:02 freeze svc",
            "d0 01:09 alert_firing page",
            "d0 01:09 alert_resolved ticket"
        ]
    );
    let fast = summary.slos[0].1.budget_remaining.expect("fast has data");
    // 10 minutes of 50% slow among 70 minutes: 500 bad of 7,000, 7.1% against a 1% budget.
    assert!((fast - (1.0 - 500.0 / 7000.0 / 0.01)).abs() < 1e-9, "{fast}");
    assert_eq!(summary.slos[1].1.budget_remaining, None, "no 0.25 bucket: no data");
}

/// 99.9% over 30 days per route, at most two routes.
const PER_ROUTE: &str = r#"
service: svc
slos:
  - name: availability
    objective: 99.9
    window: 30d
    group_by: [route]
    max_groups: 2
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
policy:
  min_coverage: 1m
"#;

/// One minute of traffic per `(route, ok, err)` per minute for `minutes` minutes from `start`,
/// counters continuing from `totals` (one `[ok, err]` per route, kept by the caller).
fn feed_routes(
    engine: &mut crate::engine::Engine,
    start: Millis,
    minutes: i64,
    routes: &[(&str, u64, u64)],
    totals: &mut std::collections::HashMap<String, [u64; 2]>,
) -> Vec<crate::engine::Event> {
    let source = engine.source("test", Serves::Every);
    let mut events = Vec::new();
    for minute in 0..minutes {
        let at = start + minute * MINUTE;
        for &(route, ok, err) in routes {
            let total = totals.entry(route.to_string()).or_default();
            total[0] += ok;
            total[1] += err;
            for (code, value) in [("200", total[0]), ("500", total[1])] {
                let labels = [("code".to_string(), code.to_string()), ("route".to_string(), route.to_string())];
                let key = format!("req{{code=\"{code}\",route=\"{route}\"}}");
                let id = engine.series(source, &key, "req", &labels[..]);
                engine.observe(id, at, value as f64);
            }
        }
        events.extend(engine.evaluate(at));
    }
    events
}

fn alert_subjects(events: &[crate::engine::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            crate::engine::EventKind::AlertFiring(a) | crate::engine::EventKind::AlertResolved(a) => {
                format!("{} {} {} {:?}", e.name(), a.severity, a.slo, a.group)
            }
            _ => format!("{} {}", e.name(), e.service()),
        })
        .collect()
}

#[test]
fn a_grouped_slo_pages_and_freezes_for_the_failing_route_only() {
    let mut engine = crate::engine::Engine::new(&[spec_of(PER_ROUTE)], crate::engine::EngineOptions::default());
    let mut totals = std::collections::HashMap::new();
    let healthy = feed_routes(&mut engine, T0, 120, &[("/pay", 6000, 1), ("/home", 6000, 1)], &mut totals);
    assert_eq!(healthy, Vec::new());
    let outage = feed_routes(&mut engine, T0 + 120 * MINUTE, 10, &[("/pay", 0, 6000), ("/home", 6000, 1)], &mut totals);
    assert_eq!(
        alert_subjects(&outage),
        [r#"alert_firing page svc/availability{route="/pay"} Some(Group([("route", "/pay")]))"#, "freeze svc",]
    );
    let budgets: Vec<(String, Option<String>, bool)> = engine
        .slo_views()
        .map(|v| (v.id().to_string(), v.group().map(|g| g.0[0].1.clone()), v.budget_remaining().unwrap() > 0.5))
        .collect();
    assert_eq!(
        budgets,
        [
            (r#"svc/availability{route="/pay"}"#.to_string(), Some("/pay".to_string()), false),
            (r#"svc/availability{route="/home"}"#.to_string(), Some("/home".to_string()), true),
        ]
    );
    assert!(engine.slo_views().all(|v| v.name() == "availability" && v.family_id() == "svc/availability"));
}

#[test]
fn a_group_beyond_max_groups_is_refused_once_and_the_others_carry_on() {
    let mut engine = crate::engine::Engine::new(&[spec_of(PER_ROUTE)], crate::engine::EngineOptions::default());
    let mut totals = std::collections::HashMap::new();
    let routes = [("/a", 6000, 1), ("/b", 6000, 1), ("/c", 0, 6000)];
    let events = feed_routes(&mut engine, T0, 30, &routes, &mut totals);
    assert_eq!(events, Vec::new(), "/c's outage has no instance to page for");
    let refusals = engine.take_refusals();
    assert_eq!(refusals.len(), 1, "one refusal per group, not per sample: {refusals:?}");
    assert_eq!(
        (refusals[0].slo.as_str(), refusals[0].group.as_str(), refusals[0].max_groups),
        ("svc/availability", r#"svc/availability{route="/c"}"#, 2)
    );
    let ids: Vec<String> = engine.slo_views().map(|v| v.id().to_string()).collect();
    assert_eq!(ids, [r#"svc/availability{route="/a"}"#, r#"svc/availability{route="/b"}"#]);
    assert!(engine.slo_views().all(|v| v.budget_remaining().is_some_and(|b| b > 0.5)));
}

#[test]
fn a_group_silent_for_a_whole_window_is_removed_and_comes_back_with_its_next_sample() {
    let mut engine = crate::engine::Engine::new(&[spec_of(PER_ROUTE)], crate::engine::EngineOptions::default());
    let mut totals = std::collections::HashMap::new();
    feed_routes(&mut engine, T0, 10, &[("/a", 6000, 1), ("/b", 6000, 1)], &mut totals);
    // /a keeps going for 30 days (hourly here); /b falls silent.
    for hour in 1..=(30 * 24 + 1) {
        feed_routes(&mut engine, T0 + hour * 60 * MINUTE, 1, &[("/a", 6000, 1)], &mut totals);
    }
    assert_eq!(engine.take_evicted(), [r#"svc/availability{route="/b"}"#]);
    let ids: Vec<String> = engine.slo_views().map(|v| v.id().to_string()).collect();
    assert_eq!(ids, [r#"svc/availability{route="/a"}"#]);
    // Its room is free again: a new route fits, and /b returns as a fresh instance.
    let later = T0 + 31 * DAY;
    feed_routes(&mut engine, later, 2, &[("/a", 6000, 1), ("/b", 6000, 1)], &mut totals);
    assert_eq!(engine.take_refusals().len(), 0);
    let b = engine.slo_views().find(|v| v.id().contains("/b")).expect("/b is back");
    assert_eq!(b.coverage(later + MINUTE), MINUTE, "a fresh window, not the old one's");
}

#[test]
fn grouped_instances_are_restored_with_their_alerts() {
    let mut original = crate::engine::Engine::new(&[spec_of(PER_ROUTE)], crate::engine::EngineOptions::default());
    let mut totals = std::collections::HashMap::new();
    feed_routes(&mut original, T0, 120, &[("/pay", 6000, 1), ("/home", 6000, 1)], &mut totals);
    let events =
        feed_routes(&mut original, T0 + 120 * MINUTE, 10, &[("/pay", 0, 6000), ("/home", 6000, 1)], &mut totals);
    assert_eq!(events.len(), 2, "page and freeze: {events:?}");
    let state = crate::engine::Restored {
        windows: original.export_windows(),
        transitions: original.transitions_for(&events),
        series: original.export_series(),
    };
    let mut restored = crate::engine::Engine::new(&[spec_of(PER_ROUTE)], crate::engine::EngineOptions::default());
    let report = restored.restore(state);
    assert_eq!((report.n_windows, report.discarded.len()), (2, 0));
    let now = T0 + 130 * MINUTE;
    assert_eq!(restored.evaluate(now), Vec::new(), "a restart must not re-fire or re-freeze");
    assert_eq!(original.evaluate(now), Vec::new());
    assert_eq!(views(&restored), views(&original));
}

/// A probe every 20 s from two locations; one location fails for 10 minutes. 1m slices of
/// `min(probe_success) >= 1`: a slice with one failed probe anywhere is bad.
#[test]
fn time_slices_count_bad_slices_not_samples() {
    let spec = spec_of(
        r#"
service: web
slos:
  - name: probe
    objective: 99
    window: 1d
    sli:
      time_slice: { gauge: 'probe_success', good: '>= 1', slice: 1m }
    alerting:
      page: [{ long: 1h, short: 5m, burn: 14.4 }]
      ticket: disabled
policy:
  min_coverage: 1m
"#,
    );
    let mut engine = crate::engine::Engine::new(&[spec], crate::engine::EngineOptions::default());
    let source = engine.source("test", Serves::Every);
    let mut events = Vec::new();
    // Two hours: the second location fails from 60:00 to 70:00 (minutes), once per probe.
    for step in 0..(120 * 3) {
        let at = T0 + step * 20_000;
        for location in ["fra", "iad"] {
            let failing = location == "iad" && (60 * 3..70 * 3).contains(&step);
            let labels = [("location".to_string(), location.to_string())];
            let id = engine.series(
                source,
                &format!("probe_success{{location=\"{location}\"}}"),
                "probe_success",
                &labels[..],
            );
            engine.observe(id, at, if failing { 0.0 } else { 1.0 });
        }
        events.extend(engine.evaluate(at).iter().map(|e| format!("{} {}", short_time(e.at), e.name())));
    }
    let view = engine.slo_views().next().expect("one SLO");
    // 119 closed slices (the last is still open), 10 of them bad: 1 - (10/119)/0.01.
    let budget = view.budget_remaining().expect("budget");
    assert!((budget - (1.0 - (10.0 / 119.0) / 0.01)).abs() < 1e-9, "{budget}");
    // The first bad slice closes at 61:00 and spends the day's budget (1 of 61 slices against
    // 1%): freeze. 1h/5m at 14.4 needs 14.4% of the hour's slices bad: the ninth bad slice
    // closes at 69:00. The last bad slice, [69:00, 70:00), leaves the 5m window once it no
    // longer starts at or after now - 5m: at the first instant after 74:00, 74:20.
    assert_eq!(events, ["d0 01:01 freeze", "d0 01:09 alert_firing", "d0 01:14 alert_resolved"]);
}
