//! Datasets: readers for the supported formats, the embedded default set, batching and augmentation.

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod embedded;
pub mod folder;
pub mod idx;
mod image_file;
pub mod imbalance;
pub mod split;
pub mod tiny_imagenet;

use std::path::{Path, PathBuf};

pub use augment::{Augmentation, Normalization};
pub use batch::make_batch;
pub use dataset::{DataError, Dataset, ImageShape};
pub use imbalance::{Imbalance, ImbalanceProfile, class_counts};
pub use split::{first_per_class, split_validation, subset};

/// Where the Debian package `dataset-fashion-mnist` installs Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The supported datasets. Names on the command line and in configs: fashion-mini, fashion-mnist,
/// mnist, cifar10, cifar100, tiny-imagenet, folder.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// The Fashion-MNIST subset compiled into the binary (500 train / 100 test images per class).
    #[default]
    FashionMini,
    /// Fashion-MNIST in IDX format (default folder: the Debian package's).
    FashionMnist,
    /// MNIST in IDX format.
    Mnist,
    /// CIFAR-10, binary version.
    Cifar10,
    /// CIFAR-100, binary version, fine labels.
    Cifar100,
    /// tiny-ImageNet (200 classes, 64 × 64 RGB) in its published layout, resized to the image
    /// size; its labelled validation images are the test split.
    TinyImagenet,
    /// Image folders ROOT/train/<class>/* and ROOT/test/<class>/*.
    Folder,
}

impl DatasetKind {
    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::FashionMini => "fashion-mini",
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::TinyImagenet => "tiny-imagenet",
            Self::Folder => "folder",
        }
    }

    /// Whether the dataset manager can fetch this set (`sla data get NAME`), so that a run without
    /// `--data-dir` looks for it in the dataset cache. (Fashion-MNIST is in the catalogue too, but
    /// its default folder is the Debian package's.)
    pub fn downloadable(self) -> bool {
        matches!(
            self,
            Self::Mnist | Self::Cifar10 | Self::Cifar100 | Self::TinyImagenet
        )
    }

    /// Whether the reader resizes every image to [`DatasetSource::image_size`]; the other sets
    /// have one fixed size.
    pub fn resizes(self) -> bool {
        matches!(self, Self::TinyImagenet | Self::Folder)
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to load: the kind, its folder (`None`: the embedded set, the Debian Fashion-MNIST or the
/// dataset cache), and for image folders and tiny-ImageNet the side every image is resized to. Fields missing from a config take their
/// defaults (fashion-mini, no folder, 32 pixels).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetSource {
    pub kind: DatasetKind,
    pub dir: Option<PathBuf>,
    pub image_size: usize,
}

impl Default for DatasetSource {
    fn default() -> Self {
        Self {
            kind: DatasetKind::FashionMini,
            dir: None,
            image_size: 32,
        }
    }
}

/// The training and test sets of one dataset.
#[derive(Clone, Debug)]
pub struct DataSplits {
    pub train: Dataset,
    pub test: Dataset,
}

fn require_dir<'a>(
    kind: DatasetKind,
    dir: Option<&'a Path>,
    expected: &str,
) -> Result<&'a Path, DataError> {
    dir.ok_or_else(|| {
        DataError::Invalid(format!(
            "the {kind} dataset needs a folder: pass --data-dir DIR, where DIR holds {expected}"
        ))
    })
}

/// Loads the train and test sets `source` names.
pub fn load(source: &DatasetSource) -> Result<DataSplits, DataError> {
    let dir = source.dir.as_deref();
    let (train, test) = match source.kind {
        DatasetKind::FashionMini => embedded::load()?,
        DatasetKind::FashionMnist => {
            let dir = dir.unwrap_or(Path::new(DEBIAN_FASHION_MNIST));
            idx::load_dir(dir, &idx::FASHION_CLASSES).map_err(|e| match (&e, source.dir.is_none()) {
                (DataError::Format { path, message }, true) if path == Path::new(DEBIAN_FASHION_MNIST) => {
                    DataError::Format {
                        path: path.clone(),
                        message: format!(
                            "{message}; install the Debian package dataset-fashion-mnist or pass --data-dir DIR"
                        ),
                    }
                }
                _ => e,
            })?
        }
        DatasetKind::Mnist => idx::load_dir(
            require_dir(source.kind, dir, idx::EXPECTED_FILES)?,
            &idx::MNIST_CLASSES,
        )?,
        DatasetKind::Cifar10 => cifar::load_cifar10(require_dir(
            source.kind,
            dir,
            "data_batch_1.bin … data_batch_5.bin and test_batch.bin (or cifar-10-batches-bin/)",
        )?)?,
        DatasetKind::Cifar100 => cifar::load_cifar100(
            require_dir(
                source.kind,
                dir,
                "train.bin and test.bin (or cifar-100-binary/)",
            )?,
            cifar::Cifar100Labels::Fine,
        )?,
        DatasetKind::TinyImagenet => tiny_imagenet::load(
            require_dir(
                source.kind,
                dir,
                "tiny-ImageNet's wnids.txt, words.txt, train/ and val/ (or tiny-imagenet-200/)",
            )?,
            source.image_size,
        )?,
        DatasetKind::Folder => folder::load_folder(
            require_dir(
                source.kind,
                dir,
                "train/<class>/*.png|jpg and test/<class>/*.png|jpg",
            )?,
            source.image_size,
        )?,
    };
    Ok(DataSplits { train, test })
}
