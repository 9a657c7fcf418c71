//! The committed fixture captures, each small and named for one behaviour. This catalog is how
//! they are made: `cargo test -- --ignored regenerate_fixtures` rewrites tests/fixtures/, and
//! `fixtures_are_current` fails when a committed file differs from what its recipe makes.
//! tests/fixtures/README.md describes each one.

use super::files::{pcap, pcapng, Interface};
use super::packets::{merge, Conv, Link, TestFrame, ACK, FIN, PSH, RST, T0};

pub struct Fixture {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: fixture\r\n\r\n").into_bytes()
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn status(code: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn classic(link: Link, frames: &[TestFrame]) -> Vec<u8> {
    pcap(link.linktype(), frames, false, false)
}

/// Three requests on one keep-alive connection, each answered, then FIN.
fn keepalive(link: Link, client: &str, server: &str) -> Conv {
    keepalive_at(link, client, server, T0)
}

fn keepalive_at(link: Link, client: &str, server: &str, start: i64) -> Conv {
    let mut c = Conv::new(client, server, link).at(start);
    c.handshake();
    for (path, body) in [
        ("/api/users/1", "alice"),
        ("/api/users/2", "bob"),
        ("/health", "ok"),
    ] {
        c.client(&get(path))
            .wait(1_500)
            .server(&ok(body))
            .client_ack()
            .wait(10_000);
    }
    c.close();
    c
}

pub fn all() -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, bytes: Vec<u8>| out.push(Fixture { name, bytes });

    // Link types, each carrying the same keep-alive conversation.
    let conv = keepalive(Link::Ethernet, "10.0.0.1:40000", "10.0.0.2:80");
    add(
        "keepalive-ethernet.pcap",
        classic(Link::Ethernet, &conv.frames),
    );
    add(
        "keepalive-nanosecond-bigendian.pcap",
        pcap(1, &conv.frames, true, true),
    );
    for (name, link) in [
        ("link-vlan.pcap", Link::Vlan(100)),
        ("link-qinq.pcap", Link::QinQ(200, 100)),
        ("link-sll.pcap", Link::LinuxSll),
        ("link-sll2.pcap", Link::LinuxSll2),
        ("link-null-le.pcap", Link::NullLe),
        ("link-null-be.pcap", Link::NullBe),
        ("link-loop.pcap", Link::Loop),
        ("link-raw.pcap", Link::Raw),
    ] {
        let conv = keepalive(link, "10.0.0.1:40000", "10.0.0.2:80");
        add(name, classic(link, &conv.frames));
    }
    let v6 = keepalive(Link::NullLe, "[::1]:40000", "[::1]:8080");
    add("link-null-ipv6.pcap", classic(Link::NullLe, &v6.frames));

    // pcapng with two interfaces of different link types and timestamp resolutions.
    let a = keepalive(Link::Ethernet, "10.0.0.1:40000", "10.0.0.2:80");
    let mut b = Conv::new("10.0.1.1:41000", "10.0.1.2:8080", Link::Raw).at(T0 + 3_000_000);
    b.handshake();
    b.client(&get("/other"))
        .wait(900)
        .server(&ok("other"))
        .close();
    let mut packets: Vec<(u32, TestFrame)> = a.frames.iter().cloned().map(|f| (0, f)).collect();
    packets.extend(b.frames.iter().cloned().map(|f| (1, f)));
    packets.sort_by_key(|(_, f)| f.ts);
    add(
        "pcapng-two-interfaces.pcapng",
        pcapng(
            &[
                Interface {
                    linktype: 1,
                    tsresol: 6,
                },
                Interface {
                    linktype: 101,
                    tsresol: 9,
                },
            ],
            &packets,
        ),
    );

    // Pipelining: three requests in one segment, three responses in one segment.
    let mut c = Conv::new("10.0.0.1:40001", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    let reqs = [get("/a"), get("/b"), get("/c")].concat();
    let resps = [ok("A"), status(404, "Not Found", "nope"), ok("C")].concat();
    c.client(&reqs).wait(2_000).server(&resps).close();
    add("pipelined.pcap", classic(Link::Ethernet, &c.frames));

    // Requests and responses cut into tiny segments, reordered and retransmitted.
    let mut c = Conv::new("10.0.0.1:40002", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    let req = get("/reorder?x=1");
    let (c0, s0) = (c.cseq, c.sseq);
    // Segments 2 and 1 swapped, segment 1 sent twice, then a re-packetised copy of all.
    c.raw(true, c0 + 10, s0, PSH | ACK, &req[10..20]);
    c.raw(true, c0, s0, PSH | ACK, &req[..10]);
    c.raw(true, c0, s0, PSH | ACK, &req[..10]);
    c.raw(true, c0, s0, PSH | ACK, &req);
    c.cseq = c0 + req.len() as u32;
    c.wait(700).server_mss(&ok("reordered body"), 7).close();
    add(
        "reorder-retransmit.pcap",
        classic(Link::Ethernet, &c.frames),
    );

    // A response segment lost in capture (the client ACKs past it): body gap, flagged.
    let mut c = Conv::new("10.0.0.1:40003", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(&get("/big")).wait(1_000);
    let body = "x".repeat(3000);
    let resp = ok(&body);
    let (cs, s0) = (c.cseq, c.sseq);
    c.raw(false, s0, cs, ACK, &resp[..1000]);
    // resp[1000..2000] is never captured.
    c.raw(false, s0 + 2000, cs, PSH | ACK, &resp[2000..]);
    c.sseq = s0 + resp.len() as u32;
    c.client_ack();
    c.client(&get("/after-gap"))
        .wait(800)
        .server(&ok("fine"))
        .close();
    add("response-body-gap.pcap", classic(Link::Ethernet, &c.frames));

    // Sequence numbers crossing 2^32 in both directions.
    let mut c = Conv::new("10.0.0.1:40004", "10.0.0.2:80", Link::Ethernet)
        .isns(u32::MAX - 10, u32::MAX - 3);
    c.handshake();
    c.client_mss(&get("/wrap"), 5)
        .wait(500)
        .server_mss(&ok("wrapped around"), 6)
        .close();
    add("seq-wraparound.pcap", classic(Link::Ethernet, &c.frames));

    // Picked up mid-stream: no handshake, first bytes are the tail of an earlier response.
    let mut c = Conv::new("10.0.0.1:40005", "10.0.0.2:80", Link::Ethernet);
    c.server(b"tail of an earlier body\r\n");
    c.client(&get("/midstream"))
        .wait(600)
        .server(&ok("seen"))
        .close();
    add("midstream.pcap", classic(Link::Ethernet, &c.frames));

    // Expect: 100-continue, interim 100, body, final 201; then HEAD with a Content-Length.
    let mut c = Conv::new("10.0.0.1:40006", "10.0.0.2:8080", Link::Ethernet);
    c.handshake();
    c.client(b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
    c.wait(300).server(b"HTTP/1.1 100 Continue\r\n\r\n");
    c.client(b"hello world").wait(900);
    c.server(&status(201, "Created", "done"));
    c.client(b"HEAD /upload HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .wait(400);
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    c.client(&get("/after-head"))
        .wait(400)
        .server(&ok("z"))
        .close();
    add(
        "expect-continue-and-head.pcap",
        classic(Link::Ethernet, &c.frames),
    );

    // Chunked response with an extension and a trailer; chunked request body.
    let mut c = Conv::new("10.0.0.1:40007", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(b"POST /chunks HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=\"a;b\"\r\n world\r\n0\r\n\r\n");
    c.wait(1_200);
    c.server_mss(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n", 9);
    c.close();
    add("chunked.pcap", classic(Link::Ethernet, &c.frames));

    // Response with neither Content-Length nor chunked: the body ends at the server's FIN.
    let mut c = Conv::new("10.0.0.1:40008", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(b"GET /legacy HTTP/1.0\r\n\r\n").wait(500);
    c.server(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    let (cs, ss) = (c.cseq, c.sseq);
    c.raw(false, ss, cs, FIN | ACK, b"");
    c.raw(true, cs, ss + 1, FIN | ACK, b"");
    add("close-delimited.pcap", classic(Link::Ethernet, &c.frames));

    // Upgrade to WebSocket: the 101 ends HTTP parsing of the connection.
    let mut c = Conv::new("10.0.0.1:40009", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(b"GET /ws HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    c.wait(300).server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    c.client(b"\x81\x05hello GET /not-http HTTP/1.1\r\n\r\n")
        .server(b"\x81\x02hi")
        .close();
    add("upgrade-websocket.pcap", classic(Link::Ethernet, &c.frames));

    // Not HTTP/1 on an HTTP port: an HTTP/2 preface, a TLS ClientHello, binary junk.
    let mut h2 = Conv::new("10.0.0.1:40010", "10.0.0.2:80", Link::Ethernet);
    h2.handshake();
    h2.client(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .close();
    let mut tls = Conv::new("10.0.0.1:40011", "10.0.0.2:80", Link::Ethernet).at(T0 + 1_000_000);
    tls.handshake();
    tls.client(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
        .close();
    let mut junk = Conv::new("10.0.0.1:40012", "10.0.0.2:80", Link::Ethernet).at(T0 + 2_000_000);
    junk.handshake();
    junk.client(&[0xde; 1500])
        .client(&get("/after-junk"))
        .close();
    add(
        "not-http1.pcap",
        classic(Link::Ethernet, &merge(vec![h2, tls, junk])),
    );

    // A connection reset in the middle of a response.
    let mut c = Conv::new("10.0.0.1:40013", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(&get("/reset")).wait(400);
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    let (cs, ss) = (c.cseq, c.sseq);
    c.raw(false, ss, cs, RST | ACK, b"");
    add(
        "reset-mid-response.pcap",
        classic(Link::Ethernet, &c.frames),
    );

    // Ambiguous framing: Content-Length and chunked together.
    let mut c = Conv::new("10.0.0.1:40014", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(b"POST /smuggle HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    c.wait(300).server(&status(400, "Bad Request", "")).close();
    add("ambiguous-cl-te.pcap", classic(Link::Ethernet, &c.frames));

    // Two files to merge: each half of a pair of connections.
    let a = keepalive(Link::Ethernet, "10.0.0.1:40020", "10.0.0.2:80");
    add("merge-a.pcap", classic(Link::Ethernet, &a.frames));
    let b = keepalive_at(
        Link::Ethernet,
        "10.0.0.3:40021",
        "10.0.0.2:80",
        T0 + 1_000_000_000,
    );
    add("merge-b.pcap", classic(Link::Ethernet, &b.frames));

    // Damaged files.
    let good = classic(
        Link::Ethernet,
        &keepalive(Link::Ethernet, "10.0.0.1:40030", "10.0.0.2:80").frames,
    );
    add("corrupt-empty.pcap", Vec::new());
    add(
        "corrupt-bad-magic.pcap",
        b"this is not a capture file\n".to_vec(),
    );
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 30);
    add("corrupt-truncated-tail.pcap", truncated);
    let mut huge = good[..24].to_vec();
    let first_record_len =
        16 + u32::from_le_bytes([good[32], good[33], good[34], good[35]]) as usize;
    huge.extend_from_slice(&good[24..24 + first_record_len]);
    huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    huge.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    huge.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    huge.extend_from_slice(&[0u8; 64]);
    add("corrupt-huge-record.pcap", huge);
    let mut ng = pcapng(
        &[Interface {
            linktype: 1,
            tsresol: 6,
        }],
        &[],
    );
    ng.extend_from_slice(&6u32.to_le_bytes());
    ng.extend_from_slice(&7u32.to_le_bytes()); // block length below the 12-byte minimum
    ng.extend_from_slice(&[0u8; 16]);
    add("corrupt-pcapng-block-length.pcapng", ng);

    // Snap length: the response's last frame captured only in part.
    let mut c = Conv::new("10.0.0.1:40015", "10.0.0.2:80", Link::Ethernet);
    c.handshake();
    c.client(&get("/snap"))
        .wait(300)
        .server(&ok(&"y".repeat(1200)));
    if let Some(last) = c.frames.last_mut() {
        last.data.truncate(200);
    }
    c.close();
    add("snaplen-truncated.pcap", classic(Link::Ethernet, &c.frames));
    let _ = ACK;
    out
}
