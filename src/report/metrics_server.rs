//! The `/metrics` endpoint (`mirror --metrics ADDR`): hyper's HTTP/1.1 server answering
//! `GET /metrics` with the families a render function registers (the Prometheus text format,
//! written by prometheus-client), one request per connection.
//!
//! Connections are served concurrently, on the endpoint's own thread, at most
//! [`Limits::connections`] at a time: beyond that a connection is closed at once and counted,
//! so a scraper opening too many cannot take more. Each connection has one deadline for its
//! whole request head and a cap on its size, so a client dribbling a byte at a time holds
//! only its own slot, and only until the deadline; the whole connection, response included,
//! has a deadline too. The listener and the shutdown are given by the caller: tests bind
//! `127.0.0.1:0` and drive it in-process, and `mirror` stops it when its run ends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::report::prometheus;

/// The bounds of the endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed at once and counted.
    pub connections: usize,
    /// Time for a whole request head, from accept to its blank line.
    pub head_deadline: Duration,
    /// Largest request head read, in bytes; a larger one is answered `431` and closed.
    pub max_head: usize,
    /// Time for the response to be written: a connection is closed, whatever it is doing,
    /// `head_deadline + write_timeout` after it was accepted.
    pub write_timeout: Duration,
    /// Time open connections get to finish once shutdown is signalled; then they are cut.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 16,
            head_deadline: Duration::from_secs(5),
            max_head: 8 * 1024,
            write_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// hyper's smallest allowed connection buffer (`http1::Builder::max_buf_size`).
const MIN_BUFFER: usize = 8 * 1024;

/// Pause after a failed accept (out of file descriptors, say), so that the loop does not
/// spin while the condition lasts.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// What the endpoint counts about itself, reported with the metrics it serves.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections being served now.
    pub open: AtomicUsize,
    /// Connections closed at once because [`Limits::connections`] were open.
    pub refused: AtomicU64,
    /// Connections closed because their request head missed the deadline or the size cap,
    /// or ended before it was whole.
    pub bad_heads: AtomicU64,
}

/// A server started by [`spawn`].
#[derive(Debug)]
pub struct Running {
    pub counts: Arc<Counts>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits for the server to end: within twice [`Limits::shutdown_grace`] after its
    /// shutdown future completes.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Serves `listener` on a thread of its own until `shutdown` completes; `render` adds the
/// families of each scrape to its registry.
pub fn spawn<F, S>(
    listener: std::net::TcpListener,
    limits: Limits,
    render: F,
    shutdown: S,
) -> std::io::Result<Running>
where
    F: Fn(&mut Registry) + Send + Sync + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    // One thread serves the connections; renders run on at most one blocking thread per
    // connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(limits.connections.max(1))
        .build()?;
    listener.set_nonblocking(true)?;
    let listener = {
        let _in_runtime = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let thread = std::thread::Builder::new()
        .name("shadowtap-metrics".into())
        .spawn(move || {
            runtime.block_on(serve(listener, limits, c, Arc::new(render), shutdown));
            // A render still running is left to finish on its own.
            runtime.shutdown_timeout(limits.shutdown_grace);
        })?;
    Ok(Running { counts, thread })
}

/// Accepts and serves connections until `shutdown` completes; then stops accepting (the
/// listener is closed), gives open connections [`Limits::shutdown_grace`] to finish and cuts
/// the rest.
async fn serve<F, S>(
    listener: TcpListener,
    limits: Limits,
    counts: Arc<Counts>,
    render: Arc<F>,
    shutdown: S,
) where
    F: Fn(&mut Registry) + Send + Sync + 'static,
    S: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    // One task per connection, at most `limits.connections`; finished ones are reaped.
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(ACCEPT_PAUSE).await;
            continue;
        };
        if counts.open.fetch_add(1, Ordering::Relaxed) >= limits.connections {
            counts.open.fetch_sub(1, Ordering::Relaxed);
            counts.refused.fetch_add(1, Ordering::Relaxed);
            continue; // dropping `stream` closes it
        }
        let slot = Slot(counts.clone());
        connections.spawn(connection(
            stream,
            limits,
            slot,
            render.clone(),
            graceful.watcher(),
        ));
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
    connections.shutdown().await;
}

/// Releases a connection's slot when its task ends, however it ends (cut at shutdown too).
struct Slot(Arc<Counts>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection: one request head within the deadline, its answer, and close.
async fn connection<F>(
    stream: TcpStream,
    limits: Limits,
    slot: Slot,
    render: Arc<F>,
    watcher: Watcher,
) where
    F: Fn(&mut Registry) + Send + Sync + 'static,
{
    let counts = slot.0.clone();
    let service = service_fn(move |request| {
        let (counts, render) = (counts.clone(), render.clone());
        async move { Ok::<_, Infallible>(respond(&request, counts, render).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_deadline)
        .max_header_size(limits.max_head)
        .max_buf_size(limits.max_head.max(MIN_BUFFER))
        .keep_alive(false);
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    // Kept here (not moved into the timeout) so that the connection is closed only after its
    // end has been counted.
    let mut conn = pin!(conn);
    let whole = limits.head_deadline.saturating_add(limits.write_timeout);
    if let Ok(Err(e)) = tokio::time::timeout(whole, conn.as_mut()).await {
        if e.is_timeout() || e.is_parse() || e.is_parse_too_large() || e.is_incomplete_message() {
            slot.0.bad_heads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The answer to one request: the metrics for `GET /metrics` (any query), 404 otherwise.
async fn respond<F>(
    request: &Request<Incoming>,
    counts: Arc<Counts>,
    render: Arc<F>,
) -> Response<Full<Bytes>>
where
    F: Fn(&mut Registry) + Send + Sync + 'static,
{
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return status(StatusCode::NOT_FOUND);
    }
    // `render` may block (it asks the replay shards for their figures), so it runs on the
    // runtime's blocking threads, never on the thread serving the connections.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut registry = Registry::default();
        render(&mut registry);
        registry.register_collector(Box::new(Own::of(&counts)));
        prometheus::encode(&registry)
    })
    .await;
    let Ok(body) = rendered else {
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    response
}

/// An empty answer with `code`.
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = code;
    response
}

/// The endpoint's own counters, as one scrape sees them.
#[derive(Debug)]
struct Own {
    refused: u64,
    bad_heads: u64,
}

impl Own {
    fn of(counts: &Counts) -> Own {
        Own {
            refused: counts.refused.load(Ordering::Relaxed),
            bad_heads: counts.bad_heads.load(Ordering::Relaxed),
        }
    }
}

impl Collector for Own {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        prometheus::counter(
            &mut e,
            "shadowtap_metrics_connections_refused",
            "Metrics connections closed at once because the most allowed were open.",
            self.refused,
        )?;
        prometheus::counter(
            &mut e,
            "shadowtap_metrics_bad_requests",
            "Metrics connections closed because the request head was late or too large.",
            self.bad_heads,
        )
    }
}

#[cfg(test)]
mod tests;
