//! Seeded parameter initialisation: a `VarMap` backend whose random values come from our own RNG.
//!
//! candle's CPU device cannot be seeded, so runs would not be reproducible with its initialisers.
//! Models create their parameters in a fixed order, so one seeded stream gives identical weights.

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap, var_builder::SimpleBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

struct SeededBackend {
    map: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

/// A `VarBuilder` that creates missing variables in `map` from a stream seeded with `seed`.
pub fn seeded_var_builder(
    map: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = SeededBackend {
        map: map.clone(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

impl SeededBackend {
    fn values(&self, init: Init, count: usize) -> Result<Vec<f64>> {
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("initialiser lock poisoned".into()))?;
        Ok(match init {
            Init::Const(value) => vec![value; count],
            Init::Randn { mean, stdev } => {
                let normal = Normal::new(mean, stdev).map_err(candle_core::Error::wrap)?;
                (0..count).map(|_| normal.sample(&mut *rng)).collect()
            }
            Init::Uniform { lo, up } => (0..count).map(|_| rng.random_range(lo..up)).collect(),
            Init::Kaiming { .. } => {
                candle_core::bail!("Kaiming initialisation is not used by sla's models")
            }
        })
    }
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter map lock poisoned".into()))?;
        if let Some(existing) = data.get(name) {
            if existing.shape() != &shape {
                candle_core::bail!(
                    "shape mismatch on {name}: {shape:?} <> {:?}",
                    existing.shape()
                );
            }
            return Ok(existing.as_tensor().clone());
        }
        let values = self.values(init, shape.elem_count())?;
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> Result<Tensor> {
        candle_core::bail!("parameter {name} must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
