//! One writer per run folder: `train.lock`, held with an OS file lock while a process trains there.
//!
//! The lock is the kernel's (`flock`), not the file's existence: a process that dies, however it dies,
//! releases it, so a lock file left behind by a killed run is stale by construction and is simply taken
//! over. The file holds the owner's pid, for the message shown to a second process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::files::{RunError, io_error};

pub const LOCK_FILE: &str = "train.lock";

/// Held while training in a run folder; released on drop. The file stays: removing it would let a
/// process that opened the old file and one that creates a new one both "hold" the lock.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    file: File,
}

impl RunLock {
    /// Take the lock of `run`, or say which process holds it.
    pub fn acquire(run: &Path) -> Result<Self, RunError> {
        let path = run.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                return Err(RunError::refused(
                    run,
                    format!(
                        "another process{} is training in this run folder; wait for it to end or stop it first",
                        if owner.is_empty() {
                            String::new()
                        } else {
                            format!(" (pid {owner})")
                        }
                    ),
                ));
            }
            Err(TryLockError::Error(error)) => return Err(RunError::io(&path, error)),
        }
        file.set_len(0).map_err(io_error(&path))?;
        file.rewind().map_err(io_error(&path))?;
        writeln!(file, "{}", std::process::id()).map_err(io_error(&path))?;
        Ok(Self { path, file })
    }
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file would release the lock as well; unlocking says so explicitly.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_owner_pid_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = RunLock::acquire(dir.path()).expect("first");
        let error = RunLock::acquire(dir.path()).expect_err("second");
        assert!(
            error
                .to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(lock);
        let _again = RunLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LOCK_FILE), "999999999\n").expect("stale file");
        let _lock = RunLock::acquire(dir.path()).expect("stale lock taken over");
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("read");
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
