//! One request and its response over a connection to the shadow: writing the prepared
//! bytes, reading the head and the body with the capture side's framing (`http1::head`,
//! `http1::decode`), and timing them from a monotonic clock.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::failure::{classify, Failure};
use super::{Conn, Io};
use crate::http1::decode::Decoder;
use crate::http1::head::{self, After, BodyKind, Parsed};
use crate::http1::{HttpCounters, Limits};

/// Response body bytes read and discarded before the connection is cut (RELIABILITY.md
/// section 1 item 5): a shadow returning a huge body costs bounded time and no memory.
pub const MAX_DRAIN: u64 = 10 * 1024 * 1024;
pub(super) const READ_CHUNK: usize = 16 * 1024;
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

/// One request and its response over `conn`: writes `request`, reads the head and the
/// body, and times them. The connection comes back when it can carry the next request; the
/// error says whether any response byte was read.
#[allow(clippy::type_complexity, reason = "a private helper's pair of results")]
pub(super) async fn over(
    mut conn: Conn,
    request: &[u8],
    head: bool,
) -> Result<(Answer, Option<Conn>), (Failure, bool)> {
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
        // Nothing read yet (the usual start): no head to parse.
        let parsed = if buf.is_empty() {
            HeadParse::Partial
        } else {
            parse_head(buf, head)
        };
        match parsed {
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
    // The head limit is the capture side's (64 KiB); its counters are not wanted here (a
    // scratch set, not kept across reads: the exchange's future stays small).
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
