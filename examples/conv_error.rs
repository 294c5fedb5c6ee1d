//! Measurement (not a test): how far the f32 convolution's values and gradients lie from the f64
//! ones (the im2col path, exact to f64 rounding), as relative root-mean-square errors, on the
//! ResNets' stride-1 layers. Even maps run on the Winograd kernels; the same layer one pixel
//! smaller (odd) runs on the direct kernels, so each pair compares the two kernels' rounding.
//!
//! `cargo run --release --example conv_error -- [batch]`

use candle_core::{DType, Device, Result, Tensor, Var};
use sla::ops::conv2d;

/// (height = width, channels) of the 3×3 stride-1 layers of ResNet-32 on 32×32 images and ResNet-20
/// on 28×28, each followed by its odd neighbour.
const LAYERS: [(usize, usize); 10] = [
    (32, 16),
    (31, 16),
    (16, 32),
    (15, 32),
    (8, 64),
    (7, 64),
    (28, 16),
    (27, 16),
    (14, 32),
    (13, 32),
];

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let difference = (a - b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let norm = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
    Ok((difference / norm).sqrt())
}

/// The output, dX and dW (in f64) of the convolution run in `dtype`, for the upstream gradient
/// `upstream`.
fn run(x: &Tensor, w: &Tensor, upstream: &Tensor, dtype: DType) -> Result<[Tensor; 3]> {
    let x = Var::from_tensor(&x.to_dtype(dtype)?)?;
    let w = Var::from_tensor(&w.to_dtype(dtype)?)?;
    let y = conv2d(&x, &w, 1, 1)?;
    let grads = (&y * upstream.to_dtype(dtype)?)?.sum_all()?.backward()?;
    let dx = grads.get(&x).expect("the input's gradient");
    let dw = grads.get(&w).expect("the weight's gradient");
    Ok([y, dx.clone(), dw.clone()].map(|t| t.to_dtype(DType::F64).expect("f64")))
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
        let exact = run(&x, &w, &upstream, DType::F64)?;
        let single = run(&x, &w, &upstream, DType::F32)?;
        let kernel = if size % 2 == 0 { "Winograd" } else { "direct" };
        let [y, dx, dw] = [0, 1, 2].map(|i| relative_error(&single[i], &exact[i]));
        println!(
            "{size:>2}x{size:<2} {channels:>2}->{channels:<2} ({kernel:>8}): output {:.2e}, dX {:.2e}, dW {:.2e}",
            y?, dx?, dw?
        );
    }
    Ok(())
}
