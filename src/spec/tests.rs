//! Spec loading tests. Error tests are data-driven: each feeds a small YAML document through
//! [`errors_of`] and compares the exact `line:column: field: message` lines, so a wrong position
//! fails as surely as a wrong message.

use std::env::VarError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load::parse_spec_with_env;
use super::*;

/// Every error `parse_spec` reports for `yaml`, without the file name prefix, in an empty
/// environment.
fn errors_of(yaml: &str) -> Vec<String> {
    errors_in_env(yaml, &[])
}

/// [`errors_of`] with `env` as the whole environment.
fn errors_in_env(yaml: &str, env: &[(&str, &str)]) -> Vec<String> {
    match parse_in_env(yaml, env) {
        Ok(_) => Vec::new(),
        Err(SpecErrors(errors)) => {
            errors.iter().map(|e| e.to_string().strip_prefix("t.yaml:").expect("file prefix").to_string()).collect()
        }
    }
}

fn parse_in_env(yaml: &str, env: &[(&str, &str)]) -> Result<ServiceSpec, SpecErrors> {
    let lookup = |name: &str| {
        env.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()).ok_or(VarError::NotPresent)
    };
    parse_spec_with_env(Path::new("t.yaml"), yaml, &lookup)
}

fn parse(yaml: &str) -> ServiceSpec {
    parse_in_env(yaml, &[]).unwrap_or_else(|e| panic!("{:#?}", e.0))
}

/// A valid spec; tests below vary one thing at a time. Line numbers matter: `objective` is on
/// line 5, `window` on 6, `errors` on 8, `total` on 9.
const VALID: &str = "\
service: checkout
owner: payments-team
slos:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      errors: 'http_requests_total{job=\"checkout\",code=~\"5..\"}'
      total: 'http_requests_total{job=\"checkout\"}'
";

/// `VALID` with `from` replaced by `to` (which must occur exactly once).
fn valid_with(from: &str, to: &str) -> String {
    assert_eq!(VALID.matches(from).count(), 1, "{from:?} must occur once in VALID");
    VALID.replace(from, to)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

#[test]
fn valid_spec_resolves_defaults() {
    let spec = parse(VALID);
    assert_eq!(spec.service, "checkout");
    assert_eq!(spec.owner.as_deref(), Some("payments-team"));
    assert_eq!(spec.path, PathBuf::from("t.yaml"));
    assert_eq!(spec.policy, Policy { freeze_below: 0.0, unfreeze_above: 0.1, ..Policy::default() });
    let [slo] = spec.slos.as_slice() else { panic!("one SLO") };
    assert_eq!(slo.name, "availability");
    assert!((slo.objective - 0.999).abs() < 1e-12);
    assert_eq!(slo.window, minutes(30 * 24 * 60));
    assert_eq!(slo.runbook, None);
    let Sli::ErrorsTotal { errors, total } = &slo.sli else { panic!("errors/total SLI") };
    assert_eq!(errors.as_str(), r#"http_requests_total{job="checkout",code=~"5.."}"#);
    assert_eq!(total.metric_name(), Some("http_requests_total"));
    // Workbook defaults: two tiers, page 14.4 (1h/5m) and 6 (6h/30m), ticket 3 (1d/2h) and 1
    // (3d/6h).
    assert_eq!(slo.tiers, default_tiers());
    let page = &slo.tiers[0];
    assert_eq!(page.severity, Severity::Page);
    assert_eq!(page.conditions[0], BurnCondition { long: minutes(60), short: minutes(5), factor: 14.4 });
    let ticket = &slo.tiers[1];
    assert_eq!(ticket.severity, Severity::Ticket);
    assert_eq!(ticket.conditions[1], BurnCondition { long: minutes(72 * 60), short: minutes(6 * 60), factor: 1.0 });
}

#[test]
fn good_total_sli_and_optional_fields() {
    let spec = parse(
        "service: checkout\nslos:\n  - name: latency\n    objective: 99\n    window: 28d\n    \
         runbook: https://wiki/runbooks/checkout\n    sli:\n      good: 'd_bucket{le=\"0.3\"}'\n      \
         total: d_count\npolicy:\n  freeze_below: 5\n  unfreeze_above: '25%'\n",
    );
    assert_eq!(spec.owner, None);
    assert_eq!(spec.policy, Policy { freeze_below: 0.05, unfreeze_above: 0.25, ..Policy::default() });
    let slo = &spec.slos[0];
    assert!((slo.objective - 0.99).abs() < 1e-12);
    assert_eq!(slo.runbook.as_deref(), Some("https://wiki/runbooks/checkout"));
    assert!(matches!(&slo.sli, Sli::GoodTotal { good, .. } if good.metric_name() == Some("d_bucket")));
}

#[test]
fn alerting_override_with_ticket_disabled_keeps_only_page() {
    let spec = parse(&valid_with(
        "    sli:\n",
        "    alerting:\n      page:\n        - { long: 2h, short: 10m, burn: 10 }\n      \
         ticket: disabled\n    sli:\n",
    ));
    let expected = Tier {
        severity: Severity::Page,
        conditions: vec![BurnCondition { long: minutes(120), short: minutes(10), factor: 10.0 }],
    };
    assert_eq!(spec.slos[0].tiers, vec![expected]);
}

#[test]
fn alerting_override_of_one_tier_keeps_the_other_default() {
    let spec = parse(&valid_with("    sli:\n", "    alerting:\n      page: disabled\n    sli:\n"));
    assert_eq!(spec.slos[0].tiers, default_tiers()[1..].to_vec());
}

#[test]
fn alerting_guards_and_their_defaults() {
    assert_eq!(parse(VALID).slos[0].alerting, Alerting::default());
    assert_eq!(
        Alerting::default(),
        Alerting { min_events: 0.0, min_bad_events: 0.0, inhibit: true, no_data: Some(minutes(15)) }
    );
    let spec = parse(&valid_with(
        "    sli:\n",
        "    alerting:\n      min_events: 100\n      min_bad_events: 3\n      inhibit: false\n      no_data: 1h\n    sli:\n",
    ));
    let expected = Alerting { min_events: 100.0, min_bad_events: 3.0, inhibit: false, no_data: Some(minutes(60)) };
    assert_eq!(spec.slos[0].alerting, expected);
    // The guards leave the tiers alone.
    assert_eq!(spec.slos[0].tiers, default_tiers());
    let off = parse(&valid_with("    sli:\n", "    alerting:\n      no_data: disabled\n    sli:\n"));
    assert_eq!(off.slos[0].alerting.no_data, None);
}

#[test]
fn bad_alerting_guards() {
    let alerting = |keys: &str| errors_of(&valid_with("    sli:\n", &format!("    alerting:\n{keys}    sli:\n")));
    assert_eq!(
        alerting("      min_events: -1\n"),
        ["8:19: slos[0].alerting.min_events: must be a whole number of events, 0 or more; got -1"]
    );
    assert_eq!(
        alerting("      min_bad_events: 2.5\n"),
        ["8:23: slos[0].alerting.min_bad_events: must be a whole number of events, 0 or more; got 2.5"]
    );
    assert_eq!(
        alerting("      no_data: 30s\n"),
        ["8:16: slos[0].alerting.no_data: must be at least 1m or `disabled`; got 30s"]
    );
    assert_eq!(
        alerting("      no_data: never\n"),
        ["8:16: slos[0].alerting.no_data: invalid duration \"never\": expected a whole number at \"never\""]
    );
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  min_coverage: soon\n")),
        ["11:17: policy.min_coverage: invalid duration \"soon\": expected a whole number at \"soon\""]
    );
}

#[test]
fn latency_slis() {
    let sli = |text: &str| {
        VALID.replace(
        "      errors: 'http_requests_total{job=\"checkout\",code=~\"5..\"}'\n      total: 'http_requests_total{job=\"checkout\"}'\n",
        text,
    )
    };
    let spec = parse(&sli("      latency: { histogram: 'h_seconds{job=\"x\"}', threshold: 300ms }\n"));
    let Sli::Latency { threshold, good, total, .. } = &spec.slos[0].sli else { panic!("{:?}", spec.slos[0].sli) };
    assert_eq!(*threshold, Duration::from_millis(300));
    assert_eq!((good.as_str(), total.as_str()), ("h_seconds_bucket{job=\"x\"}", "h_seconds_count{job=\"x\"}"));
    let bucket = |le: &str| -> Vec<(String, String)> { vec![("job".into(), "x".into()), ("le".into(), le.into())] };
    for le in ["0.3", "0.30", "3e-1", " 0.3"] {
        assert!(good.matches("h_seconds_bucket", bucket(le).as_slice()), "{le}");
    }
    assert!(!good.matches("h_seconds_bucket", bucket("0.25").as_slice()));
    assert!(!good.matches("h_seconds_bucket", bucket("+Inf").as_slice()));
    assert_eq!(
        errors_of(&sli("      latency: { histogram: 'h{le=\"0.3\"}', threshold: 300ms }\n")),
        ["8:29: slos[0].sli.latency.histogram: must not match `le`: the threshold picks the bucket"]
    );
    assert_eq!(
        errors_of(&sli("      latency: { histogram: '{__name__=\"h\"}', threshold: 1s }\n")),
        ["8:29: slos[0].sli.latency.histogram: must start with the histogram's metric name, e.g. \
          `http_request_duration_seconds{job=\"x\"}`"]
    );
    assert_eq!(
        errors_of(&sli("      latency: { histogram: 'h', threshold: soon }\n")),
        ["8:45: slos[0].sli.latency.threshold: invalid duration \"soon\": expected a whole number at \"soon\""]
    );
    assert_eq!(
        errors_of(&sli("      latency: { histogram: 'h', threshold: 1s }\n      total: 'h_count'\n")),
        ["8:7: slos[0].sli: give either `latency` alone or `errors`/`good` with `total`, not both"]
    );
}

#[test]
fn calendar_windows() {
    let window = |text: &str| parse(&VALID.replace("window: 30d", text)).slos.remove(0);
    let berlin = window("window: { calendar: month, time_zone: Europe/Berlin }");
    let calendar = berlin.calendar.expect("calendar");
    assert_eq!((calendar.period, calendar.time_zone_name.as_str()), (crate::calendar::Period::Month, "Europe/Berlin"));
    assert_eq!(berlin.window, Duration::from_secs(32 * 86400), "counters keep the longest month and a day");
    assert_eq!(window("window: { calendar: quarter }").calendar.unwrap().time_zone_name, "UTC");
    assert_eq!(window("window: 30d").calendar, None);
    let errors = |text: &str| errors_of(&VALID.replace("window: 30d", text));
    assert_eq!(
        errors("window: { calendar: year }"),
        ["6:25: slos[0].window.calendar: must be one of week, month, quarter; got `year`"]
    );
    assert_eq!(
        errors("window: { calendar: month, time_zone: Europe/Berlim }"),
        ["6:43: slos[0].window.time_zone: unknown time zone `Europe/Berlim`: use an IANA name such as Europe/Berlin"]
    );
    assert_eq!(errors("window: { time_zone: UTC }"), ["6:13: slos[0].window.calendar: missing required field"]);
    assert_eq!(
        errors("window: { calendar: week, zone: UTC }")[0],
        "6:31: slos[0].window.zone: unknown field `zone`, expected one of calendar, time_zone"
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        errors_of(&valid_with("    window: 30d\n", "    window: 30d\n    source: prom\n")),
        ["7:5: slos[0].source: unknown field `source`, expected one of name, objective, window, \
          runbook, group_by, max_groups, sli, alerting"]
    );
    assert_eq!(
        errors_of(&format!("{VALID}notifications: slack\n")),
        ["10:1: notifications: unknown field `notifications`, expected one of service, owner, slos, policy, \
          source, notify"]
    );
}

#[test]
fn unknown_field_in_flow_mapping_condition() {
    assert_eq!(
        errors_of(&valid_with(
            "    sli:\n",
            "    alerting:\n      page:\n        - { long: 1h, shrt: 5m, burn: 2 }\n    sli:\n"
        )),
        ["9:23: slos[0].alerting.page[0].shrt: unknown field `shrt`, expected one of long, \
          short, burn"]
    );
}

#[test]
fn wrong_yaml_type() {
    assert_eq!(
        errors_of(&valid_with("objective: 99.9", "objective: high")),
        ["5:16: slos[0].objective: invalid floating point"]
    );
    assert_eq!(
        errors_of(&valid_with("    sli:\n", "    alerting:\n      ticket: true\n    sli:\n")),
        ["8:7: slos[0].alerting.ticket: invalid type: boolean `true`, expected a list of \
          {long, short, burn} conditions or the string `disabled`"]
    );
}

#[test]
fn yaml_syntax_error_has_position_but_no_field() {
    assert_eq!(errors_of("service: checkout\nslos: [\n"), ["2:7: unclosed bracket '['"]);
}

#[test]
fn duplicate_yaml_key() {
    assert_eq!(
        errors_of(&valid_with("    window: 30d\n", "    window: 30d\n    window: 28d\n")),
        ["7:5: slos[0].window: duplicate mapping key `window` is not allowed here"]
    );
}

#[test]
fn duplicate_slo_names() {
    let second = "  - name: availability\n    objective: 99\n    window: 7d\n    sli:\n      \
                  good: a\n      total: b\n";
    assert_eq!(
        errors_of(&format!("{VALID}{second}")),
        ["10:11: slos[1].name: duplicate SLO name `availability`: already defined at line 4"]
    );
}

#[test]
fn objective_out_of_range() {
    let msg = |got: &str| {
        format!(
            "5:16: slos[0].objective: must be a percentage strictly between 0 and 100, e.g. \
             99.9; got {got}"
        )
    };
    assert_eq!(errors_of(&valid_with("99.9", "100")), [msg("100")]);
    assert_eq!(errors_of(&valid_with("99.9", "0")), [msg("0")]);
    assert_eq!(errors_of(&valid_with("99.9", "-5")), [msg("-5")]);
    assert_eq!(errors_of(&valid_with("99.9", "0.999")), Vec::<String>::new());
}

#[test]
fn both_or_neither_of_errors_and_good() {
    assert_eq!(
        errors_of(&valid_with("      total:", "      good: 'up'\n      total:")),
        ["8:7: slos[0].sli: give either `errors` or `good` with `total`, not both"]
    );
    assert_eq!(
        errors_of(&valid_with("      errors: 'http_requests_total{job=\"checkout\",code=~\"5..\"}'\n", "")),
        ["8:7: slos[0].sli: missing `errors` or `good` (one of them, with `total`), or `latency`"]
    );
}

#[test]
fn missing_total() {
    assert_eq!(
        errors_of(&valid_with("      total: 'http_requests_total{job=\"checkout\"}'\n", "")),
        ["8:7: slos[0].sli.total: missing required field"]
    );
}

#[test]
fn bad_selector() {
    assert_eq!(
        errors_of(&valid_with("code=~\"5..\"}'", "code=~\"5..\"'")),
        ["8:15: slos[0].sli.errors: invalid selector: unclosed '{' at offset 19"]
    );
    assert_eq!(
        errors_of(&valid_with(
            "total: 'http_requests_total{job=\"checkout\"}'",
            "total: 'rate(http_requests_total[5m])'"
        )),
        ["9:14: slos[0].sli.total: invalid selector: function call `rate(...)` is not \
          supported: give the bare counter selector at offset 0"]
    );
}

#[test]
fn regexes_share_one_budget_per_load() {
    // Each `a{100000}` compiles to 4.6 MiB, within the per-regex limit; 60 of them overrun the
    // 256 MiB the regexes of one load may take together, which 200 of them once did fourfold.
    const N_SLOS: usize = 60;
    let mut yaml = String::from("service: big\nslos:\n");
    for i in 0..N_SLOS {
        yaml.push_str(&format!(
            "  - name: s{i}\n    objective: 99.9\n    window: 30d\n    sli:\n      errors: 'req{{code=~\"a{{100000}}\"}}'\n      total: req\n"
        ));
    }
    let errors = errors_of(&yaml);
    // The budget holds the first few dozen; where exactly depends on the regex engine's
    // layout, and every SLO from there on is reported at its `errors` value.
    let first = N_SLOS - errors.len();
    assert!((20..N_SLOS).contains(&first), "{} errors: {errors:#?}", errors.len());
    let expected: Vec<String> = (first..N_SLOS)
        .map(|i| {
            format!(
                "{}:15: slos[{i}].sli.errors: invalid selector: regex for label `code` does not fit: the regexes \
                 of these specs would take more than 256 MiB compiled; simplify them (large repetitions such as \
                 `a{{1000}}` cost the most) at offset 10",
                7 + 6 * i
            )
        })
        .collect();
    assert_eq!(errors, expected);
}

#[test]
fn bad_window() {
    assert_eq!(
        errors_of(&valid_with("30d", "1.5h")),
        ["6:13: slos[0].window: invalid duration \"1.5h\": expected a whole number at \".5h\""]
    );
    assert_eq!(
        errors_of(&valid_with("30d", "30")),
        ["6:13: slos[0].window: invalid duration \"30\": missing unit after the number \
          (units: ms s m h d w y)"]
    );
    assert_eq!(errors_of(&valid_with("30d", "30s")), ["6:13: slos[0].window: must be at least 1m; got 30s"]);
}

#[test]
fn bad_percentages() {
    let policy = |freeze: &str, unfreeze: &str| {
        errors_of(&format!("{VALID}policy:\n  freeze_below: {freeze}\n  unfreeze_above: {unfreeze}\n"))
    };
    assert_eq!(
        policy("lots", "10%"),
        ["11:17: policy.freeze_below: must be a percentage from 0% to 100%, e.g. 10%; got `lots`"]
    );
    assert_eq!(
        policy("0%", "110%"),
        ["12:19: policy.unfreeze_above: must be a percentage from 0% to 100%, e.g. 10%; got \
          `110%`"]
    );
    assert_eq!(
        policy("-1", "10%"),
        ["11:17: policy.freeze_below: must be a percentage from 0% to 100%, e.g. 10%; got `-1`"]
    );
    assert_eq!(
        policy("20%", "10%"),
        ["12:19: policy.unfreeze_above: unfreeze_above (10%) must be at least freeze_below (20%)"]
    );
    assert_eq!(policy("10%", "10%"), Vec::<String>::new());
}

#[test]
fn unwritten_thresholds_follow_a_high_freeze_below() {
    // Specs written before warn_below existed (and replay backtests) must keep loading: an
    // unwritten unfreeze_above or warn_below rises to freeze_below instead of contradicting it.
    let spec = parse(&format!("{VALID}policy:\n  freeze_below: 50%\n"));
    assert_eq!((spec.policy.freeze_below, spec.policy.unfreeze_above, spec.policy.warn_below), (0.5, 0.5, 0.5));
}

#[test]
fn a_written_threshold_below_freeze_below_is_an_error() {
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  freeze_below: 50%\n  unfreeze_above: 10%\n  warn_below: 20%\n")),
        [
            "12:19: policy.unfreeze_above: unfreeze_above (10%) must be at least freeze_below (50%)",
            "13:15: policy.warn_below: warn_below (20%) must be at least freeze_below (50%)",
        ]
    );
}

#[test]
fn every_policy_key() {
    let spec = parse(&format!(
        "{VALID}policy:\n  freeze_below: 5%\n  unfreeze_above: 15%\n  warn_below: 30\n  freeze_on_page: true\n  \
         allow_during_freeze: [hotfix, security, 0day_fix-2]\n  postmortem_above: 12.5%\n  min_coverage: 6h\n"
    ));
    let expected = Policy {
        freeze_below: 0.05,
        unfreeze_above: 0.15,
        warn_below: 0.3,
        freeze_on_page: true,
        allow_during_freeze: vec!["hotfix".into(), "security".into(), "0day_fix-2".into()],
        postmortem_above: 0.125,
        min_coverage: Duration::from_secs(6 * 3600),
    };
    assert_eq!(spec.policy, expected);
    // An empty `policy:` mapping and a partial one keep the defaults of what they leave out.
    assert_eq!(parse(&format!("{VALID}policy: {{}}\n")).policy, Policy::default());
    let spec = parse(&format!("{VALID}policy:\n  freeze_on_page: true\n"));
    assert_eq!(spec.policy, Policy { freeze_on_page: true, ..Policy::default() });
}

#[test]
fn warn_below_must_not_be_below_freeze_below() {
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  freeze_below: 10%\n  warn_below: 5%\n")),
        ["12:15: policy.warn_below: warn_below (5%) must be at least freeze_below (10%)"]
    );
    // Equal is fine: warning and freezing at the same line just means no warning period.
    assert_eq!(errors_of(&format!("{VALID}policy:\n  freeze_below: 10%\n  warn_below: 10%\n")), Vec::<String>::new());
    // warn_below is not ordered against unfreeze_above.
    assert_eq!(errors_of(&format!("{VALID}policy:\n  unfreeze_above: 50%\n")), Vec::<String>::new());
}

#[test]
fn bad_new_policy_values() {
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  warn_below: 101%\n  postmortem_above: much\n  freeze_on_page: yes\n")),
        ["13:19: policy.freeze_on_page: invalid boolean (true or false expected)"]
    );
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  warn_below: 101%\n  postmortem_above: much\n")),
        [
            "11:15: policy.warn_below: must be a percentage from 0% to 100%, e.g. 10%; got `101%`",
            "12:21: policy.postmortem_above: must be a percentage from 0% to 100%, e.g. 10%; got `much`",
        ]
    );
}

#[test]
fn bad_change_classes() {
    assert_eq!(
        errors_of(&format!("{VALID}policy:\n  allow_during_freeze: [hotfix, Hotfix, -x, '', hotfix]\n")),
        [
            "11:33: policy.allow_during_freeze[1]: invalid change class `Hotfix`: use lowercase letters, digits, `_` \
             and `-`, starting with a letter or digit",
            "11:41: policy.allow_during_freeze[2]: invalid change class `-x`: use lowercase letters, digits, `_` and \
             `-`, starting with a letter or digit",
            "11:45: policy.allow_during_freeze[3]: invalid change class ``: use lowercase letters, digits, `_` and \
             `-`, starting with a letter or digit",
            "11:49: policy.allow_during_freeze[4]: duplicate change class `hotfix`: already listed as \
             policy.allow_during_freeze[0]",
        ]
    );
}

#[test]
fn empty_or_missing_slos() {
    assert_eq!(errors_of("service: checkout\nslos: []\n"), ["2:7: slos: must list at least one SLO"]);
    assert_eq!(errors_of("service: checkout\n"), ["1:1: slos: missing required field"]);
}

#[test]
fn empty_file_reports_each_missing_field() {
    assert_eq!(errors_of(""), ["1:1: service: missing required field", "1:1: slos: missing required field"]);
}

#[test]
fn empty_and_invalid_names() {
    assert_eq!(errors_of(&valid_with("service: checkout", "service: ''")), ["1:10: service: must not be empty"]);
    assert_eq!(errors_of(&valid_with("name: availability", "name: \"\"")), ["4:11: slos[0].name: must not be empty"]);
    assert_eq!(
        errors_of(&valid_with("name: availability", "name: avail/ability")),
        ["4:11: slos[0].name: invalid name `avail/ability`: use only letters, digits, `_`, `-` \
          and `.`, starting with a letter or digit"]
    );
    assert_eq!(
        errors_of(&valid_with("owner: payments-team", "owner: ' '")),
        ["2:8: owner: must not be empty (omit the field instead)"]
    );
}

#[test]
fn names_start_with_a_letter_or_digit() {
    // HTTP clients resolve `.` and `..` path segments away, so `/v1/gate/..` could never reach
    // such a service.
    for name in ["..", ".", ".hidden", "-x", "_x"] {
        assert_eq!(
            errors_of(&valid_with("service: checkout", &format!("service: {name}"))),
            [format!(
                "1:10: service: invalid name `{name}`: use only letters, digits, `_`, `-` and `.`, starting \
                 with a letter or digit"
            )]
        );
    }
    assert_eq!(
        errors_of(&valid_with("name: availability", "name: ..")),
        ["4:11: slos[0].name: invalid name `..`: use only letters, digits, `_`, `-` and `.`, starting with a \
          letter or digit"]
    );
    assert_eq!(parse(&valid_with("service: checkout", "service: 2fa.v1_x-y")).service, "2fa.v1_x-y");
}

#[test]
fn missing_slo_fields_point_at_the_slo() {
    assert_eq!(
        errors_of("service: checkout\nslos:\n  - name: x\n"),
        [
            "3:5: slos[0].objective: missing required field",
            "3:5: slos[0].window: missing required field",
            "3:5: slos[0].sli: missing required field",
        ]
    );
}

#[test]
fn bad_tier_overrides() {
    let alerting = |tiers: &str| errors_of(&valid_with("    sli:\n", &format!("{tiers}    sli:\n")));
    assert_eq!(
        alerting("    alerting:\n      page: off\n"),
        ["8:13: slos[0].alerting.page: expected a list of {long, short, burn} conditions or \
          `disabled`; got `off`"]
    );
    assert_eq!(
        alerting("    alerting:\n      page: []\n"),
        ["8:13: slos[0].alerting.page: must list at least one condition (write `disabled` to \
          turn the tier off)"]
    );
    assert_eq!(
        alerting("    alerting:\n      page:\n        - { long: 5m, short: 5m, burn: 2 }\n"),
        ["9:30: slos[0].alerting.page[0].short: short window (5m) must be shorter than the \
          long window (5m)"]
    );
    assert_eq!(
        alerting("    alerting:\n      page:\n        - { long: 1h, short: 5m, burn: 0 }\n"),
        ["9:40: slos[0].alerting.page[0].burn: must be a number greater than 0; got 0"]
    );
    assert_eq!(
        alerting("    alerting:\n      ticket:\n        - { long: 1d, burn: 2 }\n"),
        ["9:11: slos[0].alerting.ticket[0].short: missing required field"]
    );
    assert_eq!(
        alerting("    alerting:\n      ticket:\n        - long: 1d\n          short: 2M\n          burn: 3\n"),
        ["10:18: slos[0].alerting.ticket[0].short: invalid duration \"2M\": unknown unit \"M\" \
          (units: ms s m h d w y)"]
    );
}

#[test]
fn all_semantic_errors_of_a_file_are_reported_in_source_order() {
    let yaml = "\
service: ''
slos:
  - name: a
    objective: 120
    window: 5x
    sli:
      errors: 'e{'
      total: ''
  - name: a
    objective: 99
    window: 1d
    sli:
      total: t
policy:
  unfreeze_above: 200%
";
    assert_eq!(
        errors_of(yaml),
        [
            "1:10: service: must not be empty",
            "4:16: slos[0].objective: must be a percentage strictly between 0 and 100, e.g. \
             99.9; got 120",
            "5:13: slos[0].window: invalid duration \"5x\": unknown unit \"x\" (units: ms s m h d \
             w y)",
            "7:15: slos[0].sli.errors: invalid selector: unclosed '{' at offset 1",
            "8:14: slos[0].sli.total: invalid selector: empty selector at offset 0",
            "9:11: slos[1].name: duplicate SLO name `a`: already defined at line 3",
            "13:7: slos[1].sli: missing `errors` or `good` (one of them, with `total`), or `latency`",
            "15:19: policy.unfreeze_above: must be a percentage from 0% to 100%, e.g. 10%; got \
             `200%`",
        ]
    );
}

#[test]
fn display_includes_file_and_skips_empty_field() {
    let error = |field: &str, line| SpecError {
        file: PathBuf::from("slo-specs/checkout.yaml"),
        line,
        column: if line == 0 { 0 } else { 14 },
        field: field.into(),
        message: "boom".into(),
    };
    assert_eq!(error("slos[0].sli.errors", 9).to_string(), "slo-specs/checkout.yaml:9:14: slos[0].sli.errors: boom");
    assert_eq!(error("", 0).to_string(), "slo-specs/checkout.yaml:0:0: boom");
}

/// Writes `files` into a fresh temporary directory.
fn spec_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write spec");
    }
    dir
}

#[test]
fn load_path_reads_yaml_and_yml_files_sorted_and_skips_others() {
    let payments = VALID.replace("service: checkout", "service: payments");
    let dir =
        spec_dir(&[("b.yml", &payments), ("a.yaml", VALID), ("notes.md", "not a spec"), (".a.yaml.swp", "not a spec")]);
    let specs = load_path(dir.path()).expect("loads");
    let names: Vec<_> = specs.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["checkout", "payments"]);
    assert_eq!(specs[0].path, dir.path().join("a.yaml"));
}

#[test]
fn load_paths_aggregates_errors_and_duplicate_services_across_files() {
    let dir = spec_dir(&[
        ("a.yaml", VALID),
        ("b.yaml", &valid_with("objective: 99.9", "objective: 100")),
        ("c.yaml", &format!("# same service again\n{VALID}")),
    ]);
    let single = dir.path().join("a.yaml");
    let Err(SpecErrors(errors)) = load_paths(&[dir.path().to_path_buf(), single]) else { panic!("must fail") };
    let shown: Vec<String> =
        errors.iter().map(|e| e.to_string().replace(&format!("{}/", dir.path().display()), "")).collect();
    assert_eq!(
        shown,
        [
            "b.yaml:5:16: slos[0].objective: must be a percentage strictly between 0 and 100, \
             e.g. 99.9; got 100",
            "c.yaml:2:10: service: duplicate service `checkout`: already defined at a.yaml:1:10",
            "a.yaml:1:10: service: duplicate service `checkout`: already defined at a.yaml:1:10",
        ]
    );
}

#[test]
fn missing_path_and_empty_directory_are_spec_errors() {
    let dir = spec_dir(&[]);
    let missing = dir.path().join("missing.yaml");
    let Err(SpecErrors(errors)) = load_paths(&[missing.clone(), dir.path().to_path_buf()]) else { panic!("must fail") };
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0].file.as_path(), errors[0].line, errors[0].column), (missing.as_path(), 0, 0));
    assert!(errors[0].message.starts_with("cannot read spec path: "), "{}", errors[0]);
    assert_eq!(errors[1].message, "no *.yaml or *.yml spec files in directory");
    assert_eq!(errors[1].field, "");
}

#[test]
fn conformance_specs_load() {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/scenarios");
    let Ok(entries) = std::fs::read_dir(&scenarios) else {
        eprintln!("skipping: {} not present", scenarios.display());
        return;
    };
    let mut n_loaded = 0;
    for entry in entries {
        let spec_path = entry.expect("dir entry").path().join("spec.yaml");
        if spec_path.is_file() {
            let specs = load_path(&spec_path).unwrap_or_else(|e| panic!("{:#?}", e.0));
            assert_eq!(specs[0].slos[0].tiers, default_tiers());
            n_loaded += 1;
        }
    }
    assert!(n_loaded > 0, "no spec.yaml under {}", scenarios.display());
}

#[test]
fn shipped_example_specs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slo-specs");
    let specs = load_path(&dir).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert!(specs.len() >= 2);
    assert!(specs.iter().any(|s| s.slos.iter().any(|slo| slo.tiers != default_tiers())));
}

// `source:`. `with_source` appends a `source:` section to `VALID`: `source:` is line 10, so
// `body`'s first line is line 11.

fn with_source(body: &str) -> String {
    format!("{VALID}source:\n{body}")
}

/// A one-target scrape source with `extra` lines (indented by 4) after `targets` (line 12).
fn scrape_with(extra: &str) -> String {
    with_source(&format!("  scrape:\n    targets: ['http://127.0.0.1:8080/metrics']\n{extra}"))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn no_source_is_none() {
    assert_eq!(parse(VALID).source, None);
}

#[test]
fn scrape_source_with_every_option() {
    let dir = spec_dir(&[("token", "s3cret-token\n"), ("ca.pem", "-----BEGIN CERTIFICATE-----\n")]);
    let yaml = scrape_with(&format!(
        "    interval: 30s\n    headers: {{ X-Scope-OrgID: tenant-a }}\n    headers_env: {{ X-Api-Key: API_KEY }}\n    \
         bearer_token_file: {}\n    max_body_size: 2MiB\n    tls: {{ ca_file: {}, insecure_skip_verify: true }}\n",
        dir.path().join("token").display(),
        dir.path().join("ca.pem").display(),
    ));
    let spec = parse_in_env(&yaml, &[("API_KEY", "k3y-value")]).unwrap_or_else(|e| panic!("{:#?}", e.0));
    let Some(Source::Scrape(scrape)) = &spec.source else { panic!("scrape source") };
    assert_eq!(scrape.targets, ["http://127.0.0.1:8080/metrics"]);
    assert_eq!((scrape.interval, scrape.timeout), (secs(30), secs(10)));
    let http = &scrape.http;
    let headers: Vec<(&str, &str)> = http.headers.iter().map(|(name, value)| (name.as_str(), value.expose())).collect();
    assert_eq!(headers, [("X-Scope-OrgID", "tenant-a"), ("X-Api-Key", "k3y-value")]);
    assert_eq!(http.bearer_token.as_ref().map(Secret::expose), Some("s3cret-token"));
    assert_eq!(http.max_body_bytes, 2 << 20);
    assert_eq!(http.ca_file.as_deref(), Some(dir.path().join("ca.pem").as_path()));
    assert!(http.insecure_skip_verify);
    let shown = format!("{spec:?}");
    assert!(!shown.contains("s3cret") && !shown.contains("k3y"), "secret in Debug output: {shown}");
}

#[test]
fn source_defaults() {
    let Some(Source::Scrape(scrape)) = parse(&scrape_with("")).source else { panic!("scrape source") };
    assert_eq!((scrape.interval, scrape.timeout), (secs(15), secs(10)));
    let defaults = HttpOptions {
        headers: Vec::new(),
        bearer_token: None,
        max_body_bytes: 16 << 20,
        ca_file: None,
        insecure_skip_verify: false,
    };
    assert_eq!(scrape.http, defaults);
    // The default timeout never exceeds the interval.
    let Some(Source::Scrape(scrape)) = parse(&scrape_with("    interval: 5s\n")).source else { panic!("scrape") };
    assert_eq!((scrape.interval, scrape.timeout), (secs(5), secs(5)));

    let prometheus = parse(&with_source("  prometheus:\n    url: http://prometheus:9090/mimir/\n")).source;
    let Some(Source::Prometheus(prometheus)) = prometheus else { panic!("prometheus source") };
    assert_eq!(prometheus.url, "http://prometheus:9090/mimir");
    assert_eq!((prometheus.interval, prometheus.timeout), (secs(30), secs(10)));
    assert_eq!(prometheus.http, HttpOptions { max_body_bytes: 64 << 20, ..defaults });
}

#[test]
fn source_kind_both_or_neither() {
    assert_eq!(
        errors_of(&with_source("  scrape: { targets: ['http://a/metrics'] }\n  prometheus: { url: 'http://p' }\n")),
        ["11:3: source: give either `scrape` or `prometheus`, not both"]
    );
    assert_eq!(
        errors_of(&format!("{VALID}source: {{}}\n")),
        ["10:9: source: missing `scrape` or `prometheus` (one of them)"]
    );
    assert_eq!(
        errors_of(&scrape_with("    url: http://p\n")),
        ["13:5: source.scrape.url: unknown field `url`, expected one of targets, interval, timeout, headers, \
          headers_env, bearer_token_env, bearer_token_file, max_body_size, sample_limit, tls"]
    );
}

#[test]
fn missing_or_empty_targets_and_url() {
    assert_eq!(
        errors_of(&with_source("  scrape:\n    interval: 5s\n")),
        ["12:5: source.scrape.targets: missing required field"]
    );
    assert_eq!(
        errors_of(&with_source("  scrape:\n    targets: []\n")),
        ["12:14: source.scrape.targets: must list at least one target URL"]
    );
    assert_eq!(
        errors_of(&with_source("  prometheus:\n    interval: 1m\n")),
        ["12:5: source.prometheus.url: missing required field"]
    );
}

#[test]
fn bad_target_urls() {
    let targets = |list: &str| errors_of(&with_source(&format!("  scrape:\n    targets:\n{list}")));
    assert_eq!(
        targets("      - /metrics\n"),
        ["13:9: source.scrape.targets[0]: invalid URL: relative URL without a base"]
    );
    assert_eq!(
        targets("      - localhost:9100/metrics\n"),
        ["13:9: source.scrape.targets[0]: must be an http:// or https:// URL; got scheme `localhost`"]
    );
    assert_eq!(
        targets("      - http://a/metrics\n      - https://scraper:hunter2@b/metrics\n"),
        ["14:9: source.scrape.targets[1]: must not contain credentials: use headers_env, bearer_token_env or \
          bearer_token_file"]
    );
    assert_eq!(
        targets("      - http://a:80/metrics\n      - http://b/metrics\n      - HTTP://A/metrics\n"),
        ["15:9: source.scrape.targets[2]: duplicate target `HTTP://A/metrics`: already listed at line 13"]
    );
}

#[test]
fn bad_prometheus_urls() {
    let url = |url: &str| errors_of(&with_source(&format!("  prometheus:\n    url: {url}\n")));
    let api_path = "12:10: source.prometheus.url: give the base URL without `/api/v1` (e.g. \
                    http://prometheus:9090): sloguard appends the API path itself";
    assert_eq!(url("http://prometheus:9090/api/v1"), [api_path]);
    assert_eq!(url("http://prometheus:9090/api/v1/"), [api_path]);
    assert_eq!(
        url("'http://prometheus:9090/?tenant=a'"),
        ["12:10: source.prometheus.url: must not have a query or fragment: give the API's base URL"]
    );
    assert_eq!(
        url("ftp://prometheus"),
        ["12:10: source.prometheus.url: must be an http:// or https:// URL; got scheme `ftp`"]
    );
}

#[test]
fn bad_interval_and_timeout() {
    assert_eq!(
        errors_of(&scrape_with("    interval: 500ms\n")),
        ["13:15: source.scrape.interval: must be at least 1s; got 500ms"]
    );
    assert_eq!(
        errors_of(&scrape_with("    interval: 5\n    timeout: 2x\n")),
        [
            "13:15: source.scrape.interval: invalid duration \"5\": missing unit after the number (units: ms s m h \
             d w y)",
            "14:14: source.scrape.timeout: invalid duration \"2x\": unknown unit \"x\" (units: ms s m h d w y)",
        ]
    );
    assert_eq!(
        errors_of(&scrape_with("    interval: 5s\n    timeout: 6s\n")),
        ["14:14: source.scrape.timeout: timeout (6s) must not exceed the interval (5s)"]
    );
    assert_eq!(
        errors_of(&with_source("  prometheus:\n    url: http://p:9090\n    timeout: 45s\n")),
        ["13:14: source.prometheus.timeout: timeout (45s) must not exceed the interval (30s)"]
    );
}

#[test]
fn bad_headers() {
    assert_eq!(
        errors_of(&scrape_with("    headers: { 'X Bad': a }\n")),
        ["13:16: source.scrape.headers.X Bad: invalid HTTP header name `X Bad`"]
    );
    assert_eq!(
        errors_of(&scrape_with("    headers:\n      X-Tenant: \"line\\nbreak\"\n")),
        ["14:17: source.scrape.headers.X-Tenant: the value contains characters not allowed in an HTTP header"]
    );
    assert_eq!(
        errors_in_env(&scrape_with("    headers: { X-Key: a }\n    headers_env: { x-key: KEY }\n"), &[("KEY", "b")]),
        ["14:20: source.scrape.headers_env.x-key: header `x-key` is already set at line 13"]
    );
    assert_eq!(
        errors_in_env(
            &scrape_with("    headers: { Authorization: 'Basic x' }\n    bearer_token_env: TOKEN\n"),
            &[("TOKEN", "t")]
        ),
        ["13:16: source.scrape.headers.Authorization: conflicts with the bearer token, which is sent as the \
          Authorization header"]
    );
}

#[test]
fn env_secret_errors_name_the_variable_never_the_value() {
    let yaml = scrape_with("    headers_env: { X-Api-Key: API_KEY }\n    bearer_token_env: TARGET_TOKEN\n");
    assert_eq!(
        errors_of(&yaml),
        [
            "13:31: source.scrape.headers_env.X-Api-Key: environment variable API_KEY is not set",
            "14:23: source.scrape.bearer_token_env: environment variable TARGET_TOKEN is not set",
        ]
    );
    assert_eq!(
        errors_in_env(&yaml, &[("API_KEY", ""), ("TARGET_TOKEN", "s3cret\nvalue")]),
        [
            "13:31: source.scrape.headers_env.X-Api-Key: environment variable API_KEY is empty",
            "14:23: source.scrape.bearer_token_env: environment variable TARGET_TOKEN contains characters not \
             allowed in an HTTP header",
        ]
    );
    let not_unicode = |_: &str| Err(VarError::NotUnicode(OsString::from("s3cret")));
    let Err(SpecErrors(errors)) = parse_spec_with_env(Path::new("t.yaml"), &yaml, &not_unicode) else {
        panic!("must fail")
    };
    assert_eq!(
        errors[1].to_string(),
        "t.yaml:14:23: source.scrape.bearer_token_env: environment variable TARGET_TOKEN is not valid UTF-8"
    );
    assert!(errors.iter().all(|e| !e.to_string().contains("s3cret")));
}

#[test]
fn bearer_token_file_errors() {
    let dir = spec_dir(&[("empty", "\n"), ("token", "t")]);
    let file = |name: &str| dir.path().join(name).display().to_string();
    let token_file = |name: &str| errors_of(&scrape_with(&format!("    bearer_token_file: {}\n", file(name))));
    assert_eq!(
        token_file("missing"),
        [format!(
            "13:24: source.scrape.bearer_token_file: cannot read bearer token file {}: No such file or directory (os \
             error 2)",
            file("missing")
        )]
    );
    assert_eq!(
        token_file("empty"),
        [format!("13:24: source.scrape.bearer_token_file: bearer token file {} is empty", file("empty"))]
    );
    assert_eq!(
        errors_in_env(
            &scrape_with(&format!("    bearer_token_env: T\n    bearer_token_file: {}\n", file("token"))),
            &[("T", "t")]
        ),
        ["14:24: source.scrape.bearer_token_file: give either `bearer_token_env` or `bearer_token_file`, not both"]
    );
}

#[test]
fn relative_token_file_is_relative_to_the_spec() {
    let dir = spec_dir(&[("token", "t\r\n")]);
    let spec_path = dir.path().join("s.yaml");
    std::fs::write(&spec_path, scrape_with("    bearer_token_file: token\n")).expect("write spec");
    let specs = load_path(&spec_path).unwrap_or_else(|e| panic!("{:#?}", e.0));
    let Some(Source::Scrape(scrape)) = &specs[0].source else { panic!("scrape source") };
    assert_eq!(scrape.http.bearer_token.as_ref().map(Secret::expose), Some("t"));
}

#[test]
fn sample_limit() {
    let limit_of = |text: &str| {
        let Some(Source::Scrape(scrape)) = parse(&scrape_with(text)).source else { panic!("scrape source") };
        scrape.sample_limit
    };
    assert_eq!(limit_of(""), None, "no limit unless given");
    assert_eq!(limit_of("    sample_limit: 0\n"), None);
    assert_eq!(limit_of("    sample_limit: 50000\n"), Some(50_000));
    let field = "13:19: source.scrape.sample_limit";
    for bad in ["-1", "1.5"] {
        assert_eq!(
            errors_of(&scrape_with(&format!("    sample_limit: {bad}\n"))),
            [format!("{field}: must be a whole number, 0 (no limit) or more; got {bad}")]
        );
    }
    assert_eq!(
        errors_of(&with_source("  prometheus: { url: 'http://p', sample_limit: 5 }\n"))[0],
        "11:34: source.prometheus.sample_limit: unknown field `sample_limit`, expected one of url, interval, timeout, \
         headers, headers_env, bearer_token_env, bearer_token_file, max_body_size, tls"
    );
}

#[test]
fn bad_max_body_size() {
    let size = |size: &str| errors_of(&scrape_with(&format!("    max_body_size: {size}\n")));
    let field = "13:20: source.scrape.max_body_size";
    assert_eq!(size("16MB"), [format!("{field}: invalid size \"16MB\": unknown unit \"MB\" (units: B KiB MiB GiB)")]);
    assert_eq!(
        size("16"),
        [format!("{field}: invalid size \"16\": missing unit after the number (units: B KiB MiB GiB)")]
    );
    assert_eq!(
        size("MiB"),
        [format!("{field}: invalid size \"MiB\": expected a whole number followed by a unit, e.g. 16MiB")]
    );
    assert_eq!(size("0GiB"), [format!("{field}: invalid size \"0GiB\": must be greater than zero")]);
    assert_eq!(size("99999999999GiB"), [format!("{field}: invalid size \"99999999999GiB\": too large")]);
    assert_eq!(size("512B"), Vec::<String>::new());
}

#[test]
fn bad_ca_file() {
    let dir = spec_dir(&[]);
    let missing = dir.path().join("missing.pem");
    assert_eq!(
        errors_of(&scrape_with(&format!("    tls:\n      ca_file: {}\n", missing.display()))),
        [format!(
            "14:16: source.scrape.tls.ca_file: cannot read CA file {}: No such file or directory (os error 2)",
            missing.display()
        )]
    );
    assert_eq!(
        errors_of(&scrape_with(&format!("    tls: {{ ca_file: {} }}\n", dir.path().display()))),
        [format!("13:21: source.scrape.tls.ca_file: CA file {} is not a file", dir.path().display())]
    );
}

// `notify:`. `with_notify` appends a `notify:` section to `VALID`: `notify:` is line 10.

fn with_notify(body: &str) -> String {
    format!("{VALID}notify:\n{body}")
}

#[test]
fn no_notify_routes_to_nobody() {
    assert_eq!(parse(VALID).notify, NotifyRoutes::default());
    assert_eq!(parse(&with_notify("  page: []\n")).notify, NotifyRoutes::default());
}

#[test]
fn notify_routes_of_every_kind() {
    let spec = parse(&with_notify(
        "  page: ['slack:#payments-oncall', 'email:oncall@example.com', pagerduty]\n  \
         ticket: ['email:payments@example.com', 'slack:C0123ABCD']\n  \
         freeze: ['slack:#déploiements', 'webhook:deploybot', alertmanager]\n",
    ));
    let expected = NotifyRoutes {
        page: vec![
            Route::Slack { channel: "#payments-oncall".into() },
            Route::Email { to: "oncall@example.com".into() },
            Route::PagerDuty,
        ],
        ticket: vec![Route::Email { to: "payments@example.com".into() }, Route::Slack { channel: "C0123ABCD".into() }],
        freeze: vec![
            Route::Slack { channel: "#déploiements".into() },
            Route::Webhook { name: "deploybot".into() },
            Route::Alertmanager,
        ],
        // Missing data goes where tickets go unless the spec says otherwise.
        no_data: vec![Route::Email { to: "payments@example.com".into() }, Route::Slack { channel: "C0123ABCD".into() }],
    };
    assert_eq!(spec.notify, expected);
    let own = parse(&with_notify("  ticket: ['email:payments@example.com']\n  no_data: ['slack:#sli-health']\n"));
    assert_eq!(own.notify.no_data, vec![Route::Slack { channel: "#sli-health".into() }]);
}

#[test]
fn route_display_is_the_spec_syntax() {
    for text in
        ["slack:#x", "slack:G0123ABCDEF", "email:a.b+c@example.com", "webhook:a_b-1", "alertmanager", "pagerduty"]
    {
        let route: Route = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(route.to_string(), text);
    }
}

#[test]
fn bad_routes() {
    let page = |route: &str| errors_of(&with_notify(&format!("  page: ['{route}']\n")));
    let unknown = |route: &str| {
        format!(
            "11:10: notify.page[0]: unknown route `{route}`: expected slack:#channel, slack:<channel ID>, \
             email:<address>, webhook:<name>, alertmanager or pagerduty"
        )
    };
    assert_eq!(page("sms:+15550100"), [unknown("sms:+15550100")]);
    assert_eq!(page("Slack:#x"), [unknown("Slack:#x")]);
    assert_eq!(page("alertmanager:x"), [unknown("alertmanager:x")]);
    assert_eq!(page("#payments"), [unknown("#payments")]);
    let slack = |channel: &str| {
        format!(
            "11:10: notify.page[0]: invalid Slack channel `{channel}`: expected `#name` (at most 80 lowercase \
             letters, digits, `-` and `_`) or a channel ID such as C0123ABCD"
        )
    };
    assert_eq!(page("slack:payments"), [slack("payments")]);
    assert_eq!(page("slack:#Payments"), [slack("#Payments")]);
    assert_eq!(page("slack:#"), [slack("#")]);
    assert_eq!(page("slack:#pay ments"), [slack("#pay ments")]);
    assert_eq!(page(&format!("slack:#{}", "a".repeat(81))), [slack(&format!("#{}", "a".repeat(81)))]);
    assert_eq!(page("slack:C0123"), [slack("C0123")]);
    assert_eq!(page("email:oncall"), ["11:10: notify.page[0]: invalid email address `oncall`: expected user@domain"]);
    assert_eq!(
        page("email:Oncall <oncall@example.com>"),
        ["11:10: notify.page[0]: invalid email address `Oncall <oncall@example.com>`: invalid user part"]
    );
    assert_eq!(
        page("webhook:Deploy Bot"),
        ["11:10: notify.page[0]: invalid webhook name `Deploy Bot`: use lowercase letters, digits, `_` and `-`"]
    );
    assert_eq!(
        page("webhook:"),
        ["11:10: notify.page[0]: invalid webhook name ``: use lowercase letters, digits, `_` and `-`"]
    );
}

#[test]
fn duplicate_routes_in_one_list() {
    assert_eq!(
        errors_of(&with_notify(
            "  page: [pagerduty, 'slack:#a', pagerduty]\n  ticket: [pagerduty]\n  freeze:\n    - 'slack:#a'\n    \
             - 'slack:#a'\n"
        )),
        [
            "11:33: notify.page[2]: duplicate route `pagerduty`: already listed as notify.page[0]",
            "15:7: notify.freeze[1]: duplicate route `slack:#a`: already listed as notify.freeze[0]",
        ]
    );
}

#[test]
fn notify_unknown_kind_and_wrong_type() {
    assert_eq!(
        errors_of(&with_notify("  warn: [pagerduty]\n")),
        ["11:3: notify.warn: unknown field `warn`, expected one of page, ticket, freeze, no_data"]
    );
    assert_eq!(errors_of(&with_notify("  page: pagerduty\n")), ["11:9: notify.page: expected sequence start"]);
}

#[test]
fn group_by_resolves_labels_and_default_cap() {
    let spec = parse(&valid_with("    window: 30d\n", "    window: 30d\n    group_by: [route, tenant]\n"));
    assert_eq!(spec.slos[0].group_by, ["route", "tenant"]);
    assert_eq!(spec.slos[0].max_groups, 1000);
    let spec = parse(&valid_with("    window: 30d\n", "    window: 30d\n    group_by: [route]\n    max_groups: 50\n"));
    assert_eq!(spec.slos[0].max_groups, 50);
    let spec = parse(VALID);
    assert!(spec.slos[0].group_by.is_empty(), "no group_by: one instance");
}

#[test]
fn group_by_errors_name_the_item() {
    let with = |lines: &str| errors_of(&valid_with("    window: 30d\n", &format!("    window: 30d\n{lines}")));
    assert_eq!(
        with("    group_by: []\n"),
        ["7:15: slos[0].group_by: must list at least one label (omit the field for one instance)"]
    );
    assert_eq!(with("    group_by: [route, route]\n"), ["7:23: slos[0].group_by[1]: `route` is listed twice"]);
    assert_eq!(
        with("    group_by: [__name__]\n"),
        ["7:16: slos[0].group_by[0]: cannot group by `__name__`: an SLI's series differ in their names by design"]
    );
    assert_eq!(
        with("    group_by: [1route]\n"),
        ["7:16: slos[0].group_by[0]: `1route` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"]
    );
    assert_eq!(
        with("    group_by: [route, job]\n"),
        ["7:23: slos[0].group_by[1]: cannot group by `job`: `http_requests_total{job=\"checkout\",code=~\"5..\"}` \
          fixes it, so it cannot tell groups apart"]
    );
    assert_eq!(with("    max_groups: 10\n"), ["7:17: slos[0].max_groups: applies only with `group_by`"]);
    assert_eq!(
        with("    group_by: [route]\n    max_groups: 0\n"),
        ["8:17: slos[0].max_groups: must be a whole number, 1 or more; got 0"]
    );
    assert_eq!(
        with("    group_by: [route]\n    max_groups: 2.5\n"),
        ["8:17: slos[0].max_groups: must be a whole number, 1 or more; got 2.5"]
    );
}

/// VALID with its errors/total SLI replaced by `sli_line` (on line 8).
fn with_sli(sli_line: &str) -> String {
    valid_with(
        "      errors: 'http_requests_total{job=\"checkout\",code=~\"5..\"}'\n      total: 'http_requests_total{job=\"checkout\"}'\n",
        &format!("      {sli_line}\n"),
    )
}

#[test]
fn time_slice_slis() {
    let spec =
        parse(&with_sli("time_slice: { gauge: 'probe_success{job=\"bb\"}', good: '>= 1', slice: 5m, reduce: avg }"));
    let Sli::TimeSlice { gauge, good, slice, reduce } = &spec.slos[0].sli else { panic!("time slice") };
    assert_eq!(gauge.as_str(), r#"probe_success{job="bb"}"#);
    assert_eq!((good.op, good.value, *slice, *reduce), (CompareOp::Ge, 1.0, minutes(5), Reduce::Avg));
    let spec = parse(&with_sli("time_slice: { gauge: 'probe_duration_seconds', good: '<0.5', slice: 1m }"));
    let Sli::TimeSlice { good, reduce, .. } = &spec.slos[0].sli else { panic!("time slice") };
    assert_eq!((good.op, good.value, *reduce), (CompareOp::Lt, 0.5, Reduce::Min), "reduce defaults to min");
    assert!(good.holds(0.49) && !good.holds(0.5));

    let slice_rule = "must be a whole number of minutes that divides 60 (1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, \
                      20m, 30m, 60m)";
    for (sli, expected) in [
        (
            "time_slice: { gauge: 'probe_success', good: '>= 1', slice: 7m }",
            format!("8:66: slos[0].sli.time_slice.slice: {slice_rule}; got `7m`"),
        ),
        (
            "time_slice: { gauge: 'probe_success', good: '>= 1', slice: 90s }",
            format!("8:66: slos[0].sli.time_slice.slice: {slice_rule}; got `90s`"),
        ),
        (
            "time_slice: { gauge: 'probe_success', good: 'up', slice: 1m }",
            "8:51: slos[0].sli.time_slice.good: must be a comparison (>=, >, <=, <, ==, !=) and a number, e.g. \
             `>= 1`; got `up`"
                .to_string(),
        ),
        (
            "time_slice: { gauge: 'probe_success', good: '>= 1', slice: 1m, reduce: p99 }",
            "8:78: slos[0].sli.time_slice.reduce: must be one of min, max, avg; got `p99`".to_string(),
        ),
        (
            "time_slice: { gauge: 'probe_success', slice: 1m }",
            "8:19: slos[0].sli.time_slice.good: missing required field".to_string(),
        ),
    ] {
        assert_eq!(errors_of(&with_sli(sli)), [expected], "{sli}");
    }
}
