//! Joint-label arithmetic: labels `y·M + j`, batch rows `b·M + j`, single and aggregated inference.
//!
//! The joint head has N·M logits per row, class-major: column `i·M + j` scores "class i under
//! transformation j". Rows are sample-major: row `b·M + j` holds t_j(x_b).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sla::sla::joint;
//! let y = Tensor::new(&[2u32, 0], &Device::Cpu)?;
//! let labels: Vec<u32> = joint::joint_labels(&y, 3)?.to_vec1()?;
//! assert_eq!(labels, [6, 7, 8, 0, 1, 2]); // y·M + j, rows b·M + j
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{D, DType, Device, IndexOp, Result, Tensor};

/// The joint labels `y_b·M + j` of the expanded batch, row `b·M + j`.
pub fn joint_labels(labels: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let b = labels.dim(0)?;
    let m = num_transforms as u32;
    let offsets = Tensor::arange(0u32, m, labels.device())?.reshape((1, num_transforms))?;
    (labels.reshape((b, 1))? * f64::from(m))?
        .broadcast_add(&offsets)?
        .reshape(b * num_transforms)
}

/// The class label of every expanded row, `y_b` repeated M times (DA and MT targets).
pub fn repeated_labels(labels: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let b = labels.dim(0)?;
    labels
        .reshape((b, 1))?
        .repeat((1, num_transforms))?
        .reshape(b * num_transforms)
}

/// The transformation index j of every expanded row (MT's self-supervised target).
pub fn transform_labels(batch: usize, num_transforms: usize, device: &Device) -> Result<Tensor> {
    Tensor::arange(0u32, num_transforms as u32, device)?
        .reshape((1, num_transforms))?
        .repeat((batch, 1))?
        .reshape(batch * num_transforms)
}

/// Every view's class logits from its own block: entry `[b, j, i]` = joint logit `[b·M + j, i·M + j]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use sla::sla::joint;
/// // B = 1, N = 2, M = 2: rows are views, columns (i, j) = i·M + j.
/// let logits = Tensor::new(&[[1f32, 2., 3., 4.], [5., 6., 7., 8.]], &Device::Cpu)?;
/// let views: Vec<Vec<Vec<f32>>> = joint::view_logits(&logits, 2)?.to_vec3()?;
/// assert_eq!(views, [[[1., 3.], [6., 8.]]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn view_logits(joint: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let (rows, k) = joint.dims2()?;
    let m = num_transforms;
    let (b, n) = (rows / m, k / m);
    // Keep only the diagonal j == j' of the (view, column-transformation) pair with a 0/1 mask,
    // which stays differentiable and needs no strided gather.
    let mask = Tensor::eye(m, joint.dtype(), joint.device())?.reshape((1, m, 1, m))?;
    joint
        .reshape((b, m, n, m))?
        .broadcast_mul(&mask)?
        .sum(D::Minus1)
}

/// SLA+SI: the identity view's class logits `joint[b·M, i·M]`, shape `[B, N]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use sla::sla::joint;
/// let logits = Tensor::new(&[[1f32, 2., 3., 4.], [5., 6., 7., 8.]], &Device::Cpu)?;
/// let single: Vec<Vec<f32>> = joint::single_logits(&logits, 2)?.to_vec2()?;
/// assert_eq!(single, [[1., 3.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn single_logits(joint: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let (rows, k) = joint.dims2()?;
    let m = num_transforms;
    joint.reshape((rows / m, m, k / m, m))?.i((.., 0, .., 0))
}

/// SLA+AG: the average over views of each view's own class logits (logits, not probabilities).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use sla::sla::joint;
/// let logits = Tensor::new(&[[1f32, 2., 3., 4.], [5., 6., 7., 8.]], &Device::Cpu)?;
/// let agg: Vec<Vec<f32>> = joint::aggregated_logits(&logits, 2)?.to_vec2()?;
/// assert_eq!(agg, [[3.5, 5.5]]); // ((1 + 6) / 2, (3 + 8) / 2)
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn aggregated_logits(joint: &Tensor, num_transforms: usize) -> Result<Tensor> {
    view_logits(joint, num_transforms)?.mean(1)
}

/// The rows of the identity views, `x[b·M]`, of any per-row tensor.
pub fn identity_rows(rows: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let dims = rows.dims();
    let b = dims[0] / num_transforms;
    let mut grouped = vec![b, num_transforms];
    grouped.extend_from_slice(&dims[1..]);
    rows.reshape(grouped)?.i((.., 0))
}

/// For N-way heads applied to every view (DA, MT): the mean over views of the per-view logits.
pub fn averaged_rows(rows: &Tensor, num_transforms: usize) -> Result<Tensor> {
    let (r, n) = rows.dims2()?;
    rows.reshape((r / num_transforms, num_transforms, n))?
        .mean(1)
}

/// Number of rows whose argmax equals the label.
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let predicted = logits.argmax(D::Minus1)?;
    let hits = predicted.eq(&labels.to_dtype(DType::U32)?)?;
    Ok(hits.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_decode_back_to_class_and_transform() -> Result<()> {
        let y = Tensor::new(&[3u32, 1, 4], &Device::Cpu)?;
        let m = 4;
        let joint: Vec<u32> = joint_labels(&y, m)?.to_vec1()?;
        let transforms: Vec<u32> = transform_labels(3, m, &Device::Cpu)?.to_vec1()?;
        let repeated: Vec<u32> = repeated_labels(&y, m)?.to_vec1()?;
        for (row, &label) in joint.iter().enumerate() {
            assert_eq!(label / m as u32, repeated[row]);
            assert_eq!(label % m as u32, transforms[row]);
            assert_eq!(label % m as u32, (row % m) as u32);
        }
        Ok(())
    }

    #[test]
    fn with_one_transformation_everything_is_the_plain_classifier() -> Result<()> {
        let logits = Tensor::new(&[[0.5f32, -1., 2.], [1., 1., 0.]], &Device::Cpu)?;
        let y = Tensor::new(&[2u32, 0], &Device::Cpu)?;
        assert_eq!(joint_labels(&y, 1)?.to_vec1::<u32>()?, y.to_vec1::<u32>()?);
        assert_eq!(
            single_logits(&logits, 1)?.to_vec2::<f32>()?,
            logits.to_vec2::<f32>()?
        );
        assert_eq!(
            aggregated_logits(&logits, 1)?.to_vec2::<f32>()?,
            logits.to_vec2::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn identical_views_aggregate_to_the_single_prediction() -> Result<()> {
        // B = 1, N = 3, M = 2; every view's own block holds (1, 5, 2); off-block logits differ.
        let logits = Tensor::new(
            &[[1f32, 9., 5., -3., 2., 7.], [4., 1., 0., 5., 8., 2.]],
            &Device::Cpu,
        )?;
        let single = single_logits(&logits, 2)?.to_vec2::<f32>()?;
        let agg = aggregated_logits(&logits, 2)?.to_vec2::<f32>()?;
        assert_eq!(single, [[1., 5., 2.]]);
        assert_eq!(agg, single);
        Ok(())
    }

    #[test]
    fn counts_argmax_hits() -> Result<()> {
        let logits = Tensor::new(&[[0f32, 1.], [3., 2.], [0., 5.]], &Device::Cpu)?;
        let labels = Tensor::new(&[1u32, 1, 1], &Device::Cpu)?;
        assert_eq!(count_correct(&logits, &labels)?, 2);
        Ok(())
    }
}
