//! Measurement (not a test): how far the f32 convolution's values and gradients lie from the f64
//! ones (the im2col path, exact to f64 rounding), as relative root-mean-square errors, on the
//! ResNets' stride-1 layers (all on the Winograd kernels), beside candle's own f32 convolution
//! (channels-first, im2col + GEMM: the stock path's rounding) on the same values.
//!
//! `cargo run --release --example conv_error -- [batch]`

use candle_core::{DType, Device, Result, Tensor, Var};
use sla::ops::conv2d;

/// (height = width, channels) of the 3×3 stride-1 layers of ResNet-32 on 32×32 images and ResNet-20
/// on 28×28.
const LAYERS: [(usize, usize); 6] = [(32, 16), (16, 32), (8, 64), (28, 16), (14, 32), (7, 64)];

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let difference = (a - b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let norm = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
    Ok((difference / norm).sqrt())
}

/// The output, dX and dW (in f64, channels-last) of the convolution run in `dtype`, for the
/// upstream gradient `upstream`: ours, or candle's on channels-first copies when `stock`.
fn run(
    x: &Tensor,
    w: &Tensor,
    upstream: &Tensor,
    dtype: DType,
    stock: bool,
) -> Result<[Tensor; 3]> {
    let x = Var::from_tensor(&x.to_dtype(dtype)?)?;
    let w = Var::from_tensor(&w.to_dtype(dtype)?)?;
    let y = if stock {
        let first = x.as_tensor().permute((0, 3, 1, 2))?.contiguous()?;
        first.conv2d(&w, 1, 1, 1, 1)?.permute((0, 2, 3, 1))?
    } else {
        conv2d(&x, &w, 1, 1)?
    };
    let grads = (&y * upstream.to_dtype(dtype)?)?.sum_all()?.backward()?;
    let gradient = |v: &Var| {
        grads
            .get(v)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("a gradient is missing".into()))
    };
    let (dx, dw) = (gradient(&x)?, gradient(&w)?);
    Ok([
        y.to_dtype(DType::F64)?,
        dx.to_dtype(DType::F64)?,
        dw.to_dtype(DType::F64)?,
    ])
}

fn main() -> Result<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    println!("relative RMS error of f32 against f64, batch {batch}");
    for (size, channels) in LAYERS {
        let shape = (batch, size, size, channels);
        let x = Tensor::randn(0f64, 1.0, shape, &Device::Cpu)?;
        let w = Tensor::randn(0f64, 0.1, (channels, channels, 3, 3), &Device::Cpu)?;
        let upstream = Tensor::randn(0f64, 1.0, shape, &Device::Cpu)?;
        let exact = run(&x, &w, &upstream, DType::F64, false)?;
        for (name, stock) in [("ours", false), ("candle", true)] {
            let single = run(&x, &w, &upstream, DType::F32, stock)?;
            let [y, dx, dw] = [0, 1, 2].map(|i| relative_error(&single[i], &exact[i]));
            println!(
                "{size:>2}x{size:<2} {channels:>2}->{channels:<2} {name:>6}: output {:.2e}, dX {:.2e}, dW {:.2e}",
                y?, dx?, dw?
            );
        }
    }
    Ok(())
}
