//! TCP segments to ordered byte streams per direction, with gaps, limits and eviction.
//!
//! Owns: the flow table (bounded, idle timeouts, least-recently-seen eviction), per-direction
//! reassembly buffers (bounded; holes capped), the comparison of bytes seen twice (first copy
//! wins, a difference is a [`EventKind::Conflict`]), direction resolution, and the `tcp.*` /
//! `flow.*` counters. Does not own: what the bytes mean (that is `http1`).
//!
//! The reassembler is sans-IO: it is pushed segments and a clock (capture time), and it calls
//! a [`StreamSink`] with [`StreamEvent`]s whose data borrows either the segment or its own
//! buffer, so in-order data reaches the sink without a copy. (The last bytes of each direction,
//! at most [`Limits::conflict_window`], are also copied into a ring to compare retransmissions
//! with.)

use std::net::SocketAddr;

use crate::capture::Timestamp;

mod chunks;
mod half;
mod limits;
mod recent;
mod table;
#[cfg(test)]
mod tests;

pub use chunks::chunks_visited;
pub use limits::{Limits, ReassemblyCounters};
pub use table::Reassembler;

/// A connection's id, unique within one run (a reused 4-tuple gets a new id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Which way bytes travel. The client is the side that sent the SYN when the handshake was
/// seen; otherwise the reassembler's best guess (see [`EventKind::Open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// Index for per-direction arrays: client-to-server is 0.
    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

/// Why a direction or a whole flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Fin,
    Rst,
    /// Idle past its timeout.
    Timeout,
    /// Evicted to make room in a full flow table.
    Evicted,
    /// A new SYN with a different ISN reused the 4-tuple.
    Reused,
    /// The input ended with the flow still open.
    CaptureEnded,
}

/// One thing that happened on a flow, in capture order.
#[derive(Debug)]
pub struct StreamEvent<'a> {
    pub flow: FlowId,
    pub ts: Timestamp,
    pub kind: EventKind<'a>,
}

#[derive(Debug)]
pub enum EventKind<'a> {
    /// First event of every flow.
    Open {
        client: SocketAddr,
        server: SocketAddr,
        /// No handshake was seen: the roles are a guess (SYN-ACK, then port numbers), and the
        /// consumer may swap them when the content says otherwise.
        midstream: bool,
    },
    /// In-order bytes of one direction. `offset` is the stream position of `data[0]`
    /// (0 = first byte after the ISN, or the first byte seen for a mid-stream pickup);
    /// offsets of one direction only grow, and the bytes between two events are exactly
    /// covered by `Data` and `Gap` events.
    Data {
        dir: Direction,
        offset: u64,
        data: &'a [u8],
        /// The acknowledgment that the sender of these bytes carried on the segment that
        /// delivered them, as a stream offset of the opposite direction (None before that
        /// direction's start is known, or when the segment had no ACK).
        ack: Option<u64>,
    },
    /// Bytes of one direction that will never be seen (capture loss, snap length, a buffer cap).
    Gap {
        dir: Direction,
        offset: u64,
        len: u64,
    },
    /// Bytes of one direction at `[offset, offset + len)`, already delivered or held, came
    /// again with different content (a retransmission that disagrees: injection, or a
    /// middlebox rewriting). The first copy is kept; the consumer marks what those bytes
    /// belong to as not to be trusted (RELIABILITY.md T04).
    Conflict {
        dir: Direction,
        offset: u64,
        len: u64,
    },
    /// One direction has ended (FIN or RST delivered in order); no more data will follow on it.
    End { dir: Direction, reason: CloseReason },
    /// Last event of every flow: it is removed from the table.
    Close { reason: CloseReason },
}

/// Receives the reassembler's events.
pub trait StreamSink {
    fn event(&mut self, event: StreamEvent<'_>);
}
