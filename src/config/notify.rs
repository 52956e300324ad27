//! Checks of `sloguard.yaml`'s notification sections: `notifiers:` (the transports), `delivery:`
//! (retries, repeats, fallback) and `reports:` (scheduled digests), and which routes the
//! configured notifiers can deliver.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use croner::parser::{CronParser, Seconds};
use lettre::message::Mailbox;
use reqwest::Url;
use serde_saphyr::{Location, Spanned};

use super::raw::{
    RawAlertmanager, RawDelivery, RawEmail, RawList, RawNotifiers, RawPagerDuty, RawReport, RawSlack, RawWebhook,
};
use super::{
    AlertmanagerNotifier, DEFAULT_PAGERDUTY_API_URL, DEFAULT_SLACK_API_URL, Delivery, EmailNotifier, EmailTls,
    Notifiers, PagerDutyNotifier, Report, SlackNotifier, WebhookNotifier,
};
use crate::spec::check::{Checker, join};
use crate::spec::secret::SecretUse;
use crate::spec::{Route, RouteError, Secret, is_webhook_name};

/// Where credentials go instead of into a URL, for the "must not contain credentials" error.
pub(super) const SECRETS_HINT: &str = "give secrets in the `*_env` / `*_file` keys";

/// Implicit TLS (`smtps://`): the submission port of RFC 8314.
const SMTPS_PORT: u16 = 465;
/// STARTTLS: the message submission port of RFC 6409.
const SUBMISSION_PORT: u16 = 587;
/// Plaintext, to a local relay (Postfix, an SMTP sink in tests), which listens on 25.
const SMTP_PORT: u16 = 25;

/// The notifiers a route may name, by the key it needs (`notifiers.webhooks.deploybot`). Built
/// from the raw file while that file is checked, so a notifier with an error of its own does not
/// also make every route to it an error; and from the validated config for the specs.
#[derive(Debug, Default)]
pub(super) struct Configured(HashSet<String>);

impl Configured {
    pub(super) fn declared(raw: &RawNotifiers) -> Configured {
        let RawNotifiers { slack, email, webhooks, alertmanager, pagerduty } = raw;
        let webhooks = webhooks.iter().flat_map(|w| &w.value.0).map(|(name, _)| name.value.as_str());
        Configured::of(slack.is_some(), email.is_some(), webhooks, alertmanager.is_some(), pagerduty.is_some())
    }

    pub(super) fn validated(notifiers: &Notifiers) -> Configured {
        let Notifiers { slack, email, webhooks, alertmanager, pagerduty } = notifiers;
        let webhooks = webhooks.iter().map(|(name, _)| name.as_str());
        Configured::of(slack.is_some(), email.is_some(), webhooks, alertmanager.is_some(), pagerduty.is_some())
    }

    fn of<'w>(
        slack: bool,
        email: bool,
        webhooks: impl Iterator<Item = &'w str>,
        alertmanager: bool,
        pagerduty: bool,
    ) -> Configured {
        let fixed = [
            (slack, Route::Slack { channel: String::new() }),
            (email, Route::Email { to: String::new() }),
            (alertmanager, Route::Alertmanager),
            (pagerduty, Route::PagerDuty),
        ];
        let fixed = fixed.into_iter().filter(|(present, _)| *present).map(|(_, route)| notifier_key(&route));
        let webhooks = webhooks.map(|name| notifier_key(&Route::Webhook { name: name.to_string() }));
        Configured(fixed.chain(webhooks).collect())
    }

    /// `Err` with the `notifiers:` key the route needs when it is not configured.
    pub(super) fn deliverable(&self, route: &Route) -> Result<(), String> {
        let key = notifier_key(route);
        if self.0.contains(&key) { Ok(()) } else { Err(key) }
    }
}

/// The `notifiers:` entry a route is delivered through.
fn notifier_key(route: &Route) -> String {
    match route {
        Route::Slack { .. } => "notifiers.slack".into(),
        Route::Email { .. } => "notifiers.email".into(),
        Route::Webhook { name } => format!("notifiers.webhooks.{name}"),
        Route::Alertmanager => "notifiers.alertmanager".into(),
        Route::PagerDuty => "notifiers.pagerduty".into(),
    }
}

/// A report's service names as written, kept so [`super::load_daemon`] can point at one no
/// spec defines: the specs are loaded only after the config is checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServiceRef {
    pub field: String,
    pub at: Location,
    pub name: String,
}

/// `notifiers:`; absent, nothing is configured and every route is an error.
pub(super) fn notifiers(check: &mut Checker<'_>, raw: Option<&Spanned<RawNotifiers>>) -> Option<Notifiers> {
    let Some(raw) = raw else { return Some(Notifiers::default()) };
    let RawNotifiers { slack, email, webhooks, alertmanager, pagerduty } = &raw.value;
    let slack = optional(slack, |s| self::slack(check, s, "notifiers.slack"));
    let email = optional(email, |e| self::email(check, e, "notifiers.email"));
    let webhooks = match webhooks {
        Some(webhooks) => {
            let checked: Vec<_> = webhooks.value.0.iter().map(|(name, w)| webhook(check, name, w)).collect();
            checked.into_iter().collect()
        }
        None => Some(Vec::new()),
    };
    let alertmanager = optional(alertmanager, |a| self::alertmanager(check, a, "notifiers.alertmanager"));
    let pagerduty = optional(pagerduty, |p| self::pagerduty(check, p, "notifiers.pagerduty"));
    Some(Notifiers {
        slack: slack?,
        email: email?,
        webhooks: webhooks?,
        alertmanager: alertmanager?,
        pagerduty: pagerduty?,
    })
}

/// An optional section: `Some(None)` when absent, `None` when present but invalid.
fn optional<R, T>(raw: &Option<Spanned<R>>, check: impl FnOnce(&Spanned<R>) -> Option<T>) -> Option<Option<T>> {
    match raw {
        Some(raw) => check(raw).map(Some),
        None => Some(None),
    }
}

/// An optional API base URL, `default` when absent.
fn api_url_or(check: &mut Checker<'_>, text: &Option<Spanned<String>>, default: &str, field: &str) -> Option<String> {
    match text {
        Some(text) => check.base_url(text, field, SECRETS_HINT, None),
        None => Some(default.to_string()),
    }
}

fn slack(check: &mut Checker<'_>, raw: &Spanned<RawSlack>, path: &str) -> Option<SlackNotifier> {
    let RawSlack { token_env, token_file, api_url } = &raw.value;
    // Sent as `Authorization: Bearer`, as Slack's Web API expects a bot token.
    let token = check.required_secret(token_env, token_file, &raw.referenced, path, "token", SecretUse::Bearer);
    let api_url = api_url_or(check, api_url, DEFAULT_SLACK_API_URL, &join(path, "api_url"));
    Some(SlackNotifier { token: token?, api_url: api_url? })
}

fn email(check: &mut Checker<'_>, raw: &Spanned<RawEmail>, path: &str) -> Option<EmailNotifier> {
    let RawEmail { url, from, username, password_env, password_file } = &raw.value;
    let field = |key| join(path, key);
    let server = check.require(url, &raw.referenced, &field("url")).and_then(|url| match parse_smtp_url(&url.value) {
        Ok(server) => Some(server),
        Err(e) => check.error(&url.referenced, &field("url"), e.to_string()),
    });
    let from =
        check.require(from, &raw.referenced, &field("from")).and_then(|from| match Mailbox::from_str(&from.value) {
            Ok(_) => Some(from.value.clone()),
            Err(_) => {
                let message =
                    format!("invalid mailbox `{}`: expected user@example.com or `Name <user@example.com>`", from.value);
                check.error(&from.referenced, &field("from"), message)
            }
        });
    let username_given = username.as_ref().map(|u| (u, u.value.trim().is_empty()));
    let username = match username_given {
        Some((u, true)) => check.error(&u.referenced, &field("username"), "must not be empty (omit the field instead)"),
        Some((u, false)) => Some(Some(u.value.clone())),
        None => Some(None),
    };
    let password = check.optional_secret(password_env, password_file, path, "password", SecretUse::Opaque);
    let (username, password) = (username?, password?);
    // SMTP AUTH takes both; one without the other is a half-finished edit.
    match (username.is_some(), password.is_some(), username_given, password_env.as_ref().or(password_file.as_ref())) {
        (true, false, Some((u, _)), _) => {
            return check.error(&u.referenced, &field("username"), "needs `password_env` or `password_file`");
        }
        (false, true, _, Some(p)) => {
            let key = if password_env.is_some() { "password_env" } else { "password_file" };
            return check.error(&p.referenced, &field(key), "needs `username`");
        }
        _ => {}
    }
    let SmtpServer { host, port, tls } = server?;
    Some(EmailNotifier { host, port, tls, from: from?, username, password })
}

fn webhook(
    check: &mut Checker<'_>,
    name: &Spanned<String>,
    raw: &Spanned<RawWebhook>,
) -> Option<(String, WebhookNotifier)> {
    let path = join("notifiers.webhooks", &name.value);
    let valid_name = if is_webhook_name(&name.value) {
        Some(name.value.clone())
    } else {
        check.error(&name.referenced, &path, RouteError::WebhookName(name.value.clone()).to_string())
    };
    let RawWebhook { url, url_env, url_file, hmac_secret_env, hmac_secret_file } = &raw.value;
    let url = webhook_url(check, raw, url, url_env, url_file, &path);
    let hmac_secret = check.optional_secret(hmac_secret_env, hmac_secret_file, &path, "hmac_secret", SecretUse::Opaque);
    Some((valid_name?, WebhookNotifier { url: url?, hmac_secret: hmac_secret? }))
}

/// `url` in the file, or `url_env`/`url_file` when the URL itself is a credential. A secret URL
/// is checked as strictly as a plain one, but no message ever shows it.
fn webhook_url(
    check: &mut Checker<'_>,
    raw: &Spanned<RawWebhook>,
    url: &Option<Spanned<String>>,
    url_env: &Option<Spanned<String>>,
    url_file: &Option<Spanned<String>>,
    path: &str,
) -> Option<Secret> {
    let secret_field = url_env.as_ref().or(url_file.as_ref());
    match (url, secret_field) {
        (Some(url), None) => {
            let field = join(path, "url");
            check.http_url(url, &field, SECRETS_HINT)?;
            Some(Secret::new(url.value.clone()))
        }
        (Some(_), Some(given)) => {
            check.error(&given.referenced, path, "give one of `url`, `url_env` or `url_file`, not several")
        }
        (None, None) => {
            let message = "missing required field (or `url_env`/`url_file`, for a URL that holds a token)";
            check.error(&raw.referenced, &join(path, "url"), message)
        }
        (None, Some(given)) => {
            let secret = check.optional_secret(url_env, url_file, path, "url", SecretUse::Opaque)??;
            let key = if url_env.is_some() { "url_env" } else { "url_file" };
            match Url::parse(secret.expose()) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(secret),
                Ok(_) => {
                    check.error(&given.referenced, &join(path, key), "the secret is not an http:// or https:// URL")
                }
                Err(e) => {
                    check.error(&given.referenced, &join(path, key), format!("the secret is not a valid URL: {e}"))
                }
            }
        }
    }
}

fn alertmanager(check: &mut Checker<'_>, raw: &Spanned<RawAlertmanager>, path: &str) -> Option<AlertmanagerNotifier> {
    let field = join(path, "url");
    let api = Some(("/api/v2", "http://alertmanager:9093"));
    let url = check.require(&raw.value.url, &raw.referenced, &field)?;
    let url = check.base_url(url, &field, SECRETS_HINT, api)?;
    Some(AlertmanagerNotifier { url })
}

fn pagerduty(check: &mut Checker<'_>, raw: &Spanned<RawPagerDuty>, path: &str) -> Option<PagerDutyNotifier> {
    let RawPagerDuty { routing_key_env, routing_key_file, api_url } = &raw.value;
    // Sent in the event body, not a header.
    let routing_key = check.required_secret(
        routing_key_env,
        routing_key_file,
        &raw.referenced,
        path,
        "routing_key",
        SecretUse::Opaque,
    );
    let api_url = api_url_or(check, api_url, DEFAULT_PAGERDUTY_API_URL, &join(path, "api_url"));
    Some(PagerDutyNotifier { routing_key: routing_key?, api_url: api_url? })
}

/// Where and how to reach the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SmtpServer {
    host: String,
    port: u16,
    tls: EmailTls,
}

/// Why an `email.url` was rejected. The URL itself is never repeated: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SmtpUrlError {
    #[error("invalid URL: {0}")]
    Invalid(String),
    #[error("must be an smtp:// or smtps:// URL; got scheme `{0}`")]
    Scheme(String),
    #[error("must not contain credentials: use `username` and `password_env` or `password_file`")]
    Credentials,
    #[error("missing host")]
    NoHost,
    #[error("must not have a path or fragment: expected smtp[s]://host[:port][?tls=required|none]")]
    PathOrFragment,
    #[error("unknown parameter `{0}`: the only one is `tls` (`tls=required` or `tls=none`)")]
    UnknownParameter(String),
    #[error("`tls` is given more than once")]
    RepeatedTls,
    #[error("invalid `tls={0}`: expected `tls=required` (STARTTLS) or `tls=none`")]
    TlsValue(String),
    #[error("`tls=` applies to smtp:// only: smtps:// is always TLS")]
    TlsOnSmtps,
    #[error(
        "plaintext SMTP only to loopback (127.0.0.0/8, ::1, localhost): use smtps:// or smtp:// with STARTTLS \
         (the default)"
    )]
    PlaintextNotLoopback,
}

/// `smtps://host[:465]` is implicit TLS; `smtp://host[:587][?tls=required]` is STARTTLS, required
/// rather than opportunistic so a stripped STARTTLS cannot downgrade to plaintext; and
/// `smtp://host[:25]?tls=none` is plaintext, only to a relay on this machine, because the
/// password and every alert would otherwise cross the network in the clear.
fn parse_smtp_url(text: &str) -> Result<SmtpServer, SmtpUrlError> {
    let url = Url::parse(text).map_err(|e| SmtpUrlError::Invalid(e.to_string()))?;
    let implicit = match url.scheme() {
        "smtps" => true,
        "smtp" => false,
        other => return Err(SmtpUrlError::Scheme(other.into())),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SmtpUrlError::Credentials);
    }
    // A non-special scheme keeps an IPv6 host in brackets; the notifier wants the bare address.
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(SmtpUrlError::NoHost)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).to_string();
    if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
        return Err(SmtpUrlError::PathOrFragment);
    }
    let mut tls_param = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" if tls_param.is_some() => return Err(SmtpUrlError::RepeatedTls),
            "tls" => tls_param = Some(value.into_owned()),
            _ => return Err(SmtpUrlError::UnknownParameter(key.into_owned())),
        }
    }
    let (tls, default_port) = match (implicit, tls_param.as_deref()) {
        (true, None) => (EmailTls::Implicit, SMTPS_PORT),
        (true, Some(_)) => return Err(SmtpUrlError::TlsOnSmtps),
        (false, None | Some("required")) => (EmailTls::StartTls, SUBMISSION_PORT),
        (false, Some("none")) if is_loopback(&host) => (EmailTls::None, SMTP_PORT),
        (false, Some("none")) => return Err(SmtpUrlError::PlaintextNotLoopback),
        (false, Some(other)) => return Err(SmtpUrlError::TlsValue(other.into())),
    };
    Ok(SmtpServer { host, port: url.port().unwrap_or(default_port), tls })
}

/// `localhost` or an address in 127.0.0.0/8 or `::1`. Other names are not resolved: what they
/// point at can change after the check.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `delivery:`; every key absent from it keeps its [`Delivery::default`].
pub(super) fn delivery(check: &mut Checker<'_>, raw: Option<&Spanned<RawDelivery>>) -> Option<Delivery> {
    let defaults = Delivery::default();
    let Some(raw) = raw else { return Some(defaults) };
    let RawDelivery { repeat_interval, fallback_after, fallback, max_backoff, per_destination_per_minute } = &raw.value;
    let repeat_interval = check.duration_or(repeat_interval, defaults.repeat_interval, "delivery.repeat_interval");
    let fallback_after = check.duration_or(fallback_after, defaults.fallback_after, "delivery.fallback_after");
    let fallback = match fallback {
        Some(list) => check.routes(list, "delivery.fallback"),
        None => Some(defaults.fallback),
    };
    let max_backoff = check.duration_or(max_backoff, defaults.max_backoff, "delivery.max_backoff");
    let per_destination_per_minute = match per_destination_per_minute {
        // Zero would hold every message forever rather than turn the limit off.
        Some(n) if n.value == 0 => {
            check.error(&n.referenced, "delivery.per_destination_per_minute", "must be at least 1")
        }
        Some(n) => Some(n.value),
        None => Some(defaults.per_destination_per_minute),
    };
    Some(Delivery {
        repeat_interval: repeat_interval?,
        fallback_after: fallback_after?,
        fallback: fallback?,
        max_backoff: max_backoff?,
        per_destination_per_minute: per_destination_per_minute?,
    })
}

/// `reports:`, with the service names each report is limited to, for checking once the specs
/// are loaded.
pub(super) fn reports(
    check: &mut Checker<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawReport>>>>,
) -> Option<(Vec<Report>, Vec<ServiceRef>)> {
    let Some(raw) = raw else { return Some((Vec::new(), Vec::new())) };
    let mut service_refs = Vec::new();
    let checked: Vec<Option<Report>> = raw
        .value
        .iter()
        .enumerate()
        .map(|(index, report)| self::report(check, report, &format!("reports[{index}]"), &mut service_refs))
        .collect();
    Some((checked.into_iter().collect::<Option<_>>()?, service_refs))
}

fn report(
    check: &mut Checker<'_>,
    raw: &Spanned<RawReport>,
    path: &str,
    service_refs: &mut Vec<ServiceRef>,
) -> Option<Report> {
    let RawReport { schedule, to, services } = &raw.value;
    let field = |key| join(path, key);
    let schedule = check
        .require(schedule, &raw.referenced, &field("schedule"))
        .and_then(|s| self::schedule(check, s, &field("schedule")));
    let to = check.require(to, &raw.referenced, &field("to")).and_then(|to| {
        if to.value.is_empty() {
            return check.error(&to.referenced, &field("to"), "must list at least one route");
        }
        check.routes(to, &field("to"))
    });
    let services = match services {
        Some(list) => self::services(check, list, &field("services"), service_refs),
        None => Some(Vec::new()),
    };
    Some(Report { schedule: schedule?, to: to?, services: services? })
}

/// Cron with seconds, checked with the parser and settings tokio-cron-scheduler schedules with,
/// so a schedule that loads is one the scheduler accepts.
fn schedule(check: &mut Checker<'_>, text: &Spanned<String>, field: &str) -> Option<String> {
    // The five-field form every crontab uses is the likely mistake; croner's own message for it
    // does not say what to write instead.
    if text.value.split_whitespace().count() == 5 {
        return check.error(&text.referenced, field, format!("cron needs a seconds field: `0 {}`", text.value.trim()));
    }
    match CronParser::builder().seconds(Seconds::Required).build().parse(&text.value) {
        Ok(_) => Some(text.value.clone()),
        Err(e) => check.error(&text.referenced, field, format!("invalid cron schedule: {e}")),
    }
}

/// Service names, each once; whether specs define them is checked after the specs are loaded.
fn services(
    check: &mut Checker<'_>,
    list: &RawList,
    path: &str,
    service_refs: &mut Vec<ServiceRef>,
) -> Option<Vec<String>> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut checked = Vec::new();
    for (index, name) in list.value.iter().enumerate() {
        let field = format!("{path}[{index}]");
        if let Some(first) = first_seen.get(name.value.as_str()) {
            let message = format!("duplicate service `{}`: already listed as {path}[{first}]", name.value);
            checked.push(check.error(&name.referenced, &field, message));
            continue;
        }
        first_seen.insert(&name.value, index);
        service_refs.push(ServiceRef { field, at: name.referenced, name: name.value.clone() });
        checked.push(Some(name.value.clone()));
    }
    checked.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, port: u16, tls: EmailTls) -> Result<SmtpServer, SmtpUrlError> {
        Ok(SmtpServer { host: host.into(), port, tls })
    }

    #[test]
    fn smtp_urls() {
        assert_eq!(parse_smtp_url("smtps://mail.example.com"), server("mail.example.com", 465, EmailTls::Implicit));
        assert_eq!(
            parse_smtp_url("smtps://mail.example.com:2465/"),
            server("mail.example.com", 2465, EmailTls::Implicit)
        );
        assert_eq!(parse_smtp_url("smtp://mail.example.com"), server("mail.example.com", 587, EmailTls::StartTls));
        assert_eq!(
            parse_smtp_url("smtp://mail.example.com:2587?tls=required"),
            server("mail.example.com", 2587, EmailTls::StartTls)
        );
        assert_eq!(parse_smtp_url("smtp://127.0.0.2?tls=none"), server("127.0.0.2", 25, EmailTls::None));
        assert_eq!(parse_smtp_url("smtp://LocalHost:1025?tls=none"), server("LocalHost", 1025, EmailTls::None));
        assert_eq!(parse_smtp_url("smtp://[::1]:2525?tls=none"), server("::1", 2525, EmailTls::None));
    }

    #[test]
    fn bad_smtp_urls() {
        let error = |url| parse_smtp_url(url).expect_err(url);
        assert_eq!(error("mail.example.com"), SmtpUrlError::Invalid("relative URL without a base".into()));
        assert_eq!(error("https://mail.example.com"), SmtpUrlError::Scheme("https".into()));
        assert_eq!(error("smtps://u:p@mail.example.com"), SmtpUrlError::Credentials);
        assert_eq!(error("smtp://"), SmtpUrlError::NoHost);
        assert_eq!(error("smtp://mail.example.com/x"), SmtpUrlError::PathOrFragment);
        assert_eq!(error("smtp://mail.example.com#x"), SmtpUrlError::PathOrFragment);
        assert_eq!(error("smtp://mail.example.com?tls=required&tls=none"), SmtpUrlError::RepeatedTls);
        assert_eq!(error("smtp://mail.example.com?timeout=5"), SmtpUrlError::UnknownParameter("timeout".into()));
        assert_eq!(error("smtp://mail.example.com?tls=opportunistic"), SmtpUrlError::TlsValue("opportunistic".into()));
        assert_eq!(error("smtps://mail.example.com?tls=required"), SmtpUrlError::TlsOnSmtps);
        assert_eq!(error("smtp://mail.example.com?tls=none"), SmtpUrlError::PlaintextNotLoopback);
        assert_eq!(error("smtp://10.0.0.1?tls=none"), SmtpUrlError::PlaintextNotLoopback);
        assert_eq!(error("smtp://localhost.example.com?tls=none"), SmtpUrlError::PlaintextNotLoopback);
    }
}
