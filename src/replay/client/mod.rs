//! A small HTTP/1.1 client over tokio `TcpStream` (and rustls for `https://`): writes a prepared request byte for byte,
//! reads the response with the project's own framing, and times both from a monotonic clock.
//!
//! Why not reqwest: its URL type normalises targets (dot segments, escapes, no `*`), its
//! header map regroups duplicates, and it cannot tell when the last request byte was written,
//! which is where the shadow's time to first byte starts (DESIGN.md).
//!
//! Here: the client of one shadow, its connections and their slots. One exchange over a
//! connection is `exchange`, the failure kinds `failure`, the circuit breaker `breaker`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::replay::tls::Tls;

mod breaker;
mod exchange;
mod failure;

use crate::replay::stats::Rtt;
use breaker::Breaker;
pub use breaker::{BREAKER_OPEN, BREAKER_TRIP};
use exchange::READ_CHUNK;
pub(crate) use exchange::{read_body, read_head};
pub use exchange::{Answer, MAX_DRAIN};
pub use failure::Failure;

/// A connection to the shadow: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection and its read buffer, kept together so a reused connection reuses the buffer.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Conn {
    /// Whether a kept connection is still fit to carry a request: nothing arrived on it
    /// since its last response ended. Bytes no request asked for (a late second response, a
    /// stray error page) would be taken for the next request's answer; an end of stream or
    /// an error would fail it. Polled once without waiting: when the socket has nothing,
    /// tokio answers from its readiness flag, without a system call.
    fn still_idle(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut buf)
            .is_pending()
    }
}

/// What every client of one shadow shares: its circuit breaker and what went wrong.
#[derive(Default)]
struct Health {
    breaker: Mutex<Breaker>,
    /// Whether the breaker has counted a failure since its last success (so may refuse):
    /// while it has not, a request and its success need no lock. Every replay thread takes
    /// this path per request, and a shared lock would bounce between cores.
    failing: AtomicBool,
    /// The first failure of each kind, in words (by [`Failure::index`]).
    words: Mutex<[Option<String>; Failure::ALL.len()]>,
    /// The kernel's round-trip time to the shadow as each connection opened.
    rtt: Mutex<Rtt>,
}

/// The kernel's smoothed round-trip time of `tcp`, µs (`TCP_INFO`), if it says.
fn kernel_rtt(tcp: &TcpStream) -> Option<u64> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket, a buffer of `len` bytes and its length.
    let rc = unsafe {
        libc::getsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.tcpi_rtt > 0).then_some(u64::from(info.tcpi_rtt))
}

impl Health {
    /// Keeps `words` as the first of `kind`'s failures, if it is.
    fn first(&self, kind: Failure, words: impl FnOnce() -> String) {
        if let Ok(mut all) = self.words.lock() {
            all[kind.index()].get_or_insert_with(words);
        }
    }
}

/// What went wrong with one shadow over a run, for the lines that say so at the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trouble {
    /// The first failure of each kind that happened, in words.
    pub words: Vec<(Failure, String)>,
    /// The kernel's round-trip time to the shadow as each connection opened.
    pub rtt: Rtt,
    /// How many times the circuit breaker opened, and for how long in all.
    pub breaker: (u64, Duration),
}

/// An I/O error in words: `connection refused`, without `(os error 111)`.
fn plain(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut words = text.to_string();
    if let Some(first) = words.get(..1) {
        let lower = first.to_lowercase();
        words.replace_range(..1, &lower);
    }
    words
}

/// A TLS handshake error in words: rustls's certificate errors named as a person would.
fn tls_words(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return plain(e);
    };
    let words = match tls {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the certificate is signed by an unknown authority (--shadow-ca FILE trusts its CA, --insecure skips the check)".to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the certificate is not valid for the shadow's name".to_string()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the certificate has expired".to_string()
        }
        Error::InvalidCertificate(CertificateError::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "the server presented a CA certificate as its own".to_string()
        }
        other => other.to_string(),
    };
    format!("TLS: {words}")
}

/// One keep-alive connection's place: empty until the first exchange or after the
/// connection could not be kept. It also keeps the timer that enforces the whole-exchange
/// timeout, from one exchange to the next.
#[derive(Default)]
pub struct Slot {
    conn: Option<Conn>,
    alarm: Option<Pin<Box<Sleep>>>,
}

impl Slot {
    /// Runs `fut` to its end, or to `deadline` (then None).
    ///
    /// One timer per slot, not one per exchange: it is moved only when it goes off before
    /// the deadline at hand (it was set for an earlier exchange), so an exchange that ends
    /// in time costs no timer work at all, where `tokio::time::timeout` adds and removes a
    /// timer every time.
    async fn within<F: Future>(
        &mut self,
        deadline: TokioInstant,
        mut fut: Pin<&mut F>,
    ) -> Option<F::Output> {
        let alarm = self
            .alarm
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if alarm.deadline() > deadline {
            alarm.as_mut().reset(deadline);
        }
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            while alarm.as_mut().poll(cx).is_ready() {
                if TokioInstant::now() >= deadline {
                    return Poll::Ready(None);
                }
                alarm.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

/// How to reach one shadow. Cheap to clone; clones share the circuit breaker (failures
/// anywhere count towards opening it) and what went wrong ([`Client::trouble`]). Connections live in [`Slot`]s
/// owned by the callers, one per request in flight.
#[derive(Clone)]
pub struct Client {
    health: Arc<Health>,
    addr: SocketAddr,
    tls: Option<Tls>,
}

impl Client {
    pub fn new(addr: SocketAddr, tls: Option<Tls>) -> Client {
        Client {
            health: Arc::default(),
            addr,
            tls,
        }
    }

    /// What went wrong over the run: the first failure of each kind in words, and the
    /// circuit breaker's openings.
    pub fn trouble(&self) -> Trouble {
        let mut words: Vec<(Failure, String)> = self
            .health
            .words
            .lock()
            .map(|w| {
                Failure::ALL
                    .iter()
                    .filter_map(|&f| w[f.index()].clone().map(|t| (f, t)))
                    .collect()
            })
            .unwrap_or_default();
        for f in Failure::ALL {
            if !words.iter().any(|(k, _)| *k == f) {
                words.push((f, f.words().to_string()));
            }
        }
        words.sort_by_key(|(f, _)| f.index());
        let breaker = self
            .health
            .breaker
            .lock()
            .map_or((0, Duration::ZERO), |b| b.history(Instant::now()));
        let rtt = self.health.rtt.lock().map(|r| *r).unwrap_or_default();
        Trouble {
            words,
            breaker,
            rtt,
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| {
            self.health.first(Failure::Connect, || plain(&e));
            Failure::Connect
        })?;
        let _ = tcp.set_nodelay(true);
        if let (Some(us), Ok(mut rtt)) = (kernel_rtt(&tcp), self.health.rtt.lock()) {
            rtt.record(us);
        }
        let conn = |io: Box<dyn Io>| Conn {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
        };
        let Some(tls) = &self.tls else {
            return Ok(conn(Box::new(tcp)));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        match connector.connect(tls.name.clone(), tcp).await {
            Ok(stream) => Ok(conn(Box::new(stream))),
            Err(e) => {
                self.health.first(Failure::Connect, || tls_words(&e));
                Err(Failure::Connect)
            }
        }
    }

    /// Sends `request` on the slot's connection (opening one if needed) and reads the
    /// answer, within `timeout` for the whole exchange. `head` says the request is HEAD (its
    /// response has no body).
    pub async fn exchange(
        &self,
        slot: &mut Slot,
        request: &[u8],
        head: bool,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let health = &*self.health;
        if health.failing.load(Ordering::Relaxed)
            && !health
                .breaker
                .lock()
                .map_or(true, |mut b| b.allow(Instant::now))
        {
            return Err(Failure::CircuitOpen);
        }
        let result = self.attempt(slot, request, head, timeout).await;
        // Only failures that say the shadow is unreachable or stuck trip the breaker.
        let healthy = !matches!(result, Err(Failure::Connect | Failure::Timeout));
        if !healthy || health.failing.load(Ordering::Relaxed) {
            if let Ok(mut b) = health.breaker.lock() {
                b.record(healthy, Instant::now);
                health.failing.store(!b.is_closed(), Ordering::Relaxed);
            }
        }
        result
    }

    async fn attempt(
        &self,
        slot: &mut Slot,
        request: &[u8],
        head: bool,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let deadline = TokioInstant::now() + timeout;
        // A kept-alive connection the shadow closed while idle fails at once: retry once on a
        // fresh connection, as any keep-alive client does; the time keeps running.
        let reused = slot
            .conn
            .take()
            .and_then(|mut c| c.still_idle().then_some(c));
        let was_reused = reused.is_some();
        let first = std::pin::pin!(self.once(reused, request, head));
        let first = slot.within(deadline, first).await;
        let timed_out = || {
            self.health.first(Failure::Timeout, || {
                format!("no whole answer within the {timeout:?} timeout")
            });
            Err(Failure::Timeout)
        };
        let result = match first {
            None => return timed_out(),
            Some(Err((Failure::Reset, false))) if was_reused => {
                // Boxed: the rare retry should not double the size of every exchange.
                let mut retry = Box::pin(self.once(None, request, head));
                match slot.within(deadline, retry.as_mut()).await {
                    None => return timed_out(),
                    Some(r) => r,
                }
            }
            Some(r) => r,
        };
        match result {
            Ok((answer, conn)) => {
                slot.conn = conn;
                Ok(answer)
            }
            Err((f, _)) => Err(f),
        }
    }

    /// One attempt. The error says whether any response byte was read.
    #[allow(clippy::type_complexity, reason = "a private helper's pair of results")]
    async fn once(
        &self,
        conn: Option<Conn>,
        request: &[u8],
        head: bool,
    ) -> Result<(Answer, Option<Conn>), (Failure, bool)> {
        let conn = match conn {
            Some(c) => c,
            // Boxed: connecting (TLS above all) needs a large future, and every exchange
            // would carry (and move) its space while only a new connection uses it.
            None => Box::pin(self.connect()).await.map_err(|f| (f, false))?,
        };
        exchange::over(conn, request, head).await
    }
}

#[cfg(test)]
mod tests;
