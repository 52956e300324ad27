//! A calendar-month budget through the real binary (`sloguard replay`): it resets at local
//! midnight in the SLO's time zone, on the right side of a DST change.
//!
//! October 2026 in Europe/Berlin: summer time ends on the 25th, so November begins at
//! 2026-11-01 00:00 CET = 2026-10-31T23:00:00Z. A zone-naive (UTC) month would begin an hour
//! later, and a month boundary that kept the summer offset an hour earlier.

use std::fmt::Write as _;
use std::process::Command;

use serde_json::Value;

/// 2026-10-28T00:00:00Z.
const START_S: i64 = 1_793_145_600;
/// 2026-11-02T00:00:00Z.
const END_S: i64 = 1_793_577_600;
/// 2026-10-29T12:00:00Z: a 20-minute outage starts.
const OUTAGE_S: i64 = 1_793_275_200;

const SPEC: &str = "\
service: billing
slos:
  - name: availability
    objective: 99.9
    window: { calendar: month, time_zone: Europe/Berlin }
    sli:
      errors: 'http_requests_total{job=\"billing\",code=~\"5..\"}'
      total: 'http_requests_total{job=\"billing\"}'
policy:
  freeze_below: 0%
  unfreeze_above: 10%
";

/// A sample a minute: 100 requests a minute, none failing except all of them in the outage.
fn series() -> String {
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut text = String::new();
    for t in (START_S..=END_S).step_by(60) {
        if (OUTAGE_S..OUTAGE_S + 20 * 60).contains(&t) {
            failed += 100;
        } else {
            ok += 100;
        }
        let ms = t * 1000;
        writeln!(text, "http_requests_total{{job=\"billing\",code=\"200\"}} {ok} {ms}").unwrap();
        writeln!(text, "http_requests_total{{job=\"billing\",code=\"500\"}} {failed} {ms}").unwrap();
    }
    text
}

#[test]
fn a_calendar_month_budget_is_whole_again_at_local_midnight_after_summer_time_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, series_file) = (dir.path().join("billing.yaml"), dir.path().join("series.prom"));
    std::fs::write(&spec, SPEC).unwrap();
    std::fs::write(&series_file, series()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sloguard"))
        .arg("replay")
        .arg("--spec")
        .arg(&spec)
        .arg("--series")
        .arg(&series_file)
        .output()
        .expect("run sloguard replay");
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let at = |kind: &str| -> Vec<&str> {
        events.iter().filter(|e| e["event"] == kind).map(|e| e["at"].as_str().expect("at")).collect()
    };
    // The outage spends October's budget (2,000 bad of ~230,000 events so far, against 0.1%).
    let freezes = at("freeze");
    assert_eq!(freezes.len(), 1, "{events:#?}");
    assert!(freezes[0].starts_with("2026-10-29T12:"), "{events:#?}");
    // Nothing in October gives it back; November's first instant, in Berlin's winter time, does.
    assert_eq!(at("unfreeze"), ["2026-10-31T23:00:00Z"], "{events:#?}");
}
