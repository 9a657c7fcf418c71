//! The reader over the real-world captures in /work/shared/corpus/pcaps/, checked against
//! tshark's frame counts and first timestamps (computed once with `capinfos -c` and
//! `tshark -T fields -e frame.time_epoch`). Skipped quietly when the corpus is absent.

use std::path::Path;

use super::*;

const CORPUS: &str = "/work/shared/corpus/pcaps";

/// (file, frames per tshark, truncated tail).
const EXPECTED: [(&str, u64, bool); 40] = [
    ("counterhack-posts-ftp-smtp-mix.pcap", 1176, false),
    ("crafted-chunked-gzip-request-bodies.pcap", 207, false),
    ("docker-api-port2375-upgrade.pcap", 200, false),
    ("espn-browsing-keepalive.pcapng", 956, false),
    ("evilprogram-posts-100-continue.pcap", 659, false),
    ("get-no-syn.pcap", 11, false),
    ("gzip-keepalive-midstream.pcap", 222, false),
    ("honeynet-forensic-challenge4.pcap", 4447, false),
    ("honeynet-suspicious-time.pcap", 745, false),
    ("http-on-port-22.pcap", 28, false),
    ("icmp-quoted-requests.pcap", 133, false),
    ("ipp-100-continue-chunked.pcap", 279, false),
    ("ipv4-and-ipv6-get.pcapng", 20, false),
    ("ipv6-loopback-1000-keepalive-one-drop.pcap", 4102, false),
    ("loopback-null-gap-port9000.pcap", 58, false),
    ("loopback-null-ipv6-chunked.pcap", 24, false),
    ("many-protocols-mixed.pcap", 4709, false),
    ("midstream-chunked-port31600.pcap", 1985, false),
    ("nanosec-bigendian.pcap", 10, false),
    ("ocsp-post-keepalive.pcapng", 344, false),
    ("pipelined-scan.pcap", 36, false),
    ("post-form-wordpress.pcapng", 21, false),
    ("post-large-port5000.pcap", 38, false),
    ("range-requests-reorder-retrans.pcap", 1556, false),
    ("rawip-ipv6-four-streams.pcap", 81, false),
    ("retrans-duplicate-responses-port4000.pcap", 108, false),
    ("retransmissions-espn-fail.pcapng", 569, false),
    ("sll-heavy-loss-quickplay.pcap", 155, false),
    ("sll-large-chunked.pcap", 518, false),
    ("sll-log4j-exploit.pcap", 426, false),
    ("sll2-python-httpserver.pcap", 24, false),
    ("starts-with-response.pcapng", 18, false),
    ("tls-mixed-loss.pcap", 3138, false),
    ("truncated-last-packet-post.pcap", 25, true),
    ("vlan-bot-large-jpeg.pcap", 402, false),
    ("vlan-keepalive-port8000.pcap", 94, false),
    ("web-images-large-mixed.pcap", 4631, false),
    ("webdav-methods.pcap", 92, false),
    ("wikipedia-browsing.pcap", 136, false),
    ("wireshark-classic-http.cap", 43, false),
];

/// (file, tshark `frame.time_epoch` of the first frame in ns, its captured length).
const FIRST_FRAMES: [(&str, i64, usize); 2] = [
    ("nanosec-bigendian.pcap", 1_766_361_926_167_647_291, 74),
    (
        "espn-browsing-keepalive.pcapng",
        1_270_661_369_782_934_000,
        72,
    ),
];

fn open(name: &str) -> Option<CaptureReader<Box<dyn std::io::Read + Send>>> {
    let dir = Path::new(CORPUS);
    if !dir.is_dir() {
        return None;
    }
    match CaptureReader::open(&dir.join(name)) {
        Ok(r) => Some(r),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn corpus_frame_counts_match_tshark() {
    for (name, frames, truncated) in EXPECTED {
        let Some(mut r) = open(name) else { return };
        let mut n = 0u64;
        loop {
            match r.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.data.len() as u64 <= u64::from(f.orig_len), "{name}");
                    n += 1;
                }
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(n, frames, "{name}");
        assert_eq!(r.counters().truncated_tail == 1, truncated, "{name}");
        assert_eq!(r.counters().records, frames, "{name}");
    }
}

#[test]
fn corpus_first_timestamps_match_tshark() {
    for (name, ts, caplen) in FIRST_FRAMES {
        let Some(mut r) = open(name) else { return };
        match r.next_frame() {
            Ok(Some(f)) => {
                assert_eq!(
                    (f.ts.0, f.data.len(), f.link),
                    (ts, caplen, LinkType::ETHERNET)
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn corpus_nanosecond_file_is_big_endian_nanos() {
    let Some(r) = open("nanosec-bigendian.pcap") else {
        return;
    };
    assert_eq!(
        r.format(),
        Format::Pcap {
            endian: Endian::Big,
            nanos: true
        }
    );
}
