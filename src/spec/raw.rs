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
//!     window: 30d                  # Prometheus duration, >= 1m
//!     runbook: https://wiki/x      # optional
//!     sli:                         # exactly one of errors/good, plus total
//!       errors: 'http_requests_total{job="checkout",code=~"5.."}'
//!       total: 'http_requests_total{job="checkout"}'
//!     alerting:                    # optional: override alert tiers
//!       page:                      # a list replaces the page tier's default conditions
//!         - { long: 1h, short: 5m, burn: 14.4 }
//!         - { long: 6h, short: 30m, burn: 6 }
//!       ticket: disabled           # `disabled` drops the tier; an omitted tier keeps the
//!                                  # SRE Workbook default
//! policy:                          # optional; defaults 0% / 10%
//!   freeze_below: 0%               # `N%` or a bare number meaning percent
//!   unfreeze_above: 10%
//! ```

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One spec file: one service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub service: Option<Spanned<String>>,
    pub owner: Option<Spanned<String>>,
    pub slos: Option<Spanned<Vec<Spanned<RawSlo>>>>,
    pub policy: Option<Spanned<RawPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlo {
    pub name: Option<Spanned<String>>,
    pub objective: Option<Spanned<f64>>,
    pub window: Option<Spanned<String>>,
    pub runbook: Option<Spanned<String>>,
    pub sli: Option<Spanned<RawSli>>,
    pub alerting: Option<Spanned<RawAlerting>>,
}

/// Both shapes of SLI in one struct, so "both or neither of errors/good" is a validation error
/// with a position rather than an opaque "did not match any variant" from an untagged enum.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSli {
    pub errors: Option<Spanned<String>>,
    pub good: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
}

/// Per-severity overrides; an omitted severity keeps its default tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerting {
    pub page: Option<Spanned<RawTier>>,
    pub ticket: Option<Spanned<RawTier>>,
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
}

/// A percentage as written: `10%` or `'10'` arrive as text, a bare `10` or `2.5` as a number.
#[derive(Debug)]
pub(super) enum RawPercent {
    Number(f64),
    Text(String),
}

// The two enums above are hand-deserialized rather than `#[serde(untagged)]`: untagged enums
// buffer their input, which loses `Spanned` positions inside them and replaces the real type
// error with "data did not match any variant".

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
