//! Prototypical networks: class prototypes as mean support embeddings, logits as negative squared distances.
//!
//! Snell, Swersky and Zemel, "Prototypical Networks for Few-shot Learning" (NeurIPS 2017). Both
//! functions are plain candle ops, so the episode loss backpropagates into the backbone through
//! the queries and the support set alike, on any device, in f32 or f64.

use candle_core::{Result, Tensor};

/// Mean support embedding of each way: support [S, D], labels[i] in 0..ways → [ways, D]. An error
/// naming the way if a way has no support row, and an error if labels.len() != S or a label is
/// not below `ways`.
pub fn prototypes(support: &Tensor, labels: &[u32], ways: usize) -> Result<Tensor> {
    let (rows, _) = support.dims2()?;
    if labels.len() != rows {
        candle_core::bail!(
            "prototypes: {} labels for {rows} support rows",
            labels.len()
        );
    }
    let mut counts = vec![0usize; ways];
    for (row, &label) in labels.iter().enumerate() {
        match counts.get_mut(label as usize) {
            Some(count) => *count += 1,
            None => candle_core::bail!(
                "prototypes: support row {row} has label {label}, not below {ways} ways"
            ),
        }
    }
    if let Some(way) = counts.iter().position(|&count| count == 0) {
        candle_core::bail!("prototypes: way {way} has no support row");
    }
    // The means as one matmul with a [ways, S] averaging matrix (1/count where the row belongs to
    // the way): a constant, so the gradient reaches every support row through the matmul, and the
    // labels may come in any order.
    let mut averaging = vec![0f64; ways * rows];
    for (row, &label) in labels.iter().enumerate() {
        let way = label as usize;
        averaging[way * rows + row] = 1.0 / counts[way] as f64;
    }
    let averaging =
        Tensor::from_vec(averaging, (ways, rows), support.device())?.to_dtype(support.dtype())?;
    averaging.matmul(&support.contiguous()?)
}

/// Logits [Q, ways] = −‖q − p‖² for queries [Q, D] and prototypes [ways, D].
pub fn squared_distance_logits(queries: &Tensor, prototypes: &Tensor) -> Result<Tensor> {
    let (count, dim) = queries.dims2()?;
    let (ways, proto_dim) = prototypes.dims2()?;
    if dim != proto_dim {
        candle_core::bail!(
            "squared distances: queries have {dim} dimensions but prototypes {proto_dim}"
        );
    }
    // Broadcast differences rather than ‖q‖² − 2 q·p + ‖p‖²: the expansion subtracts terms of the
    // size of ‖q‖² from each other, so when a query sits close to a prototype (relative to their
    // norms; a trained embedding puts queries there) f32 cancellation leaves an error of about
    // ε·‖q‖², which can exceed the distance itself and even make it negative. Summing the
    // non-negative (q − p)² keeps the relative error near D·ε whatever the norms. The [Q, ways, D]
    // intermediate is small at episode sizes (hundreds of queries, tens of ways).
    let shape = (count, ways, dim);
    let differences = queries
        .unsqueeze(1)?
        .broadcast_as(shape)?
        .sub(&prototypes.unsqueeze(0)?.broadcast_as(shape)?)?;
    differences.sqr()?.sum(2)?.neg()
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::*;

    /// Two ways in two dimensions, the labels interleaved:
    /// way 0: (1, 2), (3, 4) → prototype (2, 3);
    /// way 1: (0, 0), (2, −2), (4, 2) → prototype (2, 0).
    fn support(dtype: DType) -> Result<(Tensor, Vec<u32>)> {
        let rows = [[1.0, 2.0], [0.0, 0.0], [2.0, -2.0], [3.0, 4.0], [4.0, 2.0]];
        let support = Tensor::new(&rows, &Device::Cpu)?.to_dtype(dtype)?;
        Ok((support, vec![0, 1, 1, 0, 1]))
    }

    /// Queries (2, 2) and (0, 1). Squared distances to (2, 3) and (2, 0):
    /// (2, 2): 0² + 1² = 1 and 0² + 2² = 4;
    /// (0, 1): 2² + 2² = 8 and 2² + 1² = 5.
    fn queries(dtype: DType) -> Result<Tensor> {
        Tensor::new(&[[2.0, 2.0], [0.0, 1.0]], &Device::Cpu)?.to_dtype(dtype)
    }

    const PROTOTYPES: [[f64; 2]; 2] = [[2.0, 3.0], [2.0, 0.0]];
    const LOGITS: [[f64; 2]; 2] = [[-1.0, -4.0], [-8.0, -5.0]];

    fn assert_close(actual: &Tensor, expected: &[[f64; 2]], tolerance: f64) -> Result<()> {
        let actual = actual.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().flatten().zip(expected.iter().flatten()) {
            assert!((a - e).abs() <= tolerance, "{actual:?} vs {expected:?}");
        }
        Ok(())
    }

    #[test]
    fn prototypes_and_logits_match_the_hand_computed_example() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let (support, labels) = support(dtype)?;
            let protos = prototypes(&support, &labels, 2)?;
            assert_eq!(protos.dtype(), dtype);
            assert_close(&protos, &PROTOTYPES, 1e-6)?;
            let logits = squared_distance_logits(&queries(dtype)?, &protos)?;
            assert_eq!(logits.dims(), [2, 2]);
            assert_close(&logits, &LOGITS, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn non_contiguous_support_gives_the_same_prototypes() -> Result<()> {
        let (support, labels) = support(DType::F64)?;
        let transposed = support.t()?.contiguous()?.t()?;
        assert!(!transposed.is_contiguous());
        assert_close(&prototypes(&transposed, &labels, 2)?, &PROTOTYPES, 1e-12)
    }

    #[test]
    fn protonet_loss_matches_the_hand_computed_value() -> Result<()> {
        // Query (2, 2) is of way 0, logits (−1, −4): loss ln(1 + e^(−3)).
        // Query (0, 1) is of way 0 too, logits (−8, −5): loss ln(1 + e^3) = 3 + ln(1 + e^(−3)).
        // Mean: 1.5 + ln(1 + e^(−3)) = 1.5 + 0.048587351573742 = 1.548587351573742.
        let expected = 1.548_587_351_573_742;
        let (support, labels) = support(DType::F64)?;
        let logits =
            squared_distance_logits(&queries(DType::F64)?, &prototypes(&support, &labels, 2)?)?;
        let targets = Tensor::new(&[0u32, 0], &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?.to_scalar::<f64>()?;
        assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
        Ok(())
    }

    #[test]
    fn gradients_reach_queries_and_support_rows() -> Result<()> {
        // d/dq of Σ_w −‖q − p_w‖² is −2 Σ_w (q − p_w) = −2 (2q − (4, 3)):
        // (2, 2) → −2·(0, 1) = (0, −2); (0, 1) → −2·(−4, −1) = (8, 2).
        // d/dp_w of Σ_q −‖q − p_w‖² is 2 Σ_q (q − p_w), shared by the way's rows:
        // way 0: 2·((0, −1) + (−2, −2)) / 2 rows = (−2, −3);
        // way 1: 2·((0, 2) + (−2, 1)) / 3 rows = (−4/3, 2).
        let (support, labels) = support(DType::F64)?;
        let support = Var::from_tensor(&support)?;
        let queries = Var::from_tensor(&queries(DType::F64)?)?;
        let logits = squared_distance_logits(&queries, &prototypes(&support, &labels, 2)?)?;
        let grads = logits.sum_all()?.backward()?;
        let Some(dq) = grads.get(&queries) else {
            panic!("no gradient for the queries");
        };
        assert_close(dq, &[[0.0, -2.0], [8.0, 2.0]], 1e-12)?;
        let Some(ds) = grads.get(&support) else {
            panic!("no gradient for the support set");
        };
        let way0 = [-2.0, -3.0];
        let way1 = [-4.0 / 3.0, 2.0];
        assert_close(ds, &[way0, way1, way1, way0, way1], 1e-12)
    }

    #[test]
    fn a_way_without_support_rows_is_named() -> Result<()> {
        let (support, _) = support(DType::F32)?;
        let Err(error) = prototypes(&support, &[0, 2, 2, 0, 2], 3) else {
            panic!("way 1 has no support row");
        };
        assert!(error.to_string().contains("way 1"), "{error}");
        Ok(())
    }

    #[test]
    fn labels_must_match_the_support_rows_and_ways() -> Result<()> {
        let (support, _) = support(DType::F32)?;
        assert!(prototypes(&support, &[0, 1, 1, 0], 2).is_err());
        assert!(prototypes(&support, &[0, 1, 2, 0, 1], 2).is_err());
        let wide = Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?;
        assert!(squared_distance_logits(&queries(DType::F32)?, &wide).is_err());
        Ok(())
    }
}
