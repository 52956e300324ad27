//! `Scraper` against real HTTP servers on loopback: axum for well-behaved targets, raw TCP (and
//! TLS) sockets for responses axum will not produce (a body that stalls or breaks off).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap as AxumHeaders, StatusCode, header};
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::spec::Secret;

const TIMEOUT: Duration = Duration::from_secs(5);
/// For the timeout tests: short, so they end quickly; the servers stall for far longer.
const SHORT_TIMEOUT: Duration = Duration::from_millis(200);
const STALL: Duration = Duration::from_secs(30);
const BODY: &str = "# TYPE up gauge\nup 1\n";

fn options() -> HttpOptions {
    HttpOptions {
        headers: Vec::new(),
        bearer_token: None,
        max_body_bytes: 1 << 20,
        ca_file: None,
        insecure_skip_verify: false,
    }
}

fn scraper(http: &HttpOptions, timeout: Duration) -> Scraper {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Scraper::new(http, timeout).expect("valid scraper options")
}

/// Serves `router` on a free loopback port for the rest of the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gzip_response(compressed: Vec<u8>) -> ([(header::HeaderName, &'static str); 2], Vec<u8>) {
    ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/plain; version=0.0.4")], compressed)
}

/// Reads one request's head (up to the blank line) so the client sees its request consumed.
async fn read_request_head(stream: &mut (impl AsyncRead + Unpin)) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
}

/// A raw HTTP/1.1 server answering every connection with `response`, then holding the
/// connection open for `hold` before closing it.
async fn raw_server(response: &'static [u8], hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                read_request_head(&mut stream).await;
                respond(&mut stream, response, hold).await;
            });
        }
    });
    addr
}

async fn respond(stream: &mut (impl AsyncWrite + Unpin), response: &[u8], hold: Duration) {
    let _ = stream.write_all(response).await;
    let _ = stream.flush().await;
    tokio::time::sleep(hold).await;
    let _ = stream.shutdown().await;
}

#[tokio::test]
async fn success_returns_body() {
    let addr = serve(Router::new().route("/metrics", get(|| async { BODY }))).await;
    let body = scraper(&options(), TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(body, BODY.as_bytes());
}

#[tokio::test]
async fn sends_prometheus_headers_and_credentials() {
    // The target echoes the headers it got.
    let echo = |headers: AxumHeaders| async move {
        let mut out = String::new();
        for name in [
            "accept",
            "accept-encoding",
            "user-agent",
            "x-prometheus-scrape-timeout-seconds",
            "authorization",
            "x-scope-orgid",
        ] {
            let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
            out.push_str(&format!("{name}: {}\n", values.join(",")));
        }
        out
    };
    let addr = serve(Router::new().route("/metrics", get(echo))).await;
    let mut http = options();
    http.bearer_token = Some(Secret::new("tok-123".to_string()));
    http.headers = vec![("X-Scope-OrgID".to_string(), Secret::new("tenant-7".to_string()))];
    let body = scraper(&http, Duration::from_millis(1500)).scrape(&format!("http://{addr}/metrics")).await.unwrap();
    let text = String::from_utf8(body).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let expected = format!(
        "accept: text/plain;version=0.0.4;q=0.9,*/*;q=0.1\n\
         accept-encoding: gzip\n\
         user-agent: sloguard/{version}\n\
         x-prometheus-scrape-timeout-seconds: 1.5\n\
         authorization: Bearer tok-123\n\
         x-scope-orgid: tenant-7\n"
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn gzip_body_is_decoded() {
    let addr = serve(Router::new().route("/metrics", get(|| async { gzip_response(gzip(BODY.as_bytes())) }))).await;
    let body = scraper(&options(), TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(body, BODY.as_bytes());
}

#[tokio::test]
async fn body_at_the_cap_is_read_and_one_byte_more_is_too_large() {
    let addr = serve(
        Router::new()
            .route("/exact", get(|| async { "x".repeat(1000) }))
            .route("/over", get(|| async { "x".repeat(1001) })),
    )
    .await;
    let mut http = options();
    http.max_body_bytes = 1000;
    let scraper = scraper(&http, TIMEOUT);
    assert_eq!(scraper.scrape(&format!("http://{addr}/exact")).await.unwrap().len(), 1000);
    let err = scraper.scrape(&format!("http://{addr}/over")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::TooLarge { limit: 1000 }), "{err:?}");
}

#[tokio::test]
async fn cap_counts_decoded_bytes_so_a_gzip_bomb_stops_at_the_cap() {
    // 8 MiB of zeros deflates to a few KiB: under the cap on the wire, far over it decoded.
    let inflated = 8 << 20;
    let bomb = gzip(&vec![0u8; inflated]);
    let cap: u64 = 64 * 1024;
    assert!((bomb.len() as u64) < cap, "compressed {} bytes", bomb.len());
    let addr = serve(Router::new().route("/metrics", get(move || async move { gzip_response(bomb) }))).await;
    let mut http = options();
    http.max_body_bytes = cap;
    let err = scraper(&http, TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::TooLarge { limit } if limit == cap), "{err:?}");
}

#[tokio::test]
async fn slow_response_times_out() {
    let slow = || async {
        tokio::time::sleep(STALL).await;
        BODY
    };
    let addr = serve(Router::new().route("/metrics", get(slow))).await;
    let started = std::time::Instant::now();
    let err = scraper(&options(), SHORT_TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn body_that_stalls_times_out() {
    // Headers and part of the body arrive at once; the rest never does.
    let addr = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup 1\n", STALL).await;
    let err = scraper(&options(), SHORT_TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Timeout), "{err:?}");
}

#[tokio::test]
async fn body_cut_short_is_a_body_error() {
    let addr = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup 1\n", Duration::ZERO).await;
    let err = scraper(&options(), TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Body(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_gzip_is_a_body_error() {
    let addr =
        serve(Router::new().route("/metrics", get(|| async { gzip_response(b"not gzip at all".to_vec()) }))).await;
    let err = scraper(&options(), TIMEOUT).scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Body(_)), "{err:?}");
}

#[tokio::test]
async fn server_error_is_status() {
    let addr =
        serve(Router::new().route("/metrics", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))).await;
    let scraper = scraper(&options(), TIMEOUT);
    let err = scraper.scrape(&format!("http://{addr}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Status { code: 500 }), "{err:?}");
    let err = scraper.scrape(&format!("http://{addr}/nope")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Status { code: 404 }), "{err:?}");
}

#[tokio::test]
async fn closed_port_is_connect() {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let err = scraper(&options(), TIMEOUT).scrape(&format!("http://127.0.0.1:{port}/metrics")).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Connect(_)), "{err:?}");
}

#[test]
fn debug_redacts_credentials() {
    let mut http = options();
    http.bearer_token = Some(Secret::new("tok-123".to_string()));
    http.headers = vec![("Authorization-Extra".to_string(), Secret::new("c2VjcmV0".to_string()))];
    let text = format!("{:?}", scraper(&http, TIMEOUT));
    assert!(!text.contains("tok-123") && !text.contains("c2VjcmV0"), "{text}");
    assert!(text.contains("Authorization-Extra") && text.contains("<redacted>"), "{text}");
}

#[tokio::test]
async fn bad_options_and_urls_are_config_errors() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut bad_header = options();
    bad_header.headers = vec![("X-Key".to_string(), Secret::new("line\nbreak-secret".to_string()))];
    let mut missing_ca = options();
    missing_ca.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate").unwrap();
    let mut empty_ca = options();
    empty_ca.ca_file = Some(not_pem.path().to_path_buf());
    for (http, timeout) in
        [(bad_header, TIMEOUT), (missing_ca, TIMEOUT), (empty_ca, TIMEOUT), (options(), Duration::ZERO)]
    {
        let err = Scraper::new(&http, timeout).unwrap_err();
        assert!(matches!(err, ScrapeError::Config(_)), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let scraper = scraper(&options(), TIMEOUT);
    for url in ["ftp://127.0.0.1/metrics", "http://user:secret@127.0.0.1/metrics", "/metrics"] {
        let err = scraper.scrape(url).await.unwrap_err();
        assert!(matches!(err, ScrapeError::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/scrape/testdata").join(name)
}

/// An HTTPS target with a certificate for 127.0.0.1 signed by the test CA in `testdata`.
async fn tls_server() -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(testdata("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(testdata("server.key")).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust us aborts the handshake: nothing to serve then.
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    read_request_head(&mut tls).await;
                    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}", BODY.len());
                    respond(&mut tls, response.as_bytes(), Duration::ZERO).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_trusts_ca_file_and_honours_insecure_skip_verify() {
    let addr = tls_server().await;
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());

    let err = scraper(&options(), TIMEOUT).scrape(&url).await.unwrap_err();
    assert!(matches!(err, ScrapeError::Connect(_)), "untrusted certificate must fail: {err:?}");

    let mut with_ca = options();
    with_ca.ca_file = Some(testdata("ca.pem"));
    assert_eq!(scraper(&with_ca, TIMEOUT).scrape(&url).await.unwrap(), BODY.as_bytes());

    let mut insecure = options();
    insecure.insecure_skip_verify = true;
    assert_eq!(scraper(&insecure, TIMEOUT).scrape(&url).await.unwrap(), BODY.as_bytes());
}
