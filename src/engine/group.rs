//! SLO families: an SLO as the spec declares it, and its instances, one per group.
//!
//! An SLO without `group_by` is a family of one instance that exists from the start. With
//! `group_by`, every distinct tuple of the group labels' values among the SLI's series is a
//! group; a group gets its instance (a `SloState` cloned from the family's prototype) at its
//! first sample, up to `max_groups`, and loses it after a whole window without a sample.
//! Missing data is judged per family: all its instances together.

use std::collections::HashMap;

use super::{Event, EventKind, Group, NoDataChange, SloState};
use crate::clock::Millis;
use crate::exposition::escape_label_value;
use crate::selector::LabelSet;

/// One SLO of a spec and the instances it has now.
#[derive(Debug, Clone)]
pub(super) struct Family {
    /// `service/name`.
    pub id: String,
    /// The SLO's name within its service (what corrections name).
    pub name: String,
    pub service: usize,
    /// Empty for an ungrouped SLO, whose only group is `groups[0]`.
    pub group_by: Box<[String]>,
    pub max_groups: usize,
    /// What a new instance starts as: empty counters, no alert firing.
    pub prototype: Box<SloState>,
    pub groups: Vec<GroupSlot>,
    /// Group label values to index in `groups`.
    index: HashMap<Box<[String]>, u32>,
    pub n_instances: usize,
    /// Silence after which the family is in `no_data`; `None` when that is turned off.
    pub no_data_after: Option<Millis>,
    /// While in `no_data`: the last sample's instant.
    pub no_data_since: Option<Millis>,
    /// The latest sample of any instance, kept across evictions.
    pub last_sample: Option<Millis>,
}

/// One tuple of group label values.
#[derive(Debug, Clone)]
pub(super) struct GroupSlot {
    pub values: Box<[String]>,
    /// Index into `Engine::slos` while the group has an instance.
    pub instance: Option<u32>,
    /// Refused for `max_groups` since it last had an instance: counted once, not per sample.
    pub refused: bool,
}

impl Family {
    pub fn new(
        id: String,
        name: String,
        service: usize,
        group_by: &[String],
        max_groups: usize,
        prototype: SloState,
    ) -> Family {
        let mut family = Family {
            id,
            name,
            service,
            group_by: group_by.into(),
            max_groups,
            prototype: Box::new(prototype),
            groups: Vec::new(),
            index: HashMap::new(),
            n_instances: 0,
            no_data_after: None,
            no_data_since: None,
            last_sample: None,
        };
        if group_by.is_empty() {
            family.group(Box::new([]));
        }
        family
    }

    pub fn grouped(&self) -> bool {
        !self.group_by.is_empty()
    }

    /// The group of a series with these labels (a missing label is `""`).
    pub fn group_of<L: LabelSet + ?Sized>(&mut self, labels: &L) -> u32 {
        if !self.grouped() {
            return 0;
        }
        let values: Box<[String]> =
            self.group_by.iter().map(|l| labels.label(l).map(|v| v.into_owned()).unwrap_or_default()).collect();
        self.group(values)
    }

    /// The group with these values, added if new.
    pub fn group(&mut self, values: Box<[String]>) -> u32 {
        if let Some(&g) = self.index.get(&values) {
            return g;
        }
        let g = self.groups.len() as u32;
        self.index.insert(values.clone(), g);
        self.groups.push(GroupSlot { values, instance: None, refused: false });
        g
    }

    /// An instance's labels for events and views; `None` for an ungrouped SLO.
    pub fn group_labels(&self, group: u32) -> Option<Group> {
        self.grouped().then(|| {
            Group(self.group_by.iter().cloned().zip(self.groups[group as usize].values.iter().cloned()).collect())
        })
    }

    /// `no_data` once every series of every instance has been silent for `no_data_after`, and
    /// `data_returned` at the first instant with a newer sample. A family that never had a
    /// sample is not in `no_data`: a new SLO waiting for its first scrape is not an outage.
    pub fn evaluate_no_data(&mut self, now: Millis, service: &str, events: &mut Vec<Event>) {
        let (Some(after), Some(last)) = (self.no_data_after, self.last_sample) else { return };
        let silent = now - last >= after;
        let kind = match (silent, self.no_data_since) {
            (true, None) => {
                self.no_data_since = Some(last);
                EventKind::NoData(self.no_data_change(service, last))
            }
            (false, Some(since)) => {
                self.no_data_since = None;
                EventKind::DataReturned(self.no_data_change(service, since))
            }
            _ => return,
        };
        events.push(Event { at: now, kind });
    }

    fn no_data_change(&self, service: &str, since: Millis) -> NoDataChange {
        NoDataChange { slo: self.id.clone(), service: service.to_string(), since }
    }

    /// `service/name{l1="v1",l2="v2"}` for a grouped family, `service/name` otherwise.
    pub fn instance_id(&self, group: u32) -> String {
        if !self.grouped() {
            return self.id.clone();
        }
        let mut id = format!("{}{{", self.id);
        for (i, (label, value)) in self.group_by.iter().zip(&self.groups[group as usize].values).enumerate() {
            if i > 0 {
                id.push(',');
            }
            id.push_str(label);
            id.push_str("=\"");
            id.push_str(&escape_label_value(value));
            id.push('"');
        }
        id.push('}');
        id
    }

    /// The group values an instance id of this family names, the inverse of `instance_id`;
    /// `None` if the id is not one of this family's (other labels, another SLO).
    pub fn parse_instance_id(&self, id: &str) -> Option<Box<[String]>> {
        let mut rest = id.strip_prefix(self.id.as_str())?.strip_prefix('{')?.strip_suffix('}')?;
        let mut values = Vec::with_capacity(self.group_by.len());
        for (i, label) in self.group_by.iter().enumerate() {
            if i > 0 {
                rest = rest.strip_prefix(',')?;
            }
            rest = rest.strip_prefix(label.as_str())?.strip_prefix("=\"")?;
            let (value, after) = unescape_quoted(rest)?;
            values.push(value);
            rest = after;
        }
        rest.is_empty().then(|| values.into())
    }
}

/// Reads an escaped string up to its closing quote: the value and what follows the quote.
fn unescape_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                escaped => value.push(escaped),
            },
            c => value.push(c),
        }
    }
    None
}
