//! The bytes sent to the shadow for one captured request: the captured method, target,
//! headers (order and duplicates kept) and body, with the documented rewrites only
//! (DESIGN.md "Rewrites").

use crate::http1::Exchange;
use crate::replay::select::path_of;

/// The marker every replayed request carries, so the shadow can tell, and so shadowtap never
/// captures its own traffic.
pub const MARKER: &str = "X-Shadowtap-Replay";

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1), plus
/// the framing headers shadowtap writes itself.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "host",
];

/// What the Host header of a replayed request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostHeader {
    /// The shadow URL's authority, as any HTTP client sends it (the default).
    Shadow(String),
    /// The captured Host.
    Keep,
    /// A fixed value.
    Value(String),
}

#[derive(Clone, Debug)]
pub struct Rewrites {
    pub host: HostHeader,
    /// `--set-header 'K: V'`: replaces every captured header of that name.
    pub set: Vec<(String, String)>,
    /// `--strip-header K`.
    pub strip: Vec<String>,
}

/// Writes the request to `out` (cleared first): origin-form target, HTTP/1.1, the body
/// de-chunked with a Content-Length.
pub fn write(ex: &Exchange, rw: &Rewrites, out: &mut Vec<u8>) {
    let req = &ex.request;
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    // Absolute-form becomes origin-form; everything else (`*`, dot segments, escapes) is
    // sent byte for byte.
    out.extend_from_slice(path_of(&req.target));
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let host: Option<&[u8]> = match &rw.host {
        HostHeader::Shadow(a) | HostHeader::Value(a) => Some(a.as_bytes()),
        HostHeader::Keep => req.host(),
    };
    if let Some(h) = host {
        header(out, "Host", h);
    }
    let connection_tokens: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            h.value
                .split(|&b| b == b',')
                .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        })
        .collect();
    for h in &req.headers {
        let name = h.name.to_ascii_lowercase();
        let dropped = NOT_FORWARDED.contains(&name.as_str())
            || connection_tokens.contains(&name)
            || rw.strip.iter().any(|s| s.eq_ignore_ascii_case(&name))
            || rw.set.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name));
        if !dropped {
            header(out, &h.name, &h.value);
        }
    }
    for (k, v) in &rw.set {
        header(out, k, v.as_bytes());
    }
    let had_framing = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    });
    if had_framing || !req.body.is_empty() {
        header(out, "Content-Length", req.body.len().to_string().as_bytes());
    }
    header(out, MARKER, b"1");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&req.body);
}

fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
