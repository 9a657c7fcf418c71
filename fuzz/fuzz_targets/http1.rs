//! Any bytes on both directions of a connection, cut at arbitrary points: the tracker must
//! emit exchanges without panicking, at most one per byte of input.
//!
//! The body is `shadowtap::fuzzing::http1`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/http1/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::http1(data);
});
