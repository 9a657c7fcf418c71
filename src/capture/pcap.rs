//! Classic pcap (libpcap's savefile format): the 24-byte file header and the record headers.
//!
//! Owns: magic numbers (µs `a1b2c3d4`, ns `a1b23c4d`, both byte orders, and the 24-byte-record
//! "modified" `a1b2cd34` variant), the link type and snap length, record timestamps.
//! Does not own: buffering or the record-length policy (that is `reader`).

use super::endian::Endian;
use super::{LinkType, Timestamp};

/// Microsecond timestamps.
pub(crate) const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Nanosecond timestamps (F06).
pub(crate) const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetzov's patched libpcap: microseconds, 8 more bytes per record header.
pub(crate) const MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

pub(crate) const FILE_HEADER_LEN: usize = 24;
const OFF_SNAPLEN: usize = 16;
const OFF_LINKTYPE: usize = 20;
/// The upper bits of the header's link-type field carry FCS information, not the link type
/// (libpcap `LT_LINKTYPE`).
const LINKTYPE_MASK: u32 = 0x03FF_FFFF;

const RECORD_HEADER_LEN: usize = 16;
const MODIFIED_RECORD_HEADER_LEN: usize = 24;
const OFF_TS_SEC: usize = 0;
const OFF_TS_FRAC: usize = 4;
const OFF_CAPLEN: usize = 8;
const OFF_ORIG_LEN: usize = 12;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const NANOS_PER_MICRO: i64 = 1_000;

/// What the file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcapHeader {
    pub(crate) endian: Endian,
    pub(crate) nanos: bool,
    pub(crate) snaplen: u32,
    pub(crate) link: LinkType,
    pub(crate) record_header_len: usize,
}

/// One record header, before any length policy is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) ts: Timestamp,
    pub(crate) caplen: u32,
    pub(crate) orig_len: u32,
}

/// Recognises a classic pcap magic: (byte order, nanosecond timestamps, record header length).
pub(crate) fn detect(first: &[u8]) -> Option<(Endian, bool, usize)> {
    let le = Endian::Little.u32_at(first, 0)?;
    let be = Endian::Big.u32_at(first, 0)?;
    [(le, Endian::Little), (be, Endian::Big)]
        .into_iter()
        .find_map(|(magic, endian)| match magic {
            MAGIC_MICROS => Some((endian, false, RECORD_HEADER_LEN)),
            MAGIC_NANOS => Some((endian, true, RECORD_HEADER_LEN)),
            MAGIC_MODIFIED => Some((endian, false, MODIFIED_RECORD_HEADER_LEN)),
            _ => None,
        })
}

/// Parses the file header; `None` if `b` is shorter than it or the magic is not pcap.
pub(crate) fn parse_header(b: &[u8]) -> Option<PcapHeader> {
    let (endian, nanos, record_header_len) = detect(b)?;
    Some(PcapHeader {
        endian,
        nanos,
        snaplen: endian.u32_at(b, OFF_SNAPLEN)?,
        link: LinkType(endian.u32_at(b, OFF_LINKTYPE)? & LINKTYPE_MASK),
        record_header_len,
    })
}

impl PcapHeader {
    /// Parses a record header at the start of `b`; `None` if `b` is shorter than it.
    #[inline]
    pub(crate) fn record(&self, b: &[u8]) -> Option<RecordHeader> {
        let e = self.endian;
        let secs = i64::from(e.u32_at(b, OFF_TS_SEC)?);
        let frac = i64::from(e.u32_at(b, OFF_TS_FRAC)?);
        let frac_nanos = if self.nanos {
            frac
        } else {
            frac * NANOS_PER_MICRO
        };
        // u32 seconds * 1e9 + u32 * 1e3 stays far below i64::MAX: no overflow possible.
        Some(RecordHeader {
            ts: Timestamp(secs * NANOS_PER_SEC + frac_nanos),
            caplen: e.u32_at(b, OFF_CAPLEN)?,
            orig_len: e.u32_at(b, OFF_ORIG_LEN)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_all_four_magics_and_the_modified_one() {
        let cases: [(u32, bool, Endian, bool); 5] = [
            (MAGIC_MICROS, true, Endian::Little, false),
            (MAGIC_MICROS, false, Endian::Big, false),
            (MAGIC_NANOS, true, Endian::Little, true),
            (MAGIC_NANOS, false, Endian::Big, true),
            (MAGIC_MODIFIED, true, Endian::Little, false),
        ];
        for (magic, le, endian, nanos) in cases {
            let bytes = if le {
                magic.to_le_bytes()
            } else {
                magic.to_be_bytes()
            };
            let (e, n, _) = detect(&bytes).unwrap_or((Endian::Little, !nanos, 0));
            assert_eq!((e, n), (endian, nanos), "magic {magic:08x}");
        }
        assert_eq!(detect(b"GET "), None);
        assert_eq!(detect(b"\xa1\xb2"), None);
    }

    #[test]
    fn linktype_fcs_bits_are_masked() {
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC_MICROS.to_le_bytes());
        h.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&(0x1000_0000u32 | 1).to_le_bytes());
        let hdr = parse_header(&h);
        assert_eq!(
            hdr.map(|h| (h.link, h.snaplen)),
            Some((LinkType::ETHERNET, 65535))
        );
    }
}
