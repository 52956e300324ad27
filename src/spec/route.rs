//! Notification routes as written in files (`slack:#payments-oncall`, `email:oncall@example.com`,
//! `webhook:deploybot`, `alertmanager`, `pagerduty`): parsing, and the checks of route lists
//! shared by a spec's `notify:` and `sloguard.yaml`'s `delivery.fallback` and `reports[].to`.
//!
//! A route only names a destination; the transport behind it is configured once in
//! `notifiers:`. Whether that transport exists is known only to the daemon, which checks it
//! through [`Checker::route_check`].

use std::collections::HashMap;
use std::str::FromStr;

use serde_saphyr::Spanned;

use super::NotifyRoutes;
use super::Route;
use super::check::{Checker, join};
use super::raw::RawNotify;

/// Why a route was rejected. Every variant names the text so the error reads alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(
        "unknown route `{0}`: expected slack:#channel, slack:<channel ID>, email:<address>, webhook:<name>, \
         alertmanager or pagerduty"
    )]
    Unknown(String),
    #[error(
        "invalid Slack channel `{0}`: expected `#name` (at most 80 lowercase letters, digits, `-` and `_`) or a \
         channel ID such as C0123ABCD"
    )]
    SlackChannel(String),
    #[error("invalid email address `{text}`: {reason}")]
    Email { text: String, reason: &'static str },
    #[error("invalid webhook name `{0}`: use lowercase letters, digits, `_` and `-`")]
    WebhookName(String),
}

/// Slack's limit on channel names.
const MAX_SLACK_CHANNEL_CHARS: usize = 80;

/// Parses the spec syntax that [`Route`]'s `Display` writes.
impl FromStr for Route {
    type Err = RouteError;

    fn from_str(text: &str) -> Result<Route, RouteError> {
        match text.split_once(':') {
            Some(("slack", channel)) if is_slack_channel(channel) => Ok(Route::Slack { channel: channel.into() }),
            Some(("slack", channel)) => Err(RouteError::SlackChannel(channel.into())),
            Some(("email", to)) => match lettre::Address::from_str(to) {
                Ok(_) => Ok(Route::Email { to: to.into() }),
                Err(e) => Err(RouteError::Email { text: to.into(), reason: address_error(&e) }),
            },
            Some(("webhook", name)) if is_webhook_name(name) => Ok(Route::Webhook { name: name.into() }),
            Some(("webhook", name)) => Err(RouteError::WebhookName(name.into())),
            None if text == "alertmanager" => Ok(Route::Alertmanager),
            None if text == "pagerduty" => Ok(Route::PagerDuty),
            _ => Err(RouteError::Unknown(text.into())),
        }
    }
}

/// `#name` as Slack allows channel names (lowercase, Unicode letters included), or a channel ID:
/// `C` (public), `G` (private) or `D` (direct) and uppercase letters and digits. Checked here
/// because Slack rejects anything else only when the first page is sent.
fn is_slack_channel(channel: &str) -> bool {
    if let Some(name) = channel.strip_prefix('#') {
        let allowed = |c: char| (c.is_alphanumeric() && !c.is_uppercase()) || matches!(c, '-' | '_');
        let length = name.chars().count();
        (1..=MAX_SLACK_CHANNEL_CHARS).contains(&length) && name.chars().all(allowed)
    } else {
        let mut chars = channel.chars();
        let kind_ok = matches!(chars.next(), Some('C' | 'G' | 'D'));
        kind_ok && channel.len() >= 9 && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }
}

/// Webhook names appear in routes and as keys of `notifiers.webhooks`.
pub(crate) fn is_webhook_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// lettre's reasons, in the lowercase of the rest of our messages.
fn address_error(e: &lettre::address::AddressError) -> &'static str {
    use lettre::address::AddressError;
    match e {
        AddressError::MissingParts => "expected user@domain",
        AddressError::InvalidUser => "invalid user part",
        AddressError::InvalidDomain => "invalid domain",
        AddressError::Unbalanced | AddressError::InvalidInput => "expected a bare address such as user@example.com",
        _ => "not a valid address",
    }
}

impl Checker<'_> {
    /// A list of routes, each valid, none listed twice, and each deliverable when
    /// [`Checker::route_check`] is set. An empty list is fine: it routes to nobody.
    pub(crate) fn routes(&mut self, list: &Spanned<Vec<Spanned<String>>>, path: &str) -> Option<Vec<Route>> {
        let mut first_seen: HashMap<Route, usize> = HashMap::new();
        let mut checked = Vec::new();
        for (index, text) in list.value.iter().enumerate() {
            let field = format!("{path}[{index}]");
            let route = match text.value.parse::<Route>() {
                Ok(route) => route,
                Err(e) => {
                    checked.push(self.error(&text.referenced, &field, e.to_string()));
                    continue;
                }
            };
            if let Some(first) = first_seen.get(&route) {
                let message = format!("duplicate route `{route}`: already listed as {path}[{first}]");
                checked.push(self.error(&text.referenced, &field, message));
                continue;
            }
            first_seen.insert(route.clone(), index);
            if let Some(Err(message)) = self.route_check.map(|deliverable| deliverable(&route)) {
                checked.push(self.error(&text.referenced, &field, message));
                continue;
            }
            checked.push(Some(route));
        }
        checked.into_iter().collect()
    }

    /// A spec's `notify:` section; an absent section or kind routes to nobody.
    pub(super) fn notify(&mut self, raw: Option<&Spanned<RawNotify>>) -> Option<NotifyRoutes> {
        let Some(raw) = raw else { return Some(NotifyRoutes::default()) };
        let RawNotify { page, ticket, freeze, no_data } = &raw.value;
        let mut kind = |list: &Option<Spanned<Vec<Spanned<String>>>>, key| match list {
            Some(list) => self.routes(list, &join("notify", key)),
            None => Some(Vec::new()),
        };
        let (page, ticket, freeze) = (kind(page, "page"), kind(ticket, "ticket"), kind(freeze, "freeze"));
        // Missing data is a ticket's kind of problem: someone should look in working hours.
        let no_data = match no_data {
            Some(_) => kind(no_data, "no_data"),
            None => ticket.clone(),
        };
        Some(NotifyRoutes { page: page?, ticket: ticket?, freeze: freeze?, no_data: no_data? })
    }
}
