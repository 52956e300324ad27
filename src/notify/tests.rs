//! Notify tests: planning and wording on hand-built events, the store's outbox bookkeeping on
//! real sled files, the delivery loop against recording transports and a test clock, and the
//! Slack transport against a local server speaking Slack's Web API shapes (Slack itself cannot
//! be reached from tests).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::transport::SendFuture;
use super::*;
use crate::clock::{Clock, HOUR, MINUTE, Millis};
use crate::config::{DaemonConfig, Delivery, Notifiers, SlackNotifier};
use crate::engine::{AlertChange, ConditionReport, Event, EventKind, FreezeChange, Postmortem, SloBudget};
use crate::spec::{NotifyRoutes, Route, Secret, ServiceSpec, parse_spec};
use crate::status::{AlertStatus as SloAlert, BurnRate, ServiceStatus, SloStatus, Snapshot};
use crate::store::{SentRecord, Store};

const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

const SPEC: &str = r#"
service: checkout
owner: payments-team
slos:
  - name: availability
    objective: 99.9
    window: 30d
    runbook: https://wiki.example.com/runbooks/checkout-availability
    sli:
      errors: 'req{code=~"5.."}'
      total: 'req'
"#;

fn slack(channel: &str) -> Route {
    Route::Slack { channel: channel.to_string() }
}

fn email(to: &str) -> Route {
    Route::Email { to: to.to_string() }
}

fn spec() -> ServiceSpec {
    let mut spec = parse_spec(Path::new("checkout.yaml"), SPEC).expect("spec");
    spec.notify = NotifyRoutes {
        page: vec![slack("#oncall"), email("oncall@example.com"), Route::PagerDuty, Route::Alertmanager],
        ticket: vec![email("team@example.com")],
        freeze: vec![slack("#deploys")],
        no_data: vec![email("team@example.com")],
    };
    spec
}

fn config() -> DaemonConfig {
    DaemonConfig {
        path: PathBuf::from("sloguard.yaml"),
        listen: "127.0.0.1:9464".parse().unwrap(),
        data_dir: PathBuf::from("state"),
        specs: Vec::new(),
        evaluation_interval: Duration::from_secs(10),
        flush_interval: Duration::from_secs(10),
        event_retention: Duration::from_secs(90 * 86_400),
        shutdown_grace: Duration::from_secs(10),
        public_url: "https://sloguard.example.com/".to_string(),
        api: Default::default(),
        notifiers: Notifiers::default(),
        delivery: Delivery { repeat_interval: Duration::from_secs(3600), ..Delivery::default() },
        reports: Vec::new(),
    }
}

fn alert(severity: &str, since: Millis) -> AlertChange {
    AlertChange {
        slo: "checkout/availability".to_string(),
        group: None,
        service: "checkout".to_string(),
        severity: severity.to_string(),
        condition: ConditionReport {
            long: "1h".to_string(),
            short: "5m".to_string(),
            factor: 14.4,
            long_burn: Some(16.8),
            short_burn: Some(16.84),
        },
        burn_rates: BTreeMap::from([("1h".to_string(), Some(16.8)), ("5m".to_string(), Some(16.84))]),
        budget_remaining: Some(0.875),
        time_to_exhaustion_s: Some(5.0 * 3600.0 + 30.0 * 60.0),
        since,
        postmortem: None,
        inhibited_by: None,
    }
}

fn freeze_change(since: Millis) -> FreezeChange {
    FreezeChange {
        service: "checkout".to_string(),
        frozen_by: vec![SloBudget { slo: "checkout/availability".to_string(), budget_remaining: Some(-0.02) }],
        budgets: vec![SloBudget { slo: "checkout/availability".to_string(), budget_remaining: Some(-0.02) }],
        freeze_below: 0.0,
        unfreeze_above: 0.1,
        since,
    }
}

fn event(at: Millis, kind: EventKind) -> Event {
    Event { at, kind }
}

/// A snapshot in which checkout's page has fired since `since` (or nothing fires).
fn snapshot(at: Millis, page_since: Option<Millis>, frozen_since: Option<Millis>) -> Snapshot {
    let slo = SloStatus {
        slo: "checkout/availability".to_string(),
        name: "availability".to_string(),
        group: None,
        objective: 99.9,
        window: "30d".to_string(),
        window_ms: 30 * 24 * 3600 * 1000,
        budget_remaining: Some(0.8),
        burn_rates: vec![
            BurnRate { window: "30d".to_string(), burn: Some(0.2) },
            BurnRate { window: "5m".to_string(), burn: Some(20.0) },
        ],
        alerts: vec![
            SloAlert { severity: "page", firing: page_since.is_some(), since: page_since },
            SloAlert { severity: "ticket", firing: false, since: None },
        ],
        time_to_exhaustion_s: Some(3600.0),
        period_start: None,
        period_end: None,
        coverage_s: 86400.0,
        freeze_held_back: false,
    };
    let service = ServiceStatus {
        service: "checkout".to_string(),
        owner: Some("payments-team".to_string()),
        frozen: frozen_since.is_some(),
        frozen_since,
        freeze_below: 0.0,
        unfreeze_above: 0.1,
        warn_below: 0.25,
        allow_during_freeze: Vec::new(),
        slos: vec![slo],
        source_indices: Vec::new(),
    };
    Snapshot {
        at,
        services: vec![service],
        by_name: HashMap::from([("checkout".to_string(), 0)]),
        ..Snapshot::default()
    }
}

#[test]
fn a_page_goes_to_page_routes_and_its_resolve_to_the_same_routes_threaded() {
    let (spec, config) = (spec(), config());
    let fired = plan(
        &[event(T0, EventKind::AlertFiring(alert("page", T0)))],
        std::slice::from_ref(&spec),
        &config,
        &snapshot(T0, None, None),
    );
    assert_eq!(fired.iter().map(|i| &i.route).collect::<Vec<_>>(), spec.notify.page.iter().collect::<Vec<_>>());
    assert!(fired.iter().all(|i| i.kind == NoticeKind::Page && i.created_at == T0 && i.next_attempt_at == T0));

    let end = T0 + 42 * MINUTE;
    let resolved =
        plan(&[event(end, EventKind::AlertResolved(alert("page", T0)))], &[spec], &config, &snapshot(end, None, None));
    assert_eq!(resolved.len(), fired.len());
    for (resolve, page) in resolved.iter().zip(&fired) {
        assert_eq!(resolve.kind, NoticeKind::Resolve);
        assert_eq!(resolve.route, page.route);
        assert_eq!(resolve.reply_to.as_deref(), Some(page.key.as_str()));
        assert_ne!(resolve.key, page.key);
    }
    assert!(
        resolved[0].message.title.starts_with("RESOLVED: checkout availability page after 42m"),
        "{}",
        resolved[0].message.title
    );
}

#[test]
fn a_resolve_flags_a_postmortem_when_the_engine_asks_for_one() {
    let end = T0 + HOUR;
    let mut resolved = alert("page", T0);
    resolved.postmortem = Some(Postmortem { budget_burned: 0.231, required: true, threshold: 0.2 });
    let items = plan(
        &[event(end, EventKind::AlertResolved(resolved.clone()))],
        &[spec()],
        &config(),
        &snapshot(end, None, None),
    );
    let message = &items[0].message;
    assert!(
        message.title.ends_with("; POSTMORTEM REQUIRED: the incident burned 23.1% of the budget"),
        "{}",
        message.title
    );
    assert!(message.text.contains("Incident burn: 23.1% of the budget (postmortem required; policy threshold 20.0%)"));
    resolved.postmortem = Some(Postmortem { budget_burned: 0.05, required: false, threshold: 0.2 });
    let items =
        plan(&[event(end, EventKind::AlertResolved(resolved))], &[spec()], &config(), &snapshot(end, None, None));
    assert!(!items[0].message.title.contains("POSTMORTEM"));
    assert!(items[0].message.text.contains("Incident burn: 5.0% of the budget (no postmortem required"));
}

#[test]
fn tickets_and_freezes_use_their_own_routes() {
    let (specs, config) = (vec![spec()], config());
    let events = [
        event(T0, EventKind::AlertFiring(alert("ticket", T0))),
        event(T0, EventKind::Freeze(freeze_change(T0))),
        event(T0 + HOUR, EventKind::Unfreeze(freeze_change(T0))),
    ];
    let items = plan(&events, &specs, &config, &snapshot(T0, None, None));
    let summary: Vec<(NoticeKind, String)> = items.iter().map(|i| (i.kind, i.route.to_string())).collect();
    assert_eq!(
        summary,
        [
            (NoticeKind::Ticket, "email:team@example.com".to_string()),
            (NoticeKind::Freeze, "slack:#deploys".to_string()),
            (NoticeKind::Unfreeze, "slack:#deploys".to_string()),
        ]
    );
    assert_eq!(items[2].reply_to.as_deref(), Some(items[1].key.as_str()), "an unfreeze threads under its freeze");
    assert!(items[1].message.title.starts_with("FREEZE: checkout deploys are frozen"), "{}", items[1].message.title);
}

#[test]
fn the_same_notification_always_gets_the_same_key() {
    let (specs, config) = (vec![spec()], config());
    let events = [event(T0, EventKind::AlertFiring(alert("page", T0)))];
    let a = plan(&events, &specs, &config, &snapshot(T0, None, None));
    let b = plan(&events, &specs, &config, &snapshot(T0 + 5, None, Some(T0)));
    assert_eq!(a.iter().map(|i| &i.key).collect::<Vec<_>>(), b.iter().map(|i| &i.key).collect::<Vec<_>>());
    let mut keys: Vec<&String> = a.iter().map(|i| &i.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), a.len(), "one key per route");
    assert!(a.iter().all(|i| i.key.len() == 32 && i.key.chars().all(|c| c.is_ascii_hexdigit())));
    // A later incident of the same SLO is a different notification.
    let later = plan(
        &[event(T0 + HOUR, EventKind::AlertFiring(alert("page", T0 + HOUR)))],
        &specs,
        &config,
        &snapshot(T0, None, None),
    );
    assert_ne!(later[0].key, a[0].key);
}

#[test]
fn a_page_says_what_on_call_needs() {
    let items = plan(
        &[event(T0, EventKind::AlertFiring(alert("page", T0)))],
        &[spec()],
        &config(),
        &snapshot(T0, None, Some(T0 - HOUR)),
    );
    let message = &items[0].message;
    assert_eq!(message.title, "PAGE: checkout availability is burning its error budget 16.8x too fast");
    for fact in [
        "Service: checkout (owner: payments-team)",
        "SLO: availability, objective 99.9% over 30d",
        "Condition: burn 16.8x over 1h and 16.8x over 5m (threshold 14.4x)",
        "Budget left: 87.5% of the 30d budget",
        "Time to exhaustion: 5h30m at the current burn",
        "Deploy freeze: FROZEN since 2025-12-31T23:00:00Z",
        "Runbook: https://wiki.example.com/runbooks/checkout-availability",
        "Status: https://sloguard.example.com/v1/services/checkout",
    ] {
        assert!(message.text.contains(fact), "missing {fact:?} in:\n{}", message.text);
    }
    assert!(message.html.contains("<a href=\"https://wiki.example.com/runbooks/checkout-availability\">Runbook</a>"));
    let facts = message.alert.as_ref().expect("alert facts");
    assert_eq!(facts.status, AlertStatus::Firing);
    assert_eq!(facts.labels["severity"], "page");
}

#[test]
fn html_escapes_what_it_quotes() {
    assert_eq!(message::escape_html("<b>\"a\" & 'b'</b>"), "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;");
    assert_eq!(message::span(26 * HOUR + 7 * 1000), "1d2h");
    assert_eq!(message::span(3 * MINUTE + 20_000), "3m20s");
    assert_eq!(message::span(DAY_PLUS_SECONDS), "1d");
}

const DAY_PLUS_SECONDS: Millis = 24 * HOUR + 7_000;

#[test]
fn repeats_come_once_per_interval_and_alertmanager_is_refreshed_every_minute() {
    let (specs, config) = (vec![spec()], config());
    let keys_at = |at: Millis| -> Vec<(String, String)> {
        repeat(&specs, &config, &snapshot(at, Some(T0), None))
            .into_iter()
            .map(|i| (i.route.to_string(), i.key))
            .collect()
    };
    assert_eq!(keys_at(T0 + 30_000), []);
    let first_minute = keys_at(T0 + MINUTE);
    assert_eq!(first_minute.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), ["alertmanager"]);
    let at_hour = keys_at(T0 + HOUR + 1);
    let routes: Vec<&str> = at_hour.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(routes, ["slack:#oncall", "email:oncall@example.com", "alertmanager"], "no repeat to PagerDuty");
    assert_eq!(keys_at(T0 + HOUR + 30_000)[..2], at_hour[..2], "same period, same keys");
    assert_ne!(keys_at(T0 + 2 * HOUR)[0], at_hour[0]);
    let item = &repeat(&specs, &config, &snapshot(T0 + HOUR, Some(T0), None))[0];
    assert_eq!(item.kind, NoticeKind::Repeat);
    assert!(
        item.message
            .title
            .starts_with("STILL FIRING (PAGE, for 1h): checkout availability is burning its error budget 20.0x"),
        "{}",
        item.message.title
    );
}

// ---- store bookkeeping ----

fn item(key: &str, route: Route, kind: NoticeKind, at: Millis) -> OutboxItem {
    let message = message::report(format!("title {key}"), vec![("Fact".to_string(), "value".to_string())], Vec::new());
    OutboxItem::new(key.to_string(), "checkout".to_string(), route, kind, message, at)
}

#[tokio::test]
async fn a_key_is_queued_once_and_never_again_after_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = item("a", slack("#x"), NoticeKind::Page, T0);
    assert_eq!(store.commit(&[], &[], &[a.clone(), a.clone()]).await.unwrap(), 1);
    assert_eq!(store.commit(&[], &[], std::slice::from_ref(&a)).await.unwrap(), 0, "already queued");
    assert_eq!(store.outbox_depth(), 1);
    let receipt = Receipt { slack_channel: Some("C1".into()), slack_ts: Some("1.2".into()) };
    store.remove_delivered("a", &SentRecord { at: T0 + 1, receipt: receipt.clone() }).await.unwrap();
    assert_eq!(store.commit(&[], &[], std::slice::from_ref(&a)).await.unwrap(), 0, "already sent");
    assert_eq!(store.outbox_depth(), 0);
    assert_eq!(store.sent("a").unwrap().map(|r| r.receipt), Some(receipt));
    assert_eq!(store.prune_sent(T0 + 2).unwrap(), 1);
    assert_eq!(store.sent("a").unwrap(), None);
}

#[tokio::test]
async fn due_items_come_most_urgent_first_and_the_rest_say_when() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut later = item("later", slack("#x"), NoticeKind::Page, T0);
    later.next_attempt_at = T0 + 5_000;
    let items = [
        item("report", slack("#x"), NoticeKind::Report, T0),
        item("page-new", slack("#x"), NoticeKind::Page, T0 + 2),
        item("page-old", slack("#x"), NoticeKind::Page, T0 + 1),
        later,
    ];
    store.commit(&[], &[], &items).await.unwrap();
    let scan = store.due_outbox(T0 + 10, 10).unwrap();
    assert_eq!(scan.due.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["page-old", "page-new", "report"]);
    assert_eq!((scan.next_at, scan.depth), (Some(T0 + 5_000), 4));
    let scan = store.due_outbox(T0 + 10, 1).unwrap();
    assert_eq!((scan.due.len(), scan.next_at), (1, Some(T0 + 10)), "a truncated batch means come back now");
}

// ---- the delivery loop ----

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    fn advance(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

/// Records every attempt and answers from a script (then `Ok`).
#[derive(Default)]
struct Recorder {
    /// `(key, replying-to receipt)` per attempt.
    attempts: Mutex<Vec<(String, Option<Receipt>)>>,
    script: Mutex<Vec<Result<Receipt, DeliveryError>>>,
}

impl Recorder {
    fn failing_with(errors: Vec<DeliveryError>) -> Arc<Recorder> {
        Arc::new(Recorder {
            attempts: Mutex::default(),
            script: Mutex::new(errors.into_iter().map(Err).rev().collect()),
        })
    }

    fn keys(&self) -> Vec<String> {
        self.attempts.lock().unwrap().iter().map(|(k, _)| k.clone()).collect()
    }
}

impl Transport for Recorder {
    fn send<'a>(&'a self, item: &'a OutboxItem, replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        self.attempts.lock().unwrap().push((item.key.clone(), replying_to.cloned()));
        let res = self.script.lock().unwrap().pop().unwrap_or_else(|| {
            Ok(Receipt { slack_channel: Some("C1".to_string()), slack_ts: Some(format!("ts-{}", item.key)) })
        });
        Box::pin(async move { res })
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<TestClock>,
    deliverer: Deliverer,
    stats: Arc<NotifyStats>,
    stop: watch::Receiver<bool>,
}

fn rig(slack: Arc<Recorder>, email: Arc<Recorder>, delivery: Delivery) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let transports = Transports { slack: Some(slack), email: Some(email), ..Transports::default() };
    let stats = Arc::new(NotifyStats::default());
    let deliverer = Deliverer::new(store.clone(), clock.clone(), transports, delivery, stats.clone());
    // The sender is dropped: `stop` reads false forever.
    let (_, stop) = watch::channel(false);
    Rig { _dir: dir, store, clock, deliverer, stats, stop }
}

#[tokio::test]
async fn a_delivered_item_leaves_the_outbox_with_its_receipt() {
    let slack_transport = Arc::new(Recorder::default());
    let mut rig = rig(slack_transport.clone(), Arc::default(), Delivery::default());
    rig.store.commit(&[], &[], &[item("a", slack("#x"), NoticeKind::Page, T0 - 250)]).await.unwrap();
    let next = rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["a"]);
    assert_eq!(next, Millis::MAX, "nothing left");
    assert_eq!(rig.store.outbox_depth(), 0);
    assert_eq!(rig.store.sent("a").unwrap().unwrap().receipt.slack_ts.as_deref(), Some("ts-a"));
    let (delivered, failures) =
        rig.stats.per_route_kind().find(|(k, ..)| *k == "slack").map(|(_, d, f)| (d, f)).unwrap();
    assert_eq!((delivered, failures), (1, 0));
    let crate::metrics::Reading { buckets, sum } = rig.stats.latency();
    assert_eq!(buckets.iter().find(|(le, _)| *le == 0.1).unwrap().1, 0);
    assert_eq!(buckets.iter().find(|(le, _)| *le == 0.25).unwrap().1, 1, "buckets are `le`");
    assert_eq!(sum, 0.25);
}

#[tokio::test]
async fn a_transient_failure_backs_off_with_jitter_and_spares_the_destination() {
    let slack_transport = Recorder::failing_with(vec![DeliveryError::Transient("connection refused".into())]);
    let mut rig = rig(slack_transport.clone(), Arc::default(), Delivery::default());
    let items = [item("a", slack("#x"), NoticeKind::Page, T0 - 1), item("b", slack("#x"), NoticeKind::Page, T0)];
    rig.store.commit(&[], &[], &items).await.unwrap();
    let next = rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["a"], "b is not tried against a destination that just failed");
    let a = rig.store.due_outbox(Millis::MAX, 10).unwrap().due.into_iter().find(|i| i.key == "a").unwrap();
    assert_eq!((a.attempts, a.first_failure_at, a.last_error.as_deref()), (1, Some(T0), Some("connection refused")));
    assert!(
        (T0 + 500..=T0 + 1000).contains(&a.next_attempt_at),
        "first backoff is 0.5-1 s: {}",
        a.next_attempt_at - T0
    );
    assert_eq!(next, a.next_attempt_at);
    rig.clock.advance(1000);
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["a", "a", "b"]);
    assert_eq!(rig.store.outbox_depth(), 0);
    // Every attempt is in the audit log, with its outcome.
    let audit: Vec<(String, u32, bool, Option<String>)> = rig
        .store
        .audit_log(Some("checkout"), 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| match e.action {
            crate::store::AuditAction::Notification { key, attempt, delivered, error, route } => {
                assert_eq!(route, "slack:#x");
                (key, attempt, delivered, error)
            }
            other => panic!("unexpected audit action {other:?}"),
        })
        .collect();
    assert_eq!(
        audit,
        [
            ("a".to_string(), 1, false, Some("connection refused".to_string())),
            ("a".to_string(), 2, true, None),
            ("b".to_string(), 1, true, None),
        ]
    );
}

#[tokio::test]
async fn retry_after_is_honoured_to_the_millisecond() {
    let slack_transport =
        Recorder::failing_with(vec![DeliveryError::RateLimited { retry_after: Some(Duration::from_secs(7)) }]);
    let mut rig = rig(slack_transport.clone(), Arc::default(), Delivery::default());
    rig.store.commit(&[], &[], &[item("a", slack("#x"), NoticeKind::Page, T0)]).await.unwrap();
    assert_eq!(rig.deliverer.pass(&rig.stop).await, T0 + 7_000);
    rig.clock.advance(6_999);
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["a"], "not before Retry-After");
    rig.clock.advance(1);
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["a", "a"]);
}

#[test]
fn backoff_doubles_up_to_the_ceiling_with_half_of_it_jittered() {
    let max = 300_000;
    for attempts in 1..40 {
        let exp = (1000i64 << (attempts - 1).min(30)).min(max);
        for key in ["a", "b", "c"] {
            let delay = deliver_backoff(attempts, key, max);
            assert!((exp / 2..=exp).contains(&delay), "attempt {attempts}: {delay} outside {}..={exp}", exp / 2);
        }
    }
    assert_ne!(deliver_backoff(5, "a", max), deliver_backoff(5, "b", max), "items do not retry in lockstep");
}

fn deliver_backoff(attempts: u32, key: &str, max: Millis) -> Millis {
    super::deliver::backoff(attempts, key, max)
}

#[tokio::test]
async fn after_fallback_after_one_copy_goes_to_the_fallback_route() {
    let failing = Recorder::failing_with(vec![DeliveryError::Transient("down".into()); 10]);
    let fallback = Arc::new(Recorder::default());
    let delivery = Delivery {
        fallback_after: Duration::from_secs(60),
        fallback: vec![email("oncall@example.com"), slack("#x")],
        ..Delivery::default()
    };
    let mut rig = rig(failing.clone(), fallback.clone(), delivery);
    rig.store.commit(&[], &[], &[item("a", slack("#x"), NoticeKind::Page, T0)]).await.unwrap();
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(fallback.keys(), Vec::<String>::new(), "not before fallback_after");
    for _ in 0..8 {
        rig.clock.advance(20_000);
        rig.deliverer.pass(&rig.stop).await;
    }
    let copies = fallback.keys();
    assert_eq!(copies.len(), 1, "exactly one copy, and not to the failing route itself: {copies:?}");
    assert_eq!(copies[0], idempotency_key(&["fallback", "a", "email:oncall@example.com"]));
    let original = rig.store.due_outbox(Millis::MAX, 10).unwrap().due;
    assert_eq!(original.len(), 1, "the original keeps trying its own route");
    assert!(original[0].fallback_enqueued);
}

#[tokio::test]
async fn a_rejection_falls_back_at_once_and_retries_at_the_ceiling() {
    let failing = Recorder::failing_with(vec![DeliveryError::Rejected("channel_not_found".into())]);
    let fallback = Arc::new(Recorder::default());
    let delivery = Delivery { fallback: vec![email("oncall@example.com")], ..Delivery::default() };
    let max_backoff = crate::clock::duration_millis(delivery.max_backoff);
    let mut rig = rig(failing, fallback.clone(), delivery);
    let items = [item("a", slack("#x"), NoticeKind::Page, T0 - 1), item("b", slack("#x"), NoticeKind::Page, T0)];
    rig.store.commit(&[], &[], &items).await.unwrap();
    rig.deliverer.pass(&rig.stop).await;
    let scan = rig.store.due_outbox(T0, 10).unwrap();
    assert_eq!(scan.depth, 2, "b went out (a rejection does not block the destination); a and its copy are queued");
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(fallback.keys().len(), 1);
    let a = rig.store.due_outbox(Millis::MAX, 10).unwrap().due.into_iter().find(|i| i.key == "a").unwrap();
    assert_eq!(a.next_attempt_at, T0 + max_backoff);
}

#[tokio::test]
async fn a_resolve_waits_for_its_page_and_gets_the_page_receipt() {
    let slack_transport = Recorder::failing_with(vec![DeliveryError::Transient("down".into())]);
    let mut rig = rig(slack_transport.clone(), Arc::default(), Delivery::default());
    let page = item("page", slack("#x"), NoticeKind::Page, T0 - 1);
    let mut resolve = item("resolve", slack("#y"), NoticeKind::Resolve, T0);
    resolve.reply_to = Some("page".to_string());
    rig.store.commit(&[], &[], &[page, resolve]).await.unwrap();
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys(), ["page"], "the resolve did not overtake its failing page");
    rig.clock.advance(2_000);
    rig.deliverer.pass(&rig.stop).await;
    let attempts = slack_transport.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2].0, "resolve");
    assert_eq!(attempts[2].1.as_ref().and_then(|r| r.slack_ts.as_deref()), Some("ts-page"));
}

#[tokio::test]
async fn a_destination_gets_at_most_its_per_minute_budget() {
    let slack_transport = Arc::new(Recorder::default());
    let delivery = Delivery { per_destination_per_minute: 2, ..Delivery::default() };
    let mut rig = rig(slack_transport.clone(), Arc::default(), delivery);
    let items: Vec<OutboxItem> =
        (0..3).map(|i| item(&format!("k{i}"), slack("#x"), NoticeKind::Page, T0 - 9 + i)).collect();
    rig.store.commit(&[], &[], &items).await.unwrap();
    let other = item("other", slack("#other"), NoticeKind::Page, T0);
    rig.store.commit(&[], &[], &[other]).await.unwrap();
    assert_eq!(rig.deliverer.pass(&rig.stop).await, T0 + MINUTE);
    assert_eq!(slack_transport.keys(), ["k0", "k1", "other"]);
    rig.clock.advance(MINUTE);
    rig.deliverer.pass(&rig.stop).await;
    assert_eq!(slack_transport.keys().len(), 4);
}

// ---- machine payloads ----

fn page_item() -> OutboxItem {
    plan(&[event(T0, EventKind::AlertFiring(alert("page", T0)))], &[spec()], &config(), &snapshot(T0, None, None))
        .remove(0)
}

fn resolve_item() -> OutboxItem {
    let end = T0 + HOUR;
    plan(&[event(end, EventKind::AlertResolved(alert("page", T0)))], &[spec()], &config(), &snapshot(end, None, None))
        .remove(0)
}

#[test]
fn webhook_bodies_look_like_alertmanager_webhook_v4() {
    let body = http::webhook_body(&page_item(), "ops");
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["alerts"][0]["labels"]["slo"], "checkout/availability");
    assert_eq!(body["alerts"][0]["startsAt"], "2026-01-01T00:00:00Z");
    assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        body["alerts"][0]["annotations"]["runbook_url"],
        "https://wiki.example.com/runbooks/checkout-availability"
    );
    let resolved = http::webhook_body(&resolve_item(), "ops");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["endsAt"], "2026-01-01T01:00:00Z");
    assert_eq!(resolved["groupKey"], body["groupKey"], "firing and resolve are one group");
}

#[test]
fn signatures_are_hmac_sha256_hex() {
    // RFC-style known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
    let signature = http::signature(&Secret::new("key".into()), b"The quick brown fox jumps over the lazy dog");
    assert_eq!(signature, "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

#[test]
fn pagerduty_triggers_and_resolves_one_dedup_key() {
    let key = Secret::new("R0UTING".into());
    let page = page_item();
    let trigger = http::pagerduty_body(&page, page.message.alert.as_ref().unwrap(), &key);
    let resolve = resolve_item();
    let resolve = http::pagerduty_body(&resolve, resolve.message.alert.as_ref().unwrap(), &key);
    assert_eq!(
        (trigger["event_action"].as_str(), resolve["event_action"].as_str()),
        (Some("trigger"), Some("resolve"))
    );
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["routing_key"], "R0UTING");
}

#[test]
fn alertmanager_alerts_expire_unless_refreshed_and_end_at_the_resolve() {
    let page = page_item();
    let now = T0 + 10 * MINUTE;
    let firing = http::alertmanager_body(&page, page.message.alert.as_ref().unwrap(), now);
    assert_eq!(firing[0]["endsAt"], crate::clock::rfc3339(now + 5 * MINUTE));
    let resolve = resolve_item();
    let resolved = http::alertmanager_body(&resolve, resolve.message.alert.as_ref().unwrap(), now + HOUR);
    assert_eq!(resolved[0]["endsAt"], "2026-01-01T01:00:00Z");
}

#[test]
fn a_grouped_instance_reaches_alertmanager_with_its_group_labels_one_by_one() {
    let mut grouped = alert("page", T0);
    grouped.slo = "checkout/availability{route=\"/pay\",service=\"legacy\"}".to_string();
    grouped.group = Some(crate::engine::Group(vec![
        ("route".to_string(), "/pay".to_string()),
        ("service".to_string(), "legacy".to_string()),
    ]));
    let item =
        plan(&[event(T0, EventKind::AlertFiring(grouped))], &[spec()], &config(), &snapshot(T0, None, None)).remove(0);
    let body = http::alertmanager_body(&item, item.message.alert.as_ref().unwrap(), T0);
    let labels = &body[0]["labels"];
    assert_eq!(labels["route"], "/pay", "routable and silenceable by route: {labels}");
    assert_eq!(labels["service"], "checkout", "a group label never shadows ours: {labels}");
    assert_eq!(labels["exported_service"], "legacy");
    assert_eq!(labels["slo"], "checkout/availability{route=\"/pay\",service=\"legacy\"}");
}

#[test]
fn a_digest_lists_budgets_freezes_and_the_period_events() {
    let report = crate::config::Report {
        schedule: "0 0 9 * * Mon".into(),
        to: vec![slack("#reports"), Route::PagerDuty],
        services: Vec::new(),
    };
    let events = [event(T0 + HOUR, EventKind::AlertFiring(alert("page", T0 + HOUR)))];
    let items = digest(
        &report,
        &snapshot(T0 + DAY_PLUS_SECONDS, Some(T0 + HOUR), Some(T0)),
        &events,
        T0,
        T0 + 2 * HOUR,
        "http://h/",
    );
    assert_eq!(items.len(), 1, "a digest is not an alert: no PagerDuty copy");
    let message = &items[0].message;
    assert_eq!(message.title, "Error budget report: 1 service(s), 1 frozen, 1 alert(s) firing");
    assert!(message.text.contains("checkout: FROZEN since 2026-01-01T00:00:00Z"), "{}", message.text);
    assert!(
        message.text.contains("checkout/availability: 80.0% budget left over 30d, burning 20.0x, firing: page"),
        "{}",
        message.text
    );
    assert!(message.text.contains("checkout/availability page fired (budget left 87.5%)"), "{}", message.text);
    assert_eq!(items[0].kind, NoticeKind::Report);
    let again = digest(&report, &snapshot(T0, None, None), &[], T0, T0 + 2 * HOUR + 400, "http://h/");
    assert_eq!(again[0].key, items[0].key, "one run, one key");
}

// ---- Slack against a stand-in ----

/// A local server speaking the two Slack Web API methods sloguard uses. Slack itself cannot be
/// reached from tests; this answers with Slack's documented shapes.
struct FakeSlack {
    url: String,
    /// `(method, JSON body)` per request.
    requests: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// Answers to give, first in first out; then `{"ok":true}`.
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// HTTP status, headers, JSON body.
type Answer = (u16, Vec<(&'static str, &'static str)>, serde_json::Value);

async fn fake_slack() -> FakeSlack {
    use axum::extract::{Path as UrlPath, State};
    use axum::response::IntoResponse;
    type Shared = (
        Arc<Mutex<Vec<(String, serde_json::Value)>>>,
        Arc<Mutex<Vec<(u16, Vec<(&'static str, &'static str)>, serde_json::Value)>>>,
    );
    async fn method(
        State((requests, answers)): State<Shared>,
        UrlPath(name): UrlPath<String>,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let n = {
            let mut requests = requests.lock().unwrap();
            requests.push((name.clone(), json.clone()));
            requests.len()
        };
        let scripted = {
            let mut a = answers.lock().unwrap();
            if a.is_empty() { None } else { Some(a.remove(0)) }
        };
        let (status, headers, body) = scripted.unwrap_or_else(|| {
            let channel = json["channel"].as_str().unwrap_or("C1").replace('#', "C");
            (200, Vec::new(), serde_json::json!({"ok": true, "channel": channel, "ts": format!("1700000000.{n:06}"), "message": {"text": "x", "ts": format!("1700000000.{n:06}")}}))
        });
        let mut res = (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        for (k, v) in headers {
            res.headers_mut().insert(k, v.parse().unwrap());
        }
        res
    }
    let requests = Arc::default();
    let answers = Arc::default();
    let app = axum::Router::new()
        .route("/api/{method}", axum::routing::post(method))
        .with_state((Arc::clone(&requests), Arc::clone(&answers)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeSlack { url, requests, answers }
}

fn slack_transport(url: &str) -> slack::SlackTransport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    slack::SlackTransport::new(&SlackNotifier { token: Secret::new("xoxb-test".into()), api_url: url.to_string() })
        .unwrap()
}

#[tokio::test]
async fn slack_posts_blocks_and_updates_and_threads_the_resolve() {
    let fake = fake_slack().await;
    let transport = slack_transport(&fake.url);
    let page = page_item();
    let receipt = transport.send(&page, None).await.expect("posted");
    assert_eq!(receipt.slack_channel.as_deref(), Some("Concall"));
    let ts = receipt.slack_ts.clone().unwrap();
    transport.send(&resolve_item(), Some(&receipt)).await.expect("resolved");
    let requests = fake.requests.lock().unwrap().clone();
    let methods: Vec<&str> = requests.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["chat.postMessage", "chat.update", "chat.postMessage"]);
    assert_eq!(requests[0].1["channel"], "#oncall");
    assert_eq!(requests[0].1["blocks"][0]["type"], "header");
    assert_eq!(requests[0].1["text"], page.message.title);
    assert_eq!((requests[1].1["channel"].as_str(), requests[1].1["ts"].as_str()), (Some("Concall"), Some(ts.as_str())));
    assert_eq!(requests[2].1["thread_ts"].as_str(), Some(ts.as_str()));
    assert!(requests[2].1["text"].as_str().unwrap().starts_with("RESOLVED"));
}

#[tokio::test]
async fn slack_errors_are_classified_by_type() {
    let fake = fake_slack().await;
    fake.answers.lock().unwrap().extend([
        (429, vec![("retry-after", "7")], serde_json::json!({"ok": false, "error": "ratelimited"})),
        (200, Vec::new(), serde_json::json!({"ok": false, "error": "channel_not_found"})),
        (200, Vec::new(), serde_json::json!({"ok": false, "error": "internal_error"})),
        (503, Vec::new(), serde_json::json!({"ok": false})),
    ]);
    let transport = slack_transport(&fake.url);
    let page = page_item();
    assert_eq!(
        transport.send(&page, None).await,
        Err(DeliveryError::RateLimited { retry_after: Some(Duration::from_secs(7)) })
    );
    assert!(matches!(transport.send(&page, None).await, Err(DeliveryError::Rejected(_))));
    assert!(matches!(transport.send(&page, None).await, Err(DeliveryError::Transient(_))));
    assert!(matches!(transport.send(&page, None).await, Err(DeliveryError::Transient(_))));
    let dead = slack_transport(&format!("http://{}/api", closed_port()));
    assert!(matches!(dead.send(&page, None).await, Err(DeliveryError::Transient(_))));
}

fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
