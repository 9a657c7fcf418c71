//! A small HTTP/1.1 client over tokio `TcpStream` (and rustls for `https://`): writes a prepared request byte for byte,
//! reads the response with the project's own framing, and times both from a monotonic clock.
//!
//! Why not reqwest: its URL type normalises targets (dot segments, escapes, no `*`), its
//! header map regroups duplicates, and it cannot tell when the last request byte was written,
//! which is where the shadow's time to first byte starts (DESIGN.md).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::http1::chunked::Chunked;
use crate::replay::tls::Tls;

/// A connection to the shadow: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection and its read buffer, kept together so a reused connection reuses the buffer.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// Largest response head read (RELIABILITY.md section 4).
const MAX_HEAD: usize = 64 * 1024;
/// Response body bytes read and discarded before the connection is cut (RELIABILITY.md
/// section 1 item 5): a shadow returning a huge body costs bounded time and no memory.
pub const MAX_DRAIN: u64 = 10 * 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;
const HEADER_SLOTS: usize = 128;

/// What one replayed exchange gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Last request byte written to first response byte read.
    pub ttfb: Duration,
    /// First request byte written to last response byte read.
    pub total: Duration,
    pub body_len: u64,
    /// The body was cut at [`MAX_DRAIN`]: the status and `ttfb` are real, but `total` is not
    /// the time to the last byte (and `body_len` not the body's length).
    pub body_cut: bool,
}

/// Why an exchange with the shadow failed (DESIGN.md transport error kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    Timeout,
    Connect,
    Reset,
    /// Not sent: the circuit breaker is open after repeated connect errors or timeouts.
    CircuitOpen,
    /// Given up unanswered when the run's drain deadline passed (or a second signal came).
    Shutdown,
    Other,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::CircuitOpen => "circuit_open",
            Failure::Shutdown => "shutdown",
            Failure::Other => "other",
        }
    }
}

fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failure::Reset,
        _ => Failure::Other,
    }
}

/// Consecutive connect errors or timeouts that open the circuit (RELIABILITY.md section 1
/// item 8).
pub const BREAKER_TRIP: u32 = 5;
/// How long an open circuit refuses requests before one probe is let through.
pub const BREAKER_OPEN: Duration = Duration::from_secs(1);

/// A circuit breaker for one shadow: a dead or hung shadow costs a few failures, not a
/// timeout per request. Refused requests are shadow errors (`circuit_open`), never dropped.
#[derive(Default)]
struct Breaker {
    consecutive: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// Whether a request may go; `now` is read only while the circuit is open.
    fn allow(&mut self, now: impl FnOnce() -> Instant) -> bool {
        match self.open_until {
            Some(until) if now() < until => false,
            Some(_) if self.probing => false,
            Some(_) => {
                // Half-open: one probe decides.
                self.probing = true;
                true
            }
            None => true,
        }
    }

    /// Whether no failure has been counted since the last success.
    fn is_closed(&self) -> bool {
        self.consecutive == 0 && self.open_until.is_none()
    }

    /// Counts an outcome; `now` is read only for a failure.
    fn record(&mut self, ok: bool, now: impl FnOnce() -> Instant) {
        if ok {
            if self.consecutive != 0 || self.open_until.is_some() {
                *self = Breaker::default();
            }
            return;
        }
        let now = now();
        self.consecutive += 1;
        if self.probing || self.consecutive >= BREAKER_TRIP {
            self.open_until = Some(now + BREAKER_OPEN);
            self.probing = false;
        }
    }
}

/// What every client of one shadow shares: its circuit breaker and the first TLS error.
#[derive(Default)]
struct Health {
    breaker: Mutex<Breaker>,
    /// Whether the breaker has counted a failure since its last success (so may refuse):
    /// while it has not, a request and its success need no lock. Every replay thread takes
    /// this path per request, and a shared lock would bounce between cores.
    failing: AtomicBool,
    /// The first TLS handshake error, for a one-line warning at the end.
    tls_error: Mutex<Option<String>>,
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
/// anywhere count towards opening it) and the TLS error. Connections live in [`Slot`]s
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

    /// The first TLS handshake error, if any.
    pub fn tls_error(&self) -> Option<String> {
        self.health.tls_error.lock().ok().and_then(|e| e.clone())
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
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
                if let Ok(mut first) = self.health.tls_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
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
        let reused = slot.conn.take();
        let was_reused = reused.is_some();
        let first = std::pin::pin!(self.once(reused, request, head));
        let first = slot.within(deadline, first).await;
        let result = match first {
            None => return Err(Failure::Timeout),
            Some(Err((Failure::Reset, false))) if was_reused => {
                // Boxed: the rare retry should not double the size of every exchange.
                let mut retry = Box::pin(self.once(None, request, head));
                match slot.within(deadline, retry.as_mut()).await {
                    None => return Err(Failure::Timeout),
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
        let mut conn = match conn {
            Some(c) => c,
            // Boxed: connecting (TLS above all) needs a large future, and every exchange
            // would carry (and move) its space while only a new connection uses it.
            None => Box::pin(self.connect()).await.map_err(|f| (f, false))?,
        };
        let t0 = Instant::now();
        conn.io
            .write_all(request)
            .await
            .map_err(|e| (classify(&e), false))?;
        let written = Instant::now();
        let mut buf = std::mem::take(&mut conn.buf);
        buf.clear();
        let (status, head_len, framing, first_byte) =
            read_head(&mut conn.io, &mut buf, head).await?;
        let ttfb = first_byte
            .unwrap_or(written)
            .saturating_duration_since(written);
        buf.drain(..head_len);
        let body = read_body(&mut conn.io, &mut buf, framing)
            .await
            .map_err(|e| (classify(&e), true))?;
        let total = t0.elapsed();
        // The buffer goes back with the connection; one grown by a big body is not kept.
        if buf.capacity() <= 4 * READ_CHUNK {
            conn.buf = buf;
        }
        Ok((
            Answer {
                status,
                ttfb,
                total,
                body_len: body.len,
                body_cut: body.cut,
            },
            body.reusable.then_some(conn),
        ))
    }
}

/// Reads response heads into `buf` until a final (non-1xx) one: its status, length and body
/// framing, and when its first byte arrived. The error says whether any byte was read.
/// What is already in `buf` is parsed before reading more: several interim responses can
/// arrive in one read, and waiting for more then would wait until the timeout.
pub(crate) async fn read_head(
    conn: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    head: bool,
) -> Result<(u16, usize, Framing, Option<Instant>), (Failure, bool)> {
    let mut first_byte: Option<Instant> = None;
    loop {
        match parse_head(buf, head) {
            HeadParse::Partial if buf.len() > MAX_HEAD => return Err((Failure::Other, true)),
            HeadParse::Partial => {
                let n = read_more(conn, buf)
                    .await
                    .map_err(|e| (classify(&e), first_byte.is_some()))?;
                if n == 0 {
                    return Err((Failure::Reset, first_byte.is_some()));
                }
                first_byte.get_or_insert_with(Instant::now);
            }
            HeadParse::Invalid => return Err((Failure::Other, true)),
            HeadParse::Interim(len) => {
                buf.drain(..len);
            }
            HeadParse::Final(s, l, f) => return Ok((s, l, f, first_byte)),
        }
    }
}

/// Reads what is there into the spare capacity of `buf` (no zeroing), at most a chunk.
async fn read_more(conn: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    conn.read_buf(buf).await
}

#[derive(Debug)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

enum HeadParse {
    Partial,
    Invalid,
    /// A 1xx head of this length, to skip.
    Interim(usize),
    Final(u16, usize, Framing),
}

fn parse_head(buf: &[u8], head_request: bool) -> HeadParse {
    // Uninitialised slots: initialising all of them would cost more than most parses.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(_) => return HeadParse::Invalid,
    };
    let Some(status) = resp.code else {
        return HeadParse::Invalid;
    };
    if (100..200).contains(&status) && status != 101 {
        return HeadParse::Interim(len);
    }
    let find = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let framing = if head_request || status == 204 || status == 304 || status == 101 {
        Framing::None
    } else if find("transfer-encoding")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"))
    {
        Framing::Chunked
    } else if let Some(cl) = find("content-length") {
        match std::str::from_utf8(cl)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) => Framing::Length(n),
            None => return HeadParse::Invalid,
        }
    } else {
        Framing::Close
    };
    HeadParse::Final(status, len, framing)
}

/// What reading a response body found.
pub(crate) struct Body {
    /// Decoded bytes read (at most a read past [`MAX_DRAIN`]).
    pub(crate) len: u64,
    /// Whether the connection can carry the next request.
    pub(crate) reusable: bool,
    /// Whether reading stopped at [`MAX_DRAIN`] before the body's end.
    pub(crate) cut: bool,
}

impl Body {
    fn whole(len: u64, reusable: bool) -> Body {
        Body {
            len,
            reusable,
            cut: false,
        }
    }

    /// Stopped at the cap: the connection, mid-body, cannot be reused.
    fn cut(len: u64) -> Body {
        Body {
            len,
            reusable: false,
            cut: true,
        }
    }
}

/// Reads (and discards) the body, up to [`MAX_DRAIN`] bytes.
pub(crate) async fn read_body(
    conn: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    framing: Framing,
) -> io::Result<Body> {
    match framing {
        Framing::None => Ok(Body::whole(0, buf.is_empty())),
        Framing::Length(n) => {
            let mut seen = (buf.len() as u64).min(n);
            let extra = buf.len() as u64 > n;
            while seen < n {
                if seen > MAX_DRAIN {
                    return Ok(Body::cut(seen));
                }
                buf.clear();
                let got = read_more(conn, buf).await?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                seen += got as u64;
            }
            Ok(Body::whole(n, !extra && seen == n))
        }
        Framing::Chunked => {
            let mut chunked = Chunked::new();
            let mut body = 0u64;
            loop {
                let used = chunked
                    .feed(buf, 16 * 1024, &mut |b| body += b.len() as u64)
                    .map_err(|_| io::Error::other("invalid chunked body"))?;
                if chunked.done() {
                    return Ok(Body::whole(body, used == buf.len()));
                }
                if body > MAX_DRAIN {
                    return Ok(Body::cut(body));
                }
                buf.clear();
                if read_more(conn, buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
        Framing::Close => {
            let mut body = buf.len() as u64;
            loop {
                buf.clear();
                let got = read_more(conn, buf).await?;
                if got == 0 {
                    return Ok(Body::whole(body, false));
                }
                if body > MAX_DRAIN {
                    return Ok(Body::cut(body));
                }
                body += got as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a never-ending exchange on `slot` with `timeout`; returns when it gave up, in ms
    /// from `t0`.
    async fn gives_up_after(slot: &mut Slot, t0: TokioInstant, timeout: u64) -> u128 {
        let deadline = TokioInstant::now() + Duration::from_millis(timeout);
        let out = slot
            .within(deadline, std::pin::pin!(std::future::pending::<()>()))
            .await;
        assert_eq!(out, None);
        (TokioInstant::now() - t0).as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn the_slot_timer_ends_each_exchange_at_its_own_deadline() {
        let t0 = TokioInstant::now();
        let mut slot = Slot::default();
        // An exchange that ends in time leaves the timer set for its own deadline (5 s).
        let quick = std::pin::pin!(async { 7 });
        let done = slot.within(t0 + Duration::from_secs(5), quick).await;
        assert_eq!(done, Some(7));
        // A shorter timeout than the one the timer is set for counts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(gives_up_after(&mut slot, t0, 300).await, 1300);
        // One that starts at 2 s does not give up at an earlier deadline but at 7 s.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(gives_up_after(&mut slot, t0, 5000).await, 7000);
        // And an exchange answered just before its deadline is not cut.
        let deadline = TokioInstant::now() + Duration::from_millis(100);
        let answer = std::pin::pin!(async {
            tokio::time::sleep(Duration::from_millis(99)).await;
            "answer"
        });
        assert_eq!(slot.within(deadline, answer).await, Some("answer"));
    }

    #[test]
    fn an_exchange_does_not_carry_the_space_of_connecting() {
        // Every request moves its exchange future around; connecting (TLS above all) needs
        // over a kilobyte more and is boxed, so only a new connection pays for it.
        let client = Client::new("127.0.0.1:9".parse().unwrap(), None);
        let mut slot = Slot::default();
        let f = client.exchange(&mut slot, b"", false, Duration::from_secs(1));
        assert!(
            std::mem::size_of_val(&f) < 1024,
            "{} bytes",
            std::mem::size_of_val(&f)
        );
    }

    #[test]
    fn breaker_opens_after_repeated_failures_and_probes_once() {
        let mut b = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..BREAKER_TRIP {
            assert!(b.allow(|| t0));
            b.record(false, || t0);
        }
        assert!(!b.allow(|| t0 + Duration::from_millis(10)), "open");
        let later = t0 + BREAKER_OPEN + Duration::from_millis(1);
        assert!(b.allow(|| later), "one probe when half-open");
        assert!(!b.allow(|| later), "only one");
        b.record(false, || later);
        assert!(
            !b.allow(|| later + Duration::from_millis(1)),
            "a failed probe opens it again"
        );
        let again = later + BREAKER_OPEN + Duration::from_millis(1);
        assert!(b.allow(|| again));
        b.record(true, || again);
        assert!(
            b.allow(|| again) && b.allow(|| again),
            "a success closes it"
        );
    }
}
