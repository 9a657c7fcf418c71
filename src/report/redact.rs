//! Redaction of credentials in what shadowtap writes (DESIGN.md "Redaction"; RELIABILITY.md S02):
//! credential headers, token-like headers, and query parameter values whose names look like
//! `token|key|password|secret|sig`.

use std::borrow::Cow;

/// What replaces a redacted value.
pub const REDACTED: &str = "REDACTED";

/// Whether a header's value must not be written: credentials and token-like names.
pub fn is_sensitive_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
    ];
    let lower = name.to_ascii_lowercase();
    EXACT.contains(&lower.as_str())
        || lower.ends_with("-token")
        || lower.ends_with("-secret")
        || lower.ends_with("-key")
}

/// Whether a query parameter name looks like it carries a credential.
fn is_sensitive_param(name: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[b"token", b"key", b"password", b"secret", b"sig"];
    let lower = name.to_ascii_lowercase();
    WORDS
        .iter()
        .any(|w| lower.windows(w.len()).any(|win| win == *w))
}

/// The request-target with the values of sensitive query parameters replaced by `REDACTED`.
/// Borrowed unchanged when there is nothing to redact.
pub fn redact_target(target: &[u8]) -> Cow<'_, [u8]> {
    let Some(q) = target.iter().position(|&b| b == b'?') else {
        return Cow::Borrowed(target);
    };
    let (path, query) = target.split_at(q + 1);
    let (query, fragment) = match query.iter().position(|&b| b == b'#') {
        Some(h) => query.split_at(h),
        None => (query, &b""[..]),
    };
    let mut changed = false;
    let mut out = Vec::with_capacity(target.len());
    out.extend_from_slice(path);
    for (i, pair) in query.split(|&b| b == b'&').enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        match pair.iter().position(|&b| b == b'=') {
            Some(eq) if is_sensitive_param(&pair[..eq]) && eq + 1 < pair.len() => {
                out.extend_from_slice(&pair[..=eq]);
                out.extend_from_slice(REDACTED.as_bytes());
                changed = true;
            }
            _ => out.extend_from_slice(pair),
        }
    }
    out.extend_from_slice(fragment);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_named_like_credentials_are_redacted() {
        let t = redact_target(b"/a?user=bob&api_key=abc&Token=x&sig=&page=2#frag");
        assert_eq!(
            &*t,
            &b"/a?user=bob&api_key=REDACTED&Token=REDACTED&sig=&page=2#frag"[..]
        );
    }

    #[test]
    fn target_without_credentials_is_borrowed_unchanged() {
        let t = redact_target(b"/search?q=shoes&page=2");
        assert!(matches!(t, Cow::Borrowed(_)));
    }

    #[test]
    fn credential_headers_are_sensitive() {
        for h in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "X-Api-Key",
            "X-Session-Token",
        ] {
            assert!(is_sensitive_header(h), "{h}");
        }
        for h in ["Host", "Accept", "Content-Length"] {
            assert!(!is_sensitive_header(h), "{h}");
        }
    }
}
