//! A packet builder for test captures: TCP conversations framed in any supported link type.
//!
//! Each `Conv` tracks both sides' sequence numbers so tests and fixtures read as the
//! conversation they describe; `raw` builds anything else (retransmissions, holes, RSTs).

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

/// How frames are framed on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    /// 802.1Q tag with this VLAN id.
    Vlan(u16),
    /// 802.1ad outer tag then 802.1Q inner tag.
    QinQ(u16, u16),
    LinuxSll,
    LinuxSll2,
    /// BSD loopback, address family in little-endian (as written on x86 hosts).
    NullLe,
    /// BSD loopback, address family in big-endian.
    NullBe,
    /// OpenBSD loopback (network order).
    Loop,
    /// Raw IP (link type 101).
    Raw,
}

impl Link {
    pub fn linktype(self) -> u32 {
        match self {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => 1,
            Link::LinuxSll => 113,
            Link::LinuxSll2 => 276,
            Link::NullLe | Link::NullBe => 0,
            Link::Loop => 108,
            Link::Raw => 101,
        }
    }

    /// Wraps an IP packet in this link's header.
    pub fn frame(self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut f = Vec::with_capacity(ip.len() + 24);
        const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
        const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
        match self {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => {
                f.extend_from_slice(&DST_MAC);
                f.extend_from_slice(&SRC_MAC);
                match self {
                    Link::Vlan(id) => {
                        f.extend_from_slice(&0x8100u16.to_be_bytes());
                        f.extend_from_slice(&id.to_be_bytes());
                    }
                    Link::QinQ(outer, inner) => {
                        f.extend_from_slice(&0x88a8u16.to_be_bytes());
                        f.extend_from_slice(&outer.to_be_bytes());
                        f.extend_from_slice(&0x8100u16.to_be_bytes());
                        f.extend_from_slice(&inner.to_be_bytes());
                    }
                    _ => {}
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::LinuxSll => {
                f.extend_from_slice(&0u16.to_be_bytes()); // packet type: to us
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.extend_from_slice(&6u16.to_be_bytes());
                f.extend_from_slice(&SRC_MAC);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::LinuxSll2 => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(&[0, 0]); // reserved
                f.extend_from_slice(&1u32.to_be_bytes()); // interface index
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.push(0); // packet type
                f.push(6);
                f.extend_from_slice(&SRC_MAC);
                f.extend_from_slice(&[0, 0]);
            }
            Link::NullLe | Link::NullBe | Link::Loop => {
                // AF_INET is 2 everywhere; AF_INET6 is 24 on NetBSD/OpenBSD (the value
                // OpenBSD's LOOP uses), 30 on macOS: both are exercised.
                let af: u32 = match (v6, self) {
                    (false, _) => 2,
                    (true, Link::Loop) => 24,
                    (true, _) => 30,
                };
                match self {
                    Link::NullLe => f.extend_from_slice(&af.to_le_bytes()),
                    _ => f.extend_from_slice(&af.to_be_bytes()),
                }
            }
            Link::Raw => {}
        }
        f.extend_from_slice(ip);
        f
    }
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// An IP/TCP packet (no link header).
pub fn ip_tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    };
    let mut b = b.tcp(src.port(), dst.port(), seq, 65535);
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    if flags & PSH != 0 {
        b = b.psh();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("building a test packet");
    out
}

/// One captured frame: time in nanoseconds since the epoch, bytes, length on the wire.
#[derive(Clone, Debug)]
pub struct TestFrame {
    pub ts: i64,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

/// A TCP conversation being written frame by frame.
pub struct Conv {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub link: Link,
    /// Next sequence number of each side.
    pub cseq: u32,
    pub sseq: u32,
    /// Current time, nanoseconds since the epoch.
    pub now: i64,
    /// Time added after each frame.
    pub step: i64,
    pub frames: Vec<TestFrame>,
}

/// 2023-11-14 22:13:20 UTC, the time every fixture starts at.
pub const T0: i64 = 1_700_000_000_000_000_000;

impl Conv {
    pub fn new(client: &str, server: &str, link: Link) -> Conv {
        Conv {
            client: client.parse().expect("client address"),
            server: server.parse().expect("server address"),
            link,
            cseq: 1_000,
            sseq: 5_000,
            now: T0,
            step: 100_000,
            frames: Vec::new(),
        }
    }

    pub fn isns(mut self, client: u32, server: u32) -> Conv {
        self.cseq = client;
        self.sseq = server;
        self
    }

    pub fn at(mut self, now: i64) -> Conv {
        self.now = now;
        self
    }

    /// Waits `micros` before the next frame.
    pub fn wait(&mut self, micros: i64) -> &mut Conv {
        self.now += micros * 1000;
        self
    }

    /// Adds a frame built from an IP packet.
    pub fn push_ip(&mut self, ip: &[u8]) -> &mut Conv {
        let data = self.link.frame(ip);
        let orig_len = data.len() as u32;
        self.frames.push(TestFrame {
            ts: self.now,
            data,
            orig_len,
        });
        self.now += self.step;
        self
    }

    /// A segment with explicit sequence numbers (does not move the conversation's own).
    pub fn raw(
        &mut self,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> &mut Conv {
        let (s, d) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let ip = ip_tcp(s, d, seq, ack, flags, payload);
        self.push_ip(&ip)
    }

    pub fn handshake(&mut self) -> &mut Conv {
        let (c, s) = (self.cseq, self.sseq);
        self.raw(true, c, 0, SYN, b"");
        self.raw(false, s, c.wrapping_add(1), SYN | ACK, b"");
        self.cseq = c.wrapping_add(1);
        self.sseq = s.wrapping_add(1);
        let (c, s) = (self.cseq, self.sseq);
        self.raw(true, c, s, ACK, b"")
    }

    /// The client sends `data` in segments of at most `mss` bytes.
    pub fn client_mss(&mut self, data: &[u8], mss: usize) -> &mut Conv {
        for chunk in data.chunks(mss.max(1)) {
            let (c, s) = (self.cseq, self.sseq);
            self.raw(true, c, s, PSH | ACK, chunk);
            self.cseq = c.wrapping_add(chunk.len() as u32);
        }
        self
    }

    pub fn server_mss(&mut self, data: &[u8], mss: usize) -> &mut Conv {
        for chunk in data.chunks(mss.max(1)) {
            let (c, s) = (self.cseq, self.sseq);
            self.raw(false, s, c, PSH | ACK, chunk);
            self.sseq = s.wrapping_add(chunk.len() as u32);
        }
        self
    }

    pub fn client(&mut self, data: &[u8]) -> &mut Conv {
        self.client_mss(data, 1448)
    }

    pub fn server(&mut self, data: &[u8]) -> &mut Conv {
        self.server_mss(data, 1448)
    }

    /// A bare ACK from the client for everything the server sent.
    pub fn client_ack(&mut self) -> &mut Conv {
        let (c, s) = (self.cseq, self.sseq);
        self.raw(true, c, s, ACK, b"")
    }

    /// FIN from the client, FIN from the server, last ACK.
    pub fn close(&mut self) -> &mut Conv {
        let (c, s) = (self.cseq, self.sseq);
        self.raw(true, c, s, FIN | ACK, b"");
        self.raw(false, s, c.wrapping_add(1), FIN | ACK, b"");
        self.cseq = c.wrapping_add(1);
        self.sseq = s.wrapping_add(1);
        let (c, s) = (self.cseq, self.sseq);
        self.raw(true, c, s, ACK, b"")
    }
}

/// Interleaves several conversations' frames in time order.
pub fn merge(convs: Vec<Conv>) -> Vec<TestFrame> {
    let mut all: Vec<TestFrame> = convs.into_iter().flat_map(|c| c.frames).collect();
    all.sort_by_key(|f| f.ts);
    all
}
