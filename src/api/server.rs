//! The API's connections: our own accept loop over hyper's HTTP/1 connections, so that every
//! connection is bounded in time and their number is capped, whoever holds them.
//!
//! Owns the sockets and their lifecycle; knows nothing about routes (the router and
//! `api::bounds` decide about requests). Each connection is in one phase, which sets its deadline:
//!
//! - awaiting a request head: `header_timeout` from the first byte of the head, or from the
//!   accept for the first request (a silent new connection is a head that never came);
//!   `idle_timeout` after a response while no byte of the next request has arrived;
//! - reading the body: `api::bounds` answers 408 after `body_timeout`;
//! - handling: no deadline here (handlers answer from memory, or bound their own waits).
//!
//! Why our own loop rather than `axum::serve` with hyper's `header_read_timeout`: hyper starts
//! that timer whenever it waits for a head, including on an idle kept-alive connection, so it
//! cannot tell "idle for 90 s" from "sent half a head 10 s ago", and `axum::serve` sets neither
//! nor caps connections.
//!
//! At `max_connections` a new connection closes the longest-idle one (awaiting a head, then
//! reading a body) instead of being refused: refusing would let a few hundred silent clients lock
//! out the deploy gate and probes, while evicting costs a legitimate idle client only a
//! reconnect. A connection whose request is being handled is never evicted; when all are, the new
//! one is refused (closed at once), which lasts as long as a handler.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;
use tracing::{debug, warn};

use crate::config::ApiLimits;

/// How long the accept loop pauses after an accept error that is not the client's (out of fds):
/// retrying at once would spin a core while nothing can be accepted anyway.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Why a connection was closed, the `reason` label of `sloguard_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or asked to (`Connection: close`) and got its answer.
    Client,
    /// A request head was not complete within `header_timeout`.
    HeaderTimeout,
    /// A request body was not complete within `body_timeout` (answered 408).
    BodyTimeout,
    /// A request body exceeded its route's limit (answered 413, the rest left unread).
    BodyTooLarge,
    /// A request with a body was refused before reading it (401), and the rest was not drained.
    BodyRejected,
    /// Kept alive without a request for `idle_timeout`.
    Idle,
    /// Closed at `max_connections` to admit a new connection.
    Evicted,
    /// Closed on accept at `max_connections`: every open connection was handling a request.
    Refused,
    /// A malformed request or an I/O error.
    Error,
    /// The daemon was stopping.
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 10] = [
        CloseReason::Client,
        CloseReason::HeaderTimeout,
        CloseReason::BodyTimeout,
        CloseReason::BodyTooLarge,
        CloseReason::BodyRejected,
        CloseReason::Idle,
        CloseReason::Evicted,
        CloseReason::Refused,
        CloseReason::Error,
        CloseReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::BodyTooLarge => "body_too_large",
            CloseReason::BodyRejected => "body_rejected",
            CloseReason::Idle => "idle",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Connection counters for `/metrics`.
#[derive(Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl ConnectionStats {
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Closed connections per reason, every reason listed.
    pub fn closed(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CloseReason::ALL.iter().zip(&self.closed).map(|(reason, n)| (reason.as_str(), n.load(Ordering::Relaxed)))
    }

    fn count_close(&self, reason: CloseReason) {
        let index = CloseReason::ALL.iter().position(|r| *r == reason).expect("every reason is listed");
        self.closed[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a connection is in its current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHead,
    ReadingBody,
    Handling,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// When the phase began.
    since: Instant,
    /// First byte of the awaited head, if any arrived.
    first_byte: Option<Instant>,
    n_served: u64,
    /// Why the connection will close if it does now: set when a request is answered without its
    /// body being read, which makes hyper close the connection.
    close_hint: Option<CloseReason>,
    /// Closed at the cap; the registry has already forgotten it.
    evicted: bool,
}

/// One connection as the registry, the request path and its own task see it.
#[derive(Debug)]
pub(super) struct Conn {
    id: u64,
    state: Mutex<State>,
    /// Woken when the deadline may have moved (a first byte, a new phase) or on eviction.
    changed: Notify,
}

impl Conn {
    fn new(id: u64) -> Conn {
        let state = State {
            phase: Phase::AwaitingHead,
            since: Instant::now(),
            first_byte: None,
            n_served: 0,
            close_hint: None,
            evicted: false,
        };
        Conn { id, state: Mutex::new(state), changed: Notify::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, phase: Phase) {
        let mut state = self.state();
        if phase == Phase::AwaitingHead {
            state.n_served += 1;
            state.first_byte = None;
        }
        if phase == Phase::Handling && state.phase == Phase::AwaitingHead {
            // A new request: an earlier one's hint no longer applies.
            state.close_hint = None;
        }
        state.phase = phase;
        state.since = Instant::now();
        drop(state);
        self.changed.notify_one();
    }

    /// The request path reads the body (`api::bounds`).
    pub(super) fn reading_body(&self) {
        self.enter(Phase::ReadingBody);
    }

    /// The body is read; the handler runs.
    pub(super) fn handling(&self) {
        self.enter(Phase::Handling);
    }

    /// The request was answered without reading its body; if the connection closes now, this
    /// is why.
    pub(super) fn hint_close(&self, reason: CloseReason) {
        self.state().close_hint = Some(reason);
    }

    fn saw_bytes(&self) {
        let mut state = self.state();
        if state.phase == Phase::AwaitingHead && state.first_byte.is_none() {
            state.first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection must close if nothing changes, and why.
    fn deadline(&self, limits: &ApiLimits) -> Option<(Instant, CloseReason)> {
        let state = self.state();
        if state.phase != Phase::AwaitingHead {
            return None;
        }
        Some(match state.first_byte {
            Some(at) => (at + limits.header_timeout, CloseReason::HeaderTimeout),
            None if state.n_served == 0 => (state.since + limits.header_timeout, CloseReason::HeaderTimeout),
            None => (state.since + limits.idle_timeout, CloseReason::Idle),
        })
    }

    /// Eviction order: awaiting a head (idle) before reading a body, longest first; `None` while
    /// a request is being handled.
    fn eviction_rank(&self) -> Option<(u8, Instant)> {
        let state = self.state();
        match state.phase {
            Phase::AwaitingHead => Some((0, state.since)),
            Phase::ReadingBody => Some((1, state.since)),
            Phase::Handling => None,
        }
    }
}

/// The request extension through which `api::bounds` reports phases; absent when the router is
/// served some other way.
#[derive(Clone)]
pub(super) struct ConnHandle(pub Arc<Conn>);

/// The open connections.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    /// Admits `conn`, evicting the longest-idle connection at the cap; `false` if it must be
    /// refused (every connection is handling a request).
    fn admit(&self, conn: &Arc<Conn>, max_connections: usize) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if conns.len() >= max_connections {
            let victim = conns.values().filter_map(|c| c.eviction_rank().map(|rank| (rank, c.id))).min();
            let Some((_, victim)) = victim else { return false };
            let victim = conns.remove(&victim).expect("listed above");
            victim.state().evicted = true;
            victim.changed.notify_one();
        }
        conns.insert(conn.id, conn.clone());
        true
    }

    fn forget(&self, id: u64) {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
}

/// Serves `router` on `listener` under `limits` until `stop` turns true, then stops accepting,
/// lets requests under way finish and closes idle connections; returns when every connection is
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiLimits,
    stats: Arc<ConnectionStats>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    warn!("accepting an API connection: {e}; pausing {ACCEPT_ERROR_PAUSE:?}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        while tasks.try_join_next().is_some() {}
        next_id += 1;
        let conn = Arc::new(Conn::new(next_id));
        if !registry.admit(&conn, limits.max_connections) {
            debug!("refusing an API connection from {remote}: all {} are handling requests", limits.max_connections);
            stats.count_close(CloseReason::Refused);
            drop(stream);
            continue;
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            conn,
            router: router.clone(),
            limits,
            registry: registry.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
        };
        tasks.spawn(connection.run(stream, remote));
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Errors about one connection (it was reset before we accepted it): the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection's task.
struct Connection {
    conn: Arc<Conn>,
    router: Router,
    limits: ApiLimits,
    registry: Arc<Registry>,
    stats: Arc<ConnectionStats>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, remote: SocketAddr) {
        // Gate answers are one small write each; Nagle would hold them for the client's ACK.
        let _ = stream.set_nodelay(true);
        let conn = self.conn.clone();
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request.extensions_mut().insert(ConnHandle(conn.clone()));
            conn.handling();
            let response = router.clone().call(request.map(Body::new));
            let conn = conn.clone();
            async move {
                let response = response.await;
                conn.enter(Phase::AwaitingHead);
                response
            }
        });
        let io = TokioIo::new(Watched { inner: stream, conn: self.conn.clone() });
        // No hyper timer: its header timeout would also cut idle kept-alive connections (see
        // the module doc); our deadlines below replace it.
        // Boxed so that it can be dropped (the socket closed) before the close is counted.
        let mut connection = Box::pin(http1::Builder::new().header_read_timeout(None).serve_connection(io, service));
        let mut stopping = false;
        let reason = loop {
            let deadline = self.conn.deadline(&self.limits);
            tokio::select! {
                res = connection.as_mut() => {
                    let hint = self.conn.state().close_hint;
                    break match res {
                        _ if stopping => CloseReason::Shutdown,
                        Ok(()) => hint.unwrap_or(CloseReason::Client),
                        Err(e) => {
                            debug!("API connection from {remote}: {e}");
                            hint.unwrap_or(if e.is_incomplete_message() { CloseReason::Client } else { CloseReason::Error })
                        }
                    };
                }
                _ = sleep_until(deadline.map(|(at, _)| at)), if deadline.is_some() => {
                    // The phase may have moved on since the deadline was computed.
                    if let Some((at, reason)) = self.conn.deadline(&self.limits) && at <= Instant::now() {
                        break reason;
                    }
                }
                _ = self.conn.changed.notified() => {
                    if self.conn.state().evicted {
                        break CloseReason::Evicted;
                    }
                }
                () = stopped(&mut self.stop), if !stopping => {
                    stopping = true;
                    // Closes at once if idle, else after the response under way.
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        // Dropping the connection closes the socket, with whatever handler it was polling.
        drop(connection);
        debug!("API connection from {remote} closed: {}", reason.as_str());
        self.registry.forget(self.conn.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.count_close(reason);
    }
}

/// Resolves once `stop` is true (or its sender is gone: nobody can stop us any more, so stop).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it must not live in the caller's future.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The socket, noting the first byte of each awaited head for the header deadline.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.saw_bytes();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
