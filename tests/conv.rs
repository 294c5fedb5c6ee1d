//! The channels-last convolution against candle's `conv2d`: values and both gradients, on every
//! instruction set this CPU has, in f32 (direct SIMD kernels where the channels allow) and f64
//! (the im2col path), on odd shapes.

use candle_core::{DType, Result, Tensor, Var};

use sla::ops;

use crate::support::{assert_close, random};
use sla::ops::simd::{self, Isa};

fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}

fn to_channels_first(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 3, 1, 2))?.contiguous()
}

/// (input NCHW, out channels, kernel, stride, padding). Channel counts of 16, 32 and 64 reach the
/// direct kernels on every instruction set; 5, 6 and 3 reach the im2col path. The 3×3, stride-1,
/// padding-1 convolutions with whole vectors of channels run all three passes as Winograd:
/// F(4×4, 3×3) on 8 × 6, 4 × 4 and 9 × 7, F(2×2, 3×3) on 2 × 28, 6 × 5 and 5 × 6 (where it needs
/// no more multiplications); on 8 × 6, 9 × 7, 6 × 5 and 5 × 6 the last tiles reach past the
/// image. The sliding kernel takes the rest: its constant pixel steps of 16, 32 and 64 floats
/// (16-channel outputs), and in the three padding-0 rows of 32, 16 and 28 output pixels the
/// constant shapes it has for the ResNets' rows (16-pixel tiles of 16 channels, 8-pixel tiles of
/// 32, 14-pixel tiles of 16). The 1- and 3-channel inputs (the stems) have fewer channels than a
/// weight-gradient tile has rows: their k·k taps take the rows (9 and 27 of them, in one sweep or
/// more depending on the instruction set's tile).
const CASES: [([usize; 4], usize, usize, usize, usize); 18] = [
    ([2, 16, 9, 7], 16, 3, 1, 1),
    ([2, 32, 6, 5], 16, 3, 1, 1),
    ([2, 16, 11, 11], 32, 3, 2, 1),
    ([2, 32, 5, 6], 64, 3, 1, 1),
    ([3, 3, 7, 9], 16, 3, 1, 1),
    ([2, 17, 6, 5], 32, 3, 1, 1),
    ([2, 16, 8, 8], 16, 1, 1, 0),
    ([2, 32, 7, 7], 16, 3, 2, 0),
    ([3, 3, 9, 7], 5, 3, 1, 1),
    ([2, 4, 9, 9], 6, 3, 2, 1),
    ([1, 2, 4, 5], 3, 3, 1, 0),
    ([1, 16, 5, 34], 16, 3, 1, 0),
    ([1, 32, 5, 18], 32, 3, 1, 0),
    ([1, 16, 4, 30], 16, 3, 1, 0),
    ([1, 16, 2, 28], 16, 3, 1, 1),
    ([2, 1, 9, 7], 16, 3, 1, 1),
    ([2, 16, 8, 6], 32, 3, 1, 1),
    ([2, 32, 4, 4], 64, 3, 1, 1),
];

/// The fast op against candle on every case, for one dtype on the current instruction set; returns
/// the (direct, im2col) pass counts.
fn check_cases(dtype: DType, tol: f64) -> Result<(u64, u64)> {
    ops::profile::reset_profile();
    for (index, (x_shape, cout, k, stride, pad)) in CASES.into_iter().enumerate() {
        let what = format!(
            "{:?} {dtype:?} {x_shape:?} → {cout}, k{k} s{stride} p{pad}",
            simd::current()
        );
        let seed = 10 * index as u64;
        let x = Var::from_tensor(&random(&x_shape, seed, dtype)?)?;
        let w = Var::from_tensor(&random(&[cout, x_shape[1], k, k], seed + 1, dtype)?)?;
        let expected = x.as_tensor().conv2d(&w, pad, stride, 1, 1)?;
        let upstream = random(expected.dims(), seed + 2, dtype)?;
        let expected_grads = (&expected * &upstream)?.sum_all()?.backward()?;

        let x_last = Var::from_tensor(&to_channels_last(x.as_tensor())?)?;
        let out = ops::conv2d(&x_last, &w, stride, pad)?;
        let loss = (&out * to_channels_last(&upstream)?)?.sum_all()?;
        let grads = loss.backward()?;
        assert_close(
            &format!("{what} output"),
            &to_channels_first(&out)?,
            &expected,
            tol,
        )?;
        let dx = grads.get(&x_last).expect("input gradient");
        assert_close(
            &format!("{what} dx"),
            &to_channels_first(dx)?,
            expected_grads.get(&x).expect("reference dx"),
            tol,
        )?;
        assert_close(
            &format!("{what} dw"),
            grads.get(&w).expect("weight gradient"),
            expected_grads.get(&w).expect("reference dw"),
            tol,
        )?;
    }
    Ok(ops::profile::conv_passes())
}

#[test]
fn conv2d_matches_candle_on_every_instruction_set() -> Result<()> {
    // NEON is part of every aarch64 CPU: the kernels must find and test it there.
    #[cfg(target_arch = "aarch64")]
    assert!(simd::available().contains(&Isa::Neon));
    for isa in simd::available() {
        let (direct, general) = simd::with_isa(isa, || check_cases(DType::F32, 2e-5))?;
        // 18 cases × 3 passes. With vectors of 4 to 16 floats the direct kernels take the 15
        // forward passes with 16, 32 or 64 output channels, their 15 weight gradients (the 1- and
        // 3-channel inputs' with all their taps as the tile's rows), the 10 stride-1
        // input gradients with 16 or 32 input channels, and the 2 input gradients of 3×3, stride-2,
        // padding-1 layers (4 and 16 input channels: 16 and 64 parity channels). On Scalar
        // every channel count fits a vector, and all but the stride-2, padding-0 input gradient
        // run direct.
        assert_eq!(direct + general, 54, "{isa:?}");
        let expected_direct = if isa == Isa::Scalar { 53 } else { 42 };
        assert_eq!(
            direct, expected_direct,
            "{isa:?}: passes on the direct kernels"
        );
    }
    let (direct, _) = check_cases(DType::F64, 1e-10)?;
    assert_eq!(direct, 0, "f64 runs on the im2col path");
    Ok(())
}

#[test]
fn the_input_gradient_of_network_input_images_is_skipped() -> Result<()> {
    let x = to_channels_last(&random(&[2, 3, 8, 8], 1, DType::F32)?)?;
    let w = Var::from_tensor(&random(&[16, 3, 3, 3], 2, DType::F32)?)?;
    ops::profile::reset_profile();
    let grads = ops::conv2d(&x, &w, 1, 1)?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    assert!(grads.get(&w).is_some());
    let (direct, general) = ops::profile::conv_passes();
    assert_eq!(direct + general, 2, "forward and weight gradient only");
    Ok(())
}

/// Padding wider than the kernel and a stride longer than the image, so the frames the kernels read
/// are narrower than the padding. candle's own backward cannot take this shape, so the f32 result
/// (direct kernels) is checked against the f64 one (im2col path), and the forward against candle.
#[test]
fn frames_narrower_than_the_padding_work() -> Result<()> {
    let x = random(&[2, 1, 2, 16], 5, DType::F64)?;
    let w = random(&[16, 16, 1, 1], 6, DType::F64)?;
    let mut results = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        let x = Var::from_tensor(&x.to_dtype(dtype)?)?;
        let w = Var::from_tensor(&w.to_dtype(dtype)?)?;
        let out = ops::conv2d(&x, &w, 8, 2)?;
        let expected = to_channels_first(x.as_tensor())?.conv2d(&w, 2, 8, 1, 1)?;
        assert_close("forward", &to_channels_first(&out)?, &expected, 2e-5)?;
        let grads = (&out * random(out.dims(), 7, dtype)?)?
            .sum_all()?
            .backward()?;
        results.push((
            grads.get(&x).expect("dx").clone(),
            grads.get(&w).expect("dw").clone(),
        ));
    }
    assert_close("dx", &results[0].0, &results[1].0, 2e-5)?;
    assert_close("dw", &results[0].1, &results[1].1, 2e-5)?;
    Ok(())
}
