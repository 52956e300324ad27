//! Raw serde mirror of a spec file: exactly what the YAML says, with source positions, and no
//! meaning attached. `load` turns it into the validated types; nothing else may see these types.
//!
//! Every value is wrapped in `Spanned` so `load` can point at it. Fields a valid spec requires are
//! still `Option` here: a missing field is then reported by `load` together with every other
//! problem in the file, at the position of the mapping that lacks it, instead of stopping
//! deserialization at the first gap. `deny_unknown_fields` is on everywhere, so a typo such as
//! `objetive:` is an error rather than a silently ignored key.
//!
//! The format (see `slo-specs/README.md` for the full reference):
//!
//! ```yaml
//! service: checkout                # required, unique across all loaded files
//! owner: payments-team             # optional
//! slos:                            # required, non-empty
//!   - name: availability           # required, unique within the service
//!     objective: 99.9              # percent good, integer or decimal, in (0, 100)
//!     window: 30d                  # Prometheus duration, >= 1m, or a calendar period:
//!                                  # { calendar: week | month | quarter, time_zone: UTC }
//!     runbook: https://wiki/x      # optional
//!     group_by: [route]            # optional: one SLO instance per value of these labels
//!     max_groups: 1000             # optional, with group_by: new groups beyond it are refused
//!     sli:                         # exactly one of errors/good, plus total; or latency:
//!                                  # { histogram: 'h{job="x"}', threshold: 300ms }
//!       errors: 'http_requests_total{job="checkout",code=~"5.."}'
//!       total: 'http_requests_total{job="checkout"}'
//!     alerting:                    # optional: override alert tiers
//!       page:                      # a list replaces the page tier's default conditions
//!         - { long: 1h, short: 5m, burn: 14.4 }
//!         - { long: 6h, short: 30m, burn: 6 }
//!       ticket: disabled           # `disabled` drops the tier; an omitted tier keeps the
//!                                  # SRE Workbook default
//!       min_events: 100            # a condition needs >= 100 events in its long window (0)
//!       min_bad_events: 3          # ... and >= 3 bad ones (0)
//!       inhibit: true              # no ticket while the page fires (true)
//!       no_data: 15m               # no_data event after this silence, or `disabled` (15m)
//! policy:                          # optional; every key defaults to `Policy::default()`
//!   freeze_below: 0%               # `N%` or a bare number meaning percent
//!   unfreeze_above: 10%            # >= freeze_below
//!   warn_below: 25%                # >= freeze_below
//!   freeze_on_page: true
//!   allow_during_freeze: [hotfix, security]   # change classes, [a-z0-9][a-z0-9_-]*
//!   postmortem_above: 20%
//!   min_coverage: 1d               # a budget freeze needs this much data in the window
//! notify:                          # optional; routes per kind, each list optional
//!   page: ["slack:#payments-oncall", "email:oncall@example.com"]
//!   ticket: ["email:payments@example.com"]
//!   freeze: ["slack:#deploys", "webhook:deploybot", alertmanager, pagerduty]
//!   no_data: ["email:payments@example.com"]   # default: the ticket routes
//! source:                          # optional here; the daemon requires it
//!   scrape:                        # exactly one of scrape / prometheus
//!     targets: ["http://127.0.0.1:8080/metrics"]
//!     interval: 15s                # scrape: 15s, prometheus: 30s by default
//!     timeout: 5s                  # default min(10s, interval)
//!     headers: { X-Scope-OrgID: tenant-a }
//!     headers_env: { X-Api-Key: API_KEY }   # header name -> env var holding the value
//!     bearer_token_env: TOKEN      # or bearer_token_file: /path
//!     max_body_size: 16MiB         # B KiB MiB GiB
//!     sample_limit: 50000          # scrape only: more samples than this is no data (0: none)
//!     tls: { ca_file: /etc/ssl/ca.pem, insecure_skip_verify: false }
//!   # prometheus: { url: http://prometheus:9090, ...same options, no targets }
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One spec file: one service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub service: Option<Spanned<String>>,
    pub owner: Option<Spanned<String>>,
    pub slos: Option<Spanned<Vec<Spanned<RawSlo>>>>,
    pub policy: Option<Spanned<RawPolicy>>,
    pub source: Option<Spanned<RawSource>>,
    pub notify: Option<Spanned<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlo {
    pub name: Option<Spanned<String>>,
    pub objective: Option<Spanned<f64>>,
    pub window: Option<Spanned<RawWindow>>,
    pub runbook: Option<Spanned<String>>,
    pub group_by: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_groups: Option<Spanned<f64>>,
    pub sli: Option<Spanned<RawSli>>,
    pub alerting: Option<Spanned<RawAlerting>>,
}

/// A rolling window (`30d`) or a calendar period (`{calendar: month, time_zone: ...}`).
#[derive(Debug)]
pub(super) enum RawWindow {
    Rolling(String),
    Calendar(RawCalendar),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCalendar {
    pub calendar: Option<Spanned<String>>,
    pub time_zone: Option<Spanned<String>>,
}

/// Both shapes of SLI in one struct, so "both or neither of errors/good" is a validation error
/// with a position rather than an opaque "did not match any variant" from an untagged enum.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSli {
    pub errors: Option<Spanned<String>>,
    pub good: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
    pub latency: Option<Spanned<RawLatency>>,
    pub time_slice: Option<Spanned<RawTimeSlice>>,
}

/// `time_slice: {gauge, good, slice, reduce}`: each slice's reduced gauge value is good or bad.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeSlice {
    pub gauge: Option<Spanned<String>>,
    pub good: Option<Spanned<String>>,
    pub slice: Option<Spanned<String>>,
    pub reduce: Option<Spanned<String>>,
}

/// `latency: {histogram, threshold}`: good = the histogram's bucket at the threshold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLatency {
    pub histogram: Option<Spanned<String>>,
    pub threshold: Option<Spanned<String>>,
}

/// Per-severity overrides; an omitted severity keeps its default tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerting {
    pub page: Option<Spanned<RawTier>>,
    pub ticket: Option<Spanned<RawTier>>,
    pub min_events: Option<Spanned<f64>>,
    pub min_bad_events: Option<Spanned<f64>>,
    pub inhibit: Option<Spanned<bool>>,
    pub no_data: Option<Spanned<String>>,
}

/// A tier override: a list of conditions, or a word (which `load` requires to be `disabled`).
#[derive(Debug)]
pub(super) enum RawTier {
    Word(String),
    Conditions(Vec<Spanned<RawCondition>>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub long: Option<Spanned<String>>,
    pub short: Option<Spanned<String>>,
    pub burn: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub freeze_below: Option<Spanned<RawPercent>>,
    pub unfreeze_above: Option<Spanned<RawPercent>>,
    pub warn_below: Option<Spanned<RawPercent>>,
    pub freeze_on_page: Option<Spanned<bool>>,
    pub allow_during_freeze: Option<Spanned<Vec<Spanned<String>>>>,
    pub postmortem_above: Option<Spanned<RawPercent>>,
    pub min_coverage: Option<Spanned<String>>,
}

/// Route lists as written; `route` parses them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub page: Option<Spanned<Vec<Spanned<String>>>>,
    pub ticket: Option<Spanned<Vec<Spanned<String>>>>,
    pub freeze: Option<Spanned<Vec<Spanned<String>>>>,
    pub no_data: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Both source kinds in one struct, so "both or neither" is a validation error with a position,
/// as for `sli`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub scrape: Option<Spanned<RawScrape>>,
    pub prometheus: Option<Spanned<RawPrometheus>>,
}

// `RawScrape` and `RawPrometheus` repeat the shared keys instead of `#[serde(flatten)]`ing a
// common struct: flatten buffers its input as `untagged` does, losing positions, and serde does
// not support it together with `deny_unknown_fields`. `RawEndpoint` gives `load` one view of both.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScrape {
    pub targets: Option<Spanned<Vec<Spanned<String>>>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub headers: Option<Spanned<RawPairs>>,
    pub headers_env: Option<Spanned<RawPairs>>,
    pub bearer_token_env: Option<Spanned<String>>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub max_body_size: Option<Spanned<String>>,
    pub sample_limit: Option<Spanned<f64>>,
    pub tls: Option<Spanned<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrometheus {
    pub url: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub headers: Option<Spanned<RawPairs>>,
    pub headers_env: Option<Spanned<RawPairs>>,
    pub bearer_token_env: Option<Spanned<String>>,
    pub bearer_token_file: Option<Spanned<String>>,
    pub max_body_size: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// The keys both source kinds share, borrowed from either.
pub(super) struct RawEndpoint<'r> {
    pub interval: &'r Option<Spanned<String>>,
    pub timeout: &'r Option<Spanned<String>>,
    pub headers: &'r Option<Spanned<RawPairs>>,
    pub headers_env: &'r Option<Spanned<RawPairs>>,
    pub bearer_token_env: &'r Option<Spanned<String>>,
    pub bearer_token_file: &'r Option<Spanned<String>>,
    pub max_body_size: &'r Option<Spanned<String>>,
    pub tls: &'r Option<Spanned<RawTls>>,
}

impl RawScrape {
    pub fn endpoint(&self) -> RawEndpoint<'_> {
        let RawScrape {
            targets: _,
            sample_limit: _,
            interval,
            timeout,
            headers,
            headers_env,
            bearer_token_env,
            bearer_token_file,
            max_body_size,
            tls,
        } = self;
        RawEndpoint { interval, timeout, headers, headers_env, bearer_token_env, bearer_token_file, max_body_size, tls }
    }
}

impl RawPrometheus {
    pub fn endpoint(&self) -> RawEndpoint<'_> {
        let RawPrometheus {
            url: _,
            interval,
            timeout,
            headers,
            headers_env,
            bearer_token_env,
            bearer_token_file,
            max_body_size,
            tls,
        } = self;
        RawEndpoint { interval, timeout, headers, headers_env, bearer_token_env, bearer_token_file, max_body_size, tls }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub ca_file: Option<Spanned<String>>,
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

/// A mapping of names to values in file order, with both positions: header names to values (or
/// to environment variable names) here, webhook names to their settings in `sloguard.yaml`. A
/// `HashMap` would lose the order and the key positions.
#[derive(Debug)]
pub(crate) struct RawMap<V>(pub Vec<(Spanned<String>, Spanned<V>)>);

/// Header names to values, or to the names of environment variables holding them.
pub(super) type RawPairs = RawMap<String>;

/// A percentage as written: `10%` or `'10'` arrive as text, a bare `10` or `2.5` as a number.
#[derive(Debug)]
pub(super) enum RawPercent {
    Number(f64),
    Text(String),
}

// The two enums above are hand-deserialized rather than `#[serde(untagged)]`: untagged enums
// buffer their input, which loses `Spanned` positions inside them and replaces the real type
// error with "data did not match any variant".

impl<'de> Deserialize<'de> for RawWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowVisitor;
        impl<'de> Visitor<'de> for WindowVisitor {
            type Value = RawWindow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30d` or `{calendar: month, time_zone: UTC}`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawWindow, E> {
                Ok(RawWindow::Rolling(text.to_string()))
            }
            // A bare number is a duration missing its unit: `load` says so, at the value.
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<RawWindow, E> {
                Ok(RawWindow::Rolling(number.to_string()))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<RawWindow, E> {
                Ok(RawWindow::Rolling(number.to_string()))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<RawWindow, E> {
                Ok(RawWindow::Rolling(number.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawWindow, A::Error> {
                RawCalendar::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawWindow::Calendar)
            }
        }
        deserializer.deserialize_any(WindowVisitor)
    }
}

impl<'de> Deserialize<'de> for RawTier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TierVisitor;
        impl<'de> Visitor<'de> for TierVisitor {
            type Value = RawTier;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of {long, short, burn} conditions or the string `disabled`")
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<RawTier, E> {
                Ok(RawTier::Word(word.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTier, A::Error> {
                let mut conditions = Vec::new();
                while let Some(condition) = seq.next_element()? {
                    conditions.push(condition);
                }
                Ok(RawTier::Conditions(conditions))
            }
        }
        deserializer.deserialize_any(TierVisitor)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for RawMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = RawMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMap<V>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(RawMap(pairs))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawPercent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PercentVisitor;
        impl Visitor<'_> for PercentVisitor {
            type Value = RawPercent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as `10%`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawPercent, E> {
                Ok(RawPercent::Text(text.to_string()))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<RawPercent, E> {
                Ok(RawPercent::Number(number))
            }
            // YAML integers arrive as i64/u64. Any sane percentage converts exactly; an absurd
            // one only needs to stay absurd for the range check in `load`.
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<RawPercent, E> {
                Ok(RawPercent::Number(number as f64))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<RawPercent, E> {
                Ok(RawPercent::Number(number as f64))
            }
        }
        deserializer.deserialize_any(PercentVisitor)
    }
}
