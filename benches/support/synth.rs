//! A synthetic capture of keep-alive HTTP/1.1 traffic, shared by the `gencap` example (files
//! for the end-to-end benchmark) and the criterion stage benchmarks (in memory): many
//! connections, each with many GET requests answered by nginx-like responses.
//!
//! Connections are interleaved (16 open at a time) and every data segment is ACKed, as in a
//! real capture. `mss` 0 puts every message in one packet (loopback's 64 KiB MTU); 1448 cuts
//! them as a real Ethernet network does.

use std::io::{self, Write};

use etherparse::PacketBuilder;

/// Connections open at a time unless the caller asks for another number.
pub const CONCURRENT: usize = 16;
const REQUESTS_PER_CONN: u32 = 200;

struct Conn {
    port: u16,
    cseq: u32,
    sseq: u32,
    sent: u32,
}

/// The response body of the generated pages: about 2.8 KB of HTML.
pub const PAGE: Option<usize> = None;

/// Writes a classic pcap (microseconds, little endian, Ethernet) of about `size` bytes to `w`.
/// Returns the bytes written and the number of requests in it. `body` is the responses' body
/// length: [`PAGE`] for 200 responses with a 2.8 KB page, `Some(0)` for `204 No Content`.
pub fn write_capture<W: Write>(
    w: &mut W,
    size: u64,
    mss: usize,
    concurrent: usize,
    body: Option<usize>,
) -> io::Result<(u64, u64)> {
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&262_144u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;

    let body = match body {
        None => {
            "<html><body>".to_string()
                + &"shadowtap benchmark payload ".repeat(100)
                + "</body></html>\n"
        }
        Some(n) => "x".repeat(n),
    };
    let mut written = 24u64;
    let mut now_us: u64 = 1_700_000_000_000_000;
    let mut next_port = 10_000u16;
    let mut conns: Vec<Conn> = Vec::new();
    let mut frame = Vec::with_capacity(70_000);
    let mut requests = 0u64;
    let pkt = |w: &mut W,
               now: u64,
               from_client: bool,
               port: u16,
               seq: u32,
               ack: u32,
               flags: u8,
               payload: &[u8],
               frame: &mut Vec<u8>|
     -> std::io::Result<u64> {
        let (sp, dp, s, d) = if from_client {
            (port, 8080, [127, 0, 0, 1], [127, 0, 0, 2])
        } else {
            (8080, port, [127, 0, 0, 2], [127, 0, 0, 1])
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(s, d, 64)
            .tcp(sp, dp, seq, 65_535);
        if flags & 2 != 0 {
            b = b.syn();
        }
        if flags & 1 != 0 {
            b = b.fin();
        }
        if flags & 0x10 != 0 {
            b = b.ack(ack);
        }
        if flags & 8 != 0 {
            b = b.psh();
        }
        frame.clear();
        b.write(frame, payload).map_err(std::io::Error::other)?;
        w.write_all(&((now / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((now % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(frame)?;
        Ok(16 + frame.len() as u64)
    };

    let mut i = 0usize;
    while written < size {
        while conns.len() < concurrent.max(1) {
            next_port = if next_port >= 60_000 {
                10_000
            } else {
                next_port + 1
            };
            let mut c = Conn {
                port: next_port,
                cseq: 1_000,
                sseq: 90_000,
                sent: 0,
            };
            now_us += 3;
            written += pkt(w, now_us, true, c.port, c.cseq, 0, 2, b"", &mut frame)?;
            written += pkt(
                w,
                now_us + 1,
                false,
                c.port,
                c.sseq,
                c.cseq + 1,
                0x12,
                b"",
                &mut frame,
            )?;
            c.cseq += 1;
            c.sseq += 1;
            written += pkt(
                w,
                now_us + 2,
                true,
                c.port,
                c.cseq,
                c.sseq,
                0x10,
                b"",
                &mut frame,
            )?;
            conns.push(c);
        }
        i = (i + 1) % conns.len();
        let c = &mut conns[i];
        now_us += 7;
        let req = format!(
            "GET /api/items/{}?page={} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: gencap\r\nAccept: */*\r\n\r\n",
            requests % 5000,
            c.sent
        );
        let resp = if body.is_empty() {
            "HTTP/1.1 204 No Content\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: keep-alive\r\n\r\n".to_string()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nContent-Type: text/html\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 10:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6553b1e0-{:x}\"\r\nAccept-Ranges: bytes\r\n\r\n{}",
                body.len(),
                body.len(),
                body
            )
        };
        let seg = if mss == 0 { usize::MAX } else { mss };
        for chunk in req.as_bytes().chunks(seg.min(req.len())) {
            written += pkt(
                w, now_us, true, c.port, c.cseq, c.sseq, 0x18, chunk, &mut frame,
            )?;
            c.cseq += chunk.len() as u32;
        }
        now_us += 40;
        written += pkt(
            w, now_us, false, c.port, c.sseq, c.cseq, 0x10, b"", &mut frame,
        )?;
        now_us += 60;
        for chunk in resp.as_bytes().chunks(seg.min(resp.len())) {
            written += pkt(
                w, now_us, false, c.port, c.sseq, c.cseq, 0x18, chunk, &mut frame,
            )?;
            c.sseq += chunk.len() as u32;
            now_us += 1;
        }
        written += pkt(
            w,
            now_us + 20,
            true,
            c.port,
            c.cseq,
            c.sseq,
            0x10,
            b"",
            &mut frame,
        )?;
        c.sent += 1;
        requests += 1;
        if c.sent == REQUESTS_PER_CONN {
            let c = conns.swap_remove(i);
            written += pkt(
                w,
                now_us + 30,
                true,
                c.port,
                c.cseq,
                c.sseq,
                0x11,
                b"",
                &mut frame,
            )?;
            written += pkt(
                w,
                now_us + 31,
                false,
                c.port,
                c.sseq,
                c.cseq + 1,
                0x11,
                b"",
                &mut frame,
            )?;
            written += pkt(
                w,
                now_us + 32,
                true,
                c.port,
                c.cseq + 1,
                c.sseq + 1,
                0x10,
                b"",
                &mut frame,
            )?;
        }
    }
    // Close what is still open so every request has its whole conversation.
    for c in conns.drain(..) {
        now_us += 10;
        written += pkt(
            w, now_us, true, c.port, c.cseq, c.sseq, 0x11, b"", &mut frame,
        )?;
        written += pkt(
            w,
            now_us + 1,
            false,
            c.port,
            c.sseq,
            c.cseq + 1,
            0x11,
            b"",
            &mut frame,
        )?;
    }
    Ok((written, requests))
}
