//! Redaction of credentials in what shadowtap writes (DESIGN.md "Redaction"; RELIABILITY.md S02):
//! credential headers, token-like headers, and query parameter values whose names look like
//! `token|key|password|secret|sig`, and the userinfo (`user:password@`) of an absolute-form
//! request-target (RFC 9112 section 3.2.2; RFC 3986 section 3.2.1 deprecates it for this reason).

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

/// Where the userinfo of an absolute-form target lies (`scheme://USERINFO@host`), if any.
fn userinfo(target: &[u8]) -> Option<std::ops::Range<usize>> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme || !target[colon..].starts_with(b"://") {
        return None;
    }
    let start = colon + 3;
    let rest = &target[start..];
    let authority = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    // The last `@` ends the userinfo: a password may contain an unescaped `@`.
    let at = rest[..authority].iter().rposition(|&b| b == b'@')?;
    Some(start..start + at)
}

/// The request-target with the userinfo of an absolute-form target and the values of
/// sensitive query parameters replaced by `REDACTED`. Borrowed unchanged when there is
/// nothing to redact.
pub fn redact_target(target: &[u8]) -> Cow<'_, [u8]> {
    let Some(range) = userinfo(target) else {
        return redact_query(target);
    };
    let mut out = Vec::with_capacity(target.len());
    out.extend_from_slice(&target[..range.start]);
    out.extend_from_slice(REDACTED.as_bytes());
    out.extend_from_slice(&redact_query(&target[range.end..]));
    Cow::Owned(out)
}

/// The target with the values of sensitive query parameters replaced by `REDACTED`.
fn redact_query(target: &[u8]) -> Cow<'_, [u8]> {
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
    fn userinfo_of_an_absolute_form_target_is_redacted() {
        let t = redact_target(b"http://user:PASS@host:8080/a?token=x");
        assert_eq!(&*t, &b"http://REDACTED@host:8080/a?token=REDACTED"[..]);
        // A password holding an `@`, a user alone (it may be a token), other schemes.
        assert_eq!(
            &*redact_target(b"https://u:p@ss@h/"),
            &b"https://REDACTED@h/"[..]
        );
        assert_eq!(&*redact_target(b"http://tok@h"), &b"http://REDACTED@h"[..]);
        assert_eq!(
            &*redact_target(b"ws+x://a:b@h/"),
            &b"ws+x://REDACTED@h/"[..]
        );
    }

    #[test]
    fn an_at_sign_outside_the_authority_is_not_userinfo() {
        for t in [
            &b"http://host/path@x"[..],
            b"http://host?q=a@b",
            b"/mail/a@b.c",
            b"host:443",
            b"1http://a:b@h/",
        ] {
            assert!(matches!(redact_target(t), Cow::Borrowed(_)), "{t:?}");
        }
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
