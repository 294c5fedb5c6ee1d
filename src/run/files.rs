//! Durable file writes for the run folder, and its error type.
//!
//! A crash or a full disk must never leave a half-written file where a reader expects a whole one:
//! whole files are written to a temporary name, flushed to disk, and renamed over the old one, and the
//! folder itself is synced so that the rename survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}: {message}", path.display())]
    Io {
        path: PathBuf,
        kind: std::io::ErrorKind,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{} is not a run folder: it has no config.json", .0.display())]
    NotARun(PathBuf),
    #[error("{}: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
}

impl RunError {
    /// An I/O failure on `path`. The cause's text is part of the message (not a separate source),
    /// so a one-line error report prints it once.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        RunError::Io {
            path: path.to_path_buf(),
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    pub fn format(path: &Path, message: impl ToString) -> Self {
        RunError::Format {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn refused(path: &Path, reason: impl Into<String>) -> Self {
        RunError::Refused {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Whether the error is a missing file (a run that has not written it yet).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RunError::Io { kind, .. } if *kind == std::io::ErrorKind::NotFound)
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::io(path, error)
}

/// Write `bytes` to `path` through a synced temporary file and a rename, then sync the folder: readers
/// see the old file or the new one, never half of one, also after a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = temporary_name(path);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_parent(path)
}

/// How temporary files end.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// `name.PID.tmp` beside `path`, unique to this process so two writers never share one.
pub fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}{TEMPORARY_SUFFIX}", std::process::id()));
    path.with_file_name(name)
}

/// Flush a file's data to disk.
pub fn sync_file(path: &Path) -> Result<(), RunError> {
    OpenOptions::new()
        .read(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_error(path))
}

/// Make renames and new files in `path`'s folder durable.
pub fn sync_parent(path: &Path) -> Result<(), RunError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}

pub fn sync_dir(dir: &Path) -> Result<(), RunError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomically(&path, b"first, longer contents").expect("write");
        write_atomically(&path, b"second").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }
}
