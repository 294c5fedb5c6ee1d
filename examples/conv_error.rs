//! Measurement (not a test): how far the f32 convolution's values and gradients lie from the f64
//! ones (the im2col path, exact to f64 rounding), as relative root-mean-square errors, on the
//! ResNets' 3×3 layers (the stride-1 ones and the stride-2 input gradients on the Winograd
//! kernels), beside candle's own f32 convolution
//! (channels-first, im2col + GEMM: the stock path's rounding) on the same values.
//!
//! `cargo run --release --example conv_error -- [batch]`

use candle_core::{DType, Device, Result, Tensor, Var};
use sla::ops::conv2d;

/// (height = width, input channels, output channels, stride) of the 3×3 layers of ResNet-32 on
/// 32×32 images and ResNet-20 on 28×28.
const LAYERS: [(usize, usize, usize, usize); 10] = [
    (32, 16, 16, 1),
    (32, 16, 32, 2),
    (16, 32, 32, 1),
    (16, 32, 64, 2),
    (8, 64, 64, 1),
    (28, 16, 16, 1),
    (28, 16, 32, 2),
    (14, 32, 32, 1),
    (14, 32, 64, 2),
    (7, 64, 64, 1),
];

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
    (dtype, stride): (DType, usize),
    stock: bool,
) -> Result<[Tensor; 3]> {
    let x = Var::from_tensor(&x.to_dtype(dtype)?)?;
    let w = Var::from_tensor(&w.to_dtype(dtype)?)?;
    let y = if stock {
        let first = x.as_tensor().permute((0, 3, 1, 2))?.contiguous()?;
        first.conv2d(&w, 1, stride, 1, 1)?.permute((0, 2, 3, 1))?
    } else {
        conv2d(&x, &w, stride, 1)?
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
    for (size, cin, cout, stride) in LAYERS {
        let x = Tensor::randn(0f64, 1.0, (batch, size, size, cin), &Device::Cpu)?;
        let w = Tensor::randn(0f64, 0.1, (cout, cin, 3, 3), &Device::Cpu)?;
        let out = size.div_ceil(stride);
        let upstream = Tensor::randn(0f64, 1.0, (batch, out, out, cout), &Device::Cpu)?;
        let exact = run(&x, &w, &upstream, (DType::F64, stride), false)?;
        for (name, stock) in [("ours", false), ("candle", true)] {
            let single = run(&x, &w, &upstream, (DType::F32, stride), stock)?;
            let [y, dx, dw] = [0, 1, 2].map(|i| relative_error(&single[i], &exact[i]));
            println!(
                "{size:>2}x{size:<2} {cin:>2}->{cout:<2} s{stride} {name:>6}: output {:.2e}, dX {:.2e}, dW {:.2e}",
                y?, dx?, dw?
            );
        }
    }
    Ok(())
}
