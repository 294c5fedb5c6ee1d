//! The bodies of the fuzz targets, shared by `fuzz_targets/*.rs` and the normal test suite
//! (tests/fuzz_regressions.rs replays kept inputs through exactly these functions). Each feeds its
//! input to a library entry point, checks what any success must satisfy (a violation panics, which
//! is a finding) and returns the error message of a refusal, `None` for an accepted input.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use sla::data::cifar::{self, Cifar100Labels, Format};
use sla::data::idx;
use sla::download;

/// The IDX image and label readers. First byte: bit 0 gzips the rest first (so the header and
/// payload also go through the bounded inflating path), bit 1 picks labels instead of images.
pub fn idx(data: &[u8]) -> Option<String> {
    let (&mode, bytes) = data.split_first()?;
    let input = if mode & 1 == 1 {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("writing to memory");
        enc.finish().expect("writing to memory")
    } else {
        bytes.to_vec()
    };
    let path = Path::new("fuzz");
    if mode & 2 == 0 {
        match idx::read_images(input.as_slice(), path) {
            Ok((shape, pixels)) => {
                assert!(shape.image_len() > 0 && !pixels.is_empty());
                assert_eq!(pixels.len() % shape.image_len(), 0);
                None
            }
            Err(e) => Some(e.to_string()),
        }
    } else {
        match idx::read_labels(input.as_slice(), path) {
            Ok(labels) => {
                assert!(labels.iter().all(|&l| l < 256));
                None
            }
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The CIFAR record readers. First byte: modulo 3 the format (CIFAR-10, CIFAR-100 fine, coarse),
/// then how many times the rest is repeated (1 to 4), so short inputs reach whole 3 KB records.
pub fn cifar(data: &[u8]) -> Option<String> {
    let (&mode, bytes) = data.split_first()?;
    let format = match mode % 3 {
        0 => Format::Cifar10,
        1 => Format::Cifar100(Cifar100Labels::Fine),
        _ => Format::Cifar100(Cifar100Labels::Coarse),
    };
    let input = bytes.repeat(usize::from(mode / 3 % 4) + 1);
    match cifar::parse_batch(&input, Path::new("fuzz"), format) {
        Ok((labels, images)) => {
            assert!(!labels.is_empty());
            assert_eq!(images.len(), labels.len() * cifar::SHAPE.image_len());
            assert_eq!(input.len(), labels.len() * format.record_len());
            let classes = match format {
                Format::Cifar10 => 10,
                Format::Cifar100(Cifar100Labels::Fine) => 100,
                Format::Cifar100(Cifar100Labels::Coarse) => 20,
            };
            assert!(labels.iter().all(|&l| l < classes));
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// Bytes the tar target lets an archive unpack to.
pub const TAR_LIMIT: u64 = 1 << 20;

/// The tar extractor, unpacking the input (a tar stream) into a fresh temporary folder: whatever
/// happens, nothing may be written beside that folder, nothing in it may be a link, and no more
/// than [`TAR_LIMIT`] bytes may land in it.
pub fn tar(data: &[u8]) -> Option<String> {
    let outer = tempfile::tempdir().expect("a temporary folder");
    let dest = outer.path().join("dest");
    std::fs::create_dir(&dest).expect("the destination folder");
    let result = download::unpack_tar(data, "fuzz.tar", &dest, TAR_LIMIT, &AtomicBool::new(false));
    let beside: Vec<_> = std::fs::read_dir(outer.path())
        .expect("list the temporary folder")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("dest")]);
    let mut bytes = 0;
    let mut stack = vec![dest];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("list a folder").flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).expect("a listed path exists");
            assert!(
                meta.is_file() || meta.is_dir(),
                "{}",
                entry.path().display()
            );
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    assert!(bytes <= TAR_LIMIT);
    match result {
        Ok(files) => {
            assert!(files > 0);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// `config.json` to a validated config. Anything accepted must also pass `validate` again after a
/// round trip through JSON (what a resume reads back is what was checked).
pub fn config(data: &[u8]) -> Option<String> {
    match sla::run::parse_config(Path::new("fuzz"), data) {
        Ok(config) => {
            let json = serde_json::to_vec(&config).expect("a config serialises");
            let back = sla::run::parse_config(Path::new("fuzz"), &json).expect("round trip");
            assert_eq!(back, config);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// The two logs, `metrics.jsonl` and `steps.csv` (first byte: which). Only the final line may be
/// skipped as torn, and only when it is incomplete or unparseable.
pub fn logs(data: &[u8]) -> Option<String> {
    let (&mode, bytes) = data.split_first()?;
    let text = String::from_utf8_lossy(bytes);
    let path = Path::new("fuzz");
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let (records, torn) = if mode & 1 == 0 {
        match sla::run::parse_metrics(path, &text) {
            Ok(log) => (log.records.len(), log.torn_tail),
            Err(e) => return Some(e.to_string()),
        }
    } else {
        match sla::run::parse_steps(path, &text) {
            Ok(log) => (log.records.len() + 1, log.torn_tail),
            Err(e) => return Some(e.to_string()),
        }
    };
    assert!(records + usize::from(torn.is_some()) <= lines.max(1));
    if let Some(torn) = torn {
        assert_eq!(
            torn.line,
            text.lines().count(),
            "only the last line may be torn"
        );
    }
    None
}

/// `snapshot.json` read and checked, then drawn by every renderer's CPU reference (the pictures the
/// GPU views must match): a snapshot that passes the check must never make a view index out of bounds.
pub fn snapshot_views(data: &[u8]) -> Option<String> {
    use sla::gpu::{BorderMode, ConfusionInput, GridInput, GridLayout, ViewStyle};
    let snapshot = match sla::run::parse_snapshot(Path::new("fuzz"), data) {
        Ok(snapshot) => snapshot,
        Err(e) => return Some(e.to_string()),
    };
    let style = ViewStyle::dark();
    let grid = &snapshot.samples;
    if grid.samples > 0 {
        let input = GridInput::from_sample_grid(
            grid,
            BorderMode::Correctness,
            GridLayout::scaled(grid.width, grid.height, 1),
            style,
        );
        let (width, height) = input.size();
        if u64::from(width) * u64::from(height) <= 1 << 22 {
            let _ = sla::gpu::input_grid::reference_image(&input, width, height);
        }
    }
    let (n, m) = (snapshot.num_classes(), snapshot.num_transforms());
    if !snapshot.joint_confusion.is_empty() {
        let joint = ConfusionInput {
            block: m,
            ..ConfusionInput::classes(n * m, &snapshot.joint_confusion)
        };
        let _ = sla::gpu::confusion::reference_image(&joint, 64, 64);
    }
    if !snapshot.class_confusion.is_empty() {
        let classes = ConfusionInput::classes(n, &snapshot.class_confusion);
        let _ = sla::gpu::confusion::reference_image(&classes, 64, 64);
    }
    None
}
