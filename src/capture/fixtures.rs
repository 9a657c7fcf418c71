//! Test-only builders for capture bytes: classic pcap headers and records, pcapng blocks, in
//! either byte order. Everything the reader tests feed in is built here, field by field.

use super::endian::Endian;

pub(crate) fn u16b(e: Endian, v: u16) -> [u8; 2] {
    match e {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    }
}

pub(crate) fn u32b(e: Endian, v: u32) -> [u8; 4] {
    match e {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    }
}

pub(crate) fn u64b(e: Endian, v: u64) -> [u8; 8] {
    match e {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    }
}

/// Classic pcap file header.
pub(crate) fn pcap_header(e: Endian, nanos: bool, snaplen: u32, link: u32) -> Vec<u8> {
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(e, magic));
    v.extend_from_slice(&u16b(e, 2));
    v.extend_from_slice(&u16b(e, 4));
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&u32b(e, snaplen));
    v.extend_from_slice(&u32b(e, link));
    v
}

/// Appends a classic pcap record with explicit caplen (usually `data.len()`).
pub(crate) fn pcap_record_raw(
    out: &mut Vec<u8>,
    e: Endian,
    secs: u32,
    frac: u32,
    caplen: u32,
    orig_len: u32,
    data: &[u8],
) {
    out.extend_from_slice(&u32b(e, secs));
    out.extend_from_slice(&u32b(e, frac));
    out.extend_from_slice(&u32b(e, caplen));
    out.extend_from_slice(&u32b(e, orig_len));
    out.extend_from_slice(data);
}

pub(crate) fn pcap_record(out: &mut Vec<u8>, e: Endian, secs: u32, frac: u32, data: &[u8]) {
    pcap_record_raw(
        out,
        e,
        secs,
        frac,
        data.len() as u32,
        data.len() as u32,
        data,
    );
}

/// A pcapng block: type, length, body padded to 4, length.
pub(crate) fn ng_block(e: Endian, btype: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let len = (12 + padded) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(e, btype));
    v.extend_from_slice(&u32b(e, len));
    v.extend_from_slice(body);
    v.resize(8 + padded, 0);
    v.extend_from_slice(&u32b(e, len));
    v
}

pub(crate) fn ng_shb(e: Endian) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u32b(e, 0x1A2B_3C4D));
    body.extend_from_slice(&u16b(e, 1));
    body.extend_from_slice(&u16b(e, 0));
    body.extend_from_slice(&u64b(e, u64::MAX)); // section length unknown
    ng_block(e, 0x0A0D_0D0A, &body)
}

pub(crate) fn ng_idb(
    e: Endian,
    link: u16,
    snaplen: u32,
    tsresol: Option<u8>,
    tsoffset: Option<i64>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16b(e, link));
    body.extend_from_slice(&u16b(e, 0));
    body.extend_from_slice(&u32b(e, snaplen));
    if let Some(r) = tsresol {
        body.extend_from_slice(&u16b(e, 9));
        body.extend_from_slice(&u16b(e, 1));
        body.extend_from_slice(&[r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        body.extend_from_slice(&u16b(e, 14));
        body.extend_from_slice(&u16b(e, 8));
        body.extend_from_slice(&u64b(e, o as u64));
    }
    if tsresol.is_some() || tsoffset.is_some() {
        body.extend_from_slice(&[0; 4]);
    }
    ng_block(e, 1, &body)
}

fn packet_body(e: Endian, if_field: &[u8], units: u64, data: &[u8], orig_len: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(if_field);
    body.extend_from_slice(&u32b(e, (units >> 32) as u32));
    body.extend_from_slice(&u32b(e, units as u32));
    body.extend_from_slice(&u32b(e, data.len() as u32));
    body.extend_from_slice(&u32b(e, orig_len));
    body.extend_from_slice(data);
    body
}

pub(crate) fn ng_epb(e: Endian, if_id: u32, units: u64, data: &[u8], orig_len: u32) -> Vec<u8> {
    ng_block(
        e,
        6,
        &packet_body(e, &u32b(e, if_id), units, data, orig_len),
    )
}

/// Obsolete Packet Block (type 2): 16-bit interface id and drops count.
pub(crate) fn ng_pb(e: Endian, if_id: u16, units: u64, data: &[u8], orig_len: u32) -> Vec<u8> {
    let mut if_field = u16b(e, if_id).to_vec();
    if_field.extend_from_slice(&u16b(e, 0));
    ng_block(e, 2, &packet_body(e, &if_field, units, data, orig_len))
}

pub(crate) fn ng_spb(e: Endian, orig_len: u32, data: &[u8]) -> Vec<u8> {
    let mut body = u32b(e, orig_len).to_vec();
    body.extend_from_slice(data);
    ng_block(e, 3, &body)
}
