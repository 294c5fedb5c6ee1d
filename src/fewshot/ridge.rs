//! The R2-D2 / MetaOptNet ridge-regression head: a closed-form, differentiable least-squares solve on the support set.
//!
//! Bertinetto, Henriques, Torr and Vedaldi, "Meta-learning with differentiable closed-form
//! solvers" (ICLR 2019), in the form of MetaOptNet's `R2D2Head`: for support embeddings S [n, D]
//! and one-hot targets Y [n, ways], W = Sᵀ (S Sᵀ + λ I)⁻¹ Y, the Woodbury form of the ridge
//! solution (SᵀS + λ I)⁻¹ SᵀY, which solves an n × n system (n, the support size, is usually
//! well below the embedding width D), and logits = scale · Q W.
//!
//! candle has no linear solve, so [`solve_spd`] is a custom op: a Cholesky factorisation with two
//! triangular solves forward, and the analytic gradient backward.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Device, Layout, Result, Shape, Tensor, WithDType};

use crate::ops::contiguous_slice;

/// MetaOptNet's R2D2 regulariser λ.
pub const DEFAULT_LAMBDA: f64 = 50.0;

/// X solving A X = B for symmetric positive-definite A [n, n] and B [n, k], differentiable in A
/// and B.
///
/// The op solves with the symmetric part (A + Aᵀ)/2, which is A itself for a symmetric A (bit for
/// bit: a + a is exact), and its gradient with respect to A is symmetric to match; an error if
/// that matrix is not positive definite.
pub fn solve_spd(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !a.device().same_device(b.device()) {
        candle_core::bail!("solve_spd: A on {:?} but B on {:?}", a.device(), b.device());
    }
    // The op runs on the CPU: the systems of a few-shot head have at most a few hundred rows, so
    // copying them off an accelerator and back costs nothing next to the backbone's convolutions.
    // `to_device` is differentiable, so the gradients travel back the same way.
    let device = b.device().clone();
    let a = a.to_device(&Device::Cpu)?.contiguous()?;
    let b = b.to_device(&Device::Cpu)?.contiguous()?;
    a.apply_op2(&b, SolveSpd)?.to_device(&device)
}

/// Ridge logits [Q, ways] for queries [Q, D], support [n, D], support labels in 0..ways, λ, and a
/// learnable scale (a tensor of shape [1] or []).
///
/// λ must be positive. A way without support rows is no error here: its column of W is zero, and
/// so are its logits.
pub fn ridge_logits(
    queries: &Tensor,
    support: &Tensor,
    labels: &[u32],
    ways: usize,
    lambda: f64,
    scale: &Tensor,
) -> Result<Tensor> {
    let (rows, dim) = support.dims2()?;
    let (_, query_dim) = queries.dims2()?;
    if query_dim != dim {
        candle_core::bail!("ridge head: queries have {query_dim} dimensions but support {dim}");
    }
    if !matches!(scale.dims(), [] | [1]) {
        candle_core::bail!(
            "ridge head: scale must have shape [1] or [], got {:?}",
            scale.dims()
        );
    }
    // λ > 0 makes S Sᵀ + λ I positive definite for any support set, also one with more rows than
    // dimensions, where S Sᵀ alone is singular.
    if !(lambda > 0.0 && lambda.is_finite()) {
        candle_core::bail!("ridge head: λ must be positive and finite, got {lambda}");
    }
    let targets = one_hot(labels, rows, ways, support)?;
    // Matmuls take row-major operands or their transposes; other strides (a slice of a wider
    // tensor) are copied once here.
    let support = support.contiguous()?;
    let gram = support.matmul(&support.t()?)?;
    let regularised = (gram + (Tensor::eye(rows, support.dtype(), support.device())? * lambda)?)?;
    let dual = solve_spd(&regularised, &targets)?;
    let weights = support.t()?.matmul(&dual)?;
    queries.contiguous()?.matmul(&weights)?.broadcast_mul(scale)
}

/// One-hot targets [rows, ways] in the support set's dtype and device.
fn one_hot(labels: &[u32], rows: usize, ways: usize, like: &Tensor) -> Result<Tensor> {
    if labels.len() != rows {
        candle_core::bail!(
            "ridge head: {} labels for {rows} support rows",
            labels.len()
        );
    }
    let mut targets = vec![0f64; rows * ways];
    for (row, &label) in labels.iter().enumerate() {
        let way = label as usize;
        if way >= ways {
            candle_core::bail!(
                "ridge head: support row {row} has label {label}, not below {ways} ways"
            );
        }
        targets[row * ways + way] = 1.0;
    }
    Tensor::from_vec(targets, (rows, ways), like.device())?.to_dtype(like.dtype())
}

/// X = A⁻¹B by Cholesky on the CPU; see [`solve_spd`].
struct SolveSpd;

/// (n, k) of A [n, n] and B [n, k].
fn system_dims(a: &Shape, b: &Shape) -> Result<(usize, usize)> {
    match (a.dims(), b.dims()) {
        (&[n, m], &[rows, k]) if n == m && rows == n => Ok((n, k)),
        (a, b) => candle_core::bail!("solve_spd: needs A [n, n] and B [n, k], got {a:?} and {b:?}"),
    }
}

/// Lower-triangular L (row-major n × n) with L Lᵀ = (A + Aᵀ)/2.
fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for j in 0..n {
        let row_j = &l[j * n..][..j];
        let pivot = a[j * n + j] - row_j.iter().map(|v| v * v).sum::<f64>();
        // Also catches NaN: a matrix with NaN entries has no meaningful solve either.
        if !(pivot > 0.0 && pivot.is_finite()) {
            candle_core::bail!(
                "solve_spd: the matrix is not positive definite (Cholesky pivot {j} is {pivot})"
            );
        }
        let diagonal = pivot.sqrt();
        l[j * n + j] = diagonal;
        // Column j below the diagonal, as dot products of row prefixes: contiguous slices.
        for i in j + 1..n {
            let (upper, lower) = l.split_at_mut(i * n);
            let row_j = &upper[j * n..][..j];
            let row_i = &mut lower[..=j];
            let dot: f64 = row_i[..j].iter().zip(row_j).map(|(x, y)| x * y).sum();
            let symmetric = 0.5 * (a[i * n + j] + a[j * n + i]);
            row_i[j] = (symmetric - dot) / diagonal;
        }
    }
    Ok(l)
}

/// X with L Lᵀ X = B, B row-major [n, k]: forward substitution with L, then back substitution
/// with Lᵀ, each on whole rows of k right-hand sides.
fn cholesky_solve(l: &[f64], b: &[f64], n: usize, k: usize) -> Vec<f64> {
    let mut x = b.to_vec();
    for i in 0..n {
        let (solved, rest) = x.split_at_mut(i * k);
        let row = &mut rest[..k];
        for (m, previous) in solved.chunks_exact(k).enumerate() {
            let factor = l[i * n + m];
            for (v, p) in row.iter_mut().zip(previous) {
                *v -= factor * p;
            }
        }
        let diagonal = l[i * n + i];
        row.iter_mut().for_each(|v| *v /= diagonal);
    }
    for i in (0..n).rev() {
        let (head, solved) = x.split_at_mut((i + 1) * k);
        let row = &mut head[i * k..];
        for (m, later) in solved.chunks_exact(k).enumerate() {
            let factor = l[(i + 1 + m) * n + i];
            for (v, p) in row.iter_mut().zip(later) {
                *v -= factor * p;
            }
        }
        let diagonal = l[i * n + i];
        row.iter_mut().for_each(|v| *v /= diagonal);
    }
    x
}

/// The solve in f64 whatever the input type: an f32 Cholesky would add its own rounding (growing
/// with the condition number) to the inputs', and at a few hundred rows the f64 arithmetic is
/// free.
fn solve<T: WithDType>(a: &[T], b: &[T], n: usize, k: usize) -> Result<Vec<T>> {
    let a: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();
    let b: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
    let l = cholesky(&a, n)?;
    Ok(cholesky_solve(&l, &b, n, k)
        .into_iter()
        .map(T::from_f64)
        .collect())
}

impl candle_core::CustomOp2 for SolveSpd {
    fn name(&self) -> &'static str {
        "solve-spd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = system_dims(l1.shape(), l2.shape())?;
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(solve::<f32>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                n,
                k,
            )?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(solve::<f64>(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                n,
                k,
            )?),
            _ => candle_core::bail!(
                "solve_spd: f32 or f64 inputs of one dtype, got {:?} and {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((storage, l2.shape().clone()))
    }

    /// With X = A⁻¹B and upstream G: dB = A⁻ᵀG = A⁻¹G (one more solve with the same A), and
    /// dA = −dB Xᵀ, symmetrised.
    ///
    /// Symmetrised because the forward pass reads A only through (A + Aᵀ)/2, so the exact
    /// gradient of what it computes is (dA + dAᵀ)/2: a finite difference on any single entry
    /// agrees with it. A caller that builds A symmetrically (S Sᵀ + λI) gets the same gradient
    /// for its own inputs either way, since its chain rule adds the transpose anyway.
    fn bwd(
        &self,
        a: &Tensor,
        _b: &Tensor,
        x: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = a.apply_op2_no_bwd(&grad.contiguous()?, &SolveSpd)?;
        let da = db.matmul(&x.t()?)?;
        let da = ((&da + da.t()?)? * -0.5)?;
        Ok((Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Var};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    use super::*;

    fn gaussian(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Result<Tensor> {
        let values: Vec<f64> = (0..rows * cols)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu)
    }

    /// M Mᵀ + I for a Gaussian M: symmetric positive definite, well conditioned.
    fn spd(rng: &mut ChaCha8Rng, n: usize) -> Result<Tensor> {
        let m = gaussian(rng, n, n)?;
        m.matmul(&m.t()?)? + Tensor::eye(n, DType::F64, &Device::Cpu)?
    }

    fn flat(t: &Tensor) -> Result<Vec<f64>> {
        t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
    }

    fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64) {
        assert_eq!(actual.len(), expected.len());
        let worst = actual
            .iter()
            .zip(expected)
            .map(|(a, e)| (a - e).abs() / e.abs().max(1.0))
            .fold(0.0, f64::max);
        assert!(
            worst <= tolerance,
            "off by {worst:e} (relative)\n{actual:?}\n{expected:?}"
        );
    }

    /// Central differences of a scalar function f at x, step h.
    fn finite_differences(f: impl Fn(&[f64]) -> Result<f64>, x: &[f64]) -> Result<Vec<f64>> {
        let h = 1e-5;
        let mut point = x.to_vec();
        let mut derivatives = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            point[i] = x[i] + h;
            let up = f(&point)?;
            point[i] = x[i] - h;
            let down = f(&point)?;
            point[i] = x[i];
            derivatives.push((up - down) / (2.0 * h));
        }
        Ok(derivatives)
    }

    fn tensor_like(values: &[f64], like: &Tensor) -> Result<Tensor> {
        Tensor::from_slice(values, like.shape(), &Device::Cpu)
    }

    #[test]
    fn solve_matches_the_hand_inverted_two_by_two() -> Result<()> {
        // A = [[4, 2], [2, 3]], det 8, A⁻¹ = [[3, −2], [−2, 4]] / 8.
        // B = [[2, 1], [1, 0]]: X = A⁻¹B = [[4, 3], [0, −2]] / 8.
        for dtype in [DType::F32, DType::F64] {
            let a = Tensor::new(&[[4.0, 2.0], [2.0, 3.0]], &Device::Cpu)?.to_dtype(dtype)?;
            let b = Tensor::new(&[[2.0, 1.0], [1.0, 0.0]], &Device::Cpu)?.to_dtype(dtype)?;
            let x = solve_spd(&a, &b)?;
            assert_eq!(x.dtype(), dtype);
            assert_close(&flat(&x)?, &[0.5, 0.375, 0.0, -0.25], 1e-7);
        }
        Ok(())
    }

    #[test]
    fn solution_satisfies_the_system() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = spd(&mut rng, 9)?;
        let b = gaussian(&mut rng, 9, 4)?;
        let x = solve_spd(&a, &b)?;
        assert_eq!(x.dims(), [9, 4]);
        assert_close(&flat(&a.matmul(&x)?)?, &flat(&b)?, 1e-12);
        // In f32, from the f32-rounded inputs.
        let (a32, b32) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
        let x32 = solve_spd(&a32, &b32)?;
        assert_eq!(x32.dtype(), DType::F32);
        assert_close(&flat(&a32.matmul(&x32)?)?, &flat(&b32)?, 1e-4);
        Ok(())
    }

    #[test]
    fn non_contiguous_inputs_are_solved_like_contiguous_ones() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = spd(&mut rng, 5)?;
        let b = gaussian(&mut rng, 5, 3)?;
        // Same values, column-major strides.
        let a_strided = a.t()?.contiguous()?.t()?;
        let b_strided = b.t()?.contiguous()?.t()?;
        assert!(!a_strided.is_contiguous() && !b_strided.is_contiguous());
        let x = flat(&solve_spd(&a, &b)?)?;
        assert_close(&flat(&solve_spd(&a_strided, &b_strided)?)?, &x, 1e-14);
        Ok(())
    }

    #[test]
    fn matrices_that_are_not_positive_definite_are_refused() -> Result<()> {
        let b = Tensor::new(&[[1.0f64], [1.0]], &Device::Cpu)?;
        for a in [
            [[1.0, 2.0], [2.0, 1.0]],  // eigenvalues 3 and −1: pivot 1 − 4 < 0
            [[1.0, 1.0], [1.0, 1.0]],  // singular: pivot exactly 0
            [[-1.0, 0.0], [0.0, 1.0]], // negative first pivot
            [[1.0, 0.0], [0.0, f64::NAN]],
        ] {
            let a = Tensor::new(&a, &Device::Cpu)?;
            let Err(error) = solve_spd(&a, &b) else {
                panic!("{a} is not positive definite");
            };
            assert!(
                error.to_string().contains("not positive definite"),
                "{error}"
            );
        }
        // Shapes that are not a system.
        let square = Tensor::eye(2, DType::F64, &Device::Cpu)?;
        assert!(solve_spd(&square, &Tensor::ones((3, 1), DType::F64, &Device::Cpu)?).is_err());
        assert!(solve_spd(&Tensor::ones((2, 3), DType::F64, &Device::Cpu)?, &b).is_err());
        Ok(())
    }

    #[test]
    fn solve_gradients_match_finite_differences() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, k) = (4, 3);
        let a = spd(&mut rng, n)?;
        let b = gaussian(&mut rng, n, k)?;
        let r = gaussian(&mut rng, n, k)?;
        let objective = |a: &Tensor, b: &Tensor| (solve_spd(a, b)? * &r)?.sum_all();
        let (a_var, b_var) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
        let grads = objective(&a_var, &b_var)?.backward()?;
        let (Some(da), Some(db)) = (grads.get(&a_var), grads.get(&b_var)) else {
            panic!("no gradient for A or B");
        };
        // A is perturbed one entry at a time, which makes it unsymmetric: the op solves with
        // (A + Aᵀ)/2, so moving A_ij by h moves both (i, j) and (j, i) of the matrix it solves
        // with by h/2, and the difference quotient is the symmetrised gradient, entry by entry,
        // off the diagonal as on it. The gradient must therefore come out symmetric too.
        let fd_a = finite_differences(
            |values| objective(&tensor_like(values, &a)?, &b)?.to_scalar::<f64>(),
            &flat(&a)?,
        )?;
        assert_close(&flat(da)?, &fd_a, 1e-7);
        assert_close(&flat(da)?, &flat(&da.t()?)?, 1e-15);
        let fd_b = finite_differences(
            |values| objective(&a, &tensor_like(values, &b)?)?.to_scalar::<f64>(),
            &flat(&b)?,
        )?;
        assert_close(&flat(db)?, &fd_b, 1e-7);
        Ok(())
    }

    /// Solves M x = v (M row-major n × n) by Gaussian elimination with partial pivoting: an
    /// implementation of its own, for checking the Cholesky path against.
    fn gaussian_elimination(mut m: Vec<f64>, mut v: Vec<f64>, n: usize, k: usize) -> Vec<f64> {
        for col in 0..n {
            let pivot = (col..n)
                .max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))
                .unwrap_or(col);
            for c in 0..n {
                m.swap(col * n + c, pivot * n + c);
            }
            for c in 0..k {
                v.swap(col * k + c, pivot * k + c);
            }
            for row in col + 1..n {
                let factor = m[row * n + col] / m[col * n + col];
                for c in col..n {
                    m[row * n + c] -= factor * m[col * n + c];
                }
                for c in 0..k {
                    v[row * k + c] -= factor * v[col * k + c];
                }
            }
        }
        for row in (0..n).rev() {
            for c in 0..k {
                let tail: f64 = (row + 1..n).map(|j| m[row * n + j] * v[j * k + c]).sum();
                v[row * k + c] = (v[row * k + c] - tail) / m[row * n + row];
            }
        }
        v
    }

    /// scale · Q W with the primal ridge solution W = (SᵀS + λI)⁻¹ SᵀY, a D × D system, in plain
    /// f64 loops.
    fn primal_logits(
        queries: &[Vec<f64>],
        support: &[Vec<f64>],
        labels: &[u32],
        ways: usize,
        lambda: f64,
        scale: f64,
    ) -> Vec<f64> {
        let dim = support[0].len();
        let mut gram = vec![0.0; dim * dim];
        let mut rhs = vec![0.0; dim * ways];
        for (row, &label) in support.iter().zip(labels) {
            for i in 0..dim {
                for j in 0..dim {
                    gram[i * dim + j] += row[i] * row[j];
                }
                rhs[i * ways + label as usize] += row[i];
            }
        }
        for i in 0..dim {
            gram[i * dim + i] += lambda;
        }
        let weights = gaussian_elimination(gram, rhs, dim, ways);
        queries
            .iter()
            .flat_map(|q| {
                let weights = &weights;
                (0..ways).map(move |w| {
                    scale * (0..dim).map(|i| q[i] * weights[i * ways + w]).sum::<f64>()
                })
            })
            .collect()
    }

    #[test]
    fn dual_and_primal_ridge_solutions_agree() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let ways = 3;
        // Fewer support rows than dimensions (the few-shot case) and more; the default λ and a
        // small one, where the data term dominates.
        for (rows, dim, labels) in [
            (5, 8, vec![0u32, 1, 2, 0, 1]),
            (7, 3, vec![2u32, 2, 0, 1, 0, 1, 2]),
        ] {
            for lambda in [DEFAULT_LAMBDA, 0.3] {
                let queries = gaussian(&mut rng, 4, dim)?;
                let support = gaussian(&mut rng, rows, dim)?;
                let scale = Tensor::new(&[1.7f64], &Device::Cpu)?;
                let logits = ridge_logits(&queries, &support, &labels, ways, lambda, &scale)?;
                assert_eq!(logits.dims(), [4, ways]);
                let expected = primal_logits(
                    &queries.to_vec2()?,
                    &support.to_vec2()?,
                    &labels,
                    ways,
                    lambda,
                    1.7,
                );
                assert_close(&flat(&logits)?, &expected, 1e-11);
                // f32 throughout, the scale as a scalar.
                let logits32 = ridge_logits(
                    &queries.to_dtype(DType::F32)?,
                    &support.to_dtype(DType::F32)?,
                    &labels,
                    ways,
                    lambda,
                    &Tensor::new(1.7f32, &Device::Cpu)?,
                )?;
                assert_eq!(logits32.dtype(), DType::F32);
                assert_close(&flat(&logits32)?, &expected, 1e-4);
            }
        }
        Ok(())
    }

    #[test]
    fn ridge_gradients_match_finite_differences() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (ways, dim) = (3, 6);
        let labels = [1u32, 0, 2, 2, 1];
        let lambda = 0.8;
        let queries = gaussian(&mut rng, 4, dim)?;
        let support = gaussian(&mut rng, labels.len(), dim)?;
        let r = gaussian(&mut rng, 4, ways)?;
        for scale in [
            Tensor::new(&[0.9f64], &Device::Cpu)?,
            Tensor::new(0.9f64, &Device::Cpu)?,
        ] {
            let objective = |q: &Tensor, s: &Tensor, scale: &Tensor| {
                (ridge_logits(q, s, &labels, ways, lambda, scale)? * &r)?.sum_all()
            };
            let q_var = Var::from_tensor(&queries)?;
            let s_var = Var::from_tensor(&support)?;
            let scale_var = Var::from_tensor(&scale)?;
            let grads = objective(&q_var, &s_var, &scale_var)?.backward()?;
            let (Some(dq), Some(ds), Some(dscale)) =
                (grads.get(&q_var), grads.get(&s_var), grads.get(&scale_var))
            else {
                panic!("no gradient for the queries, support or scale");
            };
            assert_eq!(dscale.dims(), scale.dims());
            let fd_q = finite_differences(
                |v| objective(&tensor_like(v, &queries)?, &support, &scale)?.to_scalar::<f64>(),
                &flat(&queries)?,
            )?;
            assert_close(&flat(dq)?, &fd_q, 1e-7);
            let fd_s = finite_differences(
                |v| objective(&queries, &tensor_like(v, &support)?, &scale)?.to_scalar::<f64>(),
                &flat(&support)?,
            )?;
            assert_close(&flat(ds)?, &fd_s, 1e-7);
            let fd_scale = finite_differences(
                |v| objective(&queries, &support, &tensor_like(v, &scale)?)?.to_scalar::<f64>(),
                &flat(&scale)?,
            )?;
            assert_close(&flat(dscale)?, &fd_scale, 1e-7);
        }
        Ok(())
    }

    #[test]
    fn bad_labels_and_parameters_are_refused() -> Result<()> {
        let queries = Tensor::zeros((2, 4), DType::F64, &Device::Cpu)?;
        let support = Tensor::ones((3, 4), DType::F64, &Device::Cpu)?;
        let scale = Tensor::new(&[1.0f64], &Device::Cpu)?;
        let logits = |labels: &[u32], lambda: f64, scale: &Tensor| {
            ridge_logits(&queries, &support, labels, 2, lambda, scale)
        };
        assert!(logits(&[0, 1, 1], DEFAULT_LAMBDA, &scale).is_ok());
        assert!(logits(&[0, 1], DEFAULT_LAMBDA, &scale).is_err());
        assert!(logits(&[0, 1, 2], DEFAULT_LAMBDA, &scale).is_err());
        assert!(logits(&[0, 1, 1], 0.0, &scale).is_err());
        assert!(
            logits(
                &[0, 1, 1],
                DEFAULT_LAMBDA,
                &Tensor::ones(2, DType::F64, &Device::Cpu)?
            )
            .is_err()
        );
        Ok(())
    }
}
