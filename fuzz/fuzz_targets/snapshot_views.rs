//! Fuzz target: `snapshot.json` read, checked and drawn by the renderers' CPU references (body in ../harness.rs).
#![no_main]

// Each target uses one of the harness functions.
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::snapshot_views(data);
});
