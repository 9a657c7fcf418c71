//! Capture file writers for tests, independent of the reader under test: classic pcap in
//! either byte order and resolution, and pcapng with several interfaces.

use super::packets::TestFrame;

/// Classic pcap bytes. `nanos` picks magic a1b23c4d; `big_endian` the byte order.
pub fn pcap(linktype: u32, frames: &[TestFrame], nanos: bool, big_endian: bool) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&u32b(0)); // thiszone
    out.extend_from_slice(&u32b(0)); // sigfigs
    out.extend_from_slice(&u32b(262_144)); // snaplen
    out.extend_from_slice(&u32b(linktype));
    for f in frames {
        let secs = f.ts.div_euclid(1_000_000_000);
        let frac = f.ts.rem_euclid(1_000_000_000);
        let frac = if nanos { frac } else { frac / 1000 };
        out.extend_from_slice(&u32b(secs as u32));
        out.extend_from_slice(&u32b(frac as u32));
        out.extend_from_slice(&u32b(f.data.len() as u32));
        out.extend_from_slice(&u32b(f.orig_len));
        out.extend_from_slice(&f.data);
    }
    out
}

/// One pcapng interface: link type and `if_tsresol` (10^-n seconds).
pub struct Interface {
    pub linktype: u16,
    pub tsresol: u8,
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&total.to_le_bytes());
}

/// Little-endian pcapng: one section, the given interfaces, and Enhanced Packet Blocks
/// `(interface index, frame)`.
pub fn pcapng(interfaces: &[Interface], packets: &[(u32, TestFrame)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    block(&mut out, 0x0a0d_0d0a, &shb);
    for i in interfaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&i.linktype.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        // if_tsresol option (code 9, length 1), then opt_endofopt.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[i.tsresol, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut out, 1, &idb);
    }
    for (iface, f) in packets {
        let resol = interfaces[*iface as usize].tsresol;
        let units = (f.ts as i128 * 10i128.pow(u32::from(resol)) / 1_000_000_000) as u64;
        let mut epb = Vec::new();
        epb.extend_from_slice(&iface.to_le_bytes());
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(units as u32).to_le_bytes());
        epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&f.orig_len.to_le_bytes());
        epb.extend_from_slice(&f.data);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        block(&mut out, 6, &epb);
    }
    out
}
