//! Which SIMD instruction set the kernels run on: the best one this CPU has, found once at run time
//! by `pulp` (AVX-512 or AVX2+FMA on x86-64, NEON on ARM, a scalar fallback elsewhere), unless a
//! thread asked for another with [`with_isa`] (tests run every kernel on every set the CPU has).

use std::cell::Cell;
use std::sync::OnceLock;

use pulp::{Simd, WithSimd};

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// One float at a time; runs everywhere.
    Scalar,
    /// x86-64 AVX2 with FMA: 8 floats per register, 16 registers.
    Avx2,
    /// x86-64 AVX-512 (F, VL, DQ, BW, CD): 16 floats per register, 32 registers.
    Avx512,
    /// ARM NEON: 4 floats per register, 32 registers.
    Neon,
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The instruction sets this CPU can run, best last.
pub fn available() -> Vec<Isa> {
    let mut sets = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        if pulp::x86::V3::try_new().is_some() {
            sets.push(Isa::Avx2);
        }
        if pulp::x86::V4::try_new().is_some() {
            sets.push(Isa::Avx512);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if pulp::aarch64::Neon::try_new().is_some() {
        sets.push(Isa::Neon);
    }
    sets
}

/// The instruction set the kernels use on this thread: the best available unless [`with_isa`]
/// chose another.
pub fn current() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    FORCED
        .with(Cell::get)
        .unwrap_or_else(|| *BEST.get_or_init(|| available().last().copied().unwrap_or(Isa::Scalar)))
}

/// Run `f` with the kernels on `isa` on this thread (it must be one of [`available`]).
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    let previous = FORCED.with(|forced| forced.replace(Some(isa)));
    let result = f();
    FORCED.with(|forced| forced.set(previous));
    result
}

/// Run a kernel on `isa` (`op.with_simd` is compiled once per instruction set), or `None` when this
/// CPU lacks it.
pub(crate) fn dispatch<Op: WithSimd>(isa: Isa, op: Op) -> Option<Op::Output> {
    match isa {
        Isa::Scalar => Some(Simd::vectorize(pulp::Scalar::new(), op)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => pulp::x86::V4::try_new().map(|simd| Simd::vectorize(simd, op)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => pulp::x86::V3::try_new().map(|simd| Simd::vectorize(simd, op)),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => pulp::aarch64::Neon::try_new().map(|simd| Simd::vectorize(simd, op)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A plain loop, left to the compiler to vectorise: [`vectorized`] compiles it for the machine's
/// vector unit. Its `run` must be `#[inline(always)]`, so that it is compiled inside the
/// instruction set's function rather than called from it, and call no closure (a closure is
/// compiled apart, for baseline x86-64's four floats).
pub(crate) trait PlainLoop {
    fn run(&mut self);
}

/// A [`PlainLoop`] as a kernel for [`dispatch`].
struct Vectorized<'a, L>(&'a mut L);

impl<L: PlainLoop> WithSimd for Vectorized<'_, L> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.0.run();
    }
}

/// Run `plain_loop` compiled for this thread's instruction set ([`current`]), or as it is where
/// the CPU lacks it.
pub(crate) fn vectorized(plain_loop: &mut impl PlainLoop) {
    if dispatch(current(), Vectorized(&mut *plain_loop)).is_none() {
        plain_loop.run();
    }
}

/// 12 independent multiply-add chains of `rounds` steps: enough in flight to fill the FMA units.
struct FmaChains {
    rounds: usize,
}

impl WithSimd for FmaChains {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let mut acc = [simd.splat_f32s(0.0); 12];
        let a = simd.splat_f32s(0.999_99);
        let b = simd.splat_f32s(1e-6);
        for _ in 0..self.rounds {
            for acc in acc.iter_mut() {
                *acc = simd.mul_add_e_f32s(*acc, a, b);
            }
        }
        let total = acc
            .into_iter()
            .fold(simd.splat_f32s(0.0), |sum, v| simd.add_f32s(sum, v));
        simd.reduce_sum_f32s(total)
    }
}

/// The machine's f32 multiply-add peak in GFLOP/s on `isa` with `threads` threads, measured by
/// running independent FMA chains on every thread at once for about a fifth of a second.
pub fn measure_peak_gflops(isa: Isa, threads: usize) -> f64 {
    use rayon::prelude::*;
    let lanes = match isa {
        Isa::Scalar => 1,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
        Isa::Neon => 4,
    };
    let rounds = 4_000_000;
    let run = || {
        let start = std::time::Instant::now();
        let sums: Vec<f32> = (0..threads)
            .into_par_iter()
            .map(|_| dispatch(isa, FmaChains { rounds }).unwrap_or(0.0))
            .collect();
        // Keep the result alive so the chains are not optimised away.
        std::hint::black_box(sums);
        start.elapsed().as_secs_f64()
    };
    run();
    let best = (0..3).map(|_| run()).fold(f64::INFINITY, f64::min);
    let flops = 2.0 * 12.0 * lanes as f64 * rounds as f64 * threads as f64;
    flops / best * 1e-9
}
