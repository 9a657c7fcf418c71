//! Reading saved reports back safely: a report given to `shadowtap report` is as untrusted as a
//! capture, so everything it declares is checked against a bound before anything is allocated
//! or inflated. This module owns those bounds and the histogram decoding (HdrHistogram V2 +
//! DEFLATE, base64); `report::replay::from_json` owns what the JSON keys mean.
//!
//! A histogram's header declares its range (lowest and highest trackable value, significant
//! digits) and its payload length. The range fixes the length of the counts array, and each
//! count is one zigzag LEB128 varint of at most 9 bytes, so the payload can never need more
//! than `9 x counts` bytes. A declared range needing more than [`MAX_COUNTS`] counts, or a
//! payload longer than its range allows, is refused before allocating; the DEFLATE stream is
//! inflated through a hard output limit, so a bomb stops at the bound.

use std::io::Read as _;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// Largest saved report file read, in bytes. A report at the route cap with busy histograms
/// is a few MiB; parsing takes up to about 16 bytes of memory per input byte.
pub const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// Most routes a saved report may list: the route cap and `other` (`replay::stats`).
pub const MAX_ROUTES: usize = crate::replay::stats::MAX_ROUTES + 1;

/// Most status mismatch kinds a saved report may list (as many as a run keeps).
pub const MAX_MISMATCHES: usize = 10_000;

/// Most counts a saved histogram's declared range may need (256 KiB once decoded). The
/// histograms shadowtap writes (1 µs to 1 hour at 3 significant digits) need 23,552.
pub const MAX_COUNTS: u64 = 32 * 1024;

/// The longest a zigzag LEB128 count can be (HdrHistogram's varint stops at 9 bytes).
const MAX_VARINT_LEN: u64 = 9;
/// First 4 bytes of an uncompressed V2 histogram (the base cookie with the word size, 0x10).
const V2_COOKIE: u32 = 0x1c84_9313;
/// First 4 bytes of a DEFLATE-compressed V2 histogram (likewise).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Cookie and compressed length, before the DEFLATE stream.
const COMPRESSED_HEADER_LEN: usize = 8;
/// The V2 header: cookie, payload length, normalizing offset, digits (u32 each), lowest and
/// highest trackable value (u64 each), integer-to-double ratio (f64).
const V2_HEADER_LEN: usize = 40;

/// Named offsets in the V2 header.
mod field {
    pub const PAYLOAD_LEN: usize = 4;
    pub const DIGITS: usize = 12;
    pub const LOWEST: usize = 16;
    pub const HIGHEST: usize = 24;
}

/// The most inflated bytes any acceptable histogram can have: header plus its longest payload.
pub const MAX_INFLATED: u64 = V2_HEADER_LEN as u64 + MAX_COUNTS * MAX_VARINT_LEN;

/// What decoding one histogram cost, for tests that bound the work by counting it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Bytes produced by the inflater (at most [`MAX_INFLATED`] + 1).
    pub inflated: u64,
    /// Length of the counts array allocated (0 when refused before allocating).
    pub counts: u64,
}

/// `h` as a saved report writes it (V2 + DEFLATE, base64), through a copy whose range is
/// grown from the smallest to `h`'s largest value: the header records the range, and a
/// merged histogram's range depends on the order its parts were added in, so without the
/// copy the same counts merged in another order would be written differently.
pub fn encode(h: &Histogram<u64>) -> String {
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
    // At `h`'s own precision: the timeline's buckets keep 2 digits, the rest 3.
    let Ok(mut canonical) = Histogram::<u64>::new_with_bounds(1, 2, h.sigfig()) else {
        return String::new();
    };
    canonical.auto(true);
    let _ = canonical.add(h);
    let mut bytes = Vec::new();
    match V2DeflateSerializer::new().serialize(&canonical, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Decodes a base64 histogram from a saved report, within the bounds above.
pub fn histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    histogram_counting(text, &mut Work::default())
}

/// [`histogram`], adding what it cost to `work`.
pub fn histogram_counting(text: &str, work: &mut Work) -> anyhow::Result<Histogram<u64>> {
    // Base64 is 4 characters per 3 bytes: the decoded length is known before decoding. A
    // DEFLATE stream is at most a few bytes per 64 KiB longer than what it holds.
    let most = COMPRESSED_HEADER_LEN as u64 + MAX_INFLATED + 1024;
    if (text.len() as u64) / 4 * 3 > most {
        bail!("a histogram is longer than any histogram's range allows");
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .context("a histogram is not base64")?;
    let v2 = match be_u32(&bytes, 0)? {
        V2_COMPRESSED_COOKIE => inflate(&bytes, work)?,
        V2_COOKIE => bytes,
        _ => bail!("a histogram is not in the HdrHistogram V2 format"),
    };
    let counts = check_header(&v2)?;
    work.counts = counts;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut v2.as_slice())
        .map_err(|e| anyhow!("a histogram does not decode: {e}"))?;
    // Read at the size it was saved with; merging may need it larger.
    h.auto(true);
    Ok(h)
}

/// Inflates a compressed histogram, never producing more than [`MAX_INFLATED`] + 1 bytes.
fn inflate(bytes: &[u8], work: &mut Work) -> anyhow::Result<Vec<u8>> {
    let declared = be_u32(bytes, 4)? as usize;
    let stream = bytes
        .get(COMPRESSED_HEADER_LEN..)
        .filter(|s| s.len() >= declared)
        .ok_or_else(|| anyhow!("a histogram is shorter than its header says"))?;
    let mut out = Vec::new();
    let read = ZlibDecoder::new(&stream[..declared])
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out);
    work.inflated += out.len() as u64;
    read.map_err(|e| anyhow!("a histogram does not inflate: {e}"))?;
    if out.len() as u64 > MAX_INFLATED {
        bail!("a histogram inflates beyond the {MAX_INFLATED} bytes any histogram's range allows");
    }
    Ok(out)
}

/// Checks the V2 header against the bounds; returns the length of the counts array.
fn check_header(v2: &[u8]) -> anyhow::Result<u64> {
    if v2.len() < V2_HEADER_LEN || be_u32(v2, 0)? != V2_COOKIE {
        bail!("a histogram has no HdrHistogram V2 header");
    }
    let payload = u64::from(be_u32(v2, field::PAYLOAD_LEN)?);
    let digits = be_u32(v2, field::DIGITS)?;
    let lowest = be_u64(v2, field::LOWEST)?;
    let highest = be_u64(v2, field::HIGHEST)?;
    let counts = counts_len(lowest, highest, digits).ok_or_else(|| {
        anyhow!("a histogram's range is invalid ({lowest}..{highest}, {digits} digits)")
    })?;
    if counts > MAX_COUNTS {
        bail!("a histogram's range ({lowest}..{highest}, {digits} digits) needs {counts} counts, more than {MAX_COUNTS}");
    }
    if payload > counts * MAX_VARINT_LEN {
        bail!(
            "a histogram declares a {payload}-byte payload; its range allows at most {}",
            counts * MAX_VARINT_LEN
        );
    }
    if payload > (v2.len() - V2_HEADER_LEN) as u64 {
        bail!("a histogram is shorter than its header says");
    }
    Ok(counts)
}

/// The length of the counts array of a histogram of `lowest..=highest` at `digits` significant
/// digits, as HdrHistogram lays it out; `None` for a range it would refuse.
fn counts_len(lowest: u64, highest: u64, digits: u32) -> Option<u64> {
    if lowest == 0 || digits > 5 || highest < lowest.checked_mul(2)? {
        return None;
    }
    let unit_magnitude = 63 - lowest.leading_zeros();
    // Sub-buckets: the smallest power of two holding 2 x 10^digits values.
    let largest = 2 * 10u64.pow(digits);
    let sub_bucket_magnitude = 64 - (largest - 1).leading_zeros();
    if unit_magnitude + sub_bucket_magnitude > 63 {
        return None;
    }
    let half = 1u64 << (sub_bucket_magnitude - 1);
    let mut smallest_untrackable = (1u64 << sub_bucket_magnitude) << unit_magnitude;
    let mut buckets = 1u64;
    while smallest_untrackable <= highest {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    Some((buckets + 1) * half)
}

fn be_u32(b: &[u8], at: usize) -> anyhow::Result<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| anyhow!("a histogram is too short for its header"))
}

fn be_u64(b: &[u8], at: usize) -> anyhow::Result<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| anyhow!("a histogram is too short for its header"))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use flate2::write::ZlibEncoder;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

    use super::*;

    fn encode(h: &Histogram<u64>) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new().serialize(h, &mut bytes).unwrap();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A V2 header for `lowest..highest` at `digits`, declaring `payload` bytes.
    fn header(payload: u32, lowest: u64, highest: u64, digits: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&V2_COOKIE.to_be_bytes());
        v.extend_from_slice(&payload.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&digits.to_be_bytes());
        v.extend_from_slice(&lowest.to_be_bytes());
        v.extend_from_slice(&highest.to_be_bytes());
        v.extend_from_slice(&1.0f64.to_be_bytes());
        v
    }

    /// `inner` DEFLATE-compressed with the V2 compressed wrapper, base64.
    fn compressed(inner: &[u8], zeros: usize) -> String {
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(inner).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..zeros / block.len() {
            z.write_all(&block).unwrap();
        }
        let stream = z.finish().unwrap();
        let mut v = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        v.extend_from_slice(&(stream.len() as u32).to_be_bytes());
        v.extend_from_slice(&stream);
        base64::engine::general_purpose::STANDARD.encode(v)
    }

    #[test]
    fn counts_len_matches_hdrhistogram_for_the_ranges_written() {
        for (low, high, digits) in [
            (1, 3_600_000_000, 3),
            (1, 2, 3),
            (1000, 1 << 40, 2),
            (1, u64::MAX, 5),
        ] {
            let h = Histogram::<u64>::new_with_bounds(low, high, digits as u8).unwrap();
            assert_eq!(
                counts_len(low, high, digits),
                Some(h.distinct_values() as u64)
            );
        }
        assert_eq!(counts_len(1, 3_600_000_000, 3), Some(23_552));
    }

    #[test]
    fn a_saved_histogram_decodes_as_written() {
        let mut h = crate::replay::stats::histogram();
        for v in [1, 250, 90_000, 3_600_000_000] {
            h.record(v).unwrap();
        }
        let back = histogram(&encode(&h)).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn a_declared_4_gib_payload_is_refused_before_anything_is_allocated() {
        let mut work = Work::default();
        let text = compressed(&header(u32::MAX, 1, 3_600_000_000, 3), 0);
        assert!(text.len() < 4096);
        let e = histogram_counting(&text, &mut work).unwrap_err();
        assert!(format!("{e}").contains("4294967295-byte payload"), "{e}");
        assert_eq!(work.counts, 0, "no counts array allocated");
        assert!(work.inflated <= V2_HEADER_LEN as u64);
    }

    #[test]
    fn a_range_needing_too_many_counts_is_refused() {
        let text = compressed(&header(0, 1, u64::MAX, 5), 0);
        let e = histogram(&text).unwrap_err();
        assert!(format!("{e}").contains("counts, more than"), "{e}");
    }

    #[test]
    fn a_deflate_bomb_stops_inflating_at_the_bound() {
        // 64 MiB of zeros behind a header whose payload its range allows: the inflater
        // must stop one byte past the most any histogram can need.
        let mut work = Work::default();
        let text = compressed(&header(1000, 1, 3_600_000_000, 3), 64 << 20);
        assert!(text.len() < 1 << 20, "{} bytes", text.len());
        let e = histogram_counting(&text, &mut work).unwrap_err();
        assert!(format!("{e}").contains("inflates beyond"), "{e}");
        assert_eq!(work.inflated, MAX_INFLATED + 1);
        assert_eq!(work.counts, 0);
    }

    #[test]
    fn a_payload_longer_than_the_data_is_refused() {
        let text = compressed(&header(100, 1, 3_600_000_000, 3), 0);
        assert!(histogram(&text).is_err());
        assert!(histogram("AAAA").is_err());
        assert!(histogram("HISTFAAA").is_err());
    }
}
