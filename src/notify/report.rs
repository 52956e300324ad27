//! Scheduled budget digests (`reports:` in the config): at each cron tick (with seconds, UTC)
//! a digest of the report's services — budgets, freezes, alerts firing, and the events since the
//! previous digest — is queued in the outbox like any other notification, at the lowest
//! delivery priority.
//!
//! tokio-cron-scheduler polls the wall clock (every 500 ms), so these jobs cannot run on paused
//! time; [`digest`] is pure and is what the unit tests exercise.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{error, info};

use crate::clock::{Clock, DAY, Millis, rfc3339};
use crate::config::Report;
use crate::engine::{Event, EventKind};
use crate::policy::percent;
use crate::spec::Route;
use crate::status::Snapshot;
use crate::store::Store;

use super::message::{self, burn};
use super::{NoticeKind, OutboxItem, idempotency_key};

/// What the first digest after a start covers when no earlier one ran in this process: a
/// week, the longest usual report period (weekly), so nothing is left out.
const FIRST_REPORT_LOOKBACK: Millis = 7 * DAY;

/// Events listed one by one in a digest; past this only counted, so a bad week stays readable.
const MAX_LISTED_EVENTS: usize = 25;

/// Most events read from the log for one digest.
const MAX_REPORT_EVENTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The scheduler could not start, or a report's schedule is not a valid cron expression
    /// with seconds (config load checks the syntax; this is the scheduler's own verdict).
    #[error("report schedule {schedule:?}: {source}")]
    Schedule { schedule: String, source: JobSchedulerError },
}

/// What a digest job needs from the daemon.
#[derive(Clone)]
pub struct ReportDeps {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The latest read model.
    pub snapshot: Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>,
    pub public_url: String,
    /// Wakes the delivery loop after a digest is queued.
    pub wake: Arc<Notify>,
}

/// Starts a scheduler with one job per report; `None` when there are no reports. The caller
/// shuts it down on reload and at exit.
pub async fn schedule_reports(reports: &[Report], deps: ReportDeps) -> Result<Option<JobScheduler>, ReportError> {
    if reports.is_empty() {
        return Ok(None);
    }
    let scheduler_error = |source| ReportError::Schedule { schedule: String::new(), source };
    let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
    for report in reports {
        let report = report.clone();
        let deps = deps.clone();
        let last_run: Arc<Mutex<Option<Millis>>> = Arc::new(Mutex::new(None));
        let schedule = report.schedule.clone();
        let job = Job::new_async(schedule.as_str(), move |_, _| {
            let (report, deps, last_run) = (report.clone(), deps.clone(), last_run.clone());
            Box::pin(async move { run_report(&report, &deps, &last_run).await })
        })
        .map_err(|source| ReportError::Schedule { schedule: schedule.clone(), source })?;
        scheduler.add(job).await.map_err(|source| ReportError::Schedule { schedule: schedule.clone(), source })?;
    }
    scheduler.start().await.map_err(scheduler_error)?;
    Ok(Some(scheduler))
}

async fn run_report(report: &Report, deps: &ReportDeps, last_run: &Mutex<Option<Millis>>) {
    let now = deps.clock.now();
    let since = last_run.lock().expect("report lock").unwrap_or(now - FIRST_REPORT_LOOKBACK);
    let events = match deps.store.events(None, since, MAX_REPORT_EVENTS) {
        Ok(events) => events,
        Err(e) => {
            error!(schedule = %report.schedule, "budget report skipped: reading events failed: {e}");
            return;
        }
    };
    let items = digest(report, &(deps.snapshot)(), &events, since, now, &deps.public_url);
    match deps.store.commit(&[], &[], &items).await {
        Ok(n_new) => {
            *last_run.lock().expect("report lock") = Some(now);
            info!(schedule = %report.schedule, n_routes = n_new, "budget report queued");
            deps.wake.notify_one();
        }
        Err(e) => error!(schedule = %report.schedule, "budget report not queued: {e}"),
    }
}

/// The digest of `report` as of `snapshot`, one item per route. Keyed by the schedule, the
/// services and the run instant (to the second), so a run queued twice is one notification.
pub fn digest(
    report: &Report,
    snapshot: &Snapshot,
    events: &[Event],
    since: Millis,
    now: Millis,
    public_url: &str,
) -> Vec<OutboxItem> {
    let wanted = |service: &str| report.services.is_empty() || report.services.iter().any(|s| s == service);
    let services: Vec<_> = snapshot.services.iter().filter(|s| wanted(&s.service)).collect();
    let n_frozen = services.iter().filter(|s| s.frozen).count();
    let n_firing: usize =
        services.iter().flat_map(|s| &s.slos).flat_map(|slo| &slo.alerts).filter(|a| a.firing).count();
    let title =
        format!("Error budget report: {} service(s), {n_frozen} frozen, {n_firing} alert(s) firing", services.len());
    let mut lines = Vec::new();
    for service in &services {
        let freeze = match service.frozen_since {
            Some(at) => format!("FROZEN since {}", rfc3339(at)),
            None => "deploys allowed".to_string(),
        };
        lines.push((service.service.clone(), freeze));
        for slo in &service.slos {
            let firing: Vec<&str> = slo.alerts.iter().filter(|a| a.firing).map(|a| a.severity).collect();
            let firing = if firing.is_empty() { String::new() } else { format!(", firing: {}", firing.join(", ")) };
            lines.push((
                format!("  {}", slo.slo),
                format!(
                    "{} budget left over {}, burning {}{firing}",
                    percent(slo.budget_remaining),
                    slo.window,
                    burn(super::plan::current_burn(slo))
                ),
            ));
        }
    }
    let period: Vec<&Event> = events.iter().filter(|e| e.at >= since && wanted(e.service())).collect();
    lines.push((format!("Events since {}", rfc3339(since)), period.len().to_string()));
    for event in period.iter().take(MAX_LISTED_EVENTS) {
        lines.push((rfc3339(event.at), event_line(event)));
    }
    if period.len() > MAX_LISTED_EVENTS {
        lines.push(("...".to_string(), format!("{} more in GET /v1/events", period.len() - MAX_LISTED_EVENTS)));
    }
    let links = vec![("Services".to_string(), format!("{}/v1/services", public_url.trim_end_matches('/')))];
    let message = message::report(title, lines, links);
    let run = (now / 1000).to_string();
    let services_key = if report.services.is_empty() { "*".to_string() } else { report.services.join(",") };
    report
        .to
        .iter()
        // A digest is not an alert: Alertmanager and PagerDuty have nothing to route it by.
        .filter(|route| !matches!(route, Route::Alertmanager | Route::PagerDuty))
        .map(|route| {
            let key = idempotency_key(&["report", &report.schedule, &services_key, &run, &route.to_string()]);
            OutboxItem::new(key, services_key.clone(), route.clone(), NoticeKind::Report, message.clone(), now)
        })
        .collect()
}

fn event_line(event: &Event) -> String {
    match &event.kind {
        EventKind::AlertFiring(a) => {
            format!("{} {} fired (budget left {})", a.slo, a.severity, percent(a.budget_remaining))
        }
        EventKind::AlertResolved(a) => format!("{} {} resolved", a.slo, a.severity),
        EventKind::Freeze(f) => format!("{} froze", f.service),
        EventKind::Unfreeze(f) => format!("{} unfroze", f.service),
        EventKind::NoData(n) => format!("{} had no data since {}", n.slo, crate::clock::rfc3339(n.since)),
        EventKind::DataReturned(n) => format!("{} has data again", n.slo),
    }
}
