//! Data-driven engine tests: a spec, a minute-by-minute traffic script, and the expected events
//! as `day hh:mm event subject`. They drive the engine through `replay`, the same path the CLI
//! and conformance suite use.

use std::fmt::Write;
use std::path::Path;

use crate::clock::{DAY, MINUTE, Millis, rfc3339};
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

/// 99.9% over 30 days, errors/total, Workbook tiers.
const AVAILABILITY: &str = r#"
service: svc
slos:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
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
            "d0 10:01 alert_firing page",
            "d0 10:01 alert_firing ticket",
            "d0 10:01 freeze svc",
            // 1h/5m resolves when the 5m window is clean again; 6h/30m holds until 30m clean.
            "d0 10:50 alert_resolved page",
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
        &["d0 02:01 alert_firing page", "d0 02:01 alert_firing ticket", "d0 02:01 freeze svc"],
    );
}

#[test]
fn a_gap_is_no_data_not_good_traffic() {
    // The outage pages; then the target goes silent for an hour. Once the 5m and then the 30m
    // windows hold no traffic their burn is undefined, so the page condition is false (as in
    // Prometheus, where the rule's expression returns nothing) and the page resolves at 01:35.
    // The ticket's 2h window still holds the outage, and the gap never counts as good traffic:
    // when data returns still failing, the page fires again at once.
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
            "d0 01:01 alert_firing ticket",
            "d0 01:01 freeze svc",
            "d0 01:35 alert_resolved page",
            "d0 02:06 alert_firing page",
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
    // comes from the override alone, and the missing ticket from `ticket: disabled`.
    check(
        spec,
        &[Traffic { minutes: 60, ok: 5970, err: 30 }, Traffic { minutes: 30, ok: 6000, err: 0 }],
        &["d0 00:01 alert_firing page", "d0 00:01 freeze svc", "d0 01:02 alert_resolved page"],
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
"#;
    // Good events stop at minute 31. The 1d/2h ticket (burn 3.2 > 3) and the freeze come at
    // once; the page needs 6h/30m > 6, which the 6h burn reaches a minute later (6.25).
    check(
        spec,
        &[Traffic { minutes: 30, ok: 100, err: 0 }, Traffic { minutes: 10, ok: 0, err: 100 }],
        &["d0 00:31 alert_firing ticket", "d0 00:31 freeze svc", "d0 00:32 alert_firing page"],
    );
}
