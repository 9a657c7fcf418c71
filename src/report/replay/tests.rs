//! The replay report: the text against its golden file, the JSON read back as written.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::*;
use crate::replay::client::{Answer, Failure};
use crate::replay::select::Skip;
use crate::replay::stats::{Side, Stats};
use crate::report::saved::{encode as serialized, histogram as histogram_from};

#[test]
fn a_saved_histogram_merges_with_larger_latencies_than_it_holds() {
    // Histograms grow to the largest value recorded, and are saved at that size: one
    // read back must still take a merge of values beyond it.
    let mut small = crate::replay::stats::histogram();
    small.record(100).unwrap();
    let mut saved = histogram_from(&serialized(&small)).unwrap();
    let mut large = crate::replay::stats::histogram();
    large.record(3_000_000_000).unwrap();
    saved.add(&large).unwrap();
    assert_eq!(saved.len(), 2);
    assert!(saved.max() >= 3_000_000_000 && saved.max() < 3_004_000_000);
}

/// A run with every part of the report in it, from fixed numbers.
fn sample() -> Stats {
    let mut s = Stats::default();
    let ok = |status, ms| {
        Ok(Answer {
            status,
            ttfb: Duration::from_millis(ms),
            total: Duration::from_millis(ms + 1),
            body_len: 10,
            body_cut: false,
        })
    };
    for i in 0..100u64 {
        let prod = Some((200, 1000 + 10 * i as i64, Some(1500 + 10 * i as i64)));
        let shadow = if i % 10 == 0 {
            ok(500, 3)
        } else {
            ok(200, 1 + i / 20)
        };
        s.replayed("GET /api/users/{id}", prod, shadow, Duration::from_secs(5));
    }
    s.replayed(
        "GET /api/cart",
        Some((200, 800, Some(900))),
        Err(Failure::Timeout),
        Duration::from_secs(5),
    );
    s.replayed(
        "GET /api/cart",
        None,
        Err(Failure::Reset),
        Duration::from_secs(5),
    );
    s.skip(Skip::Method);
    s.skip(Skip::Gap);
    s.late(Duration::from_micros(300));
    s
}

#[test]
fn text_report_matches_its_golden_file() {
    let text = text(
        &report(&sample()),
        "shadowtap replay  sample.pcap -> http://shadow:8080",
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/report/golden/replay.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(
        text,
        std::fs::read_to_string(path).unwrap(),
        "run with UPDATE_GOLDEN=1 to accept a change"
    );
}

#[test]
fn requests_cut_at_shutdown_are_listed_but_not_in_the_error_share() {
    let mut s = Stats::default();
    s.replayed(
        "GET /a",
        None,
        Err(Failure::Timeout),
        Duration::from_secs(5),
    );
    for _ in 0..3 {
        s.replayed(
            "GET /a",
            None,
            Err(Failure::Shutdown),
            Duration::from_secs(5),
        );
    }
    let text = text(&report(&s), "t");
    let row = text
        .lines()
        .find(|l| l.starts_with("transport errors"))
        .unwrap_or_else(|| panic!("no transport errors row in\n{text}"));
    assert!(row.contains("25.00%"), "{row}");
    assert!(row.contains("shutdown 3, not counted"), "{row}");
    let json: serde_json::Value = serde_json::from_str(&to_json(&report(&s)).unwrap()).unwrap();
    assert_eq!(json["shadow"]["error_rate"], 0.25);
    assert_eq!(json["shadow"]["errors"]["shutdown"], 3);
}

#[test]
fn json_round_trips_through_parse() {
    let first = to_json(&report(&sample())).unwrap();
    let back = stats(&parse(first.as_bytes()).unwrap()).unwrap();
    assert_eq!(to_json(&report(&back)).unwrap(), first);
}

#[test]
fn a_merge_is_written_the_same_whatever_the_order_of_its_parts() {
    // Grown by `add`, a histogram's range depends on which part came first.
    let part = |us: &[u64]| {
        let mut h = crate::replay::stats::histogram();
        for &v in us {
            h.record(v).unwrap();
        }
        h
    };
    let (a, b) = (part(&[6031, 40]), part(&[6475, 7]));
    let (mut ab, mut ba) = (
        crate::replay::stats::histogram(),
        crate::replay::stats::histogram(),
    );
    ab.add(&a).unwrap();
    ab.add(&b).unwrap();
    ba.add(&b).unwrap();
    ba.add(&a).unwrap();
    assert_eq!(serialized(&ab), serialized(&ba));
}

/// Routes in the property below: past the cap, so some go to `other`.
const ROUTES: usize = crate::replay::stats::MAX_ROUTES + 150;

/// One replayed request of the property below: (part, outcome, latency in µs).
type Event = (usize, u8, u64);

/// Adds the `i`-th event: route `i % ROUTES`, so every route is seen and some twice.
fn record(s: &mut Stats, i: usize, (_, outcome, us): Event) {
    let us = us as i64;
    let production = (outcome != 3).then_some((200, us, Some(us + 1)));
    let shadow = match outcome {
        0 | 3 => Ok(200),
        1 => Ok(500),
        _ => Err(Failure::Timeout),
    }
    .map(|status| Answer {
        status,
        ttfb: Duration::from_micros(us as u64 / 2),
        total: Duration::from_micros(us as u64),
        body_len: 0,
        body_cut: false,
    });
    let route = format!("GET /r{}x", i % ROUTES);
    s.replayed(&route, production, shadow, Duration::from_millis(5));
    s.late(Duration::from_micros(us as u64 % 97));
}

type SideDigest = (
    u64,
    [u64; 6],
    Vec<(&'static str, u64)>,
    u64,
    Histogram<u64>,
    Histogram<u64>,
);

fn side_digest(s: &Side) -> SideDigest {
    let errors = s.errors.iter().map(|(k, n)| (k.name(), n)).collect();
    let (ttfb, total) = (s.ttfb.clone(), s.total.clone());
    (s.requests, s.status, errors, s.truncated, ttfb, total)
}

type Digest = (
    u64,
    u64,
    Vec<((&'static str, &'static str), u64)>,
    SideDigest,
    SideDigest,
    u64,
    Vec<((String, u16, u16), u64)>,
    Vec<(String, SideDigest, SideDigest, u64)>,
    Option<Histogram<u64>>,
);

/// Everything a report holds, compared by counts (histograms too: their `==` compares
/// counts, not the range they grew to; the writing of ranges is tested above). Cheaper
/// than comparing `json`, which compresses every histogram.
fn digest(s: &Stats) -> Digest {
    let routes = s.routes.iter();
    (
        s.seen,
        s.replayed,
        s.skipped
            .iter()
            .map(|(why, n)| ((why.category(), why.name()), n))
            .collect(),
        side_digest(&s.production),
        side_digest(&s.shadow),
        s.mismatch,
        s.mismatches.iter().map(|(k, n)| (k.clone(), *n)).collect(),
        routes
            .map(|(name, r)| {
                let (p, sh) = (side_digest(&r.production), side_digest(&r.shadow));
                (name.to_string(), p, sh, r.mismatch)
            })
            .collect(),
        s.lateness.clone(),
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

    /// Past the route cap, neither the order requests arrive in, nor how they are split
    /// into parts (shards, nodes), nor the order and grouping of merges changes the report:
    /// each equals the report of all requests in one table.
    #[test]
    fn the_report_past_the_route_cap_is_the_same_in_any_order_and_grouping(
        events in proptest::collection::vec((0usize..3, 0u8..4, 1u64..20_000), ROUTES..ROUTES + 300),
        order in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Just((0..ROUTES + 300).collect::<Vec<usize>>())),
    ) {
        let mut whole = Stats::default();
        for (i, &e) in events.iter().enumerate() {
            record(&mut whole, i, e);
        }
        let mut shuffled = Stats::default();
        for &i in order.iter().filter(|&&i| i < events.len()) {
            record(&mut shuffled, i, events[i]);
        }
        let mut parts = [Stats::default(), Stats::default(), Stats::default()];
        for &i in order.iter().filter(|&&i| i < events.len()) {
            record(&mut parts[events[i].0], i, events[i]);
        }
        let [a, b, c] = &parts;
        let mut left = Stats::default();
        for p in [a, b, c] {
            left.merge(p);
        }
        let mut cb = Stats::default();
        cb.merge(c);
        cb.merge(b);
        let mut right = Stats::default();
        right.merge(&cb);
        right.merge(a);
        let expected = digest(&whole);
        proptest::prop_assert_eq!(expected.7.len(), ROUTES.min(1000) + 1);
        proptest::prop_assert_eq!(&digest(&shuffled), &expected);
        proptest::prop_assert_eq!(&digest(&left), &expected);
        proptest::prop_assert_eq!(&digest(&right), &expected);
    }
}

/// `docs/report.schema.json` is generated from the report's types; a change to them must be
/// committed with the schema (`UPDATE_GOLDEN=1` writes it).
#[test]
fn the_published_schema_is_the_one_the_types_generate() {
    let generated = serde_json::to_string_pretty(&crate::report::model::schema()).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    assert_eq!(
        generated,
        std::fs::read_to_string(path).unwrap(),
        "run with UPDATE_GOLDEN=1 to accept a change"
    );
}

#[test]
fn a_run_that_dropped_most_of_its_requests_says_it_is_not_representative() {
    let mut s = sample();
    let r = report(&s);
    assert!(r.representative);
    assert!(!text(&r, "t").contains("NOT REPRESENTATIVE"));
    // 102 replayed, 20 dropped: 84% of the selected requests.
    s.dropped_many(crate::replay::stats::Dropped::QueueFull, 20);
    let r = report(&s);
    assert!(!r.representative);
    let text = text(&r, "t");
    assert!(
        text.contains("NOT REPRESENTATIVE: 102 of 122 selected requests replayed"),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with("NOT REPRESENTATIVE)"),
        "{text}"
    );
}

#[test]
fn the_timeline_round_trips_and_a_hostile_one_is_refused() {
    let mut s = Stats::default();
    for i in 0..600i64 {
        let a = Answer {
            status: 200,
            ttfb: Duration::from_micros(100 + i as u64),
            total: Duration::from_micros(200 + i as u64),
            body_len: 0,
            body_cut: false,
        };
        // 600 requests over 300 s: 1 s buckets would be 300, past the bound.
        let ns = 1_700_000_000_000_000_000 + i * 500_000_000;
        s.replayed_at(
            ns,
            "GET /a",
            Some((200, 90, None)),
            Ok(a),
            Duration::from_secs(5),
        );
    }
    let first = to_json(&report(&s)).unwrap();
    let parsed = parse(first.as_bytes()).unwrap();
    let t = parsed.timeline.as_ref().unwrap();
    assert_eq!(t.bucket_s, 4, "300 s in at most 120 buckets: 4 s each");
    let back = stats(&parsed).unwrap();
    assert_eq!(to_json(&report(&back)).unwrap(), first);
    // A width that is not a power of two seconds is refused, as is a stray start.
    let mut bad: serde_json::Value = serde_json::from_str(&first).unwrap();
    bad["timeline"]["bucket_s"] = serde_json::json!(3);
    let bad = serde_json::to_vec(&bad).unwrap();
    assert!(stats(&parse(&bad).unwrap()).is_err());
}
