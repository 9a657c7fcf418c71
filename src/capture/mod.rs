//! Where frames come from: capture files (classic pcap and pcapng), and live libpcap (`live`).
//!
//! Owns: the file formats, per-interface link types and timestamp resolutions, merging several
//! files into one timestamp-ordered stream, and the `pcap.*` / `pcapng.*` counters.
//! Does not own: what is inside a frame (that is `wire`).
//!
//! A [`Frame`] borrows the reader's buffer; it is valid until the next call to the reader.

use std::fmt;

mod buffer;
mod counters;
mod endian;
mod error;
pub mod filter;
pub mod live;
mod merge;
mod pcap;
mod pcapng;
mod reader;
mod writer;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod reader_tests;

pub use counters::{CaptureCounters, Limits};
pub use endian::Endian;
pub use error::{BlockProblem, OpenError, ReadError};
pub use merge::MergedReader;
pub use reader::{CaptureReader, Format};
pub use writer::{PcapWriter, WRITER_SNAPLEN};

/// Capture time in nanoseconds since the Unix epoch.
///
/// Nanoseconds in an `i64` cover the years 1677 to 2262, which holds every real capture; the
/// readers saturate anything outside that range instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Whole microseconds from `earlier` to `self`, rounded half to even as the oracle does;
    /// negative when `self` is earlier.
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        let d = self.0.saturating_sub(earlier.0);
        let (q, r) = (d.div_euclid(1000), d.rem_euclid(1000));
        if r > 500 || (r == 500 && q % 2 != 0) {
            q + 1
        } else {
            q
        }
    }

    /// Adds a duration in nanoseconds, saturating.
    pub fn saturating_add_nanos(self, nanos: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for Timestamp {
    /// Epoch seconds with microsecond precision, as the JSON output writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let micros = self.0.rem_euclid(1_000_000_000) / 1000;
        write!(f, "{secs}.{micros:06}")
    }
}

/// A libpcap link-layer header type (LINKTYPE_* value as stored in files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the byte order of the capturing host.
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// DLT_RAW as some BSDs number it in live handles (files use 101).
    pub const RAW_BSD12: LinkType = LinkType(12);
    pub const RAW_BSD14: LinkType = LinkType(14);
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            LinkType::NULL => "null",
            LinkType::ETHERNET => "ethernet",
            LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => "raw",
            LinkType::LOOP => "loop",
            LinkType::LINUX_SLL => "linux_sll",
            LinkType::IPV4 => "ipv4",
            LinkType::IPV6 => "ipv6",
            LinkType::LINUX_SLL2 => "linux_sll2",
            LinkType(n) => return write!(f, "linktype_{n}"),
        };
        f.write_str(name)
    }
}

/// One captured frame, borrowed from the reader that produced it.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    /// The captured bytes (`caplen` of them, never more than the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire; larger than `data.len()` when the snap length cut it.
    pub orig_len: u32,
}
