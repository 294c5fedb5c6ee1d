//! The fast CPU ops against candle's own ops: values and gradients in f64 and f32 on odd shapes,
//! and whole-network gradients of the fast path against the stock path.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, IndexOp, Result, Tensor, Var};
use candle_nn::{BatchNorm, Module, ModuleT, VarMap};

use sla::model::{ModelKind, Network, seeded_var_builder};
use sla::ops;

use crate::support::{assert_close, random};

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F64 { 1e-10 } else { 2e-5 }
}

/// A scalar loss whose gradient w.r.t. `out` is a fixed random tensor, so every element matters.
fn weighted_sum(out: &Tensor, seed: u64) -> Result<Tensor> {
    let weights = random(out.dims(), seed, out.dtype())?;
    (out * weights)?.sum_all()
}

/// A channels-last `[B, …, C]` tensor as candle's channels-first `[B, C, …]` (a view).
fn channels_first(x: &Tensor) -> Result<Tensor> {
    let rank = x.rank();
    let mut order = vec![0, rank - 1];
    order.extend(1..rank - 1);
    x.permute(order)
}

/// The inverse of [`channels_first`].
fn channels_last(x: &Tensor) -> Result<Tensor> {
    let rank = x.rank();
    let mut order = vec![0];
    order.extend(2..rank);
    order.push(1);
    x.permute(order)
}

/// Per-channel mean and biased variance of a channels-last tensor, two-pass in f64.
fn channel_moments(x: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    let channels = x.dim(x.rank() - 1)?;
    let rows = x
        .to_dtype(DType::F64)?
        .reshape(((), channels))?
        .to_vec2::<f64>()?;
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..channels)
        .map(|c| rows.iter().map(|r| r[c]).sum::<f64>() / n)
        .collect();
    let var = (0..channels)
        .map(|c| rows.iter().map(|r| (r[c] - mean[c]).powi(2)).sum::<f64>() / n)
        .collect();
    Ok((mean, var))
}

/// Fast batch norm on channels-last tensors against candle-nn's on the channels-first view.
#[test]
fn batch_norm_train_matches_candle_with_and_without_relu() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        // [B, H, W, C] with odd sizes, 19 and 21 channels (vector groups of 16 plus a rest), more
        // rows than one parallel chunk ([8, 21, 23, 5], [5, 13, 15, 19]), and [B, C].
        for (shape, relu) in [
            (vec![3, 7, 9, 5], true),
            (vec![4, 5, 5, 3], false),
            (vec![2, 1, 3, 7], true),
            (vec![5, 11, 13, 4], false),
            (vec![8, 21, 23, 5], true),
            (vec![5, 13, 15, 19], false),
            (vec![3, 5, 7, 19], true),
            (vec![37, 21], true),
            (vec![13, 6], false),
        ] {
            let what = format!("{dtype:?} {shape:?} relu={relu}");
            let channels = shape[shape.len() - 1];
            let x = Var::from_tensor(&((random(&shape, 1, dtype)? * 3.0)? + 0.5)?)?;
            let gamma = Var::from_tensor(&(random(&[channels], 2, dtype)? + 1.0)?)?;
            let beta = Var::from_tensor(&random(&[channels], 3, dtype)?)?;
            let rm = random(&[channels], 4, dtype)?;
            let rv = (random(&[channels], 5, dtype)? + 2.0)?;

            let reference = BatchNorm::new_with_momentum(
                channels,
                rm.copy()?,
                rv.copy()?,
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
                1e-5,
                0.1,
            )?;
            let mut expected = reference.forward_t(&channels_first(x.as_tensor())?, true)?;
            if relu {
                expected = expected.relu()?;
            }
            let expected = channels_last(&expected)?;
            let expected_grads = weighted_sum(&expected, 9)?.backward()?;

            let (rm_fast, rv_fast) = (Var::from_tensor(&rm)?, Var::from_tensor(&rv)?);
            let (out, stats) = ops::batch_norm_train(x.as_tensor(), &gamma, &beta, 1e-5, relu)?;
            ops::batch_norm::update_running_stats(&rm_fast, &rv_fast, &stats, 0.1)?;
            assert!(out.is_contiguous(), "{what}: output contiguous");
            let grads = weighted_sum(&out, 9)?.backward()?;

            let tol = tolerance(dtype);
            assert_close(&format!("{what} output"), &out, &expected, tol)?;

            let (mean, var) = channel_moments(x.as_tensor())?;
            assert_eq!(stats.count, x.elem_count() / channels, "{what}: count");
            let as_tensor = |v: &[f64]| Tensor::new(v, &Device::Cpu);
            assert_close(
                &format!("{what} batch mean"),
                &as_tensor(&stats.mean)?,
                &as_tensor(&mean)?,
                tol,
            )?;
            assert_close(
                &format!("{what} batch var"),
                &as_tensor(&stats.var)?,
                &as_tensor(&var)?,
                tol,
            )?;
            // Fixed chunking and in-order sums: a second pass gives the same bits.
            let (again, stats_again) =
                ops::batch_norm_train(x.as_tensor(), &gamma, &beta, 1e-5, relu)?;
            assert_eq!(stats, stats_again, "{what}: statistics reproducible");
            assert_close(&format!("{what} output again"), &again, &out, 0.0)?;

            assert_close(
                &format!("{what} running mean"),
                &rm_fast,
                reference.running_mean(),
                tol,
            )?;
            assert_close(
                &format!("{what} running var"),
                &rv_fast,
                reference.running_var(),
                tol,
            )?;
            for (name, var) in [("dx", &x), ("dγ", &gamma), ("dβ", &beta)] {
                let got = grads.get(var).expect("fast gradient");
                let want = expected_grads.get(var).expect("reference gradient");
                assert_close(&format!("{what} {name}"), got, want, tol)?;
            }
        }
    }
    Ok(())
}

#[test]
fn batch_norm_eval_matches_candle() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        for shape in [vec![3, 5, 7, 6], vec![9, 19]] {
            let what = format!("eval {dtype:?} {shape:?}");
            let channels = shape[shape.len() - 1];
            let x = Var::from_tensor(&random(&shape, 11, dtype)?)?;
            let gamma = Var::from_tensor(&(random(&[channels], 12, dtype)? + 1.0)?)?;
            let beta = Var::from_tensor(&random(&[channels], 13, dtype)?)?;
            let rm = random(&[channels], 14, dtype)?;
            let rv = (random(&[channels], 15, dtype)? + 1.5)?;
            let reference = BatchNorm::new(
                channels,
                rm.clone(),
                rv.clone(),
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
                1e-5,
            )?;
            let expected = reference
                .forward_t(&channels_first(x.as_tensor())?, false)?
                .relu()?;
            let expected = channels_last(&expected)?;
            let expected_grads = weighted_sum(&expected, 16)?.backward()?;
            let out = ops::batch_norm_eval(x.as_tensor(), &gamma, &beta, &rm, &rv, 1e-5, true)?;
            assert!(out.is_contiguous(), "{what}: output contiguous");
            let grads = weighted_sum(&out, 16)?.backward()?;
            let tol = tolerance(dtype);
            assert_close(&format!("{what} output"), &out, &expected, tol)?;
            for (name, var) in [("dx", &x), ("dγ", &gamma), ("dβ", &beta)] {
                assert_close(
                    &format!("{what} {name}"),
                    grads.get(var).expect("fast"),
                    expected_grads.get(var).expect("reference"),
                    tol,
                )?;
            }
        }
    }
    Ok(())
}

/// Option A as the stock model builds it, on NCHW: every second pixel, then zero channels.
fn option_a(x: &Tensor, extra: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = x.pad_with_zeros(2, 0, h % 2)?.pad_with_zeros(3, 0, w % 2)?;
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .i((.., .., .., 0, .., 0))?
        .pad_with_zeros(1, 0, extra)
}

/// The fast op on NHWC tensors against the stock sum on their NCHW views, permuted back.
#[test]
fn residual_add_relu_matches_candle_for_identity_and_option_a() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        // [B, H, W, C]: odd sizes, odd and even x maps, and 19 channels fed by 11.
        for (y_shape, x_shape, downsample) in [
            ([3, 7, 9, 5], [3, 7, 9, 5], false),
            ([2, 4, 5, 6], [2, 7, 9, 3], true),
            ([2, 3, 3, 8], [2, 6, 6, 8], true),
            ([3, 3, 4, 19], [3, 5, 7, 11], true),
        ] {
            let what = format!("{dtype:?} {y_shape:?}←{x_shape:?}");
            let y = Var::from_tensor(&random(&y_shape, 21, dtype)?)?;
            let x = Var::from_tensor(&random(&x_shape, 22, dtype)?)?;
            let x_nchw = channels_first(x.as_tensor())?;
            let shortcut = if downsample {
                option_a(&x_nchw, y_shape[3] - x_shape[3])?
            } else {
                x_nchw
            };
            let expected = (channels_first(y.as_tensor())? + shortcut)?.relu()?;
            let expected = channels_last(&expected)?;
            let expected_grads = weighted_sum(&expected, 23)?.backward()?;
            let out = ops::add_relu(&y, &x, downsample)?;
            assert!(out.is_contiguous(), "{what}: output contiguous");
            let grads = weighted_sum(&out, 23)?.backward()?;
            let tol = tolerance(dtype);
            assert_close(&format!("{what} output"), &out, &expected, tol)?;
            for (name, var) in [("dy", &y), ("dx", &x)] {
                assert_close(
                    &format!("{what} {name}"),
                    grads.get(var).expect("fast"),
                    expected_grads.get(var).expect("reference"),
                    tol,
                )?;
            }
        }
    }
    Ok(())
}

/// Global average pooling against candle's mean over the spatial dimensions: values and the
/// input gradient, on odd shapes (a channel count that is not a vector's width, a 1×1 image).
#[test]
fn global_average_pooling_matches_candle() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        for (index, shape) in [[3, 5, 7, 16], [2, 4, 3, 3], [4, 1, 1, 10]]
            .into_iter()
            .enumerate()
        {
            let what = format!("{dtype:?} {shape:?}");
            let seed = 300 + index as u64;
            let x = Var::from_tensor(&random(&shape, seed, dtype)?)?;
            let out = ops::global_average_pool(x.as_tensor())?;
            let expected = x.as_tensor().mean((1, 2))?;
            assert_close(
                &format!("{what}: values"),
                &out,
                &expected,
                tolerance(dtype),
            )?;
            let grads = weighted_sum(&out, seed + 1)?.backward()?;
            let expected_grads = weighted_sum(&expected, seed + 1)?.backward()?;
            let (dx, expected_dx) = (grads.get(&x), expected_grads.get(&x));
            let (Some(dx), Some(expected_dx)) = (dx, expected_dx) else {
                panic!("{what}: no input gradient");
            };
            assert_close(&format!("{what}: dx"), dx, expected_dx, tolerance(dtype))?;
        }
    }
    Ok(())
}

/// The values of a tensor, as f64, for exact comparisons.
fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

/// The residual block as one op runs the five separate ops' kernels in their order: its output, its
/// batch statistics and the gradients of its input and six parameters equal theirs bit for bit,
/// on the direct kernels (f32, channels 16 and 32; the stride-1 passes as Winograd, their batch
/// statistics from the stored images) and on im2col (f64, odd channels), for the identity and the
/// option-A shortcut on odd and even maps.
#[test]
fn a_residual_block_as_one_op_equals_its_five_ops_bit_for_bit() -> Result<()> {
    // (dtype, [B, H, W, Cin], Cout, downsample)
    for (dtype, x_shape, cout, downsample) in [
        (DType::F32, [3, 5, 6, 16], 16, false),
        (DType::F32, [2, 9, 7, 16], 32, true),
        (DType::F32, [2, 6, 8, 16], 16, false),
        (DType::F32, [2, 8, 8, 16], 32, true),
        (DType::F64, [2, 5, 4, 6], 6, false),
        (DType::F64, [3, 7, 9, 5], 7, true),
    ] {
        let what = format!("{dtype:?} {x_shape:?} to {cout} (downsample {downsample})");
        let cin = x_shape[3];
        let var = |shape: &[usize], seed| Var::from_tensor(&random(shape, seed, dtype)?);
        let x = var(&x_shape, 31)?;
        let conv1 = var(&[cout, cin, 3, 3], 32)?;
        let conv2 = var(&[cout, cout, 3, 3], 33)?;
        let (gamma1, beta1) = (var(&[cout], 34)?, var(&[cout], 35)?);
        let (gamma2, beta2) = (var(&[cout], 36)?, var(&[cout], 37)?);
        let eps = 1e-5;

        let stride = if downsample { 2 } else { 1 };
        let a = ops::conv2d(&x, &conv1, stride, 1)?;
        let (hidden, stats1) = ops::batch_norm_train(&a, &gamma1, &beta1, eps, true)?;
        let c = ops::conv2d(&hidden, &conv2, 1, 1)?;
        let (normed, stats2) = ops::batch_norm_train(&c, &gamma2, &beta2, eps, false)?;
        let expected = ops::add_relu(&normed, &x, downsample)?;
        let expected_grads = weighted_sum(&expected, 38)?.backward()?;

        let parameters = ops::BlockParameters {
            conv1: &conv1,
            bn1: (&gamma1, &beta1),
            conv2: &conv2,
            bn2: (&gamma2, &beta2),
        };
        let (out, stats) = ops::residual_block_train(&x, &parameters, downsample, eps)?;
        let grads = weighted_sum(&out, 38)?.backward()?;

        assert_eq!(out.dims(), expected.dims(), "{what}: shape");
        assert_eq!(values(&out)?, values(&expected)?, "{what}: output");
        assert_eq!(stats, [stats1, stats2], "{what}: batch statistics");
        for (name, v) in [
            ("x", &x),
            ("conv1", &conv1),
            ("gamma1", &gamma1),
            ("beta1", &beta1),
            ("conv2", &conv2),
            ("gamma2", &gamma2),
            ("beta2", &beta2),
        ] {
            let got = grads.get(v).expect("block gradient");
            let want = expected_grads.get(v).expect("separate ops' gradient");
            assert_eq!(values(got)?, values(want)?, "{what}: d{name}");
        }
        assert!(
            values(grads.get(&x).expect("dx"))?
                .iter()
                .any(|&g| g != 0.0),
            "{what}: the input gradient is not all zero"
        );
    }
    Ok(())
}

/// (input channels, output channels, downsample) of each block of a stack.
type Layout = [(usize, usize, bool)];

/// Random parameters of each block of `layout`, `[conv1, γ1, β1, conv2, γ2, β2]`, seeded from
/// `seed` on.
fn block_vars(layout: &Layout, seed: u64, dtype: DType) -> Result<Vec<[Var; 6]>> {
    let var = |shape: &[usize], seed| Var::from_tensor(&random(shape, seed, dtype)?);
    let mut vars = Vec::new();
    for (index, &(cin, cout, _)) in layout.iter().enumerate() {
        let seed = seed + 6 * index as u64;
        vars.push([
            var(&[cout, cin, 3, 3], seed)?,
            var(&[cout], seed + 1)?,
            var(&[cout], seed + 2)?,
            var(&[cout, cout, 3, 3], seed + 3)?,
            var(&[cout], seed + 4)?,
            var(&[cout], seed + 5)?,
        ]);
    }
    Ok(vars)
}

/// The blocks' parameters as the fast ops take them.
fn block_parameters(vars: &[[Var; 6]]) -> Vec<ops::BlockParameters<'_>> {
    vars.iter()
        .map(
            |[conv1, gamma1, beta1, conv2, gamma2, beta2]| ops::BlockParameters {
                conv1,
                bn1: (gamma1, beta1),
                conv2,
                bn2: (gamma2, beta2),
            },
        )
        .collect()
}

/// The blocks of `layout` as a stack for the fast ops: each one's parameters and whether it
/// downsamples.
fn block_stack<'a>(
    parameters: &'a [ops::BlockParameters<'a>],
    layout: &Layout,
) -> Vec<(&'a ops::BlockParameters<'a>, bool)> {
    parameters
        .iter()
        .zip(layout)
        .map(|(p, &(_, _, downsample))| (p, downsample))
        .collect()
}

/// Every variable's gradient in `grads` equals its gradient in `expected` bit for bit, and is
/// not all zero.
fn assert_same_gradients<'a>(
    what: &str,
    vars: impl IntoIterator<Item = &'a Var>,
    grads: &GradStore,
    expected: &GradStore,
) -> Result<()> {
    for v in vars {
        let got = values(grads.get(v).expect("the op's gradient"))?;
        let want = values(expected.get(v).expect("the reference gradient"))?;
        assert_eq!(got, want, "{what}: gradient of {:?}", v.dims());
        assert!(
            got.iter().any(|&g| g != 0.0),
            "{what}: the gradient of {:?} is not all zero",
            v.dims()
        );
    }
    Ok(())
}

/// A stack of residual blocks as one op (what the ResNets train with) against the same blocks as
/// one op each: output, every block's batch statistics and all gradients equal bit for bit, through
/// a downsampling block in the middle, in f32 on the direct kernels and f64 on im2col.
#[test]
fn residual_blocks_as_one_op_equal_the_blocks_one_by_one_bit_for_bit() -> Result<()> {
    // (dtype, [B, H, W, C], the two stages' channels)
    for (dtype, x_shape, (c1, c2)) in [
        (DType::F32, [2, 9, 7, 16], (16, 32)),
        (DType::F64, [3, 6, 5, 4], (4, 7)),
    ] {
        let what = format!("{dtype:?} {x_shape:?}");
        let var = |shape: &[usize], seed| Var::from_tensor(&random(shape, seed, dtype)?);
        let x = var(&x_shape, 61)?;
        let layout = [(c1, c1, false), (c1, c2, true), (c2, c2, false)];
        let vars = block_vars(&layout, 62, dtype)?;
        let parameters = block_parameters(&vars);
        let eps = 1e-5;

        let mut expected = x.as_tensor().clone();
        let mut expected_stats = Vec::new();
        for (p, &(_, _, downsample)) in parameters.iter().zip(&layout) {
            let (out, stats) = ops::residual_block_train(&expected, p, downsample, eps)?;
            expected = out;
            expected_stats.push(stats);
        }
        let expected_grads = weighted_sum(&expected, 80)?.backward()?;

        let stack = block_stack(&parameters, &layout);
        let (out, stats) = ops::residual_blocks_train(&x, &stack, eps)?;
        let grads = weighted_sum(&out, 80)?.backward()?;

        assert_eq!(out.dims(), expected.dims(), "{what}: shape");
        assert_eq!(values(&out)?, values(&expected)?, "{what}: output");
        assert_eq!(stats, expected_stats, "{what}: batch statistics");
        let all = std::iter::once(&x).chain(vars.iter().flatten());
        assert_same_gradients(&what, all, &grads, &expected_grads)?;
    }
    Ok(())
}

/// A ResNet's trunk as one op (the stem's convolution and batch norm + ReLU, then the blocks: what
/// the ResNets train with) against the stem as its two ops followed by the blocks' op: output,
/// every batch statistic and all gradients, the images' too, equal bit for bit; in f32 on the
/// direct kernels with 3- and 1-channel images and in f64 on im2col.
#[test]
fn the_stem_and_blocks_as_one_op_equal_the_stem_ops_then_the_blocks_bit_for_bit() -> Result<()> {
    // (dtype, images [B, H, W, C], the two stages' channels)
    for (dtype, images_shape, (c1, c2)) in [
        (DType::F32, [2, 9, 7, 3], (16, 32)),
        (DType::F32, [3, 8, 8, 1], (16, 32)),
        (DType::F64, [3, 6, 5, 2], (4, 7)),
    ] {
        let what = format!("{dtype:?} {images_shape:?}");
        let var = |shape: &[usize], seed| Var::from_tensor(&random(shape, seed, dtype)?);
        let images = var(&images_shape, 91)?;
        let stem_conv = var(&[c1, images_shape[3], 3, 3], 92)?;
        let (stem_gamma, stem_beta) = (var(&[c1], 93)?, var(&[c1], 94)?);
        let layout = [(c1, c1, false), (c1, c2, true)];
        let vars = block_vars(&layout, 95, dtype)?;
        let parameters = block_parameters(&vars);
        let stack = block_stack(&parameters, &layout);
        let eps = 1e-5;

        let stem_out = ops::conv2d(&images, &stem_conv, 1, 1)?;
        let (x, expected_stem_stats) =
            ops::batch_norm_train(&stem_out, &stem_gamma, &stem_beta, eps, true)?;
        let (expected, expected_stats) = ops::residual_blocks_train(&x, &stack, eps)?;
        let expected_grads = weighted_sum(&expected, 120)?.backward()?;

        let stem = ops::StemParameters {
            conv: &stem_conv,
            stride: 1,
            bn: (&stem_gamma, &stem_beta),
        };
        let (out, stem_stats, stats) = ops::resnet_trunk_train(&images, &stem, &stack, eps)?;
        let grads = weighted_sum(&out, 120)?.backward()?;

        assert_eq!(out.dims(), expected.dims(), "{what}: shape");
        assert_eq!(values(&out)?, values(&expected)?, "{what}: output");
        assert_eq!(
            stem_stats, expected_stem_stats,
            "{what}: the stem's statistics"
        );
        assert_eq!(stats, expected_stats, "{what}: the blocks' statistics");
        let stem_vars = [&images, &stem_conv, &stem_gamma, &stem_beta];
        let all = stem_vars.into_iter().chain(vars.iter().flatten());
        assert_same_gradients(&what, all, &grads, &expected_grads)?;
    }
    Ok(())
}

/// ResNet-20's evaluation on the fast path, batch norm folded into the convolutions, against the
/// stock path's eval mode, after a training step has moved the running statistics: equal to
/// rounding in f64 and f32, and the trunk records no autograd graph.
#[test]
fn the_folded_evaluation_equals_the_stock_eval_mode_and_records_no_graph() -> Result<()> {
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-4)] {
        let vars = VarMap::new();
        let vb = seeded_var_builder(&vars, 3, dtype, &Device::Cpu);
        // 16 × 16 images: maps of 16, 8 and 4 pixels, so the f32 run is on the direct kernels.
        let shape = sla::data::ImageShape {
            channels: 3,
            height: 16,
            width: 16,
        };
        let net = Network::new(ModelKind::Resnet20, shape, &[10], vb)?;
        net.features(&random(&[6, 3, 16, 16], 51, dtype)?, true)?;
        let xs = random(&[5, 3, 16, 16], 52, dtype)?;
        ops::profile::reset_profile();
        let fast = net.features(&xs, false)?;
        let phases = ops::profile::snapshot();
        let stock = ops::with_stock_ops(|| net.features(&xs, false))?;
        assert!(
            !fast.track_op(),
            "{dtype:?}: the evaluation recorded a graph"
        );
        let scale = values(&stock.abs()?.max_all()?)?[0];
        let worst = values(&(&fast - &stock)?.abs()?.max_all()?)?[0];
        assert!(
            worst <= tol * scale,
            "{dtype:?}: {worst:e} against {scale:e}"
        );
        let calls = |phase| phases.iter().find(|p| p.0 == phase).map(|p| p.2);
        use ops::profile::Phase;
        assert_eq!(
            calls(Phase::ConvForward),
            Some(19),
            "{dtype:?}: conv passes"
        );
        assert_eq!(
            calls(Phase::BatchNormForward),
            Some(0),
            "{dtype:?}: folded away"
        );
        // The 7 identity blocks add their shortcut as conv2 stores each value; the 2 that
        // downsample add it in a pass of their own.
        assert_eq!(
            calls(Phase::AddReluForward),
            Some(2),
            "{dtype:?}: residual adds"
        );
    }
    Ok(())
}

/// Loss and every parameter gradient of one training step, by parameter name.
fn network_gradients(kind: ModelKind, dtype: DType) -> Result<(f64, Vec<(String, Tensor)>)> {
    let vars = VarMap::new();
    let vb = seeded_var_builder(&vars, 7, dtype, &Device::Cpu);
    let shape = sla::data::ImageShape {
        channels: 3,
        height: 11,
        width: 11,
    };
    let net = Network::new(kind, shape, &[10], vb)?;
    let xs = random(&[4, 3, 11, 11], 41, dtype)?;
    let labels = Tensor::new(&[1u32, 7, 3, 3], &Device::Cpu)?;
    let features = net.features(&xs, true)?;
    let logits = net.heads()[0].forward(&features)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let grads = loss.backward()?;
    let data = vars.data().lock().expect("var map lock");
    let mut named: Vec<(String, Tensor)> = data
        .iter()
        .map(|(name, var)| {
            // Running statistics have no gradient: compare their updated values instead.
            let value = grads
                .get(var)
                .cloned()
                .unwrap_or_else(|| var.as_tensor().copy().expect("copy"));
            (name.clone(), value)
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, named))
}

/// One training step's loss and every parameter gradient on the fast path against the stock path,
/// for ResNet-20 and the CNN: loss within `loss_tol`, each gradient within `grad_tol` of its
/// tensor's largest entry (so tiny gradients deep in the net stay meaningful). Returns the
/// convolution passes the fast path ran on the direct kernels, per model.
fn assert_network_matches_stock(
    dtype: DType,
    loss_tol: f64,
    grad_tol: f64,
) -> Result<Vec<(ModelKind, u64)>> {
    let mut direct_passes = Vec::new();
    for kind in [ModelKind::Resnet20, ModelKind::Cnn] {
        ops::profile::reset_profile();
        let (fast_loss, fast) = network_gradients(kind, dtype)?;
        direct_passes.push((kind, ops::profile::conv_passes().0));
        let (stock_loss, stock) = ops::with_stock_ops(|| network_gradients(kind, dtype))?;
        assert!((fast_loss - stock_loss).abs() < loss_tol, "{kind:?} loss");
        assert_eq!(fast.len(), stock.len());
        for ((name, a), (_, b)) in fast.iter().zip(&stock) {
            let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
            let scale = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1e-30);
            let worst = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(
                worst <= grad_tol * scale,
                "{kind:?} {name}: {worst:e} vs scale {scale:e}"
            );
        }
    }
    Ok(direct_passes)
}

#[test]
fn whole_network_gradients_agree_with_the_stock_path_in_f64() -> Result<()> {
    assert_network_matches_stock(DType::F64, 1e-10, 1e-8)?;
    Ok(())
}

/// In f32 the convolutions run on the direct SIMD kernels (channels 16, 32, 64), whose sums go in
/// another order than candle's: the gradients agree to f32 rounding through the whole network.
#[test]
fn whole_network_gradients_agree_with_the_stock_path_in_f32() -> Result<()> {
    for (kind, direct) in assert_network_matches_stock(DType::F32, 1e-5, 1e-3)? {
        assert!(direct > 0, "{kind:?}: the direct kernels ran");
    }
    Ok(())
}

fn bench_args(ops: sla::cli::bench::OpsChoice) -> sla::cli::bench::BenchArgs {
    sla::cli::bench::BenchArgs {
        model: ModelKind::Cnn,
        mode: sla::cli::bench::BenchMode::Sla,
        batch_size: 4,
        image_size: 32,
        channels: 3,
        eval: false,
        eval_images: 10_000,
        steps: 2,
        warmup: 0,
        threads: None,
        ops,
        peak_gflops: Some(100.0),
        default_allocator: true,
        json: false,
        device: "cpu".into(),
    }
}

/// The benchmark's counts against a hand count: the CNN on 32×32 RGB does 3→16 at 32×32,
/// 16→32 at 16×16 and 32→64 at 8×8, i.e. 2,801,664 MACs per image forward; forward + both
/// gradients are 6 FLOP per MAC, but the first layer skips the input images' gradient (4 FLOP per
/// MAC), and SLA turns 4 images into 16.
#[test]
fn bench_counts_the_convolution_work_of_a_step() -> anyhow::Result<()> {
    use sla::cli::bench::{OpsChoice, measure};
    let report = measure(&bench_args(OpsChoice::Fast), 1)?;
    assert_eq!(report.images_per_step, 16);
    let macs_per_image = 16 * 3 * 9 * 1024 + 32 * 16 * 9 * 256 + 64 * 32 * 9 * 64;
    assert_eq!(macs_per_image, 2_801_664);
    let first_layer_macs = 16 * 3 * 9 * 1024;
    let expected_gflop = ((6 * macs_per_image - 2 * first_layer_macs) * 16) as f64 * 1e-9;
    assert!((report.conv_gflop_per_step - expected_gflop).abs() < 1e-9 * expected_gflop.max(1.0));
    let calls: Vec<f64> = report.breakdown.iter().map(|p| p.calls_per_step).collect();
    assert_eq!(
        calls,
        [3.0, 3.0, 3.0, 3.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        "conv, BN per stage; no residuals; one batch assembled, expanded and waited for"
    );
    assert!(report.min_ms > 0.0 && report.min_ms <= report.median_ms);
    assert!(report.last_loss.is_finite() && report.last_loss > 0.0);
    let fraction = report.peak_fraction.expect("peak given");
    assert!((fraction - report.conv_gflops / 100.0).abs() < 1e-12);

    // The stock path runs none of the fast ops, only the step's data work.
    let stock = measure(&bench_args(OpsChoice::Stock), 1)?;
    assert_eq!(stock.conv_gflop_per_step, 0.0);
    let calls: Vec<f64> = stock.breakdown.iter().map(|p| p.calls_per_step).collect();
    assert_eq!(calls, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    Ok(())
}

/// The real workload's shapes: 28×28 grey images (1→16 at 28×28, 16→32 at 14×14, 32→64 at 7×7:
/// 1,919,232 MACs per image), and the evaluation timed beside the step.
#[test]
fn bench_times_the_step_on_grey_28_pixel_images_and_the_evaluation() -> anyhow::Result<()> {
    use sla::cli::bench::{OpsChoice, measure};
    let args = sla::cli::bench::BenchArgs {
        image_size: 28,
        channels: 1,
        eval: true,
        eval_images: 8,
        ..bench_args(OpsChoice::Fast)
    };
    let report = measure(&args, 1)?;
    let macs_per_image = 16 * 9 * 784 + 32 * 16 * 9 * 196 + 64 * 32 * 9 * 49;
    assert_eq!(macs_per_image, 1_919_232);
    let first_layer_macs = 16 * 9 * 784;
    let expected_gflop = ((6 * macs_per_image - 2 * first_layer_macs) * 16) as f64 * 1e-9;
    assert!((report.conv_gflop_per_step - expected_gflop).abs() < 1e-9 * expected_gflop);
    let eval = report.eval.expect("an evaluation report");
    assert_eq!((eval.images, eval.sorted_ms.len()), (8, 3));
    assert!(eval.sorted_ms.windows(2).all(|w| w[0] <= w[1]));
    let median = eval.sorted_ms[1];
    assert!((eval.images_per_s - 8.0 / (median * 1e-3)).abs() < 1e-6 * eval.images_per_s);
    let ratio = (report.median_ms / 4.0) / (median / 8.0);
    assert!((eval.cheaper_than_training - ratio).abs() < 1e-9 * ratio);
    // A pass's fast ops: the CNN's 3 convolutions and 3 batch norms per batch of 4 images (×4
    // rotations), i.e. 2 batches of the 8 images; no backward pass. Both batches are assembled
    // and expanded on the builder thread, beside the network, and waited for.
    use ops::profile::Phase;
    let calls: Vec<(&str, f64, bool)> = eval
        .breakdown
        .iter()
        .map(|p| (p.name, p.calls_per_step, p.beside_the_step))
        .collect();
    assert_eq!(
        calls,
        [
            (Phase::ConvForward.name(), 6.0, false),
            (Phase::BatchNormForward.name(), 6.0, false),
            (Phase::BatchAssembly.name(), 2.0, true),
            (Phase::Expansion.name(), 2.0, true),
            (Phase::DataWait.name(), 2.0, false),
        ]
    );
    Ok(())
}
