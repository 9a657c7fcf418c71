//! Throughput of each stage on the same synthetic keep-alive capture held in memory, in bytes
//! of capture per second: reading records, decoding packets, and the whole chain through
//! reassembly and HTTP framing (the `pipeline` driver every command uses).
//! `benches/inspect_vs_tshark.py` measures the whole process on large files next to tshark
//! and a raw libpcap loop.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shadowtap::capture::CaptureReader;
use shadowtap::http1::Tracker;
use shadowtap::pipeline::{self, Chain, Filter};
use shadowtap::settings::Limits;
use shadowtap::wire::Decoder;

#[path = "support/synth.rs"]
mod synth;

/// Size of the in-memory capture each iteration walks.
const CAPTURE_BYTES: u64 = 32 * 1024 * 1024;

fn capture(mss: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(CAPTURE_BYTES as usize + 70_000);
    if let Err(e) =
        synth::write_capture(&mut buf, CAPTURE_BYTES, mss, synth::CONCURRENT, synth::PAGE)
    {
        panic!("generating the benchmark capture: {e}");
    }
    buf
}

fn read_only(data: &[u8]) -> usize {
    let mut reader = CaptureReader::new(data, "bench".to_string()).expect("valid capture");
    let mut frames = 0;
    while let Ok(Some(frame)) = reader.next_frame() {
        black_box(frame.data);
        frames += 1;
    }
    frames
}

fn read_decode(data: &[u8]) -> usize {
    let limits = Limits::default();
    let mut reader = CaptureReader::new(data, "bench".to_string()).expect("valid capture");
    let mut decoder = Decoder::new(limits.wire);
    let mut payload = 0;
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Some(seg) = decoder.decode(&frame) {
            payload += seg.payload.len();
        }
    }
    payload
}

fn whole_chain(data: &[u8]) -> usize {
    let limits = Limits::default();
    let mut reader = CaptureReader::new(data, "bench".to_string()).expect("valid capture");
    let mut exchanges = 0;
    {
        let tracker = Tracker::new(limits.http1, |ex| {
            black_box(&ex);
            exchanges += 1;
        });
        let mut chain = Chain::new(limits.wire, limits.reassembly, tracker);
        pipeline::drive(&mut reader, &mut Filter::none(), &mut chain, |_| true);
        chain.finish();
    }
    exchanges
}

fn stages(c: &mut Criterion) {
    for (name, mss) in [("loopback", 0), ("segmented", 1448)] {
        let data = capture(mss);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.sample_size(10);
        group.bench_function("read", |b| b.iter(|| read_only(black_box(&data))));
        group.bench_function("read+decode", |b| b.iter(|| read_decode(black_box(&data))));
        group.bench_function("read+decode+reassemble+http", |b| {
            b.iter(|| whole_chain(black_box(&data)))
        });
        group.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
