//! Any bytes through every stage, as a capture file or as a compact script that expands
//! into many segments; the work done is checked against the input's length.
//!
//! The body is `shadowtap::fuzzing::pipeline`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/pipeline/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::pipeline(data);
});
