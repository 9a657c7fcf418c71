//! The reassembler's bounds and counters.

/// Bounds on the flow table and on what each direction may buffer (RELIABILITY.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes held above the delivered point in one direction (Suricata `reassembly.depth`);
    /// past it the first hole is declared a gap (`tcp.flow_cap_hits`, L01).
    pub window: usize,
    /// Bytes held above a hole when the peer has never sent an ACK (Zeek
    /// `tcp_max_above_hole_without_any_acks`); past it the hole is a gap (T08).
    pub above_hole_without_acks: usize,
    /// Separate out-of-order regions per direction (Suricata `max-regions`); one more and the
    /// oldest hole is skipped as a gap (`tcp.too_many_holes`, T20).
    pub max_holes: usize,
    /// Bytes held by all flows together, out-of-order data and the bytes kept to compare
    /// retransmissions with; past it new out-of-order data is refused
    /// (`tcp.segment_memcap_drop`, L02).
    pub memcap: usize,
    /// Bytes delivered last, per direction, kept to compare a retransmission of them with
    /// (`tcp.overlap_conflict`, T04); a retransmission of older bytes is counted
    /// (`tcp.retransmit_unchecked`). They grow only while all reassembly memory is under half
    /// of `memcap`.
    pub conflict_window: usize,
    /// Flows in the table; when full, the least recently seen sixteenth is evicted
    /// (`flow.evicted`, L03).
    pub max_flows: usize,
    /// Idle time before a flow that has carried no data is dropped (capture time).
    pub timeout_new_ns: i64,
    /// Idle time before an established flow is flushed and closed (T21).
    pub timeout_established_ns: i64,
    /// How long a closed flow is remembered, so its trailing retransmissions and ACKs are
    /// recognised rather than taken for a new connection.
    pub timeout_closed_ns: i64,
    /// Data this far ahead of the delivered point, not acknowledged by the peer, is taken for
    /// garbage and never buffered (`tcp.out_of_window`, T19).
    pub max_ahead: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: 1024 * 1024,
            above_hole_without_acks: 16 * 1024,
            max_holes: 8,
            memcap: 256 * 1024 * 1024,
            conflict_window: 4096,
            max_flows: 65_536,
            timeout_new_ns: 60_000_000_000,
            timeout_established_ns: 300_000_000_000,
            timeout_closed_ns: 5_000_000_000,
            max_ahead: 1 << 30,
        }
    }
}

crate::counters! {
    /// TCP reassembly and flow table counters (RELIABILITY.md section 5).
    pub struct ReassemblyCounters {
        segments = "tcp.segments",
        payload_bytes = "tcp.payload_bytes",
        sessions = "tcp.sessions",
        midstream_pickups = "tcp.midstream_pickups",
        syn_data = "tcp.syn_data",
        handshake_anomaly = "tcp.handshake_anomaly",
        /// Segments without data or SYN for a flow not in the table (trailing ACKs, stray RSTs).
        no_flow = "tcp.no_flow",
        ooo_segments = "tcp.ooo_segments",
        retransmissions = "tcp.retransmissions",
        overlap_bytes = "tcp.overlap_bytes",
        /// Retransmitted bytes that differ from the bytes delivered or held (T04).
        overlap_conflict = "tcp.overlap_conflict",
        /// Retransmissions of bytes older than the bytes kept to compare them with, or never
        /// seen (a gap): not compared.
        retransmit_unchecked = "tcp.retransmit_unchecked",
        keepalives = "tcp.keepalives",
        reassembly_gap = "tcp.reassembly_gap",
        missed_bytes = "tcp.missed_bytes",
        /// Gaps declared because the peer acknowledged bytes never captured (T07).
        gap_acked = "tcp.gap_forced.acked",
        /// Gaps declared with no ACK ever seen from the peer (T08).
        gap_no_ack = "tcp.gap_forced.no_ack",
        /// Bytes cut by the snap length (C02).
        gap_snaplen = "tcp.gap_forced.snaplen",
        /// Holes still open when a flow was flushed (timeout, eviction, end of capture).
        gap_flush = "tcp.gap_forced.flush",
        flow_cap_hits = "tcp.flow_cap_hits",
        too_many_holes = "tcp.too_many_holes",
        segment_memcap_drop = "tcp.segment_memcap_drop",
        out_of_window = "tcp.out_of_window",
        before_start = "tcp.before_stream_start",
        rst = "tcp.rst",
        rst_invalid = "tcp.rst_invalid",
        /// Buffered bytes above a hole discarded at a RST (T09: no gap for unacked data).
        rst_discarded_bytes = "tcp.rst_discarded_bytes",
        half_closed = "tcp.half_closed",
        data_after_close = "tcp.data_after_close",
        /// Bytes held right now, all flows together: out-of-order data and the bytes kept to
        /// compare retransmissions with (gauge).
        memuse = "tcp.memuse",
        active = "flow.active",
        closed = "flow.closed",
        timeouts = "flow.timeouts",
        tcp_reuse = "flow.tcp_reuse",
        evicted = "flow.evicted",
    }
}
