//! Which selectors a new series could match, without testing every selector.
//!
//! A fleet's specs typically select one metric (`http_requests_total`) and tell services apart
//! by an equality matcher (`job="checkout"`). Testing each new series against every selector
//! on its metric is then quadratic: 10,000 SLOs meeting a 50k-series scrape would be 10^9
//! matcher tests. So selectors are filed by metric name, then by one `label="value"` matcher,
//! and a series is tested only against the selectors filed under its own values. Selectors
//! with no such matcher (only `!=`, regexes, or an empty value) are tested against every series
//! of their metric, as before.

use std::collections::HashMap;

use crate::selector::{LabelSet, Selector};

use super::Feed;

/// Every SLI selector of an engine, filed for lookup by a new series.
#[derive(Debug, Clone, Default)]
pub(super) struct SelectorIndex {
    by_metric: HashMap<String, Filed>,
    /// Selectors that pin no metric name (`{job="x"}`).
    unpinned: Filed,
}

/// Selectors filed under one label's values.
type ByValue = HashMap<String, Vec<(Selector, Feed)>>;

/// Selectors of one metric name (or of none).
#[derive(Debug, Clone, Default)]
struct Filed {
    /// By label name, then by the value the selector requires; few label names per metric.
    by_label: Vec<(String, ByValue)>,
    /// Selectors with no non-empty equality matcher.
    rest: Vec<(Selector, Feed)>,
}

impl SelectorIndex {
    pub(super) fn insert(&mut self, selector: &Selector, feed: Feed) {
        let filed = match selector.metric_name() {
            Some(name) => self.by_metric.entry(name.to_string()).or_default(),
            None => &mut self.unpinned,
        };
        filed.insert(selector, feed);
    }

    /// The feeds of every selector that matches `name{labels}`.
    pub(super) fn matching<L: LabelSet + ?Sized>(&self, name: &str, labels: &L) -> Vec<Feed> {
        let mut feeds = Vec::new();
        for filed in self.by_metric.get(name).into_iter().chain([&self.unpinned]) {
            filed.collect(name, labels, &mut feeds);
        }
        feeds
    }
}

impl Filed {
    fn insert(&mut self, selector: &Selector, feed: Feed) {
        let entry = (selector.clone(), feed);
        let equalities: Vec<(&str, &str)> = selector.label_equalities().collect();
        if equalities.is_empty() {
            self.rest.push(entry);
            return;
        }
        // File under a label name already in use when the selector has one, so a lookup reads
        // as few labels of the series as possible (typically just `job` or `service`).
        let position = equalities.iter().find_map(|(label, _)| self.by_label.iter().position(|(l, _)| l == label));
        let (position, value) = match position {
            Some(p) => {
                let value = equalities.iter().find(|(label, _)| *label == self.by_label[p].0).map(|&(_, v)| v);
                (p, value.expect("the label was found among the equalities"))
            }
            None => {
                let (label, value) = equalities[0];
                self.by_label.push((label.to_string(), HashMap::new()));
                (self.by_label.len() - 1, value)
            }
        };
        self.by_label[position].1.entry(value.to_string()).or_default().push(entry);
    }

    fn collect<L: LabelSet + ?Sized>(&self, name: &str, labels: &L, feeds: &mut Vec<Feed>) {
        let filed_under_values = self.by_label.iter().filter_map(|(label, by_value)| {
            let value = labels.label(label)?;
            by_value.get(value.as_ref())
        });
        for (selector, feed) in filed_under_values.flatten().chain(&self.rest) {
            if selector.matches(name, labels) {
                feeds.push(*feed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::UNBOUND;

    /// The index must find exactly what testing every selector finds: filing under one
    /// equality may narrow the candidates, never drop a match.
    #[test]
    fn finds_exactly_what_testing_every_selector_finds() {
        let texts = [
            r#"req{job="a"}"#,
            r#"req{job="a",code="500"}"#,
            r#"req{code="500",job="b"}"#,
            r#"req{code="500"}"#,
            r#"req{team="x",job!="a"}"#,
            r#"req{job=~"a|b"}"#,
            r#"req{job!="a"}"#,
            r#"req{job="",code="200"}"#,
            r#"req"#,
            r#"other{job="a"}"#,
            r#"{job="a"}"#,
            r#"{__name__=~"req|other",code="500"}"#,
        ];
        let selectors: Vec<Selector> = texts.iter().map(|t| Selector::parse(t).expect(t)).collect();
        let mut index = SelectorIndex::default();
        for (i, selector) in selectors.iter().enumerate() {
            index.insert(selector, Feed { slo: UNBOUND, slot: 0, family: i as u32, group: 0 });
        }
        let mut checked = 0;
        for name in ["req", "other", "third"] {
            for job in [None, Some("a"), Some("b"), Some("")] {
                for code in [None, Some("500"), Some("200")] {
                    for team in [None, Some("x")] {
                        let labels: Vec<(String, String)> = [("job", job), ("code", code), ("team", team)]
                            .into_iter()
                            .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
                            .collect();
                        let mut found: Vec<u32> =
                            index.matching(name, labels.as_slice()).iter().map(|f| f.family).collect();
                        found.sort_unstable();
                        let expected: Vec<u32> = (0..selectors.len() as u32)
                            .filter(|&i| selectors[i as usize].matches(name, labels.as_slice()))
                            .collect();
                        assert_eq!(found, expected, "{name}{labels:?}");
                        checked += usize::from(!expected.is_empty());
                    }
                }
            }
        }
        assert!(checked > 30, "the cases should mostly select something, selected {checked}");
    }
}
