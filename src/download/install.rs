//! Turning verified downloads (or a user's own copy) into an installed set, atomically: everything is
//! built in a staging folder beside the target, checked, marked complete and only then renamed into
//! place, so a half-extracted set is never taken for a complete one.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::read::GzDecoder;

use super::catalogue::{DatasetSpec, Layout, Limits};
use super::error::DownloadError;
use super::progress::{Meter, Progress, Stage};

/// The file whose presence says a cache folder holds a complete, verified set.
pub const MARKER: &str = ".sla-complete";

/// A folder under construction; removed on drop unless [`Staging::commit`] moved it into place.
pub(crate) struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    /// A fresh staging folder for `spec` in `root` (the same file system as the target, so the final
    /// rename is atomic). Leftovers of interrupted runs for the same set are removed first.
    pub(crate) fn new(root: &Path, spec: &DatasetSpec) -> Result<Self, DownloadError> {
        fs::create_dir_all(root).map_err(|e| DownloadError::io(root, e))?;
        remove_leftovers(root, &spec.name);
        let path = root.join(format!(".{}.staging-{}", spec.name, std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).map_err(|e| DownloadError::io(&path, e))?;
        Ok(Staging {
            path,
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the members, writes the completion marker and renames the folder to `target`,
    /// replacing whatever was there.
    pub(crate) fn commit(mut self, spec: &DatasetSpec, target: &Path) -> Result<(), DownloadError> {
        check_members(spec, &spec.data_dir(&self.path))?;
        let marker = self.path.join(MARKER);
        let note = format!(
            "{}\n{}\n",
            spec.title,
            spec.files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        fs::write(&marker, note).map_err(|e| DownloadError::io(&marker, e))?;
        let parent = target.parent().unwrap_or(Path::new("."));
        let old = parent.join(format!(".{}.old-{}", spec.name, std::process::id()));
        let had_old = target.exists();
        if had_old {
            fs::rename(target, &old).map_err(|e| DownloadError::io(target, e))?;
        }
        if let Err(e) = fs::rename(&self.path, target) {
            if had_old {
                let _ = fs::rename(&old, target);
            }
            return Err(DownloadError::io(target, e));
        }
        self.committed = true;
        if had_old && let Err(e) = fs::remove_dir_all(&old) {
            log::warn!("could not remove the replaced set {}: {e}", old.display());
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed
            && let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not remove {}: {e}", self.path.display());
        }
    }
}

/// Removes staging and replaced folders of `name` that an interrupted run left in `root`.
fn remove_leftovers(root: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let prefixes = [format!(".{name}.staging-"), format!(".{name}.old-")];
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            log::info!("removing leftover {}", entry.path().display());
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The members `spec` needs that `data_dir` lacks (or has with the wrong size), as an error.
pub fn check_members(spec: &DatasetSpec, data_dir: &Path) -> Result<(), DownloadError> {
    let missing: Vec<String> = spec
        .members
        .iter()
        .filter_map(|m| {
            let len = fs::metadata(data_dir.join(&m.path))
                .ok()
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len());
            match (len, m.size) {
                (None, _) => Some(m.path.clone()),
                (Some(len), Some(size)) if len != size => {
                    Some(format!("{} ({len} bytes instead of {size})", m.path))
                }
                _ => None,
            }
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DownloadError::MissingFiles {
            dir: data_dir.to_path_buf(),
            missing,
        })
    }
}

/// Counts the compressed bytes the decoder pulls, for extraction progress.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    meter: Meter,
    file: &'a str,
    sink: &'a mut dyn FnMut(&Progress),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(p) = self.meter.update(self.file, self.read, false) {
            (self.sink)(&p);
        }
        Ok(n)
    }
}

/// Entries one archive may hold: the published sets have fewer than twenty; an archive of
/// millions of empty files would exhaust the file system's inodes before anything else failed.
pub const MAX_ENTRIES: usize = 10_000;

/// Bytes an archive of `spec` may unpack to: its members' published sizes plus 64 MiB for the
/// small files around them (read-me, class names). A bomb that inflates to more is stopped at the
/// first entry past the limit, before that entry is written.
pub(crate) fn extract_limit(spec: &DatasetSpec) -> u64 {
    let members: u64 = spec.members.iter().filter_map(|m| m.size).sum();
    members.saturating_add(64 << 20)
}

/// Unpacks the tar.gz `archive` into `dest`, writing at most `limit` bytes of files. Only regular
/// files and folders are taken, and none outside `dest`; an archive that is not gzip+tar is
/// reported as such.
pub(crate) fn extract_tar_gz(
    archive: &Path,
    dest: &Path,
    limit: u64,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(&Progress),
) -> Result<(), DownloadError> {
    let what = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| archive.display().to_string());
    let input = File::open(archive).map_err(|e| DownloadError::io(archive, e))?;
    let size = input.metadata().map(|m| m.len()).ok();
    let counting = Counting {
        inner: input,
        read: 0,
        meter: Meter::new(Stage::Extract, size),
        file: &what,
        sink,
    };
    let mut gz = GzDecoder::new(counting);
    unpack_tar(&mut gz, &what, dest, limit, cancel)?;
    let counting = gz.get_mut();
    if let Some(p) = counting.meter.update(&what, counting.read, true) {
        (counting.sink)(&p);
    }
    Ok(())
}

/// Unpacks the (already inflated) tar stream `tar` into `dest`, naming it `what` in errors.
/// Regular files and folders are taken, anything else (links, devices) is skipped; a member
/// that would land outside `dest`, more than [`MAX_ENTRIES`] entries, more than `limit` bytes of
/// files or no file at all is an error. Returns the number of files written.
pub fn unpack_tar<R: Read>(
    tar: R,
    what: &str,
    dest: &Path,
    limit: u64,
    cancel: &AtomicBool,
) -> Result<usize, DownloadError> {
    let mut tar = tar::Archive::new(tar);
    tar.set_preserve_permissions(false);
    tar.set_preserve_mtime(false);
    tar.set_unpack_xattrs(false);
    let not_archive = |e: io::Error| unpack_error(what, dest, e);
    let refuse = |detail: String| DownloadError::NotAnArchive {
        what: what.to_owned(),
        detail,
    };
    let mut files = 0usize;
    let mut entries = 0usize;
    let mut bytes = 0u64;
    for entry in tar.entries().map_err(not_archive)? {
        if cancel.load(Ordering::Relaxed) {
            return Err(DownloadError::Cancelled);
        }
        let mut entry = entry.map_err(not_archive)?;
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(refuse(format!("more than {MAX_ENTRIES} entries")));
        }
        let kind = entry.header().entry_type();
        let path = entry.path().map_err(not_archive)?.into_owned();
        if !(kind.is_file() || kind.is_dir()) {
            log::debug!("skipping {} ({kind:?}) in {what}", path.display());
            continue;
        }
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(refuse(format!(
                "member {} points outside the folder",
                path.display()
            )));
        }
        // The size in the header is what unpacking writes (a shorter stream is an error).
        bytes = bytes.saturating_add(entry.size());
        if bytes > limit {
            return Err(refuse(format!(
                "its files unpack to more than the {limit} bytes the set can take"
            )));
        }
        entry.unpack_in(dest).map_err(not_archive)?;
        files += usize::from(kind.is_file());
    }
    if files == 0 {
        return Err(refuse("the archive holds no files".to_owned()));
    }
    Ok(files)
}

/// An unpacking failure: a full disk or a write problem is ours, anything else is the archive's.
fn unpack_error(what: &str, dest: &Path, e: io::Error) -> DownloadError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied => DownloadError::io(dest, e),
        _ => DownloadError::NotAnArchive {
            what: what.to_owned(),
            detail: e.to_string(),
        },
    }
}

/// Copies the members of a set from `source` (a folder holding them) into `dest`.
pub(crate) fn copy_members(
    spec: &DatasetSpec,
    source: &Path,
    dest: &Path,
) -> Result<(), DownloadError> {
    check_members(spec, source)?;
    for member in &spec.members {
        let to = dest.join(&member.path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
        }
        fs::copy(source.join(&member.path), &to).map_err(|e| DownloadError::io(&to, e))?;
    }
    Ok(())
}

/// Copies the folder `source` into `dest` (created), for a set imported already extracted whose
/// files are too many to list as members. Files and folders are copied; a symbolic link is refused
/// (it could point anywhere, and the installed set must not change when its target does), and so
/// is a tree of more than `limits` entries or bytes, checked before each file is copied.
pub(crate) fn copy_tree(
    source: &Path,
    dest: &Path,
    limits: Limits,
    cancel: &AtomicBool,
) -> Result<(), DownloadError> {
    let refuse = |path: &Path, detail: String| DownloadError::UnusableCopy {
        path: path.to_path_buf(),
        detail,
    };
    let mut entries = 0usize;
    let mut bytes = 0u64;
    let mut folders = vec![(source.to_path_buf(), dest.to_path_buf())];
    while let Some((from_dir, to_dir)) = folders.pop() {
        fs::create_dir_all(&to_dir).map_err(|e| DownloadError::io(&to_dir, e))?;
        for entry in fs::read_dir(&from_dir).map_err(|e| DownloadError::io(&from_dir, e))? {
            if cancel.load(Ordering::Relaxed) {
                return Err(DownloadError::Cancelled);
            }
            let entry = entry.map_err(|e| DownloadError::io(&from_dir, e))?;
            let from = entry.path();
            let to = to_dir.join(entry.file_name());
            entries += 1;
            if entries > limits.entries {
                return Err(refuse(
                    source,
                    format!("more than the {} entries the set can have", limits.entries),
                ));
            }
            // Not followed: the link itself is what is judged.
            let meta = fs::symlink_metadata(&from).map_err(|e| DownloadError::io(&from, e))?;
            if meta.is_dir() {
                folders.push((from, to));
            } else if meta.is_file() {
                bytes = bytes.saturating_add(meta.len());
                if bytes > limits.bytes {
                    return Err(refuse(
                        source,
                        format!("more than the {} bytes the set can take", limits.bytes),
                    ));
                }
                fs::copy(&from, &to).map_err(|e| DownloadError::io(&to, e))?;
            } else {
                return Err(refuse(
                    &from,
                    "a symbolic link or special file; the set takes regular files only".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Whether the members of a [`Layout::Files`] set found at `dir` look usable (present, gzip), for
/// folders the manager did not fill itself.
pub(crate) fn foreign_set_usable(spec: &DatasetSpec, dir: &Path) -> bool {
    if check_members(spec, dir).is_err() {
        return false;
    }
    match spec.layout {
        Layout::Files => spec.members.iter().all(|m| {
            super::verify::check_file(&dir.join(&m.path), &m.path, super::verify::Container::Gzip)
                .is_ok()
        }),
        Layout::TarGz { .. } | Layout::Zip { .. } => true,
    }
}

/// Total size of the files under `path`.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}
