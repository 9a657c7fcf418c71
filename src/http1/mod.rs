//! Byte streams to HTTP/1.x exchanges: request and response framing on top of httparse heads,
//! FIFO pairing of responses to requests, and timing off the capture timestamps.
//!
//! Owns: message framing (Content-Length, chunked, close-delimited, no-body rules), pairing
//! (pipelining, interim 1xx, gaps), protocol detection (HTTP/2 preface, TLS, garbage), the
//! per-message limits, and the `http.*` / `flows.*` counters. Does not own: TCP (that is
//! `reassembly`) or what is done with an exchange (that is `replay` and `commands`).

use std::net::SocketAddr;

use crate::capture::Timestamp;
use crate::reassembly::FlowId;

pub(crate) mod chunked;
mod conflict;
pub(crate) mod decode;
pub(crate) mod head;
mod limits;
mod memcap;
#[cfg(test)]
mod tests;
mod tracker;

pub use limits::{HttpCounters, Limits};
pub use tracker::Tracker;

/// Why a request the tracker saw never became an exchange. A request is seen from the first
/// byte of its head (blank lines before it aside); one that cannot be emitted is counted here
/// by reason (`http.requests_lost.*`), so every request seen is accounted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Bytes of its head were never captured.
    Gap,
    /// The connection ended (FIN, timeout, eviction) inside its head.
    Truncated,
    /// The connection was reset inside its head.
    Aborted,
    /// The capture ended inside its head.
    CaptureEnded,
    /// Its head could not be parsed (syntax, or past the head, header or URI limits).
    InvalidRequest,
    /// Its head could not be held within the tracker's memory budget (`--http-memcap`).
    Memcap,
}

/// One request and, when it was captured, its final response.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub flow: FlowId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub request: Request,
    /// The final (non-1xx, or 101) response, or None when none was captured.
    pub response: Option<Response>,
    /// Anomalies on this exchange (either message).
    pub flags: Flags,
}

impl Exchange {
    /// Last request byte to first byte of the final response, in microseconds.
    pub fn ttfb_us(&self) -> Option<i64> {
        let resp = self.response.as_ref()?;
        Some(resp.first_ts.micros_since(self.request.last_ts))
    }

    /// First request byte to last response byte, in microseconds; None unless the response
    /// was captured whole.
    pub fn total_us(&self) -> Option<i64> {
        let resp = self.response.as_ref()?;
        if !resp.complete {
            return None;
        }
        Some(resp.last_ts.micros_since(self.request.first_ts))
    }

    /// Bytes the exchange holds on the heap, about: what bounds on queued exchanges count.
    pub fn heap_bytes(&self) -> usize {
        let r = &self.request;
        let headers = r.headers.heap_bytes();
        std::mem::size_of::<Exchange>()
            + r.method.capacity()
            + r.target.capacity()
            + headers
            + r.body.capacity()
    }
}

/// An HTTP header as captured: name and value bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// A request's headers as captured, order and duplicates preserved. Every name is kept in
/// one string and every value in one buffer, so a request's headers cost three allocations
/// however many there are (one each would cost two per header, made on the reading thread
/// and freed on a replay thread).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    names: String,
    values: Vec<u8>,
    /// Where each header's name ends in `names` and its value in `values`.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Room for `count` headers whose names and values add up to these lengths.
    pub fn with_capacity(count: usize, names: usize, values: usize) -> Headers {
        Headers {
            names: String::with_capacity(names),
            values: Vec::with_capacity(values),
            ends: Vec::with_capacity(count),
        }
    }

    pub fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.ends.push((self.names.len(), self.values.len()));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes the headers hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.names.capacity()
            + self.values.capacity()
            + self.ends.capacity() * std::mem::size_of::<(usize, usize)>()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            names: &self.names,
            values: &self.values,
            ends: self.ends.iter(),
            name_start: 0,
            value_start: 0,
        }
    }
}

impl<'a> FromIterator<Header<'a>> for Headers {
    fn from_iter<I: IntoIterator<Item = Header<'a>>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut headers = Headers::with_capacity(iter.size_hint().0, 0, 0);
        for h in iter {
            headers.push(h.name, h.value);
        }
        headers
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;

    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// The headers in their captured order.
pub struct HeaderIter<'a> {
    names: &'a str,
    values: &'a [u8],
    ends: std::slice::Iter<'a, (usize, usize)>,
    name_start: usize,
    value_start: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        let &(name_end, value_end) = self.ends.next()?;
        let name = self
            .names
            .get(self.name_start..name_end)
            .unwrap_or_default();
        let value = self
            .values
            .get(self.value_start..value_end)
            .unwrap_or_default();
        self.name_start = name_end;
        self.value_start = value_end;
        Some(Header { name, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

#[cfg(test)]
mod headers_tests {
    use super::*;

    #[test]
    fn headers_come_back_as_pushed_empty_values_and_duplicates_included() {
        let pushed = [
            ("Host", &b"a"[..]),
            ("X-Empty", b""),
            ("Cookie", b"a=1"),
            ("Cookie", b"b=\xff2"),
            ("", b"odd"),
        ];
        let headers: Headers = pushed
            .iter()
            .map(|&(name, value)| Header { name, value })
            .collect();
        assert_eq!(headers.len(), 5);
        let back: Vec<(&str, &[u8])> = headers.iter().map(|h| (h.name, h.value)).collect();
        assert_eq!(back, pushed);
        assert_eq!(headers.iter().len(), 5);
        assert!(Headers::default().iter().next().is_none());
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    /// The method token exactly as sent (any token is accepted).
    pub method: String,
    /// The request-target exactly as sent (origin-form, absolute-form, authority-form or `*`).
    pub target: Vec<u8>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Headers,
    /// The decoded (de-chunked) body, kept up to the body cap; see `body_len` and `body_kept`.
    pub body: Vec<u8>,
    /// Decoded body bytes seen, whether or not they were kept.
    pub body_len: u64,
    /// False when the body was longer than the cap and `body` holds only a prefix of it.
    pub body_kept: bool,
    /// The request was seen whole (head and body, no gap inside).
    pub complete: bool,
    /// Capture time of the first and last byte of the request.
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

impl Request {
    /// The first `Host` header's value, if any.
    pub fn host(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .map(|h| h.value)
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub version: u8,
    // No headers: a response is compared by status and timing, and its headers are read in
    // place for framing only (keeping them would cost allocations on every exchange).
    /// Decoded (de-chunked, not decompressed) body bytes seen.
    pub body_len: u64,
    /// The response was seen whole.
    pub complete: bool,
    /// Capture time of the first and last byte of the final response.
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

/// Anomaly flags on an exchange, printed snake_case (see [`Flags::names`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $text:literal;)*) => {
        impl Flags {
            $($(#[$doc])* pub const $name: Flags = Flags(1 << $bit);)*
            const NAMES: &'static [(Flags, &'static str)] = &[$((Flags::$name, $text)),*];
        }
    };
}

flags! {
    /// Bytes of this exchange were lost (capture loss or a buffer cap).
    GAP = 0, "gap";
    /// The request or response was cut short: the capture or the connection ended inside it.
    TRUNCATED = 1, "truncated";
    /// The flow was picked up without its handshake.
    MIDSTREAM = 2, "midstream";
    /// An `Upgrade` was accepted (101): parsing of the connection stopped after it.
    UPGRADE = 3, "upgrade";
    /// CONNECT: parsing of the connection stopped when the tunnel was established.
    CONNECT = 4, "connect";
    /// Both Content-Length and Transfer-Encoding, or conflicting Content-Lengths.
    AMBIGUOUS_FRAMING = 5, "ambiguous_framing";
    /// The request was pipelined behind another one still unanswered.
    PIPELINED = 6, "pipelined";
    /// `Expect: 100-continue` on the request.
    EXPECT_CONTINUE = 7, "expect_continue";
    /// One or more interim (1xx) responses preceded the final one.
    INTERIM = 8, "interim";
    /// The response body ran until the connection closed.
    CLOSE_DELIMITED = 9, "close_delimited";
    /// The connection was reset.
    RESET = 10, "reset";
    /// Header syntax was tolerated but not clean (bare LF, obs-fold, ...).
    LENIENT = 11, "lenient";
    /// A response was matched across a gap in the server's stream.
    RESYNC = 12, "resync";
    /// Missing, duplicate or conflicting Host.
    HOST_ANOMALY = 13, "host_anomaly";
    /// The request body is longer than the body cap: only a prefix is kept.
    BODY_TOO_LARGE = 14, "body_too_large";
    /// The request framing was invalid; the direction stopped after it.
    INVALID = 15, "invalid";
    /// HTTP/0.9 simple request (never replayed).
    HTTP09 = 16, "http09";
    /// Bytes of this exchange were retransmitted with different content: which copy the
    /// server took is unknown, so it is never replayed.
    OVERLAP_CONFLICT = 17, "overlap_conflict";
    /// The tracker's memory budget could not hold the request's head or body
    /// (`--http-memcap`): it is counted, never replayed.
    MEMCAP = 18, "memcap";
}

impl Flags {
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The snake_case names of the flags that are set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES
            .iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}
