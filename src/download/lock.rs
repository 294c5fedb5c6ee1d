//! One fetch, import or install of a set at a time per cache folder, across threads and processes:
//! an advisory lock on `<root>/.<name>.lock`, held for the whole operation.
//!
//! A lock rather than per-process temporary names: two runs that both download a 170 MB archive
//! into different names would each finish, and the second would replace the set the first just
//! installed (and wipe its staging folder as a leftover mid-extraction). Waiting lets the second
//! find the set installed and use it. The lock file stays after use: deleting it would let a
//! waiting run hold a lock on a file no newcomer sees.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::DownloadError;

/// How often a waiting run looks again (and checks its cancel flag).
const POLL: Duration = Duration::from_millis(50);

/// Held while it lives; the lock goes with the file handle (also when the process dies).
pub(crate) struct SetLock {
    _file: File,
}

/// How a lock was obtained.
pub(crate) struct Acquired {
    pub lock: SetLock,
    /// Whether another run held it first (and may have done the work meanwhile).
    pub waited: bool,
}

/// `<root>/.<name>.lock`.
pub(crate) fn lock_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".{name}.lock"))
}

/// Takes the lock of set `name` in `root`, waiting for another holder to finish; a raised
/// `cancel` stops the wait with [`DownloadError::Cancelled`].
pub(crate) fn acquire(
    root: &Path,
    name: &str,
    cancel: &AtomicBool,
) -> Result<Acquired, DownloadError> {
    fs::create_dir_all(root).map_err(|e| DownloadError::io(root, e))?;
    let path = lock_path(root, name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DownloadError::io(&path, e))?;
    let mut waited = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Acquired {
                    lock: SetLock { _file: file },
                    waited,
                });
            }
            Err(TryLockError::WouldBlock) => {
                if !waited {
                    log::info!(
                        "another run is fetching or installing {name} in {}; waiting for it",
                        root.display()
                    );
                    waited = true;
                }
                if cancel.load(Ordering::Relaxed) {
                    return Err(DownloadError::Cancelled);
                }
                std::thread::sleep(POLL);
            }
            Err(TryLockError::Error(e)) => return Err(DownloadError::io(&path, e)),
        }
    }
}
