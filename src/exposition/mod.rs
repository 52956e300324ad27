//! Prometheus text exposition format (0.0.4, plus OpenMetrics' `# EOF`) parser.
//!
//! Owns turning a scrape body into [`Sample`]s that borrow from it: names, the series text and
//! raw label values are slices of the input, and label values are unescaped only when read.
//! It knows nothing about metric types, SLOs, targets or I/O; callers decide what a bad line
//! means ([`parse_strict`] rejects the input, [`parse_lenient`] reports the line and goes on).

use std::borrow::Cow;
use std::ops::Range;

use crate::selector::LabelSet;

#[cfg(test)]
mod tests;

/// One sample line, borrowed from the input it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// Metric name and label block exactly as written, e.g. `up{job="a"}`: the series' identity
    /// within one source.
    pub series: &'a str,
    /// The metric name, e.g. `http_requests_total` or `job:errors:rate5m`.
    pub name: &'a str,
    pub labels: Labels<'a>,
    /// The sample value; NaN and ±Inf are valid values, not errors.
    pub value: f64,
    /// The optional timestamp in milliseconds since the Unix epoch, as written by the exporter.
    pub timestamp_ms: Option<i64>,
}

/// The label block of one sample, kept as written and decoded on demand. A selector reads one
/// or two labels of the few series it matches, so decoding every label of every series up
/// front would spend most of a scrape's parse time on values nobody reads. Equality compares the
/// block as written, like [`Sample::series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    /// Text between `{` and `}` (exclusive), already validated by the parser.
    raw: &'a str,
}

impl<'a> Labels<'a> {
    /// The text between `{` and `}` exactly as written (escapes intact); empty when the sample
    /// has no label block or an empty one.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// `(name, unescaped value)` pairs in the order they were written.
    pub fn iter(&self) -> LabelsIter<'a> {
        LabelsIter { rest: self.raw }
    }
}

impl LabelSet for Labels<'_> {
    fn label(&self, name: &str) -> Option<Cow<'_, str>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, value)| value)
    }
}

/// Iterator over the labels of a [`Labels`] block; see [`Labels::iter`].
#[derive(Debug, Clone)]
pub struct LabelsIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        // The parser validated the block, so this walk only finds boundaries. It still ends
        // with `None` instead of panicking if that invariant were ever broken.
        let rest = self.rest.trim_start_matches([' ', '\t', ',']);
        let (name, after_name) = rest.split_once('=')?;
        let body = after_name.trim_start_matches([' ', '\t']).strip_prefix('"')?;
        let close = closing_quote(body.as_bytes(), 0)?;
        self.rest = body.get(close + 1..)?;
        Some((name.trim_end_matches([' ', '\t']), unescape(body.get(..close)?)))
    }
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number, counting comment and blank lines.
    pub line: usize,
    /// What was expected and what was found instead.
    pub message: String,
}

/// Every sample of `input`, or the first error with its line number. For input a person wrote
/// or is looking at (`sloguard validate`, fixtures), where a bad line should stop everything.
pub fn parse_strict(input: &[u8]) -> Result<Vec<Sample<'_>>, ParseError> {
    samples(input).collect()
}

/// The outcome of [`parse_lenient`]: the good samples and one error per bad line.
#[derive(Debug)]
pub struct Lenient<'a> {
    pub samples: Vec<Sample<'a>>,
    pub errors: Vec<ParseError>,
}

/// Every well-formed sample of `input`, plus an error for each line that is not. For live
/// scrapes, where one broken exporter line must not hide the other series of the target.
pub fn parse_lenient(input: &[u8]) -> Lenient<'_> {
    let mut res = Lenient { samples: Vec::new(), errors: Vec::new() };
    for item in samples(input) {
        match item {
            Ok(sample) => res.samples.push(sample),
            Err(err) => res.errors.push(err),
        }
    }
    res
}

/// The samples of `input` in order, with an error in place of each bad line; parsing stops at
/// the end of input or at an OpenMetrics `# EOF` line. Both parse modes are built on this.
pub fn samples(input: &[u8]) -> impl Iterator<Item = Result<Sample<'_>, ParseError>> {
    Parser { input, pos: 0, line: 1, utf8: Utf8Window::new(input), label_names: Vec::new() }
}

/// `value` escaped for use between the quotes of a label value: `\` → `\\`, `"` → `\"` and a
/// line feed → `\n`. Borrowed when nothing needs escaping, which is the common case.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Reverses [`escape_label_value`]. Any other escape (`\t`, `\x`) is kept as its two characters:
/// that is what the Prometheus server does, and a selector here must see the same label value
/// Prometheus stores. Rejecting them (as client_golang's parser does) would drop series that
/// Prometheus keeps.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(c @ ('\\' | '"')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            // The parser never lets a value end in a lone backslash (it would escape the quote).
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Byte classes, looked up in one table so each hot loop does one load and one test per byte.
const NAME_START: u8 = 1 << 0; // [a-zA-Z_:]
const NAME_CONT: u8 = 1 << 1; // [a-zA-Z0-9_:]
const LABEL_START: u8 = 1 << 2; // [a-zA-Z_]
const LABEL_CONT: u8 = 1 << 3; // [a-zA-Z0-9_]
/// Bytes where a scan through a quoted label value has to stop and look: `"`, `\`, line feed.
const VALUE_STOP: u8 = 1 << 4;
/// Bytes that end an unquoted token (value, timestamp, comment keyword): blank, CR, LF.
const TOKEN_STOP: u8 = 1 << 5;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut class = 0;
        if alpha || c == b':' {
            class |= NAME_START | NAME_CONT;
        }
        if digit {
            class |= NAME_CONT | LABEL_CONT;
        }
        if alpha {
            class |= LABEL_START | LABEL_CONT;
        }
        if c == b'"' || c == b'\\' || c == b'\n' {
            class |= VALUE_STOP;
        }
        if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
            class |= TOKEN_STOP;
        }
        table[b] = class;
        b += 1;
    }
    table
}

fn has_class(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// Index of the first byte at or after `i` that is not in `class`.
fn skip_class(b: &[u8], mut i: usize, class: u8) -> usize {
    while i < b.len() && has_class(b[i], class) {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that ends an unquoted token.
fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !has_class(b[i], TOKEN_STOP) {
        i += 1;
    }
    i
}

/// The format separates tokens with spaces and tabs only.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// If only blanks and an optional CR remain on the line at `i`, the index of its line feed (or
/// the input's end).
fn end_of_line(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_blanks(b, i);
    match b.get(i) {
        None | Some(b'\n') => Some(i),
        Some(b'\r') if matches!(b.get(i + 1), None | Some(b'\n')) => Some(i + 1),
        Some(_) => None,
    }
}

/// Index of the line feed ending the line that contains `i`, or the input's end.
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n)
}

/// Index of the quote closing a label value whose text starts at `i`, or `None` when the line
/// ends first. Escapes are only stepped over here; [`unescape`] interprets them when read.
fn closing_quote(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = value_stop(b, i);
        match b.get(i)? {
            b'"' => return Some(i),
            b'\\' if b.get(i + 1).is_some_and(|&c| c != b'\n') => i += 2,
            _ => return None,
        }
    }
}

/// Index of the first `"`, `\` or line feed at or after `i`, or the input's end. Label values
/// hold most of a page's bytes, so this looks at eight bytes per step (SWAR): 30% of the parse
/// time went to a byte-at-a-time loop here.
fn value_stop(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // High bit set in each byte of `word` equal to `byte`, and possibly in bytes after the first
    // such byte (borrows), so only the lowest set bit is meaningful.
    let matches = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let hits = matches(word, b'"') | matches(word, b'\\') | matches(word, b'\n');
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !has_class(b[i], VALUE_STOP) {
        i += 1;
    }
    i
}

/// A sample value. Rust's float syntax is Go's `ParseFloat` (which Prometheus uses) minus hex
/// floats: `NaN`, `Inf`, `+Inf`, `-Inf` in any case, exponents and signs.
fn parse_value(text: &str) -> Option<f64> {
    plain_decimal(text.as_bytes()).or_else(|| text.parse().ok())
}

/// Decimal digits that always fit below 2^53, so the mantissa converts to f64 exactly.
const MAX_EXACT_DIGITS: usize = 15;

/// Powers of ten that are exact in an f64, one per possible number of fraction digits.
const EXACT_POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// Fast path for `-?digits[.digits]` with at most 15 digits, the shape of nearly every value
/// exporters write; `str::parse` spent ~30 ns per value, 15% of the parse. With at most 15
/// digits the mantissa is below 2^53 and so exact, as is 10^k for k <= 22, and one IEEE division
/// of exact operands is correctly rounded: the same bits `str::parse` gives (Clinger's fast
/// path). Anything else returns `None` for the full parser.
fn plain_decimal(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.len() > MAX_EXACT_DIGITS + 1 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut dot = None;
    for (at, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(c - b'0'),
            b'.' if dot.is_none() => dot = Some(at),
            _ => return None,
        }
    }
    let n_digits = digits.len() - usize::from(dot.is_some());
    if n_digits == 0 || n_digits > MAX_EXACT_DIGITS {
        return None;
    }
    let n_fraction_digits = dot.map_or(0, |at| digits.len() - 1 - at);
    let value = mantissa as f64 / EXACT_POW10[n_fraction_digits];
    Some(if negative { -value } else { value })
}

/// The byte at `i` for an error message: the character if it is one, else its hex value.
fn describe(b: &[u8], i: usize) -> String {
    match b.get(i) {
        None => "end of input".to_owned(),
        Some(b'\n') => "end of line".to_owned(),
        Some(_) => {
            let prefix = &b[i..b.len().min(i + 4)];
            match prefix.utf8_chunks().next().and_then(|c| c.valid().chars().next()) {
                Some(c) => format!("'{}'", c.escape_debug()),
                None => format!("byte 0x{:02X}", b[i]),
            }
        }
    }
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Where a line went wrong (an input offset on that line) and why.
struct Failure {
    at: usize,
    message: String,
}

impl Failure {
    fn new(at: usize, message: impl Into<String>) -> Failure {
        Failure { at, message: message.into() }
    }
}

/// What one line turned out to be; `end` is the index of its line feed or the input's end.
enum Line<'a> {
    Skip { end: usize },
    Sample { sample: Sample<'a>, end: usize },
    Eof,
}

/// Hands out `&str` for lines that lie inside valid UTF-8, validating the input once, front to
/// back, with `str::from_utf8`, which checks ASCII a word at a time. Checking each token instead
/// re-enters the validator about a dozen times per line for slices of a few bytes;
/// `Utf8Chunks` goes byte by byte and took a quarter of the parse time; and giving up on the
/// first bad byte would make it cost a live scrape every series instead of one line.
struct Utf8Window<'a> {
    input: &'a [u8],
    /// The valid stretch currently in view, starting at input offset `start`.
    valid: &'a str,
    start: usize,
}

impl<'a> Utf8Window<'a> {
    fn new(input: &'a [u8]) -> Utf8Window<'a> {
        Utf8Window { input, valid: "", start: 0 }
    }

    /// The text of `range`, or `None` if it holds invalid UTF-8. Ranges must not go backwards
    /// from earlier calls, so every byte is validated about once: a re-validation starts past
    /// the previous invalid byte and stops at the next one.
    fn text(&mut self, range: Range<usize>) -> Option<&'a str> {
        if range.end > self.start + self.valid.len() {
            let rest = self.input.get(range.start..)?;
            self.start = range.start;
            self.valid = match std::str::from_utf8(rest) {
                Ok(valid) => valid,
                // Re-checking the valid prefix costs one more pass only up to a bad byte.
                Err(err) => std::str::from_utf8(&rest[..err.valid_up_to()]).unwrap_or_default(),
            };
        }
        self.valid.get(range.start.checked_sub(self.start)?..range.end - self.start)
    }
}

struct Parser<'a> {
    input: &'a [u8],
    /// Start of the next line.
    pos: usize,
    /// 1-based number of the line starting at `pos`.
    line: usize,
    utf8: Utf8Window<'a>,
    /// Label-name spans of the sample being parsed, for duplicate detection; kept across lines
    /// so that check does not allocate per sample.
    label_names: Vec<Range<usize>>,
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Sample<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.input.len() {
            let line = self.line;
            let (end, item) = match self.parse_line(self.pos) {
                Ok(Line::Skip { end }) => (end, None),
                Ok(Line::Sample { sample, end }) => (end, Some(Ok(sample))),
                Ok(Line::Eof) => {
                    self.pos = self.input.len();
                    return None;
                }
                Err(Failure { at, message }) => (line_end(self.input, at), Some(Err(ParseError { line, message }))),
            };
            self.pos = end + 1;
            self.line += 1;
            if item.is_some() {
                return item;
            }
        }
        None
    }
}

impl<'a> Parser<'a> {
    fn parse_line(&mut self, start: usize) -> Result<Line<'a>, Failure> {
        let b = self.input;
        let i = skip_blanks(b, start);
        if let Some(end) = end_of_line(b, i) {
            return Ok(Line::Skip { end });
        }
        if b[i] == b'#' {
            return self.comment(i + 1);
        }
        self.sample(start, i)
    }

    /// A line starting with `#`; `i` is just after it. Only `# HELP`, `# TYPE` and `# EOF` mean
    /// anything; HELP and TYPE are checked so that a typo in them is reported rather than
    /// silently turning the line into a comment.
    fn comment(&self, i: usize) -> Result<Line<'a>, Failure> {
        let b = self.input;
        let word_start = skip_blanks(b, i);
        if word_start == i {
            return Ok(Line::Skip { end: line_end(b, i) });
        }
        let word_end = token_end(b, word_start);
        match &b[word_start..word_end] {
            b"HELP" => {
                let name_end = self.comment_metric_name(word_end, "HELP")?;
                Ok(Line::Skip { end: line_end(b, name_end) })
            }
            b"TYPE" => {
                let name_end = self.comment_metric_name(word_end, "TYPE")?;
                let type_start = skip_blanks(b, name_end);
                let type_end = token_end(b, type_start);
                let kind = &b[type_start..type_end];
                if !METRIC_TYPES.contains(&kind) {
                    return Err(Failure::new(
                        type_start,
                        format!(
                            "unknown metric type {:?} in # TYPE (expected one of {})",
                            lossy(kind),
                            METRIC_TYPES_TEXT
                        ),
                    ));
                }
                let end = end_of_line(b, type_end).ok_or_else(|| {
                    Failure::new(type_end, format!("unexpected text after metric type {:?}", lossy(kind)))
                })?;
                Ok(Line::Skip { end })
            }
            b"EOF" => match end_of_line(b, word_end) {
                Some(_) => Ok(Line::Eof),
                None => Ok(Line::Skip { end: line_end(b, word_end) }),
            },
            _ => Ok(Line::Skip { end: line_end(b, word_end) }),
        }
    }

    /// The metric name after a `# HELP` / `# TYPE` keyword ending at `i`; returns its end.
    fn comment_metric_name(&self, i: usize, keyword: &str) -> Result<usize, Failure> {
        let b = self.input;
        let start = skip_blanks(b, i);
        if start == i || !b.get(start).is_some_and(|&c| has_class(c, NAME_START)) {
            return Err(Failure::new(
                start,
                format!("expected metric name after # {keyword}, found {}", describe(b, start)),
            ));
        }
        let end = skip_class(b, start + 1, NAME_CONT);
        if !b.get(end).is_none_or(|&c| has_class(c, TOKEN_STOP)) {
            return Err(Failure::new(
                end,
                format!(
                    "expected ' ' after metric name {:?} in # {keyword}, found {}",
                    lossy(&b[start..end]),
                    describe(b, end)
                ),
            ));
        }
        Ok(end)
    }

    /// A sample line; `start` is the line's first byte and `i` its first non-blank one.
    fn sample(&mut self, start: usize, i: usize) -> Result<Line<'a>, Failure> {
        let b = self.input;
        if !has_class(b[i], NAME_START) {
            return Err(Failure::new(i, format!("expected metric name, found {}", describe(b, i))));
        }
        let name = i..skip_class(b, i + 1, NAME_CONT);
        let after_name = skip_blanks(b, name.end);
        let (labels, series_end) = if b.get(after_name) == Some(&b'{') {
            let close = self.label_block(after_name + 1)?;
            (after_name + 1..close, close + 1)
        } else {
            // Without a blank, `up-1` or `up"x" 1` would read as a value glued to the name.
            if after_name == name.end && end_of_line(b, after_name).is_none() {
                return Err(Failure::new(
                    after_name,
                    format!(
                        "expected ' ' or '{{' after metric name {:?}, found {}",
                        lossy(&b[name.clone()]),
                        describe(b, after_name)
                    ),
                ));
            }
            (name.end..name.end, name.end)
        };

        let value_start = skip_blanks(b, series_end);
        let value = value_start..token_end(b, value_start);
        if value.is_empty() {
            return Err(Failure::new(
                value_start,
                format!(
                    "expected value after {:?}, found {}",
                    lossy(&b[name.start..series_end]),
                    describe(b, value_start)
                ),
            ));
        }
        let (timestamp, end) = match end_of_line(b, value.end) {
            Some(end) => (None, end),
            None => {
                let ts_start = skip_blanks(b, value.end);
                let ts = ts_start..token_end(b, ts_start);
                let end = end_of_line(b, ts.end).ok_or_else(|| {
                    let at = skip_blanks(b, ts.end);
                    Failure::new(at, format!("unexpected {} after timestamp", describe(b, at)))
                })?;
                (Some(ts), end)
            }
        };

        let text = self.utf8.text(start..end).ok_or_else(|| Failure::new(start, "invalid UTF-8"))?;
        let slice = |r: Range<usize>| &text[r.start - start..r.end - start];
        let value_text = slice(value.clone());
        let value = parse_value(value_text).ok_or_else(|| {
            Failure::new(value.start, format!("invalid value {value_text:?}: expected a number, NaN, +Inf or -Inf"))
        })?;
        let timestamp_ms = match timestamp {
            None => None,
            Some(ts) => {
                let ts_text = slice(ts.clone());
                Some(ts_text.parse::<i64>().map_err(|_| {
                    Failure::new(
                        ts.start,
                        format!("invalid timestamp {ts_text:?}: expected integer milliseconds since the epoch"),
                    )
                })?)
            }
        };
        Ok(Line::Sample {
            sample: Sample {
                series: slice(name.start..series_end),
                name: slice(name),
                labels: Labels { raw: slice(labels) },
                value,
                timestamp_ms,
            },
            end,
        })
    }

    /// The labels after a `{` ending at `i`; returns the index of the closing `}`.
    fn label_block(&mut self, mut i: usize) -> Result<usize, Failure> {
        let b = self.input;
        self.label_names.clear();
        loop {
            i = skip_blanks(b, i);
            match b.get(i) {
                Some(b'}') => return Ok(i),
                Some(&c) if has_class(c, LABEL_START) => {}
                _ => {
                    return Err(Failure::new(i, format!("expected label name or '}}', found {}", describe(b, i))));
                }
            }
            let name = i..skip_class(b, i + 1, LABEL_CONT);
            let name_bytes = &b[name.clone()];
            if self.label_names.iter().any(|n| &b[n.clone()] == name_bytes) {
                return Err(Failure::new(name.start, format!("duplicate label name {:?}", lossy(name_bytes))));
            }
            self.label_names.push(name.clone());

            i = skip_blanks(b, name.end);
            if b.get(i) != Some(&b'=') {
                return Err(Failure::new(
                    i,
                    format!("expected '=' after label name {:?}, found {}", lossy(name_bytes), describe(b, i)),
                ));
            }
            i = skip_blanks(b, i + 1);
            if b.get(i) != Some(&b'"') {
                return Err(Failure::new(
                    i,
                    format!(
                        "expected '\"' to open the value of label {:?}, found {}",
                        lossy(name_bytes),
                        describe(b, i)
                    ),
                ));
            }
            i = closing_quote(b, i + 1).ok_or_else(|| {
                Failure::new(
                    i,
                    format!(
                        "unterminated value of label {:?}: no closing '\"' before the end of the line",
                        lossy(name_bytes)
                    ),
                )
            })? + 1;

            i = skip_blanks(b, i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i),
                _ => {
                    return Err(Failure::new(
                        i,
                        format!(
                            "expected ',' or '}}' after the value of label {:?}, found {}",
                            lossy(name_bytes),
                            describe(b, i)
                        ),
                    ));
                }
            }
        }
    }
}

/// The text format's types plus OpenMetrics' extra ones, since `# EOF`-terminated OpenMetrics
/// pages are accepted too.
const METRIC_TYPES: [&[u8]; 9] =
    [b"counter", b"gauge", b"histogram", b"summary", b"untyped", b"gaugehistogram", b"stateset", b"info", b"unknown"];
const METRIC_TYPES_TEXT: &str = "counter, gauge, histogram, summary, untyped, gaugehistogram, stateset, info, unknown";
