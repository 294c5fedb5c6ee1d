//! Fast CPU training ops as candle `CustomOp`s with real backward passes: fused batch norm (+ ReLU)
//! and fused residual add (+ option-A shortcut) + ReLU, both on channels-last (NHWC, `[…, C]`)
//! tensors, convolution, global average pooling, and a whole training-mode residual block built
//! from them as one op; and an evaluation path with batch norm folded into the convolutions,
//! which records no graph.
//!
//! The model calls [`use_fast`] to pick these on the CPU and candle's own ops elsewhere (CUDA/Metal),
//! or when a thread asked for the stock path with [`with_stock_ops`] (the benchmark and the
//! equivalence tests compare the two).

mod allocator;
pub mod batch_norm;
pub mod block;
pub mod conv;
pub mod folded;
pub mod pool;
pub mod residual;
pub mod simd;

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

pub use allocator::LargeBlockAllocator;
pub use batch_norm::{BatchNormStats, batch_norm_eval, batch_norm_train};
pub use block::{
    BlockParameters, StemParameters, residual_block_train, residual_blocks_train,
    resnet_trunk_train,
};
pub use conv::conv2d;
pub use folded::{EvalBatchNorm, EvalBlockParameters, conv_batch_norm_eval, residual_block_eval};
pub use pool::global_average_pool;
pub use residual::add_relu;

thread_local! {
    static STOCK: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with candle's stock ops on this thread (the reference path for comparisons).
pub fn with_stock_ops<R>(f: impl FnOnce() -> R) -> R {
    let previous = STOCK.with(|s| s.replace(true));
    let result = f();
    STOCK.with(|s| s.set(previous));
    result
}

/// Whether the fast ops handle this tensor: a CPU tensor of f32 or f64, and no stock request
/// (from [`with_stock_ops`] or the environment variable `SLA_OPS=stock`).
pub fn use_fast(xs: &Tensor) -> bool {
    static STOCK_BY_ENV: OnceLock<bool> = OnceLock::new();
    let stock_by_env =
        *STOCK_BY_ENV.get_or_init(|| std::env::var("SLA_OPS").is_ok_and(|v| v == "stock"));
    xs.device().is_cpu()
        && matches!(xs.dtype(), DType::F32 | DType::F64)
        && !stock_by_env
        && !STOCK.with(|s| s.get())
}

/// The float types the kernels are written for.
pub(crate) trait Real: WithDType + Default + std::iter::Sum {
    /// The data as f32, when this type is f32 (what the SIMD kernels take).
    fn as_f32(data: &[Self]) -> Option<&[f32]>;
    /// f32 data as this type, when this type is f32.
    fn from_f32(data: Vec<f32>) -> Option<Vec<Self>>;
}

impl Real for f32 {
    fn as_f32(data: &[f32]) -> Option<&[f32]> {
        Some(data)
    }

    fn from_f32(data: Vec<f32>) -> Option<Vec<f32>> {
        Some(data)
    }
}

impl Real for f64 {
    fn as_f32(_: &[f64]) -> Option<&[f32]> {
        None
    }

    fn from_f32(_: Vec<f32>) -> Option<Vec<f64>> {
        None
    }
}

/// A vector of `len` values written in parallel, `chunk` values per rayon task, by
/// `fill(index, part)` for the chunk of values `index·chunk..`, without zeroing it first:
/// `vec![0; len]` clears the whole output on the calling thread (glibc's calloc zeroes reused heap
/// memory), a serial pass over an activation-sized buffer while the other cores wait.
///
/// # Safety
///
/// `fill` must write every element of `part` (or panic).
pub(crate) unsafe fn fill_parallel<T: Send>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(index, part)| fill(index, part));
    // SAFETY: the capacity is at least len, and by the caller's contract `fill` initialised every
    // one of the first len elements (a panic in it unwinds before this line).
    unsafe { values.set_len(len) };
    values
}

/// The contiguous slice of a CPU storage that a layout describes.
pub(crate) fn contiguous_slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fast ops need contiguous inputs"),
    }
}

/// Call `f` with the contiguous CPU data of `tensor` (copied into a contiguous tensor first if needed).
pub(crate) fn with_slice<T: WithDType, R>(
    tensor: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous_slice(cpu, layout)?),
        _ => candle_core::bail!("fast ops run on the CPU only"),
    }
}

/// Time spent in each fast op, and in the step's data work, since the last [`reset_profile`], for
/// the benchmark's breakdown.
pub mod profile {
    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Phase {
        ConvForward,
        ConvBackward,
        BatchNormForward,
        BatchNormBackward,
        AddReluForward,
        AddReluBackward,
        /// A training batch made from the dataset's u8 images: crop, flip, normalise (on the
        /// batch builder's thread, beside the step before).
        BatchAssembly,
        /// The batch expanded by the M transformations (on the builder's thread too, for a CPU
        /// step).
        Expansion,
        /// A step waiting for its batch: what of the data work the step before did not hide.
        DataWait,
    }

    pub const PHASES: [Phase; 9] = [
        Phase::ConvForward,
        Phase::ConvBackward,
        Phase::BatchNormForward,
        Phase::BatchNormBackward,
        Phase::AddReluForward,
        Phase::AddReluBackward,
        Phase::BatchAssembly,
        Phase::Expansion,
        Phase::DataWait,
    ];

    impl Phase {
        pub fn name(self) -> &'static str {
            match self {
                Phase::ConvForward => "conv forward",
                Phase::ConvBackward => "conv backward (input + weight grad)",
                Phase::BatchNormForward => "batch norm (+relu) forward",
                Phase::BatchNormBackward => "batch norm (+relu) backward",
                Phase::AddReluForward => "residual add+relu forward",
                Phase::AddReluBackward => "residual add+relu backward",
                Phase::BatchAssembly => "batch assembly (crop, flip, normalise)",
                Phase::Expansion => "transformation expansion",
                Phase::DataWait => "waiting for the batch",
            }
        }

        /// Whether the phase runs beside the step, on the batch builder's thread, rather than
        /// inside the step's own time.
        pub fn beside_the_step(self) -> bool {
            matches!(self, Phase::BatchAssembly | Phase::Expansion)
        }
    }

    /// Per thread: ops record on the thread that called them (their parallel work is inside), so
    /// a benchmark on one thread is not disturbed by work on others.
    #[derive(Default)]
    struct Counters {
        nanos: [u64; PHASES.len()],
        calls: [u64; PHASES.len()],
        conv_flops: u64,
        /// Convolution passes (forward, input or weight gradient) on the direct SIMD kernels, and on
        /// the general im2col path.
        conv_passes: [u64; 2],
    }

    thread_local! {
        static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
    }

    pub(crate) fn record(phase: Phase, start: Instant) {
        record_duration(phase, start.elapsed());
    }

    /// One call of `phase` that took `duration`, here or on another thread (the batch builder's
    /// work is recorded on the thread of the step it is for).
    pub(crate) fn record_duration(phase: Phase, duration: Duration) {
        let index = phase as usize;
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        COUNTERS.with_borrow_mut(|c| {
            c.nanos[index] += nanos;
            c.calls[index] += 1;
        });
    }

    /// `f()`, its time counted under `phase`.
    pub(crate) fn timed<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let result = f();
        record(phase, start);
        result
    }

    pub(crate) fn add_conv_flops(flops: u64) {
        COUNTERS.with_borrow_mut(|c| c.conv_flops += flops);
    }

    pub(crate) fn count_conv_pass(direct: bool) {
        COUNTERS.with_borrow_mut(|c| c.conv_passes[usize::from(!direct)] += 1);
    }

    /// Convolution passes since the last reset: (on the direct SIMD kernels, on the im2col path).
    pub fn conv_passes() -> (u64, u64) {
        COUNTERS.with_borrow(|c| (c.conv_passes[0], c.conv_passes[1]))
    }

    /// Start counting afresh on this thread.
    pub fn reset_profile() {
        COUNTERS.with_borrow_mut(|c| *c = Counters::default());
    }

    /// (phase, seconds, calls) on this thread since the last reset.
    pub fn snapshot() -> Vec<(Phase, f64, u64)> {
        COUNTERS.with_borrow(|c| {
            PHASES
                .iter()
                .map(|&p| (p, c.nanos[p as usize] as f64 * 1e-9, c.calls[p as usize]))
                .collect()
        })
    }

    /// Multiply-add FLOPs (2 per MAC) the fast convolutions did since the last reset.
    pub fn conv_flops() -> u64 {
        COUNTERS.with_borrow(|c| c.conv_flops)
    }
}

/// Keep freed memory in the process instead of handing it back to the OS (glibc on Linux).
///
/// A training step allocates and frees the same activation-sized buffers every time; glibc serves
/// buffers over 32 MB with fresh `mmap`s, so each step pays page faults and kernel zeroing for
/// them (about a third of an SLA step measured under load). With mmap off for the main arena and
/// no trimming, the heap's freed blocks are reused. Call once at start-up, before other threads.
/// Elsewhere it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation policy; it is thread-safe and takes
        // plain integers.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        };
        if !ok {
            log::debug!("glibc refused the allocation policy; keeping its defaults");
        }
    }
}
