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
    // Headers named by a Connection header are hop-by-hop too (RFC 9110 section 7.6.1).
    let has_connection = req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection"));
    let named_by_connection = |name: &str| {
        has_connection
            && req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .flat_map(|h| h.value.split(|&b| b == b','))
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut had_framing = false;
    for h in &req.headers {
        let name = h.name;
        had_framing |= name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        let dropped = NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name))
            || rw.strip.iter().any(|s| s.eq_ignore_ascii_case(name))
            || rw.set.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
            || named_by_connection(name);
        if !dropped {
            header(out, name, h.value);
        }
    }
    for (k, v) in &rw.set {
        header(out, k, v.as_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Exchange {
        super::super::test_exchange(method, target, headers, body)
    }

    fn shadow_host() -> Rewrites {
        Rewrites {
            host: HostHeader::Shadow("shadow:8080".into()),
            set: Vec::new(),
            strip: Vec::new(),
        }
    }

    fn written(ex: &Exchange, rw: &Rewrites) -> String {
        let mut out = Vec::new();
        write(ex, rw, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn headers_keep_their_order_and_duplicates_and_hop_by_hop_ones_go() {
        let ex = exchange(
            "GET",
            "/a/../b?x=%2f&y",
            &[
                ("Host", "prod.example"),
                ("Cookie", "a=1"),
                ("X-Trace", "t"),
                ("Cookie", "b=2"),
                ("Connection", "keep-alive, X-Trace"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Accept", "*/*"),
            ],
            b"",
        );
        assert_eq!(
            written(&ex, &shadow_host()),
            "GET /a/../b?x=%2f&y HTTP/1.1\r\nHost: shadow:8080\r\nCookie: a=1\r\nCookie: b=2\r\nAccept: */*\r\nX-Shadowtap-Replay: 1\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_and_star_stays() {
        let abs = exchange(
            "GET",
            "http://prod.example:8080/x?y=1",
            &[("Host", "prod.example:8080")],
            b"",
        );
        assert!(written(&abs, &shadow_host()).starts_with("GET /x?y=1 HTTP/1.1\r\n"));
        let star = exchange("OPTIONS", "*", &[("Host", "h")], b"");
        assert!(written(&star, &shadow_host()).starts_with("OPTIONS * HTTP/1.1\r\n"));
    }

    #[test]
    fn chunked_bodies_go_with_a_content_length_and_expect_is_removed() {
        let ex = exchange(
            "POST",
            "/up",
            &[
                ("Host", "h"),
                ("Transfer-Encoding", "chunked"),
                ("Expect", "100-continue"),
                ("Content-Type", "text/plain"),
            ],
            b"hello world",
        );
        assert_eq!(
            written(&ex, &shadow_host()),
            "POST /up HTTP/1.1\r\nHost: shadow:8080\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Shadowtap-Replay: 1\r\n\r\nhello world"
        );
    }

    #[test]
    fn host_modes_and_set_and_strip() {
        let ex = exchange(
            "GET",
            "/",
            &[
                ("Host", "prod.example"),
                ("Authorization", "Bearer x"),
                ("X-Env", "prod"),
            ],
            b"",
        );
        let keep = Rewrites {
            host: HostHeader::Keep,
            set: vec![("X-Env".into(), "shadow".into())],
            strip: vec!["authorization".into()],
        };
        assert_eq!(written(&ex, &keep), "GET / HTTP/1.1\r\nHost: prod.example\r\nX-Env: shadow\r\nX-Shadowtap-Replay: 1\r\n\r\n");
        let fixed = Rewrites {
            host: HostHeader::Value("v2.internal".into()),
            set: Vec::new(),
            strip: Vec::new(),
        };
        assert!(
            written(&ex, &fixed).contains("\r\nHost: v2.internal\r\nAuthorization: Bearer x\r\n")
        );
    }

    #[test]
    fn an_empty_post_still_says_its_length() {
        let ex = exchange("POST", "/p", &[("Host", "h"), ("Content-Length", "0")], b"");
        assert!(written(&ex, &shadow_host()).contains("\r\nContent-Length: 0\r\n"));
        let get = exchange("GET", "/g", &[("Host", "h")], b"");
        assert!(!written(&get, &shadow_host()).contains("Content-Length"));
    }
}
