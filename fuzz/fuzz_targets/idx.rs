//! Fuzz target: the IDX image and label readers, raw and gzipped (body in ../harness.rs).
#![no_main]

// Each target uses one of the harness functions.
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::idx(data);
});
