//! Any sequence of TCP segments between two endpoints: the reassembler must emit a
//! well-formed event stream (Open first, Close last, offsets exactly covered, conflicts either
//! wholly delivered or wholly held) and never panic.
//!
//! The body is `shadowtap::fuzzing::reassembly`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/reassembly/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::reassembly(data);
});
