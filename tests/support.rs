//! Helpers the tests share: seeded random tensors, a scaled closeness check, the `sla` binary,
//! the embedded set's training images.

use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Uniform values in [−1, 1) from a seeded generator.
pub fn random(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = shape.iter().product();
    let values: Vec<f64> = (0..count).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)
}

/// max |a − b| ≤ tol · max(1, max |b|), with the worst difference in the message.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= tol * scale,
        "{what}: differs by {worst:e} (scale {scale:e}, tolerance {tol:e})"
    );
    Ok(())
}

/// Run the `sla` binary: (success, stdout, stderr).
pub fn sla(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sla"))
        .args(args)
        .output()
        .expect("run sla");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Train on the trainer thread to the end, returning the metrics of every evaluation.
pub fn train(start: sla::train::RunStart) -> Vec<sla::train::EvalMetrics> {
    use sla::train::{TrainerEvent, TrainerHandle};
    let trainer = TrainerHandle::spawn(start, || {}).expect("spawn");
    let mut metrics = Vec::new();
    while let Some(event) = trainer.next_event() {
        match event {
            TrainerEvent::Snapshot(s) => metrics.push(s.metrics.clone()),
            TrainerEvent::Finished(result) => {
                result.expect("training succeeds");
                break;
            }
            _ => {}
        }
    }
    metrics
}

/// Every weight of a run's checkpoint, by name, as bits (for bit-for-bit comparisons).
pub fn weight_bits(run: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    let checkpoint = sla::train::checkpoint::require(run).expect("checkpoint");
    let tensors =
        candle_core::safetensors::load(checkpoint.model_path(), &candle_core::Device::Cpu)
            .expect("weights");
    let mut named: Vec<(String, Vec<u32>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let values: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
            (k, values.iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    named.sort();
    named
}

/// The embedded set's training images, shared as the batch and episode builders take them.
pub fn embedded_train() -> std::sync::Arc<sla::data::Dataset> {
    std::sync::Arc::new(
        sla::data::load(&sla::data::DatasetSource::default())
            .expect("embedded")
            .train,
    )
}
