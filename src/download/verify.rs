//! Checks on downloaded bytes: published MD5 / SHA-256 digests and the gzip or ZIP magic number
//! that tells an archive from an error page.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use md5::Md5;
use sha2::{Digest, Sha256};

use super::catalogue::{Checksum, RemoteFile};
use super::error::DownloadError;
use super::progress::{Meter, Progress, Stage};

/// The first two bytes of every gzip stream (RFC 1952); `.gz` and `.tar.gz` both start with them.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The first four bytes of a ZIP archive: the signature of its first local file header.
pub const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// What a downloaded file must be, read from its published name: `.zip` files are ZIP archives,
/// everything else the catalogue lists (`.gz`, `.tar.gz`) is gzip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Gzip,
    Zip,
}

impl Container {
    pub fn of(file_name: &str) -> Self {
        if file_name.to_ascii_lowercase().ends_with(".zip") {
            Container::Zip
        } else {
            Container::Gzip
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Container::Gzip => &GZIP_MAGIC,
            Container::Zip => &ZIP_MAGIC,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Container::Gzip => "gzip",
            Container::Zip => "ZIP",
        }
    }
}

const CHUNK: usize = 1 << 20;

/// Hashes `path` once with every algorithm `file` lists and compares with the published digests.
/// `progress` receives the bytes hashed so far.
pub fn verify_file(
    path: &Path,
    file: &RemoteFile,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<(), DownloadError> {
    let want_md5 = file.checksums.iter().any(|c| matches!(c, Checksum::Md5(_)));
    let want_sha = file
        .checksums
        .iter()
        .any(|c| matches!(c, Checksum::Sha256(_)));
    let mut md5 = want_md5.then(Md5::new);
    let mut sha = want_sha.then(Sha256::new);
    let mut input = File::open(path).map_err(|e| DownloadError::io(path, e))?;
    let mut buffer = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(DownloadError::Cancelled);
        }
        let n = input
            .read(&mut buffer)
            .map_err(|e| DownloadError::io(path, e))?;
        if n == 0 {
            break;
        }
        if let Some(h) = md5.as_mut() {
            h.update(&buffer[..n]);
        }
        if let Some(h) = sha.as_mut() {
            h.update(&buffer[..n]);
        }
        done += n as u64;
        progress(done);
    }
    let md5 = md5.map(|h| hex(&h.finalize()));
    let sha = sha.map(|h| hex(&h.finalize()));
    for checksum in &file.checksums {
        let actual = match checksum {
            Checksum::Md5(_) => md5.as_deref(),
            Checksum::Sha256(_) => sha.as_deref(),
        };
        // Both are Some here: each algorithm listed was computed above.
        let actual = actual.unwrap_or_default();
        if !actual.eq_ignore_ascii_case(checksum.hex()) {
            return Err(DownloadError::ChecksumMismatch {
                file: file.name.clone(),
                algorithm: checksum.algorithm(),
                expected: checksum.hex().to_ascii_lowercase(),
                actual: actual.to_owned(),
            });
        }
    }
    Ok(())
}

/// [`verify_file`] reporting [`Stage::Verify`] progress for `file` to `sink`.
pub(crate) fn verify_reporting(
    path: &Path,
    file: &RemoteFile,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(&Progress),
) -> Result<(), DownloadError> {
    let len = std::fs::metadata(path)
        .map_err(|e| DownloadError::io(path, e))?
        .len();
    let mut meter = Meter::new(Stage::Verify, Some(len));
    verify_file(path, file, cancel, &mut |bytes| {
        if let Some(p) = meter.update(&file.name, bytes, bytes == len) {
            sink(&p);
        }
    })
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails unless `head` (the first bytes of a file or response) starts a `container` file, naming
/// what was received instead when it is recognisable.
pub fn check_head(head: &[u8], what: &str, container: Container) -> Result<(), DownloadError> {
    let magic = container.magic();
    if head.starts_with(magic) {
        return Ok(());
    }
    let kind = container.name();
    let text = String::from_utf8_lossy(&head[..head.len().min(64)]).to_ascii_lowercase();
    let trimmed = text.trim_start();
    let detail = if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        format!("received an HTML page instead of {kind} data (an error or login page?)")
    } else if trimmed.starts_with('<') {
        format!("received markup (HTML/XML) instead of {kind} data")
    } else if trimmed.starts_with("version https://git-lfs") {
        "received a Git LFS pointer instead of the file".to_owned()
    } else if head.is_empty() {
        "the file is empty".to_owned()
    } else {
        let spaced: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "it does not start with the {kind} signature {} (starts with {})",
            spaced.join(" "),
            hex(&head[..head.len().min(4)])
        )
    };
    Err(DownloadError::NotAnArchive {
        what: what.to_owned(),
        detail,
    })
}

/// [`check_head`] on the first bytes of the file at `path`.
pub fn check_file(path: &Path, what: &str, container: Container) -> Result<(), DownloadError> {
    let mut head = Vec::with_capacity(64);
    File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| DownloadError::io(path, e))?;
    check_head(&head, what, container)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(checksums: Vec<Checksum>) -> RemoteFile {
        RemoteFile {
            name: "f.gz".to_owned(),
            urls: Vec::new(),
            size: None,
            checksums,
        }
    }

    #[test]
    fn digests_of_known_input_match_the_reference_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").expect("write");
        let good = remote(vec![
            Checksum::Md5("900150983CD24FB0D6963F7D28E17F72".to_owned()),
            Checksum::Sha256(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
            ),
        ]);
        let mut seen = 0;
        verify_file(&path, &good, &AtomicBool::new(false), &mut |b| seen = b)
            .expect("digests of `abc` match");
        assert_eq!(seen, 3);
        let bad = remote(vec![Checksum::Sha256("00".repeat(32))]);
        match verify_file(&path, &bad, &AtomicBool::new(false), &mut |_| {}) {
            Err(DownloadError::ChecksumMismatch {
                algorithm, actual, ..
            }) => {
                assert_eq!(algorithm, "SHA-256");
                assert!(actual.starts_with("ba7816bf"));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn gzip_heads_pass_and_error_pages_are_named() {
        let gzip = Container::Gzip;
        assert!(check_head(&[0x1f, 0x8b, 8, 0], "x", gzip).is_ok());
        let html = check_head(b"\n<!DOCTYPE html><html>", "x", gzip).expect_err("html");
        assert!(html.to_string().contains("HTML page"), "{html}");
        let lfs = check_head(b"version https://git-lfs.github.com/spec/v1", "x", gzip)
            .expect_err("lfs pointer");
        assert!(lfs.to_string().contains("Git LFS"), "{lfs}");
        let other = check_head(b"PK\x03\x04", "x", gzip).expect_err("zip");
        assert!(
            other
                .to_string()
                .contains("gzip signature 1f 8b (starts with 504b0304)"),
            "{other}"
        );
    }

    #[test]
    fn zip_files_are_told_by_their_name_and_checked_for_the_zip_signature() {
        assert_eq!(Container::of("tiny-imagenet-200.zip"), Container::Zip);
        assert_eq!(Container::of("A.ZIP"), Container::Zip);
        assert_eq!(Container::of("cifar-10-binary.tar.gz"), Container::Gzip);
        let zip = Container::Zip;
        assert!(check_head(b"PK\x03\x04\x14\0", "x", zip).is_ok());
        let gzip = check_head(&[0x1f, 0x8b, 8, 0], "x", zip).expect_err("gzip");
        assert!(
            gzip.to_string()
                .contains("ZIP signature 50 4b 03 04 (starts with 1f8b0800)"),
            "{gzip}"
        );
        let html = check_head(b"<html>", "x", zip).expect_err("html");
        assert!(
            html.to_string().contains("HTML page instead of ZIP data"),
            "{html}"
        );
    }
}
