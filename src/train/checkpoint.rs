//! Checkpoints: weights (with BN statistics) and optimiser state in safetensors, named with their sizes
//! and SHA-256 by a manifest, `checkpoint.json`, which is written last.
//!
//! The manifest is the checkpoint's one commit point. Saving writes the new weights and optimiser
//! files under fresh names and syncs them, then replaces the manifest atomically, and only then deletes
//! the previous checkpoint's files: a crash or a full disk at any moment leaves either the old
//! checkpoint or the new one, whole. Loading checks every file against the manifest, so a truncated or
//! altered file is an error rather than a silently different model.
//!
//! The sampler and augmentation streams are pure functions of (seed, epoch, step), so the step is all
//! the RNG state a resume needs: a resumed run draws exactly the batches it would have drawn. The
//! manifest also keeps a fingerprint of what a step means (the settings that fix the batches, and the
//! training data), so a resume that would mean something else is refused.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::run::{RunError, sync_dir, sync_file, write_atomically};

pub const MANIFEST_FILE: &str = "checkpoint.json";
const MODEL_PREFIX: &str = "model-";
const OPTIMIZER_PREFIX: &str = "optimizer-";
const SAFETENSORS: &str = ".safetensors";
/// Checkpoints written before the manifest: three files renamed one after another.
const LEGACY_FILES: [&str; 3] = ["state.json", "model.safetensors", "optimizer.safetensors"];

/// Where training stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingState {
    /// Steps completed.
    pub step: u64,
    pub seed: u64,
    /// Seconds of training before this checkpoint.
    pub elapsed_s: f64,
    /// The run was stopped during the evaluation due at this step: a resume runs it first.
    #[serde(default)]
    pub pending_evaluation: bool,
}

/// What a step of this run means: the settings that fix its batches and model, and the training data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// Setting name → value, as in `config.json`.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub train_images: usize,
    pub validation_images: usize,
    pub num_classes: usize,
    /// SHA-256 of the training (and validation) images and labels, in order.
    pub data_sha256: String,
}

impl Fingerprint {
    /// What differs from `other` (the checkpoint's), one phrase per difference.
    pub fn differences(&self, checkpoint: &Fingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        for (key, then) in &checkpoint.settings {
            let now = self.settings.get(key).unwrap_or(&serde_json::Value::Null);
            if now != then {
                changes.push(format!("{key} is now {now} but was {then}"));
            }
        }
        let data_then = (
            checkpoint.train_images,
            checkpoint.validation_images,
            checkpoint.num_classes,
        );
        let data_now = (self.train_images, self.validation_images, self.num_classes);
        if data_now != data_then || self.data_sha256 != checkpoint.data_sha256 {
            changes.push(format!(
                "the training data differ: now {} training + {} validation images of {} classes \
                 (SHA-256 {:.12}), then {} + {} of {} (SHA-256 {:.12})",
                data_now.0,
                data_now.1,
                data_now.2,
                self.data_sha256,
                data_then.0,
                data_then.1,
                data_then.2,
                checkpoint.data_sha256
            ));
        }
        changes
    }
}

/// One file of a checkpoint, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    name: String,
    bytes: u64,
    sha256: String,
}

impl FileEntry {
    /// Sync the file `name` of `run` (already written) and record its size and hash.
    pub(crate) fn record(run: &Path, name: String) -> Result<Self, RunError> {
        let path = run.join(&name);
        sync_file(&path)?;
        let (bytes, sha256) = sha256_of(&path)?;
        Ok(FileEntry {
            name,
            bytes,
            sha256,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The file's path in `run`, after checking it is a plain name there and still the file the
    /// manifest `manifest` recorded.
    pub(crate) fn verified_path(&self, run: &Path, manifest: &str) -> Result<PathBuf, RunError> {
        if Path::new(&self.name).components().count() != 1 {
            return Err(RunError::format(
                &run.join(manifest),
                "a file name with a path",
            ));
        }
        let path = run.join(&self.name);
        let (bytes, sha256) = sha256_of(&path)?;
        if bytes != self.bytes || sha256 != self.sha256 {
            return Err(RunError::format(
                &path,
                format!(
                    "does not match {manifest} ({bytes} bytes, SHA-256 {sha256:.12}; expected {} bytes, {:.12}): the file was changed or damaged",
                    self.bytes, self.sha256
                ),
            ));
        }
        Ok(path)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Counts saves, so every checkpoint's files get names no earlier one used.
    generation: u64,
    state: TrainingState,
    model: FileEntry,
    optimizer: FileEntry,
    fingerprint: Fingerprint,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: {message}")]
    Tensor { path: String, message: String },
    #[error("{0}: no checkpoint here (no {MANIFEST_FILE})")]
    Missing(String),
}

pub(crate) fn tensor_error(path: &Path) -> impl FnOnce(candle_core::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Tensor {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

fn sha256_of(path: &Path) -> Result<(u64, String), RunError> {
    let bytes = fs::read(path).map_err(|e| RunError::io(path, e))?;
    let digest = Sha256::digest(&bytes);
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes.len() as u64, hex))
}

/// A JSON manifest, or `None` when the file does not exist (no checkpoint of that kind yet).
pub(crate) fn read_manifest_file<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, RunError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RunError::format(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RunError::io(path, e)),
    }
}

fn read_manifest(run: &Path) -> Result<Option<Manifest>, RunError> {
    read_manifest_file(&run.join(MANIFEST_FILE))
}

/// Save weights, optimiser buffers and state as one checkpoint; the previous one stays whole until
/// this one is.
pub fn save(
    run: &Path,
    vars: &VarMap,
    buffers: &HashMap<String, Tensor>,
    state: &TrainingState,
    fingerprint: &Fingerprint,
) -> Result<(), CheckpointError> {
    let generation = read_manifest(run)?.map_or(1, |m| m.generation + 1);
    let write = |prefix: &str, save: &dyn Fn(&Path) -> candle_core::Result<()>| {
        let name = format!("{prefix}{generation:06}{SAFETENSORS}");
        let path = run.join(&name);
        save(&path).map_err(tensor_error(&path))?;
        Ok::<_, CheckpointError>(FileEntry::record(run, name)?)
    };
    let model = write(MODEL_PREFIX, &|path| vars.save(path))?;
    let optimizer = write(OPTIMIZER_PREFIX, &|path| {
        candle_core::safetensors::save(buffers, path)
    })?;
    let manifest = Manifest {
        generation,
        state: state.clone(),
        model,
        optimizer,
        fingerprint: fingerprint.clone(),
    };
    let path = run.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| RunError::format(&path, e))?;
    write_atomically(&path, &json)?;
    remove_unreferenced(run, &manifest);
    Ok(())
}

/// Delete earlier checkpoints' files (and half-written ones of a crashed save). Failing to delete
/// costs disk space, not correctness, so it is only logged.
fn remove_unreferenced(run: &Path, manifest: &Manifest) {
    let Ok(entries) = fs::read_dir(run) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with(MODEL_PREFIX) || name.starts_with(OPTIMIZER_PREFIX))
            && name.ends_with(SAFETENSORS);
        let keep = name == manifest.model.name || name == manifest.optimizer.name;
        if ((ours && !keep) || LEGACY_FILES.contains(&name.as_str()))
            && let Err(error) = fs::remove_file(entry.path())
        {
            log::warn!("could not remove the old checkpoint file {name}: {error}");
        }
    }
    let _ = sync_dir(run);
}

/// A complete checkpoint found in a run folder, its files checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub state: TrainingState,
    /// `None` for checkpoints written before fingerprints existed.
    pub fingerprint: Option<Fingerprint>,
    model: PathBuf,
    optimizer: PathBuf,
}

/// The checkpoint in `run`, if there is one.
pub fn find(run: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(manifest) = read_manifest(run)? else {
        return find_legacy(run);
    };
    let mut paths = Vec::new();
    for entry in [&manifest.model, &manifest.optimizer] {
        paths.push(entry.verified_path(run, MANIFEST_FILE)?);
    }
    Ok(Some(Checkpoint {
        state: manifest.state,
        fingerprint: Some(manifest.fingerprint),
        model: paths[0].clone(),
        optimizer: paths[1].clone(),
    }))
}

fn find_legacy(run: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let [state, model, optimizer] = LEGACY_FILES.map(|name| run.join(name));
    if !(state.exists() && model.exists() && optimizer.exists()) {
        return Ok(None);
    }
    let bytes = fs::read(&state).map_err(|e| RunError::io(&state, e))?;
    let state = serde_json::from_slice(&bytes).map_err(|e| RunError::format(&state, e))?;
    Ok(Some(Checkpoint {
        state,
        fingerprint: None,
        model,
        optimizer,
    }))
}

/// Whether `run` holds a checkpoint, without reading it (cheap enough for every frame of the app).
pub fn exists(run: &Path) -> bool {
    run.join(MANIFEST_FILE).is_file() || LEGACY_FILES.iter().all(|name| run.join(name).is_file())
}

/// The checkpoint in `run`, which must exist.
pub fn require(run: &Path) -> Result<Checkpoint, CheckpointError> {
    find(run)?.ok_or_else(|| CheckpointError::Missing(run.display().to_string()))
}

impl Checkpoint {
    /// The weights file (for tools that read the model directly).
    pub fn model_path(&self) -> &Path {
        &self.model
    }

    /// Overwrite the variables of `vars` with the checkpoint's weights.
    pub fn load_weights(&self, vars: &mut VarMap) -> Result<(), CheckpointError> {
        vars.load(&self.model).map_err(tensor_error(&self.model))
    }

    /// The optimiser's momentum buffers.
    pub fn load_buffers(
        &self,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>, CheckpointError> {
        candle_core::safetensors::load(&self.optimizer, device)
            .map_err(tensor_error(&self.optimizer))
    }
}
