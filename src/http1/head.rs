//! Request and response heads: httparse for the syntax, then the message-framing decision of
//! RFC 9112 section 6.3 (which body follows, and whether the framing is ambiguous).

use std::mem::MaybeUninit;

use super::limits::{HttpCounters, Limits};
use super::{Flags, Headers};

/// Header slots on the stack for one parse; more headers than this are refused
/// (`http.too_many_headers`) whatever the configured limit.
const HEADER_SLOTS: usize = 128;
/// The longest method token taken for one (the registered ones are at most 17 bytes).
pub(super) const MAX_METHOD: usize = 32;

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    Close,
}

pub(super) struct RequestHead {
    pub method: String,
    pub target: Vec<u8>,
    pub version: u8,
    pub headers: Headers,
    pub body: BodyKind,
    pub flags: Flags,
}

pub(crate) struct ResponseHead {
    pub status: u16,
    pub version: u8,
    /// Framing from the headers alone; [`ResponseHead::after`] applies the
    /// request-dependent rules (HEAD, 1xx, 204, 304, CONNECT).
    pub body: BodyKind,
    /// The Content-Length was malformed or repeated with different values (H17, H18), so
    /// `body` is `Close`: what a passive observer can still follow. A client must instead
    /// drop the answer and the connection (RFC 9112 section 6.3 item 5).
    pub invalid_length: bool,
    pub flags: Flags,
}

/// What follows a final response head on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// A body framed so (`None`: the next response head).
    Body(BodyKind),
    /// Not HTTP any more: a 101 switched protocols, or a 2xx opened a CONNECT tunnel.
    Tunnel,
}

impl ResponseHead {
    /// 100 Continue, 103 Early Hints and the like: not the answer, another head follows
    /// (H06). 101 is final: the connection switches protocols after it.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// What follows this final head, given the request it answers (RFC 9112 section 6.3
    /// items 1 and 2): no body after HEAD, 204 and 304; a tunnel after 101 or a 2xx to
    /// CONNECT.
    pub fn after(&self, head_request: bool, connect_request: bool) -> After {
        if self.status == 101 || (connect_request && (200..300).contains(&self.status)) {
            return After::Tunnel;
        }
        if head_request || self.status == 204 || self.status == 304 {
            return After::Body(BodyKind::None);
        }
        After::Body(self.body)
    }
}

pub(crate) enum Parsed<T> {
    /// The head and its length in bytes.
    Done(T, usize),
    Partial,
    Invalid,
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

fn owned(headers: &[httparse::Header<'_>]) -> Headers {
    let names = headers.iter().map(|h| h.name.len()).sum();
    let values = headers.iter().map(|h| h.value.len()).sum();
    let mut owned = Headers::with_capacity(headers.len(), names, values);
    for h in headers {
        owned.push(h.name, h.value);
    }
    owned
}

/// True when a line of the head ends with a bare LF. One pass over byte pairs without an
/// early exit, which the compiler vectorizes: a head is a few hundred bytes, and searching
/// line by line cost a search call per line.
fn bare_lf(head: &[u8]) -> bool {
    let Some(&first) = head.first() else {
        return false;
    };
    let later = head[1..]
        .iter()
        .zip(head)
        .fold(false, |bare, (&b, &before)| {
            bare | ((b == b'\n') & (before != b'\r'))
        });
    first == b'\n' || later
}

/// The body framing the headers declare, with anomalies flagged and counted: `Ok(None)` for
/// a transfer coding other than chunked, `Err` for an unusable Content-Length.
fn framing<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    flags: &mut Flags,
    counters: &mut HttpCounters,
) -> Result<Option<BodyKind>, ()> {
    let mut te: Option<&[u8]> = None;
    let mut length: Option<u64> = None;
    let mut lengths_conflict = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            // Digits only: `+5`, `-1`, ` 5 x`, `5, 5` and overflow are all malformed (H18).
            let value = value.trim_ascii();
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (n, length) {
                (None, _) => {
                    counters.invalid_content_length += 1;
                    return Err(());
                }
                (Some(n), Some(l)) => {
                    // A repeated Content-Length is flagged; different values are invalid (H17).
                    flags.insert(Flags::AMBIGUOUS_FRAMING);
                    lengths_conflict |= n != l;
                }
                (Some(n), None) => length = Some(n),
            }
        }
    }
    if lengths_conflict {
        counters.ambiguous_framing += 1;
        counters.invalid_content_length += 1;
        return Err(());
    }
    if let Some(te) = te {
        if length.is_some() {
            // RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, but the
            // pair is how requests are smuggled (H16).
            flags.insert(Flags::AMBIGUOUS_FRAMING);
            counters.ambiguous_framing += 1;
        }
        let last = te.rsplit(|&b| b == b',').next().unwrap_or(&[]).trim_ascii();
        if last.eq_ignore_ascii_case(b"chunked") {
            return Ok(Some(BodyKind::Chunked));
        }
        counters.invalid_transfer_encoding += 1;
        return Ok(None);
    }
    Ok(Some(length.map_or(BodyKind::None, BodyKind::Length)))
}

/// The length of a complete head, or what the caller returns instead: `Partial` while more
/// bytes may complete it, `Invalid` (counted by reason) for bad syntax and for a head past the
/// size or header-count limits (H21), whether it is still partial or already whole.
fn head_len<T>(
    status: httparse::Result<usize>,
    buffered: usize,
    limits: &Limits,
    counters: &mut HttpCounters,
) -> Result<usize, Parsed<T>> {
    match status {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head => Ok(n),
        Ok(httparse::Status::Partial) if buffered <= limits.max_head => Err(Parsed::Partial),
        Ok(_) => {
            counters.head_too_large += 1;
            Err(Parsed::Invalid)
        }
        Err(httparse::Error::TooManyHeaders) => {
            counters.too_many_headers += 1;
            Err(Parsed::Invalid)
        }
        Err(_) => Err(Parsed::Invalid),
    }
}

pub(super) fn request(
    buf: &[u8],
    limits: &Limits,
    counters: &mut HttpCounters,
) -> Parsed<RequestHead> {
    // Uninitialised slots: initialising 128 of them would cost more than most parses.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let status = config().parse_request_with_uninit_headers(&mut req, buf, &mut slots);
    if matches!(status, Ok(httparse::Status::Partial))
        && buf.len() > MAX_METHOD
        && memchr::memchr(b' ', &buf[..=MAX_METHOD]).is_none()
    {
        // No method is this long: junk made of token characters, not a request.
        return Parsed::Invalid;
    }
    let n = match head_len(status, buf.len(), limits, counters) {
        Ok(n) => n,
        Err(stop) => return stop,
    };
    if req.headers.len() > limits.max_headers {
        counters.too_many_headers += 1;
        return Parsed::Invalid;
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid;
    };
    if path.len() > limits.max_uri {
        counters.uri_too_long += 1;
        return Parsed::Invalid;
    }
    let mut flags = Flags::default();
    if bare_lf(&buf[..n]) {
        flags.insert(Flags::LENIENT);
        counters.lenient_eol += 1;
    }
    let fields = req.headers.iter().map(|h| (h.name, h.value));
    let body = match framing(fields, &mut flags, counters) {
        // A request with a transfer coding other than chunked cannot be framed (RFC 9112
        // section 6.3 item 4): the direction stops.
        Ok(None) | Err(()) => {
            flags.insert(Flags::INVALID);
            BodyKind::None
        }
        Ok(Some(kind)) => kind,
    };
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    if (version == 1 && hosts == 0) || hosts > 1 {
        flags.insert(Flags::HOST_ANOMALY);
        counters.host_anomaly += 1;
    }
    let expect_continue = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("expect")
            && h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue")
    });
    if expect_continue {
        flags.insert(Flags::EXPECT_CONTINUE);
    }
    Parsed::Done(
        RequestHead {
            method: method.to_string(),
            target: path.as_bytes().to_vec(),
            version,
            headers: owned(req.headers),
            body,
            flags,
        },
        n,
    )
}

/// The one response-head reader, for the capture tracker and the replay client alike.
pub(crate) fn response(
    buf: &[u8],
    limits: &Limits,
    counters: &mut HttpCounters,
) -> Parsed<ResponseHead> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut resp = httparse::Response::new(&mut []);
    let n = match head_len(
        config().parse_response_with_uninit_headers(&mut resp, buf, &mut slots),
        buf.len(),
        limits,
        counters,
    ) {
        Ok(n) => n,
        Err(stop) => return stop,
    };
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return Parsed::Invalid;
    };
    let mut flags = Flags::default();
    if bare_lf(&buf[..n]) {
        flags.insert(Flags::LENIENT);
        counters.lenient_eol += 1;
    }
    // Only the framing is wanted of a response's headers: they are read in place, not kept.
    let fields = resp.headers.iter().map(|h| (h.name, h.value));
    let framed = framing(fields, &mut flags, counters);
    let invalid_length = framed.is_err();
    let body = match framed {
        Ok(Some(kind)) => kind,
        // Unknown transfer coding, or an unusable length: the body runs to the close
        // (RFC 9112 section 6.3 items 4 and 5 for responses).
        Ok(None) | Err(()) => BodyKind::Close,
    };
    // No length and no chunked coding: the body runs to the close (RFC 9112 section 6.3
    // item 8); the caller overrides this for bodiless responses.
    let body = if body == BodyKind::None {
        BodyKind::Close
    } else {
        body
    };
    Parsed::Done(
        ResponseHead {
            status,
            version,
            body,
            invalid_length,
            flags,
        },
        n,
    )
}

/// Whether `line` (bytes up to a line feed) looks like a request line: a method token, a
/// space, a target, a space and `HTTP/1.x`.
pub(super) fn is_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    is_method(&line[..sp])
        && line.len() >= sp + 11
        && line[line.len() - 9..].starts_with(b" HTTP/1.")
        && line[sp + 1] != b' '
}

/// Whether a head that did not parse was meant as a request: its first line starts with a
/// method token and a space (another protocol's bytes rarely do; those of a request with a
/// bad target, version or header still do).
pub(super) fn looks_like_request(head: &[u8]) -> bool {
    let line = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
    let Some(sp) = memchr::memchr(b' ', line) else {
        return false;
    };
    is_method(&line[..sp])
}

/// Whether `method` is a method token (RFC 9110 `token`) no longer than [`MAX_METHOD`].
fn is_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method.len() <= MAX_METHOD
        && method
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `line` looks like a status line: `HTTP/1.x` and a three-digit code.
pub(super) fn is_status_line(line: &[u8]) -> bool {
    line.len() >= 12
        && line.starts_with(b"HTTP/1.")
        && line[8] == b' '
        && line[9..12].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::bare_lf;
    use proptest::prelude::*;

    #[test]
    fn a_bare_lf_is_an_lf_not_after_a_cr() {
        assert!(!bare_lf(b""));
        assert!(!bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bare_lf(b"\n"));
        assert!(bare_lf(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\n"));
        assert!(!bare_lf(b"\r\n"));
        assert!(!bare_lf(b"\r"));
    }

    proptest! {
        /// The same answer as looking at the byte before each LF, on heads of CR, LF and
        /// other bytes.
        #[test]
        fn bare_lf_agrees_with_a_search_per_line(
            head in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..300)
        ) {
            let by_line = memchr::memchr_iter(b'\n', &head).any(|i| i == 0 || head[i - 1] != b'\r');
            prop_assert_eq!(bare_lf(&head), by_line);
        }
    }
}
