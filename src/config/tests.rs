//! Daemon config loading tests, in the style of the spec tests: exact `line:column: field:
//! message` lines, so a wrong position fails as surely as a wrong message.

use std::env::VarError;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::spec::{Source, SpecError};

/// `env` as the whole environment.
fn lookup<'e>(env: &'e [(&str, &str)]) -> impl Fn(&str) -> Result<String, VarError> + 'e {
    |name: &str| {
        env.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()).ok_or(VarError::NotPresent)
    }
}

/// `parse_config` in an empty environment.
fn parse(path: &Path, yaml: &str) -> Result<DaemonConfig, SpecErrors> {
    parse_in_env(path, yaml, &[])
}

fn parse_in_env(path: &Path, yaml: &str, env: &[(&str, &str)]) -> Result<DaemonConfig, SpecErrors> {
    parse_config(path, yaml, &lookup(env)).map(|(config, _)| config)
}

/// Every error `parse_config` reports for `yaml`, without the file name prefix, in an empty
/// environment.
fn errors_of(yaml: &str) -> Vec<String> {
    errors_in_env(yaml, &[])
}

/// [`errors_of`] with `env` as the whole environment.
fn errors_in_env(yaml: &str, env: &[(&str, &str)]) -> Vec<String> {
    match parse_in_env(Path::new("c.yaml"), yaml, env) {
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
    let config = parse(Path::new("/etc/sloguard/sloguard.yaml"), VALID).expect("valid");
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
    let config = parse(Path::new("deploy/sloguard.yaml"), yaml).expect("valid");
    assert_eq!(config.listen, "[::]:9000".parse::<SocketAddr>().expect("address"));
    assert_eq!(config.data_dir, PathBuf::from("deploy/state"));
    let specs = ["deploy/specs", "deploy/../shared/specs", "/abs/specs/x.yaml"].map(PathBuf::from);
    assert_eq!(config.specs, specs);
    assert_eq!(config.evaluation_interval, Duration::from_secs(5));
    assert_eq!(config.flush_interval, Duration::from_secs(60));
    assert_eq!(config.event_retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(config.shutdown_grace, Duration::from_secs(20));
    // A config in the current directory has relative paths as written.
    let config = parse(Path::new("sloguard.yaml"), &valid_with("/var/lib/sloguard", "state")).expect("valid");
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
        errors_of(&format!("{VALID}notifier: {{}}\n")),
        ["4:1: notifier: unknown field `notifier`, expected one of listen, data_dir, specs, evaluation_interval, \
          flush_interval, event_retention, shutdown_grace, public_url, api, notifiers, delivery, reports"]
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

// Notification settings. Snippets are appended to `VALID`, so their first line is line 4.

/// The variables `examples/sloguard.full.yaml` and the tests below read secrets from.
const SECRETS: [(&str, &str); 5] = [
    ("SLOGUARD_API_TOKEN", "api-t0ken"),
    ("SLACK_BOT_TOKEN", "xoxb-1"),
    ("SMTP_PASSWORD", "smtp pass"),
    ("DEPLOYBOT_SECRET", "hmac"),
    ("PD_ROUTING_KEY", "R0UTING"),
];

fn secret(value: &str) -> Option<Secret> {
    Some(Secret::new(value.into()))
}

fn notification_errors(snippet: &str) -> Vec<String> {
    errors_in_env(&format!("{VALID}{snippet}"), &SECRETS)
}

#[test]
fn example_full_config_loads_with_its_secrets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("examples/sloguard.full.yaml");
    let (config, specs) = load_daemon_with_env(&path, &lookup(&SECRETS)).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert!(specs.iter().any(|spec| spec.service == "checkout"));
    let expected = DaemonConfig {
        path: path.clone(),
        listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        data_dir: PathBuf::from("/var/lib/sloguard"),
        specs: vec![root.join("examples/../slo-specs")],
        evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
        flush_interval: DEFAULT_FLUSH_INTERVAL,
        event_retention: DEFAULT_EVENT_RETENTION,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        public_url: "https://sloguard.internal.example".into(),
        api: ApiConfig { token: secret("api-t0ken"), limits: ApiLimits::default() },
        notifiers: Notifiers {
            slack: Some(SlackNotifier { token: Secret::new("xoxb-1".into()), api_url: DEFAULT_SLACK_API_URL.into() }),
            email: Some(EmailNotifier {
                host: "mail.example.com".into(),
                port: 587,
                tls: EmailTls::StartTls,
                from: "sloguard <sloguard@example.com>".into(),
                username: Some("sloguard".into()),
                password: secret("smtp pass"),
            }),
            webhooks: vec![(
                "deploybot".into(),
                WebhookNotifier {
                    url: Secret::new("https://deploybot.example/hooks/sloguard".into()),
                    hmac_secret: secret("hmac"),
                },
            )],
            alertmanager: Some(AlertmanagerNotifier { url: "http://alertmanager:9093".into() }),
            pagerduty: Some(PagerDutyNotifier {
                routing_key: Secret::new("R0UTING".into()),
                api_url: DEFAULT_PAGERDUTY_API_URL.into(),
            }),
        },
        delivery: Delivery { fallback: vec![Route::Email { to: "sre@example.com".into() }], ..Delivery::default() },
        reports: vec![Report {
            schedule: "0 0 9 * * Mon".into(),
            to: vec![Route::Email { to: "payments@example.com".into() }, Route::Slack { channel: "#payments".into() }],
            services: vec!["checkout".into()],
        }],
    };
    assert_eq!(config, expected);
}

#[test]
fn notification_defaults_and_file_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("api-token"), "from-file\n").expect("write token");
    fs::write(dir.path().join("pd-key"), "pd").expect("write key");
    let yaml = format!(
        "{VALID}public_url: https://sloguard.example/base/\napi: {{ token_file: api-token }}\nnotifiers:\n  \
         slack: {{ token_env: SLACK_BOT_TOKEN }}\n  email: {{ url: 'smtps://mail.example.com', from: a@example.com \
         }}\n  webhooks: {{ plain: {{ url: 'http://10.0.0.1:8080/hook?x=1' }} }}\n  \
         pagerduty: {{ routing_key_file: pd-key }}\ndelivery: {{ max_backoff: 1m }}\n"
    );
    let config =
        parse_in_env(&dir.path().join("sloguard.yaml"), &yaml, &SECRETS).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert_eq!(config.public_url, "https://sloguard.example/base");
    assert_eq!(config.api.token, secret("from-file"));
    let Notifiers { slack, email, webhooks, alertmanager, pagerduty } = config.notifiers;
    assert_eq!(slack.map(|s| s.api_url).as_deref(), Some(DEFAULT_SLACK_API_URL));
    let email = email.expect("email");
    assert_eq!((email.port, email.tls, email.username, email.password), (465, EmailTls::Implicit, None, None));
    assert_eq!(
        webhooks[0].1,
        WebhookNotifier { url: Secret::new("http://10.0.0.1:8080/hook?x=1".into()), hmac_secret: None }
    );
    assert_eq!(alertmanager, None);
    assert_eq!(
        pagerduty,
        Some(PagerDutyNotifier { routing_key: Secret::new("pd".into()), api_url: DEFAULT_PAGERDUTY_API_URL.into() })
    );
    assert_eq!(config.delivery, Delivery { max_backoff: Duration::from_secs(60), ..Delivery::default() });
    assert_eq!(config.reports, []);
}

#[test]
fn bad_public_url() {
    assert_eq!(
        notification_errors("public_url: sloguard.example\n"),
        ["4:13: public_url: invalid URL: relative URL without a base"]
    );
    assert_eq!(
        notification_errors("public_url: 'https://sloguard.example/?x=1'\n"),
        ["4:13: public_url: must not have a query or fragment: give the API's base URL"]
    );
}

#[test]
fn api_limits_default_and_validate() {
    let config = parse(Path::new("c.yaml"), &format!("{VALID}api: {{}}\n")).expect("valid");
    assert_eq!(config.api, ApiConfig::default());
    let yaml = format!(
        "{VALID}api:\n  header_timeout: 300ms\n  body_timeout: 2s\n  idle_timeout: 5m\n  max_connections: 8\n  \
         max_body_size: 1KiB\n"
    );
    let config = parse(Path::new("c.yaml"), &yaml).expect("valid");
    let expected = ApiLimits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(300),
        max_connections: 8,
        max_body_bytes: 1024,
    };
    assert_eq!(config.api, ApiConfig { token: None, limits: expected });
    let yaml = format!(
        "{VALID}api:\n  header_timeout: 0s\n  body_timeout: 2h\n  idle_timeout: soon\n  max_connections: 0\n  \
         max_body_size: 1GiB\n"
    );
    assert_eq!(
        errors_of(&yaml),
        [
            "5:19: api.header_timeout: invalid duration \"0s\": must be greater than zero",
            "6:17: api.body_timeout: must be more than 0 and at most 1h",
            "7:17: api.idle_timeout: invalid duration \"soon\": expected a whole number at \"soon\"",
            "8:20: api.max_connections: must be between 1 and 65536",
            "9:18: api.max_body_size: must be at most 16MiB",
        ]
    );
    assert_eq!(
        errors_of(&format!("{VALID}api: {{ max_body_size: 64k }}\n")),
        ["4:23: api.max_body_size: invalid size \"64k\": unknown unit \"k\" (units: B KiB MiB GiB)"]
    );
}

#[test]
fn bad_api_token() {
    assert_eq!(
        notification_errors("api: { token_env: NOT_SET }\n"),
        ["4:19: api.token_env: environment variable NOT_SET is not set"]
    );
    assert_eq!(
        notification_errors("api: { token_env: SLOGUARD_API_TOKEN, token_file: t }\n"),
        ["4:51: api.token_file: give either `token_env` or `token_file`, not both"]
    );
    assert_eq!(
        errors_in_env(&format!("{VALID}api:\n  token_env: T\n"), &[("T", "two\nlines")]),
        ["5:14: api.token_env: environment variable T contains characters not allowed in an HTTP header"]
    );
}

#[test]
fn bad_slack_and_pagerduty() {
    assert_eq!(
        notification_errors("notifiers:\n  slack: { api_url: 'https://slack.com/api?x' }\n  pagerduty: {}\n"),
        [
            "5:10: notifiers.slack: missing `token_env` or `token_file` (one of them)",
            "5:21: notifiers.slack.api_url: must not have a query or fragment: give the API's base URL",
            "6:14: notifiers.pagerduty: missing `routing_key_env` or `routing_key_file` (one of them)",
        ]
    );
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("empty"), "\n").expect("write key");
    let yaml = format!("{VALID}notifiers:\n  pagerduty:\n    routing_key_file: empty\n");
    let Err(SpecErrors(errors)) = parse_in_env(&dir.path().join("c.yaml"), &yaml, &[]) else { panic!("must fail") };
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:6:23: notifiers.pagerduty.routing_key_file: routing key file {} is empty",
            dir.path().join("c.yaml").display(),
            dir.path().join("empty").display()
        )
    );
}

#[test]
fn bad_email() {
    let email = |settings: &str| notification_errors(&format!("notifiers:\n  email:\n{settings}"));
    assert_eq!(email("    from: a@example.com\n"), ["6:5: notifiers.email.url: missing required field"]);
    assert_eq!(
        email("    url: smtp://mail.example.com?tls=none\n    from: a@example.com\n"),
        ["6:10: notifiers.email.url: plaintext SMTP only to loopback (127.0.0.0/8, ::1, localhost): use smtps:// or \
          smtp:// with STARTTLS (the default)"]
    );
    assert_eq!(
        email("    url: smtps://u:p@mail.example.com\n    from: a@example.com\n"),
        ["6:10: notifiers.email.url: must not contain credentials: use `username` and `password_env` or \
          `password_file`"]
    );
    assert_eq!(
        email("    url: smtp://127.0.0.1?tls=none\n    from: sloguard\n"),
        ["7:11: notifiers.email.from: invalid mailbox `sloguard`: expected user@example.com or `Name \
          <user@example.com>`"]
    );
    assert_eq!(
        email("    url: smtp://localhost:1025?tls=none\n    from: a@example.com\n    username: u\n"),
        ["8:15: notifiers.email.username: needs `password_env` or `password_file`"]
    );
    assert_eq!(
        email("    url: smtp://localhost?tls=none\n    from: a@example.com\n    password_env: SMTP_PASSWORD\n"),
        ["8:19: notifiers.email.password_env: needs `username`"]
    );
    assert_eq!(
        email("    url: smtp://mail.example.com\n    from: a@example.com\n    username: ''\n"),
        ["8:15: notifiers.email.username: must not be empty (omit the field instead)"]
    );
}

#[test]
fn bad_webhooks_and_alertmanager() {
    assert_eq!(
        notification_errors(
            "notifiers:\n  webhooks:\n    Deploy: { url: 'http://x/h' }\n    ok: { url: 'ftp://x/h' }\n    \
             nourl: {}\n  alertmanager: { url: 'http://am:9093/api/v2/' }\n"
        ),
        [
            "6:5: notifiers.webhooks.Deploy: invalid webhook name `Deploy`: use lowercase letters, digits, `_` and `-`",
            "7:16: notifiers.webhooks.ok.url: must be an http:// or https:// URL; got scheme `ftp`",
            "8:12: notifiers.webhooks.nourl.url: missing required field (or `url_env`/`url_file`, for a URL that \
             holds a token)",
            "9:24: notifiers.alertmanager.url: give the base URL without `/api/v2` (e.g. http://alertmanager:9093): \
             sloguard appends the API path itself",
        ]
    );
    assert_eq!(
        notification_errors("notifiers:\n  webhooks: { hook: { url: 'https://u:p@x/h' } }\n"),
        ["5:28: notifiers.webhooks.hook.url: must not contain credentials: give secrets in the `*_env` / `*_file` \
          keys"]
    );
}

#[test]
fn bad_delivery() {
    assert_eq!(
        notification_errors(
            "delivery:\n  repeat_interval: 4\n  per_destination_per_minute: 0\n  fallback: ['sms:1']\n"
        ),
        [
            "5:20: delivery.repeat_interval: invalid duration \"4\": missing unit after the number (units: ms s m h d \
             w y)",
            "6:31: delivery.per_destination_per_minute: must be at least 1",
            "7:14: delivery.fallback[0]: unknown route `sms:1`: expected slack:#channel, slack:<channel ID>, \
             email:<address>, webhook:<name>, alertmanager or pagerduty",
        ]
    );
    assert_eq!(
        notification_errors("delivery: { per_destination_per_minute: -1 }\n"),
        ["4:41: delivery.per_destination_per_minute: invalid u32"]
    );
}

#[test]
fn config_routes_need_their_notifiers() {
    assert_eq!(
        notification_errors(
            "notifiers:\n  webhooks: { deploybot: { url: 'http://x/h' } }\ndelivery:\n  fallback: ['slack:#sre', \
             'webhook:deploybot', 'webhook:other', pagerduty, 'email:a@example.com', alertmanager]\n"
        ),
        [
            "7:14: delivery.fallback[0]: route slack:#sre needs notifiers.slack",
            "7:49: delivery.fallback[2]: route webhook:other needs notifiers.webhooks.other",
            "7:66: delivery.fallback[3]: route pagerduty needs notifiers.pagerduty",
            "7:77: delivery.fallback[4]: route email:a@example.com needs notifiers.email",
            "7:100: delivery.fallback[5]: route alertmanager needs notifiers.alertmanager",
        ]
    );
    // A notifier with errors of its own is still declared: routes to it are not errors too.
    assert_eq!(
        notification_errors("notifiers:\n  slack: {}\ndelivery: { fallback: ['slack:#sre'] }\n"),
        ["5:10: notifiers.slack: missing `token_env` or `token_file` (one of them)"]
    );
}

#[test]
fn bad_reports() {
    assert_eq!(
        notification_errors(
            "notifiers: { pagerduty: { routing_key_env: PD_ROUTING_KEY } }\nreports:\n  - schedule: '0 9 * * Mon'\n    \
             to: [pagerduty]\n  - schedule: '0 0 25 * * *'\n    to: []\n  - { services: [a, b, a] }\n"
        ),
        [
            "6:15: reports[0].schedule: cron needs a seconds field: `0 0 9 * * Mon`",
            "8:15: reports[1].schedule: invalid cron schedule: Component error: Number out of bounds.",
            "9:9: reports[1].to: must list at least one route",
            "10:5: reports[2].schedule: missing required field",
            "10:5: reports[2].to: missing required field",
            "10:24: reports[2].services[2]: duplicate service `a`: already listed as reports[2].services[0]",
        ]
    );
    assert_eq!(
        notification_errors("reports: [{ schedule: '0 0 9 * * Mon', to: ['email:x@example.com'] }]\n"),
        ["4:45: reports[0].to[0]: route email:x@example.com needs notifiers.email"]
    );
}

/// A spec for `service` with a scrape source and `notify` appended verbatim.
fn spec_with_notify(service: &str, notify: &str) -> String {
    spec_text(service, &format!("{SCRAPE_SOURCE}{notify}"))
}

#[test]
fn load_daemon_checks_spec_routes_and_report_services() {
    let dir = daemon_dir(&[
        ("a.yaml", spec_with_notify("checkout", "notify:\n  page: [pagerduty, 'slack:#x']\n  freeze: ['webhook:y']\n")),
        ("b.yaml", spec_with_notify("payments", "notify: { ticket: ['email:a@example.com'] }\n")),
    ]);
    let config = dir.path().join("sloguard.yaml");
    fs::write(
        &config,
        "listen: 127.0.0.1:0\ndata_dir: state\nspecs: specs\nnotifiers: { pagerduty: { routing_key_env: K } }\n\
         reports: [{ schedule: '0 0 9 * * Mon', to: [pagerduty], services: [checkout, cart] }]\n",
    )
    .expect("write config");
    let env = [("K", "key")];
    let Err(SpecErrors(errors)) = load_daemon_with_env(&config, &lookup(&env)) else { panic!("must fail") };
    let shown: Vec<String> =
        errors.iter().map(|e| e.to_string().replace(&format!("{}/specs/", dir.path().display()), "")).collect();
    assert_eq!(
        shown,
        [
            "a.yaml:13:21: notify.page[1]: route slack:#x needs notifiers.slack in sloguard.yaml",
            "a.yaml:14:12: notify.freeze[0]: route webhook:y needs notifiers.webhooks.y in sloguard.yaml",
            "b.yaml:12:20: notify.ticket[0]: route email:a@example.com needs notifiers.email in sloguard.yaml",
        ]
    );
    // Once the specs load, report services are checked against them, at the config's position.
    fs::write(dir.path().join("specs/a.yaml"), spec_with_notify("checkout", "notify: { page: [pagerduty] }\n"))
        .expect("write spec");
    fs::remove_file(dir.path().join("specs/b.yaml")).expect("remove spec");
    let Err(SpecErrors(errors)) = load_daemon_with_env(&config, &lookup(&env)) else { panic!("must fail") };
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!("{}:5:78: reports[0].services[1]: no loaded spec defines service `cart`", config.display())]
    );
    fs::write(
        &config,
        "listen: 127.0.0.1:0\ndata_dir: state\nspecs: specs\nnotifiers: { pagerduty: { routing_key_env: K } }\n",
    )
    .expect("write config");
    let (_, specs) = load_daemon_with_env(&config, &lookup(&env)).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert_eq!(specs[0].notify.page, [Route::PagerDuty]);
}

#[test]
fn public_url_defaults_to_an_address_a_reader_can_open() {
    let url_for = |listen: &str| {
        let yaml = format!("listen: '{listen}'\ndata_dir: /var/lib/sloguard\nspecs: slo-specs\n");
        parse(Path::new("c.yaml"), &yaml).unwrap_or_else(|e| panic!("{:#?}", e.0)).public_url
    };
    assert_eq!(url_for("127.0.0.1:9464"), "http://127.0.0.1:9464");
    for wildcard in ["0.0.0.0:9464", "[::]:9464"] {
        let url = url_for(wildcard);
        assert!(url.starts_with("http://") && url.ends_with(":9464"), "{url}");
        assert!(!url.contains("0.0.0.0") && !url.contains("[::]"), "{wildcard} gave {url}");
    }
}

/// An incoming-webhook URL carries its token, so it may come from the environment or a file, is
/// checked like any URL, and never shows in a message or in the config's debug output.
#[test]
fn a_webhook_url_can_be_a_secret() {
    let token_url = "https://hooks.example/services/T0/B0/s3cr3t";
    let env = [("HOOK_URL", token_url), ("BAD_HOOK_URL", "hooks.example/s3cr3t"), ("FTP_HOOK_URL", "ftp://x/s3cr3t")];
    let yaml = format!("{VALID}notifiers:\n  webhooks: {{ chat: {{ url_env: HOOK_URL }} }}\n");
    let config = parse_in_env(Path::new("c.yaml"), &yaml, &env).unwrap_or_else(|e| panic!("{:#?}", e.0));
    assert_eq!(config.notifiers.webhooks[0].1.url.expose(), token_url);
    assert!(!format!("{config:?}").contains("s3cr3t"), "the URL leaked into Debug output");

    let errors = errors_in_env(
        &format!(
            "{VALID}notifiers:\n  webhooks:\n    bad: {{ url_env: BAD_HOOK_URL }}\n    ftp: {{ url_env: FTP_HOOK_URL }}\n    \
             both: {{ url: 'https://x/h', url_env: HOOK_URL }}\n"
        ),
        &env,
    );
    assert_eq!(
        errors,
        [
            "6:21: notifiers.webhooks.bad.url_env: the secret is not a valid URL: relative URL without a base",
            "7:21: notifiers.webhooks.ftp.url_env: the secret is not an http:// or https:// URL",
            "8:42: notifiers.webhooks.both: give one of `url`, `url_env` or `url_file`, not several",
        ]
    );
    assert!(errors.iter().all(|e| !e.contains("s3cr3t")));
}
