//! Open-loop, constant-rate HTTP load: request i is scheduled at `start + i / rate` whatever
//! happened to the requests before it, and the schedule is dealt round-robin over C keep-alive
//! connections. `benches/gate_load.sh` runs it against the real daemon scraping and evaluating a
//! 1,000-SLO fleet, to measure the deploy gate's tail at a fixed rate (wrk there shows the
//! maximum throughput, not the latency at a given one).
//!
//!     cargo bench --bench gate_rate -- --url http://127.0.0.1:PORT/v1/gate/checkout \
//!         --rate 5000 --duration 10s [--connections 32]
//!
//! Why open loop: a closed-loop client sends its next request only once the last one is
//! answered, so when the server stalls the client stops asking, and a stall that delayed a
//! hundred callers shows up as one slow sample (coordinated omission). Here each connection sends
//! its requests in schedule order; one that is still waiting on an answer when its next request
//! is due sends that request late, and the request's latency is measured from its *scheduled*
//! time, which charges the stall to every request it delayed. That is the coordinated-omission
//! correction. Latency from the actual send (uncorrected) is printed beside it to show how much
//! the correction matters.
//!
//! Prints the achieved rate, the count, non-200 answers, I/O errors, and latency percentiles in
//! µs. Exits non-zero if any request failed or was answered with anything but 200: it asserts
//! that the answers are right, never anything about timing. Without `--url` (as under
//! `cargo test --all-targets`, which runs this with no arguments, or a bare `cargo bench`) it
//! drives an in-process server at a low rate for half a second as a smoke test.
//!
//! One blocking thread per connection rather than tokio tasks: tokio's timer works at millisecond
//! granularity, so a request paced with `sleep_until` would leave up to 1 ms after its scheduled
//! time, and measured from that time the generator's own lateness would read as server latency,
//! at the very scale being measured. `std::thread::sleep` wakes within tens of µs (Linux adds a
//! default 50 µs of timer slack). What remains is printed as "pacer lateness" (send time minus
//! the later of the scheduled time and the connection's previous answer), so the generator's
//! error stays visible; it is left inside the corrected latency, which therefore errs high.
//! Spinning to the exact instant would remove it but burn a core the daemon needs. The threads
//! sleep between requests; the generator's CPU cost is a sleep, a write and a read per request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The rate the gate's latency claim is stated at.
const DEFAULT_RATE: f64 = 5000.0;
/// Long enough to span two of the daemon's 5 s evaluation cycles in `gate_load.sh`.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// At 5,000 requests/s a connection carries one request every 6.4 ms, far more than a sub-ms
/// answer needs, so a request waits on its own connection only when the server stalls.
const DEFAULT_CONNECTIONS: usize = 32;
/// Bound on connecting, sending or reading one answer: a hung server fails the run, not hangs it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Gap between opening the connections and the first scheduled request, so that connection
/// setup is never inside a measured latency.
const LEAD: Duration = Duration::from_millis(20);
/// How long past the schedule's end requests may still be sent; later ones count as unsent, so
/// a server that fell far behind ends the run instead of stretching it.
const DRAIN: Duration = Duration::from_secs(5);
/// Smoke test: enough requests over a few connections to exercise the schedule and the parser.
const SMOKE_RATE: f64 = 500.0;
const SMOKE_DURATION: Duration = Duration::from_millis(500);
const SMOKE_CONNECTIONS: usize = 4;
/// sysexits' EX_USAGE, as the daemon uses for bad usage.
const EXIT_USAGE: u8 = 64;

/// What to load, at what rate, for how long.
struct Load {
    url: String,
    rate: f64,
    duration: Duration,
    connections: usize,
}

impl Load {
    /// Requests in the whole schedule.
    fn n_requests(&self) -> usize {
        (self.rate * self.duration.as_secs_f64()).round() as usize
    }
}

/// Where to connect and the request bytes to send, prepared once.
struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
}

/// One answered request.
struct Sample {
    /// Answer time minus scheduled time: the corrected latency.
    from_schedule: Duration,
    /// Answer time minus send time: what a closed-loop client would report.
    from_send: Duration,
    /// Send time minus the later of the scheduled time and the connection's previous answer:
    /// delay that is the generator's own, not the server's.
    pacer_late: Duration,
}

/// What one connection saw over the run.
#[derive(Default)]
struct Outcome {
    samples: Vec<Sample>,
    n_non_200: usize,
    n_errors: usize,
    /// Requests still unsent when the run passed `DRAIN` beyond its schedule.
    n_unsent: usize,
    /// The first non-200 status or I/O error, to say why a run failed.
    first_problem: Option<String>,
    /// When the last answer came, for the achieved rate.
    last_answer: Option<Instant>,
}

impl Outcome {
    fn note(&mut self, problem: String) {
        self.first_problem.get_or_insert(problem);
    }

    fn merge(&mut self, other: Outcome) {
        self.samples.extend(other.samples);
        self.n_non_200 += other.n_non_200;
        self.n_errors += other.n_errors;
        self.n_unsent += other.n_unsent;
        self.first_problem = self.first_problem.take().or(other.first_problem);
        self.last_answer = self.last_answer.max(other.last_answer);
    }

    fn n_failed(&self) -> usize {
        self.n_non_200 + self.n_errors + self.n_unsent
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let load = match parse_args(&args) {
        Ok(Some(load)) => load,
        Ok(None) => return smoke(),
        Err(e) => {
            eprintln!(
                "gate_rate: {e}\nusage: gate_rate --url http://HOST:PORT/PATH [--rate N] [--duration 10s] [--connections N]"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let target = match parse_url(&load.url) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("gate_rate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let outcome = run(&load, &target);
    if outcome.n_failed() > 0 {
        eprintln!(
            "gate_rate: {} requests failed; first: {}",
            outcome.n_failed(),
            outcome.first_problem.unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The load asked for, or `None` without `--url` (smoke mode). Unknown arguments are ignored:
/// `cargo bench` adds `--bench`.
fn parse_args(args: &[String]) -> Result<Option<Load>, String> {
    let mut url = None;
    let mut load =
        Load { url: String::new(), rate: DEFAULT_RATE, duration: DEFAULT_DURATION, connections: DEFAULT_CONNECTIONS };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?.clone()),
            "--rate" => load.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--duration" => {
                load.duration = humantime::parse_duration(value()?).map_err(|e| format!("--duration: {e}"))?
            }
            "--connections" => load.connections = value()?.parse().map_err(|e| format!("--connections: {e}"))?,
            _ => {}
        }
    }
    let Some(url) = url else { return Ok(None) };
    if !(load.rate.is_finite() && load.rate > 0.0) || load.connections == 0 || load.n_requests() == 0 {
        return Err("--rate, --duration and --connections must make at least one request".into());
    }
    Ok(Some(Load { url, ..load }))
}

/// `http://HOST:PORT/PATH` only: the generator speaks plain HTTP/1.1 to a loopback daemon.
fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes();
    Ok(Target { addr, request })
}

/// Drives `load` and prints the report. One thread per connection, each owning the requests
/// `i ≡ c (mod connections)`, so the schedule is dealt round-robin.
fn run(load: &Load, target: &Target) -> Outcome {
    let n_requests = load.n_requests();
    println!(
        "gate_rate: {} at {} req/s for {} over {} connections ({n_requests} requests, open loop)",
        load.url,
        load.rate,
        humantime::format_duration(load.duration),
        load.connections
    );
    let start = Instant::now() + LEAD;
    let plan =
        Plan { start, give_up: start + load.duration + DRAIN, rate: load.rate, n_requests, stride: load.connections };
    let mut outcome = std::thread::scope(|scope| {
        let workers: Vec<_> =
            (0..load.connections).map(|first| scope.spawn(move || drive(target, &plan, first))).collect();
        workers.into_iter().fold(Outcome::default(), |mut all, worker| {
            all.merge(worker.join().expect("connection thread"));
            all
        })
    });
    report(&mut outcome, start);
    outcome
}

/// The shared schedule: request i is due at `start + i / rate`.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    give_up: Instant,
    rate: f64,
    n_requests: usize,
    stride: usize,
}

impl Plan {
    fn due(&self, i: usize) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// One connection's share of the schedule, sent in order on one keep-alive connection. A
/// failed exchange drops the connection; the next request opens a new one.
fn drive(target: &Target, plan: &Plan, first: usize) -> Outcome {
    let mut outcome = Outcome { samples: Vec::with_capacity(plan.n_requests / plan.stride + 1), ..Outcome::default() };
    let mut connection = Connection::open(target.addr).ok();
    let mut free_at = plan.start;
    for i in (first..plan.n_requests).step_by(plan.stride) {
        if Instant::now() > plan.give_up {
            outcome.n_unsent += 1;
            continue;
        }
        let due = plan.due(i);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let res = exchange(&mut connection, target);
        let answered = Instant::now();
        match res {
            Ok(status) => {
                if status != 200 {
                    outcome.n_non_200 += 1;
                    outcome.note(format!("HTTP {status}"));
                }
                outcome.samples.push(Sample {
                    from_schedule: answered - due,
                    from_send: answered - sent,
                    pacer_late: sent.saturating_duration_since(due.max(free_at)),
                });
                outcome.last_answer = Some(answered);
            }
            Err(e) => {
                outcome.n_errors += 1;
                outcome.note(e.to_string());
                connection = None;
            }
        }
        free_at = answered;
    }
    outcome
}

/// Sends the request and reads the answer, opening the connection first if there is none.
fn exchange(connection: &mut Option<Connection>, target: &Target) -> io::Result<u16> {
    let connection = match connection {
        Some(open) => open,
        None => connection.insert(Connection::open(target.addr)?),
    };
    connection.exchange(&target.request)
}

/// A keep-alive HTTP/1.1 connection with its read buffers, reused across requests.
struct Connection {
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        // The request is one small write; Nagle's algorithm could hold it until an earlier
        // segment is acknowledged, and a delayed ACK would then read as server latency.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Connection { reader: BufReader::new(stream), line: String::new(), body: Vec::new() })
    }

    /// One request and its answer: the status line, the headers, then exactly Content-Length
    /// bytes of body, so the connection is left at the next answer's first byte.
    fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        self.reader.get_mut().write_all(request)?;
        let status = parse_status(self.read_line()?)?;
        let mut length = None;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>().map_err(|e| invalid(format!("Content-Length: {e}")))?);
            }
        }
        // Without a length (a chunked answer) the end of the body is unknown; axum always sends
        // one for the JSON answers this is pointed at.
        let length = length.ok_or_else(|| invalid("answer has no Content-Length".into()))?;
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body)?;
        Ok(status)
    }

    /// The next header line without its line ending; EOF mid-answer is an error.
    fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_end_matches(['\r', '\n']))
    }
}

/// The code from `HTTP/1.1 200 OK`.
fn parse_status(line: &str) -> io::Result<u16> {
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Prints counts, the achieved rate and the three latency distributions.
fn report(outcome: &mut Outcome, start: Instant) {
    let n_answered = outcome.samples.len();
    let span = outcome.last_answer.map_or(Duration::ZERO, |last| last.saturating_duration_since(start));
    println!(
        "achieved {:.1} req/s  answered {n_answered}  non-200 {}  errors {}  unsent {}",
        n_answered as f64 / span.as_secs_f64().max(f64::MIN_POSITIVE),
        outcome.n_non_200,
        outcome.n_errors,
        outcome.n_unsent
    );
    if n_answered == 0 {
        return;
    }
    let mut from_schedule: Vec<Duration> = outcome.samples.iter().map(|s| s.from_schedule).collect();
    let mut from_send: Vec<Duration> = outcome.samples.iter().map(|s| s.from_send).collect();
    let mut pacer_late: Vec<Duration> = outcome.samples.iter().map(|s| s.pacer_late).collect();
    println!("{}", percentiles("latency from schedule (corrected)", &mut from_schedule));
    println!("{}", percentiles("latency from send (uncorrected)", &mut from_send));
    println!("{}", percentiles("pacer lateness (generator's own)", &mut pacer_late));
}

/// p50, p90, p99, p99.9 and max of `samples` in µs, nearest-rank.
fn percentiles(what: &str, samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e6
    };
    format!(
        "{what:<36} µs: p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  p99.9 {:>8.1}  max {:>8.1}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

/// Smoke test: a trivial JSON route on an in-process axum server, driven at a low rate; every
/// scheduled request must be answered 200.
fn smoke() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app =
        axum::Router::new().route("/ok", axum::routing::get(|| async { axum::Json(serde_json::json!({"ok": true})) }));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let load = Load {
        url: format!("http://{addr}/ok"),
        rate: SMOKE_RATE,
        duration: SMOKE_DURATION,
        connections: SMOKE_CONNECTIONS,
    };
    let target = parse_url(&load.url).expect("smoke URL");
    let outcome = run(&load, &target);
    assert_eq!(outcome.n_failed(), 0, "first problem: {:?}", outcome.first_problem);
    assert_eq!(outcome.samples.len(), load.n_requests());
    ExitCode::SUCCESS
}
