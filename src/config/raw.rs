//! Raw serde mirror of `sloguard.yaml`, as `spec::raw` is of a spec: positions kept, required
//! fields still optional so all missing ones are reported together, unknown keys refused.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::spec::RawMap;

/// A list of strings as written, each with its position.
pub(super) type RawList = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    pub specs: Option<Spanned<RawPaths>>,
    pub evaluation_interval: Option<Spanned<String>>,
    pub flush_interval: Option<Spanned<String>>,
    pub event_retention: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub public_url: Option<Spanned<String>>,
    pub api: Option<Spanned<RawApi>>,
    pub notifiers: Option<Spanned<RawNotifiers>>,
    pub delivery: Option<Spanned<RawDelivery>>,
    pub reports: Option<Spanned<Vec<Spanned<RawReport>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub header_timeout: Option<Spanned<String>>,
    pub body_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<u64>>,
    pub max_body_size: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifiers {
    pub slack: Option<Spanned<RawSlack>>,
    pub email: Option<Spanned<RawEmail>>,
    /// Webhook names to settings, in file order with the names' positions.
    pub webhooks: Option<Spanned<RawMap<RawWebhook>>>,
    pub alertmanager: Option<Spanned<RawAlertmanager>>,
    pub pagerduty: Option<Spanned<RawPagerDuty>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlack {
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub api_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    pub url: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub url: Option<Spanned<String>>,
    /// For URLs that carry a token (Slack-style incoming webhooks): the URL as a secret.
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub hmac_secret_env: Option<Spanned<String>>,
    pub hmac_secret_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPagerDuty {
    pub routing_key_env: Option<Spanned<String>>,
    pub routing_key_file: Option<Spanned<String>>,
    pub api_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub repeat_interval: Option<Spanned<String>>,
    pub fallback_after: Option<Spanned<String>>,
    pub fallback: Option<RawList>,
    pub max_backoff: Option<Spanned<String>>,
    pub per_destination_per_minute: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub schedule: Option<Spanned<String>>,
    pub to: Option<RawList>,
    pub services: Option<RawList>,
}

/// `specs:` as one path or a list. Hand-deserialized rather than `#[serde(untagged)]`, which
/// would lose the list items' positions and replace type errors with "did not match any variant".
#[derive(Debug)]
pub(super) enum RawPaths {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathsVisitor;
        impl<'de> Visitor<'de> for PathsVisitor {
            type Value = RawPaths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<RawPaths, E> {
                Ok(RawPaths::One(path.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPaths, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element()? {
                    paths.push(path);
                }
                Ok(RawPaths::Many(paths))
            }
        }
        deserializer.deserialize_any(PathsVisitor)
    }
}
