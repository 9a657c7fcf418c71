//! The decoder's bounds and counters.

/// Bounds on packet decoding and IP fragment reassembly (RELIABILITY.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// IPv6 extension headers walked before the packet is dropped
    /// (`decoder.ipv6_ext_too_many`).
    pub max_ipv6_ext_headers: usize,
    /// VLAN tags (802.1Q, 802.1ad, QinQ) unwrapped before the frame is dropped
    /// (`decoder.too_many_layers`).
    pub max_vlan_tags: usize,
    /// Bytes held by incomplete fragmented datagrams, all together (Suricata
    /// `defrag.memcap` 32 MiB); past it new datagrams are dropped (`defrag.memcap_drop`).
    pub defrag_memcap: usize,
    /// Fragments held, all together (Suricata `max-frags` 65535).
    pub defrag_max_fragments: usize,
    /// Capture time an incomplete datagram is kept (Suricata `defrag.timeout` 60 s).
    pub defrag_timeout_ns: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ipv6_ext_headers: 8,
            max_vlan_tags: 4,
            defrag_memcap: 32 * 1024 * 1024,
            defrag_max_fragments: 65_535,
            defrag_timeout_ns: 60_000_000_000,
        }
    }
}

crate::counters! {
    /// What the decoder saw and why it skipped what it skipped.
    pub struct DecoderCounters {
        packets = "decoder.packets",
        bytes = "decoder.bytes",
        /// Frames whose captured length is shorter than their length on the wire.
        truncated_frames = "decoder.truncated_frames",
        /// Headers cut off by the snap length or the frame's end: nothing to decode.
        truncated_headers = "decoder.truncated_headers",
        l2_padding_trimmed = "decoder.l2_padding_trimmed",
        vlan = "decoder.vlan",
        too_many_layers = "decoder.too_many_layers",
        unsupported_link = "decoder.unsupported_link",
        /// Link-layer payloads that are not IP (ARP, LLDP, ...).
        non_ip = "decoder.non_ip",
        /// IP packets that are not TCP (UDP, ICMP, ...).
        non_tcp = "decoder.non_tcp",
        ipv4_invalid = "decoder.ipv4_invalid",
        ipv6_invalid = "decoder.ipv6_invalid",
        ipv6_ext_too_many = "decoder.ipv6_ext_too_many",
        tcp_invalid = "decoder.tcp_invalid",
        /// An IP total length of zero (TSO/GSO super-frames): the captured length is used.
        ip_len_zero = "decoder.ip_len_zero",
        tcp_segments = "decoder.tcp_segments",
        fragments = "defrag.fragments",
        reassembled = "defrag.reassembled",
        timeouts = "defrag.timeouts",
        memcap_drop = "defrag.memcap_drop",
        overlap_conflict = "defrag.overlap_conflict",
        invalid_fragment = "defrag.invalid",
    }
}
