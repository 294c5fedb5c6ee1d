//! SGD with momentum, weight decay and optional Nesterov, exactly as PyTorch's `torch.optim.SGD`.

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var, backprop::GradStore};

/// `g ← ∇ + wd·p; b ← μ·b + g (b = g at the first step); d = g + μ·b (Nesterov) or b; p ← p − lr·d`.
/// Weight decay applies to every trained parameter, BN included, as in the reference.
pub struct Sgd {
    params: Vec<(String, Var)>,
    buffers: HashMap<String, Tensor>,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
}

impl Sgd {
    pub fn new(
        params: Vec<(String, Var)>,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    ) -> Self {
        Self {
            params,
            buffers: HashMap::new(),
            momentum,
            weight_decay,
            nesterov,
        }
    }

    /// Update every parameter that has a gradient (BN running statistics have none and are skipped).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for (name, var) in &self.params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let param = var.as_detached_tensor();
            let mut direction = grad.detach();
            if self.weight_decay != 0.0 {
                direction = (direction + (&param * self.weight_decay)?)?;
            }
            if self.momentum != 0.0 {
                let buffer = match self.buffers.get(name) {
                    Some(previous) => ((previous * self.momentum)? + &direction)?,
                    None => direction.clone(),
                }
                .detach();
                direction = if self.nesterov {
                    (direction + (&buffer * self.momentum)?)?
                } else {
                    buffer.clone()
                };
                self.buffers.insert(name.clone(), buffer);
            }
            var.set(&(param - (direction * lr)?)?)?;
        }
        Ok(())
    }

    /// The momentum buffers by parameter name, for checkpoints.
    pub fn buffers(&self) -> &HashMap<String, Tensor> {
        &self.buffers
    }

    pub fn set_buffers(&mut self, buffers: HashMap<String, Tensor>) {
        self.buffers = buffers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps on f(p) = p², against the PyTorch update rule computed by hand.
    #[test]
    fn matches_the_pytorch_rule_by_hand() -> Result<()> {
        for nesterov in [false, true] {
            let var = Var::new(&[1.0f64], &Device::Cpu)?;
            let mut sgd = Sgd::new(vec![("p".into(), var.clone())], 0.9, 0.1, nesterov);
            let (mut p, mut b, lr) = (1.0f64, 0.0f64, 0.5);
            for step in 0..2 {
                let loss = var.as_tensor().sqr()?.sum_all()?;
                sgd.step(&loss.backward()?, lr)?;
                let g = 2.0 * p + 0.1 * p;
                b = if step == 0 { g } else { 0.9 * b + g };
                let d = if nesterov { g + 0.9 * b } else { b };
                p -= lr * d;
                let got = var.as_tensor().to_vec1::<f64>()?[0];
                assert!(
                    (got - p).abs() < 1e-12,
                    "nesterov={nesterov} step {step}: {got} vs {p}"
                );
            }
        }
        Ok(())
    }
}
