//! `--sample PERCENT`: which of the selected requests are replayed (DESIGN.md "Selection").
//!
//! By default every route gets its share: the requests of one route are taken
//! systematically, one every 100 / PERCENT, from an offset that the route's name and
//! `--seed` decide, so a route with k requests replays floor or ceil of k x PERCENT / 100,
//! whatever its traffic and however the routes interleave. Hashing the request instead (as
//! before) kept or dropped a route with one URL whole: `/api/cart` vanished from a 50%
//! sample. `--sample-by header:NAME|client|connection` hashes that key with the seed instead,
//! so a session, a client or a connection is all in or all out.

use std::collections::HashMap;

use crate::http1::Exchange;

use super::select::path_of;
use super::stats::route_into;

/// Routes counted one by one; past this many, the others share one count (they still get
/// their share together, not each).
pub const MAX_ROUTES: usize = 65_536;

/// The percentage's resolution: hundredths of a percent.
const SCALE: u64 = 10_000;

/// What a sample is drawn over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SampleBy {
    /// Systematically within each route (the default).
    #[default]
    Route,
    /// A stable hash of this request header's value (absent: the empty value).
    Header(String),
    /// A stable hash of the client's address.
    Client,
    /// A stable hash of the captured connection.
    Connection,
}

impl SampleBy {
    /// `header:NAME`, `client`, `connection` (or `route`).
    pub fn parse(text: &str) -> Option<SampleBy> {
        match text {
            "route" => Some(SampleBy::Route),
            "client" => Some(SampleBy::Client),
            "connection" => Some(SampleBy::Connection),
            _ => {
                let name = text.strip_prefix("header:")?.trim();
                (!name.is_empty()).then(|| SampleBy::Header(name.to_string()))
            }
        }
    }
}

/// The sample's state: how many requests of each route it has looked at.
#[derive(Debug)]
pub struct Sampler {
    /// Hundredths of a percent kept, 0 to [`SCALE`].
    share: u64,
    by: SampleBy,
    seed: u64,
    /// Requests looked at, per route (at most [`MAX_ROUTES`]).
    seen: HashMap<String, u64>,
    /// Requests looked at of the routes past [`MAX_ROUTES`].
    overflow: u64,
    name: String,
}

impl Sampler {
    pub fn new(percent: f64, by: SampleBy, seed: u64) -> Sampler {
        Sampler {
            share: (percent.clamp(0.0, 100.0) * 100.0).round() as u64,
            by,
            seed,
            seen: HashMap::new(),
            overflow: 0,
            name: String::new(),
        }
    }

    /// Whether `ex` is in the sample.
    pub fn keep(&mut self, ex: &Exchange) -> bool {
        if self.share >= SCALE {
            return true;
        }
        match &self.by {
            SampleBy::Route => self.systematic(ex),
            SampleBy::Header(name) => {
                let value = ex
                    .request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map_or(&b""[..], |h| h.value);
                self.hashed(value)
            }
            SampleBy::Client => self.hashed(ex.client.ip().to_string().as_bytes()),
            SampleBy::Connection => self.hashed(format!("{}-{}", ex.client, ex.server).as_bytes()),
        }
    }

    /// In when the key's hash falls in the kept share: the same key is always in or out.
    fn hashed(&self, key: &[u8]) -> bool {
        hash(self.seed, key) % SCALE < self.share
    }

    /// The n-th request of its route (from 0) is in when `n x share + offset` crosses a
    /// multiple of [`SCALE`] on the way to `(n + 1) x share + offset`: after k requests,
    /// floor((k x share + offset) / SCALE) are in, floor or ceil of k x share / SCALE.
    fn systematic(&mut self, ex: &Exchange) -> bool {
        route_into(
            &mut self.name,
            &ex.request.method,
            path_of(&ex.request.target),
        );
        let offset = hash(self.seed, self.name.as_bytes()) % SCALE;
        let known = self.seen.contains_key(self.name.as_str());
        let n = if known || self.seen.len() < MAX_ROUTES {
            self.seen.entry(self.name.clone()).or_default()
        } else {
            &mut self.overflow
        };
        let before = (*n * self.share + offset) / SCALE;
        *n += 1;
        (*n * self.share + offset) / SCALE > before
    }
}

/// FNV-1a of the seed's bytes and `key`.
fn hash(seed: u64, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in seed.to_le_bytes().iter().chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly; fold the high ones in before taking a remainder.
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange_for(method: &str, target: &str, client: &str) -> Exchange {
        let mut ex = crate::replay::test_exchange(method, target, &[], b"");
        ex.client = client.parse().unwrap();
        ex
    }

    fn kept(s: &mut Sampler, method: &str, target: &str, n: usize) -> usize {
        (0..n)
            .filter(|_| s.keep(&exchange_for(method, target, "10.0.0.1:40000")))
            .count()
    }

    #[test]
    fn every_route_gets_its_share_floor_or_ceil() {
        for percent in [1.0, 10.0, 33.33, 50.0, 99.0] {
            for seed in 0..5 {
                let mut s = Sampler::new(percent, SampleBy::Route, seed);
                for (route, k) in [("/api/cart", 1usize), ("/b", 7), ("/c", 100), ("/d", 1234)] {
                    let got = kept(&mut s, "GET", route, k) as f64;
                    let exact = k as f64 * percent / 100.0;
                    assert!(
                        got == exact.floor() || got == exact.ceil(),
                        "{percent}% of {k} on {route} (seed {seed}): {got}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_route_with_one_url_is_sampled_not_kept_or_dropped_whole() {
        // Hashing the request kept or dropped all 100 requests of /api/cart together.
        let mut s = Sampler::new(50.0, SampleBy::Route, 0);
        assert_eq!(kept(&mut s, "GET", "/api/cart", 100), 50);
    }

    #[test]
    fn ids_in_the_path_are_one_route() {
        let mut s = Sampler::new(50.0, SampleBy::Route, 3);
        let got = (0..100)
            .filter(|i| s.keep(&exchange_for("GET", &format!("/u/{i}"), "10.0.0.1:1")))
            .count();
        assert_eq!(got, 50);
    }

    #[test]
    fn a_hashed_key_is_all_in_or_all_out() {
        let mut s = Sampler::new(50.0, SampleBy::Client, 9);
        let mut ins = 0;
        for client in 0..200 {
            let addr = format!("10.0.{}.{}:40000", client / 250, client % 250 + 1);
            let decisions: Vec<bool> = (0..5)
                .map(|i| s.keep(&exchange_for("GET", &format!("/x{i}"), &addr)))
                .collect();
            assert!(decisions.iter().all(|&d| d == decisions[0]), "{addr}");
            ins += usize::from(decisions[0]);
        }
        // About half the clients (a hash, not a count).
        assert!((60..140).contains(&ins), "{ins} of 200 clients in");
    }

    #[test]
    fn the_same_seed_takes_the_same_requests() {
        let decisions = |seed| {
            let mut s = Sampler::new(25.0, SampleBy::Route, seed);
            (0..400)
                .map(|i| {
                    s.keep(&exchange_for(
                        "GET",
                        &format!("/item/{}", i % 7),
                        "10.0.0.1:1",
                    ))
                })
                .collect::<Vec<bool>>()
        };
        assert_eq!(decisions(1), decisions(1));
        assert_ne!(decisions(1), decisions(2));
    }

    #[test]
    fn the_route_table_is_bounded() {
        let mut s = Sampler::new(50.0, SampleBy::Route, 0);
        for i in 0..MAX_ROUTES + 100 {
            s.keep(&exchange_for("GET", &format!("/r{i}x"), "10.0.0.1:1"));
        }
        assert_eq!(s.seen.len(), MAX_ROUTES);
        assert_eq!(s.overflow, 100);
    }

    #[test]
    fn sample_by_parses() {
        assert_eq!(
            SampleBy::parse("header:X-Session"),
            Some(SampleBy::Header("X-Session".into()))
        );
        assert_eq!(SampleBy::parse("client"), Some(SampleBy::Client));
        assert_eq!(SampleBy::parse("header:"), None);
        assert_eq!(SampleBy::parse("cookie"), None);
    }
}
