//! Message content: the words and figures an on-call engineer reads at 3 a.m., rendered once at
//! planning time into every shape a transport needs (plain text, HTML, Slack fields, alert
//! labels), so delivery is pure transport and a retried item never changes wording.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::{DAY, HOUR, MINUTE, Millis, SECOND, rfc3339};
use crate::engine::{AlertChange, FreezeChange, Group, NoDataChange};
use crate::policy::percent;
use crate::spec::Severity;
use crate::status::{ServiceStatus, SloStatus};

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// One line that stands alone: severity in plain words, what, how bad.
    pub title: String,
    /// Plain-text body (the title, then one `Label: value` line per fact, then links).
    pub text: String,
    pub html: String,
    /// `(label, value)` facts, for Slack fields and webhook annotations.
    pub fields: Vec<(String, String)>,
    /// `(label, url)`: runbook, the service in sloguard's API.
    pub links: Vec<(String, String)>,
    /// Set for alert-like notices (firing, repeat, resolve, freeze, unfreeze); machine
    /// transports (webhook, Alertmanager, PagerDuty) are built from it.
    pub alert: Option<AlertFacts>,
}

/// What machine transports need about an alert-like notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFacts {
    /// The same for the firing, its repeats and its resolve: PagerDuty's `dedup_key`, the
    /// webhook's `groupKey`, and (through `labels`) Alertmanager's alert identity.
    pub identity: String,
    pub status: AlertStatus,
    /// `alertname`, `service`, `slo`, `severity`.
    pub labels: BTreeMap<String, String>,
    pub starts_at: Millis,
    /// When it stopped firing; `None` while firing.
    pub ends_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// What the event itself does not carry about its SLO and service.
pub struct SloContext<'a> {
    pub owner: Option<&'a str>,
    /// Fraction (0.999), from the spec.
    pub objective: Option<f64>,
    /// The SLO window, from the spec.
    pub window: Option<Millis>,
    pub runbook: Option<&'a str>,
    /// `{public_url}/v1/services/{service}`.
    pub status_url: String,
    /// The service's freeze, as of this evaluation.
    pub frozen_since: Option<Millis>,
}

/// An alert that started firing. The headline burn is the short window's: what happens now.
pub fn alert_firing(a: &AlertChange, context: &SloContext<'_>) -> Message {
    let headline = a.condition.short_burn.or(a.condition.long_burn);
    let title = format!(
        "{}: {} is burning its error budget {} too fast",
        a.severity.to_uppercase(),
        slo_words(&a.slo),
        burn(headline)
    );
    let mut body = Body::new(title);
    alert_facts(&mut body, a, context);
    body.fact("Firing since", rfc3339(a.since));
    body.finish(
        context,
        Some(facts(&a.slo, a.group.as_ref(), &a.service, &a.severity, a.since, AlertStatus::Firing, None)),
    )
}

/// A reminder for an alert still firing at `now`, from the read model (the event that fired it
/// is long gone): the same facts as the page, as of now.
pub fn still_firing(
    service: &ServiceStatus,
    slo: &SloStatus,
    severity: &str,
    since: Millis,
    context: &SloContext<'_>,
    now: Millis,
) -> Message {
    let title = format!(
        "STILL FIRING ({}, for {}): {} is burning its error budget {} too fast",
        severity.to_uppercase(),
        span(now - since),
        slo_words(&slo.slo),
        burn(super::plan::current_burn(slo))
    );
    let mut body = Body::new(title);
    body.fact("Service", service_words(&service.service, context.owner));
    body.fact("SLO", format!("{}, objective {}% over {}", slo_name(&slo.slo), slo.objective, slo.window));
    body.fact("Severity", severity_words(severity));
    let rates: Vec<String> = slo.burn_rates.iter().map(|r| format!("{} {}", r.window, burn(r.burn))).collect();
    body.fact("Burn rates", rates.join(", "));
    body.fact("Budget left", budget_words(slo.budget_remaining, context.window));
    body.fact("Time to exhaustion", exhaustion_words(slo.time_to_exhaustion_s));
    body.fact("Deploy freeze", freeze_words(context.frozen_since));
    body.fact("Firing since", rfc3339(since));
    body.finish(
        context,
        Some(facts(&slo.slo, slo.group.as_ref(), &service.service, severity, since, AlertStatus::Firing, None)),
    )
}

/// A reminder that a freeze holds, for transports that need a refresh (Alertmanager).
pub fn still_frozen(service: &ServiceStatus, since: Millis, context: &SloContext<'_>, now: Millis) -> Message {
    let title = format!("FREEZE: {} deploys have been frozen for {}", service.service, span(now - since));
    let mut body = Body::new(title);
    body.fact("Service", service_words(&service.service, context.owner));
    for slo in &service.slos {
        body.fact(&format!("Budget {}", slo_name(&slo.slo)), percent(slo.budget_remaining));
    }
    body.fact("Frozen since", rfc3339(since));
    body.finish(context, Some(freeze_facts(&service.service, since, AlertStatus::Firing, now)))
}

/// A resolved alert; when the engine judged the incident worth a postmortem (by the policy's
/// `postmortem_above`), the title says so and the body gives the burn behind it.
pub fn alert_resolved(a: &AlertChange, context: &SloContext<'_>, at: Millis) -> Message {
    let mut title = format!(
        "RESOLVED: {} {} after {} (budget left {})",
        slo_words(&a.slo),
        a.severity,
        span(at - a.since),
        percent(a.budget_remaining)
    );
    if let Some(p) = a.postmortem.as_ref().filter(|p| p.required) {
        title.push_str(&format!("; POSTMORTEM REQUIRED: the incident burned {} of the budget", pct(p.budget_burned)));
    }
    let mut body = Body::new(title);
    alert_facts(&mut body, a, context);
    if let Some(p) = &a.postmortem {
        let verdict = if p.required { "postmortem required" } else { "no postmortem required" };
        body.fact(
            "Incident burn",
            format!("{} of the budget ({verdict}; policy threshold {})", pct(p.budget_burned), pct(p.threshold)),
        );
    }
    body.fact("Fired", format!("{} .. {} ({})", rfc3339(a.since), rfc3339(at), span(at - a.since)));
    body.finish(
        context,
        Some(facts(&a.slo, a.group.as_ref(), &a.service, &a.severity, a.since, AlertStatus::Resolved, Some(at))),
    )
}

pub fn freeze(f: &FreezeChange, context: &SloContext<'_>, at: Millis) -> Message {
    let by: Vec<String> =
        f.frozen_by.iter().map(|b| format!("{} ({} left)", slo_words(&b.slo), percent(b.budget_remaining))).collect();
    let title = format!("FREEZE: {} deploys are frozen: error budget exhausted by {}", f.service, by.join(", "));
    let mut body = Body::new(title);
    service_facts(&mut body, f, context);
    body.fact(
        "Freeze rule",
        format!("freeze at or below {}, lift above {}", pct(f.freeze_below), pct(f.unfreeze_above)),
    );
    body.fact("Frozen since", rfc3339(f.since));
    body.finish(context, Some(freeze_facts(&f.service, f.since, AlertStatus::Firing, at)))
}

pub fn unfreeze(f: &FreezeChange, context: &SloContext<'_>, at: Millis) -> Message {
    let title = format!(
        "UNFROZEN: {} deploys are allowed again: every SLO has more than {} of its budget",
        f.service,
        pct(f.unfreeze_above)
    );
    let mut body = Body::new(title);
    service_facts(&mut body, f, context);
    body.fact("Was frozen", format!("{} .. {} ({})", rfc3339(f.since), rfc3339(at), span(at - f.since)));
    body.finish(context, Some(freeze_facts(&f.service, f.since, AlertStatus::Resolved, at)))
}

pub fn no_data(n: &NoDataChange, context: &SloContext<'_>, at: Millis) -> Message {
    let title = format!(
        "NO DATA: {} has had no sample for {}: its budget and alerts are blind",
        slo_words(&n.slo),
        span(at - n.since)
    );
    let mut body = Body::new(title);
    body.fact("Service", service_words(&n.service, context.owner));
    body.fact("Last sample", rfc3339(n.since));
    body.finish(context, Some(no_data_facts(n, AlertStatus::Firing, None)))
}

pub fn data_returned(n: &NoDataChange, context: &SloContext<'_>, at: Millis) -> Message {
    let title = format!("DATA RETURNED: {} has samples again after {} without", slo_words(&n.slo), span(at - n.since));
    let mut body = Body::new(title);
    body.fact("Service", service_words(&n.service, context.owner));
    body.fact("Silent", format!("{} .. {} ({})", rfc3339(n.since), rfc3339(at), span(at - n.since)));
    body.finish(context, Some(no_data_facts(n, AlertStatus::Resolved, Some(at))))
}

fn no_data_facts(n: &NoDataChange, status: AlertStatus, ends_at: Option<Millis>) -> AlertFacts {
    let labels = BTreeMap::from([
        ("alertname".to_string(), "SloNoData".to_string()),
        ("service".to_string(), n.service.clone()),
        ("slo".to_string(), n.slo.clone()),
        ("severity".to_string(), Severity::Ticket.as_str().to_string()),
    ]);
    AlertFacts { identity: format!("{}:no_data:{}", n.slo, n.since), status, labels, starts_at: n.since, ends_at }
}

/// A digest: one line per service and SLO, then the period's events.
pub fn report(title: String, lines: Vec<(String, String)>, links: Vec<(String, String)>) -> Message {
    let mut body = Body::new(title);
    for (label, value) in lines {
        body.fact(&label, value);
    }
    body.links = links;
    body.render(None)
}

fn alert_facts(body: &mut Body, a: &AlertChange, context: &SloContext<'_>) {
    body.fact("Service", service_words(&a.service, context.owner));
    let objective = match (context.objective, context.window) {
        (Some(o), Some(w)) => format!("{}, objective {} over {}", slo_name(&a.slo), objective_words(o), span(w)),
        _ => slo_name(&a.slo).to_string(),
    };
    body.fact("SLO", objective);
    body.fact("Severity", severity_words(&a.severity));
    let c = &a.condition;
    body.fact(
        "Condition",
        format!(
            "burn {} over {} and {} over {} (threshold {})",
            burn(c.long_burn),
            c.long,
            burn(c.short_burn),
            c.short,
            burn(Some(c.factor))
        ),
    );
    let rates: Vec<String> = a.burn_rates.iter().map(|(w, b)| format!("{w} {}", burn(*b))).collect();
    body.fact("Burn rates", rates.join(", "));
    body.fact("Budget left", budget_words(a.budget_remaining, context.window));
    body.fact("Time to exhaustion", exhaustion_words(a.time_to_exhaustion_s));
    body.fact("Deploy freeze", freeze_words(context.frozen_since));
}

fn service_facts(body: &mut Body, f: &FreezeChange, context: &SloContext<'_>) {
    body.fact("Service", service_words(&f.service, context.owner));
    for b in &f.budgets {
        body.fact(&format!("Budget {}", slo_name(&b.slo)), percent(b.budget_remaining));
    }
}

/// The labels carry a grouped instance's group labels one by one (`route="/pay"`), so
/// Alertmanager can route and silence on them; one that would shadow a label of ours is sent as
/// `exported_<label>`, as Prometheus does on scrape.
fn facts(
    slo: &str,
    group: Option<&Group>,
    service: &str,
    severity: &str,
    since: Millis,
    status: AlertStatus,
    ends_at: Option<Millis>,
) -> AlertFacts {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), "SloErrorBudgetBurn".to_string()),
        ("service".to_string(), service.to_string()),
        ("slo".to_string(), slo.to_string()),
        ("severity".to_string(), severity.to_string()),
    ]);
    for (label, value) in group.map(|g| g.0.as_slice()).unwrap_or_default() {
        let key = if labels.contains_key(label) { format!("exported_{label}") } else { label.clone() };
        labels.insert(key, value.clone());
    }
    AlertFacts { identity: format!("{slo}:{severity}:{since}"), status, labels, starts_at: since, ends_at }
}

fn freeze_facts(service: &str, since: Millis, status: AlertStatus, at: Millis) -> AlertFacts {
    let labels = BTreeMap::from([
        ("alertname".to_string(), "SloDeployFreeze".to_string()),
        ("service".to_string(), service.to_string()),
        ("severity".to_string(), "freeze".to_string()),
    ]);
    AlertFacts {
        identity: format!("{service}:freeze:{since}"),
        status,
        labels,
        starts_at: since,
        ends_at: (status == AlertStatus::Resolved).then_some(at),
    }
}

fn exhaustion_words(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{} at the current burn", span((s * SECOND as f64) as Millis)),
        None => "not burning".to_string(),
    }
}

/// Accumulates facts, then renders text, HTML and fields from the same list.
struct Body {
    title: String,
    fields: Vec<(String, String)>,
    links: Vec<(String, String)>,
}

impl Body {
    fn new(title: String) -> Body {
        Body { title, fields: Vec::new(), links: Vec::new() }
    }

    fn fact(&mut self, label: &str, value: String) {
        self.fields.push((label.to_string(), value));
    }

    fn finish(mut self, context: &SloContext<'_>, alert: Option<AlertFacts>) -> Message {
        if let Some(runbook) = context.runbook {
            self.links.push(("Runbook".to_string(), runbook.to_string()));
        }
        self.links.push(("Status".to_string(), context.status_url.clone()));
        self.render(alert)
    }

    fn render(self, alert: Option<AlertFacts>) -> Message {
        let mut text = format!("{}\n\n", self.title);
        let mut html = format!("<h2>{}</h2>\n<table>\n", escape_html(&self.title));
        for (label, value) in &self.fields {
            text.push_str(&format!("{label}: {value}\n"));
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                escape_html(label),
                escape_html(value)
            ));
        }
        html.push_str("</table>\n");
        if !self.links.is_empty() {
            text.push('\n');
            html.push_str("<p>");
        }
        for (i, (label, url)) in self.links.iter().enumerate() {
            text.push_str(&format!("{label}: {url}\n"));
            let sep = if i == 0 { "" } else { " | " };
            html.push_str(&format!("{sep}<a href=\"{}\">{}</a>", escape_html(url), escape_html(label)));
        }
        if !self.links.is_empty() {
            html.push_str("</p>\n");
        }
        Message { title: self.title, text, html, fields: self.fields, links: self.links, alert }
    }
}

/// `checkout/availability` reads as `checkout availability` in a sentence.
fn slo_words(slo: &str) -> String {
    slo.replacen('/', " ", 1)
}

fn slo_name(slo: &str) -> &str {
    slo.split_once('/').map_or(slo, |(_, name)| name)
}

fn service_words(service: &str, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => format!("{service} (owner: {owner})"),
        None => service.to_string(),
    }
}

fn severity_words(severity: &str) -> String {
    match severity {
        "page" => "page: act now, the budget is going fast".to_string(),
        "ticket" => "ticket: handle in working hours, the budget is eroding".to_string(),
        other => other.to_string(),
    }
}

fn freeze_words(frozen_since: Option<Millis>) -> String {
    match frozen_since {
        Some(since) => format!("FROZEN since {}", rfc3339(since)),
        None => "not frozen".to_string(),
    }
}

fn budget_words(remaining: Option<f64>, window: Option<Millis>) -> String {
    match window {
        Some(w) => format!("{} of the {} budget", percent(remaining), span(w)),
        None => percent(remaining),
    }
}

/// `99.9%`: objectives print with as many decimals as they were written with (up to four).
fn objective_words(objective: f64) -> String {
    let text = format!("{:.4}", objective * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

fn pct(fraction: f64) -> String {
    percent(Some(fraction))
}

/// Burn rates: `16.8x`; whole numbers past 100x, where a decimal is noise; `no traffic` when
/// the window is empty (undefined, never zero).
pub(crate) fn burn(rate: Option<f64>) -> String {
    match rate {
        Some(b) if b >= 100.0 => format!("{b:.0}x"),
        Some(b) => format!("{b:.1}x"),
        None => "no traffic".to_string(),
    }
}

/// The two largest units: `1d5h`, `42m`, `3m20s`. Finer detail is noise in a page.
pub(crate) fn span(ms: Millis) -> String {
    const UNITS: [(Millis, &str); 4] = [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")];
    if ms < SECOND {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    let mut n_units = 0;
    for (unit, suffix) in UNITS {
        if rest >= unit && n_units < 2 {
            out.push_str(&format!("{}{suffix}", rest / unit));
            rest %= unit;
            n_units += 1;
        } else if n_units > 0 {
            // Units must be adjacent: `1d7s` would read as a typo.
            break;
        }
    }
    out
}

pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
