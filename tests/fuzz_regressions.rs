//! Inputs kept from fuzzing (tests/fuzz-regressions/<target>/), replayed through the fuzz targets'
//! own bodies (fuzz/harness.rs): each must be accepted or refused with an error naming its
//! source, never panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[path = "../fuzz/harness.rs"]
mod harness;

fn replay(target: &str, run: fn(&[u8]) -> Option<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "{}: expected the kept inputs of the {target} target",
        dir.display()
    );
    let mut refused = 0;
    for file in &files {
        let data = std::fs::read(file).expect("read a kept input");
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&data)))
            .unwrap_or_else(|_| panic!("{} panics the {target} target", file.display()));
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if let Some(message) = &outcome {
            assert!(message.contains("fuzz"), "{}: {message}", file.display());
            refused += 1;
        }
        // Kept inputs named for what they are: a seed is a valid file, a `refused-` one is not.
        if name.starts_with("seed-") {
            assert_eq!(outcome, None, "{} is a valid input", file.display());
        }
        if name.starts_with("refused-") {
            assert!(outcome.is_some(), "{} must be refused", file.display());
        }
    }
    // The kept inputs are the interesting ones: some get through, some are refused.
    assert!(refused > 0, "{target}: every kept input was accepted");
}

#[test]
fn kept_idx_inputs_replay_cleanly() {
    replay("idx", harness::idx);
}

#[test]
fn kept_cifar_inputs_replay_cleanly() {
    replay("cifar", harness::cifar);
}

#[test]
fn kept_tar_inputs_replay_cleanly() {
    replay("tar", harness::tar);
}

#[test]
fn kept_config_inputs_replay_cleanly() {
    replay("config", harness::config);
}

#[test]
fn kept_log_inputs_replay_cleanly() {
    replay("logs", harness::logs);
}

#[test]
fn kept_snapshot_inputs_replay_cleanly_through_the_renderers() {
    replay("snapshot_views", harness::snapshot_views);
}
