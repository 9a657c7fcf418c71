//! Any bytes as a capture file, through every stage: read, decode, reassemble, frame. The whole
//! chain must end without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowtap::capture::CaptureReader;
use shadowtap::http1::Tracker;
use shadowtap::reassembly::Reassembler;
use shadowtap::settings::Limits;
use shadowtap::wire::Decoder;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(mut reader) = CaptureReader::with_limits(data, "fuzz".to_string(), limits.capture) else {
        return;
    };
    let mut decoder = Decoder::new(limits.wire);
    let mut reassembler = Reassembler::new(limits.reassembly);
    let mut exchanges = 0usize;
    let mut tracker = Tracker::new(limits.http1, |_| exchanges += 1);
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Some(segment) = decoder.decode(&frame) {
            reassembler.push(&segment, &mut tracker);
        }
    }
    reassembler.finish(&mut tracker);
});
