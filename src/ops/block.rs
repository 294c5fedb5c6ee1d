//! A whole training-mode residual block, `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`,
//! as one candle op with its own backward pass, on channels-last tensors.
//!
//! Why one op: candle's backward gives every input of every op a zero tensor and then adds the op's
//! gradient to it (`GradStore::or_insert`, then `add`), two extra passes over an activation-sized
//! buffer per input. The five ops of a block have six activation-sized inputs; the block as one op
//! has one. Measured on ResNet-20 at 28×28×1 (SLA step, 2-core Xeon): candle's adds and zeroing
//! were 15 % of the step's samples under `perf`; as one op per block, the step's time outside the
//! fast ops fell from 306 to 117 ms and the median step from 1,548 to 1,324 ms
//! (docs/performance.md).
//!
//! The block evaluates the very expressions of the separate ops in the same order, so its values
//! and gradients equal theirs bit for bit (the test checks it). Besides the bookkeeping, two
//! passes over each activation go: neither batch norm writes its normalised output. The first's
//! normalisation and ReLU are applied as conv2 copies each image into its padded frame (and again
//! in the backward pass, where conv2's weight gradient needs that input), the second's in the
//! residual add. On a machine that moves about 13 GB/s, a pass over a 512-image 28×28×16
//! activation costs 2–4 ms: the ResNet-20 SLA step's batch-norm forward fell from 75 to 34 ms, its
//! median step from 1,229 to 1,088 ms side by side, and its peak memory from 778 to 632 MB, since
//! conv2's input is no longer kept for the backward pass. A candle op
//! takes at most three inputs, so the six parameters come packed into one vector by
//! `Tensor::cat`, whose backward hands each parameter its slice of the packed gradient (small
//! tensors, a few kilobytes).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{self, BatchNormStats, Normalization};
use super::conv::{self, Geometry, OutputGradient};
use super::residual;
use super::{Real, contiguous_slice, with_slice};

/// The parameters of one block, as the model keeps them: convolution weights `[Cout, Cin, k, k]`
/// and `[Cout, Cout, k, k]`, and each batch norm's γ and β `[Cout]`.
pub struct BlockParameters<'a> {
    pub conv1: &'a Tensor,
    pub bn1: (&'a Tensor, &'a Tensor),
    pub conv2: &'a Tensor,
    pub bn2: (&'a Tensor, &'a Tensor),
}

/// The training-mode block of channels-last `x` (`[B, H, W, Cin]`): conv1 (stride 2 when
/// `downsample`), batch norm + ReLU, conv2, batch norm, then the residual add + ReLU with the
/// identity or option-A shortcut. Convolutions are k×k with padding k/2, as the CIFAR ResNets'.
/// Both batch norms use `eps`. Returns the output and the two batch norms' batch statistics, for
/// the running statistics.
pub fn residual_block_train(
    x: &Tensor,
    parameters: &BlockParameters,
    downsample: bool,
    eps: f64,
) -> Result<(Tensor, [BatchNormStats; 2])> {
    let (cout, cin, k, _) = parameters.conv1.dims4()?;
    let packed = Tensor::cat(
        &[
            &parameters.conv1.flatten_all()?,
            parameters.bn1.0,
            parameters.bn1.1,
            &parameters.conv2.flatten_all()?,
            parameters.bn2.0,
            parameters.bn2.1,
        ],
        0,
    )?;
    let saved = Arc::new(Mutex::new(None));
    let op = ResidualBlock {
        cin,
        cout,
        k,
        downsample,
        eps,
        saved: saved.clone(),
    };
    let out = x.contiguous()?.apply_op2(&packed, op)?;
    let stats = match lock(&saved)?.as_ref() {
        Some(saved) => saved.stats.clone(),
        None => candle_core::bail!("residual block: the forward pass kept no statistics"),
    };
    Ok((out, stats))
}

struct ResidualBlock {
    cin: usize,
    cout: usize,
    k: usize,
    downsample: bool,
    eps: f64,
    /// What the forward pass leaves for the backward pass.
    saved: Arc<Mutex<Option<Saved>>>,
}

/// The block's intermediate activations (the batch norms' inputs) and batch statistics. conv2's
/// input is conv1_out normalised, recomputed where the backward pass needs it.
struct Saved {
    conv1_out: Tensor,
    conv2_out: Tensor,
    stats: [BatchNormStats; 2],
}

fn lock(saved: &Mutex<Option<Saved>>) -> Result<std::sync::MutexGuard<'_, Option<Saved>>> {
    saved
        .lock()
        .map_err(|_| candle_core::Error::Msg("residual block state lock poisoned".into()))
}

/// The packed parameters cut back into their six slices.
struct Unpacked<'a, T> {
    conv1: &'a [T],
    gamma1: &'a [T],
    beta1: &'a [T],
    conv2: &'a [T],
    gamma2: &'a [T],
    beta2: &'a [T],
}

impl ResidualBlock {
    fn conv1_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }

    fn conv2_len(&self) -> usize {
        self.cout * self.cout * self.k * self.k
    }

    fn packed_len(&self) -> usize {
        self.conv1_len() + self.conv2_len() + 4 * self.cout
    }

    fn unpack<'a, T>(&self, packed: &'a [T]) -> Result<Unpacked<'a, T>> {
        if packed.len() != self.packed_len() {
            candle_core::bail!(
                "residual block: {} packed parameters, expected {}",
                packed.len(),
                self.packed_len()
            );
        }
        let (conv1, rest) = packed.split_at(self.conv1_len());
        let (gamma1, rest) = rest.split_at(self.cout);
        let (beta1, rest) = rest.split_at(self.cout);
        let (conv2, rest) = rest.split_at(self.conv2_len());
        let (gamma2, beta2) = rest.split_at(self.cout);
        Ok(Unpacked {
            conv1,
            gamma1,
            beta1,
            conv2,
            gamma2,
            beta2,
        })
    }

    /// The two convolutions' geometries for input images of shape `x`.
    fn geometries(&self, x: &Shape) -> Result<(Geometry, Geometry)> {
        let (stride, pad) = (if self.downsample { 2 } else { 1 }, self.k / 2);
        let conv1 = Shape::from((self.cout, self.cin, self.k, self.k));
        let first = Geometry::new(x, &conv1, stride, pad)?;
        let conv2 = Shape::from((self.cout, self.cout, self.k, self.k));
        let second = Geometry::new(&first.output_shape(), &conv2, 1, pad)?;
        Ok((first, second))
    }

    fn forward_typed<T: Real>(&self, x: &[T], packed: &[T], shape: &Shape) -> Result<Vec<T>> {
        let p = self.unpack(packed)?;
        let (first, second) = self.geometries(shape)?;
        let out_shape = first.output_shape();
        let shortcut = residual::dims(&out_shape, shape, self.downsample)?;

        let conv1_out = conv::forward_values(x, p.conv1, &first);
        // Each batch norm stops at its statistics: the first's normalisation and ReLU happen as
        // conv2 loads its input, the second's in the residual add, so neither normalised
        // activation is written out (two fewer passes over an activation each, and conv2's
        // input is not kept for the backward pass: it is conv1_out normalised again).
        let (hidden, stats1) = batch_norm::batch_normalization(
            &conv1_out, p.gamma1, p.beta1, self.cout, self.eps, true,
        );
        let conv2_out = conv::forward_normalized_values(&conv1_out, &hidden, p.conv2, &second);
        let (normed, stats2) = batch_norm::batch_normalization(
            &conv2_out, p.gamma2, p.beta2, self.cout, self.eps, false,
        );
        let out = residual::forward(&conv2_out, Some(&normed), x, shortcut, self.downsample);

        let cpu = candle_core::Device::Cpu;
        *lock(&self.saved)? = Some(Saved {
            conv1_out: Tensor::from_vec(conv1_out, &out_shape, &cpu)?,
            conv2_out: Tensor::from_vec(conv2_out, &out_shape, &cpu)?,
            stats: [stats1, stats2],
        });
        Ok(out)
    }

    /// (dx when x is part of the graph, the packed parameters' gradient).
    fn backward_typed<T: Real>(
        &self,
        x: &Tensor,
        packed: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (conv1_out, conv2_out, [stats1, stats2]) = match lock(&self.saved)?.as_ref() {
            Some(s) => (s.conv1_out.clone(), s.conv2_out.clone(), s.stats.clone()),
            None => candle_core::bail!("residual block: backward before forward"),
        };
        let (first, second) = self.geometries(x.shape())?;
        let shortcut = residual::dims(out.shape(), x.shape(), self.downsample)?;
        let want_dx = x.track_op();
        let (cout, eps) = (self.cout, self.eps);

        let (dx, dpacked) = with_slice::<T, _>(packed, |packed| {
            let p = self.unpack(packed)?;
            // The residual add: the gradient of the normed conv2 output, and of the shortcut.
            let (dnormed, dshortcut) = with_slice::<T, _>(out, |out| {
                with_slice::<T, _>(grad, |grad| {
                    Ok(residual::backward(out, grad, shortcut, self.downsample))
                })
            })?;
            // Each batch norm's backward pass stops at its sums; its input gradient is evaluated
            // as the convolution before it loads each image of its output gradient.
            let hidden = Normalization::new(p.gamma1, p.beta1, &stats1, eps, true);
            let (dhidden, dconv2, dgamma2, dbeta2) = with_slice::<T, _>(&conv2_out, |c2| {
                let (gradient, dgamma, dbeta) = batch_norm::backward_deferred(
                    c2, &dnormed, p.gamma2, p.beta2, &stats2, cout, eps, false,
                );
                let dy = OutputGradient::BatchNorm {
                    x: c2,
                    dy: &dnormed,
                    gradient: &gradient,
                };
                let (dhidden, dconv2) = with_slice::<T, _>(&conv1_out, |c1| {
                    Ok(conv::backward_values(
                        c1,
                        Some(&hidden),
                        p.conv2,
                        dy,
                        &second,
                        true,
                    ))
                })?;
                Ok((dhidden, dconv2, dgamma, dbeta))
            })?;
            let Some(dhidden) = dhidden else {
                candle_core::bail!("residual block: conv2 gave no input gradient");
            };
            let (dx, dconv1, dgamma1, dbeta1) = with_slice::<T, _>(&conv1_out, |c1| {
                let (gradient, dgamma, dbeta) = batch_norm::backward_deferred(
                    c1, &dhidden, p.gamma1, p.beta1, &stats1, cout, eps, true,
                );
                let dy = OutputGradient::BatchNorm {
                    x: c1,
                    dy: &dhidden,
                    gradient: &gradient,
                };
                let (dx, dconv1) = with_slice::<T, _>(x, |x| {
                    Ok(conv::backward_values(x, None, p.conv1, dy, &first, want_dx))
                })?;
                Ok((dx, dconv1, dgamma, dbeta))
            })?;
            // The shortcut's gradient joins conv1's: dnormed itself for the identity.
            let dx = dx.map(|mut dx| {
                let dshortcut = if self.downsample {
                    &dshortcut
                } else {
                    &dnormed
                };
                add_into(&mut dx, dshortcut);
                dx
            });
            let mut dpacked = Vec::with_capacity(self.packed_len());
            for part in [&dconv1, &dgamma1, &dbeta1, &dconv2, &dgamma2, &dbeta2] {
                dpacked.extend_from_slice(part);
            }
            Ok((dx, dpacked))
        })?;
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, x.shape(), x.device()))
            .transpose()?;
        Ok((
            dx,
            Some(Tensor::from_vec(dpacked, packed.shape(), packed.device())?),
        ))
    }
}

/// `sum[i] += other[i]`, in parallel.
fn add_into<T: Real>(sum: &mut [T], other: &[T]) {
    sum.par_iter_mut()
        .zip(other.par_iter())
        .with_min_len(4096)
        .for_each(|(a, &b)| *a += b);
}

impl candle_core::CustomOp2 for ResidualBlock {
    fn name(&self) -> &'static str {
        "fast-residual-block"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (first, _) = self.geometries(l1.shape())?;
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.forward_typed::<f32>(
                    contiguous_slice(s1, l1)?,
                    contiguous_slice(s2, l2)?,
                    l1.shape(),
                )?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.forward_typed::<f64>(
                    contiguous_slice(s1, l1)?,
                    contiguous_slice(s2, l2)?,
                    l1.shape(),
                )?)
            }
            _ => candle_core::bail!("fast residual block: f32 or f64 inputs of one dtype"),
        };
        Ok((storage, first.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.backward_typed::<f32>(x, packed, res, grad),
            DType::F64 => self.backward_typed::<f64>(x, packed, res, grad),
            other => candle_core::bail!("fast residual block: unsupported dtype {other:?}"),
        }
    }
}
