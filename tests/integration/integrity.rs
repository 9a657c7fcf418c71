//! What is replayed is what production received (RELIABILITY.md T04): a request whose bytes
//! were retransmitted with other content is flagged and never replayed, since which copy the
//! server took cannot be known from the wire.

use std::process::Command;

use serde_json::Value;

use super::replay::{shadow, Behaviour};
use crate::support::files::pcap;
use crate::support::packets::{merge, Conv, Link, ACK, PSH};

const GOOD: &[u8] = b"GET /good-b HTTP/1.1\r\nHost: shop\r\n\r\n";
const EVIL: &[u8] = b"GET /EVIL-b HTTP/1.1\r\nHost: shop\r\n\r\n";
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A connection from `client` whose request is sent by `send` (given the conversation and
/// its first request sequence number), then answered and closed.
fn conv(client: &str, at: i64, send: impl FnOnce(&mut Conv, u32)) -> Conv {
    let mut c = Conv::new(client, "10.0.0.2:80", Link::Ethernet).at(at);
    c.handshake();
    let seq = c.cseq;
    send(&mut c, seq);
    c.cseq = seq.wrapping_add(GOOD.len() as u32);
    c.server(ANSWER);
    c.close();
    c
}

#[test]
fn a_request_retransmitted_with_other_bytes_is_never_replayed() {
    let t = crate::support::packets::T0;
    let ack = 5_001;
    let convs = vec![
        // Clean: the same bytes twice (an ordinary retransmission) are replayed.
        conv("10.0.0.1:40000", t, |c, seq| {
            c.raw(true, seq, ack, PSH | ACK, GOOD);
            c.raw(true, seq, ack, PSH | ACK, GOOD);
        }),
        // After delivery: the request went through in order, then its range came again.
        conv("10.0.0.1:40001", t + 10_000_000, |c, seq| {
            c.raw(true, seq, ack, PSH | ACK, GOOD);
            c.raw(true, seq, ack, PSH | ACK, EVIL);
        }),
        // Before delivery: two copies of the tail held out of order disagree, then the head.
        conv("10.0.0.1:40002", t + 20_000_000, |c, seq| {
            c.raw(true, seq + 5, ack, PSH | ACK, &GOOD[5..]);
            c.raw(true, seq + 5, ack, PSH | ACK, &EVIL[5..]);
            c.raw(true, seq, ack, PSH | ACK, &GOOD[..5]);
        }),
        // Partial overlap: a later segment starts inside the delivered bytes and disagrees
        // there.
        conv("10.0.0.1:40003", t + 30_000_000, |c, seq| {
            c.raw(true, seq, ack, PSH | ACK, &GOOD[..10]);
            c.raw(true, seq + 5, ack, PSH | ACK, &EVIL[5..]);
        }),
    ];
    let bytes = pcap(Link::Ethernet.linktype(), &merge(convs), false, false);
    let dir = std::env::temp_dir().join(format!("shadowtap-integrity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("conflict.pcap");
    std::fs::write(&file, bytes).unwrap();
    // inspect flags the three exchanges.
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", "--format", "jsonl", file.to_str().unwrap()])
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flagged = lines
        .iter()
        .filter(|l| {
            l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "overlap_conflict"))
        })
        .count();
    assert_eq!((lines.len(), flagged), (4, 3), "{lines:?}");

    let recorder = shadow(Behaviour::Answer(200));
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["replay", file.to_str().unwrap(), "--shadow", &recorder.url])
        .args(["--speed", "max", "--format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = &report["counts"];
    assert_eq!(counts["seen"], 4, "{counts}");
    assert_eq!(counts["replayed"], 1, "{counts}");
    assert_eq!(counts["filtered"]["overlap_conflict"], 3, "{counts}");
    let seen = recorder.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with(b"GET /good-b "),
        "{:?}",
        String::from_utf8_lossy(&seen[0])
    );
}
