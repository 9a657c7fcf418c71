//! Which captured exchanges are replayed, and the reason for each one that is not
//! (DESIGN.md "Selection"; the accounting categories `incomplete` and `filtered`).

use std::time::Instant;

use regex::bytes::Regex;

use crate::http1::{Exchange, Flags, Lost};

/// Methods replayed when the user allows nothing else: the ones without side effects. Methods
/// are case-sensitive (RFC 9110 section 9.1): `get` is not `GET`, and is not replayed.
pub const SAFE_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// Why a request seen in the capture was not replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// `incomplete`: the request is not whole in the capture.
    Gap,
    Truncated,
    Aborted,
    CaptureEnded,
    /// `filtered`: whole, but not replayed by choice or rule.
    Method,
    Path,
    Sample,
    Connect,
    Upgrade,
    AmbiguousFraming,
    BodyTooLarge,
    InvalidRequest,
    Memcap,
    OverlapConflict,
    ProductionTarget,
}

impl Skip {
    /// Every reason, each at its [`Skip::index`].
    pub const ALL: [Skip; 15] = [
        Skip::Gap,
        Skip::Truncated,
        Skip::Aborted,
        Skip::CaptureEnded,
        Skip::Method,
        Skip::Path,
        Skip::Sample,
        Skip::Connect,
        Skip::Upgrade,
        Skip::AmbiguousFraming,
        Skip::BodyTooLarge,
        Skip::InvalidRequest,
        Skip::Memcap,
        Skip::OverlapConflict,
        Skip::ProductionTarget,
    ];

    /// A dense index, for tables of counts by reason.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Looks a reason up by its category and the name the report writes.
    pub fn from_name(category: &str, name: &str) -> Option<Skip> {
        Skip::ALL
            .into_iter()
            .find(|s| s.category() == category && s.name() == name)
    }

    /// The accounting category (DESIGN.md): `incomplete` or `filtered`.
    pub fn category(self) -> &'static str {
        match self {
            Skip::Gap | Skip::Truncated | Skip::Aborted | Skip::CaptureEnded => "incomplete",
            _ => "filtered",
        }
    }

    /// The reason as the report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Skip::Gap => "gap",
            Skip::Truncated => "truncated",
            Skip::Aborted => "aborted",
            Skip::CaptureEnded => "capture_ended",
            Skip::Method => "method",
            Skip::Path => "path",
            Skip::Sample => "sample",
            Skip::Connect => "connect",
            Skip::Upgrade => "upgrade",
            Skip::AmbiguousFraming => "ambiguous_framing",
            Skip::BodyTooLarge => "body_too_large",
            Skip::InvalidRequest => "invalid_request",
            Skip::Memcap => "memcap",
            Skip::OverlapConflict => "overlap_conflict",
            Skip::ProductionTarget => "production_target",
        }
    }
}

impl From<Lost> for Skip {
    /// Requests the HTTP tracker saw but could not emit, in the same accounting.
    fn from(why: Lost) -> Skip {
        match why {
            Lost::Gap => Skip::Gap,
            Lost::Truncated => Skip::Truncated,
            Lost::Aborted => Skip::Aborted,
            Lost::CaptureEnded => Skip::CaptureEnded,
            Lost::InvalidRequest => Skip::InvalidRequest,
            Lost::Memcap => Skip::Memcap,
        }
    }
}

/// The user's selection rules.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Extra methods allowed besides [`SAFE_METHODS`], compared exactly.
    pub allow_methods: Vec<String>,
    /// Every method is allowed.
    pub allow_writes: bool,
    pub include_path: Option<Regex>,
    pub exclude_path: Option<Regex>,
    /// Percentage of the selected requests replayed (`--sample`; drawn by
    /// [`super::sample::Sampler`], after every rule); 100 keeps all.
    pub sample_percent: f64,
    /// What the sample is drawn over (`--sample-by`).
    pub sample_by: super::sample::SampleBy,
    /// `--seed`: which requests a sample takes.
    pub seed: u64,
}

impl Selection {
    /// The sample this selection draws, with no request looked at yet.
    pub fn sampler(&self) -> super::sample::Sampler {
        super::sample::Sampler::new(self.sample_percent, self.sample_by.clone(), self.seed)
    }
}

impl Selection {
    /// Whether `ex` is replayed; if not, why. Checked in the order of the accounting: what
    /// the capture lost first, then what is never replayed, then the user's choices. The
    /// sample (`--sample`) is drawn after these and the production-target rule, by a
    /// [`super::sample::Sampler`].
    pub fn check(&self, ex: &Exchange) -> Result<(), Skip> {
        let f = ex.flags;
        if f.contains(Flags::MEMCAP) {
            // Given up by the tracker itself (its head or body not held), whole or not.
            return Err(Skip::Memcap);
        }
        if f.contains(Flags::GAP) && !ex.request.complete {
            return Err(Skip::Gap);
        }
        if !ex.request.complete {
            return Err(Skip::Truncated);
        }
        if f.contains(Flags::INVALID) || f.contains(Flags::HTTP09) {
            return Err(Skip::InvalidRequest);
        }
        if f.contains(Flags::OVERLAP_CONFLICT) {
            return Err(Skip::OverlapConflict);
        }
        if ex.request.method == "CONNECT" || f.contains(Flags::CONNECT) {
            return Err(Skip::Connect);
        }
        if f.contains(Flags::UPGRADE) {
            return Err(Skip::Upgrade);
        }
        if f.contains(Flags::AMBIGUOUS_FRAMING) {
            return Err(Skip::AmbiguousFraming);
        }
        if f.contains(Flags::BODY_TOO_LARGE) || !ex.request.body_kept {
            return Err(Skip::BodyTooLarge);
        }
        let method = ex.request.method.as_str();
        let allowed = self.allow_writes
            || SAFE_METHODS.contains(&method)
            || self.allow_methods.iter().any(|m| m == method);
        if !allowed {
            return Err(Skip::Method);
        }
        let path = path_of(&ex.request.target);
        if self
            .include_path
            .as_ref()
            .is_some_and(|re| !re.is_match(path))
            || self
                .exclude_path
                .as_ref()
                .is_some_and(|re| re.is_match(path))
        {
            return Err(Skip::Path);
        }
        Ok(())
    }
}

/// The path part of a request-target: absolute-form's scheme and authority removed, so
/// the userinfo (`user:password@`) of `HTTP://user:PASS@host/a` never reaches a route name,
/// a path filter or the request sent to the shadow. A scheme is matched in any case (RFC
/// 3986 section 3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` then `://`), and the
/// authority ends at the first `/`, `?` or `#` (section 3.2). An absolute-form target with
/// an empty path becomes `/` (its query is dropped). Origin-form, `*` and authority-form
/// are returned unchanged.
pub fn path_of(target: &[u8]) -> &[u8] {
    let Some(rest) = after_scheme(target) else {
        return target;
    };
    match rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')) {
        Some(i) if rest[i] == b'/' => &rest[i..],
        _ => b"/",
    }
}

/// What follows `scheme://` when `target` starts with a scheme, if it does.
fn after_scheme(target: &[u8]) -> Option<&[u8]> {
    // A scheme starts with a letter: origin-form (`/...`, nearly every request) has none,
    // and needs no search for a colon.
    if !target.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let colon = memchr::memchr(b':', target)?;
    let scheme = &target[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if valid {
        target[colon..].strip_prefix(b"://")
    } else {
        None
    }
}

/// `--rate` for live traffic, which cannot wait: a token bucket refilled at `rate` per
/// second that holds one second's worth (at least one), so bursts up to that pass and the
/// long-run rate stays under the cap. A request that finds it empty is dropped
/// (`dropped/rate_limit`).
#[derive(Clone, Debug)]
pub struct RateLimit {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`; `rate` is positive (the settings check it).
    pub fn new(rate: f64, now: Instant) -> RateLimit {
        let capacity = rate.max(1.0);
        RateLimit {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Whether a request arriving at `now` may go (and takes a token if so).
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skip_reason_is_listed_once_at_its_index() {
        for (i, &why) in Skip::ALL.iter().enumerate() {
            assert_eq!(why.index(), i, "{}", why.name());
        }
        let names: std::collections::BTreeSet<&str> = Skip::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Skip::ALL.len());
    }

    fn ex(method: &str, target: &str, flags: Flags, complete: bool) -> Exchange {
        let mut e = super::super::test_exchange(method, target, &[], b"");
        e.request.complete = complete;
        e.flags = flags;
        e
    }

    fn all() -> Selection {
        Selection {
            sample_percent: 100.0,
            ..Selection::default()
        }
    }

    #[test]
    fn what_is_never_replayed_and_why() {
        let s = Selection {
            allow_writes: true,
            ..all()
        };
        assert_eq!(s.check(&ex("GET", "/", Flags::GAP, false)), Err(Skip::Gap));
        assert_eq!(
            s.check(&ex("GET", "/", Flags::TRUNCATED, false)),
            Err(Skip::Truncated)
        );
        assert_eq!(
            s.check(&ex("CONNECT", "a:443", Flags::default(), true)),
            Err(Skip::Connect)
        );
        assert_eq!(
            s.check(&ex("GET", "/ws", Flags::UPGRADE, true)),
            Err(Skip::Upgrade)
        );
        assert_eq!(
            s.check(&ex("POST", "/", Flags::AMBIGUOUS_FRAMING, true)),
            Err(Skip::AmbiguousFraming)
        );
        assert_eq!(
            s.check(&ex("POST", "/", Flags::BODY_TOO_LARGE, true)),
            Err(Skip::BodyTooLarge)
        );
        assert_eq!(Skip::Gap.category(), "incomplete");
        assert_eq!(Skip::Method.category(), "filtered");
    }

    #[test]
    fn safe_methods_by_default_and_more_on_request() {
        assert_eq!(all().check(&ex("GET", "/", Flags::default(), true)), Ok(()));
        assert_eq!(
            all().check(&ex("OPTIONS", "*", Flags::default(), true)),
            Ok(())
        );
        assert_eq!(
            all().check(&ex("DELETE", "/x", Flags::default(), true)),
            Err(Skip::Method)
        );
        let s = Selection {
            allow_methods: vec!["DELETE".into()],
            ..all()
        };
        assert_eq!(s.check(&ex("DELETE", "/x", Flags::default(), true)), Ok(()));
    }

    #[test]
    fn methods_are_compared_exactly() {
        // RFC 9110 section 9.1: `get` is an extension method, not GET.
        for method in ["get", "Get", "head", "options"] {
            assert_eq!(
                all().check(&ex(method, "/x", Flags::default(), true)),
                Err(Skip::Method),
                "{method}"
            );
        }
        let s = Selection {
            allow_methods: vec!["DELETE".into(), "purge".into()],
            ..all()
        };
        assert_eq!(
            s.check(&ex("delete", "/x", Flags::default(), true)),
            Err(Skip::Method)
        );
        assert_eq!(s.check(&ex("purge", "/x", Flags::default(), true)), Ok(()));
        assert_eq!(
            s.check(&ex("PURGE", "/x", Flags::default(), true)),
            Err(Skip::Method)
        );
        // Only CONNECT is CONNECT; `connect` is refused as a method like any other.
        let writes = Selection {
            allow_writes: true,
            ..all()
        };
        assert_eq!(
            writes.check(&ex("CONNECT", "a:443", Flags::default(), true)),
            Err(Skip::Connect)
        );
        assert_eq!(
            all().check(&ex("connect", "a:443", Flags::default(), true)),
            Err(Skip::Method)
        );
    }

    #[test]
    fn requests_lost_in_the_tracker_and_memcap_have_their_reasons() {
        assert_eq!(Skip::from(Lost::CaptureEnded).name(), "capture_ended");
        assert_eq!(Skip::from(Lost::CaptureEnded).category(), "incomplete");
        assert_eq!(Skip::from(Lost::Aborted).category(), "incomplete");
        assert_eq!(Skip::from(Lost::InvalidRequest).name(), "invalid_request");
        assert_eq!(Skip::from(Lost::InvalidRequest).category(), "filtered");
        assert_eq!(Skip::from(Lost::Memcap).name(), "memcap");
        assert_eq!(
            all().check(&ex("GET", "/", Flags::INVALID, true)),
            Err(Skip::InvalidRequest)
        );
        let mut big = ex("GET", "/", Flags::MEMCAP, true);
        big.request.body_kept = false;
        assert_eq!(all().check(&big), Err(Skip::Memcap));
    }

    #[test]
    fn paths_are_matched_without_scheme_and_authority() {
        let s = Selection {
            include_path: Some(Regex::new("^/api/").unwrap()),
            ..all()
        };
        assert_eq!(
            s.check(&ex("GET", "http://prod/api/x", Flags::default(), true)),
            Ok(())
        );
        assert_eq!(
            s.check(&ex("GET", "/static/x", Flags::default(), true)),
            Err(Skip::Path)
        );
    }

    #[test]
    fn absolute_form_loses_scheme_and_authority_in_any_case() {
        assert_eq!(path_of(b"HTTP://host/a?b=1"), b"/a?b=1");
        assert_eq!(path_of(b"Https://host:8443/a"), b"/a");
        assert_eq!(path_of(b"http://host"), b"/");
        assert_eq!(path_of(b"svn+ssh.x-y://host/a"), b"/a");
    }

    #[test]
    fn userinfo_never_stays_in_the_path() {
        for t in [
            &b"HTTP://user:PASS@host/a"[..],
            b"http://user:PASS@host/a",
            b"hTtPs://user:PASS@host:443/a",
        ] {
            assert_eq!(path_of(t), b"/a", "{}", String::from_utf8_lossy(t));
        }
        assert_eq!(path_of(b"HTTP://user:PASS@host?q=1"), b"/");
        assert_eq!(path_of(b"HTTP://user:PASS@host"), b"/");
    }

    #[test]
    fn other_forms_are_left_as_they_are() {
        assert_eq!(path_of(b"/go?to=http://x/y"), b"/go?to=http://x/y");
        assert_eq!(path_of(b"/a://b"), b"/a://b");
        assert_eq!(path_of(b"*"), b"*");
        assert_eq!(path_of(b"host:443"), b"host:443");
        assert_eq!(path_of(b"1http://host/a"), b"1http://host/a");
    }

    #[test]
    fn the_rate_limit_passes_a_second_of_burst_then_the_rate() {
        use std::time::Duration;
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut limit = RateLimit::new(10.0, t0);
        // A burst of 15 at once: the bucket's 10 pass.
        let passed = (0..15).filter(|_| limit.admit(t0)).count();
        assert_eq!(passed, 10);
        // Then one per 100 ms.
        assert!(!limit.admit(at(50)));
        assert!(limit.admit(at(100)));
        assert!(!limit.admit(at(150)));
        // Idle time refills the bucket up to its capacity, never beyond.
        let passed = (0..30).filter(|_| limit.admit(at(60_000))).count();
        assert_eq!(passed, 10);
        // Under one per second, the bucket holds one request: 0.5/s is one every 2 s.
        let mut slow = RateLimit::new(0.5, t0);
        assert!(slow.admit(t0));
        assert!(!slow.admit(at(1_000)));
        assert!(slow.admit(at(2_000)));
        // A clock read out of order takes nothing back.
        assert!(!slow.admit(at(1_500)));
    }
}
