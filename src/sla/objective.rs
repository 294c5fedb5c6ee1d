//! The training objectives (baseline, DA, MT, SLA, SLA+SD) and the predictions each one supports.

use candle_core::{D, Result, Tensor};
use candle_nn::{Linear, Module, loss, ops};
use serde::{Deserialize, Serialize};

use super::joint;

/// What the network is trained to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plain N-way training on untransformed images.
    Baseline,
    /// Transformations as data augmentation: every copy keeps its class label.
    Da,
    /// Multi-task: an N-way class head plus an M-way transformation head.
    Mt,
    /// Self-supervised label augmentation: one N·M-way joint head.
    Sla,
    /// SLA plus a self-distilled N-way head trained from the aggregated joint prediction.
    SlaSd,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Baseline, Mode::Da, Mode::Mt, Mode::Sla, Mode::SlaSd];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Da => "da",
            Mode::Mt => "mt",
            Mode::Sla => "sla",
            Mode::SlaSd => "sla-sd",
        }
    }

    /// One line for users choosing a mode.
    pub fn explanation(self) -> &'static str {
        match self {
            Mode::Baseline => "Plain training: untransformed images, N class labels.",
            Mode::Da => "Data augmentation: all M transformed copies keep their class label.",
            Mode::Mt => "Multi-task: a class head plus a head that predicts the transformation.",
            Mode::Sla => "SLA: predict the joint (class, transformation) label out of N·M.",
            Mode::SlaSd => "SLA + a self-distilled head: one-pass inference at baseline cost.",
        }
    }

    /// Whether training expands every batch by the M transformations.
    pub fn expands_batches(self) -> bool {
        self != Mode::Baseline
    }

    pub fn is_joint(self) -> bool {
        matches!(self, Mode::Sla | Mode::SlaSd)
    }
}

/// The head outputs of one forward pass over an expanded batch of B·M rows (B rows for baseline training).
pub struct Outputs {
    /// N-way logits (baseline, DA, MT) or N·M-way joint logits (SLA, SLA+SD), one row per input row.
    pub primary: Tensor,
    /// MT: M-way transformation logits for every row. SLA+SD: N-way logits of the identity rows only.
    pub secondary: Option<Tensor>,
}

/// Class predictions of every inference mode the objective supports, each `[B, N]` logits.
pub struct Predictions {
    pub single: Tensor,
    pub aggregated: Option<Tensor>,
    pub self_distilled: Option<Tensor>,
    /// `[B, M, N]`: the class logits each view gives on its own.
    pub per_view: Tensor,
}

/// A mode with its sizes and hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    pub mode: Mode,
    pub num_classes: usize,
    pub num_transforms: usize,
    /// SLA+SD distillation temperature (the reference's `--T`, default 1).
    pub temperature: f64,
    /// SLA+SD weight of the self-distilled head's own cross-entropy (β, 1 in the reference).
    pub beta: f64,
    /// Sum the joint loss over transformations instead of averaging it (`--with-large-loss`).
    pub large_loss: bool,
    /// Weight of each class in every cross-entropy with a class in its target (`None`: all 1). A
    /// joint label (i, j) weighs what class i weighs; the transformation head of MT and the
    /// distillation term, whose targets carry no class, are not weighted.
    pub class_weights: Option<Vec<f64>>,
}

impl Objective {
    /// Output sizes of the heads on top of the backbone, in order.
    pub fn head_sizes(&self) -> Vec<usize> {
        let (n, m) = (self.num_classes, self.num_transforms);
        match self.mode {
            Mode::Baseline | Mode::Da => vec![n],
            Mode::Mt => vec![n, m],
            Mode::Sla => vec![n * m],
            Mode::SlaSd => vec![n * m, n],
        }
    }

    /// Apply the heads to backbone features of `rows` rows (B·M, or B for baseline).
    pub fn outputs(&self, heads: &[Linear], features: &Tensor) -> Result<Outputs> {
        let primary = heads[0].forward(features)?;
        let secondary = match self.mode {
            Mode::Mt => Some(heads[1].forward(features)?),
            // The reference applies the SD head to every view and keeps the identity rows;
            // applying it to the identity rows alone gives the same logits for 1/M of the work.
            Mode::SlaSd => {
                Some(heads[1].forward(&joint::identity_rows(features, self.num_transforms)?)?)
            }
            _ => None,
        };
        Ok(Outputs { primary, secondary })
    }

    /// The training loss for class labels `labels` ([B], u32) of the untransformed batch.
    pub fn loss(&self, outputs: &Outputs, labels: &Tensor) -> Result<Tensor> {
        let m = self.num_transforms;
        match self.mode {
            Mode::Baseline => self.class_loss(&outputs.primary, labels),
            Mode::Da => self.class_loss(&outputs.primary, &joint::repeated_labels(labels, m)?),
            Mode::Mt => {
                let class =
                    self.class_loss(&outputs.primary, &joint::repeated_labels(labels, m)?)?;
                let transform_labels = joint::transform_labels(labels.dim(0)?, m, labels.device())?;
                let transform = loss::cross_entropy(self.secondary(outputs)?, &transform_labels)?;
                class + transform
            }
            Mode::Sla => self.joint_loss(&outputs.primary, labels),
            Mode::SlaSd => {
                let joint_loss = self.joint_loss(&outputs.primary, labels)?;
                let single = self.secondary(outputs)?;
                let single_loss = (self.class_loss(single, labels)? * self.beta)?;
                // The teacher is detached, as in the reference: distillation moves only the student.
                let teacher = joint::aggregated_logits(&outputs.primary, m)?.detach();
                let kd = distillation_loss(&teacher, single, self.temperature)?;
                joint_loss + single_loss + (kd * (self.temperature * self.temperature))?
            }
        }
    }

    /// The joint cross-entropy of SLA for class labels `labels` ([B]) of the untransformed batch.
    pub fn joint_loss(&self, joint_logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let m = self.num_transforms;
        let ce = self.weighted_cross_entropy(
            joint_logits,
            &joint::joint_labels(labels, m)?,
            &joint::repeated_labels(labels, m)?,
        )?;
        if self.large_loss {
            ce * m as f64
        } else {
            Ok(ce)
        }
    }

    /// Cross-entropy of N-way logits against class labels, weighted by class when the objective
    /// has class weights.
    pub fn class_loss(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.weighted_cross_entropy(logits, labels, labels)
    }

    /// Mean cross-entropy of `logits` against `targets`, or with class weights the weighted mean
    /// Σ w_{c_r} · ce_r / Σ w_{c_r} over rows r of class c_r (PyTorch's `cross_entropy(weight=…)`,
    /// as the class-balanced reference code uses it): uniform weights give the plain mean exactly.
    fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        classes: &Tensor,
    ) -> Result<Tensor> {
        let Some(weights) = &self.class_weights else {
            return loss::cross_entropy(logits, targets);
        };
        let log_p = ops::log_softmax(logits, D::Minus1)?;
        let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
        let row_weights = Tensor::new(weights.as_slice(), logits.device())?
            .to_dtype(logits.dtype())?
            .index_select(classes, 0)?;
        let total = row_weights.sum_all()?;
        (picked * row_weights)?.sum_all()?.neg()?.div(&total)
    }

    fn secondary<'a>(&self, outputs: &'a Outputs) -> Result<&'a Tensor> {
        outputs
            .secondary
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg(format!("{:?} needs a second head", self.mode)))
    }

    /// Class predictions from the outputs of an evaluation batch that was expanded by all M
    /// transformations (evaluation always expands, so per-view accuracy exists for every mode).
    pub fn predictions(&self, outputs: &Outputs) -> Result<Predictions> {
        let m = self.num_transforms;
        let (rows, n) = outputs.primary.dims2()?;
        match self.mode {
            Mode::Baseline | Mode::Da | Mode::Mt => {
                let per_view = outputs.primary.reshape((rows / m, m, n))?;
                Ok(Predictions {
                    single: joint::identity_rows(&outputs.primary, m)?,
                    aggregated: (self.mode != Mode::Baseline)
                        .then(|| joint::averaged_rows(&outputs.primary, m))
                        .transpose()?,
                    self_distilled: None,
                    per_view,
                })
            }
            Mode::Sla | Mode::SlaSd => Ok(Predictions {
                single: joint::single_logits(&outputs.primary, m)?,
                aggregated: Some(joint::aggregated_logits(&outputs.primary, m)?),
                self_distilled: outputs
                    .secondary
                    .clone()
                    .filter(|_| self.mode == Mode::SlaSd),
                per_view: joint::view_logits(&outputs.primary, m)?,
            }),
        }
    }
}

/// KL(softmax(teacher/T) ‖ softmax(student/T)) summed over classes and averaged over the batch
/// (PyTorch's `kl_div(..., reduction='batchmean')`).
pub fn distillation_loss(teacher: &Tensor, student: &Tensor, temperature: f64) -> Result<Tensor> {
    let log_p = ops::log_softmax(&(teacher / temperature)?, D::Minus1)?;
    let log_q = ops::log_softmax(&(student / temperature)?, D::Minus1)?;
    let batch = teacher.dim(0)? as f64;
    (log_p.exp()? * (log_p - log_q)?)?.sum_all()? / batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn objective(mode: Mode, n: usize, m: usize) -> Objective {
        Objective {
            mode,
            num_classes: n,
            num_transforms: m,
            temperature: 1.0,
            beta: 1.0,
            large_loss: false,
            class_weights: None,
        }
    }

    fn log_sum_exp(xs: &[f64]) -> f64 {
        let max = xs.iter().cloned().fold(f64::MIN, f64::max);
        max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
    }

    fn ce(row: &[f64], label: usize) -> f64 {
        log_sum_exp(row) - row[label]
    }

    #[test]
    fn sla_loss_is_the_mean_joint_cross_entropy_and_large_loss_scales_it() -> Result<()> {
        // B = 1, N = 2, M = 2, label y = 1: joint labels 2 and 3.
        let rows = [[0.1, 0.7, -0.3, 0.9], [1.2, -0.5, 0.4, 0.0]];
        let logits = Tensor::new(
            &[[0.1f64, 0.7, -0.3, 0.9], [1.2, -0.5, 0.4, 0.0]],
            &Device::Cpu,
        )?;
        let y = Tensor::new(&[1u32], &Device::Cpu)?;
        let expected = (ce(&rows[0], 2) + ce(&rows[1], 3)) / 2.0;
        let outputs = Outputs {
            primary: logits,
            secondary: None,
        };
        let mut obj = objective(Mode::Sla, 2, 2);
        let got = obj.loss(&outputs, &y)?.to_scalar::<f64>()?;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        obj.large_loss = true;
        let got = obj.loss(&outputs, &y)?.to_scalar::<f64>()?;
        assert!((got - 2.0 * expected).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn class_weights_weigh_each_row_by_its_class() -> Result<()> {
        // B = 2, N = 2, M = 2, labels y = (0, 1): joint labels 0, 1 (class 0) and 2, 3 (class 1).
        let rows = [
            [0.1, 0.7, -0.3, 0.9],
            [1.2, -0.5, 0.4, 0.0],
            [0.3, 0.3, -1.0, 2.0],
            [-0.2, 0.8, 0.5, 0.1],
        ];
        let outputs = Outputs {
            primary: Tensor::new(&rows, &Device::Cpu)?,
            secondary: None,
        };
        let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
        let mut obj = objective(Mode::Sla, 2, 2);
        obj.class_weights = Some(vec![2.0, 0.5]);
        let expected = (2.0 * ce(&rows[0], 0)
            + 2.0 * ce(&rows[1], 1)
            + 0.5 * ce(&rows[2], 2)
            + 0.5 * ce(&rows[3], 3))
            / 5.0;
        let got = obj.loss(&outputs, &y)?.to_scalar::<f64>()?;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        Ok(())
    }

    #[test]
    fn uniform_class_weights_give_the_unweighted_loss_in_every_mode() -> Result<()> {
        let (n, m, b) = (3, 2, 2);
        let y = Tensor::new(&[2u32, 0], &Device::Cpu)?;
        let logits = |rows: usize, cols: usize, seed: f64| {
            let values: Vec<f64> = (0..rows * cols)
                .map(|i| ((i as f64 + seed) * 0.7).sin())
                .collect();
            Tensor::from_vec(values, (rows, cols), &Device::Cpu)
        };
        for mode in Mode::ALL {
            let plain = objective(mode, n, m);
            let weighted = Objective {
                class_weights: Some(vec![0.7; n]),
                ..plain.clone()
            };
            let heads = plain.head_sizes();
            let rows = if mode == Mode::Baseline { b } else { b * m };
            let secondary = match mode {
                Mode::Mt => Some(logits(rows, m, 3.0)?),
                Mode::SlaSd => Some(logits(b, n, 5.0)?),
                _ => None,
            };
            let outputs = Outputs {
                primary: logits(rows, heads[0], 1.0)?,
                secondary,
            };
            let a = plain.loss(&outputs, &y)?.to_scalar::<f64>()?;
            let w = weighted.loss(&outputs, &y)?.to_scalar::<f64>()?;
            assert!((a - w).abs() < 1e-12, "{mode:?}: {a} vs {w}");
        }
        Ok(())
    }

    #[test]
    fn with_one_transformation_sla_is_the_baseline() -> Result<()> {
        let logits = Tensor::new(&[[0.3f64, -1.2, 0.8], [2.0, 0.1, -0.5]], &Device::Cpu)?;
        let y = Tensor::new(&[2u32, 0], &Device::Cpu)?;
        let outputs = Outputs {
            primary: logits,
            secondary: None,
        };
        let sla = objective(Mode::Sla, 3, 1);
        let baseline = objective(Mode::Baseline, 3, 1);
        assert_eq!(sla.head_sizes(), baseline.head_sizes());
        let (a, b) = (sla.loss(&outputs, &y)?, baseline.loss(&outputs, &y)?);
        assert_eq!(a.to_scalar::<f64>()?, b.to_scalar::<f64>()?);
        let (p, q) = (sla.predictions(&outputs)?, baseline.predictions(&outputs)?);
        assert_eq!(p.single.to_vec2::<f64>()?, q.single.to_vec2::<f64>()?);
        assert_eq!(
            p.aggregated.expect("agg").to_vec2::<f64>()?,
            q.single.to_vec2::<f64>()?
        );
        Ok(())
    }

    #[test]
    fn mt_loss_adds_the_transformation_cross_entropy() -> Result<()> {
        let class_rows = [[0.3, -0.2, 0.5], [0.0, 1.0, -1.0]];
        let transform_rows = [[0.2, 0.1], [-0.4, 0.6]];
        let outputs = Outputs {
            primary: Tensor::new(&class_rows, &Device::Cpu)?,
            secondary: Some(Tensor::new(&transform_rows, &Device::Cpu)?),
        };
        let y = Tensor::new(&[2u32], &Device::Cpu)?;
        let expected = (ce(&class_rows[0], 2) + ce(&class_rows[1], 2)) / 2.0
            + (ce(&transform_rows[0], 0) + ce(&transform_rows[1], 1)) / 2.0;
        let got = objective(Mode::Mt, 3, 2)
            .loss(&outputs, &y)?
            .to_scalar::<f64>()?;
        assert!((got - expected).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn sd_loss_adds_hard_and_distillation_terms() -> Result<()> {
        // B = 1, N = 2, M = 2. View 0 block: (1.0, 0.0); view 1 block: (0.0, 2.0) → agg (0.5, 1.0).
        let joint_rows = [[1.0, 9.0, 0.0, 9.0], [9.0, 0.0, 9.0, 2.0]];
        let single_row = [0.2, -0.1];
        let outputs = Outputs {
            primary: Tensor::new(&joint_rows, &Device::Cpu)?,
            secondary: Some(Tensor::new(&[single_row], &Device::Cpu)?),
        };
        let y = Tensor::new(&[0u32], &Device::Cpu)?;
        let joint = (ce(&joint_rows[0], 0) + ce(&joint_rows[1], 1)) / 2.0;
        let single = ce(&single_row, 0);
        let agg = [0.5, 1.0];
        let (lp, lq) = (log_sum_exp(&agg), log_sum_exp(&single_row));
        let kd: f64 = (0..2)
            .map(|i| (agg[i] - lp).exp() * ((agg[i] - lp) - (single_row[i] - lq)))
            .sum();
        let got = objective(Mode::SlaSd, 2, 2)
            .loss(&outputs, &y)?
            .to_scalar::<f64>()?;
        assert!((got - (joint + single + kd)).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn distillation_is_zero_when_the_student_equals_the_teacher_up_to_a_constant() -> Result<()> {
        let teacher = Tensor::new(&[[0.5f64, 1.0, -2.0], [3.0, 0.0, 0.1]], &Device::Cpu)?;
        let student = (&teacher + 4.0)?;
        let kd = distillation_loss(&teacher, &student, 1.0)?.to_scalar::<f64>()?;
        assert!(kd.abs() < 1e-12);
        let kd = distillation_loss(&teacher, &teacher.zeros_like()?, 2.0)?.to_scalar::<f64>()?;
        assert!(kd > 0.0);
        Ok(())
    }

    #[test]
    fn predictions_follow_each_mode() -> Result<()> {
        let joint_rows = [[1.0f32, 9.0, 0.0, 9.0], [9.0, 0.0, 9.0, 2.0]];
        let outputs = Outputs {
            primary: Tensor::new(&joint_rows, &Device::Cpu)?,
            secondary: None,
        };
        let p = objective(Mode::Sla, 2, 2).predictions(&outputs)?;
        assert_eq!(p.single.to_vec2::<f32>()?, [[1.0, 0.0]]);
        assert_eq!(p.aggregated.expect("agg").to_vec2::<f32>()?, [[0.5, 1.0]]);
        assert_eq!(p.per_view.to_vec3::<f32>()?, [[[1.0, 0.0], [0.0, 2.0]]]);
        let outputs = Outputs {
            primary: Tensor::new(&[[1.0f32, 3.0], [5.0, 1.0]], &Device::Cpu)?,
            secondary: None,
        };
        let p = objective(Mode::Da, 2, 2).predictions(&outputs)?;
        assert_eq!(p.single.to_vec2::<f32>()?, [[1.0, 3.0]]);
        assert_eq!(p.aggregated.expect("agg").to_vec2::<f32>()?, [[3.0, 2.0]]);
        let p = objective(Mode::Baseline, 2, 2).predictions(&outputs)?;
        assert!(p.aggregated.is_none());
        Ok(())
    }
}
