//! The dataset manager: fetches the published archives (resuming, verifying checksums, falling back to
//! mirrors), installs them atomically in a per-user cache, imports copies the user already has, and
//! finds sets already present, in the cache or where a system package put them.
//!
//! Installed layouts are the ones the readers in `data` open: `<cache>/cifar10/cifar-10-batches-bin/`,
//! `<cache>/cifar100/cifar-100-binary/`, `<cache>/mnist/*.gz` (IDX files stay gzipped),
//! `<cache>/tiny-imagenet/tiny-imagenet-200/` (the ZIP unpacked). A set counts as
//! present in the cache only when its folder holds the completion marker, which is written in a
//! staging folder before that folder is renamed into place.

pub mod catalogue;
mod error;
mod http;
mod install;
mod lock;
mod progress;
mod unzip;
mod verify;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use catalogue::{Checksum, DatasetSpec, Layout, Limits, Member, RemoteFile};
pub use error::{DownloadError, MirrorFailure};
pub use http::{DownloadOptions, Downloader};
pub use install::{MARKER, MAX_ENTRIES, check_members, disk_usage, unpack_tar};
pub use progress::{Progress, Stage};
pub use unzip::unpack_zip;
pub use verify::{Container, GZIP_MAGIC, ZIP_MAGIC, verify_file};

use http::SetProgress;
use install::Staging;
use progress::Meter;

/// Environment variable that moves the dataset cache (the `--dir` flag wins over it).
pub const DATA_DIR_ENV: &str = "SLA_DATA_DIR";

/// Where datasets live: `dir_override` (the `--dir` flag), else `$SLA_DATA_DIR`, else the
/// platform's cache folder + `sla/datasets` (`~/.cache/sla/datasets` on Linux,
/// `~/Library/Caches/sla/datasets` on macOS, `%LOCALAPPDATA%\sla\datasets` on Windows).
pub fn cache_root(dir_override: Option<&Path>) -> Result<PathBuf, DownloadError> {
    resolve_root(
        dir_override,
        std::env::var_os(DATA_DIR_ENV),
        dirs::cache_dir(),
    )
}

/// [`cache_root`] with its inputs passed in, so the precedence can be tested without touching the
/// process environment.
pub fn resolve_root(
    dir_override: Option<&Path>,
    env: Option<OsString>,
    platform_cache: Option<PathBuf>,
) -> Result<PathBuf, DownloadError> {
    if let Some(dir) = dir_override {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    platform_cache
        .map(|c| c.join("sla").join("datasets"))
        .ok_or(DownloadError::NoCacheDir)
}

/// The catalogue entry `name`, or an error listing the known names.
pub fn spec(name: &str) -> Result<DatasetSpec, DownloadError> {
    catalogue::find(name).ok_or_else(|| DownloadError::UnknownDataset {
        name: name.to_owned(),
        known: catalogue::names().join(", "),
    })
}

/// The folder a reader should open for dataset `name` if the set is already here: a complete set in
/// the cache (see [`cache_root`]) or a system copy (e.g. Debian's `dataset-fashion-mnist` in
/// `/usr/share/datasets/fashion-mnist`). `None` for unknown names and missing sets.
pub fn locate(name: &str, dir_override: Option<&Path>) -> Option<PathBuf> {
    let spec = catalogue::find(name)?;
    let root = cache_root(dir_override).ok();
    locate_spec(&spec, root.as_deref())
}

/// [`locate`] for a given spec and cache root.
pub fn locate_spec(spec: &DatasetSpec, root: Option<&Path>) -> Option<PathBuf> {
    root.and_then(|root| installed(spec, root))
        .or_else(|| system_copy(spec))
}

fn installed(spec: &DatasetSpec, root: &Path) -> Option<PathBuf> {
    let dir = root.join(&spec.name);
    let data = spec.data_dir(&dir);
    (dir.join(MARKER).is_file() && check_members(spec, &data).is_ok()).then_some(data)
}

fn system_copy(spec: &DatasetSpec) -> Option<PathBuf> {
    spec.system_dirs
        .iter()
        .find(|dir| install::foreign_set_usable(spec, dir))
        .cloned()
}

/// Where a dataset stands, for `sla data list` and the GUI's picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Complete and verified in the cache; `path` is the folder readers open.
    Installed {
        path: PathBuf,
        bytes: u64,
    },
    /// Found in a system location (no download needed).
    System {
        path: PathBuf,
        bytes: u64,
    },
    /// Not usable yet, but an interrupted download left `bytes` to resume from.
    Partial {
        bytes: u64,
    },
    Missing,
}

/// Downloads, imports and finds datasets under one cache root. Cancel from any thread with
/// [`Manager::cancel_flag`]; progress goes to the callback of each call.
pub struct Manager {
    root: PathBuf,
    downloader: Downloader,
}

impl Manager {
    /// A manager on the cache folder chosen by [`cache_root`], with default network options.
    pub fn new(dir_override: Option<&Path>) -> Result<Self, DownloadError> {
        Ok(Manager::with_options(
            cache_root(dir_override)?,
            DownloadOptions::default(),
        ))
    }

    pub fn with_options(root: PathBuf, options: DownloadOptions) -> Self {
        Manager {
            root,
            downloader: Downloader::new(options, Arc::new(AtomicBool::new(false))),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Raise it to stop the running download, verification or extraction: the call returns
    /// [`DownloadError::Cancelled`], partial downloads stay for resuming, staging is removed.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.downloader.cancel_flag()
    }

    /// Where downloads of `spec` wait (as `<file>.part` until verified).
    pub fn downloads_dir(&self, spec: &DatasetSpec) -> PathBuf {
        self.root.join(".downloads").join(&spec.name)
    }

    pub fn locate(&self, spec: &DatasetSpec) -> Option<PathBuf> {
        locate_spec(spec, Some(&self.root))
    }

    pub fn presence(&self, spec: &DatasetSpec) -> Presence {
        if let Some(path) = installed(spec, &self.root) {
            let bytes = disk_usage(&self.root.join(&spec.name));
            return Presence::Installed { path, bytes };
        }
        if let Some(path) = system_copy(spec) {
            let bytes = disk_usage(&path);
            return Presence::System { path, bytes };
        }
        match disk_usage(&self.downloads_dir(spec)) {
            0 => Presence::Missing,
            bytes => Presence::Partial { bytes },
        }
    }

    /// The set if it is already present (cache or system), else [`Manager::fetch`].
    pub fn ensure(
        &self,
        spec: &DatasetSpec,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        match self.locate(spec) {
            Some(path) => Ok(path),
            None => self.fetch(spec, progress),
        }
    }

    /// Downloads every file of `spec` (resuming earlier partial downloads), verifies them and
    /// installs the set in the cache, replacing any copy there. Returns the folder readers open.
    /// Another fetch or import of the same set (in this process or another) is waited for; when
    /// it installed the set meanwhile, that set is returned without downloading it again.
    pub fn fetch(
        &self,
        spec: &DatasetSpec,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        if spec.files.is_empty() {
            return Err(DownloadError::InvalidSpec(format!(
                "{} lists no file to download",
                spec.name
            )));
        }
        let acquired = lock::acquire(&self.root, &spec.name, &self.downloader.cancel_flag())?;
        if acquired.waited
            && let Some(path) = installed(spec, &self.root)
        {
            // Another run fetched the same set while this one waited: the work is done.
            log::info!("{} was installed by another run meanwhile", spec.title);
            return Ok(path);
        }
        let downloads = self.downloads_dir(spec);
        fs::create_dir_all(&downloads).map_err(|e| DownloadError::io(&downloads, e))?;
        let result = self.download_and_install(spec, &downloads, progress);
        // Emptied folders go (a kept .part keeps them); failures here change nothing for the user.
        let _ = fs::remove_dir(&downloads);
        let _ = fs::remove_dir(self.root.join(".downloads"));
        result
    }

    fn download_and_install(
        &self,
        spec: &DatasetSpec,
        downloads: &Path,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        let mut meter = Meter::new(Stage::Download, spec.download_size());
        let mut base = 0;
        let mut paths = Vec::with_capacity(spec.files.len());
        for file in &spec.files {
            let dest = downloads.join(&file.name);
            let mut set_progress = SetProgress {
                meter: &mut meter,
                base,
                sink: &mut *progress,
            };
            self.downloader.fetch_file(file, &dest, &mut set_progress)?;
            base += http::file_len(&dest);
            paths.push(dest);
        }
        let data = self.install(spec, &paths, true, progress)?;
        for path in &paths {
            if let Err(e) = fs::remove_file(path) {
                log::warn!("could not remove {}: {e}", path.display());
            }
        }
        log::info!("{} installed in {}", spec.title, data.display());
        Ok(data)
    }

    /// Installs a copy the user already has: the archive itself (tar.gz and ZIP sets), a folder
    /// holding the downloaded files, or the extracted set's folder or its parent. Archives and downloaded files are
    /// checked against the published checksums unless `verify` is false; extracted sets are checked
    /// for every member and, where known, its size. The source is left untouched.
    pub fn import(
        &self,
        spec: &DatasetSpec,
        source: &Path,
        verify: bool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        let meta = fs::metadata(source).map_err(|e| DownloadError::io(source, e))?;
        let _lock = lock::acquire(&self.root, &spec.name, &self.downloader.cancel_flag())?.lock;
        self.import_locked(spec, source, &meta, verify, progress)
    }

    fn import_locked(
        &self,
        spec: &DatasetSpec,
        source: &Path,
        meta: &fs::Metadata,
        verify: bool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        if meta.is_file() {
            let [file] = spec.files.as_slice() else {
                return Err(DownloadError::InvalidSpec(format!(
                    "{} is imported from a folder holding {}",
                    spec.title,
                    file_names(spec)
                )));
            };
            self.check_import(file, source, verify, progress)?;
            return self.install(spec, &[source.to_path_buf()], false, progress);
        }
        match &spec.layout {
            Layout::TarGz { root } | Layout::Zip { root, .. } => {
                if let [file] = spec.files.as_slice() {
                    let archive = source.join(&file.name);
                    if let Ok(meta) = fs::metadata(&archive)
                        && meta.is_file()
                    {
                        return self.import_locked(spec, &archive, &meta, verify, progress);
                    }
                }
                let nested = source.join(root);
                let data = if nested.is_dir() {
                    nested
                } else {
                    source.to_path_buf()
                };
                // Checked before copying anything, so a wrong folder fails at once.
                check_members(spec, &data)?;
                let staging = Staging::new(&self.root, spec)?;
                let copy = spec.data_dir(staging.path());
                match &spec.layout {
                    Layout::Zip { limits, .. } => {
                        let cancel = self.downloader.cancel_flag();
                        install::copy_tree(&data, &copy, *limits, &cancel)?;
                    }
                    _ => install::copy_members(spec, &data, &copy)?,
                }
                let target = self.root.join(&spec.name);
                staging.commit(spec, &target)?;
                Ok(spec.data_dir(&target))
            }
            Layout::Files => {
                let missing: Vec<String> = spec
                    .files
                    .iter()
                    .filter(|f| !source.join(&f.name).is_file())
                    .map(|f| f.name.clone())
                    .collect();
                if !missing.is_empty() {
                    return Err(DownloadError::MissingFiles {
                        dir: source.to_path_buf(),
                        missing,
                    });
                }
                let paths: Vec<PathBuf> = spec.files.iter().map(|f| source.join(&f.name)).collect();
                for (file, path) in spec.files.iter().zip(&paths) {
                    self.check_import(file, path, verify, progress)?;
                }
                self.install(spec, &paths, false, progress)
            }
        }
    }

    fn check_import(
        &self,
        file: &RemoteFile,
        path: &Path,
        verify: bool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), DownloadError> {
        verify::check_file(
            path,
            &path.display().to_string(),
            verify::Container::of(&file.name),
        )?;
        if verify {
            let cancel = self.downloader.cancel_flag();
            verify::verify_reporting(path, file, &cancel, progress)?;
        }
        Ok(())
    }

    /// Builds the set from verified files (`paths`, one per `spec.files`) in a staging folder and
    /// moves it into place. The files themselves are left where they are; `ours` says they are the
    /// manager's own downloads, which may be hard-linked rather than copied (a user's file is
    /// copied, so later edits to it cannot reach the installed set).
    fn install(
        &self,
        spec: &DatasetSpec,
        paths: &[PathBuf],
        ours: bool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, DownloadError> {
        let staging = Staging::new(&self.root, spec)?;
        match &spec.layout {
            Layout::TarGz { .. } => {
                let cancel = self.downloader.cancel_flag();
                let limit = install::extract_limit(spec);
                for archive in paths {
                    install::extract_tar_gz(archive, staging.path(), limit, &cancel, progress)?;
                }
            }
            Layout::Zip { limits, .. } => {
                let cancel = self.downloader.cancel_flag();
                for archive in paths {
                    unzip::extract_zip(archive, staging.path(), *limits, &cancel, progress)?;
                }
            }
            Layout::Files => {
                for (file, path) in spec.files.iter().zip(paths) {
                    let to = staging.path().join(&file.name);
                    if !(ours && fs::hard_link(path, &to).is_ok()) {
                        fs::copy(path, &to).map_err(|e| DownloadError::io(&to, e))?;
                    }
                }
            }
        }
        let target = self.root.join(&spec.name);
        staging.commit(spec, &target)?;
        Ok(spec.data_dir(&target))
    }
}

fn file_names(spec: &DatasetSpec) -> String {
    spec.files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_beats_the_environment_which_beats_the_platform_folder() {
        let flag = Path::new("/flag");
        let env = Some(OsString::from("/env"));
        let platform = Some(PathBuf::from("/home/u/.cache"));
        let root = |f, e, p| resolve_root(f, e, p).expect("a root");
        assert_eq!(root(Some(flag), env.clone(), platform.clone()), flag);
        assert_eq!(root(None, env, platform.clone()), Path::new("/env"));
        assert_eq!(
            root(None, Some(OsString::new()), platform.clone()),
            Path::new("/home/u/.cache/sla/datasets")
        );
        assert!(matches!(
            resolve_root(None, None, None),
            Err(DownloadError::NoCacheDir)
        ));
    }

    #[test]
    fn a_manager_can_run_on_a_worker_thread() {
        // The GUI moves the manager into a download thread and keeps the cancel flag.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Manager>();
        send_sync::<Progress>();
        send_sync::<DownloadError>();
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let error = spec("imagenet").expect_err("not in the catalogue");
        assert_eq!(
            error.to_string(),
            "unknown dataset `imagenet`; known datasets: cifar10, cifar100, mnist, fashion-mnist, kmnist, tiny-imagenet"
        );
    }
}
