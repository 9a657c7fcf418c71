//! Reading a saved report's lists within their bounds: counted as they are parsed, and
//! refused past their bound before anything in them is decoded.

use serde::{Deserialize, Deserializer};

use super::{Comparison, MismatchKind, Route, Run, TimeBucket, MAX_COMPARISONS, MAX_RUNS};

/// A list of at most `most` items, refused past that before the rest is decoded (a route
/// holds four histograms: decoding thousands of them would take gigabytes). Only counted
/// past the bound, so the error says how many there are.
pub(super) fn at_most<'de, D, T>(d: D, most: usize, what: &'static str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T> {
        most: usize,
        what: &'static str,
        items: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {} {}", self.most, self.what)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while items.len() < self.most {
                match seq.next_element()? {
                    Some(item) => items.push(item),
                    None => return Ok(items),
                }
            }
            let mut n = items.len();
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            if n > self.most {
                return Err(serde::de::Error::custom(format!(
                    "{n} {}, more than the {} a report holds",
                    self.what, self.most
                )));
            }
            Ok(items)
        }
    }
    d.deserialize_seq(Bounded {
        most,
        what,
        items: std::marker::PhantomData,
    })
}

pub(super) fn runs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Run>, D::Error> {
    at_most(d, MAX_RUNS, "runs")
}

pub(super) fn comparisons<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Comparison>, D::Error> {
    at_most(d, MAX_COMPARISONS, "comparisons")
}

pub(super) fn time_buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TimeBucket>, D::Error> {
    at_most(
        d,
        crate::replay::stats::MAX_BUCKETS as usize,
        "time buckets",
    )
}

pub(super) fn routes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Route>, D::Error> {
    at_most(d, crate::report::saved::MAX_ROUTES, "routes")
}

pub(super) fn mismatch_kinds<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<MismatchKind>, D::Error> {
    at_most(d, crate::report::saved::MAX_MISMATCHES, "mismatch kinds")
}
