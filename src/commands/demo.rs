//! `shadowtap demo`: the main job on an embedded default. Replays a bundled capture of a real
//! service (recorded on loopback by `scripts/record-demo-capture.sh`) against an embedded
//! shadow with deliberate regressions, and prints the comparison report. No setup, no
//! privileges, a few seconds.
//!
//! The shadow's regressions: `GET /api/orders/{id}` is 15 ms slower, `GET /api/users/{id}`
//! answers 500 for ids ending in 7, and `GET /api/cart` answers 404.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::ReportFormat;
use crate::commands::{replay, Status};
use crate::replay::request::{HostHeader, Rewrites};
use crate::replay::select::Selection;
use crate::replay::target::{Shadow, ShadowSpec, Target};
use crate::settings::{Bundled, Limits, ReplaySettings, Speed};

/// The bundled capture: 800 requests from 4 keep-alive clients to a small JSON API.
const CAPTURE: &[u8] = include_bytes!("../../assets/demo.pcap");
/// The capture spans about 9 s; replayed this many times faster.
const SPEED: f64 = 4.0;
/// Extra latency of the slow route.
const SLOW: Duration = Duration::from_millis(15);
/// Largest request head the embedded shadow reads.
const MAX_HEAD: usize = 16 * 1024;

/// The answer of the service to one request: status, body, delay. `v2` is the shadow with
/// its regressions; v1 (for `demo --live`) is the service as it was recorded.
fn answer(method: &str, path: &str, v2: bool) -> (u16, &'static str, Duration) {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["api", "users", id]) if v2 && id.ends_with('7') => {
            (500, "{\"error\":\"db timeout\"}", Duration::from_millis(2))
        }
        ("GET", ["api", "users", _]) => (200, "{\"name\":\"user\"}", Duration::from_millis(2)),
        ("GET", ["api", "orders", _]) if v2 => {
            (200, "{\"items\":[1,2,3]}", Duration::from_millis(5) + SLOW)
        }
        ("GET", ["api", "orders", _]) => (200, "{\"items\":[1,2,3]}", Duration::from_millis(5)),
        ("GET", ["api", "cart"]) if v2 => (404, "{\"error\":\"moved\"}", Duration::ZERO),
        ("GET", ["api", "cart"]) => (200, "{\"items\":[]}", Duration::ZERO),
        ("GET", ["api", "search"]) => (200, "{\"results\":[]}", Duration::from_millis(6)),
        ("HEAD", _) => (200, "", Duration::ZERO),
        ("GET", ["static", "app.js"]) => (200, "console.log('app v2');\n", Duration::ZERO),
        _ => (404, "{}", Duration::ZERO),
    }
}

/// The Content-Length of a head the embedded servers and clients parsed (0 when absent).
fn content_length(headers: &[httparse::Header<'_>]) -> usize {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// Serves one keep-alive connection of an embedded server (v2: the shadow).
async fn serve(mut conn: TcpStream, v2: bool) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (method, path, head_len, body_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let cl = content_length(req.headers);
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                    n,
                    cl,
                );
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_len + body_len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_len + body_len);
        let (status, body, delay) = answer(&method, &path, v2);
        if !delay.is_zero() {
            // A zero sleep would still wait for the next timer tick (1 ms).
            tokio::time::sleep(delay).await;
        }
        let body = if method == "HEAD" { "" } else { body };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            if method == "HEAD" { 0 } else { body.len() }
        );
        if conn.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Starts an embedded server on 127.0.0.1 (v2: the shadow) and returns its address.
fn start_server(v2: bool) -> anyhow::Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the demo shadow")?;
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .context("binding the demo shadow")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, v2));
            }
        });
    });
    Ok(addr)
}

pub fn run(out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    let shadow = start_server(true)?;
    writeln!(
        out,
        "demo: replaying a bundled capture of a small JSON API (800 requests, 4 clients) at {SPEED}x\n\
         against an embedded shadow on {shadow} with three regressions: /api/orders/{{id}} 15 ms slower,\n\
         /api/users/{{id}} 500 for ids ending in 7, /api/cart 404.\n"
    )?;
    let settings = ReplaySettings {
        // Read from memory: the demo writes no file (a predictable name in a shared
        // temporary directory is one another user can prepare).
        files: vec!["demo.pcap".into()],
        shadow: ShadowSpec {
            url: format!("http://{shadow}"),
            host_port: shadow.to_string(),
            tls: None,
        },
        shadow_authority: shadow.to_string(),
        selection: Selection {
            sample_percent: 100.0,
            ..Selection::default()
        },
        rewrites: Rewrites {
            host: HostHeader::Shadow(shadow.to_string()),
            set: Vec::new(),
            strip: Vec::new(),
        },
        speed: Speed::Factor(SPEED),
        rate: None,
        concurrency: 64,
        timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(5),
        allow_production_target: false,
        format: ReportFormat::Text,
        report_json: None,
        log: None,
        force: false,
        bundled: Some(Bundled(CAPTURE)),
        fail_if: Vec::new(),
        thresholds: Default::default(),
        order: Default::default(),
        title: Some("demo capture".into()),
        progress: crate::cli::Progress::Auto,
        limits: Limits::default(),
        filter: crate::pipeline::FilterSpec::default(),
    };
    // The embedded server's own address: nothing to look up.
    let resolved = Shadow {
        addr: shadow,
        target: Target::new("shadow", &settings.shadow.url, &[shadow]),
        tls: None,
    };
    replay::run(&settings, &resolved, out, err)
}

/// Requests each embedded client sends in `demo --live`.
const LIVE_REQUESTS: usize = 150;
/// Embedded clients (keep-alive connections) in `demo --live`.
const LIVE_CLIENTS: usize = 4;
/// Pause between two requests of one client.
const LIVE_PAUSE: Duration = Duration::from_millis(15);
/// Time for the capture to start before the clients do.
const LIVE_WARMUP: Duration = Duration::from_millis(500);

/// The targets an embedded client asks for, in turn: the demo capture's mix of routes.
fn live_target(client: usize, i: usize) -> (&'static str, String) {
    let n = client * 1000 + i * 7;
    match i % 8 {
        0..=2 => ("GET", format!("/api/users/{}", n % 500)),
        3 | 4 => ("GET", format!("/api/orders/{}", 1000 + n % 9000)),
        5 => ("GET", "/api/cart".into()),
        6 => (
            "GET",
            format!("/api/search?q={}", ["hats", "socks", "shoes"][n % 3]),
        ),
        _ if i % 16 == 7 => ("HEAD", "/health".into()),
        _ => ("GET", "/static/app.js".into()),
    }
}

/// One embedded client: a keep-alive connection to v1, requests one after the other.
fn live_client(v1: SocketAddr, client: usize) -> std::io::Result<()> {
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(v1)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_nodelay(true)?;
    for i in 0..LIVE_REQUESTS {
        let (method, target) = live_target(client, i);
        // One write per request, as a real client sends it (not one segment per fragment).
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {v1}\r\nUser-Agent: shadowtap-demo\r\nAccept: */*\r\n\r\n"
        );
        conn.write_all(request.as_bytes())?;
        // Read the head, then the Content-Length body (none for HEAD).
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_len, body_len) = loop {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut slots);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&buf) {
                let cl = content_length(resp.headers);
                break (len, if method == "HEAD" { 0 } else { cl });
            }
            if buf.len() > MAX_HEAD {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
        };
        while buf.len() < head_len + body_len {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        std::thread::sleep(LIVE_PAUSE);
    }
    Ok(())
}

/// `demo --live`: embedded v1 and v2 servers and clients driving v1 on loopback; libpcap on
/// `lo` mirrors v1's traffic to v2 and the report compares them.
/// `stop` ends the capture early (the binary triggers it on SIGINT and SIGTERM).
pub fn run_live(
    stop: &crate::capture::live::Stop,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let v1 = start_server(false)?;
    let v2 = start_server(true)?;
    let seconds = LIVE_WARMUP + LIVE_PAUSE * LIVE_REQUESTS as u32 + Duration::from_secs(1);
    let cli = crate::cli::Cli::try_parse_from([
        "shadowtap".to_string(),
        "mirror".into(),
        "--interface".into(),
        "lo".into(),
        "--port".into(),
        v1.port().to_string(),
        "--shadow".into(),
        format!("http://{v2}"),
        "--duration".into(),
        format!("{}ms", seconds.as_millis()),
        "--interval".into(),
        "1s".into(),
    ])?;
    let crate::cli::Command::Mirror(args) = cli.command else {
        anyhow::bail!("demo --live: could not build the mirror command");
    };
    let banner = format!(
        "demo --live: {LIVE_CLIENTS} embedded clients send {} requests to v1 on {v1}; shadowtap captures\n\
         them on lo and mirrors them to v2 on {v2}, which has three regressions: /api/orders/{{id}}\n\
         15 ms slower, /api/users/{{id}} 500 for ids ending in 7, /api/cart 404.\n\n",
        LIVE_CLIENTS * LIVE_REQUESTS
    );
    let clients = std::thread::spawn(move || {
        std::thread::sleep(LIVE_WARMUP);
        let handles: Vec<_> = (0..LIVE_CLIENTS)
            .map(|c| std::thread::spawn(move || live_client(v1, c)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(Result::is_err)
            .count()
    });
    let status = super::mirror::run_with_banner(
        *args,
        &banner,
        &crate::capture::live::Source::Interface,
        stop,
        out,
        err,
    )?;
    if status == Status::BadInput {
        // The capture could not be opened (and said why): the clients are not waited for.
        return Ok(status);
    }
    let failed = clients.join().unwrap_or(LIVE_CLIENTS);
    if failed > 0 {
        writeln!(
            err,
            "shadowtap: warning: {failed} embedded clients could not finish"
        )?;
    }
    Ok(status)
}
