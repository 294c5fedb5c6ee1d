//! Checkpoints: weights (with BN statistics) and optimiser state in safetensors, progress in JSON.
//!
//! The sampler and augmentation streams are pure functions of (seed, epoch, step), so the step is
//! all the RNG state a resume needs: a resumed run draws exactly the batches it would have drawn.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::run_dir::{RunDirError, write_atomically};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";

/// Where training stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Steps completed.
    pub step: u64,
    pub seed: u64,
    /// Seconds of training before this checkpoint.
    pub elapsed_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("{path}: {source}")]
    Tensor {
        path: String,
        source: candle_core::Error,
    },
    #[error("{0}: no checkpoint here (missing {1})")]
    Missing(String, &'static str),
}

fn tensor_error(path: &Path) -> impl FnOnce(candle_core::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Tensor {
        path: path.display().to_string(),
        source,
    }
}

/// Save weights, optimiser buffers and state; the state file is written last, so a checkpoint whose
/// state exists is complete.
pub fn save(
    run: &Path,
    vars: &VarMap,
    buffers: &HashMap<String, Tensor>,
    state: &TrainingState,
) -> Result<(), CheckpointError> {
    let model = run.join(MODEL_FILE);
    let tmp = run.join("model.safetensors.tmp");
    vars.save(&tmp).map_err(tensor_error(&tmp))?;
    fs::rename(&tmp, &model).map_err(|source| RunDirError::Io {
        path: model.clone(),
        source,
    })?;
    let optimizer = run.join(OPTIMIZER_FILE);
    let tmp = run.join("optimizer.safetensors.tmp");
    candle_core::safetensors::save(buffers, &tmp).map_err(tensor_error(&tmp))?;
    fs::rename(&tmp, &optimizer).map_err(|source| RunDirError::Io {
        path: optimizer.clone(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(state).map_err(|source| RunDirError::Json {
        path: run.join(STATE_FILE),
        source,
    })?;
    write_atomically(&run.join(STATE_FILE), &json)?;
    Ok(())
}

/// Load the progress of a checkpoint.
pub fn load_state(run: &Path) -> Result<TrainingState, CheckpointError> {
    let path = run.join(STATE_FILE);
    if !path.exists() {
        return Err(CheckpointError::Missing(
            run.display().to_string(),
            STATE_FILE,
        ));
    }
    let bytes = fs::read(&path).map_err(|source| RunDirError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(serde_json::from_slice(&bytes).map_err(|source| RunDirError::Json { path, source })?)
}

/// Overwrite the variables of `vars` with the checkpoint's weights.
pub fn load_weights(run: &Path, vars: &mut VarMap) -> Result<(), CheckpointError> {
    let path = run.join(MODEL_FILE);
    if !path.exists() {
        return Err(CheckpointError::Missing(
            run.display().to_string(),
            MODEL_FILE,
        ));
    }
    vars.load(&path).map_err(tensor_error(&path))
}

/// The optimiser's momentum buffers.
pub fn load_buffers(
    run: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let path = run.join(OPTIMIZER_FILE);
    if !path.exists() {
        return Err(CheckpointError::Missing(
            run.display().to_string(),
            OPTIMIZER_FILE,
        ));
    }
    candle_core::safetensors::load(&path, device).map_err(tensor_error(&path))
}
