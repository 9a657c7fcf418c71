use super::*;

#[test]
fn routes_are_normalised() {
    assert_eq!(
        route("GET", b"/users/123/orders?x=1"),
        "GET /users/{id}/orders"
    );
    assert_eq!(
        route("GET", b"/o/550e8400-e29b-41d4-a716-446655440000"),
        "GET /o/{id}"
    );
    assert_eq!(route("GET", b"/t/a1b2c3d4e5f6a7b8c9d0"), "GET /t/{id}");
    assert_eq!(route("GET", b"/static/app.js"), "GET /static/app.js");
    assert_eq!(route("OPTIONS", b"*"), "OPTIONS *");
}

#[test]
fn a_new_histogram_is_small_and_grows_to_an_hour_at_three_digits() {
    let mut h = histogram();
    let fresh = h.distinct_values();
    assert!(fresh <= 2048, "{fresh} counters before any value");
    Side::latency(&mut h, 250);
    Side::latency(&mut h, 7_200_000_000);
    assert!(h.distinct_values() > fresh);
    assert_eq!(h.value_at_quantile(0.0), 250);
    // Clamped to an hour, recorded within 0.1%.
    let max = h.max();
    assert!((3_600_000_000..3_604_000_000).contains(&max), "{max}");
}

#[test]
fn timeouts_count_as_errors_and_enter_the_histograms() {
    let mut s = Stats::default();
    s.replayed(
        "GET /a",
        Some((200, 1000, Some(2000))),
        Err(Failure::Timeout),
        Duration::from_secs(5),
    );
    assert_eq!(s.shadow.errors.get(Failure::Timeout), 1);
    assert_eq!(s.shadow.ttfb.len(), 1);
    assert!(s.shadow.ttfb.max() >= 4_990_000);
    assert_eq!(s.shadow.error_rate(), 1.0);
    assert_eq!(s.production.error_rate(), 0.0);
    assert_eq!(s.mismatch, 0);
}

#[test]
fn requests_cut_by_the_drain_deadline_are_seen_but_not_blamed_on_the_shadow() {
    let mut s = Stats::default();
    let ok = Answer {
        status: 200,
        ttfb: Duration::from_millis(1),
        total: Duration::from_millis(2),
        body_len: 0,
        body_cut: false,
    };
    for shadow in [
        Ok(ok),
        Ok(ok),
        Err(Failure::Timeout),
        Err(Failure::Shutdown),
    ] {
        s.replayed("GET /a", None, shadow, Duration::from_secs(5));
    }
    assert_eq!(s.shadow.errors.get(Failure::Shutdown), 1);
    assert_eq!(s.shadow.blamed_errors(), 1);
    assert_eq!(s.shadow.error_rate(), 0.25);
    assert_eq!(s.routes["GET /a"].shadow.error_rate(), 0.25);
}

#[test]
fn status_mismatch_is_counted_per_route() {
    let mut s = Stats::default();
    let ans = Answer {
        status: 500,
        ttfb: Duration::from_millis(1),
        total: Duration::from_millis(2),
        body_len: 0,
        body_cut: false,
    };
    s.replayed(
        "GET /a",
        Some((200, 1000, None)),
        Ok(ans),
        Duration::from_secs(5),
    );
    assert_eq!(s.mismatch, 1);
    assert_eq!(s.routes["GET /a"].mismatch, 1);
    assert_eq!(s.shadow.status[5], 1);
    assert_eq!(s.production.total.len(), 0);
}

#[test]
fn routes_past_the_cap_go_to_other() {
    let mut s = Stats::default();
    for i in 0..MAX_ROUTES + 5 {
        s.replayed(
            &format!("GET /r{i}x"),
            None,
            Err(Failure::Connect),
            Duration::from_secs(1),
        );
    }
    assert_eq!(s.routes.len(), MAX_ROUTES + 1);
    assert_eq!(s.routes["other"].shadow.requests, 5);
}

#[test]
fn the_table_keeps_the_first_names_whatever_order_they_arrive_in() {
    let mismatch = Answer {
        status: 500,
        ttfb: Duration::from_millis(1),
        total: Duration::from_millis(2),
        body_len: 0,
        body_cut: false,
    };
    let mut backwards = Stats::default();
    // The last names first: each later one pushes the last kept route into `other`,
    // its mismatch kinds with it.
    for i in (0..MAX_ROUTES + 5).rev() {
        backwards.replayed(
            &format!("GET /r{i:04}"),
            Some((200, 10, None)),
            Ok(mismatch),
            Duration::from_secs(1),
        );
    }
    assert_eq!(backwards.routes.len(), MAX_ROUTES + 1);
    let names: Vec<&str> = backwards.routes.iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "GET /r0000");
    assert_eq!(
        names[MAX_ROUTES - 1],
        format!("GET /r{:04}", MAX_ROUTES - 1)
    );
    assert_eq!(names[MAX_ROUTES], OTHER);
    let other = &backwards.routes[OTHER];
    assert_eq!((other.shadow.requests, other.mismatch), (5, 5));
    assert_eq!(backwards.routes[OTHER].shadow.status[5], 5);
    assert_eq!(backwards.mismatches.len(), MAX_ROUTES + 1);
    assert_eq!(backwards.mismatches[&(OTHER.into(), 200, 500)], 5);
    assert!(!backwards
        .mismatches
        .contains_key(&(format!("GET /r{MAX_ROUTES:04}"), 200, 500)));
}
