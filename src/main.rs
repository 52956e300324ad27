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
}

/// A failure that maps to a specific exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { spec, series, summary } => replay_cmd(spec, series, summary),
        Command::Validate { paths } => Ok(validate_cmd(&paths)),
    }
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
