//! Fuzz target: the `metrics.jsonl` and `steps.csv` readers (body in ../harness.rs).
#![no_main]

// Each target uses one of the harness functions.
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::logs(data);
});
