use super::*;
use std::collections::BTreeMap;

/// A report with these figures (what a gate reads of it) and nothing else.
fn with(
    requests: u64,
    (p_rate, s_rate): (f64, f64),
    (p_p99, s_p99): (u64, u64),
    errors: &[(&str, u64)],
    mismatch: u64,
) -> Report {
    let mut r = crate::report::replay::report(&crate::replay::stats::Stats::default());
    let quantiles = |v| Quantiles {
        p99: Some(v),
        max: Some(v),
        ..Quantiles::default()
    };
    r.production.requests = requests;
    r.production.error_rate = p_rate;
    r.production.ttfb_us = quantiles(p_p99);
    r.shadow.requests = requests;
    r.shadow.error_rate = s_rate;
    r.shadow.ttfb_us = quantiles(s_p99);
    r.shadow.errors = Some(
        errors
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
    );
    r.mismatch.status = mismatch;
    r
}

fn report() -> Report {
    with(
        1000,
        (0.0, 0.05),
        (1000, 1300),
        &[("timeout", 2), ("reset", 1)],
        4,
    )
}

#[test]
fn conditions_cross_or_not() {
    let c = parse("shadow.error_rate>0.01, shadow.ttfb_p99>1.2*production.ttfb_p99,mismatch.status>=5,shadow.errors<3").unwrap();
    let v = evaluate(&c, &report());
    let crossed: Vec<bool> = v.iter().map(|v| v.crossed).collect();
    assert_eq!(crossed, [true, true, false, false]);
    assert_eq!(v[1].right, 1200.0);
}

#[test]
fn requests_cut_at_shutdown_are_not_shadow_errors_for_a_gate() {
    let r = with(
        1000,
        (0.0, 0.05),
        (1000, 1300),
        &[("timeout", 1), ("shutdown", 40)],
        4,
    );
    let v = evaluate(&parse("shadow.errors>1,shadow.errors>=1").unwrap(), &r);
    assert_eq!(v[0].left, 1.0, "{v:?}");
    assert!(!v[0].crossed && v[1].crossed, "{v:?}");
}

#[test]
fn numbers_take_the_unit_of_their_metric() {
    let c = parse(
        "shadow.ttfb_p99>1.2ms,shadow.ttfb_p99<1.5s,shadow.error_rate>=5%,shadow.ttfb_p99>1299us",
    )
    .unwrap();
    let v = evaluate(&c, &report());
    let rights: Vec<f64> = v.iter().map(|v| v.right).collect();
    assert_eq!(rights, [1200.0, 1_500_000.0, 0.05, 1299.0]);
    let crossed: Vec<bool> = v.iter().map(|v| v.crossed).collect();
    assert_eq!(crossed, [true, true, true, true]);
    for bad in [
        "shadow.ttfb_p99>2%",
        "shadow.error_rate>2ms",
        "shadow.requests>5%",
        "shadow.ttfb_p99>shadow.error_rate",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn rates_and_shares_of_the_report() {
    let mut r = report();
    r.shadow.status.c4xx = 100;
    r.counts.seen = 2000;
    r.counts.replayed = 1000;
    r.counts.dropped.insert("queue_full".into(), 250);
    let c = parse("shadow.transport_error_rate>0,shadow.4xx_rate>0,mismatch.rate>0,counts.replayed_share>0,counts.dropped_share>0").unwrap();
    let v = evaluate(&c, &r);
    let lefts: Vec<f64> = v.iter().map(|v| v.left).collect();
    // 3 blamed errors, 100 4xx, 4 mismatches of 1000; 1000 of 2000 seen; 250 of 1250.
    assert_eq!(lefts, [0.003, 0.1, 0.004, 0.5, 0.2]);
    // Nothing selected: a share has nothing to divide by.
    let empty = evaluate(
        &parse("counts.dropped_share>0.1").unwrap(),
        &with(0, (0.0, 0.0), (1, 1), &[], 0),
    );
    assert!(empty[0].not_evaluated.is_some(), "{empty:?}");
}

#[test]
fn a_gate_on_verdicts_needs_a_comparison_with_data() {
    let mut r = report();
    let c = parse("verdicts.regressions>0").unwrap();
    assert!(evaluate(&c, &r)[0].not_evaluated.is_some());
    let comparison = |verdict| model::Comparison {
        route: None,
        metric: "ttfb_p50".into(),
        production: Some(1.0),
        shadow: Some(2.0),
        change: Some(1.0),
        interval: Some([0.5, 1.5]),
        p_value: Some(0.001),
        verdict,
    };
    r.verdicts = vec![comparison(VerdictKind::NoSignificantChange)];
    let v = &evaluate(&c, &r)[0];
    assert!(v.not_evaluated.is_none() && !v.crossed, "{v:?}");
    r.verdicts.push(comparison(VerdictKind::Regression));
    assert!(evaluate(&c, &r)[0].crossed);
}

#[test]
fn a_regression_gate_crosses_only_on_a_significant_regression_past_its_size() {
    let mut r = report();
    let c = parse("regression.ttfb_p99>10%,regression.5xx_rate>1%").unwrap();
    // No comparisons: not enough data, never a pass.
    assert!(evaluate(&c, &r).iter().all(|v| v.not_evaluated.is_some()));
    let comparison = |metric: &str, p: f64, s: f64, verdict| model::Comparison {
        route: None,
        metric: metric.into(),
        production: Some(p),
        shadow: Some(s),
        change: Some(s - p),
        interval: None,
        p_value: Some(0.001),
        verdict,
    };
    r.verdicts = vec![
        comparison("ttfb_p99", 1000.0, 1150.0, VerdictKind::Regression),
        comparison("5xx_rate", 0.0, 0.005, VerdictKind::NoSignificantChange),
    ];
    let v = evaluate(&c, &r);
    assert!(v[0].crossed && (v[0].left - 0.15).abs() < 1e-9, "{v:?}");
    assert!(!v[1].crossed && v[1].not_evaluated.is_none() && v[1].left == 0.0);
    r.verdicts[0].shadow = Some(1050.0);
    r.verdicts[0].change = Some(50.0);
    assert!(!evaluate(&c, &r)[0].crossed, "5% is not past 10%");
    assert!(parse("regression.ttfb_p42>1%").is_err());
}

#[test]
fn bad_conditions_are_errors() {
    for bad in [
        "shadow.error_rate",
        "shadow.latency>1",
        "x.y>1",
        "shadow.ttfb_p42>1",
        "a*shadow.requests>1",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn missing_data_is_never_a_pass() {
    // No samples behind the percentile: not crossed, and marked not evaluated.
    let c = parse("shadow.total_p99>0").unwrap();
    let v = &evaluate(&c, &report())[0];
    assert!(!v.crossed);
    assert!(v.not_evaluated.is_some(), "{v:?}");
}

#[test]
fn conditions_without_enough_data_or_with_nan_are_not_evaluated() {
    let report = |requests: u64| with(requests, (0.0, 0.5), (1000, 900), &[], 0);
    let verdicts = |text: &str, requests| evaluate(&parse(text).unwrap(), &report(requests));
    // p99 needs 100 requests on its side; max and error_rate one; counts none.
    let small = verdicts(
        "shadow.ttfb_p99>1,shadow.ttfb_max>1,shadow.error_rate>0.1,shadow.requests<5,mismatch.status>0",
        99,
    );
    let evaluated: Vec<bool> = small.iter().map(|v| v.not_evaluated.is_none()).collect();
    assert_eq!(evaluated, [false, true, true, true, true], "{small:?}");
    assert!(small[0]
        .not_evaluated
        .as_deref()
        .unwrap()
        .contains("99 requests"));
    assert!(small[0].not_evaluated.as_deref().unwrap().contains("100"));
    assert!(verdicts("shadow.ttfb_p99>1", 100)[0].crossed);
    // Nothing replayed: rates have no value either.
    assert!(verdicts("shadow.error_rate>0.1", 0)[0]
        .not_evaluated
        .is_some());
    assert!(verdicts("shadow.requests<1", 0)[0].crossed);
    // A NaN operand is no value.
    let nan = verdicts("shadow.error_rate>NaN", 10);
    assert!(!nan[0].crossed && nan[0].not_evaluated.is_some(), "{nan:?}");
}
