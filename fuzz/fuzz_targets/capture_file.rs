//! Any bytes as a capture file: the reader must end (error, truncated tail or clean end)
//! without panicking or allocating past its caps.
//!
//! The body is `shadowtap::fuzzing::capture_file`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/capture_file/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::capture_file(data);
});
