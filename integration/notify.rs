//! Notifications end to end: the real daemon binary scrapes a test-driven target, pages, and
//! delivers to a real SMTP server (aiosmtpd, `support/smtp_sink.py`) and to a local stand-in
//! for Slack's Web API (`support/slack.rs`; Slack itself cannot be reached from here). Then
//! the failures that matter: a rate-limited Slack, a mail outage, and SIGKILLs at every point
//! between the decision to page and the page's delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::daemon_proc::{Daemon, SLACK_TOKEN_ENV};
use crate::support::slack::{CHANNEL_ID, FakeSlack};
use crate::support::smtp::{Mail, SmtpSink};
use crate::support::target::Target;
use crate::support::{free_port, init, wait_until};

/// Bound on a page reaching the sink once the incident is on the target: one scrape (1 s, the
/// shortest interval a spec allows) and one evaluation (200 ms) on a quiet machine; generous
/// for a loaded 2-core CI box.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a test keeps watching after the last expected delivery, for duplicates to show.
const SETTLE: Duration = Duration::from_millis(1_500);

struct Stack {
    /// Config, specs, state and mail log; deleted when the test ends.
    _dir: TempDir,
    target: Target,
    sink: SmtpSink,
    slack: FakeSlack,
    daemon: Daemon,
}

/// Writes a config (200 ms evaluation and flush, fast backoff, then `extra_config`) and one
/// spec per service, each paging `email:oncall@example.com` (plus `slack:#oncall` when
/// `with_slack`), then starts the daemon and waits until its first scrape is in, so incidents
/// have a baseline.
async fn stack(services: &[String], with_slack: bool, extra_config: &str) -> Stack {
    init();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = Target::start(services).await;
    let sink = SmtpSink::start(dir.path());
    let slack = FakeSlack::start().await;
    let port = free_port();
    std::fs::create_dir(dir.path().join("specs")).expect("specs dir");
    let page_routes =
        if with_slack { r#"["email:oncall@example.com", "slack:#oncall"]"# } else { r#"["email:oncall@example.com"]"# };
    for service in services {
        let spec = format!(
            r#"service: {service}
owner: test-team
slos:
  - name: availability
    objective: 99.9
    window: 30d
    runbook: https://wiki.example.com/runbooks/{service}
    sli:
      errors: 'req_total{{svc="{service}",code="500"}}'
      total: 'req_total{{svc="{service}"}}'
policy:
  min_coverage: 1s
notify:
  page: {page_routes}
  freeze: ["email:deploys@example.com"]
source:
  scrape:
    targets: ['{target}']
    interval: 1s
    timeout: 1s
"#,
            target = target.url()
        );
        std::fs::write(dir.path().join("specs").join(format!("{service}.yaml")), spec).expect("write spec");
    }
    let config = format!(
        r#"listen: 127.0.0.1:{port}
data_dir: state
specs: specs
evaluation_interval: 200ms
flush_interval: 200ms
shutdown_grace: 2s
notifiers:
  slack:
    token_env: {SLACK_TOKEN_ENV}
    api_url: {slack_url}
  email:
    url: "smtp://127.0.0.1:{smtp_port}?tls=none"
    from: "sloguard <sloguard@example.com>"
delivery:
  max_backoff: 1s
{extra_config}"#,
        slack_url = slack.api_url(),
        smtp_port = sink.port()
    );
    let config_path = dir.path().join("sloguard.yaml");
    std::fs::write(&config_path, config).expect("write config");
    let daemon = Daemon::start(&config_path, port).await;
    let source = format!(r#"sloguard_source_up{{source="{}",kind="scrape"}}"#, target.url());
    wait_until("the first scrape", PAGE_TIMEOUT, || async {
        (daemon.metric(&source).await == Some(1.0)).then_some(())
    })
    .await;
    Stack { _dir: dir, target, sink, slack, daemon }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

async fn mail_where(sink: &SmtpSink, what: &str, pred: impl Fn(&Mail) -> bool) -> Mail {
    wait_until(what, PAGE_TIMEOUT, || async { sink.mails().into_iter().find(&pred) }).await
}

fn is_page(mail: &Mail, service: &str) -> bool {
    mail.subject.starts_with(&format!("PAGE: {service} availability is burning its error budget"))
        && mail.rcpt_tos == ["oncall@example.com"]
}

fn count_key(mails: &[Mail], key: &str) -> usize {
    mails.iter().filter(|m| m.key == key).count()
}

#[tokio::test]
async fn a_page_reaches_email_and_slack_and_its_resolve_updates_and_threads() {
    let services = names("checkout", 1);
    let stack = stack(&services, true, "").await;
    stack.target.incident("checkout00");
    let page = mail_where(&stack.sink, "the page email", |m| is_page(m, "checkout00")).await;
    let text = page.text.clone().expect("text part");
    for fact in [
        "Service: checkout00 (owner: test-team)",
        "SLO: availability, objective 99.9% over 30d",
        "Condition: burn ",
        "Budget left: ",
        "Time to exhaustion: ",
        "Deploy freeze: ",
        "Firing since: ",
        "Runbook: https://wiki.example.com/runbooks/checkout00",
        &format!("Status: {}/v1/services/checkout00", stack.daemon.url()),
    ] {
        assert!(text.contains(fact), "missing {fact:?} in the page email:\n{text}");
    }
    assert!(page.html.as_deref().is_some_and(|h| h.contains("<table>")), "HTML part: {:?}", page.html);
    assert_eq!(page.key.len(), 32, "{page:?}");
    assert_eq!(page.message_id, format!("<{}@sloguard>", page.key));

    let posts = wait_until("the Slack page", PAGE_TIMEOUT, || async {
        let calls = stack.slack.calls();
        calls.iter().any(|c| c.method == "chat.postMessage").then_some(calls)
    })
    .await;
    let post = &posts[0];
    assert_eq!(post.body["channel"], "#oncall");
    assert_eq!(post.body["text"].as_str(), Some(page.subject.as_str()));
    assert_eq!(post.body["blocks"][0]["type"], "header");
    let page_ts = "1700000000.000001";

    stack.target.recover("checkout00");
    let resolve = mail_where(&stack.sink, "the resolve email", |m| {
        m.subject.starts_with("RESOLVED: checkout00 availability page") && m.rcpt_tos == ["oncall@example.com"]
    })
    .await;
    assert_eq!(resolve.in_reply_to, page.message_id, "mail clients thread the resolve under its page");
    let calls = wait_until("the Slack resolve", PAGE_TIMEOUT, || async {
        let calls = stack.slack.calls();
        (calls.iter().filter(|c| c.method == "chat.postMessage").count() == 2).then_some(calls)
    })
    .await;
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["chat.postMessage", "chat.update", "chat.postMessage"]);
    assert_eq!((calls[1].body["channel"].as_str(), calls[1].body["ts"].as_str()), (Some(CHANNEL_ID), Some(page_ts)));
    assert!(calls[1].body["text"].as_str().unwrap_or_default().starts_with("RESOLVED"), "{:?}", calls[1].body);
    assert_eq!(calls[2].body["thread_ts"].as_str(), Some(page_ts), "the resolve replies in the page's thread");

    // The freeze and its lifting went to the freeze route.
    let freeze = mail_where(&stack.sink, "the unfreeze email", |m| m.subject.starts_with("UNFROZEN: checkout00")).await;
    assert_eq!(freeze.rcpt_tos, ["deploys@example.com"]);
    assert!(stack.sink.mails().iter().any(|m| m.subject.starts_with("FREEZE: checkout00 deploys are frozen")));
}

#[tokio::test]
async fn slack_rate_limits_are_honoured_to_their_retry_after() {
    let services = names("payments", 1);
    let stack = stack(&services, true, "").await;
    stack.slack.throttle_next(1);
    stack.target.incident("payments00");
    let calls = wait_until("the Slack page after a 429", PAGE_TIMEOUT, || async {
        let calls = stack.slack.calls();
        calls.iter().any(|c| c.method == "chat.postMessage" && !c.throttled).then_some(calls)
    })
    .await;
    assert!(calls[0].throttled, "{calls:?}");
    let gap = calls[1].received_ms - calls[0].received_ms;
    assert!(gap >= 1_000, "retried {gap} ms after a 429 with Retry-After: 1");
    tokio::time::sleep(SETTLE).await;
    let posts = stack.slack.calls().into_iter().filter(|c| c.method == "chat.postMessage" && !c.throttled).count();
    assert_eq!(posts, 1, "one page, posted once");
    let failures = r#"sloguard_notification_failures_total{route_kind="slack"}"#;
    assert_eq!(stack.daemon.metric(failures).await, Some(1.0));
}

#[tokio::test]
async fn a_mail_outage_delays_a_page_but_loses_nothing() {
    let services = names("search", 1);
    let mut stack = stack(&services, false, "").await;
    stack.sink.stop();
    stack.target.incident("search00");
    let failures = r#"sloguard_notification_failures_total{route_kind="email"}"#;
    wait_until("failed deliveries while mail is down", PAGE_TIMEOUT, || async {
        (stack.daemon.metric(failures).await >= Some(3.0)).then_some(())
    })
    .await;
    assert!(stack.daemon.metric("sloguard_outbox_depth").await >= Some(1.0));
    stack.sink.resume();
    let page = mail_where(&stack.sink, "the page after the outage", |m| is_page(m, "search00")).await;
    wait_until("an empty outbox", PAGE_TIMEOUT, || async {
        (stack.daemon.metric("sloguard_outbox_depth").await == Some(0.0)).then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(count_key(&stack.sink.mails(), &page.key), 1);
}

#[tokio::test]
async fn sigkill_between_decision_and_delivery_delivers_once_after_restart() {
    let services = names("cart", 1);
    let mut stack = stack(&services, true, "").await;
    stack.sink.stop();
    stack.target.incident("cart00");
    // The page is decided and committed once a delivery to the (down) mail server failed.
    let failures = r#"sloguard_notification_failures_total{route_kind="email"}"#;
    wait_until("the page to be queued", PAGE_TIMEOUT, || async {
        (stack.daemon.metric(failures).await >= Some(1.0)).then_some(())
    })
    .await;
    stack.daemon.kill();
    stack.sink.resume();
    stack.daemon.restart().await;
    let page = mail_where(&stack.sink, "the page after the restart", |m| is_page(m, "cart00")).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(count_key(&stack.sink.mails(), &page.key), 1);
    let slack_pages = stack.slack.calls().into_iter().filter(|c| c.method == "chat.postMessage").count();
    assert_eq!(slack_pages, 1, "Slack got the page in the first run and not again");
    assert!(!stack.daemon.log(1).contains("alert_firing"), "the restart did not fire the alert again");
}

/// Kill points, in ms after an incident is put on the target: before the scrape sees it (0),
/// between scrape and evaluation, right around the commit and delivery (~1-1.5 s), and after.
const KILL_AFTER_MS: [u64; 10] = [0, 1_050, 300, 1_150, 700, 1_250, 1_000, 1_350, 1_100, 1_500];

/// How close (ms) to a message's receipt a SIGKILL must land for a resend to be the documented
/// in-doubt case: the daemon had sent the message but died before its sent marker was flushed
/// (a few ms), so it sends it again. The receipt can even come after the kill: the server
/// reads the message from its socket buffer after the client is gone.
const IN_DOUBT_MS: i64 = 50;

#[tokio::test]
async fn twenty_kill_restart_cycles_deliver_every_page_exactly_once() {
    let services = names("svc", 20);
    let mut stack = stack(&services, false, "").await;
    let mut kills: Vec<(usize, i64)> = Vec::new();
    for (cycle, service) in services.iter().enumerate() {
        if cycle > 0 {
            stack.daemon.restart().await;
        }
        stack.target.incident(service);
        tokio::time::sleep(Duration::from_millis(KILL_AFTER_MS[cycle % KILL_AFTER_MS.len()])).await;
        stack.daemon.kill();
        kills.push((stack.daemon.n_runs() - 1, crate::support::slack::wall_ms()));
    }
    stack.daemon.restart().await;
    // What must have been notified is what the daemon committed: every page and freeze event
    // in its log (the freeze may come an evaluation after the page).
    let committed = wait_until("every service's page and freeze events", Duration::from_secs(40), || async {
        let mut committed = Vec::new();
        for service in &services {
            let events = stack.daemon.get_json(&format!("/v1/events?service={service}")).await?;
            let names: Vec<String> =
                events["events"].as_array()?.iter().filter_map(|e| e["event"].as_str().map(str::to_string)).collect();
            let count = |name: &str| names.iter().filter(|n| *n == name).count();
            if count("alert_firing") == 0 || count("freeze") == 0 {
                return None;
            }
            committed.push((service.clone(), count("freeze")));
        }
        Some(committed)
    })
    .await;
    wait_until("every page and freeze notice", Duration::from_secs(40), || async {
        let mails = stack.sink.mails();
        let freezes = |s: &str| mails.iter().filter(|m| m.subject.starts_with(&format!("FREEZE: {s} deploys"))).count();
        committed
            .iter()
            .all(|(s, n_freezes)| mails.iter().any(|m| is_page(m, s)) && freezes(s) >= *n_freezes)
            .then_some(())
    })
    .await;
    wait_until("an empty outbox", PAGE_TIMEOUT, || async {
        (stack.daemon.metric("sloguard_outbox_depth").await == Some(0.0)).then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;

    let mails = stack.sink.mails();
    let mut by_key: BTreeMap<&str, Vec<&Mail>> = BTreeMap::new();
    for mail in &mails {
        by_key.entry(mail.key.as_str()).or_default().push(mail);
    }
    for service in &services {
        let pages: Vec<&str> = mails.iter().filter(|m| is_page(m, service)).map(|m| m.key.as_str()).collect();
        assert!(!pages.is_empty() && pages.iter().all(|k| *k == pages[0]), "{service}: one page, one key: {pages:?}");
    }
    // For each accepted resend: ms from the first copy's receipt to the nearest kill.
    let mut in_doubt_deltas: Vec<i64> = Vec::new();
    for (key, copies) in &by_key {
        if copies.len() == 1 {
            continue;
        }
        // A second copy is only acceptable as the documented at-least-once window: a SIGKILL
        // within a few ms after the server accepted the first copy, before that run logged
        // (and recorded) the delivery.
        assert_eq!(copies.len(), 2, "{key} ({}) sent {} times", copies[0].subject, copies.len());
        let received = copies[0].received_ms;
        let in_doubt = kills.iter().find(|&&(run, killed_at)| {
            (killed_at - received).abs() <= IN_DOUBT_MS && !stack.daemon.log(run).contains(*key)
        });
        assert!(
            in_doubt.is_some(),
            "{key} ({}) sent twice outside the in-doubt window; kills {kills:?}, first at {received}",
            copies[0].subject
        );
        in_doubt_deltas.extend(in_doubt.map(|&(_, killed_at)| killed_at - received));
    }
    eprintln!(
        "{} cycles, {} runs, {} pages, {} mails, {} resend(s) in the in-doubt window (kill - receipt, ms: {in_doubt_deltas:?})",
        services.len(),
        stack.daemon.n_runs(),
        services.len(),
        mails.len(),
        in_doubt_deltas.len()
    );
}

#[tokio::test]
async fn a_budget_report_arrives_on_its_schedule() {
    let services = names("inventory", 1);
    let reports = "reports:\n  - schedule: \"*/2 * * * * *\"\n    to: [\"email:reports@example.com\"]\n";
    let stack = stack(&services, false, reports).await;
    let report = mail_where(&stack.sink, "a budget report", |m| m.rcpt_tos == ["reports@example.com"]).await;
    assert!(report.subject.starts_with("Error budget report: 1 service(s), 0 frozen"), "{}", report.subject);
    let text = report.text.expect("text part");
    assert!(text.contains("inventory00: deploys allowed"), "{text}");
    assert!(text.contains("inventory00/availability: "), "{text}");
}
