//! A small HTTP/1.1 client over tokio `TcpStream` (and rustls for `https://`): writes a prepared request byte for byte,
//! reads the response with the project's own framing, and times both from a monotonic clock.
//!
//! Why not reqwest: its URL type normalises targets (dot segments, escapes, no `*`), its
//! header map regroups duplicates, and it cannot tell when the last request byte was written,
//! which is where the shadow's time to first byte starts (DESIGN.md).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::http1::decode::Decoder;
use crate::http1::head::{self, After, BodyKind, Parsed};
use crate::http1::{HttpCounters, Limits};
use crate::replay::tls::Tls;

/// A connection to the shadow: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection and its read buffer, kept together so a reused connection reuses the buffer.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// Response body bytes read and discarded before the connection is cut (RELIABILITY.md
/// section 1 item 5): a shadow returning a huge body costs bounded time and no memory.
pub const MAX_DRAIN: u64 = 10 * 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// Chunk extension and trailer bytes allowed per response (the capture side's default).
const MAX_CHUNK_META: usize = 16 * 1024;

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
        let (status, head_len, after, first_byte) = read_head(&mut conn.io, &mut buf, head).await?;
        let ttfb = first_byte
            .unwrap_or(written)
            .saturating_duration_since(written);
        buf.drain(..head_len);
        let body = read_body(&mut conn.io, &mut buf, after)
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

/// Reads response heads into `buf` until a final (non-1xx) one: its status, length and what
/// follows it, and when its first byte arrived (DESIGN.md "What is measured": the shadow's
/// time to first byte ends at the final response, as the production side's does). The error
/// says whether any byte was read. What is already in `buf` is parsed before reading more:
/// several interim responses can arrive in one read, and waiting for more then would wait
/// until the timeout.
pub(crate) async fn read_head(
    conn: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    head: bool,
) -> Result<(u16, usize, After, Option<Instant>), (Failure, bool)> {
    let mut any = false;
    // When the first byte of the head now in `buf` arrived, and of the latest read.
    let mut head_start: Option<Instant> = None;
    let mut last_read = Instant::now();
    loop {
        match parse_head(buf, head) {
            HeadParse::Partial => {
                let n = read_more(conn, buf)
                    .await
                    .map_err(|e| (classify(&e), any))?;
                if n == 0 {
                    return Err((Failure::Reset, any));
                }
                any = true;
                last_read = Instant::now();
                head_start.get_or_insert(last_read);
            }
            HeadParse::Invalid => return Err((Failure::Other, true)),
            HeadParse::Interim(len) => {
                buf.drain(..len);
                // What follows the interim head came with the latest read.
                head_start = (!buf.is_empty()).then_some(last_read);
            }
            HeadParse::Final(s, l, after) => return Ok((s, l, after, head_start)),
        }
    }
}

/// Reads what is there into the spare capacity of `buf` (no zeroing), at most a chunk.
async fn read_more(conn: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    conn.read_buf(buf).await
}

enum HeadParse {
    /// Incomplete, and within the head limit.
    Partial,
    /// Bad syntax, past the head limit, or framing a client must not guess at.
    Invalid,
    /// A 1xx head of this length, to skip.
    Interim(usize),
    Final(u16, usize, After),
}

/// Parses the head at the start of `buf` with the capture side's reader and framing rules
/// (`http1::head`), so both sides frame a response alike: the last transfer coding decides
/// chunked (`gzip, chunked` is chunked), identical repeated Content-Lengths are one, and a
/// malformed or conflicting Content-Length (H17, H18) makes the answer an `other` error and
/// the connection is dropped (RFC 9112 section 6.3 item 5), where the passive capture side
/// reads such a body to the close and flags it.
fn parse_head(buf: &[u8], head_request: bool) -> HeadParse {
    // The head limit is the capture side's (64 KiB); its counters are not wanted here.
    let limits = Limits::default();
    let mut counters = HttpCounters::default();
    match head::response(buf, &limits, &mut counters) {
        Parsed::Partial => HeadParse::Partial,
        Parsed::Invalid => HeadParse::Invalid,
        Parsed::Done(h, len) if h.is_interim() => HeadParse::Interim(len),
        Parsed::Done(h, len) => {
            // The replayer sends no CONNECT (it is skipped, `select`).
            let after = h.after(head_request, false);
            if h.invalid_length && after == After::Body(BodyKind::Close) {
                return HeadParse::Invalid;
            }
            HeadParse::Final(h.status, len, after)
        }
    }
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

/// Reads (and discards) the body that follows a head, up to [`MAX_DRAIN`] bytes, with the
/// capture side's body decoder (`http1::decode`); `buf` holds the bytes read past the head.
/// The connection is kept only when the response ended exactly at the end of what was read:
/// bytes after it belong to no request, and would be taken for the next one's answer.
pub(crate) async fn read_body(
    conn: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    after: After,
) -> io::Result<Body> {
    let kind = match after {
        // Not HTTP any more: nothing to read, and the connection cannot carry a request.
        After::Tunnel => return Ok(Body::whole(0, false)),
        After::Body(kind) => kind,
    };
    let Some(mut decoder) = Decoder::new(kind) else {
        return Ok(Body::whole(0, buf.is_empty()));
    };
    let mut len = 0u64;
    loop {
        let d = decoder
            .decode(buf, MAX_CHUNK_META, &mut |b| len += b.len() as u64)
            .map_err(|_| io::Error::other("invalid chunked body"))?;
        if d.done {
            return Ok(Body::whole(len, d.used == buf.len()));
        }
        if len > MAX_DRAIN {
            return Ok(Body::cut(len));
        }
        buf.clear();
        if read_more(conn, buf).await? == 0 {
            if decoder.is_close() {
                return Ok(Body::whole(len, false));
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

    /// One step of a scripted shadow's answer.
    enum Step {
        Send(Vec<u8>),
        Wait(Duration),
    }

    fn send(bytes: &[u8]) -> Step {
        Step::Send(bytes.to_vec())
    }

    /// A shadow on 127.0.0.1:0 that answers each request (read up to its blank line) with
    /// the next answer of the script, on whatever connection it came; it keeps a connection
    /// open until the client closes it (or 10 s pass). Counts the connections it accepted.
    struct Shadow {
        client: Client,
        accepted: Arc<AtomicUsize>,
    }

    fn shadow(script: Vec<Vec<Step>>) -> Shadow {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut answers = script.into_iter();
            // Bounded: one connection per answer at most, and one more.
            for _ in 0..answers.len() + 1 {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut req = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        req.drain(..end + 4);
                        for step in answers.next().unwrap_or_default() {
                            match step {
                                Step::Send(b) => {
                                    let _ = conn.write_all(&b);
                                }
                                Step::Wait(d) => std::thread::sleep(d),
                            }
                        }
                    }
                }
            }
        });
        Shadow {
            client: Client::new(addr, None),
            accepted,
        }
    }

    impl Shadow {
        async fn get(&self, slot: &mut Slot) -> Result<Answer, Failure> {
            let request = b"GET / HTTP/1.1\r\nHost: shadow\r\n\r\n";
            self.client
                .exchange(slot, request, false, Duration::from_secs(3))
                .await
        }

        fn connections(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    /// The answer to one GET from a shadow that sends `response`, and to a second GET on the
    /// same slot: whether that one went on the same connection.
    async fn answer(response: &[u8]) -> (Result<Answer, Failure>, bool) {
        let ok = b"HTTP/1.1 204 No Content\r\n\r\n";
        let shadow = shadow(vec![vec![send(response)], vec![send(ok)]]);
        let mut slot = Slot::default();
        let first = shadow.get(&mut slot).await;
        let second = shadow.get(&mut slot).await;
        assert_eq!(second.map(|a| a.status), Ok(204));
        (first, shadow.connections() == 1)
    }

    #[tokio::test]
    async fn a_chunked_last_coding_is_chunked_not_read_until_the_close() {
        // RFC 9112 section 6.3: the last transfer coding decides. A keep-alive shadow never
        // closes, so reading to the close would end at the timeout.
        let gzip =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let (first, reused) = answer(gzip).await;
        let a = first.expect("framed as chunked");
        assert_eq!((a.status, a.body_len, a.body_cut), (200, 5, false));
        assert!(reused, "the connection carried the next request");
    }

    #[tokio::test]
    async fn content_lengths_follow_the_capture_side_rules() {
        // Identical repeats are one length (RFC 9110 section 8.6).
        let same = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        let (first, reused) = answer(same).await;
        assert_eq!(first.map(|a| a.body_len), Ok(5));
        assert!(reused);
        // Conflicting, signed, junk-suffixed and overflowing lengths are invalid framing:
        // an error, and the connection is not kept (H17, H18).
        for length in [
            &b"2\r\nContent-Length: 5"[..],
            b"+5",
            b"5x",
            b"99999999999999999999999",
        ] {
            let head = [
                &b"HTTP/1.1 200 OK\r\nContent-Length: "[..],
                length,
                b"\r\n\r\nhello",
            ]
            .concat();
            let (first, reused) = answer(&head).await;
            let length = String::from_utf8_lossy(length);
            assert_eq!(first, Err(Failure::Other), "{length}");
            assert!(!reused, "{length}");
        }
    }

    #[tokio::test]
    async fn ttfb_ends_at_the_final_response_not_at_an_interim_one() {
        // The shadow answers at once with interim responses, then the final one 50 ms later:
        // its time to first byte is at least that wait (DESIGN.md "What is measured").
        let wait = Duration::from_millis(50);
        let interims: [&[u8]; 2] = [
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
        ];
        for interim in interims {
            let shadow = shadow(vec![vec![
                send(interim),
                Step::Wait(wait),
                send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            ]]);
            let a = shadow.get(&mut Slot::default()).await.expect("answered");
            assert_eq!((a.status, a.body_len), (200, 2));
            assert!(
                a.ttfb >= wait,
                "ttfb {:?} before the final response",
                a.ttfb
            );
            assert!(a.total >= a.ttfb);
        }
    }

    #[tokio::test]
    async fn a_body_past_the_drain_cap_is_cut_flagged_and_the_connection_dropped() {
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n".to_vec();
        big.resize(big.len() + MAX_DRAIN as usize + 2 * READ_CHUNK, b'x');
        let (first, reused) = answer(&big).await;
        let a = first.expect("status and ttfb are real");
        assert!(a.body_cut);
        assert!(a.body_len > MAX_DRAIN && a.body_len <= MAX_DRAIN + 2 * READ_CHUNK as u64);
        assert!(!reused, "the connection was mid-body");
    }

    #[tokio::test]
    async fn bytes_after_a_whole_response_end_its_connection() {
        // Bytes no request asked for would be taken for the next request's answer.
        let extra: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 500 X\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\njunk",
            b"HTTP/1.1 304 Not Modified\r\n\r\njunk",
        ];
        for response in extra {
            let (first, reused) = answer(response).await;
            assert!(first.is_ok(), "{first:?}");
            assert!(!reused, "{}", String::from_utf8_lossy(response));
        }
        // Without them the connection is kept.
        let (first, reused) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").await;
        assert_eq!(first.map(|a| a.body_len), Ok(2));
        assert!(reused);
    }

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
