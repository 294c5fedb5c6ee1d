//! Training-mode residual blocks, each `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, a
//! whole stack of them as one candle op with its own backward pass, on channels-last tensors; for
//! the ResNets, with their stem (convolution, batch norm + ReLU) in the same op.
//!
//! Why one op: candle's backward gives every input of every op a zero tensor and then adds the op's
//! gradient to it (`GradStore::or_insert`, then `add`), two extra passes over an activation-sized
//! buffer per input. The five ops of a block have six activation-sized inputs; the block as one op
//! has one. Measured on ResNet-20 at 28×28×1 (SLA step, 2-core Xeon): candle's adds and zeroing
//! were 15 % of the step's samples under `perf`; as one op per block, the step's time outside the
//! fast ops fell from 306 to 117 ms and the median step from 1,548 to 1,324 ms
//! (docs/performance.md). As one op per stack of blocks, the zeroing and adding between blocks
//! goes too (4 % of the samples: a memset, then an add reading two activations and writing one,
//! per block): the time outside the fast ops fell again, from 62–73 to 40–43 ms per step.
//!
//! The blocks evaluate the very expressions of the separate ops in the same order, so their values
//! and gradients equal theirs bit for bit (the tests check it). Besides the bookkeeping, two
//! passes over each activation go: neither batch norm writes its normalised output. The first's
//! normalisation and ReLU are applied as conv2 copies each image into its padded frame (and again
//! in the backward pass, where conv2's weight gradient needs that input), the second's in the
//! residual add. In the backward pass each batch norm's input gradient is evaluated as the
//! convolution before it loads its output gradient. On a machine that moves about 13 GB/s, a pass
//! over a 512-image 28×28×16 activation costs 2–4 ms: the ResNet-20 SLA step's batch-norm forward
//! fell from 75 to 34 ms, its median step from 1,229 to 1,088 ms side by side, and its peak memory
//! from 778 to 632 MB, since conv2's input is no longer kept for the backward pass.
//!
//! A candle op takes at most three inputs, so the parameters come packed into one vector by
//! `Tensor::cat`, whose backward hands each parameter its slice of the packed gradient (small
//! tensors, a few kilobytes).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};

use super::batch_norm::{self, BatchNormStats, GradientSums, Normalization, OutputGradientSource};
use super::conv::{self, Geometry, InputGradientEnd, OutputGradient};
use super::profile::{Phase, timed};
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
    let (out, mut stats) = residual_blocks_train(x, &[(parameters, downsample)], eps)?;
    match stats.pop() {
        Some(stats) => Ok((out, stats)),
        None => candle_core::bail!("residual block: the forward pass kept no statistics"),
    }
}

/// [`residual_block_train`] of each block in turn, `(parameters, downsample)`, as one op: the
/// output of the last, and each block's two batch statistics.
pub fn residual_blocks_train(
    x: &Tensor,
    blocks: &[(&BlockParameters, bool)],
    eps: f64,
) -> Result<(Tensor, Vec<[BatchNormStats; 2]>)> {
    let (out, _, stats) = train_as_one_op(x, None, blocks, eps)?;
    Ok((out, stats))
}

/// The parameters of a ResNet's stem: a convolution of the images (`[Cout, Cin, k, k]`, stride
/// `stride`, padding k/2) and the batch norm + ReLU after it (γ and β `[Cout]`).
pub struct StemParameters<'a> {
    pub conv: &'a Tensor,
    pub stride: usize,
    pub bn: (&'a Tensor, &'a Tensor),
}

/// A ResNet's training-mode trunk as one op: the stem (convolution, batch norm + ReLU) of the
/// channels-last `images`, then [`residual_blocks_train`]'s blocks. All batch norms use `eps`.
/// Returns the last block's output, the stem's batch statistics and each block's two.
///
/// With the stem as a separate convolution and batch norm, candle zeroed and added the gradient
/// of each one's output (two activation-sized buffers, 25.7 MB each for ResNet-20's SLA step),
/// the zeroing on one thread, and the batch norm wrote its input gradient out for the
/// convolution to read back. In the op, the stem's batch statistics come from its convolution's
/// epilogue and its input gradient is evaluated as the convolution's backward pass loads it.
pub fn resnet_trunk_train(
    images: &Tensor,
    stem: &StemParameters,
    blocks: &[(&BlockParameters, bool)],
    eps: f64,
) -> Result<(Tensor, BatchNormStats, Vec<[BatchNormStats; 2]>)> {
    match train_as_one_op(images, Some(stem), blocks, eps)? {
        (out, Some(stem_stats), stats) => Ok((out, stem_stats, stats)),
        (_, None, _) => candle_core::bail!("resnet trunk: the stem kept no statistics"),
    }
}

/// The op of [`resnet_trunk_train`] (with a stem) or [`residual_blocks_train`] (without).
fn train_as_one_op(
    x: &Tensor,
    stem: Option<&StemParameters>,
    blocks: &[(&BlockParameters, bool)],
    eps: f64,
) -> Result<(Tensor, Option<BatchNormStats>, Vec<[BatchNormStats; 2]>)> {
    let mut shapes = Vec::with_capacity(blocks.len());
    let mut parts = Vec::with_capacity(3 + 6 * blocks.len());
    let stem_shape = match stem {
        Some(stem) => {
            let (cout, cin, k, _) = stem.conv.dims4()?;
            parts.extend([
                stem.conv.flatten_all()?,
                stem.bn.0.clone(),
                stem.bn.1.clone(),
            ]);
            Some(StemShape {
                cin,
                cout,
                k,
                stride: stem.stride,
            })
        }
        None => None,
    };
    for (parameters, downsample) in blocks {
        let (cout, cin, k, _) = parameters.conv1.dims4()?;
        shapes.push(BlockShape {
            cin,
            cout,
            k,
            downsample: *downsample,
        });
        parts.extend([
            parameters.conv1.flatten_all()?,
            parameters.bn1.0.clone(),
            parameters.bn1.1.clone(),
            parameters.conv2.flatten_all()?,
            parameters.bn2.0.clone(),
            parameters.bn2.1.clone(),
        ]);
    }
    if shapes.is_empty() {
        candle_core::bail!("residual blocks: no block given");
    }
    let packed = Tensor::cat(&parts, 0)?;
    let saved = Arc::new(Mutex::new(None));
    let op = ResidualBlocks {
        stem: stem_shape,
        blocks: shapes,
        eps,
        saved: saved.clone(),
    };
    let out = x.contiguous()?.apply_op2(&packed, op)?;
    let guard = lock(&saved)?;
    let Some(trunk) = guard.as_ref() else {
        candle_core::bail!("residual blocks: the forward pass kept no statistics");
    };
    let stem_stats = trunk.stem.as_ref().map(|stem| stem.stats.clone());
    let stats = trunk
        .blocks
        .iter()
        .map(|block| block.stats.clone())
        .collect();
    Ok((out, stem_stats, stats))
}

/// The stem's convolution (its channels, kernel and stride), followed by batch norm + ReLU.
#[derive(Clone, Copy, Debug)]
struct StemShape {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
}

/// The channels and kernel of one block, and whether it halves the image.
#[derive(Clone, Copy, Debug)]
struct BlockShape {
    cin: usize,
    cout: usize,
    k: usize,
    downsample: bool,
}

struct ResidualBlocks {
    stem: Option<StemShape>,
    blocks: Vec<BlockShape>,
    eps: f64,
    /// What the forward pass leaves for the backward pass.
    saved: Arc<Mutex<Option<Trunk>>>,
}

/// What the forward pass leaves for the backward pass: the stem's, and each block's.
struct Trunk {
    stem: Option<StemSaved>,
    blocks: Vec<Saved>,
}

/// The stem's convolution output (its batch norm's input), its output (the first block's input)
/// and its batch statistics.
struct StemSaved {
    conv_out: CpuStorage,
    output: (CpuStorage, Shape),
    stats: BatchNormStats,
}

/// A block's intermediate activations (the batch norms' inputs), its output when another block
/// follows (that block's input; candle keeps the last one), and its batch statistics. conv2's
/// input is conv1_out normalised, recomputed where the backward pass needs it.
struct Saved {
    conv1_out: CpuStorage,
    conv2_out: CpuStorage,
    output: Option<(CpuStorage, Shape)>,
    stats: [BatchNormStats; 2],
}

fn lock(saved: &Mutex<Option<Trunk>>) -> Result<std::sync::MutexGuard<'_, Option<Trunk>>> {
    saved
        .lock()
        .map_err(|_| candle_core::Error::Msg("residual block state lock poisoned".into()))
}

/// The packed parameters of one block cut back into their six slices.
struct Unpacked<'a, T> {
    conv1: &'a [T],
    gamma1: &'a [T],
    beta1: &'a [T],
    conv2: &'a [T],
    gamma2: &'a [T],
    beta2: &'a [T],
}

/// The convolution `g` of `x` with `weight`, and the batch statistics of its output (`shape`:
/// channels, images) with the normalisation (γ, β, ReLU when `relu`) they give: the convolution
/// gathers its images' moments as it stores them, so the batch norm needs no pass of its own
/// over its input.
fn convolve_for_batch_norm<T: Real>(
    x: &[T],
    weight: &[T],
    g: &Geometry,
    (gamma, beta): (&[T], &[T]),
    shape: (usize, usize),
    eps: f64,
    relu: bool,
) -> (Vec<T>, Normalization<T>, BatchNormStats) {
    let (out, moments) = conv::forward_values_with_moments(x, weight, g);
    let (normalization, stats) =
        batch_norm::batch_normalization(&out, moments.as_deref(), gamma, beta, shape, eps, relu);
    (out, normalization, stats)
}

/// The stem's packed parameters cut back into their three slices.
struct StemUnpacked<'a, T> {
    conv: &'a [T],
    gamma: &'a [T],
    beta: &'a [T],
}

impl StemShape {
    fn conv_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }

    fn packed_len(&self) -> usize {
        self.conv_len() + 2 * self.cout
    }

    fn unpack<'a, T>(&self, packed: &'a [T]) -> StemUnpacked<'a, T> {
        let (conv, rest) = packed.split_at(self.conv_len());
        let (gamma, beta) = rest.split_at(self.cout);
        StemUnpacked { conv, gamma, beta }
    }

    /// The convolution's geometry for images of shape `images`.
    fn geometry(&self, images: &Shape) -> Result<Geometry> {
        let weight = Shape::from((self.cout, self.cin, self.k, self.k));
        Geometry::new(images, &weight, self.stride, self.k / 2)
    }

    /// The convolution, its batch statistics from the images' moments its epilogue gathers, and
    /// the normalised output written once: the first block's input, which its convolution, its
    /// shortcut and its backward pass all read.
    fn forward<T: Real>(
        &self,
        images: &[T],
        shape: &Shape,
        p: &StemUnpacked<T>,
        eps: f64,
    ) -> Result<StemSaved> {
        let g = self.geometry(shape)?;
        let batch = (self.cout, shape.dims().first().copied().unwrap_or(1));
        let affine = (p.gamma, p.beta);
        let (conv_out, normalization, stats) =
            convolve_for_batch_norm(images, p.conv, &g, affine, batch, eps, true);
        let output = timed(Phase::BatchNormForward, || normalization.apply(&conv_out));
        Ok(StemSaved {
            conv_out: T::to_cpu_storage_owned(conv_out),
            output: (T::to_cpu_storage_owned(output), g.output_shape()),
            stats,
        })
    }

    /// The stem's backward pass from the images (`shape`) and the gradient of its output:
    /// (the images' gradient when `want_dx`, the packed parameters' gradient). The batch norm
    /// stops at its sums; its input gradient is evaluated as the convolution loads it.
    #[allow(clippy::too_many_arguments)]
    fn backward<T: Real>(
        &self,
        (images, shape): (&[T], &Shape),
        grad: &[T],
        saved: &StemSaved,
        p: &StemUnpacked<T>,
        eps: f64,
        want_dx: bool,
    ) -> Result<(Option<Vec<T>>, Vec<T>)> {
        let g = self.geometry(shape)?;
        let conv_out = T::cpu_storage_as_slice(&saved.conv_out)?;
        let (_, gradient, dgamma, dbeta) = batch_norm::backward_deferred(
            conv_out,
            OutputGradientSource::Values(grad),
            p.gamma,
            p.beta,
            &saved.stats,
            (self.cout, shape.dims().first().copied().unwrap_or(1)),
            eps,
            true,
        );
        let dy = OutputGradient::BatchNorm {
            x: conv_out,
            dy: grad,
            gradient: &gradient,
        };
        let (dx, dconv) = conv::backward_values(images, None, p.conv, dy, (&g, None), want_dx);
        let mut dpacked = Vec::with_capacity(self.packed_len());
        for part in [&dconv, &dgamma, &dbeta] {
            dpacked.extend_from_slice(part);
        }
        Ok((dx, dpacked))
    }
}

/// The gradient of a block's output: as given, or already taken through the block's final
/// ReLU (the gradient of its residual sum) by the next block's backward pass, which had each
/// image of the gradient and of the block's output in cache as it stored them. Then the block's
/// second batch norm sums it as it is, instead of reading the output and the gradient to make
/// it and writing it out. On the ResNet-20 SLA step (2-core Zen 4, four alternating runs) batch
/// norm backward fell from 18.0–20.1 to 13.6–14.4 ms, convolution backward rose by about 1.5 ms
/// and the median step went from 375–383 to 370–376 ms. Taking that batch norm's sums there too
/// moved the time instead: they read the block's conv2 output, which is not in cache (batch
/// norm backward 6 ms, convolution backward 10 ms more, the step level).
enum BlockGradient<'a, T: Clone> {
    Given(std::borrow::Cow<'a, [T]>),
    ThroughRelu(Vec<T>),
}

impl BlockShape {
    fn conv1_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }

    fn conv2_len(&self) -> usize {
        self.cout * self.cout * self.k * self.k
    }

    fn packed_len(&self) -> usize {
        self.conv1_len() + self.conv2_len() + 4 * self.cout
    }

    fn unpack<'a, T>(&self, packed: &'a [T]) -> Unpacked<'a, T> {
        let (conv1, rest) = packed.split_at(self.conv1_len());
        let (gamma1, rest) = rest.split_at(self.cout);
        let (beta1, rest) = rest.split_at(self.cout);
        let (conv2, rest) = rest.split_at(self.conv2_len());
        let (gamma2, beta2) = rest.split_at(self.cout);
        Unpacked {
            conv1,
            gamma1,
            beta1,
            conv2,
            gamma2,
            beta2,
        }
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

    /// The block's forward pass: its output, and what its backward pass needs.
    fn forward<T: Real>(
        &self,
        x: &[T],
        shape: &Shape,
        p: &Unpacked<T>,
        eps: f64,
    ) -> Result<(Vec<T>, Saved)> {
        let (first, second) = self.geometries(shape)?;
        let shortcut = residual::dims(&first.output_shape(), shape, self.downsample)?;
        let cout = self.cout;

        let images = shape.dims().first().copied().unwrap_or(1);
        // Each batch norm stops at its statistics: the first's normalisation and ReLU happen as
        // conv2 loads its input, the second's in the residual add, so neither normalised
        // activation is written out (two fewer passes over an activation each, and conv2's
        // input is not kept for the backward pass: it is conv1_out normalised again).
        let affine = (p.gamma1, p.beta1);
        let (conv1_out, hidden, stats1) =
            convolve_for_batch_norm(x, p.conv1, &first, affine, (cout, images), eps, true);
        let (conv2_out, moments2) =
            conv::forward_normalized_values(&conv1_out, &hidden, p.conv2, &second);
        let (normed, stats2) = batch_norm::batch_normalization(
            &conv2_out,
            moments2.as_deref(),
            p.gamma2,
            p.beta2,
            (cout, images),
            eps,
            false,
        );
        let out = residual::forward(&conv2_out, Some(&normed), x, shortcut, self.downsample);
        let saved = Saved {
            conv1_out: T::to_cpu_storage_owned(conv1_out),
            conv2_out: T::to_cpu_storage_owned(conv2_out),
            output: None,
            stats: [stats1, stats2],
        };
        Ok((out, saved))
    }

    /// The block's backward pass from its input `x` (shape `shape`), output `out` and output
    /// gradient `grad`: dx when `want_dx` (taken through the ReLU at the end of the block before
    /// when `relu_before` and the shortcut is the identity, a [`BlockGradient::ThroughRelu`] then),
    /// and the packed parameters' gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward<'g, T: Real>(
        &self,
        (x, shape): (&[T], &Shape),
        out: &[T],
        grad: BlockGradient<'g, T>,
        saved: &Saved,
        p: &Unpacked<T>,
        eps: f64,
        (want_dx, relu_before): (bool, bool),
    ) -> Result<(Option<BlockGradient<'g, T>>, Vec<T>)> {
        let (first, second) = self.geometries(shape)?;
        let shortcut = residual::dims(&first.output_shape(), shape, self.downsample)?;
        let cout = self.cout;
        let conv1_out = T::cpu_storage_as_slice(&saved.conv1_out)?;
        let conv2_out = T::cpu_storage_as_slice(&saved.conv2_out)?;
        let [stats1, stats2] = &saved.stats;

        // The residual add's gradient of the normed conv2 output: made block by block as the
        // second batch norm sums it (so it is summed from cache, not read back), unless the
        // next block's pass already made it. Each batch norm's backward pass stops at its sums;
        // its input gradient is evaluated as the convolution before it loads each image of its
        // output gradient.
        let images = shape.dims().first().copied().unwrap_or(1);
        let bn2 = |dy| {
            let (gamma, beta) = (p.gamma2, p.beta2);
            batch_norm::backward_deferred(
                conv2_out,
                dy,
                gamma,
                beta,
                stats2,
                (cout, images),
                eps,
                false,
            )
        };
        let (dnormed, gradient2, dgamma2, dbeta2) = match grad {
            BlockGradient::Given(grad) => {
                let relu = residual::relu_gradient(out, &grad);
                match bn2(OutputGradientSource::Produced(&relu)) {
                    (Some(dnormed), gradient2, dgamma2, dbeta2) => {
                        (dnormed, gradient2, dgamma2, dbeta2)
                    }
                    (None, ..) => {
                        candle_core::bail!(
                            "residual block: the residual add's gradient was not made"
                        )
                    }
                }
            }
            BlockGradient::ThroughRelu(dnormed) => {
                let (_, gradient2, dgamma2, dbeta2) = bn2(OutputGradientSource::Values(&dnormed));
                (dnormed, gradient2, dgamma2, dbeta2)
            }
        };
        let hidden = Normalization::new(p.gamma1, p.beta1, stats1, eps, true);
        let dy = OutputGradient::BatchNorm {
            x: conv2_out,
            dy: &dnormed,
            gradient: &gradient2,
        };
        // The first batch norm's sums are taken by conv2's backward pass, image by image as it
        // stores dX (that batch norm's output gradient) with x (its input) just loaded.
        let sums1 = GradientSums::new(p.gamma1, p.beta1, stats1, eps, true);
        let end = InputGradientEnd {
            plus: None,
            through_relu: false,
            sums: Some(&sums1),
        };
        let conv2 =
            conv::backward_values_with(conv1_out, Some(&hidden), p.conv2, dy, (&second, end), true);
        let dconv2 = conv2.dw;
        let (Some(dhidden), Some(partials1)) = (conv2.dx, conv2.dx_sums) else {
            candle_core::bail!("residual block: conv2 gave no input gradient");
        };
        let (gradient1, dgamma1, dbeta1) =
            batch_norm::backward_from_sums(&sums1, &partials1, p.gamma1, stats1, eps);
        let dy = OutputGradient::BatchNorm {
            x: conv1_out,
            dy: &dhidden,
            gradient: &gradient1,
        };
        // The shortcut's gradient joins conv1's: dnormed itself for the identity, added as the
        // kernel stores dx (one pass over dx fewer), and then the ReLU at the end of the block
        // before takes it, with x (that block's output) in cache; option A's into the pixels it
        // reaches, after the pass.
        let through_relu = relu_before && !self.downsample;
        let end = InputGradientEnd {
            plus: (!self.downsample).then_some(&dnormed[..]),
            through_relu,
            sums: None,
        };
        let conv1 = conv::backward_values_with(x, None, p.conv1, dy, (&first, end), want_dx);
        let dx = conv1.dx.map(|mut dx| {
            if self.downsample {
                residual::add_shortcut_gradient(&mut dx, &dnormed, shortcut);
            }
            match through_relu {
                true => BlockGradient::ThroughRelu(dx),
                false => BlockGradient::Given(dx.into()),
            }
        });
        let mut dpacked = Vec::with_capacity(self.packed_len());
        for part in [&conv1.dw, &dgamma1, &dbeta1, &dconv2, &dgamma2, &dbeta2] {
            dpacked.extend_from_slice(part);
        }
        Ok((dx, dpacked))
    }
}

impl ResidualBlocks {
    fn packed_len(&self) -> usize {
        let stem = self.stem.as_ref().map_or(0, StemShape::packed_len);
        stem + self
            .blocks
            .iter()
            .map(BlockShape::packed_len)
            .sum::<usize>()
    }

    /// The stem's and each block's slice of the packed parameters.
    #[allow(clippy::type_complexity)]
    fn unpack<'a, T>(
        &self,
        packed: &'a [T],
    ) -> Result<(Option<StemUnpacked<'a, T>>, Vec<Unpacked<'a, T>>)> {
        if packed.len() != self.packed_len() {
            candle_core::bail!(
                "residual blocks: {} packed parameters, expected {}",
                packed.len(),
                self.packed_len()
            );
        }
        let mut rest = packed;
        let stem = self.stem.as_ref().map(|stem| {
            let (mine, after) = rest.split_at(stem.packed_len());
            rest = after;
            stem.unpack(mine)
        });
        let mut unpacked = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (mine, after) = rest.split_at(block.packed_len());
            unpacked.push(block.unpack(mine));
            rest = after;
        }
        Ok((stem, unpacked))
    }

    /// The output shape of every block, from the input shape `x`.
    fn shapes(&self, x: &Shape) -> Result<Vec<Shape>> {
        let mut shapes = Vec::with_capacity(self.blocks.len());
        let mut shape = match &self.stem {
            Some(stem) => stem.geometry(x)?.output_shape(),
            None => x.clone(),
        };
        for block in &self.blocks {
            shape = block.geometries(&shape)?.0.output_shape();
            shapes.push(shape.clone());
        }
        Ok(shapes)
    }

    fn forward_typed<T: Real>(&self, x: &[T], packed: &[T], shape: &Shape) -> Result<Vec<T>> {
        let (stem_parameters, parameters) = self.unpack(packed)?;
        let stem = match (&self.stem, &stem_parameters) {
            (Some(stem), Some(p)) => Some(stem.forward(x, shape, p, self.eps)?),
            _ => None,
        };
        let mut saved: Vec<Saved> = Vec::with_capacity(self.blocks.len());
        let mut input: Option<(Vec<T>, Shape)> = None;
        for (block, p) in self.blocks.iter().zip(&parameters) {
            let (x, shape) = match (&input, &stem) {
                (Some((values, shape)), _) => (&values[..], shape),
                (None, Some(stem)) => (T::cpu_storage_as_slice(&stem.output.0)?, &stem.output.1),
                (None, None) => (x, shape),
            };
            let out_shape = block.geometries(shape)?.0.output_shape();
            let (out, block_saved) = block.forward(x, shape, p, self.eps)?;
            // This block's input is the previous block's output: kept for the backward pass.
            if let (Some(previous), Some((values, shape))) = (saved.last_mut(), input.take()) {
                previous.output = Some((T::to_cpu_storage_owned(values), shape));
            }
            saved.push(block_saved);
            input = Some((out, out_shape));
        }
        *lock(&self.saved)? = Some(Trunk {
            stem,
            blocks: saved,
        });
        match input {
            Some((out, _)) => Ok(out),
            None => candle_core::bail!("residual blocks: no block given"),
        }
    }

    /// (dx when x is part of the graph, the packed parameters' gradient).
    fn backward_typed<T: Real>(
        &self,
        x: &Tensor,
        packed: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let guard = lock(&self.saved)?;
        let Some(trunk) = guard.as_ref() else {
            candle_core::bail!("residual blocks: backward before forward");
        };
        let want_dx = x.track_op();
        let (dx, dpacked) = with_slice::<T, _>(packed, |packed| {
            with_slice::<T, _>(x, |x_values| {
                with_slice::<T, _>(out, |out| {
                    with_slice::<T, _>(grad, |grad| {
                        self.backward_slices(
                            (x_values, x.shape()),
                            out,
                            grad,
                            packed,
                            trunk,
                            want_dx,
                        )
                    })
                })
            })
        })?;
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, x.shape(), x.device()))
            .transpose()?;
        Ok((
            dx,
            Some(Tensor::from_vec(dpacked, packed.shape(), packed.device())?),
        ))
    }

    /// The blocks' backward passes, last first, each block's dx the output gradient of the one
    /// before, then the stem's.
    fn backward_slices<T: Real>(
        &self,
        (x, shape): (&[T], &Shape),
        out: &[T],
        grad: &[T],
        packed: &[T],
        trunk: &Trunk,
        want_dx: bool,
    ) -> Result<(Option<Vec<T>>, Vec<T>)> {
        let (stem_parameters, parameters) = self.unpack(packed)?;
        let saved = &trunk.blocks;
        if saved.len() != self.blocks.len() {
            candle_core::bail!("residual blocks: the forward pass kept state for other blocks");
        }
        let stem = match (&self.stem, &trunk.stem, &stem_parameters) {
            (Some(stem), Some(saved), Some(p)) => Some((stem, saved, p)),
            (None, None, None) => None,
            _ => candle_core::bail!("residual blocks: the forward pass kept no stem state"),
        };
        // The first block's input: the stem's output, or the op's input.
        let first_input = match &stem {
            Some((_, saved, _)) => (T::cpu_storage_as_slice(&saved.output.0)?, &saved.output.1),
            None => (x, shape),
        };
        let mut dparts: Vec<Vec<T>> = Vec::with_capacity(self.blocks.len());
        let mut grad = BlockGradient::Given(grad.into());
        let mut dx = None;
        for (index, block) in self.blocks.iter().enumerate().rev() {
            // The block's input: the first's, or the output the block before kept.
            let input = match index.checked_sub(1).map(|before| &saved[before].output) {
                None => first_input,
                Some(Some((values, shape))) => (T::cpu_storage_as_slice(values)?, shape),
                Some(None) => candle_core::bail!("residual blocks: a block's input was not kept"),
            };
            let output = match &saved[index].output {
                Some((values, _)) => T::cpu_storage_as_slice(values)?,
                None => out,
            };
            let first = index == 0;
            let (block_dx, dpacked) = block.backward(
                input,
                output,
                // Moved out: the block's own input gradient replaces it.
                std::mem::replace(&mut grad, BlockGradient::ThroughRelu(Vec::new())),
                &saved[index],
                &parameters[index],
                self.eps,
                (!first || want_dx || stem.is_some(), !first),
            )?;
            dparts.push(dpacked);
            match block_dx {
                Some(block_dx) if !first => grad = block_dx,
                Some(BlockGradient::Given(block_dx)) => dx = Some(block_dx.into_owned()),
                Some(BlockGradient::ThroughRelu(_)) => {
                    candle_core::bail!("residual blocks: the first block has no block before")
                }
                None => dx = None,
            }
        }
        let mut dpacked = Vec::with_capacity(packed.len());
        if let Some((stem, saved, p)) = stem {
            let Some(dstem) = dx.take() else {
                candle_core::bail!("residual blocks: the first block gave no input gradient");
            };
            let (dimages, dstem_parameters) =
                stem.backward((x, shape), &dstem, saved, p, self.eps, want_dx)?;
            dx = dimages;
            dpacked.extend(dstem_parameters);
        }
        dpacked.extend(dparts.into_iter().rev().flatten());
        Ok((dx, dpacked))
    }
}

impl candle_core::CustomOp2 for ResidualBlocks {
    fn name(&self) -> &'static str {
        "fast-residual-blocks"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shapes = self.shapes(l1.shape())?;
        let Some(out_shape) = shapes.last() else {
            candle_core::bail!("residual blocks: no block given");
        };
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
            _ => candle_core::bail!("fast residual blocks: f32 or f64 inputs of one dtype"),
        };
        Ok((storage, out_shape.clone()))
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
            other => candle_core::bail!("fast residual blocks: unsupported dtype {other:?}"),
        }
    }
}
