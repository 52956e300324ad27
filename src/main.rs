//! The CLI edge: parses arguments, sets up logging, and maps outcomes to exit codes
//! (0 ok, 1 runtime failure or denied gate, 64 bad usage or config, 69 gate without a decision).
//! `anyhow` lives only here.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sloguard::clock::{format_span, rfc3339};
use sloguard::replay::{self, Summary};
use sloguard::spec::{self, SpecErrors};

/// Exit code for bad usage or invalid configuration (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// `sloguard gate`: the deploy is denied (the usual runtime-failure code, so `set -e` stops).
const EXIT_DENIED: u8 = 1;

/// `sloguard gate`: no decision could be had (sysexits' EX_UNAVAILABLE), distinct from a deny
/// so a pipeline can tell "sloguard said no" from "sloguard was not there".
const EXIT_UNAVAILABLE: u8 = 69;

/// `sloguard gate --timeout` default: the gate answers in well under a millisecond, so ten
/// seconds only ever waits on a slow network, and still fails a CI step quickly.
const DEFAULT_GATE_TIMEOUT: &str = "10s";

#[derive(Parser)]
#[command(name = "sloguard", version, about = "SLO burn-rate alerts, durable error budgets and deploy gates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a recorded series file through the engine and print state changes as JSON Lines.
    Replay {
        /// Service spec file (or directory of specs).
        #[arg(long)]
        spec: PathBuf,
        /// Text-exposition file whose samples carry millisecond timestamps.
        #[arg(long)]
        series: PathBuf,
        /// Also print a per-SLO summary table to stderr.
        #[arg(long)]
        summary: bool,
    },
    /// Validate spec files or directories; prints every error, exits 64 if any.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the daemon: scrape or query sources, evaluate, persist, serve the API.
    Run {
        /// Daemon config file (sloguard.yaml).
        #[arg(long, env = "SLOGUARD_CONFIG")]
        config: PathBuf,
        /// Move the existing store in data_dir to data_dir/discarded-<UTC time>/ (nothing is
        /// deleted) and start with an empty one: budgets, alert state, overrides and the audit
        /// log start over. For a store that refuses to start as damaged.
        #[arg(long)]
        reset_state: bool,
    },
    /// Offline store tools.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Serve synthetic checkout/payments metrics with a scripted incident, for demos and tests.
    DemoTarget {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
        /// Requests per second for checkout.
        #[arg(long, default_value_t = sloguard::demo::DEFAULT_RATE)]
        rate: f64,
        /// Time from start until the checkout incident begins (e.g. 20s, 2m).
        #[arg(long, default_value = "20s", value_parser = parse_span)]
        incident_after: std::time::Duration,
        /// How long the incident lasts; 0s disables it.
        #[arg(long, default_value = "10m", value_parser = parse_span)]
        incident_for: std::time::Duration,
        /// Share of checkout requests failing with 5xx during the incident.
        #[arg(long, default_value_t = sloguard::demo::DEFAULT_INCIDENT_ERROR_RATIO)]
        incident_error_ratio: f64,
    },
    /// Ask a running sloguard whether SERVICE may deploy now, for CI/CD pipelines.
    ///
    /// Exits 0 on allow and on warn (printing the warning), 1 on deny (printing the reasons and
    /// how to get an exception), 69 when sloguard cannot be reached or answers 5xx or garbage
    /// (0 with --fail-open), 64 for bad usage or an unknown service.
    Gate {
        /// The service name, as in its spec.
        service: String,
        /// Base URL of the sloguard API, e.g. http://sloguard.monitoring:9464.
        #[arg(long, env = "SLOGUARD_URL")]
        server: String,
        /// Change class (hotfix, security, ...); classes in the spec's allow_during_freeze pass
        /// a freeze with a warning.
        #[arg(long)]
        change: Option<String>,
        /// Allow the deploy when no decision can be had (unreachable, 5xx, garbage).
        #[arg(long)]
        fail_open: bool,
        /// Give up on sloguard after this long (e.g. 5s, 1m).
        #[arg(long, default_value = DEFAULT_GATE_TIMEOUT, value_parser = parse_span)]
        timeout: std::time::Duration,
        /// Print the decision as sloguard's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Verify the store in DIR (a daemon's data_dir) without running on it: both halves'
    /// identity and every record a start reads. Exits 0 if healthy, 1 if damaged (printing what
    /// and where), 64 if DIR holds no store. Run it while the daemon is stopped.
    Check { dir: PathBuf },
}

/// Durations on the command line use the spec's units, with `0s` allowed to disable things.
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    if matches!(text, "0" | "0s") {
        return Ok(std::time::Duration::ZERO);
    }
    sloguard::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// Why `sloguard gate` got no decision.
#[derive(Debug, thiserror::Error)]
enum GateFailure {
    /// Unreachable, timed out, 5xx, or a body that is not a decision: exit 69 (or fail open).
    #[error("{0}")]
    Unavailable(String),
    /// sloguard refused the request (unknown service, bad change class): a usage error, never
    /// failed open, since a typo would otherwise skip the gate for good.
    #[error("{0}")]
    Refused(String),
}

/// A failure that maps to a specific exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    // One TLS provider for reqwest, rustls and everything else (see ../shared/crates.md); a
    // second one compiled in would make building the first TLS client panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sloguard: {e:#}");
            match e.downcast_ref::<Failure>() {
                Some(Failure::Usage(_)) => ExitCode::from(EXIT_USAGE),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLOGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (stderr is a file on a full disk) is dropped: the
    // subscriber's report of it goes through eprintln!, which panics when stderr fails too.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { spec, series, summary } => replay_cmd(spec, series, summary),
        Command::Validate { paths } => Ok(validate_cmd(&paths)),
        Command::Run { config, reset_state } => run_cmd(config, reset_state),
        Command::Store { command: StoreCommand::Check { dir } } => store_check_cmd(&dir),
        Command::DemoTarget { listen, rate, incident_after, incident_for, incident_error_ratio } => {
            let options = sloguard::demo::DemoOptions { rate, incident_after, incident_for, incident_error_ratio };
            demo_cmd(listen, options)
        }
        Command::Gate { service, server, change, fail_open, timeout, json } => {
            let url = gate_url(&server, &service, change.as_deref())?;
            let answer = runtime()?.block_on(fetch_gate(url, timeout));
            Ok(report_gate(&service, answer, fail_open, json))
        }
    }
}

/// `<server>/v1/gate/<service>?change=<class>`, with the service and class percent-encoded.
fn gate_url(server: &str, service: &str, change: Option<&str>) -> anyhow::Result<reqwest::Url> {
    let usage = |why: &str| Failure::Usage(format!("--server {server:?}: {why}"));
    let mut url = reqwest::Url::parse(server).map_err(|e| usage(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(usage("expected an http:// or https:// URL").into());
    }
    url.path_segments_mut().map_err(|()| usage("not a base URL"))?.pop_if_empty().extend(["v1", "gate", service]);
    if let Some(change) = change {
        url.query_pairs_mut().append_pair("change", change);
    }
    Ok(url)
}

/// The gate's JSON body and its decision, or why there is none.
async fn fetch_gate(url: reqwest::Url, timeout: std::time::Duration) -> Result<(String, String), GateFailure> {
    let unavailable = |what: String| GateFailure::Unavailable(what);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| unavailable(format!("building the HTTP client: {e}")))?;
    let res =
        client.get(url.clone()).send().await.map_err(|e| unavailable(format!("GET {url}: {}", error_chain(&e))))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| unavailable(format!("reading the answer from {url}: {e}")))?;
    let reason = || {
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect())
    };
    if status.is_client_error() {
        return Err(GateFailure::Refused(format!("{url} answered {status}: {}", reason())));
    }
    if !status.is_success() {
        return Err(unavailable(format!("{url} answered {status}: {}", reason())));
    }
    let decision = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["decision"].as_str().map(str::to_string))
        .filter(|d| matches!(d.as_str(), "allow" | "warn" | "deny"))
        .ok_or_else(|| unavailable(format!("{url} answered {status} without a decision: {}", reason())))?;
    Ok((body, decision))
}

/// An error and its causes, `a: b: c`: reqwest's own message leaves out why a request failed
/// (refused, timed out, DNS).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Prints the answer for a CI log and picks the exit code.
fn report_gate(service: &str, answer: Result<(String, String), GateFailure>, fail_open: bool, json: bool) -> ExitCode {
    let (body, decision) = match answer {
        Ok(answer) => answer,
        Err(GateFailure::Refused(why)) => {
            eprintln!("sloguard gate: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(GateFailure::Unavailable(why)) if fail_open => {
            eprintln!("sloguard gate: no decision for {service}: {why}");
            eprintln!("sloguard gate: FAILED OPEN (--fail-open): allowing the deploy without a decision");
            return ExitCode::SUCCESS;
        }
        Err(GateFailure::Unavailable(why)) => {
            eprintln!("sloguard gate: no decision for {service}: {why}");
            eprintln!("sloguard gate: failing closed; pass --fail-open to deploy when sloguard is unavailable");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    if json {
        println!("{body}");
    } else {
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let headline = match decision.as_str() {
            "allow" => "ALLOW",
            "warn" => "WARN (deploying anyway)",
            _ => "DENY",
        };
        println!("sloguard gate: {service}: {headline}");
        for reason in parsed["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str()) {
            println!("  - {reason}");
        }
        if let Some(exception) = parsed["exception"].as_str().filter(|_| decision == "deny") {
            println!("  exception: {exception}");
        }
    }
    if decision == "deny" { ExitCode::from(EXIT_DENIED) } else { ExitCode::SUCCESS }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn run_cmd(config_path: PathBuf, reset_state: bool) -> anyhow::Result<ExitCode> {
    // Everything is validated before a port is bound or the store is opened.
    let (config, specs) = sloguard::config::load_daemon(&config_path).map_err(spec_failure)?;
    tracing::info!("loaded {} service(s) from {}", specs.len(), config_path.display());
    if reset_state {
        use sloguard::clock::Clock;
        let (moved_to, names) = sloguard::store::discard(&config.data_dir, sloguard::clock::SystemClock.now())
            .context("--reset-state: moving the old store aside")?;
        if names.is_empty() {
            tracing::warn!("--reset-state: {} holds no store; starting afresh", config.data_dir.display());
        } else {
            tracing::warn!(
                "--reset-state: moved {} to {}; starting with an empty store",
                names.join(", "),
                moved_to.display()
            );
        }
    }
    runtime()?.block_on(async move {
        survive_file_size_limit();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_sighup(reload_tx));
        let reloader: sloguard::daemon::Reloader = Box::new(move || sloguard::config::load_daemon(&config_path));
        let clock = std::sync::Arc::new(sloguard::clock::SystemClock);
        sloguard::daemon::run(config, specs, clock, reloader, reload_rx, terminated()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `sloguard store check DIR`.
fn store_check_cmd(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let has_store = ["db", "windows.log"].iter().any(|name| dir.join(name).exists());
    if !dir.is_dir() || !has_store {
        return Err(Failure::Usage(format!("{} holds no sloguard store (no db or windows.log)", dir.display())).into());
    }
    match sloguard::store::Store::check(dir) {
        Ok(report) => {
            println!("{}: healthy", dir.display());
            if let Some(id) = &report.id {
                println!("  store id      {id}");
            }
            println!("  windows       {}", report.n_windows);
            println!("  series        {}", report.n_series);
            println!("  transitions   {}", report.n_transitions);
            println!("  events        {}", report.n_events);
            println!("  overrides     {}", report.n_overrides);
            println!("  corrections   {}", report.n_corrections);
            println!("  outbox        {}", report.n_outbox);
            for note in &report.notes {
                println!("  note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ sloguard::store::StoreError::Open { .. }) => {
            println!("{}: cannot be checked (is a sloguard running on it?)", dir.display());
            println!("  {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("{}: DAMAGED", dir.display());
            println!("  {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A file size limit (`ulimit -f`, `LimitFSIZE=`) sends SIGXFSZ on a write past it, and that
/// kills by default. Handled, the write fails with EFBIG instead, which the store treats like a
/// full disk (unready, kept pending, recovered by itself once writes succeed).
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    /// SIGXFSZ on Linux (x86-64 and arm64 alike); `libc` is not a direct dependency.
    const SIGXFSZ: i32 = 25;
    match signal(SignalKind::from_raw(SIGXFSZ)) {
        // The handler stays installed as long as the stream lives; the store logs the failures.
        Ok(mut xfsz) => drop(tokio::spawn(async move { while xfsz.recv().await.is_some() {} })),
        Err(e) => tracing::warn!("cannot handle SIGXFSZ ({e}); a file size limit will kill the daemon"),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

/// Turns each SIGHUP into a reload request; a burst of them coalesces into one.
async fn forward_sighup(reloads: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reloads need a restart");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading config and specs");
        let _ = reloads.try_send(());
    }
}

fn demo_cmd(listen: std::net::SocketAddr, options: sloguard::demo::DemoOptions) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let (listener, local) = sloguard::demo::bind(listen)
            .await
            .map_err(|e| Failure::Usage(format!("cannot listen on {listen}: {e}")))?;
        tracing::info!(
            "demo target on http://{local}/metrics; incident in {:?} for {:?}",
            options.incident_after,
            options.incident_for
        );
        sloguard::demo::serve(listener, options, terminated()).await.context("demo target")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every spec error, one per line, and turns them into a usage failure.
fn spec_failure(errors: SpecErrors) -> anyhow::Error {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    Failure::Usage(format!("{} spec error(s)", errors.0.len())).into()
}

fn replay_cmd(spec: PathBuf, series: PathBuf, want_summary: bool) -> anyhow::Result<ExitCode> {
    let specs = spec::load_path(&spec).map_err(spec_failure)?;
    let bytes = std::fs::read(&series).with_context(|| format!("reading {}", series.display()))?;
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut write_error = None;
    let summary = replay::replay(&specs, &bytes, |event| {
        if write_error.is_none() {
            let res = serde_json::to_writer(&mut out, event)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            write_error = res.err();
        }
    })
    .map_err(|e| Failure::Usage(format!("{}: {e}", series.display())))?;
    if let Some(e) = write_error {
        return Err(e).context("writing events to stdout");
    }
    out.flush().context("writing events to stdout")?;
    if want_summary {
        eprint!("{}", render_summary(&summary));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_summary(summary: &Summary) -> String {
    let span = match (summary.first, summary.last) {
        (Some(a), Some(b)) => format!("{} .. {} ({})", rfc3339(a), rfc3339(b), format_span(b - a)),
        _ => "no samples".to_string(),
    };
    let mut text = format!(
        "replayed {} samples at {} instants, {span}\n{:<32} {:>12} {:>12}  {:<22} {:>6}\n",
        summary.n_samples, summary.n_instants, "SLO", "budget left", "worst burn", "worst at", "events"
    );
    for (id, slo) in &summary.slos {
        let budget = slo.budget_remaining.map_or("no data".to_string(), |b| format!("{:.1}%", b * 100.0));
        let (burn, at) =
            slo.worst_burn.map_or(("-".to_string(), "-".to_string()), |(b, at)| (format!("{b:.2}x"), rfc3339(at)));
        text.push_str(&format!("{id:<32} {budget:>12} {burn:>12}  {at:<22} {:>6}\n", slo.n_events));
    }
    text
}

fn validate_cmd(paths: &[PathBuf]) -> ExitCode {
    match spec::load_paths(paths) {
        Ok(specs) => {
            let n_slos: usize = specs.iter().map(|s| s.slos.len()).sum();
            println!("ok: {} service(s), {n_slos} SLO(s)", specs.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::from(EXIT_USAGE)
        }
    }
}
