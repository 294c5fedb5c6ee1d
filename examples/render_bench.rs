//! Benchmark (not a test): time per frame of each GPU view at the sizes the issue names, on the adapter found.
//!
//! `cargo run --release --example render_bench [-- --out DIR]`; with `--out` the pictures are saved as PNG.
//! A frame is upload + dispatch + waiting for the GPU, as the GUI pays it when the data changes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::wgpu;
use sla::gpu::style::category_colour;
use sla::gpu::{
    BorderMode, ConfusionInput, ConfusionRenderer, CurvesInput, CurvesRenderer, CurvesView,
    GpuContext, GpuError, GridInput, GridLayout, InputGridRenderer, RenderTarget, Series,
    ViewStyle, read_back,
};

const WARM_UP: usize = 3;
const FRAMES: usize = 20;

struct Timing {
    median: Duration,
    min: Duration,
}

fn time_frames(
    ctx: &GpuContext,
    mut frame: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), GpuError>,
) -> Result<Timing, GpuError> {
    let mut times = Vec::with_capacity(FRAMES);
    for i in 0..WARM_UP + FRAMES {
        let start = Instant::now();
        ctx.submit(&mut frame)?;
        ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
        if i >= WARM_UP {
            times.push(start.elapsed());
        }
    }
    times.sort();
    Ok(Timing {
        median: times[FRAMES / 2],
        min: times[0],
    })
}

fn report(name: &str, timing: &Timing) {
    println!(
        "{name:<58} median {:>8.2} ms   min {:>8.2} ms",
        timing.median.as_secs_f64() * 1e3,
        timing.min.as_secs_f64() * 1e3
    );
}

fn save(
    ctx: &GpuContext,
    target: &RenderTarget,
    out: &Option<PathBuf>,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        let pixels = read_back(ctx, target)?;
        let image =
            image::RgbaImage::from_raw(target.width(), target.height(), pixels).ok_or("size")?;
        image.save(dir.join(name))?;
    }
    Ok(())
}

/// Deterministic pseudo-random numbers, enough for test pictures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }

    fn unit(&mut self) -> f32 {
        self.next() as f32 / u32::MAX as f32
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            other => {
                return Err(
                    format!("unknown argument {other}; usage: render_bench [--out DIR]").into(),
                );
            }
        }
    }
    let ctx = GpuContext::headless()?;
    println!("adapter: {}", ctx.describe());
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let mut rng = Rng(0x5eed);

    // Confusion: CIFAR-100 × 4 rotations = 400 joint labels, 2 pixels per cell.
    let k = 400;
    let mut counts: Vec<u32> = (0..k * k)
        .map(|_| {
            if rng.next().is_multiple_of(8) {
                rng.next() % 10
            } else {
                0
            }
        })
        .collect();
    for i in 0..k {
        counts[i * k + i] += 20 + rng.next() % 80;
    }
    let mut confusion = ConfusionRenderer::new(&ctx.device);
    let target = RenderTarget::new(&ctx.device, 800, 800)?;
    let input = ConfusionInput {
        block: 4,
        log_scale: true,
        highlight: Some((42, 43)),
        ..ConfusionInput::classes(k, &counts)
    };
    let timing = time_frames(&ctx, |enc| confusion.render(&ctx, enc, &input, &target))?;
    report("confusion 400x400 joint labels -> 800x800 px", &timing);
    save(&ctx, &target, &out, "bench_confusion.png")?;

    // Input grid: 64 samples × 24 transformations of 32×32 RGB images.
    let (samples, transforms, side) = (64, 24, 32);
    let tiles = samples * transforms;
    let pixels: Vec<u8> = (0..tiles * 3 * side * side)
        .map(|i| {
            let (tile, rest) = (i / (3 * side * side), i % (side * side));
            let (x, y) = (rest % side, rest / side);
            ((x * 8 + y * 4 + tile * 13) % 256) as u8
        })
        .collect();
    let true_labels: Vec<u32> = (0..tiles as u32).collect();
    let predicted_labels: Vec<u32> = true_labels
        .iter()
        .map(|&t| if t % 7 == 0 { t + 1 } else { t })
        .collect();
    let input = GridInput {
        samples,
        transforms,
        channels: 3,
        height: side,
        width: side,
        pixels: &pixels,
        true_labels: &true_labels,
        predicted_labels: &predicted_labels,
        support_samples: 0,
        border_mode: BorderMode::Correctness,
        layout: GridLayout::scaled(side, side, 1),
        style: ViewStyle::dark(),
    };
    let (width, height) = input.size();
    let target = RenderTarget::new(&ctx.device, width, height)?;
    let mut grid = InputGridRenderer::new(&ctx.device);
    let timing = time_frames(&ctx, |enc| grid.render(&ctx, enc, &input, &target))?;
    report(
        &format!("input grid 64x24 tiles of 32x32 RGB -> {width}x{height} px"),
        &timing,
    );
    save(&ctx, &target, &out, "bench_grid.png")?;

    // Curves: 8 series of 1,000,000 points.
    let len = 1_000_000;
    let data: Vec<Vec<f32>> = (0..8)
        .map(|s| {
            let scale = 1.0 + s as f32 * 0.3;
            (0..len)
                .map(|i| scale * (-(i as f32) / 250_000.0).exp() + 0.05 + 0.2 * rng.unit())
                .collect()
        })
        .collect();
    let series: Vec<Series> = data
        .iter()
        .enumerate()
        .map(|(i, ys)| Series {
            ys,
            xs: None,
            colour: category_colour(i),
            smooth: true,
            low: None,
        })
        .collect();
    let input = CurvesInput {
        series,
        smoothing: 0.9,
        raw_shadow: false,
        view: CurvesView {
            log_y: true,
            ..CurvesView::default()
        },
    };
    let target = RenderTarget::new(&ctx.device, 1280, 480)?;
    let mut curves = CurvesRenderer::new(&ctx.device);
    let timing = time_frames(&ctx, |enc| {
        curves.render(&ctx, enc, &input, &target).map(|_| ())
    })?;
    report(
        "curves 8 x 1M points, smoothed upload + draw -> 1280x480",
        &timing,
    );
    let mut zoom = 0;
    let timing = time_frames(&ctx, |enc| {
        // A view change (zoom) without new data: only the two GPU passes.
        zoom += 1;
        let view = CurvesView {
            x_range: Some((0.0, (len - zoom * 1000) as f64)),
            ..input.view
        };
        curves.draw(&ctx, enc, &view, &target).map(|_| ())
    })?;
    report(
        "curves 8 x 1M points, draw only (zoom, no new data)",
        &timing,
    );
    curves.upload(&ctx, &input.series, input.smoothing, true)?;
    ctx.submit(|enc| curves.draw(&ctx, enc, &input.view, &target).map(|_| ()))?;
    save(&ctx, &target, &out, "bench_curves.png")?;
    Ok(())
}
