//! PromQL instant-vector selectors: `metric{label="v", other=~"re"}`.
//!
//! STUB: owned by the spec/selector helper; signatures are the contract the engine relies on.

use std::borrow::Cow;

/// Anything a selector can read labels from: a parsed exposition sample, a Prometheus API result.
pub trait LabelSet {
    /// The unescaped value of label `name`, or `None` when the series lacks it.
    fn label(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl LabelSet for [(String, String)] {
    fn label(&self, name: &str) -> Option<Cow<'_, str>> {
        self.iter().find(|(k, _)| k == name).map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid selector: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        Ok(Selector { text: text.to_string() })
    }
    /// The metric name the selector is pinned to (`metric{...}` or `{__name__="metric"}`), used
    /// to index selectors so a sample is only matched against selectors that can match it.
    pub fn metric_name(&self) -> Option<&str> {
        todo!()
    }
    pub fn matches(&self, _name: &str, _labels: &dyn LabelSet) -> bool {
        todo!()
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}
