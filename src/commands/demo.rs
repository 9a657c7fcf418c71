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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::ReportFormat;
use crate::commands::{replay, Status};
use crate::replay::request::{HostHeader, Rewrites};
use crate::replay::select::Selection;
use crate::settings::{Limits, ReplaySettings, Speed};

/// The bundled capture: 800 requests from 4 keep-alive clients to a small JSON API.
const CAPTURE: &[u8] = include_bytes!("../../assets/demo.pcap");
/// The capture spans about 9 s; replayed this many times faster.
const SPEED: f64 = 4.0;
/// Extra latency of the slow route.
const SLOW: Duration = Duration::from_millis(15);
/// Largest request head the embedded shadow reads.
const MAX_HEAD: usize = 16 * 1024;

/// The shadow's answer to one request: status, body, delay.
fn answer(method: &str, path: &str) -> (u16, &'static str, Duration) {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["api", "users", id]) if id.ends_with('7') => {
            (500, "{\"error\":\"db timeout\"}", Duration::from_millis(2))
        }
        ("GET", ["api", "users", _]) => (200, "{\"name\":\"user\"}", Duration::from_millis(2)),
        ("GET", ["api", "orders", _]) => {
            (200, "{\"items\":[1,2,3]}", Duration::from_millis(5) + SLOW)
        }
        ("GET", ["api", "cart"]) => (404, "{\"error\":\"moved\"}", Duration::ZERO),
        ("GET", ["api", "search"]) => (200, "{\"results\":[]}", Duration::from_millis(6)),
        ("HEAD", _) => (200, "", Duration::ZERO),
        ("GET", ["static", "app.js"]) => (200, "console.log('app v2');\n", Duration::ZERO),
        _ => (404, "{}", Duration::ZERO),
    }
}

/// Serves one keep-alive connection of the embedded shadow.
async fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (method, path, head_len, body_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let cl = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0);
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
        let (status, body, delay) = answer(&method, &path);
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

/// Starts the embedded shadow on 127.0.0.1 and returns its address.
fn start_shadow() -> anyhow::Result<SocketAddr> {
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
                tokio::spawn(serve(conn));
            }
        });
    });
    Ok(addr)
}

pub fn run(out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    let shadow = start_shadow()?;
    let path = std::env::temp_dir().join(format!("shadowtap-demo-{}.pcap", std::process::id()));
    std::fs::write(&path, CAPTURE).with_context(|| format!("writing {}", path.display()))?;
    writeln!(
        out,
        "demo: replaying a bundled capture of a small JSON API (800 requests, 4 clients) at {SPEED}x\n\
         against an embedded shadow on {shadow} with three regressions: /api/orders/{{id}} 15 ms slower,\n\
         /api/users/{{id}} 500 for ids ending in 7, /api/cart 404.\n"
    )?;
    let settings = ReplaySettings {
        files: vec![path.clone()],
        shadow,
        shadow_authority: shadow.to_string(),
        tls: None,
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
        concurrency: 64,
        timeout: Duration::from_secs(5),
        allow_production_target: false,
        format: ReportFormat::Text,
        report_json: None,
        log: None,
        fail_if: Vec::new(),
        title: Some(format!("demo capture ({SPEED}x)")),
        progress: crate::cli::Progress::Auto,
        limits: Limits::default(),
    };
    let status = replay::run(&settings, out, err);
    let _ = std::fs::remove_file(&path);
    status
}
