//! `--keep-best`: the weights of the evaluation with the best validation single accuracy, kept beside
//! the last checkpoint (the reference code's model selection), with that evaluation's test metrics.
//!
//! Saved like a checkpoint: the weights under a fresh name (their step), synced, then the manifest
//! `best.json` replaced atomically, then earlier best weights deleted; a crash at any moment leaves
//! the previous best or the new one, whole. The trainer offers an evaluation here *before* the
//! checkpoint of its step, so a crash between the two re-trains to that step and offers the same
//! (bit-identical) evaluation again rather than skipping it.

use std::fs;
use std::path::{Path, PathBuf};

use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::run::{EvalMetrics, RunError, sync_dir, write_atomically};

use super::checkpoint::{CheckpointError, FileEntry, read_manifest_file, tensor_error};

pub const BEST_MANIFEST_FILE: &str = "best.json";
const BEST_MODEL_PREFIX: &str = "best-model-";
const SAFETENSORS: &str = ".safetensors";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// The evaluation these weights had: its step, validation and test accuracies.
    metrics: EvalMetrics,
    model: FileEntry,
}

/// The best evaluation of a run so far, its weights checked against the manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub metrics: EvalMetrics,
    model: PathBuf,
}

impl Best {
    /// Overwrite the variables of `vars` with the best weights.
    pub fn load_weights(&self, vars: &mut VarMap) -> Result<(), CheckpointError> {
        vars.load(&self.model).map_err(tensor_error(&self.model))
    }
}

fn read_manifest(run: &Path) -> Result<Option<Manifest>, RunError> {
    read_manifest_file(&run.join(BEST_MANIFEST_FILE))
}

/// The metrics of the best evaluation recorded in `run`, without reading its weights (for reports).
pub fn best_metrics(run: &Path) -> Result<Option<EvalMetrics>, RunError> {
    Ok(read_manifest(run)?.map(|manifest| manifest.metrics))
}

/// The best weights of `run`, if it kept any.
pub fn find(run: &Path) -> Result<Option<Best>, RunError> {
    let Some(manifest) = read_manifest(run)? else {
        return Ok(None);
    };
    let model = manifest.model.verified_path(run, BEST_MANIFEST_FILE)?;
    Ok(Some(Best {
        metrics: manifest.metrics,
        model,
    }))
}

/// Keep `vars` as the run's best if `metrics` has a higher validation single accuracy than the
/// best so far (ties keep the earlier). Returns whether it did.
pub fn offer(run: &Path, vars: &VarMap, metrics: &EvalMetrics) -> Result<bool, CheckpointError> {
    let Some(accuracy) = metrics.validation_single_acc.filter(|a| a.is_finite()) else {
        return Ok(false);
    };
    let previous = read_manifest(run)?.and_then(|m| m.metrics.validation_single_acc);
    if previous.is_some_and(|best| best >= accuracy) {
        return Ok(false);
    }
    let name = format!("{BEST_MODEL_PREFIX}{:09}{SAFETENSORS}", metrics.step);
    let path = run.join(&name);
    vars.save(&path).map_err(tensor_error(&path))?;
    let manifest = Manifest {
        metrics: metrics.clone(),
        model: FileEntry::record(run, name)?,
    };
    let manifest_path = run.join(BEST_MANIFEST_FILE);
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| RunError::format(&manifest_path, e))?;
    write_atomically(&manifest_path, &json)?;
    remove_unreferenced(run, manifest.model.name());
    Ok(true)
}

/// Delete earlier best weights (and half-written ones of a crashed save); failing costs disk space
/// only, so it is logged.
fn remove_unreferenced(run: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(run) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(BEST_MODEL_PREFIX)
            && name.ends_with(SAFETENSORS)
            && name != keep
            && let Err(error) = fs::remove_file(entry.path())
        {
            log::warn!("could not remove the earlier best weights {name}: {error}");
        }
    }
    let _ = sync_dir(run);
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    fn vars_holding(value: f32) -> VarMap {
        let vars = VarMap::new();
        vars.get(
            (2,),
            "w",
            candle_nn::Init::Const(value as f64),
            DType::F32,
            &Device::Cpu,
        )
        .expect("var");
        vars
    }

    fn metrics(step: u64, validation: Option<f64>) -> EvalMetrics {
        EvalMetrics {
            step,
            validation_single_acc: validation,
            single_acc: 0.5,
            ..Default::default()
        }
    }

    fn weight(vars: &VarMap) -> Vec<f32> {
        let data = vars.data().lock().expect("lock");
        data["w"].as_tensor().to_vec1::<f32>().expect("values")
    }

    #[test]
    fn only_a_better_validation_accuracy_replaces_the_best_and_its_old_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path();
        assert!(find(run).expect("read").is_none());
        assert!(!offer(run, &vars_holding(1.0), &metrics(10, None)).expect("offer"));
        assert!(offer(run, &vars_holding(1.0), &metrics(10, Some(0.6))).expect("offer"));
        assert!(!offer(run, &vars_holding(2.0), &metrics(20, Some(0.6))).expect("tie"));
        assert!(!offer(run, &vars_holding(3.0), &metrics(30, Some(0.5))).expect("worse"));
        assert!(offer(run, &vars_holding(4.0), &metrics(40, Some(0.7))).expect("better"));

        let best = find(run).expect("read").expect("kept");
        assert_eq!(best.metrics.step, 40);
        assert_eq!(best_metrics(run).expect("read"), Some(best.metrics.clone()));
        let mut loaded = vars_holding(0.0);
        best.load_weights(&mut loaded).expect("load");
        assert_eq!(weight(&loaded), [4.0, 4.0]);
        let weight_files: Vec<String> = fs::read_dir(run)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(SAFETENSORS))
            .collect();
        assert_eq!(weight_files, ["best-model-000000040.safetensors"]);
    }

    #[test]
    fn damaged_best_weights_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path();
        assert!(offer(run, &vars_holding(1.0), &metrics(7, Some(0.9))).expect("offer"));
        let file = run.join("best-model-000000007.safetensors");
        let mut bytes = fs::read(&file).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        fs::write(&file, bytes).expect("write");
        let error = find(run).expect_err("damaged");
        assert!(
            error.to_string().contains("best-model-000000007"),
            "{error}"
        );
    }
}
