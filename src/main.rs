//! The CLI edge: parses arguments, sets up logging, and maps outcomes to exit codes
//! (0 ok, 1 runtime failure or denied gate, 64 bad usage or config). `anyhow` lives only here.

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
}

/// Durations on the command line use the spec's units, with `0s` allowed to disable things.
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    if matches!(text, "0" | "0s") {
        return Ok(std::time::Duration::ZERO);
    }
    sloguard::duration::parse_duration(text).map_err(|e| e.to_string())
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
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { spec, series, summary } => replay_cmd(spec, series, summary),
        Command::Validate { paths } => Ok(validate_cmd(&paths)),
        Command::Run { config } => run_cmd(config),
        Command::DemoTarget { listen, rate, incident_after, incident_for, incident_error_ratio } => {
            let options = sloguard::demo::DemoOptions { rate, incident_after, incident_for, incident_error_ratio };
            demo_cmd(listen, options)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn run_cmd(config_path: PathBuf) -> anyhow::Result<ExitCode> {
    // Everything is validated before a port is bound or the store is opened.
    let (config, specs) = sloguard::config::load_daemon(&config_path).map_err(spec_failure)?;
    tracing::info!("loaded {} service(s) from {}", specs.len(), config_path.display());
    runtime()?.block_on(async move {
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_sighup(reload_tx));
        let reloader: sloguard::daemon::Reloader = Box::new(move || sloguard::config::load_daemon(&config_path));
        let clock = std::sync::Arc::new(sloguard::clock::SystemClock);
        sloguard::daemon::run(config, specs, clock, reloader, reload_rx, terminated()).await
    })?;
    Ok(ExitCode::SUCCESS)
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
