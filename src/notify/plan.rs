//! Planning: which notifications an evaluation's events (and the alerts still firing) cause,
//! to which routes, under which idempotency keys. Pure: no I/O, no clock; the core commits what
//! this returns in the same store batch as the events.

use std::time::Duration;

use crate::clock::{Millis, duration_millis};
use crate::config::DaemonConfig;
use crate::engine::{Event, EventKind};
use crate::spec::{Route, ServiceSpec, Severity};
use crate::status::{ServiceStatus, SloStatus, Snapshot};

use super::message::{self, SloContext};
use super::{NoticeKind, OutboxItem, idempotency_key};

/// How often a firing alert is re-posted to Alertmanager. Alertmanager resolves an alert whose
/// `endsAt` passed (we set it `ALERTMANAGER_TTL` ahead at each post), so a refresh well inside
/// that keeps it firing, and a sloguard that died lets it lapse instead of firing forever.
pub(crate) const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);

/// The notifications `events` cause: a firing page goes to the spec's `notify.page` routes, a
/// ticket to `notify.ticket`, freeze and unfreeze to `notify.freeze`, `no_data` and
/// `data_returned` to `notify.no_data`, and a resolve always to the routes its firing went to
/// (a page that was sent is always ended).
pub fn plan(events: &[Event], specs: &[ServiceSpec], config: &DaemonConfig, snapshot: &Snapshot) -> Vec<OutboxItem> {
    let mut items = Vec::new();
    for event in events {
        let Some(spec) = specs.iter().find(|s| s.service == event.service()) else { continue };
        match &event.kind {
            EventKind::AlertFiring(a) | EventKind::AlertResolved(a) => {
                let Some(severity) = Severity::ALL.into_iter().find(|s| s.as_str() == a.severity) else { continue };
                let context = context(spec, a.slo.as_str(), config, snapshot);
                let since = a.since.to_string();
                for route in routes_for(spec, severity) {
                    let route_text = route.to_string();
                    let firing_key = idempotency_key(&["alert", &a.slo, &a.severity, &since, &route_text, "0"]);
                    let item = if let EventKind::AlertFiring(_) = event.kind {
                        let kind = if severity == Severity::Page { NoticeKind::Page } else { NoticeKind::Ticket };
                        let message = message::alert_firing(a, &context);
                        OutboxItem::new(firing_key, a.service.clone(), route.clone(), kind, message, event.at)
                    } else {
                        let key = idempotency_key(&["resolved", &a.slo, &a.severity, &since, &route_text]);
                        let message = message::alert_resolved(a, &context, event.at);
                        let mut item = OutboxItem::new(
                            key,
                            a.service.clone(),
                            route.clone(),
                            NoticeKind::Resolve,
                            message,
                            event.at,
                        );
                        item.reply_to = Some(firing_key);
                        item
                    };
                    items.push(item);
                }
            }
            EventKind::NoData(n) | EventKind::DataReturned(n) => {
                let context = context(spec, n.slo.as_str(), config, snapshot);
                let since = n.since.to_string();
                for route in &spec.notify.no_data {
                    let route_text = route.to_string();
                    let firing_key = idempotency_key(&["no_data", &n.slo, &since, &route_text]);
                    let item = if let EventKind::NoData(_) = event.kind {
                        let message = message::no_data(n, &context, event.at);
                        OutboxItem::new(
                            firing_key,
                            n.service.clone(),
                            route.clone(),
                            NoticeKind::Ticket,
                            message,
                            event.at,
                        )
                    } else {
                        let key = idempotency_key(&["data_returned", &n.slo, &since, &route_text]);
                        let message = message::data_returned(n, &context, event.at);
                        let mut item = OutboxItem::new(
                            key,
                            n.service.clone(),
                            route.clone(),
                            NoticeKind::Resolve,
                            message,
                            event.at,
                        );
                        item.reply_to = Some(firing_key);
                        item
                    };
                    items.push(item);
                }
            }
            EventKind::Freeze(f) | EventKind::Unfreeze(f) => {
                let context = context(spec, "", config, snapshot);
                let since = f.since.to_string();
                for route in &spec.notify.freeze {
                    let route_text = route.to_string();
                    let freeze_key = idempotency_key(&["freeze", &f.service, &since, &route_text]);
                    let item = if let EventKind::Freeze(_) = event.kind {
                        let message = message::freeze(f, &context, event.at);
                        OutboxItem::new(
                            freeze_key,
                            f.service.clone(),
                            route.clone(),
                            NoticeKind::Freeze,
                            message,
                            event.at,
                        )
                    } else {
                        let key = idempotency_key(&["unfreeze", &f.service, &since, &route_text]);
                        let message = message::unfreeze(f, &context, event.at);
                        let mut item = OutboxItem::new(
                            key,
                            f.service.clone(),
                            route.clone(),
                            NoticeKind::Unfreeze,
                            message,
                            event.at,
                        );
                        item.reply_to = Some(freeze_key);
                        item
                    };
                    items.push(item);
                }
            }
        }
    }
    items
}

/// Reminders for what is still firing as of `snapshot`: a page is sent again every
/// `delivery.repeat_interval` (not to PagerDuty, which re-notifies through its own escalation
/// policy), and anything routed to Alertmanager is re-posted every [`ALERTMANAGER_REFRESH`].
///
/// Called every evaluation. Repeat `n` is due from `since + n * interval` and keyed by `n`, so
/// calling this again within the same period is a no-op in the store; a period the daemon was
/// down for is skipped, not sent late (a burst of stale reminders helps nobody).
pub fn repeat(specs: &[ServiceSpec], config: &DaemonConfig, snapshot: &Snapshot) -> Vec<OutboxItem> {
    let now = snapshot.at;
    let mut items = Vec::new();
    for service in &snapshot.services {
        let Some(spec) = specs.iter().find(|s| s.service == service.service) else { continue };
        for slo in &service.slos {
            for alert in slo.alerts.iter().filter(|a| a.firing) {
                let (Some(since), Some(severity)) =
                    (alert.since, Severity::ALL.into_iter().find(|s| s.as_str() == alert.severity))
                else {
                    continue;
                };
                let context = context(spec, &slo.slo, config, snapshot);
                for route in routes_for(spec, severity) {
                    let Some((n, tag)) = reminder_number(route, severity, since, now, config) else { continue };
                    let key = idempotency_key(&[
                        "alert",
                        &slo.slo,
                        severity.as_str(),
                        &since.to_string(),
                        &route.to_string(),
                        &format!("{tag}{n}"),
                    ]);
                    let message = message::still_firing(service, slo, severity.as_str(), since, &context, now);
                    items.push(OutboxItem::new(
                        key,
                        service.service.clone(),
                        route.clone(),
                        NoticeKind::Repeat,
                        message,
                        now,
                    ));
                }
            }
        }
        if let Some(since) = service.frozen_since {
            let context = context(spec, "", config, snapshot);
            for route in spec.notify.freeze.iter().filter(|r| **r == Route::Alertmanager) {
                let n = (now - since) / duration_millis(ALERTMANAGER_REFRESH);
                if n == 0 {
                    continue;
                }
                let key = idempotency_key(&[
                    "freeze",
                    &service.service,
                    &since.to_string(),
                    "alertmanager",
                    &format!("refresh{n}"),
                ]);
                let message = message::still_frozen(service, since, &context, now);
                items.push(OutboxItem::new(
                    key,
                    service.service.clone(),
                    route.clone(),
                    NoticeKind::Repeat,
                    message,
                    now,
                ));
            }
        }
    }
    items
}

/// The reminder period `since..now` is in on `route`, with a tag keeping Alertmanager
/// refreshes and repeats apart; `None` when no reminder is due (period 0, or not reminded).
fn reminder_number(
    route: &Route,
    severity: Severity,
    since: Millis,
    now: Millis,
    config: &DaemonConfig,
) -> Option<(Millis, &'static str)> {
    let (interval, tag) = match route {
        Route::Alertmanager => (config.delivery.repeat_interval.min(ALERTMANAGER_REFRESH), "refresh"),
        Route::PagerDuty => return None,
        _ if severity == Severity::Page => (config.delivery.repeat_interval, "repeat"),
        _ => return None,
    };
    let interval = duration_millis(interval).max(1);
    let n = (now - since) / interval;
    (n > 0).then_some((n, tag))
}

fn routes_for(spec: &ServiceSpec, severity: Severity) -> &[Route] {
    match severity {
        Severity::Page => &spec.notify.page,
        Severity::Ticket => &spec.notify.ticket,
    }
}

/// Spec and snapshot facts for one SLO's (or, with `slo` empty, the service's) messages.
fn context<'a>(spec: &'a ServiceSpec, slo: &str, config: &DaemonConfig, snapshot: &Snapshot) -> SloContext<'a> {
    let slo_spec = spec.slos.iter().find(|s| slo.split_once('/').is_some_and(|(_, name)| name == s.name));
    let status: Option<&ServiceStatus> = snapshot.service(&spec.service);
    SloContext {
        owner: spec.owner.as_deref(),
        objective: slo_spec.map(|s| s.objective),
        window: slo_spec.map(|s| duration_millis(s.window)),
        runbook: slo_spec.and_then(|s| s.runbook.as_deref()),
        status_url: format!("{}/v1/services/{}", config.public_url.trim_end_matches('/'), spec.service),
        frozen_since: status.and_then(|s| s.frozen_since),
    }
}

/// The burn of the SLO's shortest window: what is happening now.
pub(crate) fn current_burn(slo: &SloStatus) -> Option<f64> {
    slo.burn_rates
        .iter()
        .filter_map(|r| crate::duration::parse_duration(&r.window).ok().map(|span| (span, r.burn)))
        .min_by_key(|(span, _)| *span)
        .and_then(|(_, burn)| burn)
}
