//! PromQL instant-vector selectors: `metric{label="v", other=~"re"}`.
//!
//! Owns parsing a selector once (at spec load) into matchers, and matching a series against them.
//! It knows nothing about samples, windows or specs: callers hand it a metric name and a
//! [`LabelSet`]. Matching is on the per-new-series path (50k series × every SLO), so it never
//! allocates when the label set can lend its values.
//!
//! Semantics follow Prometheus 2.x:
//! - Regex matchers are fully anchored, `^(?:re)$`. Rust's `regex` syntax is close to RE2's; one
//!   difference worth knowing is that `\d`, `\w` and `\s` are Unicode-aware here.
//! - A label the series lacks matches as the empty string, so `code!~"5.."` matches a series
//!   without `code`, and `{foo=""}` matches series without `foo`.
//! - At least one matcher must not match the empty string (`{}` or `{a=~".*"}` would select
//!   every series in existence); a metric name counts as such a matcher.
//! - Only plain selectors: functions, range selectors and `offset`/`@` modifiers are rejected,
//!   because sloguard computes increases itself from raw counter samples.
//!
//! A regex's compiled size grows with its repetitions (`a{100000}` takes 4.6 MiB), so the
//! regexes of one spec load share a [`RegexBudget`] on top of the per-regex limit.

use std::borrow::Cow;
use std::fmt;

use regex_automata::meta::{BuildError, Regex};

/// Heap the compiled regexes of one spec load may take together. A typical matcher compiles to
/// 2-10 KiB (`GET|POST|PUT` 1.7 KiB, `5..` 3.4 KiB, `2..|3..|4..|5..` 9.5 KiB), so 10,000 SLOs,
/// the scale `benches/engine.rs` measures, with those last two as their selectors' regexes take
/// 126 MiB: this leaves twice that, while a spec of 200 `a{100000}` matchers (4.6 MiB each),
/// which took 954 MB to validate, stops at 280 MB.
pub const REGEX_BUDGET_BYTES: usize = 256 << 20;

/// Largest NFA a single regex may compile to: the `regex` crate's default, which selectors had
/// before the budget existed, so no regex that loaded before is refused alone.
const MAX_REGEX_NFA_BYTES: usize = 10 << 20;

/// What is left of [`REGEX_BUDGET_BYTES`] while one spec load compiles its selectors: each
/// regex is charged its heap size, and one that does not fit is an error.
#[derive(Debug)]
pub struct RegexBudget {
    remaining: usize,
}

impl Default for RegexBudget {
    fn default() -> Self {
        RegexBudget { remaining: REGEX_BUDGET_BYTES }
    }
}

impl RegexBudget {
    /// Compiles `pattern` (for `label`'s matcher) and charges it, or says why not.
    fn compile(&mut self, label: &str, pattern: &str) -> Result<Regex, SelectorErrorKind> {
        // Capping the NFA at what is left makes a regex that cannot fit fail while it is being
        // compiled, before it takes its memory; the charge below counts everything it holds
        // (both directions' NFAs, the one-pass DFA, literal prefilters).
        let nfa_limit = self.remaining.min(MAX_REGEX_NFA_BYTES);
        let over_budget = || SelectorErrorKind::RegexBudget { label: label.to_string() };
        let config = Regex::config().nfa_size_limit(Some(nfa_limit));
        let regex = match Regex::builder().configure(config).build(pattern) {
            Ok(regex) => regex,
            Err(e) if e.size_limit().is_some() && nfa_limit < MAX_REGEX_NFA_BYTES => return Err(over_budget()),
            Err(e) => {
                return Err(SelectorErrorKind::InvalidRegex { label: label.to_string(), message: regex_message(&e) });
            }
        };
        let cost = regex.memory_usage();
        if cost > self.remaining {
            return Err(over_budget());
        }
        self.remaining -= cost;
        Ok(regex)
    }
}

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

/// A selector that failed to parse: what is wrong, and the 0-based character offset in the
/// selector text where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector: {kind} at offset {offset}")]
pub struct SelectorError {
    pub offset: usize,
    pub kind: SelectorErrorKind,
}

/// The ways a selector can be malformed or unsupported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorErrorKind {
    /// The text was empty or only whitespace.
    #[error("empty selector")]
    Empty,
    /// A character that cannot appear here, e.g. a label name starting with a digit.
    #[error("expected {expected}, found {found:?}")]
    Unexpected { expected: &'static str, found: char },
    /// The text ended where more was required, e.g. `{job=`.
    #[error("expected {expected}, found end of selector")]
    UnexpectedEnd { expected: &'static str },
    /// A `{` with no matching `}`; the offset is the `{`.
    #[error("unclosed '{{'")]
    UnclosedBrace,
    /// A label value whose closing quote is missing; the offset is the opening quote.
    #[error("unclosed {0:?} quote")]
    UnclosedQuote(char),
    /// A backslash escape that Go (and so PromQL) would not accept, or bytes that are not UTF-8.
    #[error("invalid escape: {0}")]
    InvalidEscape(&'static str),
    /// A function call such as `rate(...)`: sloguard wants the bare counter selector.
    #[error("function call `{0}(...)` is not supported: give the bare counter selector")]
    Function(String),
    /// A range selector such as `[5m]`: windows come from the spec, not the selector.
    #[error("range selector `[...]` is not supported: windows come from the spec")]
    Range,
    /// An `offset` or `@` modifier, which would shift evaluation away from the live data.
    #[error("`{0}` modifier is not supported")]
    Modifier(&'static str),
    /// The metric name given both before `{` and as `__name__` inside it.
    #[error("metric name set twice")]
    NameSetTwice,
    /// A regex matcher whose pattern does not compile; the offset is the value's quote.
    #[error("invalid regex for label `{label}`: {message}")]
    InvalidRegex { label: String, message: String },
    /// A regex matcher that compiled within the per-regex limit but does not fit in what is left
    /// of the load's [`RegexBudget`]; the offset is the value's quote.
    #[error(
        "regex for label `{label}` does not fit: the regexes of these specs would take more than {} MiB \
         compiled; simplify them (large repetitions such as `a{{1000}}` cost the most)",
        REGEX_BUDGET_BYTES >> 20
    )]
    RegexBudget { label: String },
    /// Every matcher also matches the empty string, so the selector would match everything.
    #[error("selector must contain at least one matcher that does not match the empty string")]
    MatchesEverything,
}

/// A parsed instant-vector selector. Equality is by source text: two selectors written
/// differently are different spec values even if they select the same series.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    /// Name matchers (`__name__`) first so a wrong metric is rejected before any label lookup.
    matchers: Vec<Matcher>,
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The pseudo-label PromQL uses for the metric name.
const NAME_LABEL: &str = "__name__";

#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: MatchOp,
}

#[derive(Debug, Clone)]
enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
    /// The value read as a number equals this one: a histogram bucket's `le` (`0.3`, `0.30`
    /// and `3e-1` are one bucket). Not PromQL syntax, so never in a selector's text.
    NumberEqual(f64),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal(want) => value == want,
            MatchOp::NotEqual(want) => value != want,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
            MatchOp::NumberEqual(want) => value.trim().parse::<f64>().is_ok_and(|v| v == *want),
        }
    }
}

impl Selector {
    /// Parses a PromQL instant-vector selector: `metric`, `metric{...}` or `{__name__="m", ...}`,
    /// on its own, with a whole [`RegexBudget`].
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        Selector::parse_within(text, &mut RegexBudget::default())
    }

    /// [`Selector::parse`], charging its regexes to `regexes`, the budget of a whole spec load.
    pub fn parse_within(text: &str, regexes: &mut RegexBudget) -> Result<Selector, SelectorError> {
        let matchers = Parser { text, pos: 0, regexes }.selector().map_err(|(byte_offset, kind)| {
            // Offsets are reported in characters so they line up with what an editor shows.
            SelectorError { offset: text[..byte_offset].chars().count(), kind }
        })?;
        Ok(Selector { text: text.to_string(), matchers })
    }

    /// The metric name the selector is pinned to (`metric{...}` or `{__name__="metric"}`), used
    /// to index selectors so a sample is only matched against selectors that can match it.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers.iter().find_map(|m| match &m.op {
            MatchOp::Equal(name) if m.label == NAME_LABEL => Some(name.as_str()),
            _ => None,
        })
    }

    /// The `label="value"` matchers with a non-empty value, other than the metric name: a
    /// series lacking one of these labels, or holding another value, cannot be selected.
    pub fn label_equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.matchers.iter().filter_map(|m| match &m.op {
            MatchOp::Equal(value) if m.label != NAME_LABEL && !value.is_empty() => {
                Some((m.label.as_str(), value.as_str()))
            }
            _ => None,
        })
    }

    /// Whether the series `name{labels}` is selected. A missing label reads as `""`.
    ///
    /// Generic rather than `&dyn LabelSet` so unsized sets such as `[(String, String)]` can be
    /// passed; `&dyn LabelSet` still works, since `dyn LabelSet` is itself a `LabelSet`.
    pub fn matches<L: LabelSet + ?Sized>(&self, name: &str, labels: &L) -> bool {
        self.matchers.iter().all(|m| {
            if m.label == NAME_LABEL {
                m.matches(name)
            } else {
                m.matches(labels.label(&m.label).as_deref().unwrap_or(""))
            }
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an `=` matcher pins `label` to one value (the empty one included), or a
    /// numeric match does (a latency bucket's `le`).
    pub fn fixes_label(&self, label: &str) -> bool {
        self.matchers.iter().any(|m| m.label == label && matches!(m.op, MatchOp::Equal(_) | MatchOp::NumberEqual(_)))
    }

    /// Whether some matcher reads `label`.
    pub fn reads_label(&self, label: &str) -> bool {
        self.matchers.iter().any(|m| m.label == label)
    }

    /// A histogram's good and total selectors for a latency threshold: `<name>_bucket` with
    /// `le` equal to `threshold` seconds as a number, and `<name>_count`, both with this
    /// selector's other matchers. Their text is the PromQL a Prometheus source queries (every
    /// bucket; the `le` match happens here). `None` unless the selector starts with its metric
    /// name (`name{...}`).
    pub fn histogram(&self, threshold: f64) -> Option<(Selector, Selector)> {
        let name = self.metric_name()?;
        let rest = self.text.trim_start().strip_prefix(name)?;
        let derive = |suffix: &str| {
            let mut matchers = self.matchers.clone();
            for m in &mut matchers {
                if m.label == NAME_LABEL {
                    m.op = MatchOp::Equal(format!("{name}{suffix}"));
                }
            }
            Selector { text: format!("{name}{suffix}{rest}"), matchers }
        };
        let mut bucket = derive("_bucket");
        bucket.matchers.push(Matcher { label: "le".to_string(), op: MatchOp::NumberEqual(threshold) });
        Some((bucket, derive("_count")))
    }
}

/// A parse failure at a byte offset; converted to a character offset at the API edge.
type ParseResult<T> = Result<T, (usize, SelectorErrorKind)>;

/// Hand-written recursive-descent parser over the selector text. Small enough that a grammar
/// crate would cost more than it saves, and it lets every error carry an exact offset.
struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
    regexes: &'a mut RegexBudget,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_whitespace(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn unexpected(&self, expected: &'static str) -> (usize, SelectorErrorKind) {
        let kind = match self.peek() {
            Some(found) => SelectorErrorKind::Unexpected { expected, found },
            None => SelectorErrorKind::UnexpectedEnd { expected },
        };
        (self.pos, kind)
    }

    /// Takes `[first][rest]*` and returns the identifier, or `None` if `first` does not match.
    fn identifier(&mut self, first: fn(char) -> bool, rest: fn(char) -> bool) -> Option<&str> {
        let start = self.pos;
        let mut chars = self.text[start..].char_indices();
        match chars.next() {
            Some((_, c)) if first(c) => {}
            _ => return None,
        }
        let len = chars.find(|&(_, c)| !rest(c)).map_or(self.text.len() - start, |(i, _)| i);
        self.pos = start + len;
        Some(&self.text[start..self.pos])
    }

    fn selector(mut self) -> ParseResult<Vec<Matcher>> {
        self.skip_whitespace();
        if self.pos == self.text.len() {
            return Err((0, SelectorErrorKind::Empty));
        }
        let mut matchers = Vec::new();
        let name_start = self.pos;
        let metric = self.identifier(is_metric_name_start, is_metric_name_char).map(str::to_string);
        if let Some(metric) = &metric {
            self.skip_whitespace();
            if self.peek() == Some('(') {
                return Err((name_start, SelectorErrorKind::Function(metric.clone())));
            }
            matchers.push(Matcher { label: NAME_LABEL.into(), op: MatchOp::Equal(metric.clone()) });
        }
        if self.peek() == Some('{') {
            self.label_matchers(&mut matchers, metric.is_some())?;
        } else if metric.is_none() {
            return Err(self.unexpected("a metric name or '{'"));
        }
        self.skip_whitespace();
        match self.peek() {
            None => {}
            Some('[') => return Err((self.pos, SelectorErrorKind::Range)),
            Some('@') => return Err((self.pos, SelectorErrorKind::Modifier("@"))),
            Some(_) if self.text[self.pos..].starts_with("offset") => {
                return Err((self.pos, SelectorErrorKind::Modifier("offset")));
            }
            Some(_) => return Err(self.unexpected("end of selector")),
        }
        if matchers.iter().all(|m| m.matches("")) {
            return Err((0, SelectorErrorKind::MatchesEverything));
        }
        // Stable sort: name matchers first, the rest in written order.
        matchers.sort_by_key(|m| m.label != NAME_LABEL);
        Ok(matchers)
    }

    /// Parses `{ matcher, ... }` (trailing comma allowed) starting at the `{`.
    fn label_matchers(&mut self, matchers: &mut Vec<Matcher>, has_metric: bool) -> ParseResult<()> {
        let open = self.pos;
        self.pos += 1;
        let unclosed = |p: &Self| match p.peek() {
            None => Err((open, SelectorErrorKind::UnclosedBrace)),
            Some(_) => Err(p.unexpected("',' or '}'")),
        };
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some('}') => break,
                None => return Err((open, SelectorErrorKind::UnclosedBrace)),
                Some(_) => {}
            }
            let label_start = self.pos;
            let matcher = self.matcher()?;
            if has_metric && matcher.label == NAME_LABEL {
                return Err((label_start, SelectorErrorKind::NameSetTwice));
            }
            matchers.push(matcher);
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => break,
                _ => return unclosed(self),
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// Parses `label op "value"`.
    fn matcher(&mut self) -> ParseResult<Matcher> {
        let Some(label) = self.identifier(is_label_name_start, is_label_name_char) else {
            return Err(self.unexpected("a label name"));
        };
        let label = label.to_string();
        // A character glued to the name, such as the `:` in `a:b` or the `-` in `a-b`, is a bad
        // label name rather than a missing operator; say so.
        if self.peek().is_some_and(|c| !c.is_whitespace() && !matches!(c, '=' | '!' | ',' | '}')) {
            return Err(self.unexpected("a label name character [a-zA-Z0-9_] or an operator"));
        }
        self.skip_whitespace();
        let rest = &self.text[self.pos..];
        let (op_len, negate, regex) = if rest.starts_with("=~") {
            (2, false, true)
        } else if rest.starts_with("!~") {
            (2, true, true)
        } else if rest.starts_with("!=") {
            (2, true, false)
        } else if rest.starts_with('=') {
            (1, false, false)
        } else {
            return Err(self.unexpected("one of = != =~ !~"));
        };
        self.pos += op_len;
        self.skip_whitespace();
        let value_start = self.pos;
        let value = self.quoted()?;
        let op = if regex {
            // Prometheus anchors regexes at both ends; without this `5..` would match `5000`.
            let re = self.regexes.compile(&label, &format!("^(?:{value})$")).map_err(|kind| (value_start, kind))?;
            if negate { MatchOp::NotRegex(re) } else { MatchOp::Regex(re) }
        } else if negate {
            MatchOp::NotEqual(value)
        } else {
            MatchOp::Equal(value)
        };
        Ok(Matcher { label, op })
    }

    /// Parses a `"..."`, `'...'` or `` `...` `` string with Go's escapes (none in backticks).
    fn quoted(&mut self) -> ParseResult<String> {
        let open = self.pos;
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.unexpected("a quoted label value")),
        };
        self.pos += 1;
        // Bytes, not chars: Go's `\x` and octal escapes are bytes, and a run of them may spell
        // one multi-byte UTF-8 character.
        let mut value = Vec::new();
        let mut chars = self.text[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + c.len_utf8();
                return String::from_utf8(value)
                    .map_err(|_| (open, SelectorErrorKind::InvalidEscape("escaped bytes are not valid UTF-8")));
            }
            if c == '\\' && quote != '`' {
                let escape_at = self.pos + i;
                let invalid = |what| (escape_at, SelectorErrorKind::InvalidEscape(what));
                let Some((_, e)) = chars.next() else { break };
                let simple = match e {
                    'a' => Some(0x07),
                    'b' => Some(0x08),
                    'f' => Some(0x0c),
                    'n' => Some(b'\n'),
                    'r' => Some(b'\r'),
                    't' => Some(b'\t'),
                    'v' => Some(0x0b),
                    '\\' => Some(b'\\'),
                    q if q == quote => Some(q as u8),
                    _ => None,
                };
                if let Some(byte) = simple {
                    value.push(byte);
                    continue;
                }
                let (n_digits, radix, what) = match e {
                    'x' => (2, 16, "`\\x` needs 2 hex digits"),
                    'u' => (4, 16, "`\\u` needs 4 hex digits"),
                    'U' => (8, 16, "`\\U` needs 8 hex digits"),
                    '0'..='7' => (2, 8, "octal escape needs 3 digits 0-7"),
                    _ => return Err(invalid("unknown escape sequence")),
                };
                let mut code = if radix == 8 { e.to_digit(8).unwrap_or(0) } else { 0 };
                for _ in 0..n_digits {
                    let digit = chars.next().and_then(|(_, d)| d.to_digit(radix)).ok_or(invalid(what))?;
                    code = code * radix + digit;
                }
                match e {
                    'u' | 'U' => {
                        let ch = char::from_u32(code).ok_or(invalid("not a Unicode scalar value"))?;
                        value.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    _ => value.push(u8::try_from(code).map_err(|_| invalid("octal escape above \\377"))?),
                }
                continue;
            }
            value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        Err((open, SelectorErrorKind::UnclosedQuote(quote)))
    }
}

/// Syntax errors span several lines with a caret diagram relative to our anchored pattern; keep
/// only their one-line `error: ...` summary so spec errors stay on one line.
fn regex_message(err: &BuildError) -> String {
    if let Some(limit) = err.size_limit() {
        return format!("compiled regex exceeds the size limit of {limit} bytes");
    }
    let text = err.syntax_error().map_or_else(|| err.to_string(), ToString::to_string);
    match text.lines().find_map(|line| line.strip_prefix("error: ")) {
        Some(summary) => summary.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn is_metric_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_metric_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Whether `selector` selects the series `name{pairs}`.
    fn selects(selector: &str, name: &str, pairs: &[(&str, &str)]) -> bool {
        let parsed = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        parsed.matches(name, labels(pairs).as_slice())
    }

    fn error(selector: &str) -> String {
        match Selector::parse(selector) {
            Ok(_) => panic!("{selector} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn equal_and_not_equal() {
        assert!(selects(r#"up{job="a"}"#, "up", &[("job", "a")]));
        assert!(!selects(r#"up{job="a"}"#, "up", &[("job", "ab")]));
        assert!(selects(r#"up{job!="a"}"#, "up", &[("job", "b")]));
        assert!(!selects(r#"up{job!="a"}"#, "up", &[("job", "a")]));
        // The engine may hold label sets as trait objects; those must be accepted too.
        struct JobA;
        impl LabelSet for JobA {
            fn label(&self, name: &str) -> Option<Cow<'_, str>> {
                (name == "job").then_some(Cow::Borrowed("a"))
            }
        }
        let dynamic: &dyn LabelSet = &JobA;
        assert!(Selector::parse(r#"up{job="a"}"#).unwrap().matches("up", dynamic));
    }

    #[test]
    fn regex_and_not_regex() {
        assert!(selects(r#"up{code=~"5.."}"#, "up", &[("code", "503")]));
        assert!(!selects(r#"up{code=~"5.."}"#, "up", &[("code", "404")]));
        assert!(selects(r#"up{code!~"5.."}"#, "up", &[("code", "404")]));
        assert!(!selects(r#"up{code!~"5.."}"#, "up", &[("code", "500")]));
        assert!(selects(r#"up{code=~"4..|5.."}"#, "up", &[("code", "429")]));
    }

    #[test]
    fn regexes_are_fully_anchored() {
        assert!(!selects(r#"up{code=~"5.."}"#, "up", &[("code", "5000")]));
        assert!(!selects(r#"up{code=~"5"}"#, "up", &[("code", "15")]));
        assert!(!selects(r#"up{code=~"5"}"#, "up", &[("code", "51")]));
        // Anchoring wraps the alternation, so `a|b` cannot match `ab` or `xa`.
        assert!(!selects(r#"up{x=~"a|b"}"#, "up", &[("x", "ab")]));
        assert!(!selects(r#"up{x=~"a|b"}"#, "up", &[("x", "xa")]));
        assert!(selects(r#"up{code!~"5"}"#, "up", &[("code", "15")]));
    }

    #[test]
    fn missing_label_matches_as_empty_string() {
        assert!(selects(r#"up{foo=""}"#, "up", &[("job", "a")]));
        assert!(!selects(r#"up{foo=""}"#, "up", &[("foo", "x")]));
        assert!(selects(r#"up{code!~"5.."}"#, "up", &[]));
        assert!(selects(r#"up{code!="500"}"#, "up", &[]));
        assert!(!selects(r#"up{code=~"5.."}"#, "up", &[]));
        assert!(selects(r#"up{code=~"5..|"}"#, "up", &[]));
    }

    #[test]
    fn metric_name_forms() {
        assert!(selects("up", "up", &[]));
        assert!(!selects("up", "down", &[]));
        assert!(selects(r#"{__name__="up"}"#, "up", &[]));
        assert!(!selects(r#"{__name__="up"}"#, "upx", &[]));
        assert!(selects(r#"{__name__=~"http_.*_total"}"#, "http_requests_total", &[]));
        assert!(selects(r#"{__name__!="up", job="a"}"#, "down", &[("job", "a")]));
        assert!(!selects(r#"{__name__!="up", job="a"}"#, "up", &[("job", "a")]));
        assert!(selects("job:errors:rate5m", "job:errors:rate5m", &[]));
    }

    #[test]
    fn metric_name_is_pinned_only_by_equality() {
        let name = |s: &str| Selector::parse(s).unwrap().metric_name().map(str::to_string);
        assert_eq!(name("up").as_deref(), Some("up"));
        assert_eq!(name(r#"up{job="a"}"#).as_deref(), Some("up"));
        assert_eq!(name(r#"{job="a", __name__="up"}"#).as_deref(), Some("up"));
        assert_eq!(name(r#"{__name__=~"up"}"#), None);
        assert_eq!(name(r#"{job="a"}"#), None);
    }

    #[test]
    fn quotes_escapes_whitespace_and_trailing_comma() {
        assert!(selects(r"up{a='x'}", "up", &[("a", "x")]));
        assert!(selects(r"up{a=`x\n`}", "up", &[("a", r"x\n")]));
        assert!(selects(r#"up{a="q\"q"}"#, "up", &[("a", "q\"q")]));
        assert!(selects(r"up{a='q\'q'}", "up", &[("a", "q'q")]));
        assert!(selects(r#"up{a="b\\s"}"#, "up", &[("a", r"b\s")]));
        assert!(selects(r#"up{a="l1\nl2\t"}"#, "up", &[("a", "l1\nl2\t")]));
        assert!(selects(r#"up{a="caf\u00e9"}"#, "up", &[("a", "café")]));
        assert!(selects(r#"up{a="caf\xc3\xa9"}"#, "up", &[("a", "café")]));
        assert!(selects(r#"up{a="\101\U0001F600"}"#, "up", &[("a", "A😀")]));
        assert!(selects(r#"up{a="café"}"#, "up", &[("a", "café")]));
        assert!(selects(" up { a = \"x\" , b =~ 'y' , } ", "up", &[("a", "x"), ("b", "y")]));
        assert!(selects(r"up{}", "up", &[]));
    }

    #[test]
    fn equality_is_by_text() {
        let a = Selector::parse(r#"up{job="a"}"#).unwrap();
        assert_eq!(a, Selector::parse(r#"up{job="a"}"#).unwrap());
        assert_ne!(a, Selector::parse(r"up{job='a'}").unwrap());
        assert_eq!(a.as_str(), r#"up{job="a"}"#);
    }

    #[test]
    fn rejects_selectors_matching_everything() {
        let everything = "invalid selector: selector must contain at least one matcher that does \
                          not match the empty string at offset 0";
        assert_eq!(error("{}"), everything);
        assert_eq!(error(r#"{a=~".*"}"#), everything);
        assert_eq!(error(r#"{a!="x"}"#), everything);
        assert_eq!(error(r#"{a=""}"#), everything);
        assert!(Selector::parse(r#"{a=~".+"}"#).is_ok());
    }

    #[test]
    fn rejects_functions_ranges_and_modifiers() {
        assert_eq!(
            error("rate(http_requests_total[5m])"),
            "invalid selector: function call `rate(...)` is not supported: give the bare counter \
             selector at offset 0"
        );
        assert_eq!(
            error(r#"up{job="a"}[5m]"#),
            "invalid selector: range selector `[...]` is not supported: windows come from the \
             spec at offset 11"
        );
        assert_eq!(error("up offset 5m"), "invalid selector: `offset` modifier is not supported at offset 3");
        assert_eq!(error("up @ 1609746000"), "invalid selector: `@` modifier is not supported at offset 3");
    }

    #[test]
    fn rejects_unclosed_braces_and_quotes() {
        assert_eq!(error(r#"http_requests_total{job="checkout""#), "invalid selector: unclosed '{' at offset 19");
        assert_eq!(error(r#"up{job="a}"#), "invalid selector: unclosed '\"' quote at offset 7");
        assert_eq!(error("up{job=`a}"), "invalid selector: unclosed '`' quote at offset 7");
        assert_eq!(error(r#"up{job="a"#), "invalid selector: unclosed '\"' quote at offset 7");
        assert_eq!(error("up{"), "invalid selector: unclosed '{' at offset 2");
    }

    #[test]
    fn rejects_bad_label_names() {
        assert_eq!(error(r#"up{1a="x"}"#), "invalid selector: expected a label name, found '1' at offset 3");
        assert_eq!(
            error(r#"up{a-b="x"}"#),
            "invalid selector: expected a label name character [a-zA-Z0-9_] or an operator, \
             found '-' at offset 4"
        );
        assert_eq!(
            error(r#"up{a:b="x"}"#),
            "invalid selector: expected a label name character [a-zA-Z0-9_] or an operator, \
             found ':' at offset 4"
        );
        assert_eq!(error(r"up{,}"), "invalid selector: expected a label name, found ',' at offset 3");
    }

    #[test]
    fn rejects_malformed_matchers() {
        assert_eq!(error("up{job}"), "invalid selector: expected one of = != =~ !~, found '}' at offset 6");
        assert_eq!(error("up{job==\"a\"}"), "invalid selector: expected a quoted label value, found '=' at offset 7");
        assert_eq!(error("up{job=a}"), "invalid selector: expected a quoted label value, found 'a' at offset 7");
        assert_eq!(error(r#"up{a="x" b="y"}"#), "invalid selector: expected ',' or '}', found 'b' at offset 9");
        assert_eq!(error(r#"up{job="a"} x"#), "invalid selector: expected end of selector, found 'x' at offset 12");
        assert_eq!(
            error("up{job="),
            "invalid selector: expected a quoted label value, found end of selector at offset 7"
        );
        assert_eq!(error("9up"), "invalid selector: expected a metric name or '{', found '9' at offset 0");
        assert_eq!(error("  "), "invalid selector: empty selector at offset 0");
        assert_eq!(error(""), "invalid selector: empty selector at offset 0");
    }

    #[test]
    fn rejects_name_set_twice() {
        assert_eq!(error(r#"up{__name__="up"}"#), "invalid selector: metric name set twice at offset 3");
    }

    #[test]
    fn rejects_bad_escapes() {
        assert_eq!(error(r#"up{a="\q"}"#), "invalid selector: invalid escape: unknown escape sequence at offset 6");
        assert_eq!(error(r#"up{a='\"'}"#), "invalid selector: invalid escape: unknown escape sequence at offset 6");
        assert_eq!(error(r#"up{a="\u00e"}"#), "invalid selector: invalid escape: `\\u` needs 4 hex digits at offset 6");
        assert_eq!(
            error(r#"up{a="\ud800"}"#),
            "invalid selector: invalid escape: not a Unicode scalar value at offset 6"
        );
        assert_eq!(
            error(r#"up{a="\xff"}"#),
            "invalid selector: invalid escape: escaped bytes are not valid UTF-8 at offset 5"
        );
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        assert_eq!(error(r#"up{a="é", b}"#), "invalid selector: expected one of = != =~ !~, found '}' at offset 11");
    }

    #[test]
    fn rejects_invalid_regexes() {
        assert_eq!(
            error(r#"up{code=~"5(.."}"#),
            "invalid selector: invalid regex for label `code`: unclosed group at offset 9"
        );
        assert_eq!(
            error(r#"up{code=~"\\w{1000}"}"#),
            "invalid selector: invalid regex for label `code`: compiled regex exceeds the size limit of 10485760 \
             bytes at offset 9"
        );
    }
}
