//! Any bytes as a frame of any supported link type (chosen by the first byte): decoding
//! must return a segment inside the frame, or count the frame and skip it.
//!
//! The body is `shadowtap::fuzzing::wire_decode`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/wire_decode/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::wire_decode(data);
});
