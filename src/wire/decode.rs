//! Link layer, IPv4/IPv6 and TCP header decoding, with named offsets; no allocation on the
//! path of an unfragmented packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::defrag::{Defrag, Key};
use super::limits::{DecoderCounters, Limits};
use super::{Segment, SeqNumber, TcpFlags};
use crate::capture::{Frame, LinkType, Timestamp};

const ETH_HEADER: usize = 14;
const ETH_TYPE: usize = 12;
const VLAN_TAG: usize = 4;
const SLL_HEADER: usize = 16;
const SLL_PROTOCOL: usize = 14;
const SLL2_HEADER: usize = 20;
const SLL2_PROTOCOL: usize = 0;
const NULL_HEADER: usize = 4;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// BSD address families for IPv4 and IPv6 (IPv6 differs by OS: NetBSD/OpenBSD 24,
/// FreeBSD 28, Darwin 30).
const AF_INET: u32 = 2;
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

const IPV4_MIN_HEADER: usize = 20;
const IPV4_TOTAL_LEN: usize = 2;
const IPV4_ID: usize = 4;
const IPV4_FRAG: usize = 6;
const IPV4_PROTO: usize = 9;
const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;
const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

const IPV6_HEADER: usize = 40;
const IPV6_PAYLOAD_LEN: usize = 4;
const IPV6_NEXT: usize = 6;
const IPV6_SRC: usize = 8;
const IPV6_DST: usize = 24;
const IPV6_FRAG_HEADER: usize = 8;
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;
const IPV6_MORE_FRAGMENTS: u8 = 0x01;

const PROTO_TCP: u8 = 6;
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
const EXT_MOBILITY: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

const TCP_MIN_HEADER: usize = 20;
const TCP_SEQ: usize = 4;
const TCP_ACK: usize = 8;
const TCP_DATA_OFFSET: usize = 12;
const TCP_FLAGS: usize = 13;
const TCP_WINDOW: usize = 14;

/// Distinct unsupported link types remembered for the warning; others are only counted.
const MAX_UNSUPPORTED_KINDS: usize = 16;

#[derive(Clone, Copy)]
enum Ip {
    V4,
    V6,
}

/// Where the TCP bytes of a packet are.
enum L4<'a> {
    /// In the frame: captured bytes and how many more the IP header says were on the wire.
    Frame(&'a [u8], u32),
    /// In the defragmenter's output buffer.
    Reassembled,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Frames to TCP segments. Keeps the fragment table and the counters.
pub struct Decoder {
    limits: Limits,
    counters: DecoderCounters,
    defrag: Defrag,
    unsupported: Vec<(LinkType, u64)>,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            counters: DecoderCounters::default(),
            defrag: Defrag::default(),
            unsupported: Vec::new(),
        }
    }

    pub fn counters(&self) -> &DecoderCounters {
        &self.counters
    }

    /// One line per kind of input that was skipped whole (unsupported link types).
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.unsupported
            .drain(..)
            .map(|(link, n)| format!("{n} frames of unsupported link type {link} skipped"))
            .collect()
    }

    /// Decodes one frame; None when it is not a TCP segment (counted by reason).
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Option<Segment<'a>> {
        self.counters.packets += 1;
        self.counters.bytes += frame.data.len() as u64;
        if frame.orig_len as usize > frame.data.len() {
            self.counters.truncated_frames += 1;
        }
        let (ip, l3) = self.link(frame)?;
        let ts = frame.ts;
        let (src, dst, l4) = match ip {
            Ip::V4 => self.ipv4(ts, l3)?,
            Ip::V6 => self.ipv6(ts, l3)?,
        };
        let (bytes, missing) = match l4 {
            L4::Frame(b, m) => (b, m),
            L4::Reassembled => (self.defrag.out.as_slice(), 0),
        };
        tcp(&mut self.counters, ts, src, dst, bytes, missing)
    }

    fn link<'a>(&mut self, frame: &Frame<'a>) -> Option<(Ip, &'a [u8])> {
        let d = frame.data;
        let c = &mut self.counters;
        let (ethertype, off) = match frame.link {
            LinkType::ETHERNET => {
                if d.len() < ETH_HEADER {
                    c.truncated_headers += 1;
                    return None;
                }
                let (mut et, mut off, mut tags) = (be16(d, ETH_TYPE), ETH_HEADER, 0);
                while matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
                    tags += 1;
                    c.vlan += 1;
                    if tags > self.limits.max_vlan_tags {
                        c.too_many_layers += 1;
                        return None;
                    }
                    if d.len() < off + VLAN_TAG {
                        c.truncated_headers += 1;
                        return None;
                    }
                    et = be16(d, off + 2);
                    off += VLAN_TAG;
                }
                (et, off)
            }
            LinkType::LINUX_SLL => {
                if d.len() < SLL_HEADER {
                    c.truncated_headers += 1;
                    return None;
                }
                (be16(d, SLL_PROTOCOL), SLL_HEADER)
            }
            LinkType::LINUX_SLL2 => {
                if d.len() < SLL2_HEADER {
                    c.truncated_headers += 1;
                    return None;
                }
                (be16(d, SLL2_PROTOCOL), SLL2_HEADER)
            }
            LinkType::NULL | LinkType::LOOP => {
                if d.len() < NULL_HEADER {
                    c.truncated_headers += 1;
                    return None;
                }
                let raw = [d[0], d[1], d[2], d[3]];
                // NULL is in the capturing host's byte order, LOOP in network order; try both
                // orders, then the IP version nibble, so a file from any host decodes.
                let family = |af: u32| match af {
                    AF_INET => Some(Ip::V4),
                    AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => Some(Ip::V6),
                    _ => None,
                };
                let ip = family(u32::from_be_bytes(raw))
                    .or_else(|| family(u32::from_le_bytes(raw)))
                    .or_else(|| version(&d[NULL_HEADER..]));
                return match ip {
                    Some(ip) => Some((ip, &d[NULL_HEADER..])),
                    None => {
                        c.non_ip += 1;
                        None
                    }
                };
            }
            LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => {
                return match version(d) {
                    Some(ip) => Some((ip, d)),
                    None => {
                        c.non_ip += 1;
                        None
                    }
                };
            }
            LinkType::IPV4 => return Some((Ip::V4, d)),
            LinkType::IPV6 => return Some((Ip::V6, d)),
            other => {
                c.unsupported_link += 1;
                if let Some((_, n)) = self.unsupported.iter_mut().find(|(l, _)| *l == other) {
                    *n += 1;
                } else if self.unsupported.len() < MAX_UNSUPPORTED_KINDS {
                    self.unsupported.push((other, 1));
                }
                return None;
            }
        };
        match ethertype {
            ETHERTYPE_IPV4 => Some((Ip::V4, &d[off..])),
            ETHERTYPE_IPV6 => Some((Ip::V6, &d[off..])),
            _ => {
                c.non_ip += 1;
                None
            }
        }
    }

    fn ipv4<'a>(&mut self, ts: Timestamp, b: &'a [u8]) -> Option<(IpAddr, IpAddr, L4<'a>)> {
        let c = &mut self.counters;
        if b.len() < IPV4_MIN_HEADER {
            c.truncated_headers += 1;
            return None;
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if b[0] >> 4 != 4 || ihl < IPV4_MIN_HEADER {
            c.ipv4_invalid += 1;
            return None;
        }
        if b.len() < ihl {
            c.truncated_headers += 1;
            return None;
        }
        let mut total = usize::from(be16(b, IPV4_TOTAL_LEN));
        if total == 0 {
            // TSO/GSO: the stack handed the NIC a super-frame with its length unset.
            c.ip_len_zero += 1;
            total = b.len();
        }
        if total < ihl {
            c.ipv4_invalid += 1;
            return None;
        }
        let b = trim(c, b, total);
        let missing = (total - b.len()) as u32;
        let src = IpAddr::V4(Ipv4Addr::new(
            b[IPV4_SRC],
            b[IPV4_SRC + 1],
            b[IPV4_SRC + 2],
            b[IPV4_SRC + 3],
        ));
        let dst = IpAddr::V4(Ipv4Addr::new(
            b[IPV4_DST],
            b[IPV4_DST + 1],
            b[IPV4_DST + 2],
            b[IPV4_DST + 3],
        ));
        if b[IPV4_PROTO] != PROTO_TCP {
            c.non_tcp += 1;
            return None;
        }
        let frag = be16(b, IPV4_FRAG);
        let more = frag & IPV4_MORE_FRAGMENTS != 0;
        let offset = u32::from(frag & IPV4_OFFSET_MASK) * 8;
        if !more && offset == 0 {
            return Some((src, dst, L4::Frame(&b[ihl..], missing)));
        }
        if missing > 0 {
            // A fragment cut by the snap length cannot complete its datagram.
            c.truncated_headers += 1;
            return None;
        }
        let key = Key {
            src,
            dst,
            id: u32::from(be16(b, IPV4_ID)),
            proto: PROTO_TCP,
        };
        let done = self.defrag.add(
            key,
            ts.nanos(),
            (offset, more, &b[ihl..]),
            &self.limits,
            &mut self.counters,
        );
        done.then_some((src, dst, L4::Reassembled))
    }

    fn ipv6<'a>(&mut self, ts: Timestamp, b: &'a [u8]) -> Option<(IpAddr, IpAddr, L4<'a>)> {
        let c = &mut self.counters;
        if b.len() < IPV6_HEADER {
            c.truncated_headers += 1;
            return None;
        }
        if b[0] >> 4 != 6 {
            c.ipv6_invalid += 1;
            return None;
        }
        let mut payload_len = usize::from(be16(b, IPV6_PAYLOAD_LEN));
        if payload_len == 0 {
            // A jumbogram or a TSO super-frame: take what was captured.
            c.ip_len_zero += 1;
            payload_len = b.len() - IPV6_HEADER;
        }
        let b = trim(c, b, IPV6_HEADER + payload_len);
        let missing = (IPV6_HEADER + payload_len - b.len()) as u32;
        let addr = |at: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let (src, dst) = (addr(IPV6_SRC), addr(IPV6_DST));
        let (mut next, mut off) = (b[IPV6_NEXT], IPV6_HEADER);
        let mut fragment = None;
        for _ in 0..=self.limits.max_ipv6_ext_headers {
            match next {
                PROTO_TCP => {
                    return match fragment {
                        None => Some((src, dst, L4::Frame(&b[off..], missing))),
                        Some((id, offset, more)) => {
                            if missing > 0 {
                                c.truncated_headers += 1;
                                return None;
                            }
                            let key = Key {
                                src,
                                dst,
                                id,
                                proto: PROTO_TCP,
                            };
                            let done = self.defrag.add(
                                key,
                                ts.nanos(),
                                (offset, more, &b[off..]),
                                &self.limits,
                                &mut self.counters,
                            );
                            done.then_some((src, dst, L4::Reassembled))
                        }
                    };
                }
                EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_MOBILITY | EXT_HIP
                | EXT_SHIM6 | EXT_AH | EXT_FRAGMENT => {
                    if b.len() < off + 2 {
                        c.truncated_headers += 1;
                        return None;
                    }
                    let len = match next {
                        EXT_FRAGMENT => IPV6_FRAG_HEADER,
                        EXT_AH => (usize::from(b[off + 1]) + 2) * 4,
                        _ => (usize::from(b[off + 1]) + 1) * 8,
                    };
                    if b.len() < off + len {
                        c.truncated_headers += 1;
                        return None;
                    }
                    if next == EXT_FRAGMENT {
                        let field = be16(b, off + 2);
                        let more = b[off + 3] & IPV6_MORE_FRAGMENTS != 0;
                        let offset = u32::from(field & IPV6_FRAG_OFFSET_MASK);
                        if more || offset != 0 {
                            fragment = Some((be32(b, off + 4), offset, more));
                        }
                    }
                    next = b[off];
                    off += len;
                }
                _ => {
                    c.non_tcp += 1;
                    return None;
                }
            }
        }
        c.ipv6_ext_too_many += 1;
        None
    }
}

/// The IP version nibble of a raw IP packet.
fn version(b: &[u8]) -> Option<Ip> {
    match b.first().map(|v| v >> 4) {
        Some(4) => Some(Ip::V4),
        Some(6) => Some(Ip::V6),
        _ => None,
    }
}

/// Cuts link-layer padding after the IP packet's declared end.
fn trim<'a>(c: &mut DecoderCounters, b: &'a [u8], declared: usize) -> &'a [u8] {
    if b.len() > declared {
        c.l2_padding_trimmed += 1;
        &b[..declared]
    } else {
        b
    }
}

fn tcp<'a>(
    c: &mut DecoderCounters,
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    b: &'a [u8],
    missing: u32,
) -> Option<Segment<'a>> {
    if b.len() < TCP_MIN_HEADER {
        if missing > 0 {
            c.truncated_headers += 1;
        } else {
            c.tcp_invalid += 1;
        }
        return None;
    }
    let data_offset = usize::from(b[TCP_DATA_OFFSET] >> 4) * 4;
    if data_offset < TCP_MIN_HEADER {
        c.tcp_invalid += 1;
        return None;
    }
    if data_offset > b.len() {
        if missing as usize >= data_offset - b.len() {
            c.truncated_headers += 1;
        } else {
            c.tcp_invalid += 1;
        }
        return None;
    }
    c.tcp_segments += 1;
    Some(Segment {
        ts,
        src: SocketAddr::new(src, be16(b, 0)),
        dst: SocketAddr::new(dst, be16(b, 2)),
        seq: SeqNumber(be32(b, TCP_SEQ)),
        ack: SeqNumber(be32(b, TCP_ACK)),
        flags: TcpFlags(b[TCP_FLAGS]),
        window: be16(b, TCP_WINDOW),
        payload: &b[data_offset..],
        missing,
    })
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

/// The TCP ports of a frame, when they can be read without decoding it: Ethernet without a
/// VLAN tag, Linux SLL or SLL2, or raw IP, carrying an IPv4 packet that is not a fragment or
/// an IPv6 packet whose next header is TCP. None otherwise (the frame must then be decoded
/// to know). A pass that only looks for some ports skips the frames this says are not theirs.
pub fn peek_tcp_ports(frame: &Frame<'_>) -> Option<(u16, u16)> {
    let d = frame.data;
    let (ethertype, off) = match frame.link {
        LinkType::ETHERNET if d.len() >= ETH_HEADER => (be16(d, ETH_TYPE), ETH_HEADER),
        LinkType::LINUX_SLL if d.len() >= SLL_HEADER => (be16(d, SLL_PROTOCOL), SLL_HEADER),
        LinkType::LINUX_SLL2 if d.len() >= SLL2_HEADER => (be16(d, SLL2_PROTOCOL), SLL2_HEADER),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => match d.first().map(|b| b >> 4) {
            Some(4) => (ETHERTYPE_IPV4, 0),
            Some(6) => (ETHERTYPE_IPV6, 0),
            _ => return None,
        },
        _ => return None,
    };
    let ip = d.get(off..)?;
    let l4 = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let frag = be16(ip.get(..IPV4_MIN_HEADER)?, IPV4_FRAG);
            let whole = frag & (IPV4_MORE_FRAGMENTS | IPV4_OFFSET_MASK) == 0;
            if ip[0] >> 4 != 4 || ihl < IPV4_MIN_HEADER || ip[IPV4_PROTO] != PROTO_TCP || !whole {
                return None;
            }
            ip.get(ihl..)?
        }
        ETHERTYPE_IPV6 => {
            if *ip.first()? >> 4 != 6 || *ip.get(IPV6_NEXT)? != PROTO_TCP {
                return None;
            }
            ip.get(IPV6_HEADER..)?
        }
        _ => return None,
    };
    let ports = l4.get(..4)?;
    Some((be16(ports, 0), be16(ports, 2)))
}
