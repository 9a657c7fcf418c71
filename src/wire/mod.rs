//! Frame bytes to a TCP segment view: link layer, IPv4/IPv6 (with fragment reassembly), TCP.
//!
//! Owns: link-type decoding, VLAN tags, IP header checks, the IP defragmenter and its limits,
//! and the `decoder.*` / `defrag.*` counters. Does not own: anything about TCP streams beyond
//! one segment (that is `reassembly`).
//!
//! Malformed packets are data, not failure: each is counted by reason and skipped.

use std::cmp::Ordering;
use std::fmt;
use std::net::SocketAddr;

use crate::capture::Timestamp;

mod decode;
mod defrag;
mod limits;

pub use decode::{peek_tcp_ports, Decoder};
pub use limits::{DecoderCounters, Limits};

/// A TCP sequence number: arithmetic wraps modulo 2^32 and ordering is RFC 793's
/// "less than" in the window of 2^31 around a value (like smoltcp's `SeqNumber`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n`, wrapping.
    #[allow(
        clippy::should_implement_trait,
        reason = "sequence numbers add a u32 length, not another sequence number"
    )]
    pub fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// Signed distance from `other` to `self` (`self - other`), valid within 2^31.
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeqNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// TCP header flags (RFC 9293 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment as decoded from a frame. Borrowed from the frame (or from the
/// defragmenter's buffer); never crosses a thread.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: SeqNumber,
    /// The acknowledgment number; meaningful only when `flags.ack()`.
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    pub window: u16,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire right after `payload` but were not captured
    /// (snap length, or an IP total length past the captured bytes). They are a gap, never data.
    pub missing: u32,
}

impl Segment<'_> {
    /// Sequence space this segment occupies: payload (captured and missing) plus SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + self.missing + self.flags.syn() as u32 + self.flags.fin() as u32
    }
}
