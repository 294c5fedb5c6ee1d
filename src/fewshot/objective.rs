//! The episode objective of each mode: baseline (N ways on untransformed images), DA (all M views
//! keep their class) and SLA (every (class, transformation) pair of the episode is its own way, so
//! an N-way episode is N·M-way), for either meta-learner, with the predictions each supports.

use candle_core::{D, DType, Result, Tensor};
use candle_nn::loss;
use serde::{Deserialize, Serialize};

use crate::model::Network;
use crate::sla::Mode;
use crate::sla::joint;
use crate::sla::transform::Expander;

use super::{protonet, ridge};

/// How an episode's support set becomes a classifier of its queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Prototypical networks: nearest mean support embedding in squared Euclidean distance.
    Protonet,
    /// Ridge regression solved in closed form on the support set (R2-D2, as MetaOptNet's head).
    Ridge,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::Protonet, Method::Ridge];

    pub fn name(self) -> &'static str {
        match self {
            Method::Protonet => "protonet",
            Method::Ridge => "ridge",
        }
    }
}

/// The modes the few-shot setting supports (MT and SLA+SD belong to the standard setting).
pub const FEWSHOT_MODES: [Mode; 3] = [Mode::Baseline, Mode::Da, Mode::Sla];

/// One episode's images: support images way-major with their ways, queries likewise.
pub struct EpisodeImages {
    pub support: Tensor,
    pub queries: Tensor,
    pub support_ways: Vec<u32>,
    pub query_ways: Vec<u32>,
    pub ways: usize,
}

/// What one episode's forward pass gives.
pub struct EpisodeOutputs {
    /// The training loss of the mode.
    pub loss: Tensor,
    /// Class logits `[Q, N]` of the untransformed queries (SI).
    pub single: Tensor,
    /// Class logits `[Q, N]` averaged over the M views of each query (AG; DA and SLA).
    pub aggregated: Option<Tensor>,
    /// Class logits `[Q·M, N]` of every view from its own prediction (DA and SLA), rows `q·M + j`.
    pub views: Option<Tensor>,
    /// Joint logits `[Q·M, N·M]` (SLA), rows `q·M + j`, columns `way·M + j'`.
    pub joint: Option<Tensor>,
}

/// The meta-learner around a backbone, for one mode.
pub struct EpisodeObjective {
    pub mode: Mode,
    pub method: Method,
    pub num_transforms: usize,
    /// The ridge regulariser λ.
    pub lambda: f64,
}

impl EpisodeObjective {
    /// Logits of `queries` embeddings against `support` embeddings labelled in `0..ways`.
    fn logits(
        &self,
        queries: &Tensor,
        support: &Tensor,
        labels: &[u32],
        ways: usize,
        scale: &Tensor,
    ) -> Result<Tensor> {
        match self.method {
            Method::Protonet => protonet::squared_distance_logits(
                queries,
                &protonet::prototypes(support, labels, ways)?,
            ),
            Method::Ridge => {
                ridge::ridge_logits(queries, support, labels, ways, self.lambda, scale)
            }
        }
    }

    /// Embed the episode (support and queries in one pass, so batch norm sees the whole episode,
    /// as the reference ProtoNet does) and apply the mode's head. `scale` is the ridge head's
    /// learnable logit scale (unused by ProtoNet).
    pub fn outputs(
        &self,
        net: &Network,
        expander: &Expander,
        scale: &Tensor,
        episode: &EpisodeImages,
        train: bool,
    ) -> Result<EpisodeOutputs> {
        let m = self.num_transforms;
        let expands = self.mode.expands_batches();
        let (support, queries) = if expands {
            (
                expander.expand(&episode.support)?,
                expander.expand(&episode.queries)?,
            )
        } else {
            (episode.support.clone(), episode.queries.clone())
        };
        let s = support.dim(0)?;
        let embeddings = net.features(&Tensor::cat(&[&support, &queries], 0)?, train)?;
        let support = embeddings.narrow(0, 0, s)?;
        let queries = embeddings.narrow(0, s, embeddings.dim(0)? - s)?;
        let device = embeddings.device();
        let n = episode.ways;
        let query_ways = Tensor::new(episode.query_ways.as_slice(), device)?;
        match self.mode {
            Mode::Sla => {
                let support_labels = joint_of(&episode.support_ways, m);
                let logits = self.logits(&queries, &support, &support_labels, n * m, scale)?;
                let targets = joint::joint_labels(&query_ways, m)?;
                Ok(EpisodeOutputs {
                    loss: loss::cross_entropy(&logits, &targets)?,
                    single: joint::single_logits(&logits, m)?,
                    aggregated: Some(joint::aggregated_logits(&logits, m)?),
                    views: Some(joint::view_logits(&logits, m)?.flatten_to(1)?),
                    joint: Some(logits),
                })
            }
            Mode::Da => {
                let support_labels = repeated(&episode.support_ways, m);
                let logits = self.logits(&queries, &support, &support_labels, n, scale)?;
                let targets = joint::repeated_labels(&query_ways, m)?;
                Ok(EpisodeOutputs {
                    loss: loss::cross_entropy(&logits, &targets)?,
                    single: joint::identity_rows(&logits, m)?,
                    aggregated: Some(joint::averaged_rows(&logits, m)?),
                    views: Some(logits),
                    joint: None,
                })
            }
            Mode::Baseline => {
                let logits = self.logits(&queries, &support, &episode.support_ways, n, scale)?;
                Ok(EpisodeOutputs {
                    loss: loss::cross_entropy(&logits, &query_ways)?,
                    single: logits,
                    aggregated: None,
                    views: None,
                    joint: None,
                })
            }
            Mode::Mt | Mode::SlaSd => candle_core::bail!(
                "the few-shot setting trains baseline, da or sla, not {}",
                self.mode.name()
            ),
        }
    }
}

/// Joint labels `way·M + j` of the expanded rows `b·M + j`.
fn joint_of(ways: &[u32], m: usize) -> Vec<u32> {
    ways.iter()
        .flat_map(|&way| (0..m as u32).map(move |j| way * m as u32 + j))
        .collect()
}

/// Each way repeated for its M views.
fn repeated(ways: &[u32], m: usize) -> Vec<u32> {
    ways.iter()
        .flat_map(|&way| std::iter::repeat_n(way, m))
        .collect()
}

impl EpisodeOutputs {
    /// The verdicts the episode grid draws: per view in the joint label space (SLA), per view by
    /// class (DA), or per query (the baseline).
    pub fn grid_verdicts(&self) -> Result<Vec<u32>> {
        predicted(
            self.joint
                .as_ref()
                .or(self.views.as_ref())
                .unwrap_or(&self.single),
        )
    }
}

/// Argmax of each row, as plain numbers.
pub fn predicted(logits: &Tensor) -> Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;

    use super::*;
    use crate::data::ImageShape;
    use crate::model::{ModelKind, seeded_var_builder};
    use crate::sla::{TransformPreset, TransformSet};

    /// With the identity alone (M = 1) the joint labels are the ways themselves: SLA must be the
    /// baseline exactly, loss and logits, for both meta-learners.
    #[test]
    fn with_one_transformation_sla_is_the_baseline() -> Result<()> {
        let device = Device::Cpu;
        let shape = ImageShape {
            channels: 1,
            height: 16,
            width: 16,
        };
        let vars = VarMap::new();
        let net = Network::new(
            ModelKind::Conv4,
            shape,
            &[],
            seeded_var_builder(&vars, 5, DType::F64, &device),
        )?;
        let identity = TransformSet::preset(TransformPreset::None);
        let expander = Expander::new(&identity, 1, 16, 16, &device)?;
        let episode = EpisodeImages {
            support: Tensor::randn(0f64, 1.0, (6, 1, 16, 16), &device)?,
            queries: Tensor::randn(0f64, 1.0, (6, 1, 16, 16), &device)?,
            support_ways: vec![0, 0, 1, 1, 2, 2],
            query_ways: vec![0, 0, 1, 1, 2, 2],
            ways: 3,
        };
        let scale = Tensor::new(&[1.5f64], &device)?;
        for method in Method::ALL {
            let outputs = |mode| {
                EpisodeObjective {
                    mode,
                    method,
                    num_transforms: 1,
                    lambda: 50.0,
                }
                .outputs(&net, &expander, &scale, &episode, true)
            };
            let (sla, baseline) = (outputs(Mode::Sla)?, outputs(Mode::Baseline)?);
            let bits = |t: &Tensor| -> Result<Vec<u64>> {
                Ok(t.flatten_all()?
                    .to_vec1::<f64>()?
                    .iter()
                    .map(|v| v.to_bits())
                    .collect())
            };
            assert_eq!(bits(&sla.loss)?, bits(&baseline.loss)?, "{method:?} loss");
            assert_eq!(
                bits(&sla.single)?,
                bits(&baseline.single)?,
                "{method:?} logits"
            );
            let aggregated = sla.aggregated.as_ref().map(bits).transpose()?;
            assert_eq!(aggregated, Some(bits(&baseline.single)?));
        }
        Ok(())
    }

    #[test]
    fn expanded_labels_follow_the_row_order() {
        assert_eq!(joint_of(&[0, 0, 1], 2), [0, 1, 0, 1, 2, 3]);
        assert_eq!(repeated(&[0, 1], 3), [0, 0, 0, 1, 1, 1]);
    }
}
