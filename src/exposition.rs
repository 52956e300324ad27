//! Prometheus text exposition parser. STUB: owned by the parser helper.
use std::borrow::Cow;

use crate::selector::LabelSet;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// Metric name and label block exactly as written, e.g. `up{job="a"}`: the series' identity
    /// within one source.
    pub series: &'a str,
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labels<'a> {
    raw: &'a str,
}

impl LabelSet for Labels<'_> {
    fn label(&self, _name: &str) -> Option<Cow<'_, str>> {
        todo!()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

pub fn parse_strict(_input: &[u8]) -> Result<Vec<Sample<'_>>, ParseError> {
    todo!()
}

pub struct Lenient<'a> {
    pub samples: Vec<Sample<'a>>,
    pub errors: Vec<ParseError>,
}

pub fn parse_lenient(_input: &[u8]) -> Lenient<'_> {
    todo!()
}
