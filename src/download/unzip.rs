//! Unpacking a ZIP archive into a folder with the protections of the tar extractor: only files and
//! folders, none outside the folder, no links, and at most the set's entries and bytes.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use zip::ZipArchive;
use zip::result::ZipError;

use super::catalogue::Limits;
use super::error::DownloadError;
use super::progress::{Meter, Progress, Stage};

const CHUNK: usize = 64 << 10;

/// Unpacks the ZIP file `archive` into `dest` within `limits`, reporting [`Stage::Extract`]
/// progress (compressed bytes) to `sink`.
pub(crate) fn extract_zip(
    archive: &Path,
    dest: &Path,
    limits: Limits,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(&Progress),
) -> Result<(), DownloadError> {
    let what = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| archive.display().to_string());
    let input = File::open(archive).map_err(|e| DownloadError::io(archive, e))?;
    let size = input.metadata().map(|m| m.len()).ok();
    let mut meter = Meter::new(Stage::Extract, size);
    let mut report = |bytes: u64, force: bool| {
        if let Some(p) = meter.update(&what, bytes, force) {
            sink(&p);
        }
    };
    unpack_zip(
        io::BufReader::new(input),
        &what,
        dest,
        limits,
        cancel,
        &mut report,
    )?;
    Ok(())
}

/// Unpacks the ZIP `archive` into `dest`, naming it `what` in errors. Files and folders are
/// taken; a symbolic link, an encrypted member, a member that would land outside `dest` (absolute,
/// or with a `..` anywhere), more than `limits.entries` entries, more than `limits.bytes` bytes of
/// files, a member longer than its header says, or no file at all is an error. `progress` gets the
/// compressed bytes done and whether this is the last report. Returns the number of files written.
pub fn unpack_zip<R: Read + Seek>(
    archive: R,
    what: &str,
    dest: &Path,
    limits: Limits,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64, bool),
) -> Result<usize, DownloadError> {
    let refuse = |detail: String| DownloadError::NotAnArchive {
        what: what.to_owned(),
        detail,
    };
    let mut zip = ZipArchive::new(archive).map_err(|e| zip_error(what, e))?;
    // The central directory is read first: a count past the bound is refused before anything
    // is written.
    if zip.len() > limits.entries {
        return Err(refuse(format!(
            "{} entries, more than the {} the set can have",
            zip.len(),
            limits.entries
        )));
    }
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut compressed = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    for index in 0..zip.len() {
        if cancel.load(Ordering::Relaxed) {
            return Err(DownloadError::Cancelled);
        }
        let mut entry = zip.by_index(index).map_err(|e| zip_error(what, e))?;
        let name = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
        };
        if entry.is_symlink() {
            return Err(refuse(format!("member {name} is a symbolic link")));
        }
        if entry.encrypted() {
            return Err(refuse(format!("member {name} is encrypted")));
        }
        // `enclosed_name` alone would not do: it quietly turns `/x` into `x` and `a/../b` into `b`.
        // Such names are refused, as the tar extractor refuses them: no honest archive has one.
        let relative = entry
            .enclosed_name()
            .filter(|_| !climbs_out(&name))
            .ok_or_else(|| refuse(format!("member {name} points outside the folder")))?;
        let path = dest.join(&relative);
        if entry.is_dir() {
            fs::create_dir_all(&path).map_err(|e| DownloadError::io(&path, e))?;
            continue;
        }
        // The size in the header, checked before the entry is written; the copy below holds the
        // entry to it, so a header that lies cannot write more either.
        let size = entry.size();
        bytes = bytes.saturating_add(size);
        if bytes > limits.bytes {
            return Err(refuse(format!(
                "its files unpack to more than the {} bytes the set can take",
                limits.bytes
            )));
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
        }
        let mut out = File::create(&path).map_err(|e| DownloadError::io(&path, e))?;
        let mut written = 0u64;
        loop {
            let n = entry
                .read(&mut buffer)
                .map_err(|e| refuse(format!("member {name}: {e}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > size {
                return Err(refuse(format!(
                    "member {name} holds more than the {size} bytes its header says"
                )));
            }
            out.write_all(&buffer[..n])
                .map_err(|e| DownloadError::io(&path, e))?;
        }
        files += 1;
        compressed = compressed.saturating_add(entry.compressed_size());
        progress(compressed, false);
    }
    if files == 0 {
        return Err(refuse("the archive holds no files".to_owned()));
    }
    progress(compressed, true);
    Ok(files)
}

/// Whether a member name is absolute (`/`, `\\` or a drive letter) or has a `..` component, with
/// either separator (archives made on Windows may use `\\`).
fn climbs_out(name: &str) -> bool {
    name.starts_with(['/', '\\'])
        || name.get(1..2) == Some(":")
        || name.split(['/', '\\']).any(|part| part == "..")
}

/// A failure of the ZIP reader (a broken central directory, an unsupported method, a CRC
/// mismatch, a truncated file): the archive's fault, named as such.
fn zip_error(what: &str, e: ZipError) -> DownloadError {
    DownloadError::NotAnArchive {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_absolute_or_climb_are_told_apart_from_plain_ones() {
        for inside in ["a.txt", "a/b/c.JPEG", "a\\b.txt", "a/..b", "a/b../c", "./a"] {
            assert!(!climbs_out(inside), "{inside}");
        }
        for outside in [
            "/a", "\\a", "C:/a", "c:\\a", "..", "../a", "a/../b", "a\\..\\b", "a/..",
        ] {
            assert!(climbs_out(outside), "{outside}");
        }
    }
}
