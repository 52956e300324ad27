use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

/// `(name, value)` pairs of a sample's labels, owned, in written order.
fn labels_of(sample: &Sample<'_>) -> Vec<(String, String)> {
    sample.labels.iter().map(|(k, v)| (k.to_owned(), v.into_owned())).collect()
}

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The only sample of `input`, which must parse strictly.
fn one(input: &str) -> Sample<'_> {
    let samples = parse_strict(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(samples.len(), 1, "{input:?}");
    samples[0]
}

/// Strict parsing of `input` fails with exactly `expected` ("line N: message").
fn check_error(input: &str, expected: &str) {
    let err = parse_strict(input.as_bytes()).expect_err(input);
    assert_eq!(err.to_string(), expected, "input: {input:?}");
}

/// What a sample means, comparable even when its value is NaN (NaN != NaN under `PartialEq`).
fn meaning<'a>(s: &Sample<'a>) -> (&'a str, &'a str, &'a str, u64, Option<i64>) {
    let bits = if s.value.is_nan() { f64::NAN.to_bits() } else { s.value.to_bits() };
    (s.series, s.name, s.labels.raw(), bits, s.timestamp_ms)
}

#[test]
fn help_type_and_other_comments_are_skipped() {
    let input = "# HELP up Whether the target is up.\n\
                 # TYPE up gauge\n\
                 # HELP up Repeated HELP is fine.\n\
                 # TYPE up gauge\n\
                 #no space, so a plain comment\n\
                 # UNIT up seconds\n\
                 #\n\
                 # just words\n\
                 up 1\n";
    let s = one(input);
    assert_eq!((s.name, s.value), ("up", 1.0));
}

#[test]
fn blank_lines_crlf_and_missing_final_newline() {
    let input = "\n  \n\t\r\na 1\r\n\r\nb{x=\"y\"} 2 1700000000000\r\nc 3";
    let samples = parse_strict(input.as_bytes()).unwrap();
    let got: Vec<_> = samples.iter().map(|s| (s.series, s.value, s.timestamp_ms)).collect();
    assert_eq!(got, [("a", 1.0, None), ("b{x=\"y\"}", 2.0, Some(1_700_000_000_000)), ("c", 3.0, None)]);
}

#[test]
fn metric_names_with_colons_and_underscores() {
    for name in ["job:rate:5m", ":x", "_", "__x__", "a1:b2_c3"] {
        let line = format!("{name}{{job=\"a\"}} 1");
        let s = one(&line);
        assert_eq!(s.name, name);
        assert_eq!(s.series, format!("{name}{{job=\"a\"}}"));
    }
}

#[test]
fn label_values_with_escapes_and_delimiters() {
    let s = one(r#"m{a="back\\slash",b="say \"hi\"",c="two\nlines",d="{x=1, y=2} }{",e="",f="ünï cödé"} 1"#);
    assert_eq!(
        labels_of(&s),
        pairs(&[
            ("a", "back\\slash"),
            ("b", "say \"hi\""),
            ("c", "two\nlines"),
            ("d", "{x=1, y=2} }{"),
            ("e", ""),
            ("f", "ünï cödé"),
        ])
    );
    assert!(matches!(s.labels.label("d"), Some(Cow::Borrowed(_))));
    assert!(matches!(s.labels.label("a"), Some(Cow::Owned(_))));
    assert_eq!(s.labels.label("missing"), None);
}

#[test]
fn unknown_escapes_are_kept_verbatim_like_the_prometheus_server() {
    let s = one(r#"m{path="C:\Program Files\x",tab="a\tb"} 1"#);
    assert_eq!(labels_of(&s), pairs(&[("path", r"C:\Program Files\x"), ("tab", r"a\tb")]));
}

#[test]
fn trailing_comma_empty_block_and_no_block() {
    let s = one(r#"m{a="b",} 1"#);
    assert_eq!(labels_of(&s), pairs(&[("a", "b")]));
    assert_eq!(s.series, r#"m{a="b",}"#);

    let s = one("m{} 1");
    assert_eq!((s.series, s.labels.raw()), ("m{}", ""));
    assert_eq!(s.labels.iter().count(), 0);

    let s = one("m 1");
    assert_eq!((s.series, s.labels.raw()), ("m", ""));
}

#[test]
fn blanks_between_tokens() {
    let s = one("  \tm { a = \"x y\" ,\tb=\"z\" , } \t 1.5 \t 42 \t");
    assert_eq!(s.name, "m");
    assert_eq!(s.series, "m { a = \"x y\" ,\tb=\"z\" , }");
    assert_eq!(labels_of(&s), pairs(&[("a", "x y"), ("b", "z")]));
    assert_eq!((s.value, s.timestamp_ms), (1.5, Some(42)));

    // Prometheus accepts a value right after the closing brace.
    assert_eq!(one(r#"m{a="b"}7"#).value, 7.0);
}

#[test]
fn values() {
    let cases = [
        ("NaN", f64::NAN),
        ("nan", f64::NAN),
        ("+Inf", f64::INFINITY),
        ("Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("1.5e+3", 1500.0),
        ("1.5E-3", 0.0015),
        ("-2", -2.0),
        ("-0.25", -0.25),
        ("42", 42.0),
        (".5", 0.5),
        ("9007199254740993", 9_007_199_254_740_992.0),
        ("1e400", f64::INFINITY),
        ("999999999999999", 999_999_999_999_999.0),
        ("-12345678.9012345", -12_345_678.901_234_5),
        ("0.000000000000001", 1e-15),
        ("1.", 1.0),
    ];
    for (text, want) in cases {
        let got = one(&format!("m {text}")).value;
        if want.is_nan() {
            assert!(got.is_nan(), "{text}: {got}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{text}: {got}");
        }
    }
}

#[test]
fn timestamps() {
    assert_eq!(one("m 1").timestamp_ms, None);
    assert_eq!(one("m 1 1700000000123").timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(one("m 1 -5000").timestamp_ms, Some(-5000));
    assert_eq!(one("m 1 0").timestamp_ms, Some(0));
    assert_eq!(one("m 1 -9223372036854775808").timestamp_ms, Some(i64::MIN));
}

#[test]
fn openmetrics_eof_stops_parsing() {
    let samples = parse_strict(b"a 1\n# EOF\nthis is { not parsed\n").unwrap();
    assert_eq!(samples.len(), 1);
    let samples = parse_strict(b"a 1\n# EOF\r\n").unwrap();
    assert_eq!(samples.len(), 1);
    // Anything else after `# EOF` makes it an ordinary comment.
    let samples = parse_strict(b"# EOF now\na 1\n").unwrap();
    assert_eq!(samples.len(), 1);
}

#[test]
fn series_text_is_name_plus_block_as_written() {
    let s = one("up{job=\"a\",instance=\"h:9\"}   1  ");
    assert_eq!(s.series, "up{job=\"a\",instance=\"h:9\"}");
    assert_eq!(s.labels.raw(), "job=\"a\",instance=\"h:9\"");
}

#[test]
fn errors_name_the_line_and_what_was_expected() {
    let head = "# HELP m Help.\n# TYPE m counter\n\n# comment\n\n";
    let cases = [
        ("m{code 1", "line 6: expected '=' after label name \"code\", found '1'"),
        ("m{code=200} 1", "line 6: expected '\"' to open the value of label \"code\", found '2'"),
        ("m{code=\"200} 1", "line 6: unterminated value of label \"code\": no closing '\"' before the end of the line"),
        ("m{code=\"2\\", "line 6: unterminated value of label \"code\": no closing '\"' before the end of the line"),
        ("m{a=\"1\" b=\"2\"} 1", "line 6: expected ',' or '}' after the value of label \"a\", found 'b'"),
        ("m{a=\"1\",a=\"2\"} 1", "line 6: duplicate label name \"a\""),
        ("m{,} 1", "line 6: expected label name or '}', found ','"),
        ("m{1a=\"x\"} 1", "line 6: expected label name or '}', found '1'"),
        ("m{a=\"x\"", "line 6: expected ',' or '}' after the value of label \"a\", found end of input"),
        ("m", "line 6: expected value after \"m\", found end of input"),
        ("m{a=\"b\"}\n", "line 6: expected value after \"m{a=\\\"b\\\"}\", found end of line"),
        ("m-1 2", "line 6: expected ' ' or '{' after metric name \"m\", found '-'"),
        ("1m 2", "line 6: expected metric name, found '1'"),
        ("é 2", "line 6: expected metric name, found 'é'"),
        ("m abc", "line 6: invalid value \"abc\": expected a number, NaN, +Inf or -Inf"),
        ("m 1 12.5", "line 6: invalid timestamp \"12.5\": expected integer milliseconds since the epoch"),
        (
            "m 1 99999999999999999999",
            "line 6: invalid timestamp \"99999999999999999999\": expected integer milliseconds since the epoch",
        ),
        ("m 1 2 3", "line 6: unexpected '3' after timestamp"),
        ("m 1\r2", "line 6: unexpected '\\r' after timestamp"),
        ("m{a=\"\u{7f}\\\"\"} \u{1} x", "line 6: invalid value \"\\u{1}\": expected a number, NaN, +Inf or -Inf"),
        (
            "# TYPE m countr",
            "line 6: unknown metric type \"countr\" in # TYPE (expected one of counter, gauge, histogram, summary, untyped, gaugehistogram, stateset, info, unknown)",
        ),
        ("# TYPE m counter extra", "line 6: unexpected text after metric type \"counter\""),
        ("# TYPE", "line 6: expected metric name after # TYPE, found end of input"),
        ("# HELP 9m help", "line 6: expected metric name after # HELP, found '9'"),
        ("# HELP m-x help", "line 6: expected ' ' after metric name \"m\" in # HELP, found '-'"),
    ];
    for (line, expected) in cases {
        check_error(&format!("{head}{line}"), expected);
    }
}

#[test]
fn invalid_utf8_costs_only_its_line() {
    let mut input = b"a 1\nb{x=\"".to_vec();
    input.extend_from_slice(&[0xff, 0xfe]);
    input.extend_from_slice(b"\"} 2\n\xc3\nc{x=\"\xc3\xa9\"} 3\n");
    let res = parse_lenient(&input);
    let got: Vec<_> = res.samples.iter().map(|s| s.series).collect();
    assert_eq!(got, ["a", "c{x=\"é\"}"]);
    let errors: Vec<_> = res.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["line 2: invalid UTF-8", "line 3: expected metric name, found byte 0xC3"]);
}

#[test]
fn lenient_skips_bad_lines_and_keeps_the_rest() {
    let input = "# HELP a A.\na 1\nb{x=} 2\n\nc 3\nd{y=\"1\",y=\"2\"} 4\ne 5 nope\nf 6\n";
    let res = parse_lenient(input.as_bytes());
    let got: Vec<_> = res.samples.iter().map(|s| (s.name, s.value)).collect();
    assert_eq!(got, [("a", 1.0), ("c", 3.0), ("f", 6.0)]);
    let lines: Vec<_> = res.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 6, 7]);
    assert_eq!(parse_strict(input.as_bytes()).unwrap_err(), res.errors[0].clone());
}

#[test]
fn escape_label_value_escapes_exactly_three_characters() {
    assert!(matches!(escape_label_value("plain {x=1, y} ü"), Cow::Borrowed("plain {x=1, y} ü")));
    assert_eq!(escape_label_value("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\te");
}

// --- Property tests -------------------------------------------------------------------------

/// One series as a test wants it to mean, before encoding.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// The free choices the format allows in how a page is written.
#[derive(Debug, Clone)]
struct Layout {
    blank: &'static str,
    blanks_in_labels: bool,
    trailing_comma: bool,
    empty_braces: bool,
    crlf: bool,
    docs: bool,
}

fn label_value() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec!['"', '\\', '\n', '\r', '\t', '{', '}', ',', '=', ' ']);
    prop::collection::vec(prop_oneof![3 => any::<char>(), 2 => special], 0..12)
        .prop_map(|chars| chars.into_iter().collect())
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
    ]
}

fn series() -> impl Strategy<Value = Series> {
    let labels = prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,10}", label_value()), 0..6);
    ("[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", labels, value(), prop::option::of(any::<i64>())).prop_map(
        |(name, mut labels, value, timestamp_ms)| {
            let mut seen = HashSet::new();
            labels.retain(|(k, _)| seen.insert(k.clone()));
            Series { name, labels, value, timestamp_ms }
        },
    )
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::sample::select(vec![" ", "\t", "  \t"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(blank, blanks_in_labels, trailing_comma, empty_braces, crlf, docs)| Layout {
            blank,
            blanks_in_labels,
            trailing_comma,
            empty_braces,
            crlf,
            docs,
        })
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Debug is the shortest text that parses back to the same bits, exponent included.
        format!("{v:?}")
    }
}

/// The page for `series` written in `layout`, and the series text each sample must report.
fn encode(series: &[Series], layout: &Layout) -> (String, Vec<String>) {
    let eol = if layout.crlf { "\r\n" } else { "\n" };
    let pad = if layout.blanks_in_labels { layout.blank } else { "" };
    let mut page = String::new();
    let mut texts = Vec::new();
    for s in series {
        if layout.docs {
            page += &format!("# HELP {} Help with \\\\ and \\n.{eol}", s.name);
            page += &format!("# TYPE {} untyped{eol}{eol}", s.name);
        }
        let mut text = s.name.clone();
        if !s.labels.is_empty() || layout.empty_braces {
            text += "{";
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    text += &format!("{pad},{pad}");
                }
                text += &format!("{pad}{k}{pad}={pad}\"{}\"", escape_label_value(v));
            }
            if layout.trailing_comma && !s.labels.is_empty() {
                text += ",";
            }
            text += &format!("{pad}}}");
        }
        page += &format!("{text}{}{}", layout.blank, format_value(s.value));
        if let Some(ts) = s.timestamp_ms {
            page += &format!("{}{ts}", layout.blank);
        }
        page += eol;
        texts.push(text);
    }
    (page, texts)
}

/// `page` with some bytes overwritten and some inserted, to reach every error path.
fn mutated_page() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"{}=\",\\ \t\r\n#:_aZ09.e+-".to_vec()),];
    let edits = prop::collection::vec((any::<prop::sample::Index>(), byte, any::<bool>()), 0..8);
    (prop::collection::vec(series(), 0..6), layout(), edits).prop_map(|(series, layout, edits)| {
        let mut page = encode(&series, &layout).0.into_bytes();
        for (at, byte, insert) in edits {
            if page.is_empty() || insert {
                let at = at.index(page.len() + 1);
                page.insert(at, byte);
            } else {
                let at = at.index(page.len());
                page[at] = byte;
            }
        }
        page
    })
}

proptest! {
    #[test]
    fn plain_decimal_fast_path_gives_the_bits_of_std_parse(
        text in "-?[0-9]{0,18}(\\.[0-9]{0,18})?",
    ) {
        let want = text.parse::<f64>().ok().map(f64::to_bits);
        prop_assert_eq!(parse_value(&text).map(f64::to_bits), want);
    }

    #[test]
    fn encode_then_parse_round_trips(
        series in prop::collection::vec(series(), 0..8),
        layout in layout(),
    ) {
        let (page, texts) = encode(&series, &layout);
        let parsed = parse_strict(page.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{page}")))?;
        prop_assert_eq!(parsed.len(), series.len());
        for ((want, text), got) in series.iter().zip(&texts).zip(&parsed) {
            prop_assert_eq!(got.name, &want.name);
            prop_assert_eq!(got.series, text);
            prop_assert_eq!(&labels_of(got), &want.labels);
            for (k, v) in &want.labels {
                let found = got.labels.label(k);
                prop_assert_eq!(found.as_deref(), Some(v.as_str()));
            }
            if want.value.is_nan() {
                prop_assert!(got.value.is_nan());
            } else {
                prop_assert_eq!(got.value.to_bits(), want.value.to_bits());
            }
            prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
        }

        let lenient = parse_lenient(page.as_bytes());
        prop_assert!(lenient.errors.is_empty());
        let strict: Vec<_> = parsed.iter().map(meaning).collect();
        let lenient: Vec<_> = lenient.samples.iter().map(meaning).collect();
        prop_assert_eq!(strict, lenient);
    }

    #[test]
    fn lenient_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(
            prop_oneof![any::<u8>(), prop::sample::select(b"{}=\",\\ \n#a_:0.e+-IN".to_vec())],
            0..300,
        ),
    ) {
        let res = parse_lenient(&bytes);
        for sample in &res.samples {
            for (name, _) in sample.labels.iter() {
                prop_assert!(sample.labels.label(name).is_some());
            }
        }
    }

    #[test]
    fn strict_is_lenient_until_the_first_error(page in mutated_page()) {
        let lenient = parse_lenient(&page);
        let n_lines = page.split(|&b| b == b'\n').count();
        let lines: Vec<_> = lenient.errors.iter().map(|e| e.line).collect();
        prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "{:?}", lines);
        prop_assert!(lines.iter().all(|&l| (1..=n_lines).contains(&l)), "{:?}", lines);
        match parse_strict(&page) {
            Ok(strict) => {
                prop_assert!(lenient.errors.is_empty());
                let strict: Vec<_> = strict.iter().map(meaning).collect();
                let lenient: Vec<_> = lenient.samples.iter().map(meaning).collect();
                prop_assert_eq!(strict, lenient);
            }
            Err(err) => prop_assert_eq!(Some(&err), lenient.errors.first()),
        }
    }
}

// --- Differential oracle: prometheus-parse 0.2.5 -------------------------------------------
//
// prometheus-parse is only trusted on the subset it gets right (see ../shared/crates.md):
// names matching `\w+` (it drops names with `:`), label values without `{`, `}` (it drops the
// line), `,` or `=` (it truncates the value) and without escapes (it does not unescape `\"`,
// `\\`, `\n`), a non-empty label block (it drops `{}`), and no histogram or summary TYPE lines
// (it regroups those into buckets). It also skips malformed lines silently, so it cannot be an
// oracle for errors.

/// Samples as `(name, labels, value bits with one NaN, timestamp)`.
type Meaning = (String, BTreeMap<String, String>, u64, Option<i64>);

fn value_bits(v: f64) -> u64 {
    if v.is_nan() { f64::NAN.to_bits() } else { v.to_bits() }
}

fn prometheus_parse(page: &str, with_timestamps: &[bool]) -> Vec<Meaning> {
    let lines = page.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("reading from a str cannot fail");
    scrape
        .samples
        .iter()
        .zip(with_timestamps)
        .map(|(s, &with_ts)| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("the oracle page has no histograms or summaries: {other:?}"),
            };
            let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            // Without a timestamp it stamps the sample with the current time.
            let ts = with_ts.then(|| s.timestamp.timestamp_millis());
            (s.metric.clone(), labels, value_bits(value), ts)
        })
        .collect()
}

fn simple_series() -> impl Strategy<Value = Series> {
    let labels = prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[a-zA-Z0-9 _./:-]{0,12}"), 0..5);
    let value = prop_oneof![
        3 => -1e12..1e12f64,
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
    ];
    ("[a-zA-Z_][a-zA-Z0-9_]{0,15}", labels, value, prop::option::of(-1_000_000_000_000i64..4_000_000_000_000)).prop_map(
        |(name, mut labels, value, timestamp_ms)| {
            let mut seen = HashSet::new();
            labels.retain(|(k, _)| seen.insert(k.clone()));
            Series { name, labels, value, timestamp_ms }
        },
    )
}

proptest! {
    #[test]
    fn agrees_with_prometheus_parse_where_it_is_correct(
        series in prop::collection::vec(simple_series(), 0..10),
        docs in any::<bool>(),
    ) {
        let layout = Layout {
            blank: " ",
            blanks_in_labels: false,
            trailing_comma: false,
            empty_braces: false,
            crlf: false,
            docs,
        };
        let (page, _) = encode(&series, &layout);
        let ours: Vec<Meaning> = parse_strict(page.as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .iter()
            .map(|s| {
                let labels = labels_of(s).into_iter().collect();
                (s.name.to_owned(), labels, value_bits(s.value), s.timestamp_ms)
            })
            .collect();
        let with_timestamps: Vec<bool> = ours.iter().map(|s| s.3.is_some()).collect();
        let theirs = prometheus_parse(&page, &with_timestamps);
        prop_assert_eq!(ours, theirs);
    }
}

#[test]
fn right_where_prometheus_parse_is_wrong() {
    let page = concat!(
        "job:http_errors:rate5m{path=\"/a,b=c\"} 0.5\n",
        "http_requests_total{path=\"/{id}\",msg=\"say \\\"hi\\\"\"} 7\n",
    );
    let ours = parse_strict(page.as_bytes()).unwrap();
    let got: Vec<_> = ours.iter().map(|s| (s.name, labels_of(s), s.value)).collect();
    assert_eq!(
        got,
        [
            ("job:http_errors:rate5m", pairs(&[("path", "/a,b=c")]), 0.5),
            ("http_requests_total", pairs(&[("path", "/{id}"), ("msg", "say \"hi\"")]), 7.0),
        ]
    );

    // If prometheus-parse ever gets these right, crates.md's verdict on it needs revisiting.
    let theirs = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let found_right = |name: &str, label: &str, value: &str| {
        theirs.samples.iter().any(|s| s.metric == name && s.labels.get(label) == Some(value))
    };
    assert!(!found_right("job:http_errors:rate5m", "path", "/a,b=c"));
    assert!(!found_right("http_requests_total", "path", "/{id}"));
}
