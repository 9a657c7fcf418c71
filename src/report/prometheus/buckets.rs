//! HdrHistogram latencies as the buckets, sum and count of an exposition histogram.
//!
//! prometheus-client's own `Histogram` takes one observation at a time; the run's latencies
//! are already recorded in HdrHistograms, so their bins are turned into precomputed buckets
//! here and handed to its encoder as they are.

use hdrhistogram::Histogram;

/// Histogram bucket bounds in µs, the unit of the HdrHistograms. Kept as integers so that no
/// float rounding moves a bound when a recorded value is compared with it; the `le` label is
/// the bound in seconds (`us / 1e6`), and `+Inf` follows them.
pub(super) const BUCKETS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// One histogram series, ready for the encoder.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Buckets {
    /// `(le in seconds, values in this bucket alone)`, the bounds of [`BUCKETS`] and then
    /// `+Inf`: the encoder adds them up into the cumulative `_bucket` series.
    pub per_bucket: Vec<(f64, u64)>,
    /// The sum of the values, in seconds.
    pub sum: f64,
    /// Every value recorded (also the `+Inf` bucket).
    pub count: u64,
}

/// The buckets of `h` (values in µs).
///
/// Buckets: HdrHistogram keeps a value only to within its bin (3 significant digits here),
/// so a recorded value counts as `<= le` when the lowest value of its bin is `<= le`. This is
/// exactly `h.count_between(0, le_us)` (every bin up to and including the one holding
/// `le_us`), computed here in a single pass. A value exactly on a bound (say a 5 s timeout)
/// therefore lands in that bound's bucket; a value above a bound by less than the bin width
/// (at most 0.1% of it) does too.
///
/// Sum: every bin counts at its median equivalent value, the estimate HdrHistogram's own
/// `mean()` uses, so `sum / count` equals `h.mean()` to within a microsecond. It is added up
/// in whole µs and divided once, so the only rounding is that of the final `f64`.
pub(super) fn buckets(h: &Histogram<u64>) -> Buckets {
    let mut counts = [0u64; BUCKETS.len() + 1];
    let mut sum_us = 0u64;
    for v in h.iter_recorded() {
        let n = v.count_at_value();
        let value = v.value_iterated_to();
        let low = h.lowest_equivalent(value);
        let i = BUCKETS
            .iter()
            .position(|&le_us| low <= le_us)
            .unwrap_or(BUCKETS.len());
        counts[i] = counts[i].saturating_add(n);
        sum_us = sum_us.saturating_add(h.median_equivalent(value).saturating_mul(n));
    }
    let bounds = BUCKETS.iter().map(|&us| us as f64 / 1e6);
    Buckets {
        per_bucket: bounds.chain([f64::INFINITY]).zip(counts).collect(),
        sum: sum_us as f64 / 1e6,
        count: h.len(),
    }
}
