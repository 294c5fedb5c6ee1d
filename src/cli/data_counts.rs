//! `sla data counts`: the per-class training counts a dataset gives with a chosen imbalance, before
//! any training, so a user sees what ρ and the profile do to the set.

use std::path::PathBuf;

use crate::config::TrainConfig;
use crate::data::imbalance::histogram_line;
use crate::data::{DatasetKind, DatasetSource, ImbalanceProfile, class_counts};
use crate::run::{Group, class_groups, is_long_tailed};
use crate::train::setup::load_data;

#[derive(Debug, clap::Args)]
pub struct CountsArgs {
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMini)]
    pub dataset: DatasetKind,
    /// Folder holding the dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Side in pixels that image-folder images are resized to.
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Only the first K training images of each class.
    #[arg(long, value_name = "K")]
    pub train_per_class: Option<usize>,
    /// Only the first N training images.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// The imbalance ratio ρ = n_max / n_min (1: the data as it is).
    #[arg(long, default_value_t = 1.0, value_name = "RHO")]
    pub imbalance: f64,
    #[arg(long, value_enum, default_value_t = ImbalanceProfile::Exp)]
    pub imbalance_profile: ImbalanceProfile,
}

pub fn run(args: CountsArgs) -> anyhow::Result<()> {
    let config = TrainConfig {
        dataset: DatasetSource {
            kind: args.dataset,
            dir: args.data_dir,
            image_size: args.image_size,
        },
        train_per_class: args.train_per_class,
        limit_train: args.limit_train,
        imbalance: args.imbalance,
        imbalance_profile: args.imbalance_profile,
        ..Default::default()
    };
    config.validate()?;
    let data = load_data(&config)?;
    let counts = class_counts(&data.train);
    println!(
        "{} training images per class (ρ = {}, {} profile):",
        args.dataset,
        args.imbalance,
        args.imbalance_profile.name()
    );
    println!("{}", histogram_line(&counts));
    let groups = is_long_tailed(args.imbalance, &counts).then(|| class_groups(&counts));
    for (c, name) in data.train.class_names.iter().enumerate() {
        let group = groups
            .as_ref()
            .map_or("", |(_, g)| g.get(c).copied().map_or("", Group::name));
        println!("{c:>4} {name:<24} {:>7} {group}", counts[c]);
    }
    if let Some((rule, _)) = groups {
        println!("{}", rule.describe());
    }
    Ok(())
}
