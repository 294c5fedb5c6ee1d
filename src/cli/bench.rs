//! `sla bench`: times full training steps (batch assembly from u8 images, expansion, forward, loss,
//! backward, SGD) on random data and reports ms per step, images per second, peak memory and where
//! the time went.

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::{TrainConfig, TransformChoice};
use crate::data::ImageShape;
use crate::model::ModelKind;
use crate::ops;
use crate::sla::{Mode, TransformPreset, TransformSet};
use crate::train::setup::build_model;
use crate::train::step_timer::{EvaluationWork, SyntheticStep, time_evaluation, time_steps};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// Plain training: B images, 10 classes.
    Baseline,
    /// SLA with the 4 rotations: B images become 4·B, 40 joint classes.
    Sla,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpsChoice {
    /// The project's fast CPU ops (the default on the CPU).
    Fast,
    /// candle's stock ops, for comparison.
    Stock,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = ModelKind::Resnet32)]
    pub model: ModelKind,
    #[arg(long, value_enum, default_value_t = BenchMode::Sla)]
    pub mode: BenchMode,
    /// Original images per step (SLA multiplies them by 4).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Side of the square images in pixels (28 for the MNIST sets; the benchmark's CIFAR: 32).
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Channels of the images (1 for the MNIST sets).
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
    /// Also time the evaluation of --eval-images test images (every one under all M
    /// transformations, as the trainer evaluates) and compare its cost per image with the step's.
    #[arg(long)]
    pub eval: bool,
    /// Test images of the timed evaluation.
    #[arg(long, default_value_t = 10_000)]
    pub eval_images: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Which implementation of the CPU ops to time.
    #[arg(long, value_enum, default_value_t = OpsChoice::Fast)]
    pub ops: OpsChoice,
    /// The machine's peak FLOP/s in GFLOP/s, to report the fraction the convolutions reach
    /// (default: measured, with multiply-add chains on every thread, before and after the steps;
    /// the higher counts).
    #[arg(long)]
    pub peak_gflops: Option<f64>,
    /// Leave glibc's default of returning large freed buffers to the OS (slower; for comparison).
    #[arg(long)]
    pub default_allocator: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda, cuda:N or metal (on a GPU the step is timed to the loss's copy back to the host,
    /// so it includes every kernel; no CPU peak is measured there).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// One fast op's (or the step's data work's) share of a step.
#[derive(Debug, Serialize)]
pub struct PhaseTime {
    pub name: &'static str,
    pub ms_per_step: f64,
    pub calls_per_step: f64,
    /// Done on the batch builder's thread while the step before ran: not part of the step's time.
    pub beside_the_step: bool,
}

/// The time of `phases` inside the step (those beside it left out).
fn step_ms(phases: &[PhaseTime]) -> f64 {
    phases
        .iter()
        .filter(|p| !p.beside_the_step)
        .map(|p| p.ms_per_step)
        .sum()
}

#[derive(Debug, Serialize)]
/// What `sla bench` measured.
pub struct Report {
    pub device: String,
    pub model: &'static str,
    pub mode: BenchMode,
    pub ops: OpsChoice,
    pub threads: usize,
    pub batch_size: usize,
    pub images_per_step: usize,
    pub steps: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub original_images_per_s: f64,
    pub transformed_images_per_s: f64,
    pub peak_rss_mb: Option<f64>,
    pub conv_gflop_per_step: f64,
    pub conv_gflops: f64,
    /// FLOP/s while the convolutions run (their FLOPs over their own time).
    pub conv_kernel_gflops: f64,
    /// The peak the fractions are of: given, or measured on this machine.
    pub peak_gflops: Option<f64>,
    pub peak_fraction: Option<f64>,
    /// The SIMD instruction set of the fast kernels.
    pub simd: String,
    /// Convolution passes per step on the direct SIMD kernels, and on the im2col path.
    pub conv_direct_passes: f64,
    pub conv_im2col_passes: f64,
    pub breakdown: Vec<PhaseTime>,
    pub other_ms_per_step: f64,
    pub last_loss: f64,
    /// The timed evaluation, with `--eval`.
    pub eval: Option<EvalReport>,
}

/// What timing the evaluation measured.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub images: usize,
    /// Milliseconds of each timed pass over the images, fastest first, and their median.
    pub sorted_ms: Vec<f64>,
    pub median_ms: f64,
    /// Original test images per second (median pass), each under all M transformations.
    pub images_per_s: f64,
    /// A training step's time per original image over the evaluation's: how many times cheaper
    /// evaluating an image is than training on it.
    pub cheaper_than_training: f64,
    /// The fast ops' share of a timed pass.
    pub breakdown: Vec<PhaseTime>,
    /// The rest of a pass (mean over the timed passes): candle's own ops, the batches, the
    /// inferences and their bookkeeping.
    pub other_ms_per_pass: f64,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.steps == 0 || args.batch_size == 0 {
        anyhow::bail!("--steps and --batch-size must be at least 1");
    }
    if args.image_size < 8 || !matches!(args.channels, 1 | 3) {
        anyhow::bail!("--image-size must be at least 8 and --channels 1 or 3");
    }
    if args.eval && args.eval_images == 0 {
        anyhow::bail!("--eval-images must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // candle's own CPU ops size their thread use from this variable.
    // SAFETY: the command line runs single-threaded up to here; no other thread reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    if !args.default_allocator {
        ops::keep_freed_memory();
    }
    // The global pool, so the steps themselves run on this (main) thread, as in training.
    if let Err(error) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        log::warn!("could not size the worker threads: {error}");
    }
    let report = measure(&args, threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Time `args.steps` training steps on this thread (the fast or stock ops as `args.ops` says).
pub fn measure(args: &BenchArgs, threads: usize) -> anyhow::Result<Report> {
    match args.ops {
        OpsChoice::Fast => measure_steps(args, threads),
        OpsChoice::Stock => ops::with_stock_ops(|| measure_steps(args, threads)),
    }
}

fn measure_steps(args: &BenchArgs, threads: usize) -> anyhow::Result<Report> {
    let device = crate::device::open_device(&args.device).map_err(anyhow::Error::msg)?;
    let (mode, preset, classes) = match args.mode {
        BenchMode::Baseline => (Mode::Baseline, TransformPreset::None, 10),
        BenchMode::Sla => (Mode::Sla, TransformPreset::Rotation, 10),
    };
    let set = TransformSet::preset(preset);
    let config = TrainConfig {
        mode,
        ..Default::default()
    };
    let objective = config.objective(classes, set.len());
    let shape = ImageShape {
        channels: args.channels,
        height: args.image_size,
        width: args.image_size,
    };
    // The peak is measured before and after the steps, and the higher kept: on a shared machine a
    // neighbour's burst during one measurement halved it once (117 against 217–234 GFLOP/s on a
    // 2-core EPYC), and the convolutions' share of it read 138 %.
    let measure_peak = || match (args.peak_gflops, args.ops) {
        (Some(peak), _) => Some(peak),
        (None, OpsChoice::Fast) if device.is_cpu() => Some(ops::simd::measure_peak_gflops(
            ops::simd::current(),
            threads,
        )),
        (None, _) => None,
    };
    let peak_before = measure_peak();
    let timing = time_steps(
        || {
            SyntheticStep::new(
                args.model,
                objective.clone(),
                &set,
                shape,
                args.batch_size,
                &device,
            )
        },
        args.warmup,
        args.steps,
        ops::profile::reset_profile,
    )?;
    let times = &timing.sorted_ms;
    let median_ms = timing.median_ms();
    let per_step = args.steps as f64;
    let breakdown = profiled_phases(per_step);
    let total_ms: f64 = times.iter().sum::<f64>() / per_step;
    let ops_ms = step_ms(&breakdown);
    let conv_gflop_per_step = ops::profile::conv_flops() as f64 * 1e-9 / per_step;
    let conv_gflops = conv_gflop_per_step / (median_ms * 1e-3);
    let conv_ms: f64 = breakdown
        .iter()
        .filter(|p| p.name.starts_with("conv"))
        .map(|p| p.ms_per_step)
        .sum();
    let conv_kernel_gflops = if conv_ms > 0.0 {
        conv_gflop_per_step / (conv_ms * 1e-3)
    } else {
        0.0
    };
    let (direct_passes, im2col_passes) = ops::profile::conv_passes();
    let peak = peak_before
        .zip(measure_peak())
        .map(|(before, after)| before.max(after));
    let images_per_step = args.batch_size * set.len();
    let eval = if args.eval {
        // The evaluation always expands by the run's transformations (a baseline run's too, for
        // its per-view accuracies), in batches of the training batch size, as the trainer does;
        // the rotations are timed.
        let evaluated = build_model(
            &TrainConfig {
                model: args.model,
                transforms: TransformChoice::Preset(TransformPreset::Rotation),
                device: args.device.clone(),
                ..config.clone()
            },
            shape,
            classes,
            None,
        )?;
        let work = EvaluationWork {
            images: args.eval_images,
            batch_size: args.batch_size,
            repeats: EVAL_REPEATS,
        };
        let sorted_ms = time_evaluation(&evaluated, shape, work, ops::profile::reset_profile)?;
        let passes = sorted_ms.len() as f64;
        // Only the ops an evaluation runs: no backward pass.
        let breakdown: Vec<PhaseTime> = profiled_phases(passes)
            .into_iter()
            .filter(|p| p.calls_per_step > 0.0)
            .collect();
        let ops_ms = step_ms(&breakdown);
        let other_ms_per_pass = sorted_ms.iter().sum::<f64>() / passes - ops_ms;
        let median_ms_per_pass = sorted_ms[sorted_ms.len() / 2];
        let per_image_eval = median_ms_per_pass / args.eval_images as f64;
        let per_image_step = median_ms / args.batch_size as f64;
        Some(EvalReport {
            images: args.eval_images,
            images_per_s: args.eval_images as f64 / (median_ms_per_pass * 1e-3),
            cheaper_than_training: per_image_step / per_image_eval,
            median_ms: median_ms_per_pass,
            sorted_ms,
            breakdown,
            other_ms_per_pass,
        })
    } else {
        None
    };
    Ok(Report {
        device: args.device.clone(),
        model: args.model.name(),
        mode: args.mode,
        // The fast ops are CPU kernels: on a GPU every op was candle's own, whatever was asked.
        ops: if device.is_cpu() {
            args.ops
        } else {
            OpsChoice::Stock
        },
        threads,
        batch_size: args.batch_size,
        images_per_step,
        steps: args.steps,
        min_ms: timing.min_ms(),
        median_ms,
        original_images_per_s: args.batch_size as f64 / (median_ms * 1e-3),
        transformed_images_per_s: images_per_step as f64 / (median_ms * 1e-3),
        peak_rss_mb: timing.peak_rss_mb,
        conv_gflop_per_step,
        conv_gflops,
        conv_kernel_gflops,
        peak_gflops: peak,
        peak_fraction: peak.map(|peak| conv_gflops / peak),
        simd: format!("{:?}", ops::simd::current()),
        conv_direct_passes: direct_passes as f64 / per_step,
        conv_im2col_passes: im2col_passes as f64 / per_step,
        breakdown,
        other_ms_per_step: total_ms - ops_ms,
        last_loss: timing.last_loss,
        eval,
    })
}

fn print_report(r: &Report) {
    println!(
        "sla bench {} {:?} on {} ({:?} ops, {} threads): {} images/step ({} original)",
        r.model, r.mode, r.device, r.ops, r.threads, r.images_per_step, r.batch_size
    );
    println!(
        "  ms/step: min {:.1}  median {:.1}  ({} steps)",
        r.min_ms, r.median_ms, r.steps
    );
    println!(
        "  images/s (median): {:.1} original, {:.1} transformed",
        r.original_images_per_s, r.transformed_images_per_s
    );
    match r.peak_rss_mb {
        Some(mb) => println!("  peak resident memory: {mb:.0} MB"),
        None => println!("  peak resident memory: unknown on this system"),
    }
    if r.conv_gflop_per_step > 0.0 {
        print!(
            // Counted as direct convolutions: the Winograd passes do fewer multiply-adds, so
            // the rate is the direct-equivalent one and may pass the peak in a pass of its own.
            "  convolutions: {:.1} direct-equivalent GFLOP/step, {:.1} GFLOP/s over the whole step",
            r.conv_gflop_per_step, r.conv_gflops
        );
        match (r.peak_fraction, r.peak_gflops) {
            (Some(f), Some(peak)) => println!(" ({:.1}% of the {peak:.0} GFLOP/s peak)", 100.0 * f),
            _ => println!(),
        }
        print!(
            "  convolution kernels: {:.1} GFLOP/s while running",
            r.conv_kernel_gflops
        );
        if let Some(peak) = r.peak_gflops {
            print!(" ({:.1}% of peak)", 100.0 * r.conv_kernel_gflops / peak);
        }
        println!(
            "; {:.0} passes/step on the direct and Winograd {} kernels, {:.0} on im2col + GEMM",
            r.conv_direct_passes, r.simd, r.conv_im2col_passes
        );
        print_phases(
            "per-op time (ms/step)",
            &r.breakdown,
            (
                "everything else (candle ops, autograd, SGD)",
                r.other_ms_per_step,
            ),
            "the next batch, built on its own thread while the step runs (ms/step)",
        );
    }
    println!("  last loss: {:.4}", r.last_loss);
    if let Some(eval) = &r.eval {
        println!(
            "  evaluation of {} images × 4 rotations: median {:.0} ms, {:.0} images/s; per image \
             {:.1}× cheaper than a training step",
            eval.images, eval.median_ms, eval.images_per_s, eval.cheaper_than_training
        );
        print_phases(
            "per-op time of an evaluation pass (ms)",
            &eval.breakdown,
            (
                "everything else (inferences, bookkeeping)",
                eval.other_ms_per_pass,
            ),
            "the next batch, built on its own thread while the network runs (ms per pass)",
        );
    }
}

/// The profiled phases' time and calls since the profile was reset, per one of `passes` passes.
fn profiled_phases(passes: f64) -> Vec<PhaseTime> {
    ops::profile::snapshot()
        .into_iter()
        .map(|(phase, seconds, calls)| PhaseTime {
            name: phase.name(),
            ms_per_step: seconds * 1e3 / passes,
            calls_per_step: calls as f64 / passes,
            beside_the_step: phase.beside_the_step(),
        })
        .collect()
}

/// A per-op table under `title`, then the rest of the time as `(label, ms)`, then the work done
/// beside it on the batch builder's thread, if any, under `beside_title`.
fn print_phases(
    title: &str,
    phases: &[PhaseTime],
    (other, other_ms): (&str, f64),
    beside_title: &str,
) {
    let row = |phase: &PhaseTime| {
        println!(
            "    {:<40} {:>9.1}  ({:.0} calls)",
            phase.name, phase.ms_per_step, phase.calls_per_step
        );
    };
    println!("  {title}:");
    phases.iter().filter(|p| !p.beside_the_step).for_each(row);
    println!("    {other:<40} {other_ms:>9.1}");
    let beside: Vec<&PhaseTime> = phases.iter().filter(|p| p.beside_the_step).collect();
    if !beside.is_empty() {
        println!("  {beside_title}:");
        beside.into_iter().for_each(row);
    }
}

/// Timed passes over the evaluation images (after one untimed pass).
const EVAL_REPEATS: usize = 3;
