//! Decoder tests, named for RELIABILITY.md cases (C = capture/link, I = IP).

use super::*;
use etherparse::PacketBuilder;
use proptest::prelude::*;

const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// An IPv4/TCP packet 10.0.0.1:40000 -> 10.0.0.2:80, seq 1000, ack 2000, PSH|ACK.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(2000)
        .psh();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6([0xfe; 16], [0xfd; 16], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(2000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn ethernet(ethertype: u16, tags: &[u16], ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for &t in tags {
        f.extend_from_slice(&t.to_be_bytes());
        f.extend_from_slice(&[0, 5]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp(1_000),
        link,
        data,
        orig_len: data.len() as u32,
    }
}

fn decode_payload(link: LinkType, data: &[u8]) -> Option<Vec<u8>> {
    let mut d = Decoder::new(Limits::default());
    d.decode(&frame(link, data)).map(|s| s.payload.to_vec())
}

#[test]
fn c01_ethernet_ipv4_tcp_fields() {
    let data = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp(PAYLOAD));
    let mut d = Decoder::new(Limits::default());
    let s = d.decode(&frame(LinkType::ETHERNET, &data)).unwrap();
    assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
    assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
    assert_eq!(s.seq, SeqNumber(1000));
    assert_eq!(s.ack, SeqNumber(2000));
    assert!(s.flags.ack() && !s.flags.syn());
    assert_eq!(s.window, 65535);
    assert_eq!(s.payload, PAYLOAD);
    assert_eq!(s.missing, 0);
}

#[test]
fn c06_vlan_and_qinq_tags_are_unwrapped() {
    let ip = ipv4_tcp(PAYLOAD);
    for tags in [
        &[ETHERTYPE_VLAN][..],
        &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
        &[ETHERTYPE_QINQ_OLD, ETHERTYPE_VLAN],
    ] {
        let data = ethernet(ETHERTYPE_IPV4, tags, &ip);
        assert_eq!(
            decode_payload(LinkType::ETHERNET, &data).as_deref(),
            Some(PAYLOAD)
        );
    }
}

#[test]
fn c06_too_many_vlan_tags_are_counted() {
    let data = ethernet(ETHERTYPE_IPV4, &[ETHERTYPE_VLAN; 6], &ipv4_tcp(PAYLOAD));
    let mut d = Decoder::new(Limits::default());
    assert!(d.decode(&frame(LinkType::ETHERNET, &data)).is_none());
    assert_eq!(d.counters().too_many_layers, 1);
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = ipv4_tcp(PAYLOAD);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    sll.extend_from_slice(&ip);
    assert_eq!(
        decode_payload(LinkType::LINUX_SLL, &sll).as_deref(),
        Some(PAYLOAD)
    );
    let mut sll2 = ETHERTYPE_IPV4.to_be_bytes().to_vec();
    sll2.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 6, 2, 0, 0, 0, 0, 1, 0]);
    sll2.extend_from_slice(&ip);
    assert_eq!(
        decode_payload(LinkType::LINUX_SLL2, &sll2).as_deref(),
        Some(PAYLOAD)
    );
}

#[test]
fn c07_bsd_loopback_every_family_and_byte_order() {
    let (v4, v6) = (ipv4_tcp(PAYLOAD), ipv6_tcp(PAYLOAD));
    for (af, ip) in [
        (AF_INET, &v4),
        (AF_INET6_BSD, &v6),
        (AF_INET6_FREEBSD, &v6),
        (AF_INET6_DARWIN, &v6),
    ] {
        for (link, header) in [
            (LinkType::NULL, af.to_le_bytes()),
            (LinkType::NULL, af.to_be_bytes()),
            (LinkType::LOOP, af.to_be_bytes()),
        ] {
            let mut data = header.to_vec();
            data.extend_from_slice(ip);
            assert_eq!(
                decode_payload(link, &data).as_deref(),
                Some(PAYLOAD),
                "{link} af {af}"
            );
        }
    }
}

#[test]
fn raw_ip_link_types() {
    let (v4, v6) = (ipv4_tcp(PAYLOAD), ipv6_tcp(PAYLOAD));
    for link in [LinkType::RAW, LinkType::RAW_BSD12, LinkType::RAW_BSD14] {
        assert_eq!(decode_payload(link, &v4).as_deref(), Some(PAYLOAD));
        assert_eq!(decode_payload(link, &v6).as_deref(), Some(PAYLOAD));
    }
    assert_eq!(
        decode_payload(LinkType::IPV4, &v4).as_deref(),
        Some(PAYLOAD)
    );
    assert_eq!(
        decode_payload(LinkType::IPV6, &v6).as_deref(),
        Some(PAYLOAD)
    );
}

#[test]
fn unsupported_link_type_is_counted_and_warned_once() {
    let mut d = Decoder::new(Limits::default());
    for _ in 0..3 {
        assert!(d.decode(&frame(LinkType(147), b"anything")).is_none());
    }
    assert_eq!(d.counters().unsupported_link, 3);
    let w = d.take_warnings();
    assert_eq!(
        w,
        vec!["3 frames of unsupported link type linktype_147 skipped".to_string()]
    );
}

#[test]
fn c03_ethernet_padding_is_trimmed() {
    let mut data = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp(b""));
    data.extend_from_slice(&[0; 6]);
    let mut d = Decoder::new(Limits::default());
    let s = d.decode(&frame(LinkType::ETHERNET, &data)).unwrap();
    assert!(s.payload.is_empty());
    assert_eq!(d.counters().l2_padding_trimmed, 1);
}

#[test]
fn c02_snaplen_cut_payload_is_missing_not_data() {
    let body = [b'x'; 500];
    let full = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp(&body));
    let cut = &full[..200];
    let mut d = Decoder::new(Limits::default());
    let s = d
        .decode(&Frame {
            ts: Timestamp(0),
            link: LinkType::ETHERNET,
            data: cut,
            orig_len: full.len() as u32,
        })
        .unwrap();
    assert_eq!(s.payload.len(), 200 - 14 - 20 - 20);
    assert_eq!(s.payload.len() as u32 + s.missing, 500);
    assert_eq!(s.seq_len(), 500);
    assert_eq!(d.counters().truncated_frames, 1);
}

#[test]
fn snaplen_cut_inside_tcp_header_is_counted() {
    let full = ethernet(ETHERTYPE_IPV4, &[], &ipv4_tcp(PAYLOAD));
    let mut d = Decoder::new(Limits::default());
    assert!(d
        .decode(&frame(LinkType::ETHERNET, &full[..14 + 20 + 10]))
        .is_none());
    assert_eq!(d.counters().truncated_headers, 1);
}

#[test]
fn tso_zero_total_length_uses_captured_bytes() {
    let mut ip = ipv4_tcp(PAYLOAD);
    ip[2] = 0;
    ip[3] = 0;
    let mut d = Decoder::new(Limits::default());
    let s = d.decode(&frame(LinkType::RAW, &ip)).unwrap();
    assert_eq!(s.payload, PAYLOAD);
    assert_eq!(d.counters().ip_len_zero, 1);
}

#[test]
fn non_tcp_and_non_ip_are_counted() {
    let mut udp = Vec::new();
    PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
        .udp(53, 53)
        .write(&mut udp, b"q")
        .unwrap();
    let arp = ethernet(0x0806, &[], &[0; 28]);
    let mut d = Decoder::new(Limits::default());
    assert!(d.decode(&frame(LinkType::RAW, &udp)).is_none());
    assert!(d.decode(&frame(LinkType::ETHERNET, &arp)).is_none());
    assert_eq!((d.counters().non_tcp, d.counters().non_ip), (1, 1));
}

/// IPv6 with hop-by-hop and destination-options headers in front of TCP.
fn ipv6_with_ext(count: usize, payload: &[u8]) -> Vec<u8> {
    let tcp = ipv6_tcp(payload)[IPV6_HEADER..].to_vec();
    let mut ext = Vec::new();
    for i in 0..count {
        let next = if i + 1 == count {
            PROTO_TCP
        } else {
            EXT_DEST_OPTS
        };
        ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut p = ipv6_tcp(payload)[..IPV6_HEADER].to_vec();
    p[IPV6_NEXT] = if count == 0 {
        PROTO_TCP
    } else {
        EXT_HOP_BY_HOP
    };
    let len = (ext.len() + tcp.len()) as u16;
    p[IPV6_PAYLOAD_LEN..IPV6_PAYLOAD_LEN + 2].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&ext);
    p.extend_from_slice(&tcp);
    p
}

#[test]
fn i06_ipv6_extension_headers_are_walked_up_to_the_cap() {
    assert_eq!(
        decode_payload(LinkType::RAW, &ipv6_with_ext(3, PAYLOAD)).as_deref(),
        Some(PAYLOAD)
    );
    let mut d = Decoder::new(Limits::default());
    assert!(d
        .decode(&frame(LinkType::RAW, &ipv6_with_ext(12, PAYLOAD)))
        .is_none());
    assert_eq!(d.counters().ipv6_ext_too_many, 1);
}

/// Splits an IPv4 TCP packet into fragments of `size` payload bytes (a multiple of 8).
fn ipv4_fragments(packet: &[u8], size: usize) -> Vec<Vec<u8>> {
    let (header, body) = packet.split_at(IPV4_MIN_HEADER);
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = header.to_vec();
            let more = (i + 1) * size < body.len();
            let field = ((i * size / 8) as u16) | if more { IPV4_MORE_FRAGMENTS } else { 0 };
            p[IPV4_FRAG..IPV4_FRAG + 2].copy_from_slice(&field.to_be_bytes());
            p[IPV4_TOTAL_LEN..IPV4_TOTAL_LEN + 2]
                .copy_from_slice(&((IPV4_MIN_HEADER + chunk.len()) as u16).to_be_bytes());
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

#[test]
fn i01_ipv4_fragments_out_of_order_give_one_segment() {
    let body = [b'y'; 300];
    let frags = ipv4_fragments(&ipv4_tcp(&body), 64);
    let mut d = Decoder::new(Limits::default());
    let mut order: Vec<usize> = (0..frags.len()).collect();
    order.reverse();
    let mut got = None;
    for i in order {
        if let Some(s) = d.decode(&frame(LinkType::RAW, &frags[i])) {
            got = Some((s.payload.to_vec(), s.dst));
        }
    }
    let (payload, dst) = got.expect("reassembled");
    assert_eq!(payload, body);
    assert_eq!(dst, "10.0.0.2:80".parse().unwrap());
    assert_eq!(d.counters().reassembled, 1);
}

#[test]
fn i02_ipv6_fragments_are_reassembled() {
    let whole = ipv6_tcp(&[b'z'; 200]);
    let tcp = &whole[IPV6_HEADER..];
    let mut d = Decoder::new(Limits::default());
    let mut got = None;
    for (i, chunk) in tcp.chunks(96).enumerate() {
        let more = (i + 1) * 96 < tcp.len();
        let mut p = whole[..IPV6_HEADER].to_vec();
        p[IPV6_NEXT] = EXT_FRAGMENT;
        p[IPV6_PAYLOAD_LEN..IPV6_PAYLOAD_LEN + 2]
            .copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
        let field = ((i * 96) as u16) | u16::from(more);
        p.extend_from_slice(&[PROTO_TCP, 0]);
        p.extend_from_slice(&field.to_be_bytes());
        p.extend_from_slice(&77u32.to_be_bytes());
        p.extend_from_slice(chunk);
        if let Some(s) = d.decode(&frame(LinkType::IPV6, &p)) {
            got = Some(s.payload.to_vec());
        }
    }
    assert_eq!(got.as_deref(), Some(&[b'z'; 200][..]));
}

#[test]
fn bad_headers_are_counted_not_decoded() {
    let mut bad_ihl = ipv4_tcp(PAYLOAD);
    bad_ihl[0] = 0x43;
    let mut bad_offset = ipv4_tcp(PAYLOAD);
    bad_offset[IPV4_MIN_HEADER + TCP_DATA_OFFSET] = 0x20;
    let mut d = Decoder::new(Limits::default());
    assert!(d.decode(&frame(LinkType::RAW, &bad_ihl)).is_none());
    assert!(d.decode(&frame(LinkType::RAW, &bad_offset)).is_none());
    assert_eq!(
        (d.counters().ipv4_invalid, d.counters().tcp_invalid),
        (1, 1)
    );
}

#[test]
fn ports_are_peeked_where_they_are_plain_and_never_guessed() {
    let v4 = ipv4_tcp(PAYLOAD);
    let v6 = ipv6_tcp(PAYLOAD);
    for (link, data) in [
        (LinkType::ETHERNET, ethernet(ETHERTYPE_IPV4, &[], &v4)),
        (LinkType::ETHERNET, ethernet(ETHERTYPE_IPV6, &[], &v6)),
        (LinkType::RAW, v4.clone()),
        (LinkType::RAW, v6.clone()),
    ] {
        assert_eq!(peek_tcp_ports(&frame(link, &data)), Some((40000, 80)));
    }
    // A VLAN tag, a fragment, extension headers: only the decoder knows.
    let tagged = ethernet(ETHERTYPE_IPV4, &[ETHERTYPE_VLAN], &v4);
    assert_eq!(peek_tcp_ports(&frame(LinkType::ETHERNET, &tagged)), None);
    for f in ipv4_fragments(&ipv4_tcp(&[b'y'; 300]), 64) {
        assert_eq!(peek_tcp_ports(&frame(LinkType::RAW, &f)), None);
    }
    let ext = ipv6_with_ext(2, PAYLOAD);
    assert_eq!(peek_tcp_ports(&frame(LinkType::RAW, &ext)), None);
}

proptest! {
    /// Whatever the bytes, a peek never names ports the decoder would not find.
    #[test]
    fn a_peek_agrees_with_the_decoder(link in prop::sample::select(vec![1u32, 12, 101, 113, 228, 229, 276]), flip in prop::collection::vec((0usize..120, any::<u8>()), 0..6), v6 in any::<bool>()) {
        let ip = if v6 { ipv6_tcp(PAYLOAD) } else { ipv4_tcp(PAYLOAD) };
        let mut data = match link {
            1 => ethernet(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }, &[], &ip),
            113 => { let mut d = vec![0u8; SLL_HEADER]; d[SLL_PROTOCOL..SLL_PROTOCOL + 2].copy_from_slice(&(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }).to_be_bytes()); d.extend_from_slice(&ip); d }
            276 => { let mut d = vec![0u8; SLL2_HEADER]; d[SLL2_PROTOCOL..SLL2_PROTOCOL + 2].copy_from_slice(&(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 }).to_be_bytes()); d.extend_from_slice(&ip); d }
            _ => ip,
        };
        for (at, v) in flip {
            if let Some(b) = data.get_mut(at) { *b = v; }
        }
        let f = frame(LinkType(link), &data);
        if let Some(ports) = peek_tcp_ports(&f) {
            let mut d = Decoder::new(Limits::default());
            if let Some(s) = d.decode(&f) {
                prop_assert_eq!(ports, (s.src.port(), s.dst.port()));
            }
        }
    }

    #[test]
    fn garbage_on_every_link_type_never_panics(link in prop::sample::select(vec![0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]), data in prop::collection::vec(any::<u8>(), 0..200), orig_extra in 0u32..2000) {
        let mut d = Decoder::new(Limits::default());
        let f = Frame { ts: Timestamp(0), link: LinkType(link), data: &data, orig_len: data.len() as u32 + orig_extra };
        if let Some(s) = d.decode(&f) {
            prop_assert!(s.payload.len() <= data.len());
        }
    }

    #[test]
    fn mutated_real_packets_never_panic(flip in prop::collection::vec((0usize..94, any::<u8>()), 1..8)) {
        let mut data = ethernet(ETHERTYPE_IPV4, &[ETHERTYPE_VLAN], &ipv4_tcp(PAYLOAD));
        for (at, v) in flip {
            if let Some(b) = data.get_mut(at) { *b = v; }
        }
        let mut d = Decoder::new(Limits::default());
        let _ = d.decode(&frame(LinkType::ETHERNET, &data));
    }
}
