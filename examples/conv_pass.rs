//! Benchmark (not a test): each ResNet layer shape's fast convolution alone, forward and backward
//! (input and weight gradients), as a share of the machine's measured FMA peak. The per-layer view
//! of `sla bench`'s per-op table: which kernel, on which shape, is short of the roof.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release --example conv_pass -- [batch] [repeats] [layer]`
//! (`layer`: only the layers whose names contain it, e.g. `28x28` or `s2`, for a profiler)
//!
//! The minimum is the kernel's speed when the machine left it alone; the median what a step sees.

use candle_core::{D, Device, Tensor, Var};
use sla::ops::{LargeBlockAllocator, conv2d, keep_freed_memory, profile, simd};

/// As the `sla` binary allocates.
#[global_allocator]
static ALLOCATOR: LargeBlockAllocator = LargeBlockAllocator;

/// (name, height = width, input channels, output channels, stride) of the 3×3 layers of ResNet-32
/// on 32×32 images and ResNet-20 on 28×28. The stems' inputs are the network's images, which
/// need no gradient: their backward pass is the weight gradient alone (half the FLOPs).
const LAYERS: [(&str, usize, usize, usize, usize); 12] = [
    ("stem 32x32 3->16", 32, 3, 16, 1),
    ("stem 28x28 1->16", 28, 1, 16, 1),
    ("32x32 16->16", 32, 16, 16, 1),
    ("32x32 16->32 s2", 32, 16, 32, 2),
    ("16x16 32->32", 16, 32, 32, 1),
    ("16x16 32->64 s2", 16, 32, 64, 2),
    ("8x8 64->64", 8, 64, 64, 1),
    ("28x28 16->16", 28, 16, 16, 1),
    ("28x28 16->32 s2", 28, 16, 32, 2),
    ("14x14 32->32", 14, 32, 32, 1),
    ("14x14 32->64 s2", 14, 32, 64, 2),
    ("7x7 64->64", 7, 64, 64, 1),
];

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    // At least one timed pass, so the minimum and the median exist.
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9).max(1);
    let only = args.next().unwrap_or_default();
    keep_freed_memory();
    let threads = rayon::current_num_threads();
    let peak = simd::measure_peak_gflops(simd::current(), threads);
    println!(
        "{:?}, {threads} threads, peak {peak:.0} GFLOP/s, batch {batch}",
        simd::current()
    );
    for (name, size, cin, cout, stride) in LAYERS {
        if !name.contains(&only) {
            continue;
        }
        let x = Tensor::randn(0f32, 1.0, (batch, size, size, cin), &Device::Cpu)?;
        let stem = name.starts_with("stem");
        let x = if stem {
            x
        } else {
            Var::from_tensor(&x)?.into_inner()
        };
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, 3, 3), &Device::Cpu)?)?;
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        // One untimed pass first: the buffers and the thread pool warm up.
        for repeat in 0..=repeats {
            profile::reset_profile();
            let y = conv2d(&x, w.as_tensor(), stride, 1)?;
            y.sum_keepdim(D::Minus1)?.sum_all()?.backward()?;
            if repeat == 0 {
                continue;
            }
            for (phase, seconds, _) in profile::snapshot() {
                match phase {
                    profile::Phase::ConvForward => forward.push(seconds),
                    profile::Phase::ConvBackward => backward.push(seconds),
                    _ => {}
                }
            }
        }
        let out = size.div_ceil(stride);
        let gflop = 2.0 * (batch * out * out * cin * cout * 9) as f64 * 1e-9;
        let show = |pass: &str, gflop: f64, times: &mut Vec<f64>| {
            times.sort_by(f64::total_cmp);
            let (min, median) = (times[0], times[times.len() / 2]);
            format!(
                "{pass} min {:6.2} ms ({:3.0} %), median {:6.2} ms",
                min * 1e3,
                100.0 * gflop / min / peak,
                median * 1e3
            )
        };
        println!(
            "{name:>16}: {} | {}",
            show("forward", gflop, &mut forward),
            show(
                "backward",
                if stem { gflop } else { 2.0 * gflop },
                &mut backward
            )
        );
    }
    Ok(())
}
