//! What the engine tells its drivers: state changes, with the figures an engineer needs to trust
//! them. Serialized as one JSON object per event (replay's stdout, the daemon's event log).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};

/// One state change at an evaluation instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "rfc3339_millis")]
    pub at: Millis,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    AlertFiring(AlertChange),
    AlertResolved(AlertChange),
    Freeze(FreezeChange),
    Unfreeze(FreezeChange),
    /// Every series of an SLO has been silent for its `alerting.no_data`.
    NoData(NoDataChange),
    /// A sample arrived for an SLO in `no_data`.
    DataReturned(NoDataChange),
}

impl Event {
    /// The service this event concerns.
    pub fn service(&self) -> &str {
        match &self.kind {
            EventKind::AlertFiring(a) | EventKind::AlertResolved(a) => &a.service,
            EventKind::Freeze(f) | EventKind::Unfreeze(f) => &f.service,
            EventKind::NoData(n) | EventKind::DataReturned(n) => &n.service,
        }
    }

    /// The event name as it appears in JSON (`alert_firing`, `freeze`, ...).
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::AlertFiring(_) => "alert_firing",
            EventKind::AlertResolved(_) => "alert_resolved",
            EventKind::Freeze(_) => "freeze",
            EventKind::Unfreeze(_) => "unfreeze",
            EventKind::NoData(_) => "no_data",
            EventKind::DataReturned(_) => "data_returned",
        }
    }
}

/// An alert tier of one SLO started or stopped firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    /// `service/name`, or for an instance of a grouped SLO `service/name{route="/pay"}`.
    pub slo: String,
    /// The instance's group labels, for a grouped SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    pub service: String,
    /// `page` or `ticket`.
    pub severity: String,
    /// The window pair whose burn crossed its factor (firing), or the pair that fired (resolved).
    pub condition: ConditionReport,
    /// Burn rate per window at this instant; `null` where the window holds no traffic.
    pub burn_rates: BTreeMap<String, Option<f64>>,
    /// Fraction of the error budget left over the SLO window (negative when overspent).
    pub budget_remaining: Option<f64>,
    /// Seconds until the budget is gone at the current burn; `null` when not burning.
    pub time_to_exhaustion_s: Option<f64>,
    /// When the alert started firing (on resolve: how long it fired is `at - since`).
    #[serde(with = "rfc3339_millis")]
    pub since: Millis,
    /// On resolve: how much budget the incident burned, and whether that calls for a postmortem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<Postmortem>,
    /// On a ticket's resolve: `page` when the ticket's own conditions still hold but its page
    /// fired, which speaks for the incident from now on (`alerting.inhibit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited_by: Option<String>,
}

/// A grouped SLO instance's label values in `group_by` order; a JSON object in that order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group(pub Vec<(String, String)>);

impl Serialize for Group {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (label, value) in &self.0 {
            map.serialize_entry(label, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Group {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Group, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Group;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of label values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Group, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Group(pairs))
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// An SLO's data stopped or came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoDataChange {
    /// `service/name`: the SLO as a whole, all its series together.
    pub slo: String,
    pub service: String,
    /// The last sample's instant before the silence.
    #[serde(with = "rfc3339_millis")]
    pub since: Millis,
}

/// The SRE Workbook's example policy: an incident that burned more than a set share of the
/// budget (20% by default) gets a postmortem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Postmortem {
    /// Fraction of the SLO window's budget spent by bad events from the start of the detection
    /// window that fired (`since` minus the long window) to the resolve.
    pub budget_burned: f64,
    pub required: bool,
    pub threshold: f64,
}

/// A window pair and the burn rates that were compared with its factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionReport {
    pub long: String,
    pub short: String,
    pub factor: f64,
    pub long_burn: Option<f64>,
    pub short_burn: Option<f64>,
}

/// A service froze or unfroze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeChange {
    pub service: String,
    /// On freeze: the SLOs whose budget crossed `freeze_below`. On unfreeze: empty.
    pub frozen_by: Vec<SloBudget>,
    /// Every SLO's remaining budget at this instant.
    pub budgets: Vec<SloBudget>,
    pub freeze_below: f64,
    pub unfreeze_above: f64,
    /// When the freeze began (equals `at` on freeze).
    #[serde(with = "rfc3339_millis")]
    pub since: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloBudget {
    pub slo: String,
    pub budget_remaining: Option<f64>,
}

/// Serializes instants as RFC 3339 so every consumer (replay, API, store) reads the same text.
pub(crate) mod rfc3339_millis {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use crate::clock::Millis;

    pub fn serialize<S: Serializer>(at: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        let t = OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)?;
        Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis)
    }
}
