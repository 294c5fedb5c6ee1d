//! Native folder dialogs (rfd) for the data folder, the run folder and Open run. The typed path
//! stays the fallback: where no dialog can be shown (no desktop portal, a remote session) the
//! dialog answers nothing and the field keeps what was typed.
//!
//! The dialog runs on its own thread so the window keeps drawing (a training run's curves go on
//! while the user browses); its answer arrives through a channel polled each frame.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};

use eframe::egui;

/// The field a chosen folder fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderField {
    /// The dataset's folder.
    Data,
    /// The folder a new run is written to.
    Run,
    /// A run folder to inspect or resume.
    Open,
}

impl FolderField {
    fn title(self) -> &'static str {
        match self {
            Self::Data => "Dataset folder",
            Self::Run => "Folder for the new run",
            Self::Open => "Run folder to open",
        }
    }
}

/// Answers "which folder?" in place of the native dialog: for tests, which cannot click a
/// system window, and for embedders with their own.
pub type FolderChooser = Box<dyn Fn(FolderField) -> Option<PathBuf> + Send>;

/// At most one open dialog, and where its answer goes.
#[derive(Default)]
pub struct FolderDialogs {
    chooser: Option<FolderChooser>,
    pending: Option<(FolderField, Receiver<Option<PathBuf>>)>,
}

impl FolderDialogs {
    /// Answer with `chooser` instead of the native dialog.
    pub fn set_chooser(&mut self, chooser: FolderChooser) {
        self.chooser = Some(chooser);
    }

    /// Whether a dialog is waiting for the user (its buttons are then disabled).
    pub fn is_open(&self) -> bool {
        self.pending.is_some()
    }

    /// Ask for a folder for `field`, starting in `start` when that is a folder.
    pub fn open(&mut self, field: FolderField, start: &Path, ctx: &egui::Context) {
        if self.is_open() {
            return;
        }
        let (sender, receiver) = mpsc::channel();
        if let Some(chooser) = &self.chooser {
            // The receiver is held below, so the send cannot fail.
            let _ = sender.send(chooser(field));
        } else {
            let mut dialog = rfd::AsyncFileDialog::new().set_title(field.title());
            if start.is_dir() {
                dialog = dialog.set_directory(start);
            }
            // Created here, on the UI thread (macOS requires it), awaited on a helper thread.
            let picked = dialog.pick_folder();
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new()
                .name("folder dialog".into())
                .spawn(move || {
                    let path = pollster::block_on(picked).map(|h| h.path().to_path_buf());
                    let _ = sender.send(path);
                    ctx.request_repaint();
                });
            if let Err(error) = spawned {
                log::warn!("could not open a folder dialog: {error}");
                return;
            }
        }
        self.pending = Some((field, receiver));
    }

    /// The folder chosen since the last call, with its field; `None` while the dialog is open, or
    /// when it was cancelled.
    pub fn poll(&mut self) -> Option<(FolderField, PathBuf)> {
        let (field, receiver) = self.pending.as_ref()?;
        let field = *field;
        match receiver.try_recv() {
            Err(TryRecvError::Empty) => None,
            Ok(picked) => {
                self.pending = None;
                picked.map(|path| (field, path))
            }
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                None
            }
        }
    }
}
