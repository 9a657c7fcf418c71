//! Any bytes as a saved report for `shadowtap report`, and as one base64 histogram: read
//! within the bounds of `report::saved`, never past them.
//!
//! The body is `shadowtap::fuzzing::saved_report`, which `cargo test` also runs on every seed in
//! `fuzz/corpus/saved_report/` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap::fuzzing::saved_report(data);
});
