//! Daemon config loading tests, in the style of the spec tests: exact `line:column: field:
//! message` lines, so a wrong position fails as surely as a wrong message.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::spec::{Source, SpecError};

/// Every error `parse_config` reports for `yaml`, without the file name prefix.
fn errors_of(yaml: &str) -> Vec<String> {
    match parse_config(Path::new("c.yaml"), yaml) {
        Ok(_) => Vec::new(),
        Err(SpecErrors(errors)) => {
            errors.iter().map(|e| e.to_string().strip_prefix("c.yaml:").expect("file prefix").to_string()).collect()
        }
    }
}

/// A valid config with only the required keys, one per line: `listen` on line 1, `data_dir` on
/// 2, `specs` on 3.
const VALID: &str = "\
listen: 127.0.0.1:9464
data_dir: /var/lib/sloguard
specs: /etc/sloguard/slo-specs
";

fn valid_with(from: &str, to: &str) -> String {
    assert_eq!(VALID.matches(from).count(), 1, "{from:?} must occur once in VALID");
    VALID.replace(from, to)
}

#[test]
fn required_keys_only_takes_defaults() {
    let config = parse_config(Path::new("/etc/sloguard/sloguard.yaml"), VALID).expect("valid");
    let expected = DaemonConfig {
        path: PathBuf::from("/etc/sloguard/sloguard.yaml"),
        listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        data_dir: PathBuf::from("/var/lib/sloguard"),
        specs: vec![PathBuf::from("/etc/sloguard/slo-specs")],
        evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
        flush_interval: DEFAULT_FLUSH_INTERVAL,
        event_retention: DEFAULT_EVENT_RETENTION,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        public_url: "http://127.0.0.1:9464".to_string(),
        api: ApiConfig::default(),
        notifiers: Notifiers::default(),
        delivery: Delivery::default(),
        reports: Vec::new(),
    };
    assert_eq!(config, expected);
}

#[test]
fn every_key_and_relative_paths_resolve_against_the_config_directory() {
    let yaml = "\
listen: '[::]:9000'
data_dir: state
specs: [specs, ../shared/specs, /abs/specs/x.yaml]
evaluation_interval: 5s
flush_interval: 1m
event_retention: 30d
shutdown_grace: 20s
";
    let config = parse_config(Path::new("deploy/sloguard.yaml"), yaml).expect("valid");
    assert_eq!(config.listen, "[::]:9000".parse::<SocketAddr>().expect("address"));
    assert_eq!(config.data_dir, PathBuf::from("deploy/state"));
    let specs = ["deploy/specs", "deploy/../shared/specs", "/abs/specs/x.yaml"].map(PathBuf::from);
    assert_eq!(config.specs, specs);
    assert_eq!(config.evaluation_interval, Duration::from_secs(5));
    assert_eq!(config.flush_interval, Duration::from_secs(60));
    assert_eq!(config.event_retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(config.shutdown_grace, Duration::from_secs(20));
    // A config in the current directory has relative paths as written.
    let config = parse_config(Path::new("sloguard.yaml"), &valid_with("/var/lib/sloguard", "state")).expect("valid");
    assert_eq!(config.data_dir, PathBuf::from("state"));
}

#[test]
fn bad_listen_address() {
    let message = |got: &str| {
        format!(
            "1:9: listen: invalid socket address `{got}`: expected an IP address and port, e.g. 127.0.0.1:9464 \
             or '[::]:9464'"
        )
    };
    assert_eq!(errors_of(&valid_with("127.0.0.1:9464", "localhost:9464")), [message("localhost:9464")]);
    assert_eq!(errors_of(&valid_with("127.0.0.1:9464", "9464")), [message("9464")]);
    assert_eq!(errors_of(&valid_with("127.0.0.1:9464", "127.0.0.1:99999")), [message("127.0.0.1:99999")]);
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        errors_of(""),
        [
            "1:1: listen: missing required field",
            "1:1: data_dir: missing required field",
            "1:1: specs: missing required field"
        ]
    );
    assert_eq!(errors_of("# daemon\nlisten: 127.0.0.1:1\nspecs: s\n"), ["2:1: data_dir: missing required field"]);
}

#[test]
fn unknown_key() {
    assert_eq!(
        errors_of(&format!("{VALID}notifiers: []\n")),
        ["4:1: notifiers: unknown field `notifiers`, expected one of listen, data_dir, specs, evaluation_interval, \
          flush_interval, event_retention, shutdown_grace"]
    );
}

#[test]
fn bad_durations() {
    assert_eq!(
        errors_of(&format!("{VALID}evaluation_interval: 10\nevent_retention: 1.5d\n")),
        [
            "4:22: evaluation_interval: invalid duration \"10\": missing unit after the number (units: ms s m h d w \
             y)",
            "5:18: event_retention: invalid duration \"1.5d\": expected a whole number at \".5d\"",
        ]
    );
    assert_eq!(
        errors_of(&format!("{VALID}shutdown_grace: 0s\n")),
        ["4:17: shutdown_grace: invalid duration \"0s\": must be greater than zero"]
    );
}

#[test]
fn bad_spec_paths() {
    assert_eq!(
        errors_of(&valid_with("/etc/sloguard/slo-specs", "[]")),
        ["3:8: specs: must list at least one spec file or directory"]
    );
    assert_eq!(errors_of(&valid_with("/etc/sloguard/slo-specs", "''")), ["3:8: specs: must not be empty"]);
    assert_eq!(
        errors_of(&valid_with("specs: /etc/sloguard/slo-specs", "specs:\n  - a\n  - ''")),
        ["5:5: specs[1]: must not be empty"]
    );
    assert_eq!(
        errors_of(&valid_with("/etc/sloguard/slo-specs", "{ dir: a }")),
        ["3:8: specs: invalid type: map, expected a path or a list of paths"]
    );
}

#[test]
fn unreadable_config_file_is_a_whole_file_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.yaml");
    let Err(SpecErrors(errors)) = load_config(&path) else { panic!("must fail") };
    assert_eq!(
        errors,
        [SpecError {
            file: path,
            line: 0,
            column: 0,
            field: String::new(),
            message: "cannot read config file: No such file or directory (os error 2)".into(),
        }]
    );
}

/// A minimal spec for `service`, with `source` appended verbatim.
fn spec_text(service: &str, source: &str) -> String {
    format!(
        "service: {service}\nslos:\n  - name: availability\n    objective: 99.9\n    window: 30d\n    sli:\n      \
         errors: 'e_total'\n      total: 't_total'\n{source}"
    )
}

const SCRAPE_SOURCE: &str = "source:\n  scrape:\n    targets: ['http://127.0.0.1:9100/metrics']\n";

/// A config in a fresh temporary directory pointing at its `specs/` subdirectory, holding `specs`.
fn daemon_dir(specs: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("specs")).expect("specs dir");
    for (name, text) in specs {
        fs::write(dir.path().join("specs").join(name), text).expect("write spec");
    }
    fs::write(dir.path().join("sloguard.yaml"), "listen: 127.0.0.1:0\ndata_dir: state\nspecs: specs\n")
        .expect("write config");
    dir
}

#[test]
fn load_daemon_loads_config_and_specs() {
    let dir = daemon_dir(&[("a.yaml", spec_text("checkout", SCRAPE_SOURCE))]);
    let (config, specs) = load_daemon(&dir.path().join("sloguard.yaml")).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert_eq!(config.data_dir, dir.path().join("state"));
    assert_eq!(config.specs, [dir.path().join("specs")]);
    let [spec] = specs.as_slice() else { panic!("one spec") };
    assert_eq!(spec.service, "checkout");
    assert!(
        matches!(&spec.source, Some(Source::Scrape(scrape)) if scrape.targets == ["http://127.0.0.1:9100/metrics"])
    );
}

#[test]
fn load_daemon_requires_a_source_and_reports_all_spec_errors_in_file_order() {
    let dir = daemon_dir(&[
        ("a.yaml", format!("# no source\n{}", spec_text("checkout", ""))),
        ("b.yaml", spec_text("payments", "source: {}\n")),
        ("c.yaml", spec_text("search", "")),
        ("d.yaml", spec_text("cart", SCRAPE_SOURCE)),
    ]);
    let Err(SpecErrors(errors)) = load_daemon(&dir.path().join("sloguard.yaml")) else { panic!("must fail") };
    let shown: Vec<String> =
        errors.iter().map(|e| e.to_string().replace(&format!("{}/specs/", dir.path().display()), "")).collect();
    assert_eq!(
        shown,
        [
            "a.yaml:2:10: source: service checkout has no source: (the daemon needs scrape or prometheus)",
            "b.yaml:9:9: source: missing `scrape` or `prometheus` (one of them)",
            "c.yaml:1:10: source: service search has no source: (the daemon needs scrape or prometheus)",
        ]
    );
}

#[test]
fn load_daemon_stops_at_config_errors() {
    let dir = daemon_dir(&[]);
    let path = dir.path().join("sloguard.yaml");
    fs::write(&path, "listen: nowhere\ndata_dir: state\nspecs: specs\n").expect("write config");
    let Err(SpecErrors(errors)) = load_daemon(&path) else { panic!("must fail") };
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column, errors[0].field.as_str()), (1, 9, "listen"));
}

#[test]
fn example_config_and_shipped_specs_load_for_the_daemon() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sloguard.yaml");
    let (config, specs) = load_daemon(&path).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9464)));
    assert_eq!(config.data_dir, Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-state"));
    assert_eq!(config.evaluation_interval, Duration::from_secs(5));
    assert!(specs.len() >= 2);
    assert!(specs.iter().all(|spec| spec.source.is_some()));
}
