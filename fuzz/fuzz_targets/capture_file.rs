//! Any bytes as a capture file: the reader must end (error, truncated tail or clean end)
//! without panicking or allocating past its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowtap::capture::{CaptureReader, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(mut reader) = CaptureReader::with_limits(data, "fuzz".to_string(), limits) else {
        return;
    };
    let mut frames = 0usize;
    while let Ok(Some(frame)) = reader.next_frame() {
        assert!(frame.data.len() <= data.len());
        frames += 1;
        assert!(frames <= data.len());
    }
});
