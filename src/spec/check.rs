//! The machinery shared by every sloguard YAML file (service specs and `sloguard.yaml`): reading
//! a document into its raw serde mirror with source positions, the positioned error type, and
//! the [`Checker`] that collects semantic errors.
//!
//! Every problem is reported with file, line, column and field path, and all semantic problems of
//! a file are reported at once, so one run shows everything to fix. YAML syntax and type errors
//! stop deserialization, so a file has at most one of those; we still name the field they sit in
//! by re-reading the document shape (see [`field_path_at`]).

use std::env::VarError;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::Route;
use crate::duration::parse_duration;

/// One problem in one spec or config file. `line` and `column` are 1-based; both are 0 when the
/// problem is with the file as a whole (unreadable, not found). `field` is a path such as
/// `slos[0].sli.errors`, empty when the problem is not inside a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

/// Printed as `file:line:column: field: message`, the shape editors and CI annotate; the
/// `field: ` part is left out when there is no field, so whole-file errors do not read `: :`.
impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in file order and, within a file, in source order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} error(s) in specs", .0.len())]
pub struct SpecErrors(pub Vec<SpecError>);

pub(crate) fn whole_file_error(file: &Path, message: String) -> SpecError {
    SpecError { file: file.to_path_buf(), line: 0, column: 0, field: String::new(), message }
}

/// Reads a whole file as text; `what` names it in the error, e.g. `spec file`.
pub(crate) fn read_text(file: &Path, what: &str) -> Result<String, SpecError> {
    fs::read_to_string(file).map_err(|e| whole_file_error(file, format!("cannot read {what}: {e}")))
}

/// Deserializes `text` into its raw mirror `T`, turning a YAML syntax or type error into a
/// positioned [`SpecError`] that names the field it sits in.
pub(crate) fn parse_document<T: DeserializeOwned>(file: &Path, text: &str) -> Result<Spanned<T>, SpecErrors> {
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| SpecErrors(vec![yaml_error(file, text, &e)]))
}

/// How sloguard's YAML is read: serde-saphyr's defaults (alias budgets, duplicate keys rejected)
/// plus YAML 1.2 booleans only, so `ticket: off` reads as the word `off` and is reported as
/// "expected `disabled`" instead of silently becoming `false` as YAML 1.1's `yes`/`no`/`on`/`off`
/// would.
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// Turns a serde-saphyr syntax or type error into a [`SpecError`]. Its `Display` adds
/// "line X column Y" and a source snippet, both of which we print in our own form, so we take
/// only the message, from the formatter meant for end users rather than developers.
fn yaml_error(file: &Path, text: &str, err: &serde_saphyr::Error) -> SpecError {
    let at = err.location().unwrap_or(Location::UNKNOWN);
    SpecError {
        file: file.to_path_buf(),
        line: at.line(),
        column: at.column(),
        field: field_path_at(text, at).unwrap_or_default(),
        message: UserMessageFormatter.format_message(err.without_snippet()).into_owned(),
    }
}

/// Joins a field path and a key: `slos[0]` + `name` = `slos[0].name`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Looks up an environment variable. Checks take this instead of calling `std::env::var`
/// themselves so tests can supply variables: changing the real environment is `unsafe` in Rust
/// 2024 (and racy under the parallel test runner), and this crate forbids `unsafe`.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// The real process environment, for every caller but tests.
pub(crate) fn process_env(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

/// Whether a notification route can be delivered, i.e. its notifier is configured; `Err` is the
/// whole message, which names the missing `notifiers:` entry.
pub(crate) type RouteCheck<'a> = &'a dyn Fn(&Route) -> Result<(), String>;

/// Collects the semantic errors of one file. Each check returns `None` after recording an
/// error, and callers evaluate every check before combining results with `?`, so one bad field
/// never hides the errors of its siblings.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a Path,
    pub(crate) env: EnvLookup<'a>,
    /// Set when the configured notifiers are known (the daemon, and `sloguard.yaml` itself), so
    /// an undeliverable route is reported where it is written; unset, only syntax is checked.
    pub(crate) route_check: Option<RouteCheck<'a>>,
    errors: Vec<SpecError>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a Path, env: EnvLookup<'a>, route_check: Option<RouteCheck<'a>>) -> Checker<'a> {
        Checker { file, env, route_check, errors: Vec::new() }
    }

    /// The checked value if no check failed, else every error in source order.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, SpecErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a check failed without recording why");
                self.errors.sort_by_key(|e| (e.line, e.column));
                Err(SpecErrors(self.errors))
            }
        }
    }

    pub(crate) fn error<T>(&mut self, at: &Location, field: &str, message: impl Into<String>) -> Option<T> {
        self.errors.push(SpecError {
            file: self.file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            field: field.to_string(),
            message: message.into(),
        });
        None
    }

    /// A required field; a missing one is reported at the mapping that should hold it.
    pub(crate) fn require<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        parent: &Location,
        field: &str,
    ) -> Option<&'v Spanned<T>> {
        match value {
            Some(value) => Some(value),
            None => self.error(parent, field, "missing required field"),
        }
    }

    pub(crate) fn duration(&mut self, text: &Spanned<String>, field: &str) -> Option<Duration> {
        match parse_duration(&text.value) {
            Ok(duration) => Some(duration),
            Err(e) => self.error(&text.referenced, field, e.to_string()),
        }
    }

    /// An optional duration: the default when absent.
    pub(crate) fn duration_or(
        &mut self,
        text: &Option<Spanned<String>>,
        default: Duration,
        field: &str,
    ) -> Option<Duration> {
        match text {
            Some(text) => self.duration(text, field),
            None => Some(default),
        }
    }

    /// A path as written, resolved against the directory of the file being checked when
    /// relative, so a file means the same thing whatever directory sloguard is started from.
    pub(crate) fn path(&mut self, text: &Spanned<String>, field: &str) -> Option<PathBuf> {
        if text.value.is_empty() {
            return self.error(&text.referenced, field, "must not be empty");
        }
        let base = self.file.parent().unwrap_or(Path::new(""));
        Some(base.join(&text.value))
    }

    /// An absolute `http://` or `https://` URL without credentials; `secrets_hint` says where
    /// secrets go instead. The text is not repeated in these messages: a URL with a password in
    /// it must not be copied into logs.
    pub(crate) fn http_url(&mut self, text: &Spanned<String>, field: &str, secrets_hint: &str) -> Option<Url> {
        let url = match Url::parse(&text.value) {
            Ok(url) => url,
            Err(e) => return self.error(&text.referenced, field, format!("invalid URL: {e}")),
        };
        if !matches!(url.scheme(), "http" | "https") {
            let message = format!("must be an http:// or https:// URL; got scheme `{}`", url.scheme());
            return self.error(&text.referenced, field, message);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return self.error(&text.referenced, field, format!("must not contain credentials: {secrets_hint}"));
        }
        Some(url)
    }

    /// The base URL of an API sloguard appends paths to: an [`http_url`](Self::http_url) without
    /// query or fragment (they would end up in the middle of the request URL), returned without
    /// its trailing `/`. `api_path`, when given, is the path sloguard appends, which the base URL
    /// must not already end in, and an example of a correct base URL for the error message.
    pub(crate) fn base_url(
        &mut self,
        text: &Spanned<String>,
        field: &str,
        secrets_hint: &str,
        api_path: Option<(&str, &str)>,
    ) -> Option<String> {
        let url = self.http_url(text, field, secrets_hint)?;
        if url.query().is_some() || url.fragment().is_some() {
            return self.error(&text.referenced, field, "must not have a query or fragment: give the API's base URL");
        }
        let base = text.value.trim_end_matches('/');
        if let Some((api_path, example)) = api_path
            && base.ends_with(api_path)
        {
            let message = format!(
                "give the base URL without `{api_path}` (e.g. {example}): sloguard appends the API path itself"
            );
            return self.error(&text.referenced, field, message);
        }
        Some(base.to_string())
    }
}

/// Names the field at `at` in a document that failed to deserialize, e.g. `slos[1].objective`
/// for a type error in that value, or `slos[0].objetive` for an unknown key. serde-saphyr
/// reports a position but no path, so we re-read the document as a bare tree of mappings and
/// sequences with positions, and take the last key or value that starts at or before `at`.
/// `None` when the document cannot even be read as a tree (a syntax error).
fn field_path_at(text: &str, at: Location) -> Option<String> {
    let mut options = yaml_options();
    // Let a duplicate key through so the fields around it still get paths.
    options.duplicate_keys = DuplicateKeyPolicy::FirstWins;
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).ok()?;
    let mut starts = Vec::new();
    root.value.collect_starts(&root.referenced, String::new(), &mut starts);
    let target = (at.line(), at.column());
    starts.into_iter().filter(|(start, _)| *start <= target).max_by_key(|(start, _)| *start).map(|(_, path)| path)
}

/// The shape of a YAML document, with positions, and nothing else.
enum Node {
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// A mapping key as text, whatever scalar type it was written as.
struct Key(String);

impl Node {
    /// Appends `((line, column), path)` for this node and every key and value under it.
    fn collect_starts(&self, at: &Location, path: String, out: &mut Vec<((u64, u64), String)>) {
        out.push(((at.line(), at.column()), path.clone()));
        match self {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let child = join(&path, &key.value.0);
                    out.push(((key.referenced.line(), key.referenced.column()), child.clone()));
                    value.value.collect_starts(&value.referenced, child, out);
                }
            }
            Node::Seq(items) => {
                for (index, item) in items.iter().enumerate() {
                    item.value.collect_starts(&item.referenced, format!("{path}[{index}]"), out);
                }
            }
            Node::Scalar => {}
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Node, D::Error> {
                Node::deserialize(inner)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_bool<E: de::Error>(self, key: bool) -> Result<Key, E> {
                Ok(Key(key.to_string()))
            }
            fn visit_i64<E: de::Error>(self, key: i64) -> Result<Key, E> {
                Ok(Key(key.to_string()))
            }
            fn visit_u64<E: de::Error>(self, key: u64) -> Result<Key, E> {
                Ok(Key(key.to_string()))
            }
            fn visit_f64<E: de::Error>(self, key: f64) -> Result<Key, E> {
                Ok(Key(key.to_string()))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key(key.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
