//! Any bytes as the shadow's response, read by the replay client's own framing.
//!
//! The body is `shadowtap::fuzzing::replay_response`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/replay_response/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::replay_response(data);
});
