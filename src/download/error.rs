//! Everything that can go wrong while fetching, verifying, importing or installing a dataset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// One failure of the dataset manager. Each message names the file, URL or folder at fault and says
/// what was expected, so a user can act on it without reading logs.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("unknown dataset `{name}`; known datasets: {known}")]
    UnknownDataset { name: String, known: String },

    #[error(
        "no cache folder: this platform has no user cache directory; pass --dir or set SLA_DATA_DIR"
    )]
    NoCacheDir,

    #[error("{url}: server answered HTTP {status}{}", reason_suffix(reason))]
    HttpStatus {
        url: String,
        status: u16,
        reason: String,
    },

    #[error("{url}: {message}")]
    Network { url: String, message: String },

    #[error("{what}: expected {expected} bytes, got {actual}")]
    WrongSize {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("{url}: transfer ended early after {received} of {expected} bytes (kept for resuming)")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },

    #[error("{url}: the server sent more than the expected {limit} bytes; stopped there")]
    TooLarge { url: String, limit: u64 },

    #[error("{from}: refused redirect to {to}: {message}")]
    InsecureRedirect {
        from: String,
        to: String,
        message: String,
    },

    #[error("{file}: {algorithm} checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        file: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    #[error("{what} is not a valid archive: {detail}")]
    NotAnArchive { what: String, detail: String },

    /// A folder the user imports from holds something the set cannot take (a link, too much).
    #[error("{}: {detail}", path.display())]
    UnusableCopy { path: PathBuf, detail: String },

    #[error("{}: the set is incomplete, missing {}", dir.display(), missing.join(", "))]
    MissingFiles { dir: PathBuf, missing: Vec<String> },

    #[error("disk full while writing {}", path.display())]
    DiskFull { path: PathBuf },

    // The cause is part of the message (not a `source`) so a GUI showing `to_string()` says it all.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },

    #[error("{0}")]
    InvalidSpec(String),

    #[error("cancelled")]
    Cancelled,

    #[error("could not fetch {file} from any mirror:{}", list_attempts(attempts))]
    AllMirrorsFailed {
        file: String,
        attempts: Vec<MirrorFailure>,
    },
}

/// What one mirror answered when every mirror of a file failed.
#[derive(Debug)]
pub struct MirrorFailure {
    pub url: String,
    pub error: DownloadError,
}

impl fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Errors about a URL already start with it; do not print it twice.
        let text = self.error.to_string();
        if text.starts_with(&self.url) {
            f.write_str(&text)
        } else {
            write!(f, "{}: {}", self.url, text)
        }
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    }
}

fn list_attempts(attempts: &[MirrorFailure]) -> String {
    attempts.iter().map(|a| format!("\n  - {a}")).collect()
}

impl DownloadError {
    /// Wraps an I/O error on `path`, singling out a full disk so the user is told the real cause.
    pub fn io(path: &Path, error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::StorageFull {
            DownloadError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            DownloadError::Io {
                path: path.to_path_buf(),
                error,
            }
        }
    }

    /// Whether this error is worth trying the next mirror for (as opposed to a local problem that
    /// every mirror would hit again, such as a full disk or a cancel).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(
            self,
            DownloadError::HttpStatus { .. }
                | DownloadError::Network { .. }
                | DownloadError::WrongSize { .. }
                | DownloadError::TooLarge { .. }
                | DownloadError::InsecureRedirect { .. }
                | DownloadError::Truncated { .. }
                | DownloadError::ChecksumMismatch { .. }
                | DownloadError::NotAnArchive { .. }
        )
    }
}
