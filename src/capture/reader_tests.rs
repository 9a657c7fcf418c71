//! Reader scenarios over byte images built in the test (RELIABILITY.md F01-F09).

use std::path::Path;

use super::endian::Endian::{self, Big, Little};
use super::fixtures::*;
use super::*;

/// What a whole read produced: frames as (ts, link, data, orig_len), counters, warnings and
/// the error that stopped it, if any.
struct Run {
    frames: Vec<(i64, u32, Vec<u8>, u32)>,
    counters: CaptureCounters,
    warnings: Vec<String>,
    error: Option<ReadError>,
}

fn run_with(bytes: &[u8], limits: Limits) -> Run {
    let mut r = match CaptureReader::with_limits(bytes, "t.cap".to_string(), limits) {
        Ok(r) => r,
        Err(e) => panic!("open failed: {e}"),
    };
    let mut frames = Vec::new();
    let error = loop {
        match r.next_frame() {
            Ok(Some(f)) => frames.push((f.ts.0, f.link.0, f.data.to_vec(), f.orig_len)),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(
        matches!(r.next_frame(), Ok(None)),
        "reader must stay finished"
    );
    Run {
        frames,
        counters: r.counters().clone(),
        warnings: r.warnings().to_vec(),
        error,
    }
}

fn run(bytes: &[u8]) -> Run {
    run_with(bytes, Limits::default())
}

fn open_err(bytes: &[u8]) -> OpenError {
    match CaptureReader::new(bytes, "bad.cap".to_string()) {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    }
}

fn two_record_pcap(e: Endian, nanos: bool) -> Vec<u8> {
    let mut f = pcap_header(e, nanos, 65535, 1);
    pcap_record(&mut f, e, 1_700_000_000, 250, b"hello");
    pcap_record(&mut f, e, 1_700_000_001, 999, b"world!");
    f
}

#[test]
fn f06_pcap_microseconds_both_byte_orders() {
    for e in [Little, Big] {
        let r = run(&two_record_pcap(e, false));
        assert_eq!(r.frames.len(), 2, "{e:?}");
        assert_eq!(
            r.frames[0],
            (1_700_000_000_000_250_000, 1, b"hello".to_vec(), 5)
        );
        assert_eq!(r.frames[1].0, 1_700_000_001_000_999_000);
        assert_eq!((r.counters.records, r.counters.bytes), (2, 11));
        assert_eq!(r.counters.interfaces, 1);
        assert!(r.error.is_none() && r.warnings.is_empty());
    }
}

#[test]
fn f06_pcap_nanoseconds_both_byte_orders() {
    for e in [Little, Big] {
        let bytes = two_record_pcap(e, true);
        let r = run(&bytes);
        assert_eq!(r.frames[0].0, 1_700_000_000_000_000_250, "{e:?}");
        assert_eq!(r.frames[1].0, 1_700_000_001_000_000_999);
        let fmt = CaptureReader::new(&bytes[..], "x".into()).map(|r| r.format());
        assert_eq!(
            fmt.ok(),
            Some(Format::Pcap {
                endian: e,
                nanos: true
            })
        );
    }
}

#[test]
fn peek_current_does_not_consume() {
    let bytes = two_record_pcap(Little, false);
    let mut r = CaptureReader::new(&bytes[..], "p".into()).unwrap();
    assert!(r.current().is_none());
    assert!(r.advance().unwrap());
    assert_eq!(r.current().map(|f| f.data), Some(&b"hello"[..]));
    assert_eq!(r.current().map(|f| f.data), Some(&b"hello"[..]));
    assert!(r.advance().unwrap());
    assert_eq!(r.current().map(|f| f.data), Some(&b"world!"[..]));
    assert!(!r.advance().unwrap());
    assert!(r.current().is_none() && r.is_finished());
}

#[test]
fn f06_pcapng_two_interfaces_with_own_linktype_and_resolution() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 65535, Some(6), None));
    f.extend(ng_idb(e, 101, 65535, Some(9), None));
    f.extend(ng_epb(e, 0, 1_700_000_000_000_001, b"eth", 60));
    f.extend(ng_epb(e, 1, 1_700_000_000_000_000_002, b"raw-ip", 6));
    let r = run(&f);
    assert_eq!(
        r.frames,
        vec![
            (1_700_000_000_000_001_000, 1, b"eth".to_vec(), 60),
            (1_700_000_000_000_000_002, 101, b"raw-ip".to_vec(), 6),
        ]
    );
    assert_eq!((r.counters.interfaces, r.counters.sections), (2, 1));
}

#[test]
fn f06_pcapng_two_sections_of_different_byte_order() {
    let mut f = ng_shb(Big);
    f.extend(ng_idb(Big, 101, 0, Some(9), None));
    f.extend(ng_epb(Big, 0, 1_000_000_007, b"be", 2));
    f.extend(ng_shb(Little));
    // Interface ids restart with each section.
    f.extend(ng_idb(Little, 1, 0, None, None));
    f.extend(ng_epb(Little, 0, 3_000_000, b"le", 2));
    let r = run(&f);
    assert_eq!(
        r.frames,
        vec![
            (1_000_000_007, 101, b"be".to_vec(), 2),
            (3_000_000_000, 1, b"le".to_vec(), 2),
        ]
    );
    assert_eq!(r.counters.sections, 2);
    assert!(r.error.is_none());
}

#[test]
fn pcapng_tsoffset_and_power_of_two_resolution() {
    let e = Big;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, Some(0x80 | 10), Some(100)));
    f.extend(ng_epb(e, 0, 1536, b"x", 1));
    let r = run(&f);
    assert_eq!(r.frames[0].0, 101_500_000_000);
}

#[test]
fn pcapng_simple_packet_takes_last_timestamp_and_snaplen() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 4, None, None));
    f.extend(ng_epb(e, 0, 5_000_000, b"abcd", 4));
    f.extend(ng_spb(e, 6, b"simple"));
    let r = run(&f);
    assert_eq!(r.frames[1], (5_000_000_000, 1, b"simp".to_vec(), 6));
}

#[test]
fn pcapng_obsolete_packet_block() {
    let e = Big;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 113, 0, None, None));
    f.extend(ng_pb(e, 0, 2_000_000, b"old", 3));
    let r = run(&f);
    assert_eq!(r.frames, vec![(2_000_000_000, 113, b"old".to_vec(), 3)]);
}

#[test]
fn f05_unknown_block_skipped_and_counted() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    f.extend(ng_block(e, 0x0000_7777, b"whatever"));
    f.extend(ng_block(e, 5, &[0; 12])); // interface statistics: known, skipped quietly
    f.extend(ng_epb(e, 0, 1, b"p", 1));
    let r = run(&f);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.counters.unknown_blocks, 1);
}

#[test]
fn epb_for_unknown_interface_is_skipped_and_counted() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    f.extend(ng_epb(e, 7, 1, b"lost", 4));
    f.extend(ng_epb(e, 0, 1, b"kept", 4));
    let r = run(&f);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.counters.unknown_interface, 1);
}

#[test]
fn f02_pcap_truncated_in_data_keeps_earlier_records() {
    let mut f = two_record_pcap(Little, false);
    let full = f.len();
    f.truncate(full - 2);
    let r = run(&f);
    assert_eq!(r.frames.len(), 1);
    assert!(r.error.is_none());
    assert_eq!(r.counters.truncated_tail, 1);
    let at = 24 + 16 + 5;
    assert_eq!(
        r.warnings,
        vec![format!(
            "t.cap: capture cut short at byte {at} (last record incomplete); everything before it was read"
        )]
    );
}

#[test]
fn f02_pcap_truncated_in_record_header() {
    let mut f = two_record_pcap(Big, true);
    f.extend_from_slice(&[0; 7]);
    let r = run(&f);
    assert_eq!((r.frames.len(), r.counters.truncated_tail), (2, 1));
}

#[test]
fn f02_pcapng_truncated_tail() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    f.extend(ng_epb(e, 0, 1, b"one", 3));
    let cut_at = f.len();
    f.extend(ng_epb(e, 0, 2, b"two two two", 11));
    f.truncate(f.len() - 5);
    let r = run(&f);
    assert_eq!(r.frames.len(), 1);
    assert!(r.error.is_none());
    assert_eq!(r.counters.truncated_tail, 1);
    assert!(r.warnings[0].contains(&format!("byte {cut_at} ")));
}

#[test]
fn f03_huge_caplen_is_record_invalid_and_never_allocated() {
    let e = Little;
    let mut f = pcap_header(e, false, 65535, 1);
    pcap_record(&mut f, e, 1, 0, b"ok");
    pcap_record_raw(&mut f, e, 2, 0, 0x8000_0000, 0x8000_0000, b"tiny");
    let r = run(&f);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.counters.record_invalid, 1);
    let msg = r.error.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        msg,
        "t.cap: record 2 at byte 42 claims 2147483648 captured bytes (limit 262144); file is corrupt, stopped reading it"
    );
    assert_eq!(r.counters.buffer_grow, 0);
}

#[test]
fn f03_caplen_over_snaplen_within_limit_is_accepted_whole() {
    let e = Big;
    let mut f = pcap_header(e, false, 4, 1);
    pcap_record(&mut f, e, 1, 0, b"longer than four");
    let r = run(&f);
    assert_eq!(r.frames[0].2, b"longer than four".to_vec());
    assert_eq!(r.counters.caplen_over_snaplen, 1);
}

#[test]
fn f04_caplen_over_orig_len_and_zero_orig_len_are_normalised() {
    let e = Little;
    let mut f = pcap_header(e, false, 65535, 1);
    pcap_record_raw(&mut f, e, 1, 0, 3, 2, b"abc");
    pcap_record_raw(&mut f, e, 1, 0, 3, 0, b"abc");
    pcap_record_raw(&mut f, e, 1, 0, 3, 9, b"abc");
    let r = run(&f);
    let lens: Vec<u32> = r.frames.iter().map(|f| f.3).collect();
    assert_eq!(lens, vec![3, 3, 9]);
    assert_eq!(r.counters.len_anomaly, 2);
}

#[test]
fn ts_going_backwards_is_counted_and_kept_in_file_order() {
    let e = Little;
    let mut f = pcap_header(e, false, 65535, 1);
    pcap_record(&mut f, e, 10, 0, b"a");
    pcap_record(&mut f, e, 5, 0, b"b");
    pcap_record(&mut f, e, 11, 0, b"c");
    let r = run(&f);
    let data: Vec<u8> = r.frames.iter().flat_map(|f| f.2.clone()).collect();
    assert_eq!(data, b"abc".to_vec());
    assert_eq!(r.counters.ts_backwards, 1);
}

#[test]
fn f01_empty_file() {
    let e = open_err(b"");
    assert_eq!(
        e.to_string(),
        "bad.cap: empty file (0 bytes); not a capture file"
    );
    assert_eq!(e.reason(), "empty");
}

#[test]
fn f01_shorter_than_the_header() {
    let f = pcap_header(Little, false, 65535, 1);
    let e = open_err(&f[..20]);
    assert!(matches!(e, OpenError::TooShort { len: 20, .. }), "{e}");
    assert!(e.to_string().starts_with("bad.cap: only 20 bytes"));
    let ng = ng_shb(Big);
    assert!(matches!(open_err(&ng[..16]), OpenError::TooShort { .. }));
    assert!(matches!(
        open_err(&[0xd4, 0xc3]),
        OpenError::TooShort { .. }
    ));
}

#[test]
fn f01_text_is_not_a_capture_and_magic_is_shown() {
    let e = open_err(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        e.to_string(),
        "bad.cap: not a capture file (looks like text; first bytes 47 45 54 20 2f 20 48 54)"
    );
    let e = open_err(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5]);
    assert!(e
        .to_string()
        .contains("unknown magic; first bytes de ad be ef"));
}

#[test]
fn f09_compressed_inputs_are_named() {
    let cases: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], "zstd"),
        (b"BZh91AY&SY", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4], "xz"),
    ];
    for (bytes, kind) in cases {
        assert_eq!(
            open_err(bytes).to_string(),
            format!("bad.cap: compressed ({kind}); decompress it first")
        );
    }
}

#[test]
fn f05_bad_section_header_byte_order_is_an_open_error() {
    let mut f = ng_shb(Little);
    f[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let e = open_err(&f);
    assert!(matches!(e, OpenError::BadHeader { .. }), "{e}");
}

/// A pcapng file whose third block has its length field replaced by `len` (and nothing else
/// changed), so the reader stops with a `BlockInvalid`.
fn ng_with_bad_len(e: Endian, len: u32) -> Run {
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    let at = f.len();
    f.extend(ng_epb(e, 0, 1, b"data", 4));
    f[at + 4..at + 8].copy_from_slice(&u32b(e, len));
    f.extend_from_slice(&[0; 64]);
    run(&f)
}

#[test]
fn f05_impossible_block_lengths_are_block_invalid() {
    let cases: [(u32, BlockProblem); 4] = [
        (8, BlockProblem::TooShort(8)),
        (38, BlockProblem::Unaligned(38)),
        (
            0xFFFF_FFF0,
            BlockProblem::TooLarge {
                len: 0xFFFF_FFF0,
                limit: 16 * 1024 * 1024,
            },
        ),
        (
            48,
            BlockProblem::TrailerMismatch {
                leading: 48,
                trailing: 0,
            },
        ),
    ];
    for (len, problem) in cases {
        let r = ng_with_bad_len(Big, len);
        assert!(r.frames.is_empty());
        assert_eq!(r.counters.block_invalid, 1);
        match r.error {
            Some(ReadError::BlockInvalid {
                block: 3,
                offset,
                problem: p,
                ..
            }) => {
                assert_eq!(p, problem);
                assert_eq!(offset, 28 + 20);
            }
            other => panic!("len {len}: {other:?}"),
        }
    }
}

#[test]
fn f05_section_header_over_one_mib_is_block_invalid() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_block(e, 0x0A0D_0D0A, &{
        let mut b = u32b(e, 0x1A2B_3C4D).to_vec();
        b.resize(2 * 1024 * 1024, 0);
        b
    }));
    let r = run(&f);
    assert!(matches!(
        r.error,
        Some(ReadError::BlockInvalid {
            problem: BlockProblem::TooLarge { .. },
            ..
        })
    ));
}

#[test]
fn f05_epb_captured_length_beyond_its_block_is_invalid() {
    let e = Little;
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    let at = f.len();
    f.extend(ng_epb(e, 0, 1, b"data", 4));
    f[at + 20..at + 24].copy_from_slice(&u32b(e, 400));
    let r = run(&f);
    assert!(matches!(
        r.error,
        Some(ReadError::BlockInvalid {
            problem: BlockProblem::PacketExceedsBlock { caplen: 400, .. },
            ..
        })
    ));
}

#[test]
fn f07_large_block_grows_the_buffer_up_to_the_cap() {
    let e = Little;
    let big = vec![0xAB; 256 * 1024];
    let mut f = ng_shb(e);
    f.extend(ng_idb(e, 1, 0, None, None));
    f.extend(ng_epb(e, 0, 1, &big, big.len() as u32));
    let small = Limits {
        read_buffer: 4096,
        ..Limits::default()
    };
    let r = run_with(&f, small.clone());
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.frames[0].2.len(), big.len());
    assert!(r.counters.buffer_grow >= 1);
    let capped = Limits {
        max_block: 128 * 1024,
        max_record: 1024,
        ..small
    };
    let r = run_with(&f, capped);
    assert!(matches!(
        r.error,
        Some(ReadError::BlockInvalid {
            problem: BlockProblem::TooLarge { .. },
            ..
        })
    ));
}

#[test]
fn f08_one_byte_reads_give_the_same_frames() {
    struct Trickle(Vec<u8>, usize);
    impl std::io::Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.get(self.1), out.first_mut()) {
                (Some(b), Some(o)) => {
                    *o = *b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }
    let bytes = two_record_pcap(Big, false);
    let mut r = CaptureReader::new(Trickle(bytes, 0), "pipe".into()).unwrap();
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        assert!(!f.data.is_empty());
        n += 1;
    }
    assert_eq!(n, 2);
    assert!(r.counters().partial_reads > 0);
}

#[test]
fn f01_missing_file_error_names_it() {
    let path = std::path::Path::new("/nonexistent/shadowtap/x.pcap");
    match CaptureReader::open(path) {
        Err(e) => assert!(e
            .to_string()
            .starts_with("/nonexistent/shadowtap/x.pcap: cannot open")),
        Ok(_) => panic!("opened a missing file"),
    }
}

proptest::proptest! {
    #[test]
    fn hostile_records_after_a_valid_pcap_header_never_panic(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        nanos in proptest::prelude::any::<bool>(),
    ) {
        let mut f = pcap_header(Little, nanos, 65535, 1);
        f.extend_from_slice(&tail);
        let r = run(&f);
        proptest::prop_assert!(r.frames.len() <= tail.len() / 16);
    }

    #[test]
    fn hostile_blocks_after_a_valid_section_never_panic(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        big in proptest::prelude::any::<bool>(),
    ) {
        let e = if big { Big } else { Little };
        let mut f = ng_shb(e);
        f.extend(ng_idb(e, 1, 0, Some(9), None));
        f.extend_from_slice(&tail);
        let r = run(&f);
        proptest::prop_assert!(r.frames.len() <= tail.len() / 12);
    }

    #[test]
    fn hostile_file_starts_never_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
    ) {
        if let Ok(mut r) = CaptureReader::new(&bytes[..], "fuzz".into()) {
            while let Ok(Some(_)) = r.next_frame() {}
        }
    }
}

/// Read speed over a 1 GiB classic pcap of mixed frame sizes, written under `target/` and read
/// from the page cache. Run with
/// `cargo test --release capture::reader_tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_over_one_gib_file() {
    use std::io::Write;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/capture-throughput.pcap");
    let sizes = [60usize, 1514, 590, 1514, 1514, 66, 1200, 1514];
    let payload = vec![0x5Au8; 1514];
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut w = PcapWriter::new(std::io::BufWriter::new(file), LinkType::ETHERNET).unwrap();
        let (mut written, mut i) = (0usize, 0usize);
        while written < 1 << 30 {
            let len = sizes[i % sizes.len()];
            w.write(Timestamp(i as i64 * 1000), &payload[..len], len as u32)
                .unwrap();
            written += 16 + len;
            i += 1;
        }
        w.into_inner().flush().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let mut r = CaptureReader::open(&path).unwrap();
        let (mut frames, mut sum) = (0u64, 0u64);
        while let Some(f) = r.next_frame().unwrap() {
            frames += 1;
            sum += f.data.len() as u64 + u64::from(f.data.first().copied().unwrap_or(0));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{frames} frames ({sum}), {size} bytes in {secs:.3} s: {:.2} GB/s",
            size as f64 / secs / 1e9
        );
    }
    std::fs::remove_file(&path).unwrap();
}
